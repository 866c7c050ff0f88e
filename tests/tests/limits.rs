//! Idempotency and limits through the real binary, on SQLite and PostgreSQL: a POST
//! with an `Idempotency-Key` runs once and its answer is replayed (the stored copy
//! encrypted), a reused key with another body is 422; each credential has its own rate
//! limit (429 with `Retry-After` and the `RateLimit` fields); a project cannot have more
//! deployments than its quota, even when creates race.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use skyport_tests::{Api, Backend, ControlPlane};
use sqlx::{Connection, PgConnection, SqliteConnection};

async fn post_keyed(api: &Api, path: &str, key: &str, body: Value) -> skyport_tests::api::Reply {
    api.call_with_headers(Method::POST, path, Some(body), &[("Idempotency-Key", key)])
        .await
}

async fn deployment_names(api: &Api) -> Vec<String> {
    let list = api.get("/deployments").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let mut names: Vec<String> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// Runs `sql` (a statement, or a query of one text column) on the control plane's database.
async fn db_texts(cp: &ControlPlane, sql: &str) -> Vec<String> {
    let url = cp.database_url();
    if url.starts_with("sqlite:") {
        let mut conn = SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
    } else {
        let mut conn = PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
    }
}

async fn idempotency(backend: Backend) {
    let cp = ControlPlane::start_with(backend, &[]);
    let (project, api) = cp.api.project_with_key("idem").await;
    let body = json!({ "name": "once", "plan": "dedicated" });

    let first = post_keyed(&api, "/deployments", "create-once", body.clone()).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    assert!(Api::header(&first, "idempotent-replayed").is_none());
    let again = post_keyed(&api, "/deployments", "create-once", body.clone()).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text);
    assert_eq!(again.body, first.body, "the first answer, replayed");
    assert_eq!(Api::header(&again, "idempotent-replayed"), Some("true"));
    assert_eq!(
        Api::header(&again, "location"),
        Api::header(&first, "location")
    );
    assert_eq!(deployment_names(&api).await, ["once"]);

    // The same key with another body: refused, nothing created.
    let reused = post_keyed(
        &api,
        "/deployments",
        "create-once",
        json!({ "name": "twice", "plan": "dedicated" }),
    )
    .await;
    reused.assert_problem(422, "idempotency_key_reused");
    assert_eq!(deployment_names(&api).await, ["once"]);

    // Keys are per credential: another key of the project may use the same one.
    let other = cp
        .api
        .post(
            &format!("/projects/{project}/api-keys"),
            json!({ "name": "second" }),
        )
        .await;
    let other = api.with_token(other.body["secret"].as_str().unwrap());
    let theirs = post_keyed(
        &other,
        "/deployments",
        "create-once",
        json!({ "name": "theirs", "plan": "dedicated" }),
    )
    .await;
    assert_eq!(theirs.status, StatusCode::ACCEPTED, "{}", theirs.text);
    assert_eq!(deployment_names(&api).await, ["once", "theirs"]);

    // A bad key is refused before anything runs.
    let long = "k".repeat(256);
    let bad = post_keyed(
        &api,
        "/deployments",
        &long,
        json!({ "name": "bad-key", "plan": "dedicated" }),
    )
    .await;
    bad.assert_problem(400, "invalid_idempotency_key");
    assert_eq!(deployment_names(&api).await, ["once", "theirs"]);

    // An API key's secret, shown once, is shown again to the retry of the same request,
    // one key is created, and the kept answer does not hold the secret in clear.
    let key_path = format!("/projects/{project}/api-keys");
    let created = post_keyed(&cp.api, &key_path, "new-key", json!({ "name": "ci" })).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let replayed = post_keyed(&cp.api, &key_path, "new-key", json!({ "name": "ci" })).await;
    assert_eq!(replayed.status, StatusCode::CREATED);
    assert_eq!(replayed.body["secret"], created.body["secret"]);
    let keys = cp.api.get(&key_path).await;
    let named_ci = keys.body["items"]
        .as_array()
        .or(keys.body.as_array())
        .unwrap()
        .iter()
        .filter(|k| k["name"] == "ci")
        .count();
    assert_eq!(named_ci, 1, "{}", keys.text);
    let secret = created.body["secret"].as_str().unwrap();
    let kept = db_texts(&cp, "SELECT response FROM idempotency_keys").await;
    assert_eq!(kept.len(), 3, "three answers kept: {kept:?}");
    assert!(kept
        .iter()
        .all(|r| !r.contains(secret) && !r.contains("once")));

    // After 24 hours the key is free again: the same key with another body runs.
    let aged = if backend == Backend::Sqlite {
        "UPDATE idempotency_keys SET created_at = '2000-01-01T00:00:00+00:00' RETURNING key"
    } else {
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' RETURNING key"
    };
    assert_eq!(db_texts(&cp, aged).await.len(), 3);
    let later = post_keyed(
        &api,
        "/deployments",
        "create-once",
        json!({ "name": "later", "plan": "dedicated" }),
    )
    .await;
    assert_eq!(later.status, StatusCode::ACCEPTED, "{}", later.text);
    assert_eq!(deployment_names(&api).await, ["later", "once", "theirs"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_keys_replay_the_first_answer_on_sqlite() {
    idempotency(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_keys_replay_the_first_answer_on_postgres() {
    idempotency(Backend::Postgres).await;
}

async fn quota(backend: Backend) {
    let cp = ControlPlane::start_with(backend, &["--deployment-quota", "2"]);
    let (project, api) = cp.api.project_with_key("quota").await;
    let quota_path = format!("/projects/{project}/quota");
    let shown = api.get(&quota_path).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
    assert_eq!(shown.body, json!({ "max_deployments": 2, "default": true }));

    let first = api.create_deployment("q1", "dedicated").await;
    api.create_deployment("q2", "dedicated").await;
    let over = api
        .post("/deployments", json!({ "name": "q3", "plan": "dedicated" }))
        .await;
    over.assert_problem(409, "quota_exceeded");
    assert_eq!(deployment_names(&api).await, ["q1", "q2"]);

    // Only the admin sets it, within bounds.
    api.put(&quota_path, json!({ "max_deployments": 50 }))
        .await
        .assert_problem(403, "admin_required");
    cp.api
        .put(&quota_path, json!({ "max_deployments": -1 }))
        .await
        .assert_problem(422, "invalid_max_deployments");
    assert_eq!(api.get(&quota_path).await.body["max_deployments"], 2);

    // Raised to 5 with 2 used: of 6 racing creates exactly 3 win.
    let raised = cp
        .api
        .put(&quota_path, json!({ "max_deployments": 5 }))
        .await;
    assert_eq!(raised.status, StatusCode::OK, "{}", raised.text);
    assert_eq!(
        raised.body,
        json!({ "max_deployments": 5, "default": false })
    );
    let replies = futures::future::join_all((0..6).map(|i| {
        let api = api.clone();
        async move {
            api.post(
                "/deployments",
                json!({ "name": format!("race{i}"), "plan": "dedicated" }),
            )
            .await
        }
    }))
    .await;
    let won = replies
        .iter()
        .filter(|r| r.status == StatusCode::ACCEPTED)
        .count();
    for lost in replies.iter().filter(|r| r.status != StatusCode::ACCEPTED) {
        lost.assert_problem(409, "quota_exceeded");
    }
    assert_eq!(won, 3);
    assert_eq!(deployment_names(&api).await.len(), 5);

    // A deployment being deleted no longer counts.
    let deleted = api.delete(&format!("/deployments/{first}")).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.text);
    api.create_deployment("after-delete", "dedicated").await;

    // Back to the default (2): nothing is deleted, new ones are refused.
    let reset = cp
        .api
        .put(&quota_path, json!({ "max_deployments": null }))
        .await;
    assert_eq!(reset.body, json!({ "max_deployments": 2, "default": true }));
    api.post(
        "/deployments",
        json!({ "name": "nope", "plan": "dedicated" }),
    )
    .await
    .assert_problem(409, "quota_exceeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn deployment_quota_holds_under_racing_creates_on_sqlite() {
    quota(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deployment_quota_holds_under_racing_creates_on_postgres() {
    quota(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_is_per_credential_with_retry_after() {
    // 4 requests, refilled over an hour: the 5th within the test is always refused.
    let cp = ControlPlane::start_with(Backend::Sqlite, &["--rate-limit", "4/1h"]);
    let (_, api) = cp.api.project_with_key("limited").await;
    let (_, other) = cp.api.project_with_key("other").await;
    // Creating the projects and keys spent the admin's 4.
    for remaining in [3, 2, 1, 0] {
        let reply = api.get("/deployments").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(
            Api::header(&reply, "ratelimit-policy"),
            Some("\"per-key\";q=4;w=3600")
        );
        let state = Api::header(&reply, "ratelimit").unwrap();
        assert!(
            state.starts_with(&format!("\"per-key\";r={remaining};t=")),
            "{state}"
        );
    }
    let refused = api.get("/deployments").await;
    refused.assert_problem(429, "rate_limited");
    let retry_after: u64 = Api::header(&refused, "retry-after")
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert!(Api::header(&refused, "ratelimit")
        .unwrap()
        .starts_with("\"per-key\";r=0;"));
    // A refused POST does nothing, even with an Idempotency-Key.
    post_keyed(
        &api,
        "/deployments",
        "k",
        json!({ "name": "x", "plan": "dedicated" }),
    )
    .await
    .assert_problem(429, "rate_limited");
    assert_eq!(
        db_texts(&cp, "SELECT key FROM idempotency_keys")
            .await
            .len(),
        0
    );

    // Another key has its own budget; the admin's is spent too.
    assert_eq!(other.get("/deployments").await.status, StatusCode::OK);
    cp.api
        .get("/projects")
        .await
        .assert_problem(429, "rate_limited");
    // Probes need no credential and are never limited.
    for _ in 0..5 {
        assert_eq!(
            Api::new(&cp.base_url, "").get("/healthz").await.status,
            StatusCode::OK
        );
    }
}

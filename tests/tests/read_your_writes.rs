//! Read-your-writes to brokers, through the real binaries: a write the broker must apply
//! answers once the running broker has it in force (so the next request can rely on
//! it), or answers 202 with `applied: false` and shows `pending` until it is: with
//! `?wait=false`, after the apply timeout, or while the deployment is stopped (it applies
//! on start). The broker reports the revision it has in force on `/readyz`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use skyport_tests::{Api, Backend, ControlPlane};

struct Fixture {
    // Kept alive: dropping it stops the control plane and its brokers.
    _cp: ControlPlane,
    api: Api,
    id: String,
    http: reqwest::Client,
}

impl Fixture {
    async fn start(backend: Backend, args: &[&str]) -> Self {
        let cp = ControlPlane::start_with(backend, args);
        let (_, api) = cp.api.project_with_key("acme").await;
        let id = api.create_deployment("ryw", "dedicated").await;
        api.wait_status(&id, "running").await;
        Self {
            _cp: cp,
            api,
            id,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("/deployments/{}{rest}", self.id)
    }

    async fn deployment(&self) -> Value {
        let reply = self.api.get(&self.path("")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.body
    }

    async fn broker_api(&self) -> String {
        self.deployment().await["endpoints"]["api"]
            .as_str()
            .expect("endpoints.api")
            .to_owned()
    }

    /// `GET {api}/api/v4/clients` with an app key: the status the broker answers.
    async fn use_key(&self, key: &Value) -> StatusCode {
        self.http
            .get(format!("{}/api/v4/clients", self.broker_api().await))
            .basic_auth(key["app_id"].as_str().unwrap(), key["app_secret"].as_str())
            .send()
            .await
            .unwrap()
            .status()
    }

    /// The broker's `/readyz` answer.
    async fn readyz(&self) -> Value {
        self.http
            .get(format!("{}/readyz", self.broker_api().await))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The app key `app_id` as listed.
    async fn listed_key(&self, app_id: &str) -> Value {
        let list = self.api.get(&self.path("/app-keys")).await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.text);
        list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["app_id"] == app_id)
            .cloned()
            .expect("the key is listed")
    }

    /// Polls `get` until its answer shows `apply_status: applied` (bounded).
    async fn until_applied(&self, path: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..300 {
            let reply = self.api.get(path).await;
            if reply.body["apply_status"] == "applied" {
                assert_eq!(reply.body["applied"], true);
                return reply.body;
            }
            last = reply.body;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{path} never applied; last: {last}");
    }
}

#[track_caller]
fn assert_applied(reply: &skyport_tests::api::Reply, status: StatusCode) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.body["applied"], true, "{}", reply.text);
    assert_eq!(reply.body["apply_status"], "applied", "{}", reply.text);
    assert!(
        reply.body["revision"].as_i64().unwrap() > 0,
        "{}",
        reply.text
    );
}

#[track_caller]
fn assert_pending(reply: &skyport_tests::api::Reply) {
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(reply.body["applied"], false, "{}", reply.text);
    assert_eq!(reply.body["apply_status"], "pending", "{}", reply.text);
}

async fn keys_work_on_the_very_next_request(backend: Backend) {
    let f = Fixture::start(backend, &[]).await;
    for n in 0..5 {
        let key = f
            .api
            .post(&f.path("/app-keys"), json!({ "name": format!("k{n}") }))
            .await;
        assert_applied(&key, StatusCode::CREATED);
        assert_eq!(
            f.use_key(&key.body).await,
            StatusCode::OK,
            "a key answered 201 works at once"
        );
        let readyz = f.readyz().await;
        assert!(
            readyz["revision"].as_i64().unwrap() >= key.body["revision"].as_i64().unwrap(),
            "the broker reports the revision it applied: {readyz}"
        );
        let listed = f.listed_key(key.body["app_id"].as_str().unwrap()).await;
        assert_eq!(listed["apply_status"], "applied");
        assert_eq!(listed.get("app_secret"), None, "secrets are shown once");

        let revoked = f
            .api
            .delete(&f.path(&format!(
                "/app-keys/{}",
                key.body["app_id"].as_str().unwrap()
            )))
            .await;
        assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);
        assert_eq!(
            f.use_key(&key.body).await,
            StatusCode::UNAUTHORIZED,
            "a key answered 204 on revocation is refused at once"
        );
    }
    let d = f.deployment().await;
    assert_eq!(d["applied_revision"], d["generation"], "{d}");

    // Every chain and setting answers once applied, and says so when read back.
    let auth = f
        .api
        .put(
            &f.path("/authentication"),
            json!({"allow_anonymous": true, "sources": [{"type": "built_in"}]}),
        )
        .await;
    assert_applied(&auth, StatusCode::OK);
    let acl = f
        .api
        .put(
            &f.path("/authorization"),
            json!({"no_match": "deny", "sources": [{"type": "built_in"}]}),
        )
        .await;
    assert_applied(&acl, StatusCode::OK);
    let sessions = f
        .api
        .put(
            &f.path("/sessions"),
            json!({"session_expiry_secs": 60, "max_session_expiry_secs": 120, "max_queued_messages": 10}),
        )
        .await;
    assert_applied(&sessions, StatusCode::OK);
    for (path, revision) in [
        ("/authentication", &auth.body["revision"]),
        ("/authorization", &acl.body["revision"]),
        ("/sessions", &sessions.body["revision"]),
        ("/tls", &Value::from(0)),
    ] {
        let got = f.api.get(&f.path(path)).await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.text);
        assert_eq!(got.body["apply_status"], "applied", "{path}: {}", got.text);
        assert_eq!(&got.body["revision"], revision, "{path}: {}", got.text);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_work_on_the_very_next_request_sqlite() {
    keys_work_on_the_very_next_request(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_work_on_the_very_next_request_postgres() {
    keys_work_on_the_very_next_request(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_deployment_keeps_writes_pending_and_applies_them_on_start() {
    let f = Fixture::start(Backend::Sqlite, &[]).await;
    let stop = f.api.post(&f.path("/stop"), json!({})).await;
    assert_eq!(stop.status, StatusCode::ACCEPTED, "{}", stop.text);
    f.api.wait_status(&f.id, "stopped").await;

    let key = f
        .api
        .post(&f.path("/app-keys"), json!({ "name": "later" }))
        .await;
    assert_pending(&key);
    assert!(
        key.body["app_secret"].is_string(),
        "the secret is still shown once"
    );
    let app_id = key.body["app_id"].as_str().unwrap().to_owned();
    assert_eq!(f.listed_key(&app_id).await["apply_status"], "pending");
    let auth = f
        .api
        .put(
            &f.path("/authentication"),
            json!({"allow_anonymous": true, "sources": []}),
        )
        .await;
    assert_pending(&auth);
    assert_eq!(
        f.api.get(&f.path("/authentication")).await.body["apply_status"],
        "pending"
    );
    let d = f.deployment().await;
    assert!(
        d["applied_revision"].as_i64() < key.body["revision"].as_i64(),
        "nothing applied while stopped: {d}"
    );

    let start = f.api.post(&f.path("/start"), json!({})).await;
    assert_eq!(start.status, StatusCode::ACCEPTED, "{}", start.text);
    f.api.wait_status(&f.id, "running").await;
    assert_eq!(f.listed_key(&app_id).await["apply_status"], "applied");
    assert_eq!(
        f.api.get(&f.path("/authentication")).await.body["apply_status"],
        "applied"
    );
    assert_eq!(f.use_key(&key.body).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_waiting_a_write_is_pending_until_the_broker_applies_it() {
    // No wait at all: every write answers before the broker can have applied it.
    let f = Fixture::start(Backend::Sqlite, &["--apply-timeout", "0s"]).await;
    let key = f
        .api
        .post(&f.path("/app-keys"), json!({ "name": "eventually" }))
        .await;
    assert_pending(&key);
    let app_id = key.body["app_id"].as_str().unwrap().to_owned();
    let mut last = Value::Null;
    let mut applied = false;
    for _ in 0..300 {
        last = f.listed_key(&app_id).await;
        if last["apply_status"] == "applied" {
            applied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(applied, "the key was never applied: {last}");
    assert_eq!(f.use_key(&key.body).await, StatusCode::OK);

    // `?wait=false` answers at once too, whatever the timeout.
    let sessions = f
        .api
        .put(
            &f.path("/sessions?wait=false"),
            json!({"session_expiry_secs": 5, "max_session_expiry_secs": 5, "max_queued_messages": 5}),
        )
        .await;
    assert_pending(&sessions);
    f.until_applied(&f.path("/sessions")).await;
}

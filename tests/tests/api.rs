//! The REST API's contract at its edges: authentication, project isolation, and a precise
//! problem document for every bad input, with nothing written.

use reqwest::{Method, StatusCode};
use serde_json::json;
use skyport_tests::{ControlPlane, ADMIN_TOKEN};

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_required_and_scoped() {
    let cp = ControlPlane::start();
    cp.api
        .with_token("")
        .get("/deployments")
        .await
        .assert_problem(401, "missing_token");
    cp.api
        .with_token("nope-not-a-key")
        .get("/deployments")
        .await
        .assert_problem(401, "invalid_token");
    // The admin token manages projects but cannot act as a project.
    cp.api
        .get("/deployments")
        .await
        .assert_problem(403, "project_key_required");

    let (p1, acme) = cp.api.project_with_key("acme").await;
    let (p2, other) = cp.api.project_with_key("other").await;
    acme.post("/projects", json!({"name": "sneaky"}))
        .await
        .assert_problem(403, "admin_required");

    let id = acme.create_deployment("demo", "dedicated").await;
    // Another project's key sees nothing of it.
    for (method, path) in [
        (Method::GET, format!("/deployments/{id}")),
        (Method::PATCH, format!("/deployments/{id}")),
        (Method::DELETE, format!("/deployments/{id}")),
        (Method::POST, format!("/deployments/{id}/stop")),
        (Method::POST, format!("/deployments/{id}/start")),
        (Method::GET, format!("/deployments/{id}/ca.pem")),
        (Method::GET, format!("/projects/{p1}")),
        (Method::GET, format!("/projects/{p1}/api-keys")),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"name": "mine"}));
        other
            .call(method.clone(), &path, body)
            .await
            .assert_problem(404, "not_found");
    }
    assert_eq!(other.get("/deployments").await.body["items"], json!([]));
    let own = other.get("/projects").await;
    assert_eq!(own.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(own.body["items"][0]["id"], p2.as_str());
    // Untouched by the attempts.
    let d = acme.get(&format!("/deployments/{id}")).await;
    assert_eq!(d.body["name"], "demo");
    assert_eq!(d.body["desired_state"], "running");

    // Key secrets are shown once, stored hashed, and revocable.
    let keys = cp.api.get(&format!("/projects/{p1}/api-keys")).await;
    assert_eq!(keys.status, StatusCode::OK);
    let listed = &keys.body["items"][0];
    assert!(
        listed.get("secret").is_none(),
        "listing never shows secrets"
    );
    assert!(acme.token.starts_with(listed["prefix"].as_str().unwrap()));
    let db = std::fs::read(cp.data_dir.path().join("skyport.db")).unwrap();
    assert!(
        !db.windows(acme.token.len())
            .any(|w| w == acme.token.as_bytes()),
        "the secret is not stored in the clear"
    );
    let key_id = listed["id"].as_str().unwrap();
    let revoked = cp
        .api
        .call(
            Method::DELETE,
            &format!("/projects/{p1}/api-keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    acme.get("/deployments")
        .await
        .assert_problem(401, "invalid_token");
    let _ = ADMIN_TOKEN;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_precise_problem_and_changes_nothing() {
    let cp = ControlPlane::start();
    let (_, api) = cp.api.project_with_key("acme").await;
    api.create_deployment("taken", "dedicated").await;

    let cases = [
        (json!({"name": "x", "plan": "gold"}), 422, "invalid_plan"),
        (
            json!({"name": "", "plan": "dedicated"}),
            422,
            "invalid_name",
        ),
        (
            json!({"name": "a".repeat(65), "plan": "dedicated"}),
            422,
            "invalid_name",
        ),
        (
            json!({"name": "bad/name", "plan": "dedicated"}),
            422,
            "invalid_name",
        ),
        (json!({"name": 7, "plan": "dedicated"}), 422, "invalid_name"),
        (
            json!({"name": "x", "plan": "dedicated", "colour": "red"}),
            422,
            "unknown_field",
        ),
        (json!({"plan": "dedicated"}), 422, "missing_field"),
        (
            json!({"name": "x", "plan": "dedicated", "tier": {"max_sessions": 0, "max_tps": 5}}),
            422,
            "invalid_tier",
        ),
        (
            json!({"name": "x", "plan": "dedicated", "tier": {"max_sessions": 5}}),
            422,
            "missing_field",
        ),
        (
            json!({"name": "x", "plan": "dedicated", "version": "9.9"}),
            422,
            "unsupported_version",
        ),
        (
            json!({"name": "taken", "plan": "serverless"}),
            409,
            "name_taken",
        ),
    ];
    for (body, status, code) in cases {
        let reply = api.post("/deployments", body.clone()).await;
        reply.assert_problem(status, code);
        assert!(
            reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}: {}",
            reply.text
        );
    }
    let unknown = api
        .post(
            "/deployments",
            json!({"name": "x", "plan": "dedicated", "colour": "red"}),
        )
        .await;
    assert_eq!(unknown.body["field"], "colour");

    api.call_raw(
        Method::POST,
        "/deployments",
        "application/json",
        "{\"name\": ",
    )
    .await
    .assert_problem(400, "malformed_json");
    api.call_raw(Method::POST, "/deployments", "application/json", "not json")
        .await
        .assert_problem(400, "malformed_json");
    api.call_raw(Method::POST, "/deployments", "text/plain", "{}")
        .await
        .assert_problem(415, "unsupported_media_type");
    api.get("/deployments?cursor=garbage")
        .await
        .assert_problem(400, "invalid_cursor");
    api.get("/deployments?limit=0")
        .await
        .assert_problem(400, "invalid_limit");
    api.get("/deployments?limit=abc")
        .await
        .assert_problem(400, "invalid_query");
    api.get("/deployments/not-an-id")
        .await
        .assert_problem(404, "not_found");
    api.get(&format!("/deployments/{}", uuid::Uuid::now_v7()))
        .await
        .assert_problem(404, "not_found");

    // Nothing was created by any of the above.
    let list = api.get("/deployments").await;
    let names: Vec<_> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("taken")]);

    // PATCH validates the same way and leaves the deployment untouched.
    let id = list.body["items"][0]["id"].as_str().unwrap().to_owned();
    let second = api.create_deployment("second", "dedicated").await;
    let before = api.get(&format!("/deployments/{second}")).await.body;
    for (body, status, code) in [
        (json!({"name": "taken"}), 409, "name_taken"),
        (json!({"name": ""}), 422, "invalid_name"),
        (json!({"plan": "gold"}), 422, "invalid_plan"),
        (
            json!({"tier": {"max_sessions": 1, "max_tps": 2_000_000}}),
            422,
            "invalid_tier",
        ),
        (json!({"status": "running"}), 422, "unknown_field"),
    ] {
        api.call(Method::PATCH, &format!("/deployments/{second}"), Some(body))
            .await
            .assert_problem(status, code);
    }
    let after = api.get(&format!("/deployments/{second}")).await.body;
    assert_eq!(after["name"], before["name"]);
    assert_eq!(after["generation"], before["generation"]);
    assert_eq!(after["tier"], before["tier"]);
    let _ = id;

    // Project bad input.
    cp.api
        .post("/projects", json!({"name": "acme"}))
        .await
        .assert_problem(409, "name_taken");
    cp.api
        .post("/projects", json!({"name": " "}))
        .await
        .assert_problem(422, "invalid_name");
    let projects = cp.api.get("/projects").await;
    assert_eq!(projects.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_page_with_opaque_cursors() {
    let cp = ControlPlane::start();
    let (_, api) = cp.api.project_with_key("acme").await;
    let mut created = Vec::new();
    for i in 0..5 {
        // Stopped right away so the test does not need five brokers.
        let id = api.create_deployment(&format!("d{i}"), "serverless").await;
        api.post(&format!("/deployments/{id}/stop"), json!({}))
            .await;
        created.push(id);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/deployments?limit=2&cursor={c}"),
            None => "/deployments?limit=2".into(),
        };
        let page = api.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|d| d["id"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, created, "every deployment once, in creation order");
    for id in &created {
        api.wait_status(id, "stopped").await;
    }
}

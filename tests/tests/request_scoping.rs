//! Requests are judged in the right order: whose deployment it is before what the body
//! says (another project's deployment is 404 whatever the body, on every endpoint that
//! takes one), and a body is one JSON document (trailing garbage is 400
//! `malformed_json`, and nothing is created or changed).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use skyport_tests::{workspace_root, ControlPlane};

/// Every `(method, path)` under `/deployments/{deployment_id}` that takes a request
/// body, from the committed OpenAPI document, so a new endpoint is covered too.
fn body_endpoints() -> Vec<(Method, String)> {
    let text = std::fs::read_to_string(workspace_root().join("openapi/skyport.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/deployments/{deployment_id}") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            if op.get("requestBody").is_some() {
                found.push((method.to_uppercase().parse().unwrap(), path.clone()));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn another_projects_deployment_is_404_whatever_the_body() {
    let cp = ControlPlane::start();
    let (_, owner) = cp.api.project_with_key("owner").await;
    let (_, other) = cp.api.project_with_key("other").await;
    let id = owner.create_deployment("mine", "dedicated").await;
    let before = owner.get(&format!("/deployments/{id}")).await.body;

    let endpoints = body_endpoints();
    assert!(
        endpoints.len() >= 8,
        "app keys, authentication, authorization, PATCH, domains, internal endpoint, sessions, TLS: {endpoints:?}"
    );
    let bodies = [
        ("application/json", "{\"name\": "),
        ("application/json", "{\"surely_not_a_field\": 1}"),
        ("application/json", "[1, 2, 3]"),
        ("application/json", "{} trailing"),
        ("text/plain", "hello"),
    ];
    for (method, template) in &endpoints {
        let concrete = template.replace("{domain}", "mqtt.example.com");
        for target in [id.as_str(), "00000000000000000000000000"] {
            let path = concrete.replace("{deployment_id}", target);
            for (content_type, body) in bodies {
                let reply = other
                    .call_raw(method.clone(), &path, content_type, body)
                    .await;
                assert!(
                    reply.status == StatusCode::NOT_FOUND,
                    "{method} {path} with {body:?} as another project: {} {}",
                    reply.status,
                    reply.text
                );
                reply.assert_problem(404, "not_found");
            }
        }
        // The owner sending the same gets the body's error, not a 404: the order of the
        // checks is what the test is about.
        let path = concrete.replace("{deployment_id}", &id);
        let reply = owner
            .call_raw(method.clone(), &path, "application/json", "{\"name\": ")
            .await;
        reply.assert_problem(400, "malformed_json");
    }
    let after = owner.get(&format!("/deployments/{id}")).await.body;
    assert_eq!(before["generation"], after["generation"], "nothing changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn trailing_garbage_after_the_json_document_is_400_and_changes_nothing() {
    let cp = ControlPlane::start();
    let (project, api) = cp.api.project_with_key("strict").await;

    for body in [
        r#"{"name": "trailing", "plan": "dedicated"} garbage"#,
        r#"{"name": "trailing", "plan": "dedicated"}{"name": "second"}"#,
        r#"{"name": "trailing", "plan": "dedicated"},"#,
        r#"{"name": "trailing", "plan": "dedicated"}]"#,
    ] {
        let reply = api
            .call_raw(Method::POST, "/deployments", "application/json", body)
            .await;
        reply.assert_problem(400, "malformed_json");
    }
    let list = api.get("/deployments").await;
    assert_eq!(list.body["items"], json!([]), "no deployment was created");

    // Whitespace after the document is not garbage.
    let ok = api
        .call_raw(
            Method::POST,
            "/deployments",
            "application/json",
            "{\"name\": \"trailing\", \"plan\": \"dedicated\"}  \n",
        )
        .await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "{}", ok.text);
    let id = ok.body["id"].as_str().unwrap().to_owned();

    // The same on a deployment's own resources and on the admin API.
    let reply = api
        .call_raw(
            Method::PUT,
            &format!("/deployments/{id}/authentication"),
            "application/json",
            r#"{"allow_anonymous": true, "sources": []} x"#,
        )
        .await;
    reply.assert_problem(400, "malformed_json");
    let chain = api.get(&format!("/deployments/{id}/authentication")).await;
    assert_eq!(chain.body["allow_anonymous"], false, "{}", chain.text);

    let admin = cp.api.clone();
    let reply = admin
        .call_raw(
            Method::POST,
            &format!("/projects/{project}/api-keys"),
            "application/json",
            r#"{"name": "k"} {"name": "k2"}"#,
        )
        .await;
    reply.assert_problem(400, "malformed_json");
    let keys = admin.get(&format!("/projects/{project}/api-keys")).await;
    assert_eq!(
        keys.body["items"].as_array().map(Vec::len),
        Some(1),
        "only the test's own key: {}",
        keys.text
    );
}

//! The operator's view of a running control plane: liveness and readiness probes (the
//! database and the leader), Prometheus metrics by matched route and of the leader, and
//! JSON logs whose lines carry each request's id.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use skyport_tests::{postgres, Api, Backend, ControlPlane};

async fn metrics(cp: &ControlPlane) -> String {
    reqwest::get(format!("{}/metrics", cp.base_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_metrics_and_json_logs_with_request_ids() {
    let cp = ControlPlane::start_logged(
        Backend::Sqlite,
        &["--log-format", "json", "--replica-id", "solo"],
    );
    let anonymous = Api::new(&cp.base_url, "");
    let health = anonymous.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body, json!({"status": "ok"}));
    let ready = anonymous.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(
        ready.body,
        json!({"status": "ready", "database": true, "leader": "solo", "replica": "solo", "is_leader": true})
    );

    // A request id is kept when sent, generated when not, and answered either way.
    let (_, api) = cp.api.project_with_key("ops").await;
    let created = api
        .call_with_headers(
            Method::POST,
            "/deployments",
            Some(json!({"name": "watched", "plan": "dedicated"})),
            &[("x-request-id", "ops-test-request-42")],
        )
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    assert_eq!(
        Api::header(&created, "x-request-id"),
        Some("ops-test-request-42")
    );
    let generated = api.get("/deployments").await;
    let id = Api::header(&generated, "x-request-id").unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let deployment = created.body["id"].as_str().unwrap();
    api.wait_status(deployment, "running").await;

    // Every log line is JSON; the handler's line is in the request's span, with its id.
    let logs = cp.logs();
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!lines.is_empty(), "no JSON log lines in {logs}");
    let created_line = lines
        .iter()
        .find(|l| l["message"] == "deployment created")
        .unwrap_or_else(|| panic!("no `deployment created` line in {logs}"));
    assert_eq!(created_line["span"]["request_id"], "ops-test-request-42");
    assert_eq!(created_line["deployment.id"], deployment);
    assert!(lines
        .iter()
        .any(|l| l["message"] == "this replica is the leader: starting background work"));

    // Metrics: latency by matched route (never the raw path), leader, reconcile health.
    let text = metrics(&cp).await;
    let route = "skyport_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/deployments/{deployment_id}\",status=\"200\"}";
    assert!(
        sample(&text, route).is_some_and(|n| n >= 1.0),
        "no {route} in\n{text}"
    );
    assert!(!text.contains(&format!("route=\"/api/v1/deployments/{deployment}")));
    assert_eq!(sample(&text, "skyport_leader "), Some(1.0));
    assert_eq!(sample(&text, "skyport_reconcile_lag_seconds "), Some(0.0));
    for kind in [
        "store",
        "io",
        "certificate",
        "security",
        "kubernetes",
        "other",
    ] {
        assert_eq!(
            sample(
                &text,
                &format!("skyport_reconcile_errors_total{{kind=\"{kind}\"}}")
            ),
            Some(0.0),
            "{kind}"
        );
    }
    assert!(
        sample(&text, "skyport_reconcile_total{result=\"converged\"}").is_some_and(|n| n >= 1.0)
    );
}

/// Drops the control plane's PostgreSQL database under it.
fn drop_database(url: &str) {
    let name = url.rsplit('/').next().unwrap();
    let out = std::process::Command::new("psql")
        .arg(format!("{}/postgres", postgres::server_url()))
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
        .arg(format!("DROP DATABASE {name} WITH (FORCE)"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn losing_the_database_makes_the_replica_unready_and_ends_its_leadership() {
    let cp = ControlPlane::start_with(Backend::Postgres, &["--replica-id", "only"]);
    let anonymous = Api::new(&cp.base_url, "");
    // The advisory lock is taken within a retry or two.
    let mut ready = anonymous.get("/readyz").await;
    for _ in 0..300 {
        if ready.status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        ready = anonymous.get("/readyz").await;
    }
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(ready.body["leader"], "only");
    assert_eq!(sample(&metrics(&cp).await, "skyport_leader "), Some(1.0));

    // The database goes away (its sessions are terminated, the advisory lock with them).
    drop_database(cp.database_url());
    let mut last = Value::Null;
    let mut lost = false;
    for _ in 0..300 {
        // The gauge first: it drops after leadership did, so `is_leader` is false then.
        let gauge = sample(&metrics(&cp).await, "skyport_leader ");
        let ready = anonymous.get("/readyz").await;
        if ready.status == StatusCode::SERVICE_UNAVAILABLE && gauge == Some(0.0) {
            assert_eq!(ready.body["status"], "not_ready");
            assert_eq!(ready.body["database"], false);
            assert_eq!(ready.body["is_leader"], false);
            lost = true;
            break;
        }
        last = ready.body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(lost, "still ready or leading without a database: {last}");
    // Liveness does not depend on the database.
    assert_eq!(anonymous.get("/healthz").await.status, StatusCode::OK);
}

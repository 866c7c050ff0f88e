//! Ports that never clash, through the real binaries: a burst of concurrent creates all
//! end `running`, each broker on ports no other deployment has; stop/start keeps them;
//! a port taken meanwhile by something outside Skyport is replaced on start.

use std::collections::HashSet;
use std::net::TcpListener;

use reqwest::StatusCode;
use serde_json::{json, Value};
use skyport_tests::{Api, Backend, ControlPlane};

/// Deployments created at once per backend.
const BURST: usize = 50;

/// Every port of a deployment's endpoints.
fn ports(d: &Value) -> Vec<u16> {
    let e = &d["endpoints"];
    ["mqtt", "mqtts", "ws", "wss", "api"]
        .iter()
        .map(|k| {
            let url = e[*k]
                .as_str()
                .unwrap_or_else(|| panic!("endpoint {k}: {d}"));
            let authority = url.split("://").nth(1).unwrap();
            let port = authority
                .split(['/'])
                .next()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap();
            port.parse().unwrap()
        })
        .collect()
}

async fn create_all(api: &Api, prefix: &str, n: usize) -> Vec<String> {
    let replies = futures::future::join_all((0..n).map(|i| {
        let api = api.clone();
        let name = format!("{prefix}{i}");
        async move {
            api.post("/deployments", json!({ "name": name, "plan": "dedicated" }))
                .await
        }
    }))
    .await;
    replies
        .into_iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
            r.body["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

async fn burst(backend: Backend) {
    let cp = ControlPlane::start_with(backend, &[]);
    let (project, api) = cp.api.project_with_key("burst").await;
    // More than the default quota of 20: the admin raises the project's.
    let quota = cp
        .api
        .put(
            &format!("/projects/{project}/quota"),
            json!({ "max_deployments": BURST }),
        )
        .await;
    assert_eq!(quota.status, StatusCode::OK, "{}", quota.text);
    let ids = create_all(&api, "b", BURST).await;

    let mut seen = HashSet::new();
    let mut by_id = Vec::new();
    for id in &ids {
        let d = api.wait_status(id, "running").await;
        let p = ports(&d);
        for port in &p {
            assert!(seen.insert(*port), "port {port} handed out twice: {d}");
        }
        by_id.push((id.clone(), p));
    }
    assert_eq!(
        cp.broker_processes().len(),
        BURST,
        "one broker per deployment"
    );

    // Stop and start a few at once: same ports, running again.
    let restarted = &by_id[..5];
    for (id, _) in restarted {
        let r = api
            .post(&format!("/deployments/{id}/stop"), json!({}))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    }
    for (id, _) in restarted {
        api.wait_status(id, "stopped").await;
        let r = api
            .post(&format!("/deployments/{id}/start"), json!({}))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    }
    for (id, before) in restarted {
        let d = api.wait_status(id, "running").await;
        assert_eq!(&ports(&d), before, "stop/start keeps the ports");
    }

    // Something outside Skyport takes a stopped deployment's port: on start it gets
    // new ports rather than failing for good.
    let (id, before) = &by_id[5];
    let r = api
        .post(&format!("/deployments/{id}/stop"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    api.wait_status(id, "stopped").await;
    let squatter =
        TcpListener::bind(("127.0.0.1", before[0])).expect("the stopped broker's port is free");
    let r = api
        .post(&format!("/deployments/{id}/start"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let d = api.wait_status(id, "running").await;
    let after = ports(&d);
    assert!(!after.contains(&before[0]), "{before:?} -> {after:?}");
    for (other, p) in &by_id {
        if other != id {
            assert!(
                after.iter().all(|port| !p.contains(port)),
                "new ports {after:?} clash with {other}'s {p:?}"
            );
        }
    }
    drop(squatter);

    for id in &ids {
        let r = api.delete(&format!("/deployments/{id}")).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    }
    for id in &ids {
        api.wait_gone(id).await;
    }
    assert!(cp.broker_processes().is_empty(), "no broker left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_creates_gets_distinct_ports_sqlite() {
    burst(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_creates_gets_distinct_ports_postgres() {
    burst(Backend::Postgres).await;
}

//! The internal endpoint on Kubernetes: the real `skyport` against the fake API server,
//! whose fake cloud load-balancer controller gives the internal `LoadBalancer` Service an
//! address, as a cloud would. The reconciler reads it from the Service's
//! `status.loadBalancer.ingress` and the API reports it, with status `active`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use skyport_tests::on_kube::OnKube;

const NS: &str = "skyport-internal";

#[tokio::test(flavor = "multi_thread")]
async fn the_internal_load_balancers_address_is_reported_and_kept() {
    let OnKube { cp, fake, .. } = &OnKube::start(NS, &["--internal-lb-provider", "aws"]).await;
    let (_, api) = cp.api.project_with_key("private").await;
    let id = api.create_deployment("peered", "dedicated").await;
    api.wait_status(&id, "running").await;

    let path = format!("/deployments/{id}/internal-endpoint");
    let put = api
        .put(&path, json!({"allowed_cidrs": ["10.1.0.0/16"]}))
        .await;
    assert!(
        matches!(put.status, StatusCode::CREATED | StatusCode::ACCEPTED),
        "{}",
        put.text
    );
    let service = format!("skyport-{id}-internal");
    let mut last = Value::Null;
    let mut reported = None;
    for _ in 0..600 {
        let lb_ip = fake.object("services", NS, &service).and_then(|s| {
            s["status"]["loadBalancer"]["ingress"][0]["ip"]
                .as_str()
                .map(str::to_owned)
        });
        let got = api.get(&path).await.body;
        if let Some(ip) = lb_ip {
            if got["status"] == "active" && got["address"] == ip.as_str() {
                reported = Some((ip, got));
                break;
            }
        }
        last = got;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ip, endpoint) =
        reported.unwrap_or_else(|| panic!("the internal endpoint never became active: {last}"));
    let mqtt = endpoint["endpoints"]["mqtt"].as_str().unwrap();
    assert!(mqtt.starts_with(&format!("mqtt://{ip}:")), "{mqtt}");
    // The deployment's view names it too.
    let d = api.get(&format!("/deployments/{id}")).await.body;
    assert_eq!(d["network"]["internal_endpoint"]["address"], ip.as_str());

    // Changing the ranges keeps the address the load balancer assigned.
    let changed = api
        .put(&path, json!({"allowed_cidrs": ["172.16.0.0/12"]}))
        .await;
    assert!(
        matches!(changed.status, StatusCode::OK | StatusCode::ACCEPTED),
        "{}",
        changed.text
    );
    assert_eq!(changed.body["address"], ip.as_str());
    let mut ranges = Value::Null;
    for _ in 0..300 {
        ranges = fake.object("services", NS, &service).unwrap()["spec"]["loadBalancerSourceRanges"]
            .clone();
        if ranges == json!(["172.16.0.0/12"]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ranges,
        json!(["172.16.0.0/12"]),
        "the Service follows the new ranges"
    );
    assert_eq!(api.get(&path).await.body["address"], ip.as_str());
}

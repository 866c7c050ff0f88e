//! Leader election through a Kubernetes Lease (`coordination.k8s.io/v1`), against the
//! fake API server: of two control planes one holds the Lease and reconciles; when it is
//! SIGKILLed the other takes the expired Lease and provisions deployments.

use std::time::Duration;

use serde_json::Value;
use skyport_tests::cluster::Cluster;
use skyport_tests::fake_kube::FakeKube;

const NS: &str = "skyport-lease";

fn lease(fake: &FakeKube) -> Value {
    fake.object("leases", NS, "skyport-leader")
        .expect("the leader Lease exists")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lease_holder_reconciles_and_a_survivor_takes_over() {
    let fake = FakeKube::start();
    let scratch = tempfile::tempdir().unwrap();
    let kubeconfig = scratch.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig, NS);
    let mut cluster = Cluster::start_with_env(
        2,
        &["--orchestrator", "kubernetes", "--kube-namespace", NS],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    let first = cluster.agreed_leader().await;
    let held = lease(&fake);
    assert_eq!(held["spec"]["holderIdentity"], format!("replica-{first}"));
    assert_eq!(held["spec"]["leaseDurationSeconds"], 10);
    let transitions = held["spec"]["leaseTransitions"].as_i64().unwrap();

    cluster.kill(first);
    let second = cluster.agreed_leader().await;
    assert_ne!(second, first);
    let taken = lease(&fake);
    assert_eq!(taken["spec"]["holderIdentity"], format!("replica-{second}"));
    assert_eq!(taken["spec"]["leaseTransitions"], transitions + 1);

    // The new leader reconciles: a deployment created now gets its StatefulSet.
    let (_, api) = cluster.replicas[second]
        .api
        .project_with_key("leased")
        .await;
    let id = api.create_deployment("after-takeover", "dedicated").await;
    let mut found = false;
    for _ in 0..600 {
        if fake
            .objects("statefulsets", NS)
            .iter()
            .any(|s| s.to_string().contains(&id))
        {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        found,
        "no StatefulSet for {id} in {:?}",
        fake.all_objects(NS)
    );
}

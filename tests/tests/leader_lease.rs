//! Leader election through a Kubernetes Lease (`coordination.k8s.io/v1`), against the
//! fake API server: of two control planes one holds the Lease and reconciles; when it is
//! SIGKILLed the other takes the expired Lease and provisions deployments.

use std::time::Duration;

use serde_json::Value;
use skyport_tests::cluster::Cluster;
use skyport_tests::fake_kube::FakeKube;

const NS: &str = "skyport-lease";

/// The replica every live one names as leader, once they agree (bounded: 60 s).
async fn agreed_leader(cluster: &Cluster) -> usize {
    let mut last = Vec::new();
    for _ in 0..600 {
        let mut seen = Vec::new();
        for (i, replica) in cluster.replicas.iter().enumerate() {
            if replica.is_up() {
                seen.push((i, replica.api.get("/readyz").await.body));
            }
        }
        let leaders: Vec<usize> = seen
            .iter()
            .filter(|(_, r)| r["is_leader"] == true)
            .map(|(i, _)| *i)
            .collect();
        if let [leader] = leaders[..] {
            let name = format!("replica-{leader}");
            if seen.iter().all(|(_, r)| r["leader"] == name.as_str()) {
                return leader;
            }
        }
        last = seen;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no agreed leader: {last:?}");
}

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
    let first = agreed_leader(&cluster).await;
    let held = lease(&fake);
    assert_eq!(held["spec"]["holderIdentity"], format!("replica-{first}"));
    assert_eq!(held["spec"]["leaseDurationSeconds"], 10);
    let transitions = held["spec"]["leaseTransitions"].as_i64().unwrap();

    cluster.kill(first);
    let second = agreed_leader(&cluster).await;
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

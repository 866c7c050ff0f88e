//! Several control planes on one PostgreSQL: every replica serves the API, exactly one
//! (elected with an advisory lock) runs the reconciler, and when the leader is SIGKILLed
//! in the middle of a burst of creates and deletes another takes over: everything
//! converges, with exactly one broker process per running deployment and none for a
//! deleted one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use skyport_tests::cluster::Cluster;
use skyport_tests::Api;

/// `skyport_leader` from a replica's `/metrics`.
async fn leader_gauge(base_url: &str) -> String {
    let text = reqwest::get(format!("{base_url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with("skyport_leader "))
        .unwrap_or_else(|| panic!("no skyport_leader in {text}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_leader_mid_burst_hands_over_without_duplicate_brokers() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.agreed_leader().await;
    for (i, replica) in cluster.replicas.iter().enumerate() {
        let want = if i == leader { "1" } else { "0" };
        assert_eq!(
            leader_gauge(&replica.base_url).await,
            format!("skyport_leader {want}")
        );
    }
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();

    // Every replica serves the API: a project made on one is seen by the others.
    let (project, _) = cluster.replicas[followers[0]]
        .api
        .project_with_key("replicated")
        .await;
    let key = cluster.replicas[followers[0]]
        .api
        .post(
            &format!("/projects/{project}/api-keys"),
            json!({"name": "burst"}),
        )
        .await;
    let secret = key.body["secret"].as_str().unwrap().to_owned();
    let apis: Vec<Api> = followers
        .iter()
        .map(|i| cluster.replicas[*i].api.with_token(&secret))
        .collect();

    // A first wave the old leader starts brokers for.
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            apis[i % 2]
                .create_deployment(&format!("before{i}"), "dedicated")
                .await,
        );
    }
    for id in &ids[..3] {
        apis[0].wait_status(id, "running").await;
    }

    // The burst: creates and deletes through the followers while the leader dies.
    let burst = {
        let apis = apis.clone();
        let first_wave = ids.clone();
        tokio::spawn(async move {
            let mut created = Vec::new();
            let mut deleted = Vec::new();
            for i in 0..8 {
                let api = &apis[i % 2];
                let reply = api
                    .post(
                        "/deployments",
                        json!({"name": format!("burst{i}"), "plan": "dedicated"}),
                    )
                    .await;
                assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
                created.push(reply.body["id"].as_str().unwrap().to_owned());
                if i % 3 == 0 {
                    let victim = if i < 6 {
                        first_wave[i / 3].clone()
                    } else {
                        created[0].clone()
                    };
                    let reply = api.delete(&format!("/deployments/{victim}")).await;
                    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
                    deleted.push(victim);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (created, deleted)
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let killed_at = Instant::now();
    cluster.kill(leader);
    let new_leader = cluster.agreed_leader().await;
    let handover = killed_at.elapsed();
    assert_ne!(new_leader, leader);
    let (created, deleted) = burst.await.unwrap();
    ids.extend(created);
    let deleted: BTreeSet<String> = deleted.into_iter().collect();

    // Everything converges under the new leader.
    for id in &ids {
        if deleted.contains(id) {
            apis[0].wait_gone(id).await;
        } else {
            apis[1].wait_status(id, "running").await;
        }
    }
    let running: BTreeSet<String> = ids
        .iter()
        .filter(|id| !deleted.contains(*id))
        .cloned()
        .collect();
    assert_eq!(running.len(), ids.len() - deleted.len());

    // Exactly one broker process per running deployment, none for deleted ones.
    let mut per_deployment: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (pid, id) in cluster.brokers() {
        per_deployment.entry(id).or_default().push(pid);
    }
    assert_eq!(
        per_deployment.keys().cloned().collect::<BTreeSet<_>>(),
        running,
        "brokers run for exactly the running deployments: {per_deployment:?}"
    );
    for (id, pids) in &per_deployment {
        assert_eq!(pids.len(), 1, "deployment {id} has brokers {pids:?}");
    }
    // And each answers on the port its endpoints name.
    for id in &running {
        let d = apis[0].get(&format!("/deployments/{id}")).await.body;
        let api_url = d["endpoints"]["api"].as_str().unwrap();
        let ready = reqwest::get(format!("{api_url}/readyz")).await.unwrap();
        assert!(ready.status().is_success(), "broker of {id} at {api_url}");
    }
    assert_eq!(
        leader_gauge(&cluster.replicas[new_leader].base_url).await,
        "skyport_leader 1"
    );
    eprintln!("leader hand-over after SIGKILL took {handover:?} (goal: under 15 s)");
}

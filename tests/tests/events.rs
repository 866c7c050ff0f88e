//! The deployment event log: what happened, by whom, filterable, paged, kept for the
//! retention period (also after delete) and then purged.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use skyport_control_plane::domain::{Actor, DesiredState, EventType, Id, Plan, Status, Tier};
use skyport_control_plane::events::{purge_once, Clock};
use skyport_control_plane::store::{self, Deployment, Event, EventFilter, Project, Store};
use skyport_tests::{postgres::TestDatabase, ControlPlane};

fn types(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_is_logged_with_actors_and_survives_delete() {
    let cp = ControlPlane::start();
    let (_, api) = cp.api.project_with_key("acme").await;
    let (_, other) = cp.api.project_with_key("other").await;
    let keys = cp
        .api
        .get(&format!(
            "/projects/{}/api-keys",
            api.get("/projects").await.body["items"][0]["id"]
                .as_str()
                .unwrap()
        ))
        .await;
    let key_actor = format!("api_key:{}", keys.body["items"][0]["id"].as_str().unwrap());

    let id = api.create_deployment("logged", "dedicated").await;
    api.wait_status(&id, "running").await;
    api.post(&format!("/deployments/{id}/stop"), json!({}))
        .await;
    api.wait_status(&id, "stopped").await;
    api.post(&format!("/deployments/{id}/start"), json!({}))
        .await;
    api.wait_status(&id, "running").await;
    let patched = api
        .call(
            Method::PATCH,
            &format!("/deployments/{id}"),
            Some(json!({"tier": {"max_sessions": 10, "max_tps": 10}})),
        )
        .await;
    assert_eq!(patched.status, 202);
    api.wait_status(&id, "running").await;

    let all = api
        .get(&format!("/deployments/{id}/events?limit=100"))
        .await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(
        types(&all.body),
        [
            "deployment.created",
            "deployment.provisioning",
            "deployment.running",
            "deployment.stopped",
            "deployment.started",
            "deployment.running",
            "deployment.tier_changed",
            "deployment.running",
        ]
    );
    let items = all.body["items"].as_array().unwrap();
    assert_eq!(
        items[0]["actor"],
        key_actor.as_str(),
        "a user's action names the key"
    );
    assert_eq!(
        items[1]["actor"], "system",
        "Skyport's own steps are by `system`"
    );
    assert_eq!(items[0]["details"]["plan"], "dedicated");
    assert_eq!(
        items[6]["details"]["to"]["tier"],
        json!({"max_sessions": 10, "max_tps": 10})
    );
    assert_eq!(items[6]["details"]["from"]["tier"]["max_sessions"], 1000);

    // Filters and paging.
    let running = api
        .get(&format!("/deployments/{id}/events?type=deployment.running"))
        .await;
    assert_eq!(types(&running.body), ["deployment.running"; 3]);
    let third: DateTime<Utc> = items[3]["time"].as_str().unwrap().parse().unwrap();
    let since = api
        .get(&format!(
            "/deployments/{id}/events?since={}",
            third
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .replace('+', "%2B")
        ))
        .await;
    assert_eq!(since.status, 200, "{}", since.text);
    assert!(types(&since.body).len() <= 5 && types(&since.body)[0] != "deployment.created");
    let until = api
        .get(&format!(
            "/deployments/{id}/events?until={}",
            third
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .replace('+', "%2B")
        ))
        .await;
    assert!(types(&until.body).len() <= 3);
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = api
            .get(&format!("/deployments/{id}/events?limit=3{cursor}"))
            .await;
        paged.extend(types(&page.body));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, types(&all.body));

    // Bad input.
    api.get(&format!("/deployments/{id}/events?cursor=nope"))
        .await
        .assert_problem(400, "invalid_cursor");
    api.get(&format!(
        "/deployments/{id}/events?type=deployment.exploded"
    ))
    .await
    .assert_problem(400, "invalid_type");
    api.get(&format!("/deployments/{id}/events?since=yesterday"))
        .await
        .assert_problem(400, "invalid_time");
    api.get(&format!(
        "/deployments/{id}/events?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z"
    ))
    .await
    .assert_problem(400, "invalid_range");
    other
        .get(&format!("/deployments/{id}/events"))
        .await
        .assert_problem(404, "not_found");

    // Deleted deployments keep their log for the retention period.
    api.call(Method::DELETE, &format!("/deployments/{id}"), None)
        .await;
    api.wait_gone(&id).await;
    let after = api
        .get(&format!("/deployments/{id}/events?limit=100"))
        .await;
    assert_eq!(after.status, 200);
    assert_eq!(
        types(&after.body).last().map(String::as_str),
        Some("deployment.deleted")
    );
    other
        .get(&format!("/deployments/{id}/events"))
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_is_logged_as_a_broker_restart() {
    let cp = ControlPlane::start();
    let (_, api) = cp.api.project_with_key("acme").await;
    let id = api.create_deployment("crashy", "dedicated").await;
    api.wait_status(&id, "running").await;
    let pid = cp.broker_processes()[0];
    skyport_tests::process::kill_and_wait(pid);
    let mut restarted = Value::Null;
    for _ in 0..300 {
        let page = api
            .get(&format!("/deployments/{id}/events?type=broker.restarted"))
            .await;
        if let Some(first) = page.body["items"].get(0) {
            restarted = first.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(restarted["actor"], "system");
    assert!(
        restarted["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("SIGKILL"),
        "{restarted}"
    );
}

struct FixedClock(DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

async fn purge_respects_retention(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    let project = Project {
        id: Id::new(),
        name: "p".into(),
        created_at: Utc::now(),
    };
    store.create_project(&project).await.unwrap();
    let now = Utc::now();
    let d = Deployment {
        id: Id::new(),
        project_id: project.id,
        name: "d".into(),
        plan: Plan::Dedicated,
        tier: Tier {
            max_sessions: 1,
            max_tps: 1,
        },
        version: "0.1".into(),
        desired_state: DesiredState::Running,
        status: Status::Provisioning,
        status_reason: None,
        generation: 1,
        observed_generation: 0,
        applied_revision: 0,
        endpoints: None,
        created_at: now,
        updated_at: now,
    };
    let created = Event::new(&d, EventType::DeploymentCreated, &Actor::System, json!({}));
    store.create_deployment(&d, &created).await.unwrap();
    let mut later = Event::new(&d, EventType::DeploymentRunning, &Actor::System, json!({}));
    later.created_at = now + chrono::Duration::days(3);
    store
        .patch_deployment(project.id, d.id, &Default::default(), &[later.clone()])
        .await
        .unwrap();
    let week = Duration::from_secs(7 * 24 * 3600);
    let listed = |store: Arc<dyn Store>| async move {
        store
            .list_events(project.id, d.id, &EventFilter::default(), None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect::<Vec<_>>()
    };

    // Six days on, nothing is old enough.
    assert_eq!(
        purge_once(
            store.as_ref(),
            &FixedClock(now + chrono::Duration::days(6)),
            week
        )
        .await
        .unwrap(),
        0
    );
    assert_eq!(listed(store.clone()).await.len(), 2);
    // Eight days on, only the first event is past seven days.
    assert_eq!(
        purge_once(
            store.as_ref(),
            &FixedClock(now + chrono::Duration::days(8)),
            week
        )
        .await
        .unwrap(),
        1
    );
    assert_eq!(listed(store.clone()).await, [EventType::DeploymentRunning]);
    // A shorter retention is honoured too.
    assert_eq!(
        purge_once(
            store.as_ref(),
            &FixedClock(now + chrono::Duration::days(8)),
            Duration::from_secs(3600)
        )
        .await
        .unwrap(),
        1
    );
    assert!(listed(store.clone()).await.is_empty());
}

#[tokio::test]
async fn purge_with_an_injected_clock_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("events.db").display());
    purge_respects_retention(store::connect(&url).await.unwrap()).await;
}

#[tokio::test]
async fn purge_with_an_injected_clock_postgres() {
    let db = TestDatabase::create();
    purge_respects_retention(store::connect(&db.url).await.unwrap()).await;
}

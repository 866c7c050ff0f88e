//! The `Store` contract, checked against both backends.
//!
//! Every scenario is one `async fn(Arc<dyn Store>)`; `both!` turns it into a module with a
//! `sqlite` test (a file in a temp dir) and a `postgres` test (a fresh database from
//! [`TestDatabase`], which panics rather than skips when PostgreSQL is unreachable).

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, DurationRound, TimeDelta, TimeZone, Utc};
use serde_json::json;
use skyport_control_plane::domain::tls::CertificateDetails;
use skyport_control_plane::domain::{
    Actor, DesiredState, Endpoints, EventType, Id, Plan, Role, Status, Tier,
};
use skyport_control_plane::store::{
    self, ApiKey, AppKeyRecord, CaRecord, Deployment, DeploymentPatch, Event, EventFilter, Project,
    SessionRecord, StatusUpdate, Store, StoreError, TlsRecord, UserRecord,
};
use skyport_settings::security::{
    Authentication, Authorization, Decision, HttpMethod, HttpSource, Source, TlsType,
};
use skyport_tests::postgres::TestDatabase;

/// A store on a SQLite file in a fresh temp dir, migrated.
async fn sqlite_store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::Builder::new()
        .prefix("skyport-store-")
        .tempdir()
        .expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = store::connect(&url).await.expect("connect to SQLite");
    store.migrate().await.expect("migrate SQLite");
    (dir, store)
}

/// A store on a fresh PostgreSQL database, migrated.
async fn postgres_store() -> (TestDatabase, Arc<dyn Store>) {
    let db = TestDatabase::create();
    let store = store::connect(&db.url)
        .await
        .expect("connect to PostgreSQL");
    store.migrate().await.expect("migrate PostgreSQL");
    (db, store)
}

/// Generates `name::sqlite` and `name::postgres` tests running `async fn name(store)`.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn sqlite() {
                let (_dir, store) = super::sqlite_store().await;
                super::$name(store).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn postgres() {
                let (_db, store) = super::postgres_store().await;
                super::$name(store).await;
            }
        }
    )*};
}

both!(
    migrate_is_idempotent,
    migrate_down_to_a_target_keeps_older_tables,
    projects,
    api_keys,
    deployments_create_get_list,
    duplicate_deployment_name_conflicts,
    patch_deployment_bumps_generation,
    update_status_checks_generation,
    delete_deployment_checks_generation,
    events_list_filter_purge,
    certificate_authority,
    security_app_keys,
    security_chains,
    security_tls,
    security_goes_with_its_deployment,
    people,
    ports_are_unique_per_host,
    revisions_follow_writes,
    deployment_quota,
    idempotency_keys,
    internal_endpoint_address,
    alerts_change_by_compare_and_set,
);

// ---------------------------------------------------------------------------------------
// Builders and checks

/// Now, at the microsecond precision both backends keep, so values compare exactly.
fn now() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(TimeDelta::microseconds(1))
        .expect("truncate to microseconds")
}

/// A fixed instant with a sub-second part, far from now.
fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap() + TimeDelta::microseconds(123_456)
}

fn project(name: &str) -> Project {
    Project {
        id: Id::new(),
        name: name.to_owned(),
        created_at: now(),
    }
}

fn api_key(project_id: Id, name: &str) -> ApiKey {
    ApiKey {
        id: Id::new(),
        project_id,
        name: name.to_owned(),
        prefix: format!("sk_{name}"),
        role: Role::Owner,
        created_at: now(),
        last_used_at: None,
    }
}

fn deployment(project_id: Id, name: &str) -> Deployment {
    let created = base_time();
    Deployment {
        id: Id::new(),
        project_id,
        name: name.to_owned(),
        plan: Plan::Dedicated,
        tier: Tier {
            max_sessions: 1_000,
            max_tps: 250,
        },
        version: "5.8.0".to_owned(),
        desired_state: DesiredState::Running,
        status: Status::Provisioning,
        status_reason: Some("waiting for a broker".to_owned()),
        generation: 1,
        observed_generation: 0,
        applied_revision: 0,
        endpoints: None,
        created_at: created,
        updated_at: created + TimeDelta::milliseconds(1),
    }
}

fn endpoints(port: u16) -> Endpoints {
    Endpoints {
        host: "broker.example.test".to_owned(),
        mqtt: Some(format!("mqtt://broker.example.test:{port}")),
        mqtts: Some(format!("mqtts://broker.example.test:{}", port + 1)),
        ws: None,
        wss: Some(format!("wss://broker.example.test:{}/mqtt", port + 2)),
        api: format!("http://broker.example.test:{}", port + 3),
    }
}

/// An event about `d` at `at` (microsecond precision).
fn event(d: &Deployment, kind: EventType, at: DateTime<Utc>) -> Event {
    let mut e = Event::new(
        d,
        kind,
        &Actor::ApiKey(Id::new()),
        json!({ "kind": kind.as_str(), "nested": { "n": 1, "list": [1, "two", null] } }),
    );
    e.created_at = at;
    e
}

/// Records without `PartialEq` compare through their complete `Debug` rendering, which
/// shows every field (timestamps at full precision).
macro_rules! assert_same {
    ($got:expr, $want:expr $(,)?) => {
        assert_eq!(format!("{:#?}", $got), format!("{:#?}", $want))
    };
    ($got:expr, $want:expr, $($msg:tt)+) => {
        assert_eq!(format!("{:#?}", $got), format!("{:#?}", $want), $($msg)+)
    };
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::NotFound) => {}
        other => panic!("expected StoreError::NotFound, got {other:?}"),
    }
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected StoreError::Conflict, got {other:?}"),
    }
}

#[track_caller]
fn assert_stale<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::Stale) => {}
        other => panic!("expected StoreError::Stale, got {other:?}"),
    }
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> Id) -> Vec<Id> {
    items.iter().map(id).collect()
}

async fn all_events(store: &Arc<dyn Store>, d: &Deployment) -> Vec<Event> {
    store
        .list_events(d.project_id, d.id, &EventFilter::default(), None, 1_000)
        .await
        .expect("list events")
}

// ---------------------------------------------------------------------------------------
// Scenarios

async fn migrate_is_idempotent(store: Arc<dyn Store>) {
    let p = project("kept");
    store.create_project(&p).await.unwrap();
    store.migrate().await.expect("second migrate is a no-op");
    assert_same!(store.get_project(p.id).await.unwrap(), p);
}

async fn migrate_down_to_a_target_keeps_older_tables(store: Arc<dyn Store>) {
    // 20261129000001 is the initial schema; everything newer (the event log) is reverted.
    let p = project("survivor");
    store.create_project(&p).await.unwrap();
    store
        .migrate_down(20261129000001)
        .await
        .expect("migrate down");
    assert_same!(store.get_project(p.id).await.unwrap(), p);
    let d = deployment(p.id, "d");
    assert!(
        store
            .list_events(p.id, d.id, &EventFilter::default(), None, 10)
            .await
            .is_err(),
        "the event table is gone"
    );
    store.migrate().await.expect("migrate up again");
    assert_eq!(all_events(&store, &d).await, vec![]);
    store
        .create_deployment(&d, &event(&d, EventType::DeploymentCreated, now()))
        .await
        .expect("the re-applied schema works");
    assert_eq!(all_events(&store, &d).await.len(), 1);
}

async fn projects(store: Arc<dyn Store>) {
    assert!(store.list_projects(None, 10).await.unwrap().is_empty());
    assert_not_found(store.get_project(Id::new()).await);

    let mut created = Vec::new();
    for i in 0..5 {
        let p = project(&format!("project-{i}"));
        store.create_project(&p).await.unwrap();
        created.push(p);
    }
    created.sort_by_key(|p| p.id);

    for p in &created {
        assert_same!(store.get_project(p.id).await.unwrap(), p);
    }
    assert_same!(store.list_projects(None, 100).await.unwrap(), created);

    // Cursor paging: pages of 2, 2, 1, then nothing.
    let mut paged = Vec::new();
    let mut after = None;
    let mut sizes = Vec::new();
    loop {
        let page = store.list_projects(after, 2).await.unwrap();
        sizes.push(page.len());
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        paged.extend(page);
    }
    assert_eq!(sizes, vec![2, 2, 1, 0]);
    assert_same!(paged, created);
    assert_same!(
        store.list_projects(Some(created[1].id), 2).await.unwrap(),
        &created[2..4]
    );
    assert!(store
        .list_projects(Some(created[4].id), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store.list_projects(None, 0).await.unwrap().is_empty());

    // A duplicate name is refused, and nothing is written.
    let dup = project("project-3");
    assert_conflict(store.create_project(&dup).await);
    assert_not_found(store.get_project(dup.id).await);
    assert_eq!(store.list_projects(None, 100).await.unwrap().len(), 5);
    // So is a duplicate id.
    let mut same_id = project("another-name");
    same_id.id = created[0].id;
    assert_conflict(store.create_project(&same_id).await);
    assert_same!(store.get_project(created[0].id).await.unwrap(), created[0]);

    // Timestamps keep at least microsecond precision (PostgreSQL's resolution).
    let precise = Project {
        id: Id::new(),
        name: "precise".to_owned(),
        created_at: Utc::now(),
    };
    store.create_project(&precise).await.unwrap();
    let got = store.get_project(precise.id).await.unwrap();
    assert!(
        (got.created_at - precise.created_at).abs() < TimeDelta::microseconds(1),
        "stored {} read back as {}",
        precise.created_at,
        got.created_at
    );
}

async fn api_keys(store: Arc<dyn Store>) {
    let a = project("a");
    let b = project("b");
    store.create_project(&a).await.unwrap();
    store.create_project(&b).await.unwrap();
    assert!(store.list_api_keys(a.id).await.unwrap().is_empty());

    let mut a_keys = vec![api_key(a.id, "one"), api_key(a.id, "two")];
    let b_key = api_key(b.id, "three");
    store.create_api_key(&a_keys[0], "hash-one").await.unwrap();
    store.create_api_key(&a_keys[1], "hash-two").await.unwrap();
    store.create_api_key(&b_key, "hash-three").await.unwrap();
    a_keys.sort_by_key(|k| k.id);

    assert_same!(store.list_api_keys(a.id).await.unwrap(), a_keys);
    assert_same!(
        store.list_api_keys(b.id).await.unwrap(),
        std::slice::from_ref(&b_key)
    );
    assert!(store.list_api_keys(Id::new()).await.unwrap().is_empty());

    let one = a_keys.iter().find(|k| k.name == "one").unwrap().clone();
    let two = a_keys.iter().find(|k| k.name == "two").unwrap().clone();
    assert_same!(
        store.find_api_key("hash-one").await.unwrap(),
        Some(one.clone())
    );
    assert_same!(
        store.find_api_key("hash-three").await.unwrap(),
        Some(b_key.clone())
    );
    assert!(store.find_api_key("no-such-hash").await.unwrap().is_none());
    assert!(store.find_api_key("").await.unwrap().is_none());

    // Secret hashes are unique.
    let clash = api_key(a.id, "clash");
    assert_conflict(store.create_api_key(&clash, "hash-two").await);
    assert_eq!(store.list_api_keys(a.id).await.unwrap().len(), 2);
    // Keys belong to an existing project.
    assert!(store
        .create_api_key(&api_key(Id::new(), "orphan"), "hash-orphan")
        .await
        .is_err());
    assert!(store.find_api_key("hash-orphan").await.unwrap().is_none());

    // Deleting: unknown key, and another project's key, are NotFound and delete nothing.
    assert_not_found(store.delete_api_key(a.id, Id::new()).await);
    assert_not_found(store.delete_api_key(a.id, b_key.id).await);
    assert_same!(
        store.list_api_keys(b.id).await.unwrap(),
        std::slice::from_ref(&b_key)
    );
    assert!(store.find_api_key("hash-three").await.unwrap().is_some());
    assert_eq!(store.list_api_keys(a.id).await.unwrap().len(), 2);

    store.delete_api_key(a.id, one.id).await.unwrap();
    assert_same!(store.list_api_keys(a.id).await.unwrap(), [two]);
    assert!(store.find_api_key("hash-one").await.unwrap().is_none());
    assert_not_found(store.delete_api_key(a.id, one.id).await);
    assert_same!(store.list_api_keys(b.id).await.unwrap(), [b_key]);
}

async fn deployments_create_get_list(store: Arc<dyn Store>) {
    let a = project("a");
    let b = project("b");
    store.create_project(&a).await.unwrap();
    store.create_project(&b).await.unwrap();
    assert!(store.all_deployments().await.unwrap().is_empty());
    assert!(store
        .list_deployments(a.id, None, 10)
        .await
        .unwrap()
        .is_empty());

    // Every field round-trips, including endpoints and a reason.
    let mut first = deployment(a.id, "first");
    first.plan = Plan::Premium;
    first.tier = Tier {
        max_sessions: 5_000,
        max_tps: 4_321,
    };
    first.desired_state = DesiredState::Stopped;
    first.status = Status::Failed;
    first.status_reason = Some("broker exited with status 1".to_owned());
    first.generation = 7;
    first.observed_generation = 6;
    first.endpoints = Some(endpoints(18830));
    let created_event = event(&first, EventType::DeploymentCreated, now());
    store
        .create_deployment(&first, &created_event)
        .await
        .unwrap();
    assert_same!(store.get_deployment(a.id, first.id).await.unwrap(), first);
    assert_eq!(all_events(&store, &first).await, vec![created_event]);

    // Scoped to its project.
    assert_not_found(store.get_deployment(b.id, first.id).await);
    assert_not_found(store.get_deployment(a.id, Id::new()).await);

    let mut in_a = vec![first.clone()];
    for i in 0..4 {
        let mut d = deployment(a.id, &format!("a-{i}"));
        d.plan = [Plan::Serverless, Plan::Dedicated][i % 2];
        store
            .create_deployment(&d, &event(&d, EventType::DeploymentCreated, now()))
            .await
            .unwrap();
        in_a.push(d);
    }
    let in_b = deployment(b.id, "b-0");
    store
        .create_deployment(&in_b, &event(&in_b, EventType::DeploymentCreated, now()))
        .await
        .unwrap();
    in_a.sort_by_key(|d| d.id);

    assert_same!(store.list_deployments(a.id, None, 100).await.unwrap(), in_a);
    assert_same!(
        store.list_deployments(b.id, None, 100).await.unwrap(),
        std::slice::from_ref(&in_b)
    );
    assert!(store
        .list_deployments(Id::new(), None, 100)
        .await
        .unwrap()
        .is_empty());

    // Cursor paging over project a: 2, 2, 1, then nothing.
    let mut paged = Vec::new();
    let mut sizes = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_deployments(a.id, after, 2).await.unwrap();
        sizes.push(page.len());
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        paged.extend(page);
    }
    assert_eq!(sizes, vec![2, 2, 1, 0]);
    assert_same!(paged, in_a);
    assert_same!(
        store
            .list_deployments(a.id, Some(in_a[0].id), 3)
            .await
            .unwrap(),
        &in_a[1..4]
    );
    // A cursor from another project does not leak that project's rows.
    let after_b = store
        .list_deployments(b.id, Some(in_a[0].id), 100)
        .await
        .unwrap();
    assert!(after_b.iter().all(|d| d.project_id == b.id));

    let mut everything = in_a.clone();
    everything.push(in_b);
    everything.sort_by_key(|d| d.id);
    let all = store.all_deployments().await.unwrap();
    assert_eq!(ids(&all, |d| d.id), ids(&everything, |d| d.id));
    assert_same!(all, everything);

    // Deployments belong to an existing project.
    let orphan = deployment(Id::new(), "orphan");
    assert!(store
        .create_deployment(
            &orphan,
            &event(&orphan, EventType::DeploymentCreated, now())
        )
        .await
        .is_err());
    assert_eq!(store.all_deployments().await.unwrap().len(), 6);
}

async fn duplicate_deployment_name_conflicts(store: Arc<dyn Store>) {
    let a = project("a");
    let b = project("b");
    store.create_project(&a).await.unwrap();
    store.create_project(&b).await.unwrap();

    let original = deployment(a.id, "web");
    store
        .create_deployment(
            &original,
            &event(&original, EventType::DeploymentCreated, now()),
        )
        .await
        .unwrap();

    let mut dup = deployment(a.id, "web");
    dup.plan = Plan::Serverless;
    dup.version = "9.9.9".to_owned();
    dup.endpoints = Some(endpoints(1));
    let dup_event = event(&dup, EventType::DeploymentCreated, now());
    assert_conflict(store.create_deployment(&dup, &dup_event).await);

    // The first row is unchanged, the second was not written, nor was its event.
    assert_same!(
        store.get_deployment(a.id, original.id).await.unwrap(),
        original
    );
    assert_not_found(store.get_deployment(a.id, dup.id).await);
    assert_same!(
        store.all_deployments().await.unwrap(),
        std::slice::from_ref(&original)
    );
    assert_eq!(all_events(&store, &dup).await, vec![]);

    // A duplicate id is refused the same way.
    let mut same_id = deployment(a.id, "other");
    same_id.id = original.id;
    assert_conflict(
        store
            .create_deployment(
                &same_id,
                &event(&same_id, EventType::DeploymentCreated, now()),
            )
            .await,
    );
    assert_same!(
        store.get_deployment(a.id, original.id).await.unwrap(),
        original
    );

    // The same name in another project is fine.
    let elsewhere = deployment(b.id, "web");
    store
        .create_deployment(
            &elsewhere,
            &event(&elsewhere, EventType::DeploymentCreated, now()),
        )
        .await
        .unwrap();
    assert_same!(
        store.get_deployment(b.id, elsewhere.id).await.unwrap(),
        elsewhere
    );
    assert_eq!(store.all_deployments().await.unwrap().len(), 2);
}

async fn patch_deployment_bumps_generation(store: Arc<dyn Store>) {
    let a = project("a");
    let b = project("b");
    store.create_project(&a).await.unwrap();
    store.create_project(&b).await.unwrap();
    let mut d = deployment(a.id, "patched");
    d.status = Status::Running;
    d.status_reason = Some("healthy".to_owned());
    d.observed_generation = 1;
    d.endpoints = Some(endpoints(1883));
    let created = event(&d, EventType::DeploymentCreated, now());
    store.create_deployment(&d, &created).await.unwrap();
    let mut expected_events = vec![created];

    // Only the version changes; the status and its reason stay.
    let before = now();
    let tier_event = event(&d, EventType::DeploymentTierChanged, now());
    let got = store
        .patch_deployment(
            a.id,
            d.id,
            &DeploymentPatch {
                version: Some("5.9.1".to_owned()),
                ..Default::default()
            },
            std::slice::from_ref(&tier_event),
        )
        .await
        .unwrap();
    expected_events.push(tier_event);
    assert_eq!(got.generation, 2);
    assert!(got.updated_at >= before, "updated_at moves forward");
    let mut want = d.clone();
    want.version = "5.9.1".to_owned();
    want.generation = 2;
    want.updated_at = got.updated_at;
    assert_same!(got, want);
    assert_same!(store.get_deployment(a.id, d.id).await.unwrap(), want);

    // An empty patch still bumps the generation by exactly one.
    let got = store
        .patch_deployment(a.id, d.id, &DeploymentPatch::default(), &[])
        .await
        .unwrap();
    want.generation = 3;
    want.updated_at = got.updated_at;
    assert_same!(got, want);

    // Several fields at once, with a status: the reason is cleared.
    let stop = event(&d, EventType::DeploymentStopped, now());
    let got = store
        .patch_deployment(
            a.id,
            d.id,
            &DeploymentPatch {
                name: Some("renamed".to_owned()),
                plan: Some(Plan::Premium),
                tier: Some(Tier {
                    max_sessions: 42,
                    max_tps: 7,
                }),
                version: None,
                desired_state: Some(DesiredState::Stopped),
                status: Some(Status::Stopping),
            },
            std::slice::from_ref(&stop),
        )
        .await
        .unwrap();
    expected_events.push(stop);
    want.name = "renamed".to_owned();
    want.plan = Plan::Premium;
    want.tier = Tier {
        max_sessions: 42,
        max_tps: 7,
    };
    want.desired_state = DesiredState::Stopped;
    want.status = Status::Stopping;
    want.status_reason = None;
    want.generation = 4;
    want.updated_at = got.updated_at;
    assert_same!(got, want);
    assert_same!(store.get_deployment(a.id, d.id).await.unwrap(), want);
    assert_eq!(got.created_at, d.created_at);
    assert_eq!(
        got.observed_generation, 1,
        "observed generation is the reconciler's"
    );
    assert_eq!(got.endpoints, Some(endpoints(1883)));

    // Another project's deployment, or an unknown one: NotFound, nothing written.
    let ghost = event(&d, EventType::DeploymentStarted, now());
    assert_not_found(
        store
            .patch_deployment(
                b.id,
                d.id,
                &DeploymentPatch {
                    desired_state: Some(DesiredState::Running),
                    ..Default::default()
                },
                std::slice::from_ref(&ghost),
            )
            .await,
    );
    assert_not_found(
        store
            .patch_deployment(a.id, Id::new(), &DeploymentPatch::default(), &[])
            .await,
    );
    assert_same!(store.get_deployment(a.id, d.id).await.unwrap(), want);

    // Renaming onto a sibling's name conflicts; the generation is not bumped.
    let sibling = deployment(a.id, "sibling");
    let sibling_created = event(&sibling, EventType::DeploymentCreated, now());
    store
        .create_deployment(&sibling, &sibling_created)
        .await
        .unwrap();
    let rename_event = event(&d, EventType::DeploymentTierChanged, now());
    assert_conflict(
        store
            .patch_deployment(
                a.id,
                d.id,
                &DeploymentPatch {
                    name: Some("sibling".to_owned()),
                    ..Default::default()
                },
                std::slice::from_ref(&rename_event),
            )
            .await,
    );
    assert_same!(store.get_deployment(a.id, d.id).await.unwrap(), want);

    let mut stored = all_events(&store, &d).await;
    stored.sort_by_key(|e| e.id);
    expected_events.sort_by_key(|e| e.id);
    assert_eq!(
        stored, expected_events,
        "events of failed patches are not written"
    );
    assert_eq!(all_events(&store, &sibling).await, vec![sibling_created]);
}

async fn update_status_checks_generation(store: Arc<dyn Store>) {
    let a = project("a");
    store.create_project(&a).await.unwrap();
    let d = deployment(a.id, "observed");
    let created = event(&d, EventType::DeploymentCreated, now());
    store.create_deployment(&d, &created).await.unwrap();

    let before = now();
    let running = event(&d, EventType::DeploymentRunning, now());
    let update = StatusUpdate {
        status: Status::Running,
        reason: Some("all listeners up".to_owned()),
        observed_generation: 1,
        applied_revision: 0,
        endpoints: Some(endpoints(2883)),
    };
    store
        .update_status(d.id, 1, &update, std::slice::from_ref(&running))
        .await
        .unwrap();
    let got = store.get_deployment(a.id, d.id).await.unwrap();
    let mut want = d.clone();
    want.status = Status::Running;
    want.status_reason = Some("all listeners up".to_owned());
    want.observed_generation = 1;
    want.endpoints = Some(endpoints(2883));
    want.updated_at = got.updated_at;
    assert!(got.updated_at >= before);
    assert_same!(got, want);
    assert_eq!(
        got.generation, 1,
        "status updates leave the generation alone"
    );
    assert_eq!(
        all_events(&store, &d).await,
        vec![created.clone(), running.clone()]
    );

    // The spec moves on; a status computed for generation 1 is now stale.
    let patched = store
        .patch_deployment(
            a.id,
            d.id,
            &DeploymentPatch {
                version: Some("6.0.0".to_owned()),
                ..Default::default()
            },
            &[],
        )
        .await
        .unwrap();
    assert_eq!(patched.generation, 2);
    let failed = event(&d, EventType::DeploymentFailed, now());
    assert_stale(
        store
            .update_status(
                d.id,
                1,
                &StatusUpdate {
                    status: Status::Failed,
                    reason: Some("late news".to_owned()),
                    observed_generation: 1,
                    applied_revision: 0,
                    endpoints: None,
                },
                std::slice::from_ref(&failed),
            )
            .await,
    );
    assert_same!(store.get_deployment(a.id, d.id).await.unwrap(), patched);
    assert_eq!(
        all_events(&store, &d).await,
        vec![created.clone(), running.clone()]
    );
    // An unknown deployment is stale too.
    assert_stale(store.update_status(Id::new(), 1, &update, &[]).await);

    // With the current generation: no reason and no endpoints clear both.
    store
        .update_status(
            d.id,
            2,
            &StatusUpdate {
                status: Status::Stopped,
                reason: None,
                observed_generation: 2,
                applied_revision: 0,
                endpoints: None,
            },
            &[],
        )
        .await
        .unwrap();
    let got = store.get_deployment(a.id, d.id).await.unwrap();
    assert_eq!(got.status, Status::Stopped);
    assert_eq!(got.status_reason, None);
    assert_eq!(got.observed_generation, 2);
    assert_eq!(got.endpoints, None);
    assert_eq!(got.generation, 2);
    assert_eq!(got.version, "6.0.0");
    assert_eq!(all_events(&store, &d).await, vec![created, running]);
}

async fn delete_deployment_checks_generation(store: Arc<dyn Store>) {
    let a = project("a");
    store.create_project(&a).await.unwrap();
    let d = deployment(a.id, "doomed");
    let keep = deployment(a.id, "kept");
    let created = event(&d, EventType::DeploymentCreated, now());
    store.create_deployment(&d, &created).await.unwrap();
    store
        .create_deployment(&keep, &event(&keep, EventType::DeploymentCreated, now()))
        .await
        .unwrap();
    let deleting = store
        .patch_deployment(
            a.id,
            d.id,
            &DeploymentPatch {
                desired_state: Some(DesiredState::Stopped),
                status: Some(Status::Deleting),
                ..Default::default()
            },
            &[],
        )
        .await
        .unwrap();
    assert_eq!(deleting.generation, 2);

    let deleted = event(&d, EventType::DeploymentDeleted, now());
    assert_stale(
        store
            .delete_deployment(d.id, 1, std::slice::from_ref(&deleted))
            .await,
    );
    assert_same!(store.get_deployment(a.id, d.id).await.unwrap(), deleting);
    assert_eq!(all_events(&store, &d).await, vec![created.clone()]);
    assert_stale(store.delete_deployment(Id::new(), 1, &[]).await);

    store
        .delete_deployment(d.id, 2, std::slice::from_ref(&deleted))
        .await
        .unwrap();
    assert_not_found(store.get_deployment(a.id, d.id).await);
    assert_same!(
        store.all_deployments().await.unwrap(),
        std::slice::from_ref(&keep)
    );
    assert_same!(
        store.list_deployments(a.id, None, 10).await.unwrap(),
        [keep]
    );
    // The event log outlives the deployment.
    assert_eq!(all_events(&store, &d).await, vec![created, deleted]);
    assert_stale(store.delete_deployment(d.id, 2, &[]).await);

    // The name is free again.
    let again = deployment(a.id, "doomed");
    store
        .create_deployment(&again, &event(&again, EventType::DeploymentCreated, now()))
        .await
        .unwrap();
    assert_same!(store.get_deployment(a.id, again.id).await.unwrap(), again);
}

async fn events_list_filter_purge(store: Arc<dyn Store>) {
    let a = project("a");
    let b = project("b");
    store.create_project(&a).await.unwrap();
    store.create_project(&b).await.unwrap();
    let d = deployment(a.id, "chatty");
    let other = deployment(a.id, "quiet");
    let t = base_time();

    let e0 = event(&d, EventType::DeploymentCreated, t);
    store.create_deployment(&d, &e0).await.unwrap();
    let other_created = event(&other, EventType::DeploymentCreated, t);
    store
        .create_deployment(&other, &other_created)
        .await
        .unwrap();

    let e1 = event(
        &d,
        EventType::DeploymentProvisioning,
        t + TimeDelta::seconds(1),
    );
    let e2 = event(
        &d,
        EventType::DeploymentRunning,
        t + TimeDelta::milliseconds(1_500),
    );
    store
        .update_status(
            d.id,
            1,
            &StatusUpdate {
                status: Status::Running,
                reason: None,
                observed_generation: 1,
                applied_revision: 0,
                endpoints: None,
            },
            &[e1.clone(), e2.clone()],
        )
        .await
        .unwrap();
    let e3 = event(&d, EventType::DeploymentStopped, t + TimeDelta::seconds(2));
    let e4 = event(&d, EventType::DeploymentRunning, t + TimeDelta::seconds(3));
    store
        .patch_deployment(
            a.id,
            d.id,
            &DeploymentPatch::default(),
            &[e3.clone(), e4.clone()],
        )
        .await
        .unwrap();

    let mut expected = vec![e0, e1, e2, e3, e4];
    expected.sort_by_key(|e| e.id);
    assert_eq!(all_events(&store, &d).await, expected);
    assert_eq!(
        all_events(&store, &other).await,
        vec![other_created.clone()]
    );
    // Scoped to the project.
    assert!(store
        .list_events(b.id, d.id, &EventFilter::default(), None, 100)
        .await
        .unwrap()
        .is_empty());

    // Paging.
    let none = EventFilter::default();
    let page1 = store.list_events(a.id, d.id, &none, None, 2).await.unwrap();
    let page2 = store
        .list_events(a.id, d.id, &none, Some(page1[1].id), 2)
        .await
        .unwrap();
    let page3 = store
        .list_events(a.id, d.id, &none, Some(page2[1].id), 2)
        .await
        .unwrap();
    assert_eq!(page1, expected[0..2]);
    assert_eq!(page2, expected[2..4]);
    assert_eq!(page3, expected[4..]);

    // Filters: kind; since inclusive; until exclusive.
    let by_time = |from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>| {
        let mut want: Vec<Event> = expected
            .iter()
            .filter(|e| from.is_none_or(|f| e.created_at >= f))
            .filter(|e| to.is_none_or(|u| e.created_at < u))
            .cloned()
            .collect();
        want.sort_by_key(|e| e.id);
        want
    };
    let running = store
        .list_events(
            a.id,
            d.id,
            &EventFilter {
                kind: Some(EventType::DeploymentRunning),
                ..Default::default()
            },
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(running.len(), 2);
    assert!(running
        .iter()
        .all(|e| e.kind == EventType::DeploymentRunning));
    let since = t + TimeDelta::milliseconds(1_500);
    let until = t + TimeDelta::seconds(3);
    let windowed = store
        .list_events(
            a.id,
            d.id,
            &EventFilter {
                kind: None,
                since: Some(since),
                until: Some(until),
            },
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(windowed, by_time(Some(since), Some(until)));
    assert_eq!(
        windowed.len(),
        2,
        "1.5 s (inclusive) and 2 s; 3 s is excluded"
    );
    let since_sub_second = store
        .list_events(
            a.id,
            d.id,
            &EventFilter {
                since: Some(t + TimeDelta::milliseconds(1_200)),
                ..Default::default()
            },
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        since_sub_second,
        by_time(Some(t + TimeDelta::milliseconds(1_200)), None)
    );
    assert_eq!(since_sub_second.len(), 3);

    // Purge: strictly older than the bound, across deployments.
    let purged = store
        .purge_events(t + TimeDelta::milliseconds(1_500))
        .await
        .unwrap();
    assert_eq!(purged, 3, "e0, e1 and the other deployment's creation");
    assert_eq!(
        all_events(&store, &d).await,
        by_time(Some(t + TimeDelta::milliseconds(1_500)), None)
    );
    assert!(all_events(&store, &other).await.is_empty());
    assert_eq!(store.purge_events(t).await.unwrap(), 0);
    assert_eq!(store.purge_events(now()).await.unwrap(), 3);
    assert!(all_events(&store, &d).await.is_empty());

    // Bounds at a whole second against times with a fraction of a second (SQLite keeps
    // timestamps as text, where these render with different lengths).
    let w = Utc.with_ymd_and_hms(2026, 3, 4, 5, 7, 0).unwrap();
    let w0 = event(&d, EventType::BrokerRestarted, w);
    let w1 = event(
        &d,
        EventType::BrokerRestarted,
        w + TimeDelta::milliseconds(1),
    );
    let w2 = event(
        &d,
        EventType::BrokerRestarted,
        w + TimeDelta::microseconds(1),
    );
    let w3 = event(
        &d,
        EventType::BrokerRestarted,
        w - TimeDelta::microseconds(1),
    );
    store
        .patch_deployment(
            a.id,
            d.id,
            &DeploymentPatch::default(),
            &[w0.clone(), w1.clone(), w2.clone(), w3.clone()],
        )
        .await
        .unwrap();
    let window = |since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>| {
        let store = store.clone();
        async move {
            store
                .list_events(
                    a.id,
                    d.id,
                    &EventFilter {
                        kind: None,
                        since,
                        until,
                    },
                    None,
                    100,
                )
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect::<BTreeSet<Id>>()
        }
    };
    assert_eq!(
        window(Some(w), None).await,
        BTreeSet::from([w0.id, w1.id, w2.id])
    );
    assert_eq!(window(None, Some(w)).await, BTreeSet::from([w3.id]));
    assert_eq!(
        window(Some(w), Some(w + TimeDelta::microseconds(1))).await,
        BTreeSet::from([w0.id])
    );
    assert_eq!(
        window(
            Some(w + TimeDelta::microseconds(1)),
            Some(w + TimeDelta::milliseconds(1))
        )
        .await,
        BTreeSet::from([w2.id])
    );
    assert_eq!(
        window(
            Some(w - TimeDelta::milliseconds(1)),
            Some(w + TimeDelta::seconds(1))
        )
        .await
        .len(),
        4
    );
    assert_eq!(
        store
            .purge_events(w + TimeDelta::microseconds(1))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        ids(&all_events(&store, &d).await, |e| e.id)
            .into_iter()
            .collect::<BTreeSet<Id>>(),
        BTreeSet::from([w1.id, w2.id])
    );
}

async fn certificate_authority(store: Arc<dyn Store>) {
    assert!(store.load_ca().await.unwrap().is_none());
    let ca = CaRecord {
        cert_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_owned(),
        key_sealed: "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n".to_owned(),
    };
    store.insert_ca(&ca).await.unwrap();
    let loaded = store.load_ca().await.unwrap().expect("a CA after insert");
    assert_eq!(loaded.cert_pem, ca.cert_pem);
    assert_eq!(loaded.key_sealed, ca.key_sealed);

    let second = CaRecord {
        cert_pem: "other cert".to_owned(),
        key_sealed: "other key".to_owned(),
    };
    assert_conflict(store.insert_ca(&second).await);
    let loaded = store.load_ca().await.unwrap().expect("still the first CA");
    assert_eq!(loaded.cert_pem, ca.cert_pem);
    assert_eq!(loaded.key_sealed, ca.key_sealed);
}

// ---------------------------------------------------------------------------------------
// Broker security

/// A project with one stored deployment.
async fn seeded(store: &Arc<dyn Store>, name: &str) -> Deployment {
    let p = project(name);
    store.create_project(&p).await.unwrap();
    let d = deployment(p.id, "secured");
    store
        .create_deployment(&d, &event(&d, EventType::DeploymentCreated, now()))
        .await
        .unwrap();
    d
}

async fn generation_of(store: &Arc<dyn Store>, d: &Deployment) -> i64 {
    store
        .get_deployment(d.project_id, d.id)
        .await
        .unwrap()
        .generation
}

fn app_key(d: &Deployment, name: &str) -> AppKeyRecord {
    AppKeyRecord {
        app_id: Id::new(),
        deployment_id: d.id,
        name: name.to_owned(),
        created_at: now(),
        console_session: None,
        read_only: false,
    }
}

async fn security_app_keys(store: Arc<dyn Store>) {
    let d = seeded(&store, "keys").await;
    let other = seeded(&store, "other-keys").await;
    assert!(store
        .list_app_keys(d.id, None, 10)
        .await
        .unwrap()
        .is_empty());

    let a = app_key(&d, "a");
    let b = app_key(&d, "b");
    // A read-only key (a console viewer's) keeps that through the store to the broker.
    let c = AppKeyRecord {
        read_only: true,
        ..app_key(&d, "c")
    };
    for (k, hash) in [(&a, "aa"), (&b, "bb"), (&c, "cc")] {
        store.create_app_key(d.project_id, k, hash).await.unwrap();
    }
    assert_eq!(
        generation_of(&store, &d).await,
        4,
        "each key bumps the generation"
    );
    assert_eq!(
        store.list_app_keys(d.id, None, 10).await.unwrap(),
        vec![a.clone(), b.clone(), c.clone()]
    );
    assert_eq!(
        store.list_app_keys(d.id, None, 2).await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(
        store.list_app_keys(d.id, Some(b.app_id), 2).await.unwrap(),
        vec![c.clone()]
    );
    assert!(store
        .list_app_keys(other.id, None, 10)
        .await
        .unwrap()
        .is_empty());

    // The secret hash is unique, and a key needs a deployment of the project.
    assert_conflict(
        store
            .create_app_key(d.project_id, &app_key(&d, "dup"), "aa")
            .await,
    );
    assert_not_found(
        store
            .create_app_key(other.project_id, &app_key(&d, "x"), "xx")
            .await,
    );
    assert_eq!(
        generation_of(&store, &d).await,
        4,
        "refused writes bump nothing"
    );
    assert_eq!(store.list_app_keys(d.id, None, 10).await.unwrap().len(), 3);

    let security = store.broker_security(d.id).await.unwrap();
    let hashes: Vec<(String, String, bool)> = security
        .app_keys
        .iter()
        .map(|k| (k.app_id.clone(), k.secret_sha256.clone(), k.read_only))
        .collect();
    assert_eq!(
        hashes,
        vec![
            (a.app_id.to_string(), "aa".to_owned(), false),
            (b.app_id.to_string(), "bb".to_owned(), false),
            (c.app_id.to_string(), "cc".to_owned(), true),
        ]
    );

    assert_not_found(
        store
            .delete_app_key(other.project_id, other.id, a.app_id)
            .await,
    );
    assert_not_found(store.delete_app_key(other.project_id, d.id, a.app_id).await);
    store
        .delete_app_key(d.project_id, d.id, a.app_id)
        .await
        .unwrap();
    assert_not_found(store.delete_app_key(d.project_id, d.id, a.app_id).await);
    assert_eq!(generation_of(&store, &d).await, 5);
    assert_eq!(
        store.list_app_keys(d.id, None, 10).await.unwrap(),
        vec![b, c]
    );
}

async fn security_chains(store: Arc<dyn Store>) {
    let d = seeded(&store, "chains").await;
    assert_eq!(store.get_authentication(d.id).await.unwrap(), None);
    assert_eq!(store.get_authorization(d.id).await.unwrap(), None);

    let authn = Authentication {
        allow_anonymous: true,
        chain: vec![
            Source::Http(HttpSource {
                url: "http://127.0.0.1:9/auth?u=%u".into(),
                method: HttpMethod::Get,
                body: [("c".to_owned(), "%c".to_owned())].into(),
                headers: [("x-p".to_owned(), "%P".to_owned())].into(),
                timeout_ms: 1_500,
                cache_ttl_ms: 0,
                pool_size: 3,
            }),
            Source::BuiltIn,
        ],
    };
    let authz = Authorization {
        no_match: Decision::Deny,
        disconnect_on_deny: true,
        chain: vec![],
    };
    store
        .put_authentication(d.project_id, d.id, &authn)
        .await
        .unwrap();
    store
        .put_authorization(d.project_id, d.id, &authz)
        .await
        .unwrap();
    assert_eq!(generation_of(&store, &d).await, 3);
    assert_eq!(
        store.get_authentication(d.id).await.unwrap(),
        Some(authn.clone())
    );
    assert_eq!(
        store.get_authorization(d.id).await.unwrap(),
        Some(authz.clone())
    );

    // Replacing overwrites; the other chain stays.
    let replaced = Authentication::default();
    store
        .put_authentication(d.project_id, d.id, &replaced)
        .await
        .unwrap();
    assert_eq!(
        store.get_authentication(d.id).await.unwrap(),
        Some(replaced.clone())
    );
    assert_eq!(
        store.get_authorization(d.id).await.unwrap(),
        Some(authz.clone())
    );

    assert_not_found(store.put_authentication(Id::new(), d.id, &authn).await);
    assert_eq!(
        store.get_authentication(d.id).await.unwrap(),
        Some(replaced.clone())
    );
    let security = store.broker_security(d.id).await.unwrap();
    assert_eq!(security.authentication, Some(replaced));
    assert_eq!(security.authorization, Some(authz));
    assert!(security.tls.is_none());
}

fn tls_record(subject: &str) -> TlsRecord {
    TlsRecord {
        tls_type: TlsType::TwoWay,
        cert_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
        key_ciphertext: "aes256gcm:c2VhbGVk".into(),
        ca_pem: Some("-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n".into()),
        details: CertificateDetails {
            subject: format!("CN={subject}"),
            issuer: "CN=Issuer".into(),
            sans: vec![subject.to_owned(), "127.0.0.1".into()],
            not_before: base_time(),
            not_after: base_time() + TimeDelta::days(365),
        },
        updated_at: now(),
    }
}

async fn security_tls(store: Arc<dyn Store>) {
    let d = seeded(&store, "tls").await;
    assert!(store.get_tls(d.id).await.unwrap().is_none());
    let updated = event(&d, EventType::TlsUpdated, now());
    let first = tls_record("a.example.test");
    store
        .put_tls(d.project_id, d.id, &first, &updated)
        .await
        .unwrap();
    assert_eq!(store.get_tls(d.id).await.unwrap(), Some(first));

    let second = TlsRecord {
        tls_type: TlsType::OneWay,
        ca_pem: None,
        ..tls_record("b.example.test")
    };
    store
        .put_tls(
            d.project_id,
            d.id,
            &second,
            &event(&d, EventType::TlsUpdated, now()),
        )
        .await
        .unwrap();
    assert_eq!(store.get_tls(d.id).await.unwrap(), Some(second.clone()));
    assert_eq!(generation_of(&store, &d).await, 3);
    assert_eq!(
        store.broker_security(d.id).await.unwrap().tls,
        Some(second.clone())
    );

    // Another project's id: nothing written, not even the event.
    let stray = event(&d, EventType::TlsUpdated, now());
    assert_not_found(
        store
            .put_tls(Id::new(), d.id, &tls_record("c"), &stray)
            .await,
    );
    assert_eq!(store.get_tls(d.id).await.unwrap(), Some(second));

    let removed = event(&d, EventType::TlsRemoved, now());
    assert!(store
        .delete_tls(d.project_id, d.id, &removed)
        .await
        .unwrap());
    assert!(store.get_tls(d.id).await.unwrap().is_none());
    assert_eq!(generation_of(&store, &d).await, 4);
    let again = event(&d, EventType::TlsRemoved, now());
    assert!(!store.delete_tls(d.project_id, d.id, &again).await.unwrap());
    assert_eq!(
        generation_of(&store, &d).await,
        4,
        "nothing removed, nothing bumped"
    );

    let kinds: Vec<EventType> = all_events(&store, &d)
        .await
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventType::DeploymentCreated,
            EventType::TlsUpdated,
            EventType::TlsUpdated,
            EventType::TlsRemoved
        ]
    );
}

async fn security_goes_with_its_deployment(store: Arc<dyn Store>) {
    let d = seeded(&store, "doomed").await;
    store
        .create_app_key(d.project_id, &app_key(&d, "k"), "hash-of-doomed")
        .await
        .unwrap();
    store
        .put_authorization(d.project_id, d.id, &Authorization::default())
        .await
        .unwrap();
    store
        .put_tls(
            d.project_id,
            d.id,
            &tls_record("d"),
            &event(&d, EventType::TlsUpdated, now()),
        )
        .await
        .unwrap();
    let generation = generation_of(&store, &d).await;
    store
        .delete_deployment(d.id, generation, &[])
        .await
        .unwrap();
    let security = store.broker_security(d.id).await.unwrap();
    assert!(security.app_keys.is_empty());
    assert!(security.authorization.is_none());
    assert!(security.tls.is_none());
    // The hash is free again: the row went with the deployment.
    let e = seeded(&store, "reborn").await;
    store
        .create_app_key(e.project_id, &app_key(&e, "k"), "hash-of-doomed")
        .await
        .unwrap();
}

async fn people(store: Arc<dyn Store>) {
    let ada = UserRecord {
        id: Id::new(),
        email: "ada@example.com".into(),
        created_at: now(),
    };
    store.create_user(&ada, "$argon2id$hash").await.unwrap();
    let twin = UserRecord {
        id: Id::new(),
        ..ada.clone()
    };
    assert!(matches!(
        store.create_user(&twin, "x").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.list_users(None, 10).await.unwrap(), vec![ada.clone()]);
    let creds = store
        .find_credentials("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.user, ada);
    assert_eq!(creds.password_hash, "$argon2id$hash");
    assert!(store
        .find_credentials("bob@example.com")
        .await
        .unwrap()
        .is_none());

    // The third failure in a row (limit 3) locks and restarts the count; a reset clears it.
    let until = now() + TimeDelta::minutes(15);
    assert!(!store.record_signin_failure(ada.id, 3, until).await.unwrap());
    assert!(!store.record_signin_failure(ada.id, 3, until).await.unwrap());
    store.reset_signin_failures(ada.id).await.unwrap();
    assert!(!store.record_signin_failure(ada.id, 3, until).await.unwrap());
    assert!(!store.record_signin_failure(ada.id, 3, until).await.unwrap());
    assert!(store.record_signin_failure(ada.id, 3, until).await.unwrap());
    let creds = store
        .find_credentials("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.failed_signins, 0);
    assert_eq!(creds.locked_until, Some(until));

    // Memberships go with the project.
    let p = project("people");
    store.create_project(&p).await.unwrap();
    store
        .add_member(p.id, ada.id, Role::Viewer, now())
        .await
        .unwrap();
    assert!(matches!(
        store.add_member(p.id, ada.id, Role::Owner, now()).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .set_member_role(p.id, ada.id, Role::Owner)
        .await
        .unwrap();
    assert_eq!(
        store.memberships(ada.id).await.unwrap(),
        vec![(p.id, Role::Owner)]
    );
    let members = store.list_members(p.id).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].user, ada);
    assert!(matches!(
        store.set_member_role(p.id, Id::new(), Role::Owner).await,
        Err(StoreError::NotFound)
    ));
    store.remove_member(p.id, ada.id).await.unwrap();
    assert!(matches!(
        store.remove_member(p.id, ada.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.memberships(ada.id).await.unwrap(), vec![]);

    // Sessions, by the hash of their secret.
    let session = SessionRecord {
        id: "a".repeat(64),
        user: ada.clone(),
        csrf_token: "csrf".into(),
        created_at: now(),
        expires_at: now() + TimeDelta::hours(12),
    };
    store.create_session(&session).await.unwrap();
    let found = store.find_session(&session.id).await.unwrap().unwrap();
    assert_eq!(found.user, ada);
    assert_eq!(found.csrf_token, "csrf");
    assert_eq!(found.expires_at, session.expires_at);
    store.delete_session(&session.id).await.unwrap();
    assert!(store.find_session(&session.id).await.unwrap().is_none());
    store.delete_session(&session.id).await.unwrap();

    // Expired sessions are purged with the app keys bound to them, each deletion a new
    // revision of its deployment; live sessions and unbound keys stay.
    let d = seeded(&store, "session-keys").await;
    let expired = SessionRecord {
        id: "b".repeat(64),
        expires_at: now() - TimeDelta::seconds(1),
        ..session.clone()
    };
    let live = SessionRecord {
        id: "c".repeat(64),
        ..session.clone()
    };
    store.create_session(&expired).await.unwrap();
    store.create_session(&live).await.unwrap();
    let bound = AppKeyRecord {
        console_session: Some(expired.id.clone()),
        ..app_key(&d, "bound")
    };
    let kept = AppKeyRecord {
        console_session: Some(live.id.clone()),
        ..app_key(&d, "kept")
    };
    let plain = app_key(&d, "plain");
    for (k, hash) in [(&bound, "h-bound"), (&kept, "h-kept"), (&plain, "h-plain")] {
        store.create_app_key(d.project_id, k, hash).await.unwrap();
    }
    let before = generation_of(&store, &d).await;
    assert_eq!(store.purge_sessions(now()).await.unwrap(), 1);
    assert!(store.find_session(&expired.id).await.unwrap().is_none());
    assert!(store.find_session(&live.id).await.unwrap().is_some());
    let left: Vec<AppKeyRecord> = store.list_app_keys(d.id, None, 10).await.unwrap();
    let mut names: Vec<&str> = left.iter().map(|k| k.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["kept", "plain"]);
    let after = generation_of(&store, &d).await;
    assert_eq!(
        after,
        before + 1,
        "the bound key's deletion is a new revision"
    );
    assert_eq!(
        store
            .resource_revision(d.id, &store::revision::app_key(bound.app_id))
            .await
            .unwrap(),
        Some(after)
    );
    // Signing out (delete_session) takes the live session's bound key the same way.
    store.delete_session(&live.id).await.unwrap();
    let left = store.list_app_keys(d.id, None, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].name, "plain");
    assert_eq!(store.purge_sessions(now()).await.unwrap(), 0);
}

// ---------------------------------------------------------------------------------------
// Port allocation and revisions

fn ports(base: u16) -> Vec<store::PortRecord> {
    ["api", "tcp", "tls", "ws", "wss"]
        .iter()
        .zip(base..)
        .map(|(listener, port)| store::PortRecord {
            listener: (*listener).to_owned(),
            port,
        })
        .collect()
}

async fn ports_are_unique_per_host(store: Arc<dyn Store>) {
    let a = seeded(&store, "ports-a").await;
    let b = seeded(&store, "ports-b").await;
    store.claim_ports("h1", a.id, &ports(20000)).await.unwrap();
    assert_eq!(store.ports("h1", a.id).await.unwrap(), ports(20000));

    // One port in common with `a`: refused as a whole, nothing written.
    assert_conflict(store.claim_ports("h1", b.id, &ports(20004)).await);
    assert_eq!(store.ports("h1", b.id).await.unwrap(), vec![]);
    // Another host may use the same numbers.
    store.claim_ports("h2", b.id, &ports(20004)).await.unwrap();
    store.claim_ports("h1", b.id, &ports(20005)).await.unwrap();

    // Replacing frees the old ones for others, atomically.
    store.claim_ports("h1", a.id, &ports(21000)).await.unwrap();
    assert_eq!(store.ports("h1", a.id).await.unwrap(), ports(21000));
    let c = seeded(&store, "ports-c").await;
    store.claim_ports("h1", c.id, &ports(20000)).await.unwrap();

    // Many claims at once for the same ports: exactly one wins.
    let mut contenders = Vec::new();
    for i in 0..8 {
        contenders.push(seeded(&store, &format!("race-{i}")).await);
    }
    let wanted = ports(30000);
    let results = futures::future::join_all(
        contenders
            .iter()
            .map(|d| store.claim_ports("h3", d.id, &wanted)),
    )
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );

    // Ports go with their deployment.
    store
        .delete_deployment(c.id, generation_of(&store, &c).await, &[])
        .await
        .unwrap();
    let d = seeded(&store, "ports-d").await;
    store.claim_ports("h1", d.id, &ports(20000)).await.unwrap();
}

async fn revisions_follow_writes(store: Arc<dyn Store>) {
    let d = seeded(&store, "revisions").await;
    let key = app_key(&d, "k");
    store
        .create_app_key(d.project_id, &key, &"0".repeat(64))
        .await
        .unwrap();
    let after_key = generation_of(&store, &d).await;
    let resource = store::revision::app_key(key.app_id);
    assert_eq!(
        store.resource_revision(d.id, &resource).await.unwrap(),
        Some(after_key)
    );
    store
        .put_authentication(d.project_id, d.id, &Authentication::default())
        .await
        .unwrap();
    let after_auth = generation_of(&store, &d).await;
    assert!(after_auth > after_key);
    let all = store.resource_revisions(d.id).await.unwrap();
    assert_eq!(all.get(&resource), Some(&after_key));
    assert_eq!(all.get(store::revision::AUTHENTICATION), Some(&after_auth));
    assert_eq!(
        store
            .resource_revision(d.id, store::revision::TLS)
            .await
            .unwrap(),
        None
    );

    // The applied revision moves only with a status report.
    let got = store.get_deployment(d.project_id, d.id).await.unwrap();
    assert_eq!(got.applied_revision, 0);
    store
        .update_status(
            d.id,
            after_auth,
            &StatusUpdate {
                status: Status::Running,
                reason: None,
                observed_generation: after_auth,
                endpoints: None,
                applied_revision: after_auth,
            },
            &[],
        )
        .await
        .unwrap();
    let got = store.get_deployment(d.project_id, d.id).await.unwrap();
    assert_eq!(got.applied_revision, after_auth);
}

async fn deployment_quota(store: Arc<dyn Store>) {
    let p = project("quota");
    store.create_project(&p).await.unwrap();
    assert_eq!(store.deployment_quota(p.id).await.unwrap(), None);
    assert!(matches!(
        store.deployment_quota(Id::new()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.set_deployment_quota(Id::new(), Some(3)).await,
        Err(StoreError::NotFound)
    ));
    let create = |name: &str| {
        let d = deployment(p.id, name);
        let e = event(&d, EventType::DeploymentCreated, now());
        (d, e)
    };
    // The default applies until the project has its own.
    let (a, ea) = create("a");
    store
        .create_deployment_within_quota(&a, &ea, 1)
        .await
        .unwrap();
    let (b, eb) = create("b");
    assert!(matches!(
        store.create_deployment_within_quota(&b, &eb, 1).await,
        Err(StoreError::QuotaExceeded { limit: 1 })
    ));
    assert!(matches!(
        store.get_deployment(p.id, b.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        all_events(&store, &b).await.is_empty(),
        "no event without its deployment"
    );
    store.set_deployment_quota(p.id, Some(4)).await.unwrap();
    assert_eq!(store.deployment_quota(p.id).await.unwrap(), Some(4));
    store
        .create_deployment_within_quota(&b, &eb, 1)
        .await
        .unwrap();
    assert_eq!(all_events(&store, &b).await, vec![eb.clone()]);

    // Racing creates: exactly the room left (2 of 4) is taken.
    let racers: Vec<_> = (0..6).map(|i| create(&format!("race-{i}"))).collect();
    let results = futures::future::join_all(
        racers
            .iter()
            .map(|(d, e)| store.create_deployment_within_quota(d, e, 1)),
    )
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        2,
        "{results:?}"
    );
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| matches!(e, StoreError::QuotaExceeded { limit: 4 })));

    // Deleting ones do not count; `None` returns to the default.
    store
        .patch_deployment(
            p.id,
            a.id,
            &DeploymentPatch {
                status: Some(Status::Deleting),
                ..Default::default()
            },
            &[],
        )
        .await
        .unwrap();
    let (c, ec) = create("c");
    store
        .create_deployment_within_quota(&c, &ec, 1)
        .await
        .unwrap();
    store.set_deployment_quota(p.id, None).await.unwrap();
    assert_eq!(store.deployment_quota(p.id).await.unwrap(), None);
    let (d, ed) = create("d");
    assert!(matches!(
        store.create_deployment_within_quota(&d, &ed, 4).await,
        Err(StoreError::QuotaExceeded { limit: 4 })
    ));
}

async fn idempotency_keys(store: Arc<dyn Store>) {
    let t0 = now();
    let day = TimeDelta::hours(24);
    let abandoned = TimeDelta::minutes(2);
    let reserve = |who: &'static str, key: &'static str, hash: &'static str, at: DateTime<Utc>| {
        let store = store.clone();
        async move {
            store
                .reserve_idempotency_key(who, key, hash, at, at - day, at - abandoned)
                .await
                .unwrap()
        }
    };
    // First use reserves; a second sees it pending, then completed.
    assert_eq!(reserve("api_key:1", "k", "h1", t0).await, None);
    let pending = reserve("api_key:1", "k", "h1", t0).await.unwrap();
    assert_eq!(
        (
            pending.request_hash.as_str(),
            pending.status,
            pending.response
        ),
        ("h1", None, None)
    );
    store
        .complete_idempotency_key("api_key:1", "k", 201, "sealed")
        .await
        .unwrap();
    let kept = reserve("api_key:1", "k", "h2", t0 + TimeDelta::hours(1))
        .await
        .unwrap();
    assert_eq!(
        (
            kept.request_hash.as_str(),
            kept.status,
            kept.response.as_deref()
        ),
        ("h1", Some(201), Some("sealed"))
    );
    // Keys are per principal.
    assert_eq!(reserve("user:2", "k", "h3", t0).await, None);
    // A completed answer lives 24 h; a pending one only until abandoned.
    assert_eq!(
        reserve("api_key:1", "k", "h4", t0 + day + TimeDelta::seconds(1)).await,
        None
    );
    assert!(reserve("user:2", "k", "h3", t0 + TimeDelta::minutes(1))
        .await
        .is_some());
    assert_eq!(
        reserve("user:2", "k", "h5", t0 + TimeDelta::minutes(3)).await,
        None
    );
    // Released keys are free again; the purge removes what is older than its bound.
    store.release_idempotency_key("user:2", "k").await.unwrap();
    assert_eq!(reserve("user:2", "k", "h6", t0).await, None);
    assert_eq!(
        store
            .purge_idempotency_keys(t0 + TimeDelta::seconds(1))
            .await
            .unwrap(),
        1,
        "the one reserved at t0"
    );
    assert!(
        reserve("api_key:1", "k", "h7", t0).await.is_some(),
        "kept: newer than the bound"
    );
}

async fn internal_endpoint_address(store: Arc<dyn Store>) {
    let d = seeded(&store, "internal").await;
    let other = seeded(&store, "elsewhere").await;
    let address: std::net::IpAddr = "10.0.0.9".parse().unwrap();
    // No endpoint: nothing to record.
    assert!(!store
        .set_internal_endpoint_address(d.id, address)
        .await
        .unwrap());
    for deployment in [&d, &other] {
        let record = store::InternalEndpointRecord {
            address: None,
            allowed_cidrs: vec!["10.1.0.0/16".parse().unwrap()],
            created_at: now(),
            updated_at: now(),
        };
        store
            .put_internal_endpoint(
                deployment.project_id,
                deployment.id,
                &record,
                &event(deployment, EventType::InternalEndpointCreated, now()),
            )
            .await
            .unwrap();
    }
    let mut awaiting = store.internal_endpoints_awaiting_address().await.unwrap();
    awaiting.sort();
    let mut both = vec![d.id, other.id];
    both.sort();
    assert_eq!(awaiting, both);
    let generation = generation_of(&store, &d).await;
    assert!(store
        .set_internal_endpoint_address(d.id, address)
        .await
        .unwrap());
    assert_eq!(
        store
            .network(d.id)
            .await
            .unwrap()
            .internal_endpoint
            .unwrap()
            .address,
        Some(address)
    );
    assert_eq!(
        store.internal_endpoints_awaiting_address().await.unwrap(),
        vec![other.id]
    );
    assert_eq!(
        generation_of(&store, &d).await,
        generation,
        "an assigned address is not a spec change"
    );
}

async fn alerts_change_by_compare_and_set(store: Arc<dyn Store>) {
    use skyport_control_plane::alerts::{
        AlertChannel, AlertRule, AlertState, ChannelTarget, Condition,
    };
    let d = seeded(&store, "alerting").await;
    let channel = AlertChannel {
        id: Id::new(),
        project_id: d.project_id,
        name: "hook".into(),
        target: ChannelTarget::Webhook {
            url: "https://hooks.example.test/x".into(),
        },
        secret_ciphertext: Some("sealed".into()),
        created_at: now(),
    };
    store.create_alert_channel(&channel).await.unwrap();
    let mut rule = AlertRule {
        id: Id::new(),
        project_id: d.project_id,
        name: "down".into(),
        deployment_id: Some(d.id),
        condition: Condition::DeploymentNotRunning {
            minutes: 5,
            include_stopped: false,
        },
        channel_ids: vec![channel.id],
        repeat_interval_seconds: Some(60),
        enabled: true,
        created_at: now(),
        updated_at: now(),
    };
    store.create_alert_rule(&rule).await.unwrap();
    assert_eq!(
        store.get_alert_rule(d.project_id, rule.id).await.unwrap(),
        rule
    );
    assert_eq!(
        store
            .get_alert_channel(d.project_id, channel.id)
            .await
            .unwrap(),
        channel
    );
    assert_eq!(
        store.enabled_alert_rules().await.unwrap(),
        vec![rule.clone()]
    );
    // A channel a rule names stays.
    assert_conflict(store.delete_alert_channel(d.project_id, channel.id).await);
    assert_not_found(store.get_alert_rule(Id::new(), rule.id).await);

    let subject = d.id.to_string();
    let opened = AlertState {
        rule_id: rule.id,
        subject: subject.clone(),
        project_id: d.project_id,
        deployment_id: d.id,
        since: now(),
        fired_at: None,
        last_notified_at: None,
        notifications: 0,
        message: "down".into(),
    };
    assert!(store.open_alert(&opened).await.unwrap());
    assert!(!store.open_alert(&opened).await.unwrap(), "already open");
    let fired = event(&d, EventType::AlertFired, now());
    // Nanoseconds: each backend keeps its own precision, and the compare-and-set below
    // uses the value read back.
    let at = Utc::now();
    assert!(store
        .fire_alert(rule.id, &subject, at, "fired", &fired)
        .await
        .unwrap());
    let again = event(&d, EventType::AlertFired, now());
    assert!(!store
        .fire_alert(rule.id, &subject, at, "fired", &again)
        .await
        .unwrap());
    let states = store.alert_states(Some(d.project_id)).await.unwrap();
    assert_eq!(states.len(), 1);
    let last = states[0].last_notified_at.expect("notified");
    assert_eq!(states[0].notifications, 1);
    assert!(store
        .renotify_alert(rule.id, &subject, last, Utc::now(), "again")
        .await
        .unwrap());
    assert!(
        !store
            .renotify_alert(rule.id, &subject, last, Utc::now(), "again")
            .await
            .unwrap(),
        "someone notified since"
    );
    assert_eq!(store.alert_states(None).await.unwrap()[0].notifications, 2);
    let resolved = event(&d, EventType::AlertResolved, now());
    assert!(store
        .close_alert(rule.id, &subject, &resolved)
        .await
        .unwrap());
    assert!(!store
        .close_alert(rule.id, &subject, &resolved)
        .await
        .unwrap());
    // A pending alert closes without an event.
    assert!(store.open_alert(&opened).await.unwrap());
    let unseen = event(&d, EventType::AlertResolved, now());
    assert!(!store.close_alert(rule.id, &subject, &unseen).await.unwrap());
    let kinds: Vec<Id> = all_events(&store, &d)
        .await
        .iter()
        .filter(|e| matches!(e.kind, EventType::AlertFired | EventType::AlertResolved))
        .map(|e| e.id)
        .collect();
    assert_eq!(kinds, vec![fired.id, resolved.id]);

    // Disabling drops open alerts; deleting the rule frees the channel.
    assert!(store.open_alert(&opened).await.unwrap());
    rule.enabled = false;
    store.update_alert_rule(&rule).await.unwrap();
    assert_eq!(store.alert_states(None).await.unwrap(), vec![]);
    assert_eq!(store.enabled_alert_rules().await.unwrap(), vec![]);
    store
        .delete_alert_rule(d.project_id, rule.id)
        .await
        .unwrap();
    assert_not_found(store.delete_alert_rule(d.project_id, rule.id).await);
    store
        .delete_alert_channel(d.project_id, channel.id)
        .await
        .unwrap();
    assert_eq!(
        store.list_alert_channels(d.project_id).await.unwrap(),
        vec![]
    );
}

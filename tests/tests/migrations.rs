//! `skyport migrate` on the real binary: up, partial down, full down and up again, on both
//! backends, with the schema inspected directly through sqlx after every step.

use std::collections::BTreeSet;
use std::path::Path;

use skyport_control_plane::store::{self, Project};
use skyport_tests::postgres::TestDatabase;
use sqlx::{Connection, PgConnection, SqliteConnection};

/// Tables the migrations create (the event log comes with the second migration).
const INIT_TABLES: [&str; 4] = [
    "api_keys",
    "certificate_authority",
    "deployments",
    "projects",
];
const EVENT_TABLE: &str = "deployment_events";
/// sqlx's bookkeeping table; it stays when every migration is reverted.
const SQLX_TABLE: &str = "_sqlx_migrations";

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn dir(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Versions of the migrations shipped for `backend`, ascending, read from the repository.
fn shipped_versions(backend: Backend) -> Vec<i64> {
    let dir = skyport_tests::workspace_root()
        .join("migrations")
        .join(backend.dir());
    let mut versions: Vec<i64> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter_map(|name| {
            let version = name.strip_suffix(".up.sql")?.split('_').next()?;
            Some(
                version
                    .parse()
                    .expect("migration file names start with a version"),
            )
        })
        .collect();
    versions.sort_unstable();
    assert!(
        versions.len() >= 2,
        "expected at least two migrations in {}",
        dir.display()
    );
    versions
}

/// Runs `skyport --database-url URL --data-dir DIR migrate ARGS…`, which must succeed.
async fn skyport_migrate(url: Option<&str>, data_dir: &Path, args: &[&str]) {
    let mut cmd = tokio::process::Command::new(skyport_tests::binary("skyport"));
    if let Some(url) = url {
        cmd.arg("--database-url").arg(url);
    }
    let out = cmd
        .arg("--data-dir")
        .arg(data_dir)
        .arg("migrate")
        .args(args)
        .env_remove("SKYPORT_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("running skyport migrate");
    assert!(
        out.status.success(),
        "skyport migrate {args:?} failed with {}:\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("migrations done"),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// What the database holds, read with a fresh connection.
#[derive(Debug, PartialEq)]
struct Schema {
    tables: BTreeSet<String>,
    /// Indexes outside sqlx's own table (and SQLite's automatic ones).
    indexes: BTreeSet<String>,
    /// `(version, success)` rows of `_sqlx_migrations`, by version.
    applied: Vec<(i64, bool)>,
}

async fn inspect(backend: Backend, url: &str) -> Schema {
    match backend {
        Backend::Sqlite => {
            let mut conn = SqliteConnection::connect(url).await.expect("open SQLite");
            let tables = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            let indexes = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'index' \
                   AND name NOT LIKE 'sqlite_autoindex_%' AND tbl_name <> '_sqlx_migrations'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            let applied =
                sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
            conn.close().await.unwrap();
            Schema {
                tables: BTreeSet::from_iter(tables),
                indexes: BTreeSet::from_iter(indexes),
                applied,
            }
        }
        Backend::Postgres => {
            let mut conn = PgConnection::connect(url).await.expect("open PostgreSQL");
            let tables = sqlx::query_scalar(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            let indexes = sqlx::query_scalar(
                "SELECT indexname::text FROM pg_indexes \
                 WHERE schemaname = 'public' AND tablename <> '_sqlx_migrations'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            let applied =
                sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
            conn.close().await.unwrap();
            Schema {
                tables: BTreeSet::from_iter(tables),
                indexes: BTreeSet::from_iter(indexes),
                applied,
            }
        }
    }
}

fn names(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[track_caller]
fn assert_fully_migrated(schema: &Schema, versions: &[i64]) {
    let mut want = names(&INIT_TABLES);
    want.insert(EVENT_TABLE.into());
    want.insert(SQLX_TABLE.into());
    assert!(
        schema.tables.is_superset(&want),
        "after `migrate up` expected at least {want:?}, found {:?}",
        schema.tables
    );
    for index in [
        "api_keys_project",
        "deployment_events_by_deployment",
        "deployment_events_by_time",
    ] {
        assert!(
            schema.indexes.contains(index),
            "index {index} missing: {schema:?}"
        );
    }
    let all: Vec<(i64, bool)> = versions.iter().map(|v| (*v, true)).collect();
    assert_eq!(
        schema.applied, all,
        "every shipped migration recorded as applied"
    );
}

/// The whole up → down --target FIRST → down --target 0 → up cycle against `url`.
async fn cycle(backend: Backend, url: &str, data_dir: &Path) {
    let versions = shipped_versions(backend);
    let first = versions[0];

    // Up, twice: the second run is a no-op.
    skyport_migrate(Some(url), data_dir, &[]).await;
    assert_fully_migrated(&inspect(backend, url).await, &versions);
    skyport_migrate(Some(url), data_dir, &["up"]).await;
    assert_fully_migrated(&inspect(backend, url).await, &versions);

    // Seed a row that must survive a partial revert.
    let store = store::connect(url).await.expect("connect");
    let seeded = Project {
        id: skyport_control_plane::domain::Id::new(),
        name: "seeded".into(),
        created_at: chrono::Utc::now(),
    };
    store
        .create_project(&seeded)
        .await
        .expect("insert a project");
    drop(store);

    // Down to the initial schema: the event log goes, the rest stays.
    skyport_migrate(
        Some(url),
        data_dir,
        &["down", "--target", &first.to_string()],
    )
    .await;
    let schema = inspect(backend, url).await;
    let mut want = names(&INIT_TABLES);
    want.insert(SQLX_TABLE.into());
    assert_eq!(
        schema.tables, want,
        "only the initial schema after down --target {first}"
    );
    assert!(schema.indexes.contains("api_keys_project"));
    assert!(!schema
        .indexes
        .iter()
        .any(|i| i.starts_with("deployment_events")));
    assert_eq!(schema.applied, vec![(first, true)]);
    let store = store::connect(url).await.expect("connect");
    assert_eq!(
        store
            .get_project(seeded.id)
            .await
            .expect("seeded project")
            .name,
        "seeded"
    );
    drop(store);

    // Down to 0: nothing but sqlx's bookkeeping, with no rows.
    skyport_migrate(Some(url), data_dir, &["down", "--target", "0"]).await;
    let schema = inspect(backend, url).await;
    assert_eq!(
        schema.tables,
        names(&[SQLX_TABLE]),
        "everything reverted: {schema:?}"
    );
    assert!(!schema.tables.contains("deployments"));
    assert!(
        schema.indexes.is_empty(),
        "no index left behind: {:?}",
        schema.indexes
    );
    assert_eq!(schema.applied, vec![]);
    // Reverting an empty schema again is harmless.
    skyport_migrate(Some(url), data_dir, &["down"]).await;
    assert_eq!(inspect(backend, url).await.tables, names(&[SQLX_TABLE]));

    // Up again: the full schema, empty, and it works.
    skyport_migrate(Some(url), data_dir, &["up"]).await;
    assert_fully_migrated(&inspect(backend, url).await, &versions);
    let store = store::connect(url).await.expect("connect");
    assert!(
        store.list_projects(None, 10).await.unwrap().is_empty(),
        "data went with the tables"
    );
    let project = Project {
        id: skyport_control_plane::domain::Id::new(),
        name: "after-down-up".into(),
        created_at: chrono::Utc::now(),
    };
    store
        .create_project(&project)
        .await
        .expect("insert after down→up");
    let got = store.get_project(project.id).await.unwrap();
    assert_eq!(got.name, "after-down-up");
    assert_eq!(
        store.list_projects(None, 10).await.unwrap().len(),
        1,
        "exactly the new project"
    );
    assert!(store.load_ca().await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_up_down_up() {
    let data_dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", data_dir.path().join("explicit.db").display());
    cycle(Backend::Sqlite, &url, data_dir.path()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_up_down_up() {
    let db = TestDatabase::create();
    let data_dir = tempfile::tempdir().unwrap();
    cycle(Backend::Postgres, &db.url, data_dir.path()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_defaults_to_the_data_dir() {
    // Without --database-url, `migrate` creates DATA_DIR/skyport.db (and the dir itself).
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("not-yet-created");
    skyport_migrate(None, &data_dir, &[]).await;
    let db = data_dir.join("skyport.db");
    assert!(db.exists(), "{} was created", db.display());
    let url = format!("sqlite://{}", db.display());
    assert_fully_migrated(
        &inspect(Backend::Sqlite, &url).await,
        &shipped_versions(Backend::Sqlite),
    );
}

//! Helpers for Skyport's end-to-end tests: start the real `skyport` binary on a free port
//! with its own data dir and database, talk to its API, and run real MQTT clients.
//!
//! Everything a test starts is torn down on drop: the control plane, every broker it
//! spawned (found through the data dir's `runtime.json` files), and the database.

pub mod api;
pub mod cluster;
pub mod console;
pub mod dns;
pub mod fake_kube;
pub mod mqtt;
pub mod on_kube;
pub mod postgres;
pub mod process;
pub mod python;
pub mod receivers;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub use api::Api;

/// Admin token every test control plane uses.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

fn new_data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("skyport-test-")
        .tempdir()
        .expect("temp data dir")
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Directory holding the built binaries (`target/debug` next to the test executable).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// Path of a workspace binary, failing loudly if it was not built.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// Whether tests run under CI, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Which database a control plane under test uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running `skyport` control plane with its own data dir and database.
pub struct ControlPlane {
    pub api: Api,
    pub base_url: String,
    pub data_dir: tempfile::TempDir,
    database_url: String,
    database: Option<postgres::TestDatabase>,
    child: Option<Child>,
    extra_args: Vec<String>,
    extra_env: Vec<(String, String)>,
}

impl ControlPlane {
    /// Starts a control plane on SQLite.
    pub fn start() -> Self {
        Self::start_with(Backend::Sqlite, &[])
    }

    /// Starts a control plane on `backend` with extra command-line arguments.
    pub fn start_with(backend: Backend, extra_args: &[&str]) -> Self {
        Self::start_with_env(backend, extra_args, &[])
    }

    /// Starts a control plane with extra arguments and environment variables.
    pub fn start_with_env(backend: Backend, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_in(new_data_dir(), backend, extra_args, env)
    }

    /// Starts a control plane whose logs (stderr) go to `DATA_DIR/skyport.log`, read
    /// back with [`ControlPlane::logs`].
    pub fn start_logged(backend: Backend, extra_args: &[&str]) -> Self {
        let data_dir = new_data_dir();
        std::fs::write(data_dir.path().join("skyport.log"), "").expect("creating the log file");
        Self::start_in(data_dir, backend, extra_args, &[("RUST_LOG", "info")])
    }

    /// What the control plane has logged, when started with [`ControlPlane::start_logged`].
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("skyport.log")).unwrap_or_default()
    }

    fn start_in(
        data_dir: tempfile::TempDir,
        backend: Backend,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let (database_url, database) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", data_dir.path().join("skyport.db").display()),
                None,
            ),
            Backend::Postgres => {
                let db = postgres::TestDatabase::create();
                (db.url.clone(), Some(db))
            }
        };
        let mut cp = Self {
            api: Api::new("http://unused", ADMIN_TOKEN),
            base_url: String::new(),
            data_dir,
            database_url,
            database,
            child: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        cp.spawn("127.0.0.1:0");
        cp
    }

    fn spawn(&mut self, listen: &str) {
        let (child, url) = spawn_skyport(
            listen,
            self.data_dir.path(),
            &self.database_url,
            &self.extra_args,
            &self.extra_env,
        );
        self.base_url = url.clone();
        self.api = Api::new(&url, ADMIN_TOKEN);
        self.child = Some(child);
    }

    /// Kills the control plane abruptly (SIGKILL), as a crash would; brokers keep running.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the control plane again on the same data dir, database and port.
    pub fn restart(&mut self) {
        self.crash();
        let listen = self.base_url.trim_start_matches("http://").to_owned();
        self.spawn(&listen);
    }

    /// Sets (or replaces) an environment variable of the control plane from its next
    /// [`ControlPlane::restart`] on.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.extra_env.retain(|(k, _)| k != key);
        self.extra_env.push((key.to_owned(), value.to_owned()));
    }

    /// The database URL this control plane uses.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// Pids of broker processes recorded in the data dir that are alive.
    pub fn live_broker_pids(&self) -> Vec<u32> {
        process::recorded_broker_pids(self.data_dir.path())
            .into_iter()
            .filter(|pid| process::is_alive(*pid))
            .collect()
    }

    /// Every live `skyport-broker` process whose command line points into this data dir.
    pub fn broker_processes(&self) -> Vec<u32> {
        process::brokers_under(self.data_dir.path())
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.crash();
        for pid in process::brokers_under(self.data_dir.path()) {
            process::kill_and_wait(pid);
        }
        drop(self.database.take());
    }
}

/// Where a control plane's logs go: inherited with `TEST_LOG`, appended to
/// `DATA_DIR/skyport.log` when that file exists (a test that reads the logs creates it),
/// else nowhere.
fn stderr_for(data_dir: &Path) -> Stdio {
    if std::env::var("TEST_LOG").is_ok() {
        return Stdio::inherit();
    }
    match std::fs::OpenOptions::new()
        .append(true)
        .open(data_dir.join("skyport.log"))
    {
        Ok(file) => Stdio::from(file),
        Err(_) => Stdio::null(),
    }
}

/// Starts `skyport` on `listen` with a data dir and database, and waits for it to report
/// its address; returns the process and its base URL.
pub fn spawn_skyport(
    listen: &str,
    data_dir: &Path,
    database_url: &str,
    extra_args: &[String],
    extra_env: &[(String, String)],
) -> (Child, String) {
    let mut child = Command::new(binary("skyport"))
        .arg("--listen")
        .arg(listen)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--database-url")
        .arg(database_url)
        .arg("--broker-bin")
        .arg(binary("skyport-broker"))
        .args(extra_args)
        .env("SKYPORT_ADMIN_TOKEN", ADMIN_TOKEN)
        .env(
            "RUST_LOG",
            std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .envs(extra_env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(stderr_for(data_dir))
        .spawn()
        .expect("starting skyport");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let _ = tx.send(rest.trim().to_owned());
                break;
            }
        }
        // Keep draining so the child never blocks on a full pipe.
        for _ in lines {}
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("skyport did not report its listening address (see TEST_LOG=info)");
    (child, url)
}

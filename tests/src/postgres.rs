//! A fresh PostgreSQL database per test, dropped afterwards.

/// Server the tests use (trust auth on this machine and in CI).
pub fn server_url() -> String {
    std::env::var("SKYPORT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A database created for one test.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

fn psql(sql: &str) -> std::process::Output {
    std::process::Command::new("psql")
        .arg(format!("{}/postgres", server_url()))
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("running psql")
}

impl TestDatabase {
    /// Creates an empty database; panics (never skips) if PostgreSQL is unreachable.
    pub fn create() -> Self {
        let name = format!("skyport_test_{}", uuid::Uuid::new_v4().simple());
        let out = psql(&format!("CREATE DATABASE {name}"));
        assert!(
            out.status.success(),
            "PostgreSQL at {} is needed by this test: {}",
            server_url(),
            String::from_utf8_lossy(&out.stderr)
        );
        let url = format!("{}/{name}", server_url());
        Self { name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

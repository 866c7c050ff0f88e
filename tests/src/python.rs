//! The project-managed Python tools (paho-mqtt, schemathesis) in `target/pytools`,
//! created by `tests/run.sh` from `tests/requirements.txt`.

use std::path::PathBuf;

/// The virtualenv's directory.
pub fn venv() -> PathBuf {
    std::env::var_os("SKYPORT_PYTOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target/pytools"))
}

/// The virtualenv's Python; panics with the setup command if it is missing.
pub fn interpreter() -> PathBuf {
    tool("python")
}

/// A console script installed in the virtualenv.
pub fn tool(name: &str) -> PathBuf {
    let path = venv().join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `bash tests/setup-python.sh` (tests/run.sh does) to create the Python tools",
        path.display()
    );
    path
}

//! OS process handling for local brokers: liveness by pid, signals, graceful stop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The name the broker binary's command line must contain to be ours.
const BROKER_MARK: &str = "skyport-broker";

/// Whether `pid` is a live (not zombie) `skyport-broker` whose command line names `needle`
/// (its config path): guards against pid reuse after a reboot or a long outage.
pub fn is_our_broker(pid: u32, needle: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state is the first field after the parenthesised command name.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    if matches!(state, None | Some('Z') | Some('X')) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut args = cmdline.split(|b| *b == 0).map(String::from_utf8_lossy);
    let program_is_broker = args.next().is_some_and(|a| a.ends_with(BROKER_MARK));
    program_is_broker && args.any(|a| a.contains(needle))
}

/// Live `skyport-broker` processes whose `--config` file is under `dir`, resolved as
/// each process sees it (a relative path from its working directory), so the brokers of
/// another Skyport with the same relative data dir elsewhere are never taken for ours.
pub fn brokers_under(dir: &Path) -> Vec<u32> {
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| is_our_broker(*pid, ""))
        .filter(|pid| config_path(*pid).is_some_and(|config| config.starts_with(&dir)))
        .collect()
}

/// The absolute `--config` path of broker `pid`.
fn config_path(pid: u32) -> Option<PathBuf> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let config = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1))?;
    let config = Path::new(config);
    let absolute = if config.is_absolute() {
        config.to_path_buf()
    } else {
        std::fs::read_link(format!("/proc/{pid}/cwd"))
            .ok()?
            .join(config)
    };
    // The config file may be mid-rewrite; its directory is what identifies the broker.
    let parent = absolute.parent()?.canonicalize().ok()?;
    Some(parent.join(absolute.file_name()?))
}

fn signal(pid: u32, sig: Signal) {
    if let Ok(raw) = i32::try_from(pid) {
        // ESRCH (already gone) is the outcome we want anyway.
        let _ = kill(Pid::from_raw(raw), sig);
    }
}

/// Asks the broker to stop (SIGTERM), then forces it (SIGKILL) after `grace`.
/// `alive` reports liveness (for children it must also reap them).
pub async fn terminate(pid: u32, grace: Duration, mut alive: impl FnMut() -> bool) {
    if !alive() {
        return;
    }
    signal(pid, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        if !alive() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tracing::warn!(pid, "broker ignored SIGTERM; killing it");
    signal(pid, Signal::SIGKILL);
    for _ in 0..200 {
        if !alive() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

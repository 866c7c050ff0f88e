//! Process inspection: which brokers run for a data dir, liveness, killing by pid.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Whether `pid` is a live process (zombies count as dead).
pub fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, None | Some('Z') | Some('X'))
}

/// Pids recorded in `<data>/deployments/*/runtime.json`.
pub fn recorded_broker_pids(data_dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("deployments")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path().join("runtime.json")).ok())
        .filter_map(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .filter_map(|v| v["pid"].as_u64())
        .map(|pid| pid as u32)
        .collect()
}

/// Live `skyport-broker` processes whose command line mentions `data_dir`, found by
/// scanning /proc (so even a broker missing from runtime.json is found).
pub fn brokers_under(data_dir: &Path) -> Vec<u32> {
    let needle = data_dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let mut args = c.split(|b| *b == 0).map(String::from_utf8_lossy);
                let program_is_broker = args.next().is_some_and(|a| a.ends_with("skyport-broker"));
                program_is_broker && args.any(|a| a.contains(&needle))
            })
        })
        .filter(|pid| is_alive(*pid))
        .collect()
}

/// SIGKILLs a process this test started and waits until it is gone.
pub fn kill_and_wait(pid: u32) {
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    for _ in 0..200 {
        if !is_alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

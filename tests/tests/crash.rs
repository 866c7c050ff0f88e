//! A broker killed with SIGKILL loses no acknowledged QoS 1 message: the control plane's
//! local orchestrator restarts it on the same ports and data dir, and persistent sessions
//! (offline or online at the time of the crash) receive every message whose PUBACK their
//! publisher saw. Checked with paho-mqtt clients (tests/py/crash_clients.py).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use skyport_tests::mqtt::Target;
use skyport_tests::{process, python, workspace_root, ControlPlane};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// A short tag making client ids and topics unique per run.
fn run_tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

/// `crash_clients.py <global args>`; the subcommand and its arguments follow.
fn clients(target: &Target, version: &str, client_id: &str) -> Command {
    let mut cmd = Command::new(python::interpreter());
    cmd.arg(workspace_root().join("tests/py/crash_clients.py"))
        .args(["--host", &target.host, "--port", &target.port.to_string()])
        .args(["--version", version, "--client-id", client_id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs a client command to completion (bounded by `limit`), requires success, and
/// returns its JSON lines.
async fn run_clients(mut cmd: Command, limit: Duration, context: &str) -> Vec<Value> {
    let child = cmd.spawn().expect("starting crash_clients.py");
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{context}: crash_clients.py still running after {limit:?}"))
        .expect("crash_clients.py output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{context}: crash_clients.py failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{context}: bad line {l:?}: {e}"))
        })
        .collect()
}

/// The last line carrying `key`.
fn last_with<'a>(lines: &'a [Value], key: &str) -> &'a Value {
    lines
        .iter()
        .rev()
        .find(|l| l.get(key).is_some())
        .unwrap_or_else(|| panic!("no {key:?} line in {lines:?}"))
}

/// The tail of the broker's log (stdout and stderr of every run of the broker, appended).
fn broker_log_tail(data_dir: &Path, deployment: &str, lines: usize) -> String {
    let path: PathBuf = data_dir
        .join("deployments")
        .join(deployment)
        .join("broker.log");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| format!("({path:?}: {e})"));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// SIGKILLs every broker of the control plane; returns the pids killed.
fn kill_brokers(cp_data_dir: &Path) -> Vec<u32> {
    let pids = process::brokers_under(cp_data_dir);
    assert_eq!(pids.len(), 1, "one broker runs before the crash: {pids:?}");
    for pid in &pids {
        process::kill_and_wait(*pid);
        assert!(!process::is_alive(*pid), "broker {pid} survived SIGKILL");
    }
    pids
}

/// Waits (bounded) until a broker other than `old` runs for the data dir.
async fn wait_for_new_broker(data_dir: &Path, old: &[u32]) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = process::brokers_under(data_dir);
        if !now.is_empty() && now.iter().all(|pid| !old.contains(pid)) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "no new broker within 60 s of the crash (still {now:?}, killed {old:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `got` with every repeat of an already-seen number removed, and the repeats.
fn first_occurrences(got: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let mut seen = BTreeSet::new();
    let (mut first, mut dups) = (Vec::new(), Vec::new());
    for &n in got {
        if seen.insert(n) {
            first.push(n);
        } else {
            dups.push(n);
        }
    }
    (first, dups)
}

fn numbers(v: &Value) -> Vec<u64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|n| n.as_u64().expect("a sequence number"))
        .collect()
}

/// One persistent session of the offline test.
struct Offline {
    version: &'static str,
    client_id: String,
    prefix: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_offline_messages_survive_sigkill() {
    const COUNT: u64 = 100;
    let cp = ControlPlane::start();
    let (_, api) = cp.api.project_with_key("crash").await;
    let id = api
        .create_open_deployment("crash-offline", "dedicated")
        .await;
    let d = api.wait_status(&id, "running").await;
    let target = Target::from_url(d["endpoints"]["mqtt"].as_str().expect("mqtt"), None);
    let run = run_tag();
    let cases = [
        Offline {
            version: "mqttv311",
            client_id: format!("crash-{run}-v311"),
            prefix: format!("crash/offline/{run}"),
        },
        Offline {
            version: "mqttv5",
            client_id: format!("crash-{run}-v5"),
            prefix: format!("crash/offline-v5/{run}"),
        },
    ];

    // Each persistent session subscribes, then goes away (v5: Clean Start 0, Session
    // Expiry 3600, the script's defaults for a persistent session).
    for case in &cases {
        let mut cmd = clients(&target, case.version, &case.client_id);
        cmd.args(["subscribe-once", "--filter", &format!("{}/#", case.prefix)]);
        run_clients(cmd, Duration::from_secs(60), "subscribe-once").await;
    }
    // 100 QoS 1 messages to each, every PUBACK received.
    for case in &cases {
        let mut cmd = clients(&target, case.version, &format!("{}-pub", case.client_id));
        cmd.args(["publish", "--topic", &case.prefix])
            .args(["--count", &COUNT.to_string()]);
        let lines = run_clients(cmd, Duration::from_secs(60), "publish").await;
        assert_eq!(last_with(&lines, "acked")["acked"], COUNT, "{lines:?}");
    }

    let killed = tokio::task::block_in_place(|| kill_brokers(cp.data_dir.path()));
    let replaced = wait_for_new_broker(cp.data_dir.path(), &killed).await;
    api.wait_status(&id, "running").await;
    println!("broker {killed:?} killed; restarted as {replaced:?}");

    let mut failures = Vec::new();
    for case in &cases {
        // The same client id, no clean session, no SUBSCRIBE: the script retries the
        // connect until the restarted broker accepts it.
        let mut cmd = clients(&target, case.version, &case.client_id);
        cmd.args(["drain", "--expect", &COUNT.to_string()]);
        let lines = run_clients(cmd, Duration::from_secs(120), "drain").await;
        let drained = last_with(&lines, "drained");
        let got = numbers(&drained["drained"]);
        let (first, dups) = first_occurrences(&got);
        let want: Vec<u64> = (0..COUNT).collect();
        let missing: Vec<u64> = want
            .iter()
            .filter(|n| !first.contains(n))
            .copied()
            .collect();
        let report = format!(
            "{} ({}): received {} messages, {} distinct, missing {missing:?}, {} duplicates {dups:?}, \
             session_present {}, connect attempts {}, arrival order {got:?}",
            case.version,
            case.client_id,
            got.len(),
            first.len(),
            dups.len(),
            drained["session_present"],
            drained["connect_attempts"],
        );
        println!("{report}");
        if first != want || drained["session_present"] != true {
            failures.push(report);
        }
    }
    assert!(
        failures.is_empty(),
        "acknowledged messages of an offline persistent session did not all survive the \
         broker's SIGKILL, in order:\n{}\n--- broker.log (tail) ---\n{}",
        failures.join("\n"),
        broker_log_tail(cp.data_dir.path(), &id, 80)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_acknowledged_message_is_lost_when_the_broker_is_killed_mid_flow() {
    const COUNT: u64 = 1000;
    const KILL_AT: u64 = 400;
    let cp = ControlPlane::start();
    let (_, api) = cp.api.project_with_key("crash").await;
    let id = api.create_open_deployment("crash-flow", "dedicated").await;
    let d = api.wait_status(&id, "running").await;
    let target = Target::from_url(d["endpoints"]["mqtt"].as_str().expect("mqtt"), None);
    let run = run_tag();

    let mut cmd = clients(&target, "mqttv311", &format!("crash-{run}"));
    cmd.args(["flow", "--topic", &format!("crash/flow/{run}")])
        .args(["--count", &COUNT.to_string(), "--rate", "500"])
        .args(["--timeout", "60"]);
    let mut child = cmd.spawn().expect("starting crash_clients.py flow");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let mut lines = BufReader::new(stdout).lines();

    // Read progress until the result; kill the broker once KILL_AT messages are acked.
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut log = Vec::new();
    let mut killed: Option<(Vec<u32>, u64)> = None;
    let mut restart = None;
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match tokio::time::timeout(left, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) | Ok(Err(_)) => {
                let status = child.wait().await;
                panic!(
                    "flow ended without a result ({status:?}):\n{}\n{}",
                    log.join("\n"),
                    stderr.await.unwrap_or_default()
                );
            }
            Err(_) => panic!("flow gave no result within 240 s:\n{}", log.join("\n")),
        };
        let value: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"));
        if value.get("error").is_some() {
            panic!(
                "flow failed: {line}\n{}\n{}",
                log.join("\n"),
                stderr.await.unwrap_or_default()
            );
        }
        if let Some(result) = value.get("result") {
            break result.clone();
        }
        if let Some(acked) = value["acked"].as_u64() {
            if killed.is_none() && acked >= KILL_AT {
                let pids = tokio::task::block_in_place(|| kill_brokers(cp.data_dir.path()));
                log.push(format!("-- SIGKILL {pids:?} at {acked} acked"));
                let data_dir = cp.data_dir.path().to_owned();
                let old = pids.clone();
                restart = Some(tokio::spawn(async move {
                    wait_for_new_broker(&data_dir, &old).await
                }));
                killed = Some((pids, acked));
            }
        } else {
            log.push(line);
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let (killed, acked_at_kill) = killed.expect("the broker was killed mid-flow");
    let replaced = restart
        .expect("restart watcher")
        .await
        .expect("restart watcher");
    api.wait_status(&id, "running").await;

    let acked = numbers(&result["acked"]);
    let received = numbers(&result["received"]);
    let acked_set: BTreeSet<u64> = acked.iter().copied().collect();
    let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
    for n in &received {
        *counts.entry(*n).or_default() += 1;
    }
    let missing: Vec<u64> = acked_set
        .iter()
        .filter(|n| !counts.contains_key(n))
        .copied()
        .collect();
    let duplicates: u64 = counts.values().map(|c| c - 1).sum();
    let duplicated: Vec<u64> = counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(n, _)| *n)
        .collect();
    let never_acked: Vec<u64> = (0..COUNT).filter(|n| !acked_set.contains(n)).collect();
    let away = numbers(&result["queued_while_away"]);
    let away = match (away.first(), away.last()) {
        (Some(first), Some(last)) => format!("{} ({first}..={last})", away.len()),
        _ => "0".to_owned(),
    };
    let report = format!(
        "broker {killed:?} SIGKILLed at {acked_at_kill} acked, restarted as {replaced:?}; \
         {} of {COUNT} acknowledged ({} never acknowledged: {never_acked:?}); subscriber \
         received {} messages, {} distinct, {duplicates} duplicates of {} numbers \
         {duplicated:?}; {} acknowledged but never received: {missing:?}; subscriber \
         connects {}, session lost at connects {}, publisher connects {}, published while disconnected (queued by paho, sent \
         after the reconnect) {away}, publish errors {}",
        acked_set.len(),
        never_acked.len(),
        received.len(),
        counts.len(),
        duplicated.len(),
        missing.len(),
        result["subscriber_connects"],
        result["subscriber_lost_session_at"],
        result["publisher_connects"],
        result["publish_errors"],
    );
    println!("{report}\n--- client events ---\n{}", log.join("\n"));
    assert!(
        missing.is_empty(),
        "acknowledged messages were lost across the broker's SIGKILL: {report}\n\
         --- client events ---\n{}\n--- broker.log (tail) ---\n{}",
        log.join("\n"),
        broker_log_tail(cp.data_dir.path(), &id, 80)
    );
    // The scenario really was a crash under both clients.
    assert!(
        result["subscriber_connects"].as_u64() >= Some(2)
            && result["publisher_connects"].as_u64() >= Some(2),
        "both clients reconnected after the crash: {report}"
    );
    assert!(acked_at_kill < COUNT, "the kill came mid-flow: {report}");
}

//! The README's start outside cargo: `skyport` with `skyport-broker` next to it (as
//! `cargo build --release` leaves them) and the default relative data dir runs
//! deployments with that broker, by absolute path.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use skyport_tests::mqtt::{mosquitto_exchange, Target};
use skyport_tests::{binary, process, Api, ADMIN_TOKEN};

#[tokio::test(flavor = "multi_thread")]
async fn skyport_alone_runs_brokers_from_a_relative_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("skyport");
    std::fs::copy(binary("skyport"), &exe).unwrap();
    std::fs::copy(binary("skyport-broker"), dir.path().join("skyport-broker")).unwrap();
    let mut child = Command::new(&exe)
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("SKYPORT_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("SKYPORT_DATA_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.split("listening on ").nth(1).map(str::to_owned))
        .expect("skyport prints its address");
    std::thread::spawn(move || for _ in lines {});

    let (_, api) = Api::new(&url, ADMIN_TOKEN).project_with_key("quick").await;
    let id = api.create_open_deployment("demo", "dedicated").await;
    let d = api.wait_status(&id, "running").await;
    let data_dir = dir.path().join("skyport-data");
    let brokers = process::brokers_under(&data_dir);
    assert_eq!(
        brokers.len(),
        1,
        "one broker, the skyport-broker next to skyport"
    );
    let argv0 = std::fs::read(format!("/proc/{}/cmdline", brokers[0])).unwrap();
    let argv0 = String::from_utf8_lossy(argv0.split(|b| *b == 0).next().unwrap()).into_owned();
    let sibling = std::fs::canonicalize(dir.path().join("skyport-broker")).unwrap();
    assert_eq!(std::fs::canonicalize(&argv0).unwrap(), sibling, "{argv0}");
    assert!(
        argv0.starts_with('/'),
        "brokers get absolute paths: {argv0}"
    );

    let tcp = Target::from_url(d["endpoints"]["mqtt"].as_str().unwrap(), None);
    let got = mosquitto_exchange(&tcp, "mqttv311", 1, "q/1", "quick");
    assert_eq!(
        got.received.as_deref(),
        Some("quick"),
        "{}",
        got.subscriber_stderr
    );

    api.call(reqwest::Method::DELETE, &format!("/deployments/{id}"), None)
        .await;
    api.wait_gone(&id).await;
    let _ = child.kill();
    let _ = child.wait();
    for pid in process::brokers_under(&data_dir) {
        process::kill_and_wait(pid);
    }
    assert!(process::brokers_under(&data_dir).is_empty());
}

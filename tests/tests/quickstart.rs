//! The README's start outside cargo: `skyport` with `skyport-broker` next to it (as
//! `cargo build --release` leaves them) and the default relative data dir runs
//! deployments with that broker, by absolute path.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
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

/// The shell blocks of the README's quick start that a user pastes once `skyport` runs:
/// every ```sh block after "## Quick start" but the first (which starts skyport), up to
/// and including the one that talks MQTT. Taken from the README itself, so this test
/// breaks when the README changes in a way that no longer works.
fn readme_quick_start() -> String {
    let readme =
        std::fs::read_to_string(skyport_tests::workspace_root().join("README.md")).unwrap();
    let section = readme
        .split("## Quick start")
        .nth(1)
        .expect("README has a Quick start section");
    let mut blocks = Vec::new();
    for (i, chunk) in section.split("```sh\n").enumerate().skip(1) {
        let block = chunk.split("```").next().unwrap();
        if i == 1 {
            assert!(
                block.contains("--bin skyport"),
                "the first block starts skyport: {block}"
            );
            continue;
        }
        blocks.push(block.to_owned());
        if block.contains("mosquitto_pub") {
            return blocks.join("\n");
        }
    }
    panic!("the README's quick start never publishes with mosquitto_pub");
}

/// Runs the README's quick start commands exactly as written, in one shell, right after
/// one another (a script, not a patient human): the project, key and deployment, the app
/// key used at once on the deployment API to create a user, then `mosquitto_sub` and
/// `mosquitto_pub` over TLS. The one substitution: the control plane listens on a free
/// port instead of 8080.
#[test]
fn readme_quick_start_works_pasted_as_is() {
    let script = readme_quick_start();
    assert!(
        script.contains("http://127.0.0.1:8080/api/v1"),
        "the README's API address changed: {script}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary("skyport"))
        .args(["--listen", "127.0.0.1:0"])
        .arg("--broker-bin")
        .arg(binary("skyport-broker"))
        .current_dir(dir.path())
        .env_remove("SKYPORT_ADMIN_TOKEN")
        .env_remove("SKYPORT_DATA_DIR")
        .env_remove("SKYPORT_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.split("listening on ").nth(1).map(|s| s.trim().to_owned()))
        .expect("skyport prints its address");
    std::thread::spawn(move || for _ in lines {});

    let script = format!("{}\nwait\n", script.replace("http://127.0.0.1:8080", &url));
    // Its own process group, so a stuck background `mosquitto_sub` can be ended with it.
    let shell = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pgid = shell.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(shell.wait_with_output());
    });
    let output = match rx.recv_timeout(std::time::Duration::from_secs(90)) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("the quick start did not finish");
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();

    let data_dir = dir.path().join("skyport-data");
    let _ = child.kill();
    let _ = child.wait();
    for pid in process::brokers_under(&data_dir) {
        process::kill_and_wait(pid);
    }
    assert!(process::brokers_under(&data_dir).is_empty());

    assert!(
        !stdout.contains("wrong app id or app secret"),
        "the new app key was refused:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("\"code\":0") || stdout.contains("\"code\": 0"),
        "the user was created on the deployment API:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.trim_end().ends_with("hi"),
        "mosquitto_sub received what mosquitto_pub sent:\n{stdout}\n{stderr}"
    );
}

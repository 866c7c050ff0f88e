//! The broker against `tests/py/mqtt_conformance.py`: an MQTT 3.1/3.1.1/5.0 conformance
//! suite written against the specifications' normative statements and checked against
//! Mosquitto, driven by paho-mqtt and raw sockets (no rumqtt code on the client side).
//! Each test runs one check against a broker of its own; the check's docstring in the
//! script names the statements it proves.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Broker;

/// The project's Python (target/pytools, made by tests/setup-python.sh).
fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = std::env::var_os("SKYPORT_PYTOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/pytools"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash tests/setup-python.sh`",
        python.display()
    );
    python
}

async fn check(name: &str) {
    let broker = Broker::start(&["tcp"]).await;
    let addr = broker.addrs.tcp.unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/py/mqtt_conformance.py");
    let output = tokio::task::spawn_blocking({
        let name = name.to_owned();
        move || {
            Command::new(python())
                .arg(script)
                .args(["--host", &addr.ip().to_string()])
                .args(["--port", &addr.port().to_string()])
                .args(["--only", &name])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(&format!("PASS {name}")),
        "check {name} failed:\n{stdout}\n{stderr}\nbroker log:\n{}",
        broker.stderr()
    );
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                check(stringify!($name)).await;
            }
        )*
    };
}

checks!(
    qos_downgrade,
    v5_session_resume,
    v5_clean_start_with_expiry,
    v5_clean_start_discards,
    v5_disconnect_session_expiry,
    v3_persistent_session,
    dollar_topics_not_matched_by_wildcards,
    maximum_packet_size,
    no_local,
    will_delay,
    will_on_abnormal_disconnect_v311,
    connack_properties,
    receive_maximum_flow_control,
    redelivery_on_reconnect,
    retain_basics,
    retain_handling_and_as_published,
    subscription_identifier,
    topic_alias_inbound,
    auth_packet_refused,
    server_only_packet_closes,
    second_connect_closes,
    subscribe_bad_flags_closes,
    unsubscribe_no_filters_closes,
    connect_reserved_flag_closes,
    v311_password_without_username_closes,
    v5_duplicate_property_closes,
    v5_receive_maximum_zero_closes,
    v5_max_packet_size_zero_closes,
    qos2_exactly_once,
    shared_subscription,
    shared_subscription_after_unsubscribe,
    mqtt31,
    unsubscribe_stops_delivery,
    overlapping_subscriptions,
);

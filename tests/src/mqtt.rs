//! Real MQTT clients from outside the rumqtt family: mosquitto_pub/mosquitto_sub, and
//! paho-mqtt (Python) for WebSocket transports, which mosquitto's clients lack.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How a client reaches the broker.
#[derive(Clone, Debug)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// CA file to verify the server with; `None` for plain TCP.
    pub cafile: Option<std::path::PathBuf>,
    /// More mosquitto client arguments: credentials (`-u`, `-P`), client certificate
    /// (`--cert`, `--key`).
    pub extra: Vec<String>,
}

impl Target {
    /// Parses an endpoint URL such as `mqtts://127.0.0.1:40001`.
    pub fn from_url(url: &str, cafile: Option<&Path>) -> Self {
        let rest = url.split("://").nth(1).expect("URL has a scheme");
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = authority.rsplit_once(':').expect("URL has a port");
        Self {
            host: host.to_owned(),
            port: port.parse().expect("numeric port"),
            cafile: cafile.map(Path::to_path_buf),
            extra: Vec::new(),
        }
    }

    /// The same target, connecting with a username and password.
    pub fn with_credentials(mut self, username: &str, password: &str) -> Self {
        self.extra
            .extend(["-u", username, "-P", password].map(str::to_owned));
        self
    }

    /// The same target, presenting a client certificate (two-way TLS).
    pub fn with_client_cert(mut self, cert: &Path, key: &Path) -> Self {
        self.extra.extend([
            "--cert".to_owned(),
            cert.display().to_string(),
            "--key".to_owned(),
            key.display().to_string(),
        ]);
        self
    }

    fn mosquitto_args(&self, cmd: &mut Command) {
        cmd.args(["-h", &self.host, "-p", &self.port.to_string()]);
        if let Some(ca) = &self.cafile {
            cmd.arg("--cafile").arg(ca);
        }
        cmd.args(&self.extra);
    }
}

/// Runs `mosquitto_pub` or `mosquitto_sub` against `target` with `args`, requires it to
/// succeed, and returns what it printed.
pub fn mosquitto(target: &Target, program: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(program);
    target.mosquitto_args(&mut cmd);
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("mosquitto clients are installed (Debian mosquitto-clients)");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Outcome of a publish/subscribe exchange.
#[derive(Debug)]
pub struct Exchange {
    pub received: Option<String>,
    pub subscriber_stderr: String,
}

/// Subscribes with `mosquitto_sub`, publishes with `mosquitto_pub` until the subscriber
/// has the message (bounded), and returns what it received.
/// `version` is `mqttv31`, `mqttv311` or `mqttv5`.
pub fn mosquitto_exchange(
    target: &Target,
    version: &str,
    qos: u8,
    topic: &str,
    payload: &str,
) -> Exchange {
    let mut sub = Command::new("mosquitto_sub");
    target.mosquitto_args(&mut sub);
    sub.args([
        "-V",
        version,
        "-q",
        &qos.to_string(),
        "-t",
        topic,
        "-C",
        "1",
        "-W",
        "20",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let sub = sub
        .spawn()
        .expect("mosquitto_sub is installed (Debian mosquitto-clients)");
    let sub_pid = sub.id();
    // Publish repeatedly until the subscriber exits: it may not have subscribed yet.
    let publisher = {
        let target = target.clone();
        let (version, topic, payload) = (version.to_owned(), topic.to_owned(), payload.to_owned());
        std::thread::spawn(move || {
            for _ in 0..80 {
                if !crate::process::is_alive(sub_pid) {
                    return;
                }
                let mut publish = Command::new("mosquitto_pub");
                target.mosquitto_args(&mut publish);
                let _ = publish
                    .args([
                        "-V",
                        &version,
                        "-q",
                        &qos.to_string(),
                        "-t",
                        &topic,
                        "-m",
                        &payload,
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let out = sub.wait_with_output().expect("mosquitto_sub output");
    let _ = publisher.join();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Exchange {
        received: (out.status.success() && !stdout.is_empty()).then_some(stdout),
        subscriber_stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One `mosquitto_pub` (QoS 1, so the connection is complete before it exits):
/// whether it succeeded, and what it printed.
pub fn mosquitto_publish(
    target: &Target,
    version: &str,
    topic: &str,
    payload: &str,
) -> (bool, String) {
    let mut publish = Command::new("mosquitto_pub");
    target.mosquitto_args(&mut publish);
    let out = publish
        .args(["-V", version, "-q", "1", "-t", topic, "-m", payload])
        .stdin(Stdio::null())
        .output()
        .expect("mosquitto_pub is installed (Debian mosquitto-clients)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Runs the paho-mqtt exchange script over `transport` (`tcp` or `websockets`);
/// returns the payload received, or the script's error output.
pub fn paho_exchange(
    target: &Target,
    transport: &str,
    version: &str,
    qos: u8,
    topic: &str,
    payload: &str,
) -> Result<String, String> {
    let script = crate::workspace_root().join("tests/py/exchange.py");
    let mut cmd = Command::new(crate::python::interpreter());
    cmd.arg(script)
        .args(["--host", &target.host, "--port", &target.port.to_string()])
        .args(["--transport", transport, "--version", version])
        .args([
            "--qos",
            &qos.to_string(),
            "--topic",
            topic,
            "--payload",
            payload,
        ]);
    if let Some(ca) = &target.cafile {
        cmd.arg("--cafile").arg(ca);
    }
    let out = cmd.output().expect("running the paho exchange script");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

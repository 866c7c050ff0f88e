//! Helpers shared by the broker-node integration tests: certificates, a
//! config file, the real `skyport-broker` process, mosquitto clients and a
//! TCP-to-WebSocket bridge.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub const BROKER_BIN: &str = env!("CARGO_BIN_EXE_skyport-broker");

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call, for topics, payloads and dirs.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(unique("skyport-broker-test"));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback address nobody listens on right now, below the kernel's ephemeral range
/// (32768 and up on Linux). A port from `bind(0)` is an ephemeral one, which an outgoing
/// connection of another test may take as its source port while a broker restarts on it.
pub fn free_addr() -> SocketAddr {
    use std::hash::{BuildHasher, RandomState};
    let seed = RandomState::new();
    (0u32..)
        .map(|attempt| {
            let n = seed.hash_one((std::process::id(), attempt, Instant::now()));
            SocketAddr::from(([127, 0, 0, 1], 20_000 + (n % 12_000) as u16))
        })
        .find(|addr| StdTcpListener::bind(addr).is_ok())
        .expect("a free port below the ephemeral range")
}

/// A CA and a server certificate for `localhost` and 127.0.0.1, as PEM files.
pub struct Pki {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
    dir: PathBuf,
}

impl Pki {
    pub fn generate(dir: &Path, name: &str) -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();

        let pki = Self {
            ca_file: dir.join(format!("{name}-ca.pem")),
            cert_file: dir.join(format!("{name}-server.pem")),
            key_file: dir.join(format!("{name}-server.key")),
            ca,
            ca_key,
            dir: dir.to_owned(),
        };
        std::fs::write(&pki.ca_file, pki.ca.pem()).unwrap();
        // Chain, leaf first.
        std::fs::write(&pki.cert_file, format!("{}{}", cert.pem(), pki.ca.pem())).unwrap();
        std::fs::write(&pki.key_file, key.serialize_pem()).unwrap();
        pki
    }

    /// A server certificate for `host` issued by this CA, chain leaf first: (certificate
    /// file, key file).
    pub fn server_cert(&self, host: &str) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(vec![host.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, host);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let stem = unique(&format!("server-{}", host.replace('*', "star")));
        let cert_file = self.dir.join(format!("{stem}.pem"));
        let key_file = self.dir.join(format!("{stem}.key"));
        std::fs::write(&cert_file, format!("{}{}", cert.pem(), self.ca.pem())).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }

    /// A client certificate issued by this CA: (certificate file, key file).
    pub fn client_cert(&self, common_name: &str) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let cert_file = self.dir.join(format!("{common_name}-client.pem"));
        let key_file = self.dir.join(format!("{common_name}-client.key"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }
}

/// Listener addresses chosen for one broker.
#[derive(Debug, Clone)]
pub struct Addrs {
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    pub ws: Option<SocketAddr>,
    pub wss: Option<SocketAddr>,
    pub api: SocketAddr,
}

impl Addrs {
    /// Free ports for the named listeners (`tcp`, `tls`, `ws`, `wss`) plus the API.
    pub fn free(kinds: &[&str]) -> Self {
        let pick = |k| kinds.contains(&k).then(free_addr);
        Self {
            tcp: pick("tcp"),
            tls: pick("tls"),
            ws: pick("ws"),
            wss: pick("wss"),
            api: free_addr(),
        }
    }
}

/// The config file the control plane would write; unknown fields included on
/// purpose, and TLS paths relative to the config's directory.
pub fn config_json(addrs: &Addrs, with_tls: bool) -> String {
    let addr = |a: Option<SocketAddr>| match a {
        Some(a) => serde_json::Value::String(a.to_string()),
        None => serde_json::Value::Null,
    };
    let mut config = serde_json::json!({
        "deployment_id": "0192e3a4-test",
        "a_future_setting": {"enabled": true},
        "listeners": {
            "tcp": addr(addrs.tcp), "tls": addr(addrs.tls),
            "ws": addr(addrs.ws), "wss": addr(addrs.wss),
            "api": addrs.api.to_string(),
        },
        "limits": {"max_sessions": 1000, "max_tps": 1000},
    });
    if with_tls {
        config["tls"] = serde_json::json!({
            "cert_file": "tls-server.pem", "key_file": "tls-server.key"
        });
    }
    config.to_string()
}

/// The app key every test broker accepts on its deployment API.
pub const APP_ID: &str = "test-app";
pub const APP_SECRET: &str = "test-app-secret-0123456789";

/// `security.json` letting anonymous clients in (the tests about listeners and protocols
/// are not about authentication) with the test app key.
pub fn open_security() -> serde_json::Value {
    security_json(serde_json::json!({"authentication": {"allow_anonymous": true}}))
}

/// `settings` with the test app key added.
pub fn security_json(mut settings: serde_json::Value) -> serde_json::Value {
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(APP_SECRET.as_bytes()));
    settings["app_keys"] = serde_json::json!([{"app_id": APP_ID, "secret_sha256": hash}]);
    settings
}

/// Writes a file the way the control plane does: a new file renamed over the old one.
pub fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A running `skyport-broker`, killed when dropped.
pub struct Broker {
    child: Child,
    pub addrs: Addrs,
    pub pki: Pki,
    stderr_file: PathBuf,
    pub dir: TempDir,
}

impl Broker {
    /// Starts the broker with the named listeners, anonymous clients allowed, and waits
    /// for `/readyz`.
    pub async fn start(kinds: &[&str]) -> Self {
        Self::start_with_security(kinds, open_security()).await
    }

    /// Starts the broker with `security` as its `security.json`.
    pub async fn start_with_security(kinds: &[&str], security: serde_json::Value) -> Self {
        Self::start_with(kinds, security, None).await
    }

    /// Starts the broker with `security`, and `limits` in place of the default tier.
    pub async fn start_with(
        kinds: &[&str],
        security: serde_json::Value,
        limits: Option<serde_json::Value>,
    ) -> Self {
        let dir = TempDir::new();
        let pki = Pki::generate(dir.path(), "tls");
        let addrs = Addrs::free(kinds);
        let config = dir.path().join("broker.json");
        let mut json: serde_json::Value = serde_json::from_str(&config_json(&addrs, true)).unwrap();
        if let Some(limits) = limits {
            json["limits"] = limits;
        }
        std::fs::write(&config, json.to_string()).unwrap();
        write_atomic(
            &dir.path().join("security.json"),
            security.to_string().as_bytes(),
        );
        let stderr_file = dir.path().join("broker.log");
        let child = spawn_broker(&config, &stderr_file);
        let mut broker = Self {
            child,
            addrs,
            pki,
            stderr_file,
            dir,
        };
        broker.wait_ready().await;
        broker
    }

    async fn wait_ready(&mut self) {
        let url = format!("http://{}/readyz", self.addrs.api);
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("broker exited early ({status}): {}", self.stderr());
            }
            if let Ok(response) = client.get(&url).send().await {
                if response.status() == 200 {
                    let body: serde_json::Value = response.json().await.unwrap();
                    assert_eq!(body["status"], "ready", "{body}");
                    // The revision of the security settings in force (0: none written).
                    assert!(body["revision"].is_u64(), "{body}");
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "broker not ready: {}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A planned restart: SIGTERM, a clean exit, then the same configuration and data
    /// directory started again.
    pub async fn restart(&mut self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.wait_exit();
        assert!(exit.success(), "unclean exit ({exit}): {}", self.stderr());
        self.child = spawn_broker(&self.dir.path().join("broker.json"), &self.stderr_file);
        self.wait_ready().await;
    }

    /// A crash: SIGKILL (the child is this test's own process), then the same
    /// configuration and data directory started again.
    pub async fn crash_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.wait_exit();
        self.child = spawn_broker(&self.dir.path().join("broker.json"), &self.stderr_file);
        self.wait_ready().await;
    }

    /// Whether the process is still running (it has not exited or restarted).
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Replaces `security.json`; the running broker picks it up by itself.
    pub fn set_security(&self, security: &serde_json::Value) {
        write_atomic(
            &self.dir.path().join("security.json"),
            security.to_string().as_bytes(),
        );
    }

    /// A request to the deployment API at `path` (e.g. `/api/v4/acl`) with the test app key.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method, format!("http://{}{path}", self.addrs.api))
            .basic_auth(APP_ID, Some(APP_SECRET))
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_file).unwrap_or_default()
    }

    /// Waits (bounded) for the process to exit by itself.
    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_bounded(&mut self.child)
    }

    pub fn mqtt(&self, kind: &str) -> Target {
        let (addr, ca_file) = match kind {
            "tcp" => (self.addrs.tcp, None),
            "tls" => (self.addrs.tls, Some(self.pki.ca_file.clone())),
            _ => panic!("mosquitto clients speak tcp and tls only, not {kind}"),
        };
        Target {
            host: if ca_file.is_some() {
                "localhost"
            } else {
                "127.0.0.1"
            }
            .to_owned(),
            port: addr.expect("listener enabled").port(),
            ca_file,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- skyport-broker log ---\n{}", self.stderr());
        }
    }
}

pub fn spawn_broker(config: &Path, stderr_file: &Path) -> Child {
    Command::new(BROKER_BIN)
        .arg("--config")
        .arg(config)
        .env(
            "RUST_LOG",
            std::env::var("TEST_LOG").unwrap_or_else(|_| "info,skyport_broker=debug".to_owned()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr_file).unwrap())
        .spawn()
        .unwrap()
}

/// Waits up to 30 s for `child` to exit; kills it and fails otherwise.
pub fn wait_bounded(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where a mosquitto client connects.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub ca_file: Option<PathBuf>,
}

impl Target {
    pub fn args(&self, version: &str) -> Vec<String> {
        let mut args = vec![
            "-h".to_owned(),
            self.host.clone(),
            "-p".to_owned(),
            self.port.to_string(),
            "-V".to_owned(),
            version.to_owned(),
        ];
        if let Some(ca) = &self.ca_file {
            args.push("--cafile".to_owned());
            args.push(ca.display().to_string());
        }
        args
    }
}

/// A running `mosquitto_sub -d`, read line by line.
pub struct Subscriber {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    pub output: Vec<String>,
}

impl Subscriber {
    /// Subscribes to `topic` and waits until the SUBACK has arrived.
    pub async fn start(
        target: &Target,
        version: &str,
        qos: u8,
        topic: &str,
        extra: &[&str],
    ) -> Self {
        let mut sub = Self::spawn(target, version, qos, topic, extra);
        sub.read_until("received SUBACK").await;
        sub
    }

    /// Starts `mosquitto_sub` without waiting for anything.
    pub fn spawn(target: &Target, version: &str, qos: u8, topic: &str, extra: &[&str]) -> Self {
        // mosquitto_sub block-buffers stdout into a pipe; its SUBACK line is
        // needed as it happens, so force line buffering.
        let mut child = tokio::process::Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub"])
            .args(target.args(version))
            .args([
                "-t",
                topic,
                "-q",
                &qos.to_string(),
                "-C",
                "1",
                "-W",
                "10",
                "-d",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("mosquitto_sub (Debian package mosquitto-clients) must be installed");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            lines,
            output: Vec::new(),
        }
    }

    async fn read_until(&mut self, needle: &str) {
        let found = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                let hit = line.contains(needle);
                self.output.push(line);
                if hit {
                    return true;
                }
            }
            false
        })
        .await;
        if found != Ok(true) {
            let mut stderr = String::new();
            let _ = self.child.kill().await;
            if let Some(mut e) = self.child.stderr.take() {
                let _ = e.read_to_string(&mut stderr).await;
            }
            panic!(
                "mosquitto_sub never printed {needle:?}; stdout: {:#?}; stderr: {stderr}",
                self.output
            );
        }
    }

    /// Waits for the subscriber to exit, however it exits, and returns what it printed.
    pub async fn finish_any(mut self) -> Vec<String> {
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                self.output.push(line);
            }
            self.child.wait().await.unwrap()
        })
        .await
        .expect("mosquitto_sub did not exit");
        self.output
    }

    /// Waits for the subscriber to exit by itself and returns everything it printed.
    pub async fn finish(mut self) -> Vec<String> {
        let rest = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                self.output.push(line);
            }
            self.child.wait().await.unwrap()
        })
        .await;
        match rest {
            Ok(status) => assert!(
                status.success(),
                "mosquitto_sub failed ({status}): {:#?}",
                self.output
            ),
            Err(_) => panic!("mosquitto_sub did not exit: {:#?}", self.output),
        }
        self.output
    }
}

/// Runs `mosquitto_pub` to completion and returns its status and output (stdout, then
/// stderr).
pub async fn publish(
    target: &Target,
    version: &str,
    qos: u8,
    topic: &str,
    payload: &str,
    extra: &[&str],
) -> (ExitStatus, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new("mosquitto_pub")
            .args(target.args(version))
            .args(["-t", topic, "-q", &qos.to_string(), "-m", payload])
            .args(extra)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("mosquitto_pub did not exit")
    .expect("mosquitto_pub (Debian package mosquitto-clients) must be installed");
    (
        output.status,
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// One subscriber, one publisher: the message arrives once, at the asked QoS.
pub async fn exchange(target: &Target, version: &str, qos: u8) {
    let topic = unique(&format!("skyport/test/{version}/q{qos}"));
    let payload = unique("payload");
    let sub = Subscriber::start(target, version, qos, &topic, &[]).await;
    let (status, stderr) = publish(target, version, qos, &topic, &payload, &[]).await;
    assert!(
        status.success(),
        "mosquitto_pub {version} q{qos} failed: {stderr}"
    );
    let output = sub.finish().await;
    let received = format!("received PUBLISH (d0, q{qos}, r0,");
    assert!(
        output
            .iter()
            .any(|l| l.contains(&received) && l.contains(&topic)),
        "{version} q{qos}: no {received:?} in {output:#?}"
    );
    assert_eq!(
        output.iter().filter(|l| **l == payload).count(),
        1,
        "{version} q{qos}: payload not delivered exactly once: {output:#?}"
    );
}

/// A raw MQTT 3.1.1 CONNECT with a clean session, no credentials and `client_id`.
pub fn mqtt_connect_v311(client_id: &str) -> Vec<u8> {
    let mut body = b"\0\x04MQTT\x04\x02\0\x3c".to_vec();
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    assert!(body.len() < 128, "one-byte remaining length only");
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    packet
}

/// rustls client config trusting only `ca_file`.
pub fn client_tls(ca_file: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca_file).unwrap();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Opens a WebSocket to the broker at `addr` (over TLS when `ca_file` is given),
/// offering the `mqtt` subprotocol, and returns the stream and the subprotocol
/// the server chose.
pub async fn ws_connect(
    addr: SocketAddr,
    ca_file: Option<&Path>,
    path: &str,
) -> Result<(WebSocketStream<Box<dyn Io>>, Option<String>), tokio_tungstenite::tungstenite::Error> {
    let scheme = if ca_file.is_some() { "wss" } else { "ws" };
    let mut request = format!("{scheme}://localhost:{}{path}", addr.port())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("mqtt"));
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let stream: Box<dyn Io> = match ca_file {
        Some(ca) => {
            let connector = tokio_rustls::TlsConnector::from(client_tls(ca));
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            Box::new(connector.connect(name, tcp).await?)
        }
        None => Box::new(tcp),
    };
    let (ws, response) = tokio_tungstenite::client_async(request, stream).await?;
    let chosen = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    Ok((ws, chosen))
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A local TCP port whose connections are carried to the broker's WebSocket
/// listener, so mosquitto clients (which lack WebSocket support in this
/// version) can test it. Client bytes are cut into 3-byte binary messages so
/// MQTT packets span frames; the broker's messages are passed on whole.
pub struct WsBridge {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl WsBridge {
    pub async fn start(broker_ws: SocketAddr, ca_file: Option<PathBuf>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let ca_file = ca_file.clone();
                tokio::spawn(async move {
                    let (ws, chosen) = ws_connect(broker_ws, ca_file.as_deref(), "/mqtt")
                        .await
                        .expect("WebSocket handshake with the broker");
                    assert_eq!(chosen.as_deref(), Some("mqtt"), "subprotocol not echoed");
                    pump(ws, client).await;
                });
            }
        });
        Self { port, task }
    }

    pub fn target(&self) -> Target {
        Target {
            host: "127.0.0.1".to_owned(),
            port: self.port,
            ca_file: None,
        }
    }
}

impl Drop for WsBridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(ws: WebSocketStream<Box<dyn Io>>, client: TcpStream) {
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut client_rx, mut client_tx) = client.into_split();
    let upstream = async move {
        let mut buf = vec![0u8; 4096];
        loop {
            match client_rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    for chunk in buf[..n].chunks(3) {
                        if ws_tx.send(Message::binary(chunk.to_vec())).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        let _ = ws_tx.close().await;
    };
    let downstream = async move {
        while let Some(Ok(message)) = ws_rx.next().await {
            let data = match message {
                Message::Binary(data) => data,
                Message::Close(_) => break,
                _ => continue,
            };
            if client_tx.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = client_tx.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

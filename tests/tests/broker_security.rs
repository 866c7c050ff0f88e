//! Broker security end to end, as a user drives it: everything configured through the
//! control plane's API (app keys, authentication and authorization chains, TLS) or the
//! deployment's own `/api/v4` with those app keys, checked with mosquitto clients against
//! the real broker the control plane started, which keeps running (same pid) and keeps a
//! subscriber connected across every change.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, State};
use axum::http::StatusCode;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::{json, Value};
use skyport_tests::mqtt::{mosquitto_publish, Target};
use skyport_tests::{Api, ControlPlane};

/// Retries until `attempt` holds: configuration reaches the broker within a second or so.
async fn eventually(what: &str, mut attempt: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !attempt() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A CA that issues server and client certificates, as PEM strings and files.
struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    dir: PathBuf,
    name: String,
}

impl TestCa {
    fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            cert,
            key,
            dir: dir.to_owned(),
            name: name.to_owned(),
        }
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }

    fn file(&self) -> PathBuf {
        let path = self.dir.join(format!("{}-ca.pem", self.name));
        std::fs::write(&path, self.pem()).unwrap();
        path
    }

    /// (chain PEM leaf first, key PEM) for `names`.
    fn server(&self, names: &[&str]) -> (String, String) {
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (format!("{}{}", cert.pem(), self.pem()), key.serialize_pem())
    }

    /// Client certificate files (cert, key).
    fn client(&self, cn: &str) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let (cert_file, key_file) = (
            self.dir.join(format!("{cn}.pem")),
            self.dir.join(format!("{cn}.key")),
        );
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }
}

/// A running `mosquitto_sub` that must stay connected through the test.
struct Steady(std::process::Child);

impl Steady {
    fn start(target: &Target, topic: &str) -> Self {
        let mut cmd = std::process::Command::new("mosquitto_sub");
        cmd.args(["-h", &target.host, "-p", &target.port.to_string()])
            .args([
                "-V", "mqttv311", "-q", "1", "-t", topic, "-C", "1", "-i", "steady",
            ])
            .args(&target.extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        Self(cmd.spawn().unwrap())
    }

    /// Waits for its one message; fails if it had to reconnect or exited early.
    fn finish(self) -> String {
        let out = self.0.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "the steady subscriber failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

struct Deployment {
    cp: ControlPlane,
    api: Api,
    id: String,
    body: Value,
}

impl Deployment {
    async fn start() -> Self {
        let cp = ControlPlane::start();
        let (_, api) = cp.api.project_with_key("secure").await;
        let id = api.create_deployment("secure", "dedicated").await;
        let body = api.wait_status(&id, "running").await;
        Self { cp, api, id, body }
    }

    fn path(&self, rest: &str) -> String {
        format!("/deployments/{}{rest}", self.id)
    }

    fn tcp(&self) -> Target {
        Target::from_url(self.body["endpoints"]["mqtt"].as_str().unwrap(), None)
    }

    fn tls(&self, ca: &Path) -> Target {
        let mut target =
            Target::from_url(self.body["endpoints"]["mqtts"].as_str().unwrap(), Some(ca));
        target.host = "localhost".into();
        target
    }

    fn api_url(&self, path: &str) -> String {
        format!(
            "{}/api/v4{path}",
            self.body["endpoints"]["api"].as_str().unwrap()
        )
    }

    fn broker_pids(&self) -> Vec<u32> {
        self.cp.live_broker_pids()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn users_app_keys_and_tls_configured_through_the_api_apply_live() {
    let d = Deployment::start().await;
    let pids = d.broker_pids();
    let http = reqwest::Client::new();

    // Anonymous clients are refused by default.
    let (ok, output) = mosquitto_publish(&d.tcp(), "mqttv311", "t/anon", "x");
    assert!(!ok, "anonymous client connected: {output}");
    assert!(output.contains("bad user name or password"), "{output}");

    // An app key opens the deployment API; without one it answers 401.
    let key = d
        .api
        .post(&d.path("/app-keys"), json!({"name": "ops"}))
        .await;
    assert_eq!(key.status, 201, "{}", key.text);
    let (app_id, secret) = (
        key.body["app_id"].as_str().unwrap().to_owned(),
        key.body["app_secret"].as_str().unwrap().to_owned(),
    );
    let users = d.api_url("/auth_username");
    assert_eq!(http.get(&users).send().await.unwrap().status(), 401);
    let create_user = || {
        http.post(&users)
            .basic_auth(&app_id, Some(&secret))
            .json(&json!({"username": "dev", "password": "s3cret-pass"}))
            .send()
    };
    let mut created = None;
    for _ in 0..80 {
        let response = create_user().await.unwrap();
        if response.status() != 401 {
            created = Some(response.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        created,
        Some(reqwest::StatusCode::OK),
        "the app key never worked"
    );

    // The user connects; a wrong password does not.
    let user = d.tcp().with_credentials("dev", "s3cret-pass");
    let steady = Steady::start(&user, "t/steady");
    let (ok, output) = mosquitto_publish(&user, "mqttv5", "t/user", "x");
    assert!(ok, "{output}");
    let (ok, _) = mosquitto_publish(
        &d.tcp().with_credentials("dev", "nope"),
        "mqttv5",
        "t/user",
        "x",
    );
    assert!(!ok, "wrong password accepted");

    // Two-way TLS with an uploaded certificate and client CA.
    let dir = d.cp.data_dir.path();
    let server_ca = TestCa::new(dir, "server");
    let client_ca = TestCa::new(dir, "clients");
    let stranger_ca = TestCa::new(dir, "stranger");
    let (chain, key_pem) = server_ca.server(&["localhost", "127.0.0.1"]);
    let put = d
        .api
        .put(
            &d.path("/tls"),
            json!({"tls_type": "two-way", "cert": chain, "key": key_pem, "ca_cert": client_ca.pem()}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.body["source"], "custom");
    assert!(
        !put.text.contains("PRIVATE KEY"),
        "the key came back: {}",
        put.text
    );
    let (cert, key) = client_ca.client("device-1");
    let trusted = d
        .tls(&server_ca.file())
        .with_credentials("dev", "s3cret-pass")
        .with_client_cert(&cert, &key);
    eventually("a client of the uploaded CA connects", || {
        mosquitto_publish(&trusted, "mqttv311", "t/tls", "x").0
    })
    .await;
    let no_cert = d
        .tls(&server_ca.file())
        .with_credentials("dev", "s3cret-pass");
    assert!(
        !mosquitto_publish(&no_cert, "mqttv311", "t/tls", "x").0,
        "no client cert accepted"
    );
    let (cert, key) = stranger_ca.client("intruder");
    let stranger = d
        .tls(&server_ca.file())
        .with_credentials("dev", "s3cret-pass")
        .with_client_cert(&cert, &key);
    assert!(
        !mosquitto_publish(&stranger, "mqttv311", "t/tls", "x").0,
        "another CA accepted"
    );

    // Deleting the custom certificate brings back the Skyport-issued one.
    assert_eq!(d.api.delete(&d.path("/tls")).await.status, 204);
    let ca = d.api.get(&d.path("/ca.pem")).await;
    let skyport_ca = dir.join("skyport-ca.pem");
    std::fs::write(&skyport_ca, ca.text.as_bytes()).unwrap();
    let default = d.tls(&skyport_ca).with_credentials("dev", "s3cret-pass");
    eventually("the Skyport certificate is served again", || {
        mosquitto_publish(&default, "mqttv5", "t/tls", "x").0
    })
    .await;

    // Deleting the app key closes the deployment API again.
    assert_eq!(
        d.api
            .delete(&d.path(&format!("/app-keys/{app_id}")))
            .await
            .status,
        204
    );
    let mut refused = false;
    for _ in 0..80 {
        if create_user().await.unwrap().status() == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(refused, "a deleted app key still works");

    // Through all of it: the same broker process, and the subscriber never dropped.
    let (ok, output) = mosquitto_publish(&user, "mqttv311", "t/steady", "still-connected");
    assert!(ok, "{output}");
    assert_eq!(steady.finish(), "still-connected");
    assert_eq!(d.broker_pids(), pids, "the broker was restarted");
}

/// What the external auth service saw.
type Seen = Arc<Mutex<Vec<Vec<(String, String)>>>>;

async fn auth_service() -> (SocketAddr, Seen) {
    async fn auth(
        State(seen): State<Seen>,
        Form(params): Form<Vec<(String, String)>>,
    ) -> (StatusCode, &'static str) {
        seen.lock().unwrap().push(params.clone());
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match get("username").as_deref() {
            Some("ext-ok") if get("password").as_deref() == Some("pw") => (StatusCode::OK, "allow"),
            Some("local") => (StatusCode::OK, "ignore"),
            _ => (StatusCode::FORBIDDEN, "deny"),
        }
    }
    async fn acl(
        State(seen): State<Seen>,
        Form(params): Form<Vec<(String, String)>>,
    ) -> StatusCode {
        seen.lock().unwrap().push(params.clone());
        let topic = params
            .iter()
            .find(|(n, _)| n == "topic")
            .map(|(_, v)| v.as_str());
        if topic.is_some_and(|t| t.starts_with("forbidden/")) {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::OK
        }
    }
    let seen = Seen::default();
    let app = axum::Router::new()
        .route("/auth", axum::routing::post(auth))
        .route("/acl", axum::routing::post(acl))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn external_http_authentication_and_acl_configured_through_the_api() {
    let d = Deployment::start().await;
    let (addr, seen) = auth_service().await;
    let put = d
        .api
        .put(
            &d.path("/authentication"),
            json!({"allow_anonymous": false, "sources": [
                {"type": "http", "url": format!("http://{addr}/auth"), "method": "post",
                 "body": {"username": "%u", "password": "%P", "clientid": "%c", "proto": "%r"},
                 "timeout_ms": 2000, "cache_ttl_ms": 0},
                {"type": "built_in"},
            ]}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let put = d
        .api
        .put(
            &d.path("/authorization"),
            json!({"no_match": "allow", "sources": [
                {"type": "http", "url": format!("http://{addr}/acl"), "method": "post",
                 "body": {"username": "%u", "topic": "%t", "action": "%A"}, "cache_ttl_ms": 0},
            ]}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.body["warnings"], json!([]), "{}", put.text);

    let ok = d.tcp().with_credentials("ext-ok", "pw");
    eventually("the external authenticator admits ext-ok", || {
        mosquitto_publish(&ok, "mqttv5", "allowed/topic", "x").0
    })
    .await;
    let (accepted, _) = mosquitto_publish(
        &d.tcp().with_credentials("ext-ok", "bad"),
        "mqttv5",
        "t",
        "x",
    );
    assert!(!accepted, "the service's deny was ignored");
    // `ignore` defers to the built-in users, which have no `local`: refused.
    let (accepted, _) = mosquitto_publish(
        &d.tcp().with_credentials("local", "pw"),
        "mqttv311",
        "t",
        "x",
    );
    assert!(!accepted, "ignore + unknown built-in user was accepted");

    // The external ACL refuses one topic: a v5 QoS 1 publish there gets reason 0x87
    // (once the authorization chain, applied separately, is in force).
    let forbidden = || {
        let mut cmd = std::process::Command::new("mosquitto_pub");
        cmd.args([
            "-h",
            &ok.host,
            "-p",
            &ok.port.to_string(),
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-d",
        ])
        .args(["-t", "forbidden/x", "-m", "no"])
        .args(&ok.extra);
        let out = cmd.output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains("RC:135")
    };
    eventually("the external ACL refuses forbidden/x", forbidden).await;

    let seen = seen.lock().unwrap();
    let auth = seen
        .iter()
        .find(|p| p.iter().any(|(k, v)| k == "username" && v == "ext-ok"))
        .expect("the service saw ext-ok");
    assert!(auth.contains(&("proto".into(), "mqtt".into())), "{auth:?}");
    assert!(auth.contains(&("password".into(), "pw".into())), "{auth:?}");
    assert!(
        seen.iter()
            .any(|p| p.contains(&("topic".into(), "forbidden/x".into()))
                && p.contains(&("action".into(), "publish".into()))),
        "{seen:?}"
    );
}

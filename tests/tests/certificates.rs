//! Certificates renew themselves (issue 16, item 4), end to end on the local
//! orchestrator: a CA stored in plaintext by an earlier version is sealed with the secret
//! key at start; the control plane restarts with its clock moved 340 days forward
//! (`SKYPORT_CLOCK_OFFSET`, test only), and the leader renews the deployment's
//! certificate and a Skyport-issued domain certificate, records `certificate.renewed`,
//! and gives one `certificate.expiring` notice for an uploaded certificate. A real TLS
//! handshake (openssl s_client) then sees the new serial and expiry, verified against
//! the CA at the moved clock's time, while a mosquitto_sub connected over TLS before the
//! renewal is still on its first connection and receives what is published after it, and
//! the broker keeps its pid.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use rcgen::{CertificateParams, KeyPair};
use serde_json::{json, Value};
use skyport_tests::mqtt::{mosquitto_publish, Target};
use skyport_tests::{Api, Backend, ControlPlane};
use sqlx::{Connection, PgConnection, SqliteConnection};

/// How far the clock moves: the 365-day certificates are then 25 days from expiry,
/// inside the 30-day renewal window.
const OFFSET_DAYS: i64 = 340;

async fn eventually<F, Fut>(what: &str, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !attempt().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs `sql` with text `binds` on the control plane's database; returns the first
/// column of each row as text.
async fn db(url: &str, sql: &str, binds: &[&str]) -> Vec<String> {
    if url.starts_with("sqlite:") {
        let mut conn = SqliteConnection::connect(url).await.unwrap();
        let mut query = sqlx::query_scalar(sql);
        for bind in binds {
            query = query.bind(*bind);
        }
        query.fetch_all(&mut conn).await.unwrap()
    } else {
        let mut conn = PgConnection::connect(url).await.unwrap();
        let mut query = sqlx::query_scalar(sql);
        for bind in binds {
            query = query.bind(*bind);
        }
        query.fetch_all(&mut conn).await.unwrap()
    }
}

/// The certificate a TLS handshake with `port` shows: (serial, not_after, whether it
/// verified against `ca` for 127.0.0.1 at `at`).
fn served_certificate(
    port: u16,
    ca: &std::path::Path,
    at: DateTime<Utc>,
) -> (String, DateTime<Utc>, bool) {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            "-verify_ip",
            "127.0.0.1",
            "-attime",
            &at.timestamp().to_string(),
            "-CAfile",
        ])
        .arg(ca)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let verified = text.contains("Verify return code: 0 (ok)");
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-enddate"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    x509.stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let fields = String::from_utf8(x509.wait_with_output().unwrap().stdout).unwrap();
    let field = |name: &str| {
        fields
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {fields:?} (s_client said {text})"))
            .to_owned()
    };
    let end = field("notAfter=")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let not_after = NaiveDateTime::parse_from_str(&end, "%b %d %H:%M:%S %Y GMT")
        .unwrap_or_else(|e| panic!("notAfter {end:?}: {e}"))
        .and_utc();
    (field("serial="), not_after, verified)
}

/// A self-signed certificate for `domain` valid for `days`, as an owner would upload.
fn uploaded_certificate(domain: &str, days: i64) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![domain.to_owned()]).unwrap();
    set_validity(
        &mut params,
        Utc::now() - chrono::Duration::days(1),
        Utc::now() + chrono::Duration::days(days),
    );
    (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
}

/// Makes `params` valid from `from` to `to` (whole days, as rcgen takes them).
fn set_validity(params: &mut CertificateParams, from: DateTime<Utc>, to: DateTime<Utc>) {
    use chrono::Datelike;
    let day = |at: DateTime<Utc>| rcgen::date_time_ymd(at.year(), at.month() as u8, at.day() as u8);
    params.not_before = day(from);
    params.not_after = day(to);
}

/// Events of `kind` of the deployment.
async fn events(api: &Api, id: &str, kind: &str) -> Vec<Value> {
    let reply = api
        .get(&format!("/deployments/{id}/events?type={kind}&limit=100"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["items"].as_array().unwrap().clone()
}

/// A `mosquitto_sub -d` left running, its output collected line by line.
struct Subscriber {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Subscriber {
    fn start(target: &Target, topic: &str) -> Self {
        let mut child = Command::new("mosquitto_sub")
            .args([
                "-h",
                &target.host,
                "-p",
                &target.port.to_string(),
                "--cafile",
            ])
            .arg(target.cafile.as_ref().unwrap())
            .args(["-d", "-q", "1", "-i", "cert-watcher", "-t", topic])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub is installed");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Self { child, lines }
    }

    fn saw(&self, text: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn renewal(backend: Backend) {
    let mut cp = ControlPlane::start_with(backend, &["--certificate-check-interval", "1s"]);
    let url = cp.database_url().to_owned();

    // An earlier version stored the CA's key in plaintext: put one there.
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Legacy Skyport CA");
    set_validity(
        &mut ca_params,
        Utc::now() - chrono::Duration::days(1),
        Utc::now() + chrono::Duration::days(3650),
    );
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    cp.crash();
    db(
        &url,
        "UPDATE certificate_authority SET cert_pem = $1, key_pem = $2",
        &[&ca_pem, &ca_key.serialize_pem()],
    )
    .await;
    cp.restart();
    let stored = db(&url, "SELECT key_pem FROM certificate_authority", &[]).await;
    assert!(
        stored[0].starts_with("aes256gcm:"),
        "the CA key is sealed at start"
    );
    assert!(!stored[0].contains("PRIVATE KEY"));

    let (_, api) = cp.api.project_with_key("certs").await;
    let id = api.create_open_deployment("renewing", "dedicated").await;
    let body = api.wait_status(&id, "running").await;
    let served_ca = api.get(&format!("/deployments/{id}/ca.pem")).await.text;
    assert_eq!(served_ca, ca_pem, "the sealed legacy CA still signs");
    let mut ca = tempfile::NamedTempFile::new().unwrap();
    ca.write_all(ca_pem.as_bytes()).unwrap();
    let keys = db(
        &url,
        "SELECT key_ciphertext FROM deployment_certificates",
        &[],
    )
    .await;
    assert_eq!(keys.len(), 1, "the deployment's certificate is stored");
    assert!(keys[0].starts_with("aes256gcm:") && !keys[0].contains("PRIVATE KEY"));

    let tls = Target::from_url(
        body["endpoints"]["mqtts"].as_str().unwrap(),
        Some(ca.path()),
    );
    let plain = Target::from_url(body["endpoints"]["mqtt"].as_str().unwrap(), None);
    let (old_serial, old_not_after, verified) = served_certificate(tls.port, ca.path(), Utc::now());
    assert!(
        verified,
        "the first certificate verifies against the CA now"
    );

    // A Skyport-issued domain certificate (renewed too) and an uploaded one expiring in
    // 360 days (25 after the moved clock: one notice).
    let issued = api
        .post(
            &format!("/deployments/{id}/domains"),
            json!({ "domain": "issued.renewal.test" }),
        )
        .await;
    assert_eq!(issued.status, 201, "{}", issued.text);
    let (cert, key) = uploaded_certificate("uploaded.renewal.test", 360);
    let uploaded = api
        .post(
            &format!("/deployments/{id}/domains"),
            json!({ "domain": "uploaded.renewal.test", "certificate": cert, "private_key": key }),
        )
        .await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    let domain_expiry = issued.body["certificate"]["expires_at"].clone();

    // A client connected over TLS before the renewal.
    let subscriber = Subscriber::start(&tls, "certs/+");
    let mut n = 0;
    eventually("the TLS subscriber receives what is published", || {
        n += 1;
        let (ok, out) = mosquitto_publish(&plain, "mqttv311", "certs/before", &format!("b{n}"));
        assert!(ok, "{out}");
        let seen = subscriber.saw("certs/before") > 0;
        async move { seen }
    })
    .await;
    assert!(events(&api, &id, "certificate.renewed").await.is_empty());
    let pids = cp.live_broker_pids();
    assert_eq!(pids.len(), 1);

    // The clock moves forward: the certificates are 25 days from expiry.
    cp.set_env("SKYPORT_CLOCK_OFFSET", &format!("{OFFSET_DAYS}days"));
    cp.restart();
    let moved_now = || Utc::now() + chrono::Duration::days(OFFSET_DAYS);
    eventually("both certificates renewed and the notice given", || {
        let api = api.clone();
        let id = id.clone();
        async move {
            events(&api, &id, "certificate.renewed").await.len() == 2
                && events(&api, &id, "certificate.expiring").await.len() == 1
        }
    })
    .await;
    api.wait_status(&id, "running").await;
    let (new_serial, new_not_after, verified) =
        served_certificate(tls.port, ca.path(), moved_now());
    assert_ne!(new_serial, old_serial, "a new certificate is served");
    assert!(new_not_after > old_not_after + chrono::Duration::days(300));
    assert!(verified, "the renewed certificate verifies against the CA");

    let renewed = events(&api, &id, "certificate.renewed").await;
    let deployment = renewed
        .iter()
        .find(|e| e["details"]["certificate"] == "deployment")
        .expect("the deployment's renewal is in the event log");
    assert_eq!(deployment["actor"], "system");
    assert_eq!(
        deployment["details"]["previous_serial"],
        old_serial.as_str()
    );
    assert_eq!(deployment["details"]["serial"], new_serial.as_str());
    let domain = renewed
        .iter()
        .find(|e| e["details"]["domain"] == "issued.renewal.test")
        .expect("the domain's renewal is in the event log");
    assert_eq!(domain["details"]["previous_not_after"], domain_expiry);
    let listed = api
        .get(&format!("/deployments/{id}/domains/issued.renewal.test"))
        .await;
    assert_ne!(listed.body["certificate"]["expires_at"], domain_expiry);
    let notice = &events(&api, &id, "certificate.expiring").await[0];
    assert_eq!(notice["details"]["domain"], "uploaded.renewal.test");
    assert_eq!(notice["details"]["certificate"], "domain");

    // The subscriber is on its first connection and still receives.
    let mut n = 0;
    eventually(
        "the subscriber connected before the renewal receives after it",
        || {
            n += 1;
            let (ok, out) = mosquitto_publish(&plain, "mqttv311", "certs/after", &format!("a{n}"));
            assert!(ok, "{out}");
            let seen = subscriber.saw("certs/after") > 0;
            async move { seen }
        },
    )
    .await;
    assert_eq!(subscriber.saw("received CONNACK"), 1, "never reconnected");
    assert_eq!(cp.live_broker_pids(), pids, "the broker was not restarted");

    // Later checks renew nothing more and give no second notice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(events(&api, &id, "certificate.renewed").await.len(), 2);
    assert_eq!(events(&api, &id, "certificate.expiring").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_renew_without_dropping_clients_sqlite() {
    renewal(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_renew_without_dropping_clients_postgres() {
    renewal(Backend::Postgres).await;
}

//! Networking add-ons end to end on the local orchestrator, as a user drives them
//! through the control plane's API: custom domains verified against a real DNS server on
//! loopback and served by SNI (checked with openssl, carrying a real MQTT CONNECT), the
//! NAT gateway's egress address seen by an external auth service, and the internal
//! endpoint admitting only its allowed ranges. The broker keeps its pid throughout.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, State};
use serde_json::{json, Value};
use skyport_tests::dns::DnsServer;
use skyport_tests::mqtt::{mosquitto_publish, Target};
use skyport_tests::{Api, Backend, ControlPlane};

/// The default host the control plane under test puts in endpoints and DNS records.
const DEFAULT_HOST: &str = "broker.skyport.test";

/// MQTT 3.1.1 CONNECT: clean session, keep-alive 60 s, client id `net-test`.
const CONNECT: &[u8] = b"\x10\x14\x00\x04MQTT\x04\x02\x00\x3c\x00\x08net-test";

async fn eventually<F, Fut>(what: &str, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !attempt().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `openssl s_client` to `addr` asking for `server_name` by SNI and verifying the
/// certificate for it against `ca`; when the handshake verifies, sends an MQTT CONNECT
/// through it and returns the first bytes the broker answered (the CONNACK).
fn tls_connect(addr: SocketAddr, server_name: &str, ca: &Path) -> Result<Vec<u8>, String> {
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-no_ign_eof", "-verify_return_error"])
        .args(["-connect", &addr.to_string(), "-servername", server_name])
        .args(["-verify_hostname", server_name, "-CAfile"])
        .arg(ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    let mut stdin = child.stdin.take().unwrap();
    // The CONNECT goes in only after a verified handshake: openssl drops the
    // connection before reading stdin when verification fails.
    let _ = stdin.write_all(CONNECT);
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut connack = [0u8; 4];
        stdout.read_exact(&mut connack).map(|()| connack.to_vec())
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reader.is_finished() && Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    drop(stdin);
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    match reader.join().unwrap() {
        Ok(connack) => Ok(connack),
        Err(e) => Err(format!("{status}: {e}: {stderr}")),
    }
}

/// A raw MQTT CONNECT from source address `from` to `to`: the CONNACK's return code, or
/// why there was none.
async fn connect_from(from: IpAddr, to: SocketAddr) -> Result<u8, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(from, 0))
        .map_err(|e| e.to_string())?;
    let mut stream = socket.connect(to).await.map_err(|e| e.to_string())?;
    stream.write_all(CONNECT).await.map_err(|e| e.to_string())?;
    let mut connack = [0u8; 4];
    match tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut connack)).await {
        Ok(Ok(_)) if connack[0] == 0x20 => Ok(connack[3]),
        Ok(Ok(_)) => Err(format!("not a CONNACK: {connack:?}")),
        Ok(Err(e)) => Err(format!("closed: {e}")),
        Err(_) => Err("no answer".into()),
    }
}

struct Fixture {
    cp: ControlPlane,
    api: Api,
    id: String,
    body: Value,
    dns: DnsServer,
    ca: tempfile::NamedTempFile,
}

impl Fixture {
    async fn start(backend: Backend) -> Self {
        let dns = DnsServer::start().await;
        let dns_addr = dns.addr().to_string();
        let cp = ControlPlane::start_with(
            backend,
            &[
                "--public-host",
                DEFAULT_HOST,
                "--dns-server",
                &dns_addr,
                "--dns-recheck-interval",
                "1s",
            ],
        );
        let (_, api) = cp.api.project_with_key("networking").await;
        let id = api.create_open_deployment("net", "dedicated").await;
        let body = api.wait_status(&id, "running").await;
        let ca_pem = api.get(&format!("/deployments/{id}/ca.pem")).await.text;
        let mut ca = tempfile::NamedTempFile::new().unwrap();
        ca.write_all(ca_pem.as_bytes()).unwrap();
        Self {
            cp,
            api,
            id,
            body,
            dns,
            ca,
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("/deployments/{}{rest}", self.id)
    }

    /// The port of endpoint `name` (`mqtt`, `mqtts`).
    fn port(&self, name: &str) -> u16 {
        Target::from_url(self.body["endpoints"][name].as_str().unwrap(), None).port
    }

    /// Plain MQTT at 127.0.0.1 (the default host is a name only the test DNS knows).
    fn tcp(&self) -> Target {
        let mut target = Target::from_url(self.body["endpoints"]["mqtt"].as_str().unwrap(), None);
        target.host = "127.0.0.1".into();
        target
    }

    fn tls_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port("mqtts")))
    }

    async fn event_types(&self) -> Vec<String> {
        let events = self.api.get(&self.path("/events?limit=100")).await;
        events.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn settled(&self) -> bool {
        let d = self.api.get(&self.path("")).await.body;
        d["status"] == "running" && d["observed_generation"] == d["generation"]
    }
}

async fn custom_domains_flow(backend: Backend) {
    let f = Fixture::start(backend).await;
    let pids = f.cp.live_broker_pids();
    let ca = f.ca.path();

    // Bad names are refused with a precise code and nothing is stored.
    for bad in [
        "localhost",
        "127.0.0.1",
        "a..example.test",
        "-x.example.test",
    ] {
        f.api
            .post(&f.path("/domains"), json!({"domain": bad}))
            .await
            .assert_problem(422, "invalid_domain");
    }
    f.api
        .post(
            &f.path("/domains"),
            json!({"domain": "*.wild.example.test"}),
        )
        .await
        .assert_problem(422, "wildcard_needs_certificate");
    f.api
        .post(
            &f.path("/domains"),
            json!({"domain": "half.example.test", "certificate": "x"}),
        )
        .await
        .assert_problem(422, "certificate_incomplete");
    let listed = f.api.get(&f.path("/domains")).await;
    assert_eq!(listed.body["items"], json!([]), "{}", listed.text);

    // Added: pending, with the exact record to create.
    let added = f
        .api
        .post(&f.path("/domains"), json!({"domain": "MQTT.Example.Test."}))
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.body["domain"], "mqtt.example.test");
    assert_eq!(added.body["status"], "pending_dns");
    assert_eq!(
        added.body["dns_record"],
        json!({"name": "mqtt.example.test", "type": "CNAME", "value": DEFAULT_HOST})
    );
    assert_eq!(added.body["certificate"]["source"], "skyport");

    // Unique across projects.
    let (_, other) = f.cp.api.project_with_key("other").await;
    let other_id = other.create_deployment("other", "premium").await;
    other.wait_status(&other_id, "running").await;
    other
        .post(
            &format!("/deployments/{other_id}/domains"),
            json!({"domain": "mqtt.example.test"}),
        )
        .await
        .assert_problem(409, "domain_taken");

    // No record yet, then a wrong one: still pending, showing what DNS said.
    let verify = f.path("/domains/mqtt.example.test/verify");
    let pending = f.api.post(&verify, json!({})).await;
    assert_eq!(pending.status, 200, "{}", pending.text);
    assert_eq!(pending.body["status"], "pending_dns");
    assert_eq!(pending.body["observed"]["cname"], json!([]));
    f.dns
        .set_cname("mqtt.example.test", "elsewhere.example.net");
    let wrong = f.api.post(&verify, json!({})).await;
    assert_eq!(wrong.body["status"], "pending_dns", "{}", wrong.text);
    assert_eq!(
        wrong.body["observed"]["cname"],
        json!(["elsewhere.example.net"])
    );
    // Not served while pending: the default certificate does not name it.
    assert!(tls_connect(f.tls_addr(), "mqtt.example.test", ca).is_err());

    // The right CNAME: active, and served by SNI with MQTT working through it.
    let queries_before = f.dns.queries();
    f.dns.set_cname("mqtt.example.test", DEFAULT_HOST);
    let active = f.api.post(&verify, json!({})).await;
    assert_eq!(active.body["status"], "active", "{}", active.text);
    assert!(
        f.dns.queries() > queries_before,
        "the resolver really asked"
    );
    let mut connack = Err(String::new());
    eventually("the broker serves mqtt.example.test by SNI", || {
        connack = tls_connect(f.tls_addr(), "mqtt.example.test", ca);
        let ok = connack.is_ok();
        async move { ok }
    })
    .await;
    assert_eq!(connack.unwrap(), vec![0x20, 0x02, 0x00, 0x00]);
    // The default host keeps its certificate.
    assert!(tls_connect(f.tls_addr(), DEFAULT_HOST, ca).is_ok());

    // The documented alternative: an A record equal to the default host's address,
    // found by the background re-check without asking.
    f.dns.set_a(DEFAULT_HOST, &[Ipv4Addr::LOCALHOST]);
    f.dns.set_a("alt.example.test", &[Ipv4Addr::LOCALHOST]);
    let alt = f
        .api
        .post(&f.path("/domains"), json!({"domain": "alt.example.test"}))
        .await;
    assert_eq!(alt.status, 201, "{}", alt.text);
    eventually("the background check activates alt.example.test", || {
        let api = &f.api;
        let path = f.path("/domains/alt.example.test");
        async move { api.get(&path).await.body["status"] == "active" }
    })
    .await;

    // The deployment shows its domains.
    let network = f.api.get(&f.path("")).await.body["network"].clone();
    assert_eq!(
        network["domains"],
        json!([
            {"domain": "alt.example.test", "status": "active"},
            {"domain": "mqtt.example.test", "status": "active"},
        ])
    );

    // Removed: no longer served, other clients unaffected, same broker.
    let subscriber = f.tcp();
    let deleted = f.api.delete(&f.path("/domains/mqtt.example.test")).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    eventually("mqtt.example.test is no longer served", || {
        let gone = tls_connect(f.tls_addr(), "mqtt.example.test", ca).is_err();
        async move { gone }
    })
    .await;
    assert!(tls_connect(f.tls_addr(), "alt.example.test", ca).is_ok());
    assert!(mosquitto_publish(&subscriber, "mqttv311", "t/after", "x").0);
    f.api
        .get(&f.path("/domains/mqtt.example.test"))
        .await
        .assert_problem(404, "not_found");
    let live = f.cp.live_broker_pids();
    assert!(
        pids.iter().all(|pid| live.contains(pid)),
        "no broker restart"
    );

    let types = f.event_types().await;
    for expected in ["domain.added", "domain.verified", "domain.removed"] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} in {types:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_domains_are_verified_by_dns_and_served_by_sni_sqlite() {
    custom_domains_flow(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_domains_are_verified_by_dns_and_served_by_sni_postgres() {
    custom_domains_flow(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_uploaded_certificate_must_cover_the_domain() {
    let f = Fixture::start(Backend::Sqlite).await;
    let issuer = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Fleet test CA");
    let ca_cert = params.self_signed(&issuer).unwrap();
    let leaf = |names: &[&str]| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap()
                .signed_by(&key, &ca_cert, &issuer)
                .unwrap();
        (
            format!("{}{}", cert.pem(), ca_cert.pem()),
            key.serialize_pem(),
        )
    };
    let (cert, key) = leaf(&["other.example.test"]);
    f.api
        .post(
            &f.path("/domains"),
            json!({"domain": "mine.example.test", "certificate": cert, "private_key": key}),
        )
        .await
        .assert_problem(422, "certificate_domain_mismatch");
    let (_, other_key) = leaf(&["mine.example.test"]);
    let (cert, _) = leaf(&["mine.example.test"]);
    f.api
        .post(
            &f.path("/domains"),
            json!({"domain": "mine.example.test", "certificate": cert, "private_key": other_key}),
        )
        .await
        .assert_problem(422, "tls_key_mismatch");
    // A wildcard certificate covers a wildcard domain, served for any one label.
    let (cert, key) = leaf(&["*.fleet.example.test"]);
    let added = f
        .api
        .post(
            &f.path("/domains"),
            json!({"domain": "*.fleet.example.test", "certificate": cert, "private_key": key}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.body["certificate"]["source"], "uploaded");
    assert!(!added.text.contains("PRIVATE KEY"));
    f.dns.set_cname("*.fleet.example.test", DEFAULT_HOST);
    let verified = f
        .api
        .post(&f.path("/domains/*.fleet.example.test/verify"), json!({}))
        .await;
    assert_eq!(verified.body["status"], "active", "{}", verified.text);
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), ca_cert.pem()).unwrap();
    eventually("the wildcard certificate is served", || {
        let ok = tls_connect(f.tls_addr(), "truck-7.fleet.example.test", ca_file.path()).is_ok();
        async move { ok }
    })
    .await;
}

/// Peer addresses an external auth service saw, in order.
type Seen = Arc<Mutex<Vec<IpAddr>>>;

async fn auth_service() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/auth",
            axum::routing::post(
                |State(seen): State<Seen>, ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                    seen.lock().unwrap().push(peer.ip());
                    "ok"
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_nat_gateway_fixes_the_egress_address_of_external_auth() {
    let f = Fixture::start(Backend::Sqlite).await;
    let pids = f.cp.live_broker_pids();
    let (auth, seen) = auth_service().await;
    let chain = f
        .api
        .put(
            &f.path("/authentication"),
            json!({"allow_anonymous": false, "sources": [{
                "type": "http", "url": format!("http://{auth}/auth"), "method": "post",
                "cache_ttl_ms": 0
            }]}),
        )
        .await;
    assert_eq!(chain.status, 200, "{}", chain.text);
    let target = f.tcp().with_credentials("dev", "pw");
    // Seen from `from` after a connect that the service allowed.
    let seen_from = |from: IpAddr| {
        let target = target.clone();
        let seen = seen.clone();
        move || {
            let (ok, _) = mosquitto_publish(&target, "mqttv311", "t/nat", "x");
            let last = seen.lock().unwrap().last().copied();
            async move { ok && last == Some(from) }
        }
    };
    eventually(
        "auth requests from the default address",
        seen_from(Ipv4Addr::LOCALHOST.into()),
    )
    .await;

    f.api
        .get(&f.path("/nat-gateway"))
        .await
        .assert_problem(404, "not_found");
    let created = f.api.put(&f.path("/nat-gateway"), json!({})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["egress_addresses"], json!(["127.0.0.2"]));
    let egress: IpAddr = Ipv4Addr::new(127, 0, 0, 2).into();
    eventually("auth requests from the NAT address", seen_from(egress)).await;
    eventually("the NAT gateway is active", || {
        let api = &f.api;
        let path = f.path("/nat-gateway");
        async move { api.get(&path).await.body["status"] == "active" }
    })
    .await;
    // Idempotent: the addresses are fixed.
    let again = f.api.put(&f.path("/nat-gateway"), json!({})).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(
        f.api.get(&f.path("")).await.body["network"]["egress_addresses"],
        json!(["127.0.0.2"])
    );

    let deleted = f.api.delete(&f.path("/nat-gateway")).await;
    assert_eq!(deleted.status, 204);
    eventually(
        "auth requests from the default address again",
        seen_from(Ipv4Addr::LOCALHOST.into()),
    )
    .await;
    assert_eq!(f.cp.live_broker_pids(), pids, "no broker restart");
    let types = f.event_types().await;
    for expected in ["nat_gateway.created", "nat_gateway.deleted"] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} in {types:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_internal_endpoint_admits_only_allowed_ranges() {
    let f = Fixture::start(Backend::Sqlite).await;
    let pids = f.cp.live_broker_pids();
    let internal = SocketAddr::from(([127, 0, 0, 3], f.port("mqtt")));
    let (allowed, denied): (IpAddr, IpAddr) = (
        Ipv4Addr::new(127, 0, 0, 4).into(),
        Ipv4Addr::new(127, 0, 0, 9).into(),
    );

    for bad in [json!([]), json!(["10.0.0.1/8"]), json!(["ten"])] {
        f.api
            .put(&f.path("/internal-endpoint"), json!({"allowed_cidrs": bad}))
            .await
            .assert_problem(422, "invalid_cidr");
    }
    let created = f
        .api
        .put(
            &f.path("/internal-endpoint"),
            json!({"allowed_cidrs": ["127.0.0.4/31"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["address"], "127.0.0.3");
    assert_eq!(
        created.body["endpoints"]["mqtt"],
        format!("mqtt://127.0.0.3:{}", f.port("mqtt"))
    );
    eventually("the internal listener admits 127.0.0.4", || async move {
        connect_from(allowed, internal).await == Ok(0)
    })
    .await;
    let refused = connect_from(denied, internal).await;
    assert!(refused.is_err(), "127.0.0.9 was admitted: {refused:?}");

    let widened = f
        .api
        .put(
            &f.path("/internal-endpoint"),
            json!({"allowed_cidrs": ["127.0.0.4/31", "127.0.0.9"]}),
        )
        .await;
    assert_eq!(widened.status, 200, "{}", widened.text);
    eventually("127.0.0.9 is admitted after the change", || async move {
        connect_from(denied, internal).await == Ok(0)
    })
    .await;
    assert_eq!(
        f.api.get(&f.path("")).await.body["network"]["internal_endpoint"],
        json!({"address": "127.0.0.3", "allowed_cidrs": ["127.0.0.4/31", "127.0.0.9/32"]})
    );

    let deleted = f.api.delete(&f.path("/internal-endpoint")).await;
    assert_eq!(deleted.status, 204);
    eventually("the internal listener is closed", || async move {
        connect_from(allowed, internal).await.is_err()
    })
    .await;
    // The public listener never stopped.
    let public = SocketAddr::from(([127, 0, 0, 1], f.port("mqtt")));
    assert_eq!(
        connect_from(Ipv4Addr::LOCALHOST.into(), public).await,
        Ok(0)
    );
    eventually("the deployment settles", || f.settled()).await;
    assert_eq!(f.cp.live_broker_pids(), pids, "no broker restart");
    let types = f.event_types().await;
    for expected in [
        "internal_endpoint.created",
        "internal_endpoint.updated",
        "internal_endpoint.deleted",
    ] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} in {types:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_rules_guard_the_add_ons() {
    let f = Fixture::start(Backend::Sqlite).await;
    let serverless = f.api.create_deployment("small", "serverless").await;
    f.api.wait_status(&serverless, "running").await;
    let on = |rest: &str| format!("/deployments/{serverless}{rest}");
    f.api
        .post(&on("/domains"), json!({"domain": "s.example.test"}))
        .await
        .assert_problem(409, "plan_not_supported");
    f.api
        .put(&on("/nat-gateway"), json!({}))
        .await
        .assert_problem(409, "plan_not_supported");
    f.api
        .put(
            &on("/internal-endpoint"),
            json!({"allowed_cidrs": ["10.0.0.0/8"]}),
        )
        .await
        .assert_problem(409, "plan_not_supported");

    // A dedicated deployment with a NAT gateway cannot move to serverless.
    assert_eq!(
        f.api.put(&f.path("/nat-gateway"), json!({})).await.status,
        201
    );
    f.api
        .call(
            reqwest::Method::PATCH,
            &f.path(""),
            Some(json!({"plan": "serverless"})),
        )
        .await
        .assert_problem(409, "plan_feature_in_use");
    assert_eq!(f.api.get(&f.path("")).await.body["plan"], "dedicated");
    // Premium keeps it.
    let upgraded = f
        .api
        .call(
            reqwest::Method::PATCH,
            &f.path(""),
            Some(json!({"plan": "premium"})),
        )
        .await;
    assert_eq!(upgraded.status, 202, "{}", upgraded.text);
}

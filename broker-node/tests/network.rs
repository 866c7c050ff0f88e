//! Networking add-ons of a real `skyport-broker`, changed in `security.json` while it
//! runs: custom domains served by SNI, the egress address of external HTTP
//! authentication, and the internal endpoint.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    mqtt_connect_v311, open_security, publish, security_json, unique, Broker, Pki, Subscriber,
};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

const DOMAIN: &str = "mqtt.example.test";

/// Retries `attempt` until it returns true: the broker applies a new `security.json`
/// within about a second of the write.
async fn eventually<F, Fut>(what: &str, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !attempt().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the broker has logged `needle` `count` times.
async fn logged(broker: &Broker, needle: &str, count: usize) {
    eventually(&format!("{count} × {needle:?} in the log"), || async {
        broker.stderr().matches(needle).count() >= count
    })
    .await;
}

/// A CONNECT on `stream` and its answer: the 4-byte CONNACK, or why there was none.
async fn connack<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Result<[u8; 4], String> {
    let exchange = async {
        stream.write_all(&mqtt_connect_v311(&unique("net"))).await?;
        let mut connack = [0u8; 4];
        stream.read_exact(&mut connack).await?;
        Ok::<_, std::io::Error>(connack)
    };
    match tokio::time::timeout(Duration::from_secs(10), exchange).await {
        Ok(Ok(connack)) => Ok(connack),
        Ok(Err(e)) => Err(format!("closed: {e}")),
        Err(_) => Err("timeout".to_owned()),
    }
}

const ACCEPTED: [u8; 4] = [0x20, 0x02, 0x00, 0x00];

/// A TCP connection to `target` from the local address `source`.
async fn connect_from(source: &str, target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source.parse().unwrap(), 0))?;
    socket.connect(target).await
}

/// A rustls client trusting only `ca_file`, with a client certificate when given.
fn tls_client(ca_file: &Path, client_cert: Option<(&Path, &Path)>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut std::fs::read(ca_file).unwrap().as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = rustls_pemfile::certs(&mut std::fs::read(cert).unwrap().as_slice())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = rustls_pemfile::private_key(&mut std::fs::read(key).unwrap().as_slice())
                .unwrap()
                .unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A verified TLS handshake over `tcp` asking for `server_name`.
async fn tls_handshake(
    tcp: TcpStream,
    server_name: &str,
    connector: &tokio_rustls::TlsConnector,
) -> std::io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .expect("TLS handshake timed out")
}

async fn tls_connect(
    addr: SocketAddr,
    server_name: &str,
    connector: &tokio_rustls::TlsConnector,
) -> std::io::Result<TlsStream<TcpStream>> {
    tls_handshake(TcpStream::connect(addr).await?, server_name, connector).await
}

/// The server's leaf certificate on an established TLS connection.
fn leaf(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// The DNS names a certificate is valid for.
fn dns_names(cert: &CertificateDer<'_>) -> Vec<String> {
    rcgen::CertificateParams::from_ca_cert_der(cert)
        .unwrap()
        .subject_alt_names
        .into_iter()
        .filter_map(|san| match san {
            rcgen::SanType::DnsName(name) => Some(name.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

/// Whether a handshake failed because the certificate served is not valid for the name.
fn wrong_name(error: &std::io::Error) -> bool {
    matches!(
        error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. }
        ))
    )
}

fn with_domains(
    mut settings: serde_json::Value,
    domains: &[(&str, &Path, &Path)],
) -> serde_json::Value {
    let domains: Vec<_> = domains
        .iter()
        .map(|(domain, cert, key)| json!({"domain": domain, "cert_file": cert, "key_file": key}))
        .collect();
    settings["network"] = json!({ "domains": domains });
    settings
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_domains_are_served_by_sni_and_removed_live() {
    let broker = Broker::start(&["tcp", "tls"]).await;
    let tls_addr = broker.addrs.tls.unwrap();
    let (domain_cert, domain_key) = broker.pki.server_cert(DOMAIN);
    let connector = tls_client(&broker.pki.ca_file, None);
    let topic = unique("sni/steady");
    let sub = Subscriber::start(&broker.mqtt("tls"), "mqttv311", 1, &topic, &["-W", "120"]).await;

    broker.set_security(&with_domains(
        open_security(),
        &[(DOMAIN, &domain_cert, &domain_key)],
    ));
    eventually("the custom domain is served", || async {
        tls_connect(tls_addr, DOMAIN, &connector).await.is_ok()
    })
    .await;

    // (a) A verified handshake for the domain, then MQTT over it.
    let mut stream = tls_connect(tls_addr, DOMAIN, &connector).await.unwrap();
    assert_eq!(dns_names(&leaf(&stream)), [DOMAIN]);
    assert_eq!(connack(&mut stream).await, Ok(ACCEPTED));

    // (b) The same with OpenSSL, hostname checked.
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &tls_addr.to_string()])
        .args([
            "-servername",
            DOMAIN,
            "-verify_hostname",
            DOMAIN,
            "-verify_return_error",
        ])
        .arg("-CAfile")
        .arg(&broker.pki.ca_file)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl s_client: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // (c) Other names get the default certificate.
    let mut stream = tls_connect(tls_addr, "localhost", &connector)
        .await
        .unwrap();
    assert!(dns_names(&leaf(&stream)).contains(&"localhost".to_owned()));
    assert_eq!(connack(&mut stream).await, Ok(ACCEPTED));

    // (d) Without the domain, its name gets the default certificate, which fails to verify.
    broker.set_security(&open_security());
    eventually("the custom domain is no longer served", || async {
        match tls_connect(tls_addr, DOMAIN, &connector).await {
            Ok(_) => false,
            Err(e) => {
                assert!(wrong_name(&e), "unexpected handshake failure: {e}");
                true
            }
        }
    })
    .await;
    let (status, output) = publish(&broker.mqtt("tls"), "mqttv311", 1, &topic, "after", &[]).await;
    assert!(status.success(), "{output}");
    let output = sub.finish().await;
    assert!(output.iter().any(|l| l == "after"), "{output:#?}");
    let connects = output
        .iter()
        .filter(|l| l.contains("sending CONNECT"))
        .count();
    assert_eq!(connects, 1, "the subscriber reconnected: {output:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_domain_whose_key_does_not_match_is_refused_whole() {
    let broker = Broker::start(&["tcp", "tls"]).await;
    let tls_addr = broker.addrs.tls.unwrap();
    let connector = tls_client(&broker.pki.ca_file, None);
    let (domain_cert, domain_key) = broker.pki.server_cert(DOMAIN);
    let (_, other_key) = broker.pki.server_cert("other.example.test");
    let good_key = std::fs::read(&domain_key).unwrap();
    std::fs::copy(&other_key, &domain_key).unwrap();

    // The version also refuses anonymous clients: it must not apply in part.
    let mut settings = with_domains(
        security_json(json!({})),
        &[(DOMAIN, &domain_cert, &domain_key)],
    );
    broker.set_security(&settings);
    logged(&broker, "new security settings refused", 1).await;
    let (status, output) = publish(&broker.mqtt("tcp"), "mqttv311", 1, "net/probe", "x", &[]).await;
    assert!(status.success(), "the refused version applied: {output}");
    let error = tls_connect(tls_addr, DOMAIN, &connector).await.unwrap_err();
    assert!(wrong_name(&error), "{error}");

    // The right key, written under the same name, is noticed and makes the version good.
    common::write_atomic(&domain_key, &good_key);
    eventually("the corrected domain is served", || async {
        tls_connect(tls_addr, DOMAIN, &connector).await.is_ok()
    })
    .await;
    let (status, _) = publish(&broker.mqtt("tcp"), "mqttv311", 1, "net/probe", "x", &[]).await;
    assert!(!status.success(), "the whole version applies once good");

    // A name that is not a host name is refused too.
    settings["network"]["domains"][0]["domain"] = json!("not a host");
    settings["authentication"]["allow_anonymous"] = json!(true);
    broker.set_security(&settings);
    logged(&broker, "new security settings refused", 2).await;
    assert!(tls_connect(tls_addr, DOMAIN, &connector).await.is_ok());
    let (status, _) = publish(&broker.mqtt("tcp"), "mqttv311", 1, "net/probe", "x", &[]).await;
    assert!(!status.success(), "the refused version applied in part");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_way_tls_applies_to_custom_domains() {
    let broker = Broker::start(&["tls"]).await;
    let tls_addr = broker.addrs.tls.unwrap();
    let custom = Pki::generate(broker.dir.path(), "custom");
    let (domain_cert, domain_key) = custom.server_cert("*.example.test");
    let (client_cert, client_key) = custom.client_cert("device-1");
    let mut settings = with_domains(
        open_security(),
        &[("*.example.test", &domain_cert, &domain_key)],
    );
    settings["tls"] = json!({
        "tls_type": "two-way",
        "cert_file": custom.cert_file,
        "key_file": custom.key_file,
        "ca_file": custom.ca_file,
    });
    broker.set_security(&settings);
    let with_cert = tls_client(&custom.ca_file, Some((&client_cert, &client_key)));
    eventually("the wildcard domain is served with two-way TLS", || async {
        match tls_connect(tls_addr, DOMAIN, &with_cert).await {
            Ok(mut stream) => connack(&mut stream).await == Ok(ACCEPTED),
            Err(_) => false,
        }
    })
    .await;
    let stream = tls_connect(tls_addr, DOMAIN, &with_cert).await.unwrap();
    assert_eq!(dns_names(&leaf(&stream)), ["*.example.test"]);

    // Without a client certificate the server ends the handshake (TLS 1.3: on first read).
    let without = tls_client(&custom.ca_file, None);
    if let Ok(mut stream) = tls_connect(tls_addr, DOMAIN, &without).await {
        let answer = connack(&mut stream).await;
        assert!(
            answer.as_ref().is_err_and(|e| e.as_str() != "timeout"),
            "a client without a certificate got {answer:?}"
        );
    }
}

/// An HTTP authentication service that allows everyone and records each request's peer.
async fn auth_service() -> (SocketAddr, Arc<Mutex<Vec<IpAddr>>>) {
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = peers.clone();
    let app = axum::Router::new().route(
        "/auth",
        axum::routing::post(
            move |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(peer.ip());
                    "allow"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    (addr, peers)
}

#[tokio::test(flavor = "multi_thread")]
async fn external_auth_requests_leave_from_the_egress_address() {
    let (service, peers) = auth_service().await;
    let mut settings = security_json(json!({
        "authentication": {"allow_anonymous": false, "chain": [
            {"type": "http", "url": format!("http://{service}/auth"), "method": "post",
             "cache_ttl_ms": 0},
        ]},
        "network": {"egress_address": "127.0.0.2"},
    }));
    let broker = Broker::start_with_security(&["tcp"], settings.clone()).await;
    let target = broker.mqtt("tcp");
    let last_peer = || peers.lock().unwrap().last().copied();

    let (status, output) = publish(&target, "mqttv311", 1, "net/probe", "x", &[]).await;
    assert!(status.success(), "{output}");
    assert_eq!(last_peer(), Some("127.0.0.2".parse().unwrap()));

    settings["network"] = json!({});
    broker.set_security(&settings);
    eventually("requests leave from the default address", || async {
        let (status, _) = publish(&target, "mqttv311", 1, "net/probe", "x", &[]).await;
        status.success() && last_peer() == Some("127.0.0.1".parse().unwrap())
    })
    .await;
}

fn with_internal_endpoint(cidrs: &[&str]) -> serde_json::Value {
    let mut settings = open_security();
    settings["network"] = json!({
        "internal_endpoint": {"address": "127.0.0.3", "allowed_cidrs": cidrs},
    });
    settings
}

/// Whether a CONNECT from `source` to `target` is answered with an accepting CONNACK;
/// panics unless the connection is either served or closed.
async fn admitted(source: &str, target: SocketAddr) -> bool {
    let Ok(mut stream) = connect_from(source, target).await else {
        return false;
    };
    match connack(&mut stream).await {
        Ok(connack) => connack == ACCEPTED,
        Err(e) if e == "timeout" => panic!("{source} → {target}: neither served nor closed"),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_internal_endpoint_admits_only_allowed_peers_and_follows_reloads() {
    let mut broker =
        Broker::start_with_security(&["tcp", "tls"], with_internal_endpoint(&["127.0.0.4/31"]))
            .await;
    let pid = broker.pid();
    let public = broker.addrs.tcp.unwrap();
    let internal = SocketAddr::new("127.0.0.3".parse().unwrap(), public.port());
    let internal_tls = SocketAddr::new(internal.ip(), broker.addrs.tls.unwrap().port());

    eventually("the internal endpoint listens", || {
        admitted("127.0.0.4", internal)
    })
    .await;
    assert!(admitted("127.0.0.5", internal).await);
    assert!(
        !admitted("127.0.0.9", internal).await,
        "a peer outside the CIDRs got in"
    );
    assert!(admitted("127.0.0.1", public).await);
    logged(&broker, "peer outside the allowed CIDRs", 1).await;

    // The TLS listener is mirrored too, with the same certificate.
    let connector = tls_client(&broker.pki.ca_file, None);
    let tcp = connect_from("127.0.0.4", internal_tls).await.unwrap();
    let mut stream = tls_handshake(tcp, "localhost", &connector).await.unwrap();
    assert_eq!(connack(&mut stream).await, Ok(ACCEPTED));

    // New CIDRs apply in place, without rebinding or restarting.
    broker.set_security(&with_internal_endpoint(&["127.0.0.4/31", "127.0.0.9/32"]));
    eventually("127.0.0.9 is admitted", || admitted("127.0.0.9", internal)).await;
    assert!(broker.is_running() && broker.pid() == pid);
    assert_eq!(
        broker
            .stderr()
            .matches("internal endpoint listening")
            .count(),
        1
    );

    // Without the endpoint its port is closed; connections it accepted stay up.
    let mut held = connect_from("127.0.0.4", internal).await.unwrap();
    assert_eq!(connack(&mut held).await, Ok(ACCEPTED));
    broker.set_security(&open_security());
    eventually("the internal endpoint is closed", || async {
        TcpStream::connect(internal).await.is_err()
    })
    .await;
    held.write_all(&[0xc0, 0x00]).await.unwrap();
    let mut pingresp = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(10), held.read_exact(&mut pingresp))
        .await
        .expect("no PINGRESP")
        .expect("the held connection was closed");
    assert_eq!(pingresp, [0xd0, 0x00]);
    assert!(admitted("127.0.0.1", public).await);
    assert!(broker.is_running() && broker.pid() == pid);
}

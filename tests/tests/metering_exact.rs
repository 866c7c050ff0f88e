//! Metering is exact end to end: a scripted exchange of real mosquitto clients and HTTP
//! publishes through a real broker gives exactly the totals the rules of product §5 say,
//! computed here from a model of the script and from the bytes seen on the wire, even
//! though reports to the control plane are dropped, duplicated and lose their answers,
//! and the broker is restarted in the middle.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::{json, Value};
use skyport_tests::api::sum_points as sum;
use skyport_tests::{Api, Backend, ControlPlane};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP relay that counts the bytes each way: on plain TCP these are exactly the MQTT
/// application bytes the broker must meter.
struct CountingProxy {
    addr: SocketAddr,
    to_broker: Arc<AtomicU64>,
    to_client: Arc<AtomicU64>,
    open: Arc<AtomicU64>,
}

impl CountingProxy {
    async fn start(broker: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Self {
            addr: listener.local_addr().unwrap(),
            to_broker: Arc::default(),
            to_client: Arc::default(),
            open: Arc::default(),
        };
        let (up, down, open) = (
            proxy.to_broker.clone(),
            proxy.to_client.clone(),
            proxy.open.clone(),
        );
        tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                let server = TcpStream::connect(broker).await.unwrap();
                let (up, down, open) = (up.clone(), down.clone(), open.clone());
                open.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let _ = tokio::join!(
                        copy_counting(&mut cr, &mut sw, &up),
                        copy_counting(&mut sr, &mut cw, &down),
                    );
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        proxy
    }

    /// Waits until every relayed connection has closed.
    async fn wait_idle(&self) {
        for _ in 0..300 {
            if self.open.load(Ordering::SeqCst) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("connections still open through the counting proxy");
    }
}

async fn copy_counting(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    counter: &AtomicU64,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                counter.fetch_add(n as u64, Ordering::SeqCst);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// What the faulty relay in front of the ingest endpoint did.
#[derive(Default)]
struct Faults {
    requests: AtomicU64,
    dropped: AtomicU64,
    answer_lost: AtomicU64,
    duplicated: AtomicU64,
}

#[derive(Clone)]
struct Relay {
    upstream: Arc<Mutex<Option<String>>>,
    http: reqwest::Client,
    faults: Arc<Faults>,
}

/// An HTTP relay to the control plane that drops every 5th report before it arrives,
/// loses the answer of the next, and delivers the one after twice.
async fn start_faulty_relay() -> (SocketAddr, Relay) {
    let relay = Relay {
        upstream: Arc::default(),
        http: reqwest::Client::new(),
        faults: Arc::default(),
    };
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(relay.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, relay)
}

async fn forward(
    State(relay): State<Relay>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Bytes) {
    let n = relay.faults.requests.fetch_add(1, Ordering::SeqCst) + 1;
    if n % 5 == 1 {
        relay.faults.dropped.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::SERVICE_UNAVAILABLE, Bytes::new());
    }
    let Some(base) = relay.upstream.lock().unwrap().clone() else {
        return (StatusCode::SERVICE_UNAVAILABLE, Bytes::new());
    };
    let send = || {
        let mut request = relay
            .http
            .post(format!("{base}{}", uri.path()))
            .body(body.clone());
        for name in ["authorization", "content-type"] {
            if let Some(value) = headers.get(name) {
                request = request.header(name, value);
            }
        }
        request.send()
    };
    let times = if n % 5 == 3 { 2 } else { 1 };
    let mut last = (StatusCode::BAD_GATEWAY, Bytes::new());
    for _ in 0..times {
        if let Ok(response) = send().await {
            let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
            last = (status, response.bytes().await.unwrap_or_default());
        }
    }
    if times == 2 {
        relay.faults.duplicated.fetch_add(1, Ordering::SeqCst);
    }
    if n % 5 == 2 {
        relay.faults.answer_lost.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::BAD_GATEWAY, Bytes::new());
    }
    last
}

/// The script's model: which subscriptions are live, and the totals the rules give.
#[derive(Default, Debug, PartialEq, Eq)]
struct Expected {
    messages_in: u64,
    messages_out: u64,
    retained_out: u64,
    http_published: u64,
}

struct Model {
    subscriptions: Vec<(&'static str, &'static str)>,
    expected: Expected,
}

impl Model {
    fn deliveries(&self, topic: &str) -> u64 {
        self.subscriptions
            .iter()
            .filter(|(_, filter)| matches(filter, topic))
            .count() as u64
    }

    fn client_publish(&mut self, topic: &str) {
        self.expected.messages_in += 1;
        self.expected.messages_out += self.deliveries(topic);
    }

    fn http_publish(&mut self, topic: &str) {
        self.expected.http_published += 1;
        self.expected.messages_out += self.deliveries(topic);
    }
}

/// MQTT topic matching, written here independently of the broker's.
fn matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A `mosquitto_sub` that exits after `count` messages.
struct Sub(Child, std::thread::JoinHandle<Vec<String>>);

impl Sub {
    /// Subscribes and returns once the SUBACK has arrived.
    fn start(
        port: u16,
        version: &str,
        qos: u8,
        filter: &str,
        count: usize,
        extra: &[&str],
    ) -> Self {
        let mut child = Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub", "-h", "127.0.0.1"])
            .args([
                "-p",
                &port.to_string(),
                "-V",
                version,
                "-q",
                &qos.to_string(),
            ])
            .args(["-t", filter, "-C", &count.to_string(), "-W", "30", "-d"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub (mosquitto-clients) is installed");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let subscribed = line.contains("received SUBACK");
            seen.push(line);
            if subscribed {
                break;
            }
        }
        assert!(
            seen.iter().any(|l| l.contains("received SUBACK")),
            "{filter}: no SUBACK: {seen:?}"
        );
        let reader = std::thread::spawn(move || {
            seen.extend(lines.map_while(Result::ok));
            seen
        });
        Self(child, reader)
    }

    /// Waits for the subscriber to exit; returns the payloads it printed.
    fn finish(self) -> Vec<String> {
        payloads(&self.finish_raw())
    }

    /// Waits for the subscriber to exit; returns everything it printed.
    fn finish_raw(mut self) -> Vec<String> {
        let status = self.0.wait().unwrap();
        let lines = self.1.join().unwrap();
        assert!(
            status.success(),
            "mosquitto_sub failed ({status}): {lines:#?}"
        );
        lines
    }
}

/// The payload lines of `mosquitto_sub -d` output.
fn payloads(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| !l.starts_with("Client ") && !l.starts_with("Subscribed"))
        .cloned()
        .collect()
}

fn mosquitto_pub(port: u16, version: &str, qos: u8, topic: &str, payload: &str, retain: bool) {
    assert!(
        try_mosquitto_pub(port, version, qos, topic, payload, retain),
        "mosquitto_pub {topic} failed"
    );
}

fn try_mosquitto_pub(
    port: u16,
    version: &str,
    qos: u8,
    topic: &str,
    payload: &str,
    retain: bool,
) -> bool {
    let mut command = Command::new("mosquitto_pub");
    command
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", version])
        .args(["-q", &qos.to_string(), "-t", topic, "-m", payload]);
    if retain {
        command.arg("-r");
    }
    command.status().unwrap().success()
}

fn mqtt_addr(deployment: &Value) -> SocketAddr {
    let url = deployment["endpoints"]["mqtt"].as_str().unwrap();
    url.trim_start_matches("mqtt://").parse().unwrap()
}

/// HTTP Basic `POST` to the deployment API.
async fn deployment_api(
    deployment: &Value,
    key: &(String, String),
    path: &str,
    body: Value,
) -> Value {
    let base = deployment["endpoints"]["api"].as_str().unwrap();
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v4{path}"))
        .basic_auth(&key.0, Some(&key.1))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn open_deployment(api: &Api, name: &str) -> (String, (String, String)) {
    let id = api.create_deployment(name, "dedicated").await;
    let auth = api
        .put(
            &format!("/deployments/{id}/authentication"),
            json!({"allow_anonymous": true, "sources": [{"type": "built_in"}]}),
        )
        .await;
    assert_eq!(auth.status, 200, "{}", auth.text);
    let key = api
        .post(
            &format!("/deployments/{id}/app-keys"),
            json!({"name": "metering-test"}),
        )
        .await;
    assert_eq!(key.status, 201, "{}", key.text);
    let key = (
        key.body["app_id"].as_str().unwrap().to_owned(),
        key.body["app_secret"].as_str().unwrap().to_owned(),
    );
    (id, key)
}

#[tokio::test(flavor = "multi_thread")]
async fn scripted_exchange_is_metered_exactly_despite_faults_and_a_restart() {
    let (relay_addr, relay) = start_faulty_relay().await;
    let internal = format!("http://{relay_addr}");
    let cp = ControlPlane::start_with(
        Backend::Sqlite,
        &["--metering-interval", "1s", "--internal-url", &internal],
    );
    *relay.upstream.lock().unwrap() = Some(cp.base_url.clone());
    let (_, api) = cp.api.project_with_key("exact").await;
    let (id, key) = open_deployment(&api, "exact").await;
    let mut deployment = api.wait_status(&id, "running").await;
    let broker_addr = mqtt_addr(&deployment);
    let proxy = CountingProxy::start(broker_addr).await;
    let port = proxy.addr.port();
    let mut model = Model {
        subscriptions: Vec::new(),
        expected: Expected::default(),
    };

    // A retained message before anyone subscribes. The broker may take a moment to put
    // the open authentication in force; refused attempts publish nothing (their bytes are
    // counted on both sides alike).
    let mut published = false;
    for _ in 0..50 {
        published = try_mosquitto_pub(port, "mqttv311", 1, "ex/retained", "R", true);
        if published {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(published, "anonymous publishing never allowed");
    model.client_publish("ex/retained");
    // Subscribers; the first gets the retained message when it subscribes.
    let s1 = Sub::start(port, "mqttv311", 2, "ex/#", 9, &["-k", "5"]);
    model.expected.retained_out += 1;
    model.subscriptions.push(("s1", "ex/#"));
    let s2 = Sub::start(port, "mqttv5", 1, "ex/a", 4, &[]);
    model.subscriptions.push(("s2", "ex/a"));
    let s3 = Sub::start(port, "mqttv311", 0, "ex/b", 2, &[]);
    model.subscriptions.push(("s3", "ex/b"));
    // Subscription churn: one that leaves after its first message.
    let s4 = Sub::start(port, "mqttv311", 1, "ex/a", 1, &[]);
    model.subscriptions.push(("s4", "ex/a"));

    // Idle past s1's 5 s keep-alive: PINGREQ/PINGRESP cross the wire (and the byte
    // count) but are never TPS-counted.
    tokio::time::sleep(Duration::from_secs(6)).await;

    mosquitto_pub(port, "mqttv311", 0, "ex/a", "a0", false);
    model.client_publish("ex/a");
    assert_eq!(s4.finish(), ["a0"]);
    model.subscriptions.retain(|(name, _)| *name != "s4");
    mosquitto_pub(port, "mqttv5", 1, "ex/a", "a1", false);
    model.client_publish("ex/a");
    mosquitto_pub(port, "mqttv5", 2, "ex/a", "a2", false);
    model.client_publish("ex/a");
    mosquitto_pub(port, "mqttv311", 1, "ex/b", "b1", false);
    model.client_publish("ex/b");
    mosquitto_pub(port, "mqttv311", 2, "ex/c", "c2", false);
    model.client_publish("ex/c");

    // HTTP publishes: one, then a batch with one invalid message that is not published.
    let one = deployment_api(
        &deployment,
        &key,
        "/mqtt/publish",
        json!({"topic": "ex/b", "payload": "h1", "qos": 1}),
    )
    .await;
    assert_eq!(one["code"], 0, "{one}");
    model.http_publish("ex/b");
    let batch = deployment_api(
        &deployment,
        &key,
        "/mqtt/publish_batch",
        json!([
            {"topic": "ex/a", "payload": "aGk=", "encoding": "base64", "qos": 0},
            {"topic": "ex/+/bad", "payload": "never"},
            {"topic": "ex/c", "payload": "h3", "qos": 2},
        ]),
    )
    .await;
    let codes: Vec<u64> = batch["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [0, 115, 0], "{batch}");
    model.http_publish("ex/a");
    model.http_publish("ex/c");

    let s1_log = s1.finish_raw();
    assert!(
        s1_log.iter().any(|l| l.contains("sending PINGREQ")),
        "s1 never pinged: {s1_log:#?}"
    );
    // The broker sends them in this order [MQTT-4.6.0-6], but libmosquitto hands a QoS 2
    // message to the application only once its PUBREL arrives, so a QoS 0/1 message sent
    // right after a QoS 2 one may be printed first: compare them as a set.
    let mut s1_payloads = payloads(&s1_log);
    s1_payloads.sort();
    assert_eq!(
        s1_payloads,
        ["R", "a0", "a1", "a2", "b1", "c2", "h1", "h3", "hi"]
    );
    assert_eq!(s2.finish(), ["a0", "a1", "a2", "hi"]);
    assert_eq!(s3.finish(), ["b1", "h1"]);

    // A planned broker restart in the middle of the metering period.
    assert_eq!(
        api.post(&format!("/deployments/{id}/stop"), json!({}))
            .await
            .status,
        202
    );
    api.wait_status(&id, "stopped").await;
    assert_eq!(
        api.post(&format!("/deployments/{id}/start"), json!({}))
            .await
            .status,
        202
    );
    deployment = api.wait_status(&id, "running").await;
    assert_eq!(
        mqtt_addr(&deployment),
        broker_addr,
        "the broker kept its port"
    );
    model.subscriptions.clear();
    mosquitto_pub(port, "mqttv5", 1, "ex/after", "z", false);
    model.client_publish("ex/after");
    let after = deployment_api(
        &deployment,
        &key,
        "/mqtt/publish",
        json!({"topic": "ex/after", "payload": "z"}),
    )
    .await;
    assert_eq!(after["code"], 0);
    model.http_publish("ex/after");
    proxy.wait_idle().await;

    let expected = model.expected;
    let bytes_in = proxy.to_broker.load(Ordering::SeqCst);
    let bytes_out = proxy.to_client.load(Ordering::SeqCst);
    let to = (chrono::Utc::now() + chrono::Duration::minutes(2)).format("%Y-%m-%dT%H:%M:00Z");
    let mut got = Value::Null;
    for _ in 0..300 {
        let m = api
            .get(&format!("/deployments/{id}/metrics?step=1m&to={to}"))
            .await;
        assert_eq!(m.status, 200, "{}", m.text);
        got = m.body;
        let done = sum(&got, "http_published") >= expected.http_published
            && sum(&got, "messages_in") >= expected.messages_in
            && sum(&got, "bytes_out") >= bytes_out
            && sum(&got, "bytes_in") >= bytes_in;
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let measured = Expected {
        messages_in: sum(&got, "messages_in"),
        messages_out: sum(&got, "messages_out"),
        retained_out: sum(&got, "retained_out"),
        http_published: sum(&got, "http_published"),
    };
    assert_eq!(measured, expected, "{got}");
    assert_eq!(
        sum(&got, "messages"),
        expected.messages_in
            + expected.messages_out
            + expected.retained_out
            + expected.http_published
    );
    assert_eq!(sum(&got, "bytes_in"), bytes_in, "bytes in: {got}");
    assert_eq!(sum(&got, "bytes_out"), bytes_out, "bytes out: {got}");
    assert_eq!(sum(&got, "dropped"), 0);
    // The faults really happened.
    let faults = &relay.faults;
    assert!(faults.dropped.load(Ordering::SeqCst) >= 1);
    assert!(faults.answer_lost.load(Ordering::SeqCst) >= 1);
    assert!(faults.duplicated.load(Ordering::SeqCst) >= 1);
}

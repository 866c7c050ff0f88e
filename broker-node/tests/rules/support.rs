//! What every rule test does: a node with the rule engine, resources and rules created
//! through `/api/v4`, numbered messages published with a real client (mosquitto_pub),
//! bounded waits, and a TCP relay that stands for a sink going down.
#![allow(dead_code, reason = "each sink's tests use a different subset")]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::common::{self, unique, Broker};

/// A TCP relay to a service that the test takes down and brings back up, standing for
/// the service failing (the machine's service itself is never stopped).
pub struct Relay {
    pub addr: SocketAddr,
    target: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    pub async fn start(target: &str) -> Self {
        let mut relay = Self {
            addr: common::free_addr(),
            target: target.parse().unwrap(),
            task: None,
        };
        relay.up().await;
        relay
    }

    pub async fn up(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            // Dropped with the task: every relayed connection closes with it.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Closes the listener and every relayed connection.
    pub async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Polls `probe` until it returns `Some` (bounded; never a timing assertion).
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `{"n": n, "temp": n % 50}` for each n in `from..to`: the payloads the tests publish.
pub fn numbers(from: usize, to: usize) -> Vec<String> {
    (from..to)
        .map(|n| json!({"n": n, "temp": n % 50}).to_string())
        .collect()
}

/// A node under test, with a topic prefix of its own.
pub struct Node {
    pub broker: Broker,
    pub prefix: String,
}

impl Node {
    pub async fn start(tag: &str) -> Self {
        Self {
            broker: Broker::start(&["tcp"]).await,
            prefix: unique(tag),
        }
    }

    /// A node whose config has `limits` (e.g. a plan or a buffer size).
    pub async fn start_with_limits(tag: &str, limits: Value) -> Self {
        let mut full = json!({"max_sessions": 100});
        full.as_object_mut()
            .unwrap()
            .extend(limits.as_object().unwrap().clone());
        Self {
            broker: Broker::start_with(&["tcp"], common::open_security(), Some(full)).await,
            prefix: unique(tag),
        }
    }

    /// A request to the deployment API: status and JSON answer.
    pub async fn api(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.broker.api(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates `body` at `path` (`/api/v4/rules` or `/resources`); its `data`.
    pub async fn create(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.api(Method::POST, path, Some(body)).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["code"], 0, "{answer}");
        answer["data"].clone()
    }

    /// Creates a resource of `kind`; its id.
    pub async fn resource(&self, kind: &str, config: Value) -> String {
        self.create("/api/v4/resources", json!({"type": kind, "config": config}))
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates a rule running `rawsql` with one action `name`; its id.
    pub async fn rule(&self, rawsql: &str, name: &str, params: Value) -> String {
        self.create(
            "/api/v4/rules",
            json!({"rawsql": rawsql, "actions": [{"name": name, "params": params}]}),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `GET /api/v4/rules/{id}`'s data.
    pub async fn rule_view(&self, id: &str) -> Value {
        let (status, answer) = self
            .api(Method::GET, &format!("/api/v4/rules/{id}"), None)
            .await;
        assert_eq!(status, 200, "{answer}");
        answer["data"].clone()
    }

    /// Whether resource `id` reaches its service now (`GET /api/v4/resources/{id}`).
    pub async fn resource_alive(&self, id: &str) -> bool {
        let (status, answer) = self
            .api(Method::GET, &format!("/api/v4/resources/{id}"), None)
            .await;
        assert_eq!(status, 200, "{answer}");
        answer["data"]["status"][0]["is_alive"].as_bool().unwrap()
    }

    /// The rule once `matched` reached `n`.
    pub async fn matched(&self, id: &str, n: u64) -> Value {
        eventually(&format!("rule {id} matched {n}"), || async {
            let r = self.rule_view(id).await;
            (r["metrics"][0]["matched"] == n).then_some(r)
        })
        .await
    }

    /// Publishes `lines` as QoS 1 messages on `<prefix>/<topic>` as client `client_id`,
    /// one `mosquitto_pub -l` connection.
    pub async fn publish_lines(&self, topic: &str, client_id: &str, lines: &[String]) {
        let mut child = tokio::process::Command::new("mosquitto_pub")
            .args(self.broker.mqtt("tcp").args("mqttv311"))
            .args(["-t", &format!("{}/{topic}", self.prefix)])
            .args(["-q", "1", "-i", client_id, "-l"])
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("mosquitto_pub (Debian package mosquitto-clients) must be installed");
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all((lines.join("\n") + "\n").as_bytes())
            .await
            .unwrap();
        drop(stdin);
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("mosquitto_pub did not exit")
            .unwrap();
        assert!(status.success());
    }

    /// Publishes [`numbers`]`(from, to)` on `<prefix>/<topic>`.
    pub async fn publish_numbers(&self, topic: &str, client_id: &str, from: usize, to: usize) {
        self.publish_lines(topic, client_id, &numbers(from, to))
            .await;
    }
}

/// The outage every external sink goes through. Rule `rule` (one action, into
/// `resource`, a service behind the relay) turns each published number `n` of client
/// `client_id` into what the sink holds as `expected(n)`, oldest first. 30 messages
/// arrive exactly once; the relay goes down; 30 more are published and wait in the
/// buffer (across a planned restart of the node when `restart`); the relay comes back:
/// all 60 are there, in order, nothing twice, and the rule's metrics count each once.
pub struct Outage<'a> {
    pub resource: &'a str,
    pub rule: &'a str,
    pub client_id: &'a str,
    pub restart: bool,
}

impl Outage<'_> {
    /// Runs it; `received` reads what the sink holds.
    pub async fn run<F, Fut>(
        &self,
        node: &mut Node,
        relay: &mut Relay,
        expected: impl Fn(usize) -> String,
        received: F,
    ) where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Vec<String>>,
    {
        let Self {
            resource,
            rule,
            client_id,
            restart,
        } = *self;
        let expected = |to: usize| (0..to).map(&expected).collect::<Vec<_>>();
        let arrived = |n: usize| {
            let received = &received;
            async move {
                eventually(&format!("{n} outputs in the sink"), || async {
                    let got = received().await;
                    (got.len() >= n).then_some(())
                })
                .await;
                // Anything delivered twice would show up by now.
                tokio::time::sleep(Duration::from_millis(300)).await;
                received().await
            }
        };

        node.publish_numbers("a", client_id, 0, 30).await;
        assert_eq!(arrived(30).await, expected(30), "exactly once, in order");
        let r = node.matched(rule, 30).await;
        eventually("30 delivered", || async {
            let r = node.rule_view(rule).await;
            (r["actions"][0]["metrics"][0]["success"] == 30).then_some(())
        })
        .await;
        assert_eq!(r["metrics"][0]["no_result"], 0, "{r}");

        // The service goes away: MQTT goes on, outputs wait in the buffer.
        assert!(node.resource_alive(resource).await);
        relay.down().await;
        node.publish_numbers("a", client_id, 30, 60).await;
        assert!(!node.resource_alive(resource).await);
        let r = node.matched(rule, 60).await;
        assert_eq!(r["actions"][0]["metrics"][0]["success"], 30, "{r}");
        if restart {
            // A planned restart keeps the buffer.
            node.broker.restart().await;
        }
        relay.up().await;
        assert_eq!(
            arrived(60).await,
            expected(60),
            "nothing lost, nothing twice, in order"
        );
        let r = eventually("the buffer drained", || async {
            let r = node.rule_view(rule).await;
            (r["actions"][0]["metrics"][0]["queued"] == 0).then_some(r)
        })
        .await;
        assert_eq!(r["actions"][0]["metrics"][0]["dropped"], 0, "{r}");
        if !restart {
            assert_eq!(r["actions"][0]["metrics"][0]["success"], 60, "{r}");
        }
    }
}

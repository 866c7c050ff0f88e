//! Data integrations on a real node: rules created through `/api/v4/rules` select and
//! transform real MQTT traffic (mosquitto clients) into real sinks — the node itself
//! (republish), an HTTP receiver this test runs, the machine's Redis and PostgreSQL —
//! exactly once per matched message; a sink cut off mid-stream (a TCP relay the test
//! controls) loses nothing that fits the buffer, across a planned restart too; bad
//! statements and configs are refused with precise errors and store nothing.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{publish, unique, Broker, Subscriber};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const REDIS: &str = "127.0.0.1:6379";

fn postgres_url() -> String {
    std::env::var("SKYPORT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
        + "/test"
}

/// A TCP relay to a service that the test takes down and brings back up, standing for
/// the service failing (the machine's service itself is never stopped).
struct Relay {
    addr: SocketAddr,
    target: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start(target: &str) -> Self {
        let mut relay = Self {
            addr: common::free_addr(),
            target: target.parse().unwrap(),
            task: None,
        };
        relay.up().await;
        relay
    }

    async fn up(&mut self) {
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
    async fn down(&mut self) {
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

async fn api(broker: &Broker, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = broker.api(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Creates `body` at `path` (`/api/v4/rules` or `/resources`) and returns its `data`.
async fn create(broker: &Broker, path: &str, body: Value) -> Value {
    let (status, answer) = api(broker, Method::POST, path, Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["code"], 0, "{answer}");
    answer["data"].clone()
}

/// Polls `probe` until it returns `Some` (bounded; never a timing assertion).
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
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

/// Publishes each line of `lines` as one message on one `mosquitto_pub -l` connection.
async fn publish_lines(broker: &Broker, qos: u8, topic: &str, client_id: &str, lines: &[String]) {
    let mut child = tokio::process::Command::new("mosquitto_pub")
        .args(broker.mqtt("tcp").args("mqttv311"))
        .args(["-t", topic, "-q", &qos.to_string(), "-i", client_id, "-l"])
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

async fn rule(broker: &Broker, id: &str) -> Value {
    let (status, answer) = api(broker, Method::GET, &format!("/api/v4/rules/{id}"), None).await;
    assert_eq!(status, 200, "{answer}");
    answer["data"].clone()
}

fn numbers(from: usize, to: usize) -> Vec<String> {
    (from..to)
        .map(|n| json!({"n": n, "temp": n % 50}).to_string())
        .collect()
}

async fn redis_list(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<String> {
    redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn republish_selects_and_transforms_and_survives_a_restart() {
    let mut broker = Broker::start(&["tcp"]).await;
    let prefix = unique("rp");
    let created = create(
        &broker,
        "/api/v4/rules",
        json!({
            "rawsql": format!(
                "SELECT payload.temp AS t, upper(clientid) AS who, nth(2, split(topic, '/')) AS dev \
                 FROM \"{prefix}/+/temp\" WHERE payload.temp > 20 AND topic =~ '{prefix}/#'"
            ),
            "actions": [{"name": "republish", "params": {
                "target_topic": format!("{prefix}/out/${{dev}}"),
                "target_qos": 1,
                "payload_tmpl": "${who} ${t}"
            }}],
            "description": "hot devices"
        }),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["for"], json!([format!("{prefix}/+/temp")]));
    assert_eq!(created["enabled"], true);

    // The republished message reaches a subscriber as any publish would.
    let target = broker.mqtt("tcp");
    let sub = Subscriber::start(&target, "mqttv311", 1, &format!("{prefix}/out/#"), &["-v"]).await;
    let cold = publish(
        &target,
        "mqttv5",
        1,
        &format!("{prefix}/d1/temp"),
        r#"{"temp": 3}"#,
        &["-i", "dev-a"],
    )
    .await;
    assert!(cold.0.success(), "{}", cold.1);
    let hot = publish(
        &target,
        "mqttv5",
        1,
        &format!("{prefix}/d2/temp"),
        r#"{"temp": 25}"#,
        &["-i", "dev-b"],
    )
    .await;
    assert!(hot.0.success(), "{}", hot.1);
    let output = sub.finish().await;
    assert!(
        output
            .iter()
            .any(|l| l == &format!("{prefix}/out/d2 DEV-B 25")),
        "{output:#?}"
    );
    let metrics = eventually("metrics count the match", || async {
        let r = rule(&broker, &id).await;
        (r["actions"][0]["metrics"][0]["success"] == 1).then_some(r)
    })
    .await;
    assert_eq!(metrics["metrics"][0]["matched"], 1, "{metrics}");
    assert_eq!(metrics["metrics"][0]["no_result"], 1, "{metrics}");

    // Rules live in the node's store: a planned restart keeps them in force.
    broker.restart().await;
    let (_, list) = api(&broker, Method::GET, "/api/v4/rules", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    let target = broker.mqtt("tcp");
    let sub = Subscriber::start(&target, "mqttv311", 0, &format!("{prefix}/out/#"), &["-v"]).await;
    let hot = publish(
        &target,
        "mqttv311",
        0,
        &format!("{prefix}/d3/temp"),
        r#"{"temp": 30}"#,
        &["-i", "dev-c"],
    )
    .await;
    assert!(hot.0.success());
    let output = sub.finish().await;
    assert!(
        output
            .iter()
            .any(|l| l == &format!("{prefix}/out/d3 DEV-C 30")),
        "{output:#?}"
    );

    // Disabled: applied at once, nothing republished, the rule stays.
    let (status, changed) = api(
        &broker,
        Method::PUT,
        &format!("/api/v4/rules/{id}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["data"]["enabled"], false);
    assert_eq!(
        changed["data"]["actions"][0]["id"], metrics["actions"][0]["id"],
        "unchanged actions keep their id"
    );
    let (status, _) = api(
        &broker,
        Method::DELETE,
        &format!("/api/v4/rules/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, gone) = api(&broker, Method::GET, &format!("/api/v4/rules/{id}"), None).await;
    assert_eq!((status, gone["code"].clone()), (404, json!(105)));
}

#[tokio::test]
async fn bad_rules_and_resources_are_refused_and_nothing_is_stored() {
    let broker = Broker::start(&["tcp"]).await;
    let refused = |body: Value, path: &'static str| {
        let broker = &broker;
        async move { api(broker, Method::POST, path, Some(body)).await }
    };
    let republish = json!([{"name": "republish", "params": {"target_topic": "x"}}]);

    let (status, e) = refused(
        json!({"rawsql": "SELECT a FROM \"t/#\" WHERE a >", "actions": republish}),
        "/api/v4/rules",
    )
    .await;
    assert_eq!((status, e["code"].clone()), (400, json!(108)), "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("line 1, column 30"),
        "{e}"
    );

    let (status, e) = refused(
        json!({"rawsql": "SELECT nosuch(a) FROM \"t/#\"", "actions": republish}),
        "/api/v4/rules",
    )
    .await;
    assert_eq!((status, e["code"].clone()), (400, json!(108)), "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("unknown function nosuch"),
        "{e}"
    );

    let (status, e) = refused(
        json!({"rawsql": "SELECT * FROM \"t/#/x\"", "actions": republish}),
        "/api/v4/rules",
    )
    .await;
    assert_eq!((status, e["code"].clone()), (400, json!(108)), "{e}");
    assert!(e["message"].as_str().unwrap().contains("column 15"), "{e}");

    let (status, e) = refused(json!({"rawsql": "SELECT * FROM \"t/#\"", "actions": [{"name": "data_to_kafka", "params": {}}]}), "/api/v4/rules").await;
    assert_eq!((status, e["code"].clone()), (400, json!(108)), "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("unknown action"),
        "{e}"
    );

    let (status, e) = refused(json!({"rawsql": "SELECT * FROM \"t/#\"", "actions": [{"name": "data_to_redis", "params": {"cmd": "SET a b"}}]}), "/api/v4/rules").await;
    assert_eq!((status, e["code"].clone()), (400, json!(107)), "{e}");

    let (status, e) = refused(json!({"rawsql": "SELECT * FROM \"t/#\"", "actions": [{"name": "data_to_redis", "params": {"$resource": "resource:nope", "cmd": "SET a b"}}]}), "/api/v4/rules").await;
    assert_eq!((status, e["code"].clone()), (400, json!(105)), "{e}");

    let (status, e) = refused(
        json!({"rawsql": "SELECT * FROM \"t/#\"", "actions": []}),
        "/api/v4/rules",
    )
    .await;
    assert_eq!((status, e["code"].clone()), (400, json!(107)), "{e}");

    // A service nobody listens on: refused at creation.
    let closed = common::free_addr();
    let (status, e) = refused(
        json!({"type": "backend_redis_single", "config": {"server": closed.to_string()}}),
        "/api/v4/resources",
    )
    .await;
    assert_eq!((status, e["code"].clone()), (400, json!(108)), "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("unreachable"),
        "{e}"
    );

    let (status, e) = refused(
        json!({"type": "backend_mongo", "config": {}}),
        "/api/v4/resources",
    )
    .await;
    assert_eq!((status, e["code"].clone()), (400, json!(108)), "{e}");

    let (_, rules) = api(&broker, Method::GET, "/api/v4/rules", None).await;
    assert_eq!(rules["data"], json!([]), "{rules}");
    let (_, resources) = api(&broker, Method::GET, "/api/v4/resources", None).await;
    assert_eq!(resources["data"], json!([]), "{resources}");

    let (status, catalogue) = api(&broker, Method::GET, "/api/v4/actions", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = catalogue["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "republish",
            "data_to_webserver",
            "data_to_redis",
            "data_to_pgsql",
            "offline_msg_to_redis"
        ]
    );
}

#[tokio::test]
async fn webhook_gets_each_matched_message_rendered() {
    let received: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let app = {
        let received = received.clone();
        axum::Router::new().route(
            "/hook/{device}",
            axum::routing::post(
                move |axum::extract::Path(device): axum::extract::Path<String>,
                      headers: axum::http::HeaderMap,
                      body: String| {
                    let received = received.clone();
                    async move {
                        let token = headers
                            .get("x-token")
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default();
                        received.lock().unwrap().push((device, token, body));
                        "ok"
                    }
                },
            ),
        )
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let broker = Broker::start(&["tcp"]).await;
    let prefix = unique("wh");
    let resource = create(
        &broker,
        "/api/v4/resources",
        json!({"type": "web_hook", "config": {"url": format!("http://{hook}/hook"), "headers": {"x-token": "s3"}, "token": "secret-token"}}),
    )
    .await;
    assert_eq!(
        resource["config"]["token"], "******",
        "secrets are never shown: {resource}"
    );
    let rule_id = create(
        &broker,
        "/api/v4/rules",
        json!({
            "rawsql": format!("SELECT payload.n AS n, clientid FROM \"{prefix}/#\" WHERE payload.n >= 0"),
            "actions": [{"name": "data_to_webserver", "params": {
                "$resource": resource["id"], "path": "${clientid}", "body": "{\"n\": ${n}}"
            }}]
        }),
    )
    .await["id"]
    .as_str()
    .unwrap()
    .to_owned();
    publish_lines(
        &broker,
        1,
        &format!("{prefix}/x"),
        "hook-dev",
        &numbers(0, 20),
    )
    .await;
    let got = eventually("20 webhook calls", || async {
        let got = received.lock().unwrap().clone();
        (got.len() >= 20).then_some(got)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received.lock().unwrap().len(), 20, "exactly once per match");
    for (i, (device, token, body)) in got.iter().enumerate() {
        assert_eq!(device, "hook-dev");
        assert_eq!(token, "s3");
        assert_eq!(
            serde_json::from_str::<Value>(body).unwrap(),
            json!({"n": i}),
            "in order"
        );
    }
    let r = rule(&broker, &rule_id).await;
    assert_eq!(r["metrics"][0]["matched"], 20, "{r}");
    assert_eq!(r["actions"][0]["metrics"][0]["success"], 20, "{r}");
    server.abort();
}

#[tokio::test]
async fn redis_sink_survives_an_outage_and_a_restart_in_order() {
    let client = redis::Client::open(format!("redis://{REDIS}")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = unique("skyport-test:rules");
    let mut relay = Relay::start(REDIS).await;

    let mut broker = Broker::start(&["tcp"]).await;
    let resource = create(
        &broker,
        "/api/v4/resources",
        json!({"type": "backend_redis_single", "config": {"server": relay.addr.to_string()}}),
    )
    .await;
    let (status, checked) = api(
        &broker,
        Method::GET,
        &format!("/api/v4/resources/{}", resource["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(checked["data"]["status"][0]["is_alive"], true, "{checked}");
    let prefix = unique("rd");
    let rule_id = create(
        &broker,
        "/api/v4/rules",
        json!({
            "rawsql": format!("SELECT payload.n AS n, clientid FROM \"{prefix}/#\""),
            "actions": [{"name": "data_to_redis", "params": {"$resource": resource["id"], "cmd": format!("RPUSH {key} ${{n}}:${{clientid}}")}}]
        }),
    )
    .await["id"]
    .as_str()
    .unwrap()
    .to_owned();

    let expected = |to: usize| {
        (0..to)
            .map(|n| format!("{n}:redis-dev"))
            .collect::<Vec<_>>()
    };
    publish_lines(
        &broker,
        1,
        &format!("{prefix}/a"),
        "redis-dev",
        &numbers(0, 30),
    )
    .await;
    eventually("30 entries", || {
        let mut conn = conn.clone();
        let key = key.clone();
        async move { (redis_list(&mut conn, &key).await.len() >= 30).then_some(()) }
    })
    .await;
    assert_eq!(redis_list(&mut conn, &key).await, expected(30));

    // Redis goes away: MQTT goes on, outputs wait in the buffer.
    relay.down().await;
    publish_lines(
        &broker,
        1,
        &format!("{prefix}/a"),
        "redis-dev",
        &numbers(30, 60),
    )
    .await;
    let (status, checked) = api(
        &broker,
        Method::GET,
        &format!("/api/v4/resources/{}", resource["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(checked["data"]["status"][0]["is_alive"], false, "{checked}");
    let r = eventually("matched 60", || async {
        let r = rule(&broker, &rule_id).await;
        (r["metrics"][0]["matched"] == 60).then_some(r)
    })
    .await;
    assert_eq!(r["actions"][0]["metrics"][0]["success"], 30, "{r}");

    // A planned restart keeps the buffer; Redis comes back; everything arrives in order.
    broker.restart().await;
    relay.up().await;
    eventually("60 entries", || {
        let mut conn = conn.clone();
        let key = key.clone();
        async move { (redis_list(&mut conn, &key).await.len() >= 60).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        redis_list(&mut conn, &key).await,
        expected(60),
        "nothing lost, nothing twice, in order"
    );
    let r = rule(&broker, &rule_id).await;
    assert_eq!(r["actions"][0]["metrics"][0]["queued"], 0, "{r}");
    assert_eq!(r["actions"][0]["metrics"][0]["dropped"], 0, "{r}");
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_full_buffer_drops_the_oldest_and_counts_them() {
    let client = redis::Client::open(format!("redis://{REDIS}")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = unique("skyport-test:overflow");
    let mut relay = Relay::start(REDIS).await;
    let broker = Broker::start_with(
        &["tcp"],
        common::open_security(),
        Some(json!({"max_sessions": 100, "rule_buffer_messages": 5})),
    )
    .await;
    let resource = create(
        &broker,
        "/api/v4/resources",
        json!({"type": "backend_redis_single", "config": {"server": relay.addr.to_string()}}),
    )
    .await;
    let prefix = unique("of");
    let rule_id = create(
        &broker,
        "/api/v4/rules",
        json!({
            "rawsql": format!("SELECT payload.n AS n FROM \"{prefix}/#\""),
            "actions": [{"name": "data_to_redis", "params": {"$resource": resource["id"], "cmd": format!("RPUSH {key} ${{n}}")}}]
        }),
    )
    .await["id"]
    .as_str()
    .unwrap()
    .to_owned();
    relay.down().await;
    publish_lines(
        &broker,
        1,
        &format!("{prefix}/a"),
        "of-dev",
        &numbers(0, 12),
    )
    .await;
    let r = eventually("7 dropped", || async {
        let r = rule(&broker, &rule_id).await;
        (r["actions"][0]["metrics"][0]["dropped"] == 7).then_some(r)
    })
    .await;
    assert_eq!(r["actions"][0]["metrics"][0]["queued"], 5, "{r}");
    relay.up().await;
    eventually("the newest 5 delivered", || {
        let mut conn = conn.clone();
        let key = key.clone();
        async move { (redis_list(&mut conn, &key).await.len() >= 5).then_some(()) }
    })
    .await;
    assert_eq!(
        redis_list(&mut conn, &key).await,
        ["7", "8", "9", "10", "11"]
    );
    let metrics = broker
        .api(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("skyport_broker_actions_dropped_total 7"),
        "{metrics}"
    );
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// A table of its own in the `test` database, dropped afterwards.
struct Table {
    pool: sqlx::PgPool,
    name: String,
}

impl Table {
    async fn create(columns: &str) -> Self {
        let pool = sqlx::PgPool::connect(&postgres_url())
            .await
            .expect("PostgreSQL at 127.0.0.1:5432 (database test) is needed by this test");
        let name = unique("rules_sink").replace('-', "_");
        sqlx::raw_sql(&format!("CREATE TABLE {name} ({columns})"))
            .execute(&pool)
            .await
            .unwrap();
        Self { pool, name }
    }

    async fn count(&self) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {}", self.name))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    async fn drop_table(self) {
        sqlx::raw_sql(&format!("DROP TABLE {}", self.name))
            .execute(&self.pool)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn postgres_gets_batched_rows_and_device_events() {
    let messages =
        Table::create("n integer PRIMARY KEY, clientid text, topic text, note text").await;
    let events = Table::create("clientid text, event text, at bigint").await;
    let broker = Broker::start(&["tcp"]).await;
    let resource = create(
        &broker,
        "/api/v4/resources",
        json!({"type": "backend_pgsql", "config": {
            "server": "127.0.0.1:5432", "database": "test", "user": "postgres", "password": "not-shown"
        }}),
    )
    .await;
    assert_eq!(resource["config"]["password"], "******", "{resource}");
    let prefix = unique("pg");
    let rows = create(
        &broker,
        "/api/v4/rules",
        json!({
            "rawsql": format!("SELECT payload.n AS n, clientid, topic, 'it''s' AS note FROM \"{prefix}/#\""),
            "actions": [{"name": "data_to_pgsql", "params": {
                "$resource": resource["id"],
                "sql": format!("INSERT INTO {}(n, clientid, topic, note) VALUES (${{n}}, ${{clientid}}, ${{topic}}, ${{note}})", messages.name),
                "batch_size": 50
            }}]
        }),
    )
    .await["id"]
    .as_str()
    .unwrap()
    .to_owned();
    let device = unique("pg-dev");
    create(
        &broker,
        "/api/v4/rules",
        json!({
            "rawsql": format!("SELECT clientid, event, timestamp FROM \"$events/client_connected\", \"$events/client_disconnected\" WHERE clientid = '{device}'"),
            "actions": [{"name": "data_to_pgsql", "params": {
                "$resource": resource["id"],
                "sql": format!("INSERT INTO {}(clientid, event, at) VALUES (${{clientid}}, ${{event}}, ${{timestamp}})", events.name)
            }}]
        }),
    )
    .await;

    publish_lines(
        &broker,
        1,
        &format!("{prefix}/m"),
        &device,
        &numbers(0, 200),
    )
    .await;
    eventually("200 rows", || async {
        (messages.count().await >= 200).then_some(())
    })
    .await;
    let (distinct, note): (i64, String) = sqlx::query_as(&format!(
        "SELECT count(DISTINCT n), min(note) FROM {} WHERE clientid = $1 AND topic = $2",
        messages.name
    ))
    .bind(&device)
    .bind(format!("{prefix}/m"))
    .fetch_one(&messages.pool)
    .await
    .unwrap();
    assert_eq!((distinct, note.as_str()), (200, "it's"));
    assert_eq!(messages.count().await, 200, "exactly once per message");
    let r = rule(&broker, &rows).await;
    assert_eq!(r["metrics"][0]["matched"], 200, "{r}");
    assert_eq!(r["actions"][0]["metrics"][0]["success"], 200, "{r}");

    eventually("connect and disconnect rows", || async {
        (events.count().await >= 2).then_some(())
    })
    .await;
    let kinds: Vec<(String,)> = sqlx::query_as(&format!(
        "SELECT event FROM {} WHERE clientid = $1 ORDER BY at",
        events.name
    ))
    .bind(&device)
    .fetch_all(&events.pool)
    .await
    .unwrap();
    let kinds: Vec<&str> = kinds.iter().map(|(k,)| k.as_str()).collect();
    assert_eq!(kinds, ["client.connected", "client.disconnected"]);

    // A resource in use cannot go.
    let (status, e) = api(
        &broker,
        Method::DELETE,
        &format!("/api/v4/resources/{}", resource["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!((status, e["code"].clone()), (409, json!(108)), "{e}");
    messages.drop_table().await;
    events.drop_table().await;
}

#[tokio::test]
async fn the_serverless_plan_allows_webhook_and_republish_and_four_rules() {
    let broker = Broker::start_with(
        &["tcp"],
        common::open_security(),
        Some(json!({"max_sessions": 100, "plan": "serverless"})),
    )
    .await;
    let (status, e) = api(
        &broker,
        Method::POST,
        "/api/v4/resources",
        Some(json!({"type": "backend_redis_single", "config": {"server": REDIS}})),
    )
    .await;
    assert_eq!((status, e["code"].clone()), (409, json!(108)), "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("plan_not_supported"),
        "{e}"
    );
    let rule = |n: usize| json!({"rawsql": format!("SELECT * FROM \"plan/{n}\""), "actions": [{"name": "republish", "params": {"target_topic": "x"}}]});
    for n in 0..4 {
        create(&broker, "/api/v4/rules", rule(n)).await;
    }
    let (status, e) = api(&broker, Method::POST, "/api/v4/rules", Some(rule(4))).await;
    assert_eq!((status, e["code"].clone()), (409, json!(108)), "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("plan_limit_reached"),
        "{e}"
    );
    let (_, rules) = api(&broker, Method::GET, "/api/v4/rules", None).await;
    assert_eq!(rules["data"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn offline_messages_wait_in_redis_until_the_device_subscribes() {
    let client = redis::Client::open(format!("redis://{REDIS}")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let broker = Broker::start(&["tcp"]).await;
    let resource = create(
        &broker,
        "/api/v4/resources",
        json!({"type": "backend_redis_single", "config": {"server": REDIS}}),
    )
    .await;
    let prefix = unique("offline");
    let device = unique("offline-dev");
    let action = json!([{"name": "offline_msg_to_redis", "params": {"$resource": resource["id"], "ttl": 600}}]);
    create(
        &broker,
        "/api/v4/rules",
        json!({"rawsql": format!("SELECT * FROM \"{prefix}/#\""), "actions": action}),
    )
    .await;
    create(
        &broker,
        "/api/v4/rules",
        json!({"rawsql": format!("SELECT * FROM \"$events/session_subscribed\" WHERE clientid = '{device}'"), "actions": action}),
    )
    .await;

    // The device is away; three QoS 1 messages and one QoS 0 message are published.
    let topic = format!("{prefix}/{device}/cmd");
    let key = format!("mqtt:offline:{topic}");
    let target = broker.mqtt("tcp");
    for (qos, payload) in [(1, "one"), (0, "not kept"), (2, "two"), (1, "three")] {
        let (status, out) = publish(&target, "mqttv311", qos, &topic, payload, &[]).await;
        assert!(status.success(), "{out}");
    }
    eventually("3 messages staged in Redis", || {
        let mut conn = conn.clone();
        let key = key.clone();
        async move { (redis_list(&mut conn, &key).await.len() >= 3).then_some(()) }
    })
    .await;

    // [MQTT-4.6.0-6] the staged messages arrive in the order they were published.
    let sub = Subscriber::start(
        &target,
        "mqttv311",
        1,
        &format!("{prefix}/{device}/#"),
        &["-i", &device, "-C", "3"],
    )
    .await;
    let output = sub.finish().await;
    let payloads: Vec<&String> = output
        .iter()
        .filter(|l| ["one", "two", "three", "not kept"].contains(&l.as_str()))
        .collect();
    assert_eq!(payloads, ["one", "two", "three"], "{output:#?}");
    eventually("staged messages removed", || {
        let mut conn = conn.clone();
        let key = key.clone();
        async move { redis_list(&mut conn, &key).await.is_empty().then_some(()) }
    })
    .await;
    let _: () = redis::cmd("SREM")
        .arg("mqtt:offline:topics")
        .arg(&topic)
        .query_async(&mut conn)
        .await
        .unwrap();
}

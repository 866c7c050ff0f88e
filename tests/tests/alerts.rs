//! Alerts end to end: rules and channels through the API (validation, roles, a webhook
//! secret shown once), and alerts that fire, repeat and resolve from real brokers' load
//! (mosquitto clients), deployments' status, uploaded certificates and DNS checks, sent
//! to a webhook receiver that verifies the HMAC and to a real SMTP receiver.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use skyport_tests::api::Api;
use skyport_tests::cluster::Cluster;
use skyport_tests::dns::DnsServer;
use skyport_tests::receivers::{SmtpReceiver, WebhookCall, WebhookReceiver};
use skyport_tests::{Backend, ControlPlane};

/// A control plane that evaluates alerts and receives usage reports every second.
fn control_plane(backend: Backend, extra: &[&str]) -> ControlPlane {
    let mut args = vec!["--metering-interval", "1s", "--alert-interval", "1s"];
    args.extend_from_slice(extra);
    ControlPlane::start_with(backend, &args)
}

/// A running deployment that lets anonymous clients in, with `tier`; returns its id and
/// plain MQTT port.
async fn open_deployment(api: &Api, name: &str, tier: Value) -> (String, String) {
    let created = api
        .post(
            "/deployments",
            json!({"name": name, "plan": "dedicated", "tier": tier}),
        )
        .await;
    assert_eq!(created.status, 202, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let open = api
        .put(
            &format!("/deployments/{id}/authentication"),
            json!({"allow_anonymous": true, "sources": [{"type": "built_in"}]}),
        )
        .await;
    assert!(matches!(open.status.as_u16(), 200 | 202), "{}", open.text);
    let d = api.wait_status(&id, "running").await;
    let port = d["endpoints"]["mqtt"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    (id, port)
}

/// Creates a webhook channel; returns its id and signing secret.
async fn webhook_channel(api: &Api, project: &str, url: &str) -> (String, String) {
    let created = api
        .post(
            &format!("/projects/{project}/alert-channels"),
            json!({"name": "hook", "type": "webhook", "url": url}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    (
        created.body["id"].as_str().unwrap().to_owned(),
        created.body["secret"].as_str().unwrap().to_owned(),
    )
}

async fn create_rule(api: &Api, project: &str, rule: Value) -> String {
    let created = api
        .post(&format!("/projects/{project}/alert-rules"), rule)
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.body["id"].as_str().unwrap().to_owned()
}

/// Checks `X-Skyport-Signature` against an HMAC-SHA256 computed here with `secret`.
fn assert_signed(call: &WebhookCall, secret: &str) {
    let timestamp = call
        .header("x-skyport-timestamp")
        .expect("timestamp header");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&call.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        call.header("x-skyport-signature"),
        Some(expected.as_str()),
        "the signature verifies with the secret shown at creation"
    );
    let mut forged = Hmac::<Sha256>::new_from_slice(b"another secret").unwrap();
    forged.update(timestamp.as_bytes());
    forged.update(b".");
    forged.update(&call.body);
    assert_ne!(
        call.header("x-skyport-signature"),
        Some(format!("sha256={}", hex::encode(forged.finalize().into_bytes())).as_str())
    );
}

/// A notification of `rule` with `status`.
fn is(call: &WebhookCall, rule: &str, status: &str) -> bool {
    let body = call.json();
    body["rule"]["id"] == rule && body["status"] == status
}

/// The deployment's events of `kind` about `rule`.
async fn alert_events(api: &Api, deployment: &str, kind: &str, rule: &str) -> Vec<Value> {
    let events = api
        .get(&format!(
            "/deployments/{deployment}/events?type={kind}&limit=100"
        ))
        .await;
    assert_eq!(events.status, 200, "{}", events.text);
    events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["details"]["rule_id"] == rule)
        .cloned()
        .collect()
}

/// Waits (bounded: 120 s) until `rule`'s view satisfies `pred`; returns it.
async fn wait_rule(
    api: &Api,
    project: &str,
    rule: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..1200 {
        let got = api
            .get(&format!("/projects/{project}/alert-rules/{rule}"))
            .await;
        assert_eq!(got.status, 200, "{}", got.text);
        if pred(&got.body) {
            return got.body;
        }
        last = got.body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("rule never {what}; last seen: {last}");
}

/// Long-lived MQTT clients (mosquitto_sub), killed by pid when dropped.
struct Clients(Vec<Child>);

impl Clients {
    fn connect(port: &str, count: usize) -> Self {
        Self(
            (0..count)
                .map(|i| {
                    Command::new("mosquitto_sub")
                        .args(["-h", "127.0.0.1", "-p", port, "-V", "mqttv311"])
                        .args(["-i", &format!("alerts-client-{i}"), "-t", "alerts/idle"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("mosquitto_sub is installed (Debian mosquitto-clients)")
                })
                .collect(),
        )
    }

    fn disconnect(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.0.clear();
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        self.disconnect();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_and_channels_are_validated_and_scoped_by_role() {
    rules_and_channels_api(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_and_channels_are_validated_and_scoped_by_role_on_postgres() {
    rules_and_channels_api(Backend::Postgres).await;
}

async fn rules_and_channels_api(backend: Backend) {
    let cp = control_plane(backend, &[]);
    let (project, owner) = cp.api.project_with_key("alerts-api").await;
    let (_, stranger) = cp.api.project_with_key("elsewhere").await;
    let key = |role: &str| {
        let admin = cp.api.clone();
        let project = project.clone();
        let role = role.to_owned();
        async move {
            let key = admin
                .post(
                    &format!("/projects/{project}/api-keys"),
                    json!({"name": role, "role": role}),
                )
                .await;
            assert_eq!(key.status, 201, "{}", key.text);
            admin.with_token(key.body["secret"].as_str().unwrap())
        }
    };
    let viewer = key("viewer").await;
    let developer = key("developer").await;
    let channels = format!("/projects/{project}/alert-channels");
    let rules = format!("/projects/{project}/alert-rules");

    // Channels: bad input is refused with a stable code, and nothing is stored.
    for (body, code, field) in [
        (
            json!({"name": "h", "type": "webhook", "url": "ftp://x"}),
            "invalid_url",
            "url",
        ),
        (
            json!({"name": "h", "type": "webhook"}),
            "missing_field",
            "url",
        ),
        (
            json!({"name": "h", "type": "webhook", "url": "http://127.0.0.1:1/", "to": ["a@b.c"]}),
            "unknown_field",
            "to",
        ),
        (
            json!({"name": "", "type": "webhook", "url": "http://127.0.0.1:1/"}),
            "invalid_name",
            "name",
        ),
        (
            json!({"name": "h", "type": "pager"}),
            "invalid_type",
            "type",
        ),
    ] {
        let reply = developer.post(&channels, body).await;
        reply.assert_problem(422, code);
        assert_eq!(reply.body["field"], field, "{}", reply.text);
    }
    // No SMTP server configured: email channels cannot work.
    developer
        .post(
            &channels,
            json!({"name": "mail", "type": "email", "to": ["ops@example.test"]}),
        )
        .await
        .assert_problem(409, "smtp_not_configured");
    assert_eq!(owner.get(&channels).await.body["items"], json!([]));

    // Viewers read, developers write; another project sees nothing.
    viewer
        .post(
            &channels,
            json!({"name": "h", "type": "webhook", "url": "http://127.0.0.1:1/"}),
        )
        .await
        .assert_problem(403, "forbidden_role");
    stranger
        .post(
            &channels,
            json!({"name": "h", "type": "webhook", "url": "http://127.0.0.1:1/"}),
        )
        .await
        .assert_problem(404, "not_found");
    let created = developer
        .post(
            &channels,
            json!({"name": "ops hook", "type": "webhook", "url": "http://127.0.0.1:1/hook"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let secret = created.body["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );
    let channel = created.body["id"].as_str().unwrap().to_owned();
    let listed = viewer.get(&channels).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["items"][0]["url"], "http://127.0.0.1:1/hook");
    let one = viewer.get(&format!("{channels}/{channel}")).await;
    assert_eq!(one.body["type"], "webhook");
    for shown in [&listed.text, &one.text] {
        assert!(
            !shown.contains(secret),
            "the secret is never shown again: {shown}"
        );
        assert!(!shown.contains("secret"), "{shown}");
    }
    stranger
        .get(&format!("{channels}/{channel}"))
        .await
        .assert_problem(404, "not_found");
    // Delivery to a closed port fails, and says so.
    developer
        .post(&format!("{channels}/{channel}/test"), json!({}))
        .await
        .assert_problem(502, "delivery_failed");

    // Rules.
    let rule_body = json!({
        "name": "busy",
        "condition": {"kind": "sessions", "percent": 80},
        "channel_ids": [channel],
        "repeat_interval_seconds": 600
    });
    for (change, code, field) in [
        (
            json!({"condition": {"kind": "sessions", "percent": 0}}),
            "invalid_condition",
            "condition.percent",
        ),
        (
            json!({"condition": {"kind": "sessions"}}),
            "missing_field",
            "condition",
        ),
        (
            json!({"condition": {"kind": "disk_full", "percent": 5}}),
            "invalid_condition",
            "condition.kind",
        ),
        (
            json!({"condition": {"kind": "traffic", "bytes": 10, "window_minutes": 0}}),
            "invalid_condition",
            "condition.window_minutes",
        ),
        (
            json!({"channel_ids": ["not-an-id"]}),
            "invalid_channel_ids",
            "channel_ids[0]",
        ),
        (
            json!({"deployment_id": uuid::Uuid::new_v4().to_string()}),
            "invalid_deployment_id",
            "deployment_id",
        ),
        (
            json!({"repeat_interval_seconds": 0}),
            "invalid_repeat_interval_seconds",
            "repeat_interval_seconds",
        ),
        (json!({"severity": "high"}), "unknown_field", "severity"),
    ] {
        let mut body = rule_body.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let reply = developer.post(&rules, body).await;
        reply.assert_problem(422, code);
        assert_eq!(reply.body["field"], field, "{}", reply.text);
    }
    developer
        .post(&rules, json!("{"))
        .await
        .assert_problem(422, "invalid_body");
    assert_eq!(
        owner.get(&rules).await.body["items"],
        json!([]),
        "nothing stored"
    );
    viewer
        .post(&rules, rule_body.clone())
        .await
        .assert_problem(403, "forbidden_role");
    let created = developer.post(&rules, rule_body.clone()).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["enabled"], true);
    assert_eq!(created.body["alerts"], json!([]));
    assert_eq!(
        created.body["condition"],
        json!({"kind": "sessions", "percent": 80})
    );
    let rule = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("{rules}/{rule}");
    assert_eq!(viewer.get(&path).await.body["name"], "busy");
    stranger.get(&path).await.assert_problem(404, "not_found");
    viewer
        .put(&path, rule_body.clone())
        .await
        .assert_problem(403, "forbidden_role");
    stranger
        .put(&path, json!({"bad": true}))
        .await
        .assert_problem(404, "not_found");

    // Replacing keeps the id; a bad replacement changes nothing.
    let mut replaced = rule_body.clone();
    replaced["condition"] = json!({"kind": "deployment_not_running", "minutes": 5});
    replaced["enabled"] = json!(false);
    let put = developer.put(&path, replaced).await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(
        put.body["condition"],
        json!({"kind": "deployment_not_running", "minutes": 5, "include_stopped": false})
    );
    let mut bad = rule_body.clone();
    bad["condition"] = json!({"kind": "certificate_expiring", "days": 400});
    developer
        .put(&path, bad)
        .await
        .assert_problem(422, "invalid_condition");
    assert_eq!(owner.get(&path).await.body["enabled"], false);

    // A channel a rule uses cannot go; once the rule is gone it can.
    developer
        .delete(&format!("{channels}/{channel}"))
        .await
        .assert_problem(409, "channel_in_use");
    viewer
        .delete(&path)
        .await
        .assert_problem(403, "forbidden_role");
    assert_eq!(developer.delete(&path).await.status, 204);
    owner.get(&path).await.assert_problem(404, "not_found");
    assert_eq!(
        developer
            .delete(&format!("{channels}/{channel}"))
            .await
            .status,
        204
    );
    assert_eq!(owner.get(&channels).await.body["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sessions_alert_fires_once_repeats_and_resolves_by_webhook_and_email() {
    let smtp = SmtpReceiver::start().await;
    let hook = WebhookReceiver::start().await;
    let smtp_url = smtp.url();
    let cp = control_plane(
        Backend::Sqlite,
        &[
            "--smtp-url",
            &smtp_url,
            "--smtp-from",
            "Skyport Alerts <alerts@skyport.test>",
        ],
    );
    let (project, api) = cp.api.project_with_key("alerting").await;
    let (id, port) =
        open_deployment(&api, "busy", json!({"max_sessions": 4, "max_tps": 100})).await;
    let (webhook, secret) = webhook_channel(&api, &project, &hook.url).await;
    let mail = api
        .post(
            &format!("/projects/{project}/alert-channels"),
            json!({"name": "ops mail", "type": "email", "to": ["ops@example.test", "oncall@example.test"]}),
        )
        .await;
    assert_eq!(mail.status, 201, "{}", mail.text);
    assert!(mail.body.get("secret").is_none(), "{}", mail.text);
    let email = mail.body["id"].as_str().unwrap().to_owned();

    // The test endpoint delivers a real mail.
    let tested = api
        .post(
            &format!("/projects/{project}/alert-channels/{email}/test"),
            json!({}),
        )
        .await;
    assert_eq!(tested.status, 204, "{}", tested.text);
    smtp.wait_for("from the test endpoint", |m| {
        m.data.contains("Test notification")
    })
    .await;

    let rule = create_rule(
        &api,
        &project,
        json!({
            "name": "sessions-high",
            "deployment_id": id,
            "condition": {"kind": "sessions", "percent": 50},
            "channel_ids": [webhook, email],
            "repeat_interval_seconds": 1
        }),
    )
    .await;

    // 2 sessions of 4: 50%.
    let connected = std::time::Instant::now();
    let mut clients = Clients::connect(&port, 2);
    let fired = hook.wait_for("firing", |c| is(c, &rule, "firing")).await;
    // Printed, not asserted: with 1 s reports and evaluation, about 1-3 s.
    println!(
        "sessions alert fired {:?} after the clients connected",
        connected.elapsed()
    );
    assert_signed(&fired, &secret);
    let body = fired.json();
    assert_eq!(body["deployment"]["id"], id.as_str());
    assert_eq!(body["deployment"]["name"], "busy");
    assert_eq!(body["sequence"], 1);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("50% of the tier's 4"),
        "{body}"
    );
    // It repeats while active.
    let repeat = hook
        .wait_for("repeated", |c| {
            is(c, &rule, "firing") && c.json()["sequence"].as_i64() >= Some(2)
        })
        .await;
    assert_signed(&repeat, &secret);
    assert_eq!(
        repeat.json()["fired_at"],
        body["fired_at"],
        "the same alert"
    );
    let firing_mail = smtp
        .wait_for("about the firing alert", |m| {
            m.data.contains("FIRING: sessions-high on busy")
        })
        .await;
    assert_eq!(firing_mail.from, "alerts@skyport.test");
    assert_eq!(
        firing_mail.to,
        vec![
            "ops@example.test".to_owned(),
            "oncall@example.test".to_owned()
        ]
    );
    let view = wait_rule(&api, &project, &rule, "showed the firing alert", |r| {
        r["alerts"][0]["status"] == "firing"
    })
    .await;
    assert_eq!(view["alerts"][0]["subject"], id.as_str());

    // The sessions end: the alert resolves, with a message.
    clients.disconnect();
    let disconnected = std::time::Instant::now();
    let resolved = hook
        .wait_for("resolved", |c| is(c, &rule, "resolved"))
        .await;
    println!(
        "sessions alert resolved {:?} after the clients left",
        disconnected.elapsed()
    );
    assert_signed(&resolved, &secret);
    let resolved = resolved.json();
    assert_eq!(resolved["fired_at"], body["fired_at"]);
    assert!(resolved["resolved_at"].is_string(), "{resolved}");
    assert!(
        resolved["message"]
            .as_str()
            .unwrap()
            .starts_with("0 sessions"),
        "{resolved}"
    );
    smtp.wait_for("about the resolution", |m| {
        m.data.contains("RESOLVED: sessions-high on busy")
    })
    .await;
    wait_rule(&api, &project, &rule, "dropped the alert", |r| {
        r["alerts"] == json!([])
    })
    .await;

    // Fired once and resolved once, in the deployment's event log.
    let fired_events = alert_events(&api, &id, "alert.fired", &rule).await;
    let resolved_events = alert_events(&api, &id, "alert.resolved", &rule).await;
    assert_eq!(fired_events.len(), 1, "{fired_events:?}");
    assert_eq!(resolved_events.len(), 1, "{resolved_events:?}");
    assert_eq!(fired_events[0]["actor"], "system");
    assert_eq!(fired_events[0]["details"]["subject"], id.as_str());
    let firsts = hook
        .calls()
        .iter()
        .filter(|c| is(c, &rule, "firing") && c.json()["sequence"] == 1)
        .count();
    assert_eq!(firsts, 1, "one first notification per alert");

    // Operators see deliveries in the Prometheus metrics (counted once the receiver
    // has answered, so possibly just after it recorded the call).
    let delivered = |metrics: &str, channel: &str| -> u64 {
        let line = format!(
            "skyport_alert_notifications_total{{channel=\"{channel}\",result=\"delivered\"}} "
        );
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .map_or(0, |n| n.parse().unwrap())
    };
    let mut metrics = String::new();
    for _ in 0..300 {
        metrics = reqwest::get(format!("{}/metrics", cp.base_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // Fired, repeated, resolved.
        if delivered(&metrics, "webhook") >= 3 && delivered(&metrics, "email") >= 3 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("deliveries not counted: {metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tps_and_traffic_alerts_follow_published_messages() {
    let hook = WebhookReceiver::start().await;
    let cp = control_plane(Backend::Sqlite, &[]);
    let (project, api) = cp.api.project_with_key("traffic").await;
    let (id, port) =
        open_deployment(&api, "chatty", json!({"max_sessions": 100, "max_tps": 10})).await;
    let (webhook, secret) = webhook_channel(&api, &project, &hook.url).await;
    let tps = create_rule(
        &api,
        &project,
        json!({"name": "tps", "condition": {"kind": "tps", "percent": 50}, "channel_ids": [webhook]}),
    )
    .await;
    let traffic = create_rule(
        &api,
        &project,
        json!({"name": "traffic", "condition": {"kind": "traffic", "bytes": 2000, "window_minutes": 2},
               "channel_ids": [webhook]}),
    )
    .await;

    // 40 messages of 100 bytes, paced by the broker at the tier's 10 per second.
    let mut publisher = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port, "-V", "mqttv311", "-q", "1"])
        .args(["-i", "alerts-publisher", "-t", "alerts/tps", "-l"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub is installed");
    {
        let mut stdin = publisher.stdin.take().unwrap();
        for i in 0..40 {
            writeln!(stdin, "{i:0>100}").unwrap();
        }
    }
    assert!(publisher.wait().unwrap().success());

    let fired = hook.wait_for("tps firing", |c| is(c, &tps, "firing")).await;
    assert_signed(&fired, &secret);
    assert_eq!(fired.json()["deployment"]["id"], id.as_str());
    let fired = hook
        .wait_for("traffic firing", |c| is(c, &traffic, "firing"))
        .await;
    assert!(
        fired.json()["message"]
            .as_str()
            .unwrap()
            .contains("bytes in and out"),
        "{}",
        fired.json()
    );
    // Publishing stopped: messages per second fall to 0 and the TPS alert resolves.
    hook.wait_for("tps resolved", |c| is(c, &tps, "resolved"))
        .await;
    assert_eq!(alert_events(&api, &id, "alert.fired", &tps).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_not_running_alert_fires_while_stopped_and_resolves_on_start() {
    not_running(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_not_running_alert_fires_and_resolves_on_postgres() {
    not_running(Backend::Postgres).await;
}

async fn not_running(backend: Backend) {
    let hook = WebhookReceiver::start().await;
    let cp = control_plane(backend, &[]);
    let (project, api) = cp.api.project_with_key("uptime").await;
    let (id, _) = open_deployment(&api, "flaky", json!({"max_sessions": 10, "max_tps": 10})).await;
    let (webhook, secret) = webhook_channel(&api, &project, &hook.url).await;
    let rule = create_rule(
        &api,
        &project,
        json!({"name": "down", "condition": {"kind": "deployment_not_running", "minutes": 0, "include_stopped": true},
               "channel_ids": [webhook]}),
    )
    .await;

    let stop = api
        .post(&format!("/deployments/{id}/stop"), json!({}))
        .await;
    assert!(stop.status.is_success(), "{}", stop.text);
    let fired = hook.wait_for("firing", |c| is(c, &rule, "firing")).await;
    assert_signed(&fired, &secret);
    let message = fired.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("flaky is stop"), "{message}");
    assert_eq!(alert_events(&api, &id, "alert.fired", &rule).await.len(), 1);

    let start = api
        .post(&format!("/deployments/{id}/start"), json!({}))
        .await;
    assert!(start.status.is_success(), "{}", start.text);
    let resolved = hook
        .wait_for("resolved", |c| is(c, &rule, "resolved"))
        .await;
    assert_signed(&resolved, &secret);
    assert_eq!(resolved.json()["message"], "flaky is running");
    let events = alert_events(&api, &id, "alert.resolved", &rule).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["details"]["message"], "flaky is running");

    // Deleting the deployment drops nothing silently: a firing alert on it resolves.
    let stop = api
        .post(&format!("/deployments/{id}/stop"), json!({}))
        .await;
    assert!(stop.status.is_success(), "{}", stop.text);
    hook.wait_for("firing again", |c| {
        is(c, &rule, "firing") && c.json()["fired_at"] != fired.json()["fired_at"]
    })
    .await;
    assert_eq!(api.delete(&format!("/deployments/{id}")).await.status, 202);
    hook.wait_for("resolved as gone", |c| {
        is(c, &rule, "resolved")
            && c.json()["message"]
                .as_str()
                .unwrap()
                .contains("no longer watched")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_and_domain_alerts_follow_uploads_and_dns_checks() {
    let hook = WebhookReceiver::start().await;
    let dns = DnsServer::start().await;
    let dns_addr = dns.addr().to_string();
    let cp = control_plane(
        Backend::Sqlite,
        &[
            "--public-host",
            "broker.skyport.test",
            "--dns-server",
            &dns_addr,
            "--dns-recheck-interval",
            "1h",
        ],
    );
    let (project, api) = cp.api.project_with_key("certs").await;
    let (id, _) = open_deployment(&api, "secure", json!({"max_sessions": 10, "max_tps": 10})).await;
    let (webhook, secret) = webhook_channel(&api, &project, &hook.url).await;
    let expiring = create_rule(
        &api,
        &project,
        json!({"name": "cert", "condition": {"kind": "certificate_expiring", "days": 30}, "channel_ids": [webhook]}),
    )
    .await;
    let failing = create_rule(
        &api,
        &project,
        json!({"name": "dns", "condition": {"kind": "domain_verification_failing", "checks": 1}, "channel_ids": [webhook]}),
    )
    .await;

    // An uploaded certificate valid for 10 more days, for a domain with no DNS record.
    let issuer = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&issuer).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(vec!["mine.example.test".to_owned()]).unwrap();
    leaf.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(10);
    let leaf = leaf.signed_by(&key, &ca, &issuer).unwrap();
    let added = api
        .post(
            &format!("/deployments/{id}/domains"),
            json!({"domain": "mine.example.test", "certificate": format!("{}{}", leaf.pem(), ca.pem()),
                   "private_key": key.serialize_pem()}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    let subject = format!("{id}/domain/mine.example.test");

    let cert = hook
        .wait_for("certificate firing", |c| is(c, &expiring, "firing"))
        .await;
    assert_signed(&cert, &secret);
    assert_eq!(cert.json()["subject"], subject.as_str());
    assert!(
        cert.json()["message"]
            .as_str()
            .unwrap()
            .contains("9 days left")
            || cert.json()["message"]
                .as_str()
                .unwrap()
                .contains("10 days left"),
        "{}",
        cert.json()
    );

    // One failed DNS check: verification is failing.
    let verify = format!("/deployments/{id}/domains/mine.example.test/verify");
    let checked = api.post(&verify, json!({})).await;
    assert_eq!(checked.body["status"], "pending_dns", "{}", checked.text);
    let dns_alert = hook
        .wait_for("domain firing", |c| is(c, &failing, "firing"))
        .await;
    assert_eq!(dns_alert.json()["subject"], subject.as_str());

    // The record appears and the domain verifies: resolved.
    dns.set_cname("mine.example.test", "broker.skyport.test");
    let checked = api.post(&verify, json!({})).await;
    assert_eq!(checked.body["status"], "active", "{}", checked.text);
    let resolved = hook
        .wait_for("domain resolved", |c| is(c, &failing, "resolved"))
        .await;
    assert_eq!(resolved.json()["message"], "mine.example.test is verified");

    // The certificate goes with its domain: that alert resolves too.
    let removed = api
        .delete(&format!("/deployments/{id}/domains/mine.example.test"))
        .await;
    assert!(removed.status.is_success(), "{}", removed.text);
    hook.wait_for("certificate resolved", |c| is(c, &expiring, "resolved"))
        .await;
    assert_eq!(
        alert_events(&api, &id, "alert.fired", &expiring)
            .await
            .len(),
        1
    );
    assert_eq!(
        alert_events(&api, &id, "alert.resolved", &failing)
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_leader_takes_over_firing_alerts_without_firing_them_again() {
    let hook = WebhookReceiver::start().await;
    let mut cluster = Cluster::start(2, &["--metering-interval", "1s", "--alert-interval", "1s"]);
    let leader = cluster.agreed_leader().await;
    let follower = 1 - leader;
    let (project, api) = cluster.replicas[follower]
        .api
        .project_with_key("handover")
        .await;
    let (id, _) =
        open_deployment(&api, "handover", json!({"max_sessions": 10, "max_tps": 10})).await;
    let (webhook, _) = webhook_channel(&api, &project, &hook.url).await;
    let down = |name: &str| {
        json!({"name": name, "condition": {"kind": "deployment_not_running", "minutes": 0, "include_stopped": true},
               "channel_ids": [webhook]})
    };
    let first = create_rule(&api, &project, down("first")).await;
    let stop = api
        .post(&format!("/deployments/{id}/stop"), json!({}))
        .await;
    assert!(stop.status.is_success(), "{}", stop.text);
    hook.wait_for("firing", |c| is(c, &first, "firing")).await;

    // The leader dies while the alert fires; the other replica takes over evaluation.
    cluster.kill(leader);
    assert_eq!(cluster.agreed_leader().await, follower);
    // A rule created now fires only once the new leader evaluates: it has seen the
    // first rule's alert (same pass) by then.
    let second = create_rule(&api, &project, down("second")).await;
    hook.wait_for("the new leader's firing", |c| is(c, &second, "firing"))
        .await;
    let start = api
        .post(&format!("/deployments/{id}/start"), json!({}))
        .await;
    assert!(start.status.is_success(), "{}", start.text);
    hook.wait_for("resolved by the new leader", |c| is(c, &first, "resolved"))
        .await;

    assert_eq!(
        alert_events(&api, &id, "alert.fired", &first).await.len(),
        1
    );
    assert_eq!(
        alert_events(&api, &id, "alert.resolved", &first)
            .await
            .len(),
        1
    );
    let firsts = hook
        .calls()
        .iter()
        .filter(|c| is(c, &first, "firing"))
        .count();
    assert_eq!(firsts, 1, "fired once across the hand-over");
}

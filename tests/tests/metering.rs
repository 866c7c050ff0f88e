//! Metering: the report protocol (idempotent under loss, duplication and reordering), the
//! series and usage APIs against independently computed sums, roll-ups and retention on
//! both backends, bad input, and the control plane's Prometheus metrics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use skyport_control_plane::domain::{Actor, DesiredState, EventType, Id, Plan, Status, Tier};
use skyport_control_plane::events::Clock;
use skyport_control_plane::metering::retention::{purge_once, Purged, Retention};
use skyport_control_plane::metering::{Granularity, Report, ReportOutcome, Usage};
use skyport_control_plane::store::{self, Deployment, Event, Project, Store};
use skyport_tests::{postgres::TestDatabase, Backend, ControlPlane};

// ---------------------------------------------------------------------------------------
// Test data and the independent arithmetic the assertions use.

/// xorshift64*: deterministic test data without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    fn usage(&mut self) -> Usage {
        let seconds = 1 + self.below(20) as i64;
        let sessions_max = self.below(500) as i64;
        let connected_max = self.below(sessions_max as u64 + 1) as i64;
        Usage {
            messages_in: self.below(1000) as i64,
            messages_out: self.below(3000) as i64,
            retained_out: self.below(50) as i64,
            http_published: self.below(20) as i64,
            bytes_in: self.below(1_000_000) as i64,
            bytes_out: self.below(3_000_000) as i64,
            dropped: self.below(5) as i64,
            sessions_max,
            connected_max,
            offline_persistent_max: sessions_max - connected_max,
            session_seconds: self.below(sessions_max as u64 * seconds as u64 + 1) as i64,
            seconds,
            tps_max: self.below(800) as i64,
        }
    }
}

/// Sums and maxima of `entries` (minute, usage) per bucket of `bucket` seconds, written
/// out field by field rather than with the code under test.
fn expected(entries: &[(i64, Usage)], bucket: impl Fn(i64) -> i64) -> BTreeMap<i64, Usage> {
    let mut out = BTreeMap::<i64, Usage>::new();
    for (minute, u) in entries {
        let acc = out.entry(bucket(*minute)).or_default();
        acc.messages_in += u.messages_in;
        acc.messages_out += u.messages_out;
        acc.retained_out += u.retained_out;
        acc.http_published += u.http_published;
        acc.bytes_in += u.bytes_in;
        acc.bytes_out += u.bytes_out;
        acc.dropped += u.dropped;
        acc.session_seconds += u.session_seconds;
        acc.seconds += u.seconds;
        acc.sessions_max = acc.sessions_max.max(u.sessions_max);
        acc.connected_max = acc.connected_max.max(u.connected_max);
        acc.offline_persistent_max = acc.offline_persistent_max.max(u.offline_persistent_max);
        acc.tps_max = acc.tps_max.max(u.tps_max);
    }
    out
}

fn every(seconds: i64) -> impl Fn(i64) -> i64 {
    move |t| t - t.rem_euclid(seconds)
}

fn month_of(t: i64) -> i64 {
    let d = DateTime::from_timestamp(t, 0).unwrap();
    Utc.with_ymd_and_hms(d.year(), d.month(), 1, 0, 0, 0)
        .unwrap()
        .timestamp()
}

fn messages(u: &Usage) -> i64 {
    u.messages_in + u.messages_out + u.retained_out + u.http_published
}

fn rfc3339(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One minute entry of a report body.
fn minute_json(minute: i64, u: &Usage) -> Value {
    json!({
        "minute": rfc3339(minute),
        "messages_in": u.messages_in, "messages_out": u.messages_out,
        "retained_out": u.retained_out, "http_published": u.http_published,
        "bytes_in": u.bytes_in, "bytes_out": u.bytes_out, "dropped": u.dropped,
        "sessions_max": u.sessions_max, "connected_max": u.connected_max,
        "offline_persistent_max": u.offline_persistent_max,
        "session_seconds": u.session_seconds, "seconds": u.seconds, "tps_max": u.tps_max,
    })
}

/// The reports of one broker process lifetime (node, epoch): report `seq` is
/// `minutes[seq - 1]`, each a delta over one or two minutes, as a 10 s interval gives.
struct Stream {
    node: String,
    epoch: i64,
    minutes: Vec<Vec<(i64, Usage)>>,
}

impl Stream {
    fn generate(
        rng: &mut Rng,
        node: &str,
        epoch: i64,
        reports: usize,
        base: i64,
        offset: i64,
    ) -> Self {
        let minutes = (0..reports as i64)
            .map(|k| {
                let first = base + (offset + k) / 3 * 60;
                let mut entries = vec![(first, rng.usage())];
                if k % 3 == 2 {
                    entries.push((first + 60, rng.usage()));
                }
                entries
            })
            .collect();
        Self {
            node: node.into(),
            epoch,
            minutes,
        }
    }

    fn entries(&self) -> Vec<(i64, Usage)> {
        self.minutes.iter().flatten().copied().collect()
    }

    fn body(&self, deployment_id: &str, seq: i64) -> Value {
        json!({
            "deployment_id": deployment_id,
            "node_id": self.node,
            "epoch": self.epoch,
            "seq": seq,
            "minutes": self.minutes[seq as usize - 1].iter().map(|(m, u)| minute_json(*m, u)).collect::<Vec<_>>(),
        })
    }

    fn report(&self, deployment_id: Id, seq: i64) -> Report {
        let mut minutes = BTreeMap::<i64, Usage>::new();
        for (m, u) in &self.minutes[seq as usize - 1] {
            minutes.entry(*m).or_default().merge(u);
        }
        Report {
            deployment_id,
            node_id: self.node.clone(),
            epoch: self.epoch,
            seq,
            minutes,
        }
    }
}

// ---------------------------------------------------------------------------------------
// A broker's side of the protocol, over HTTP.

struct Node {
    http: reqwest::Client,
    url: String,
    token: String,
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Value,
}

impl Node {
    fn new(cp: &ControlPlane, token: &str) -> Self {
        Self {
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            url: format!("{}/internal/v1/metering/reports", cp.base_url),
            token: token.into(),
        }
    }

    async fn send(&self, body: &Value) -> Answer {
        let mut req = self.http.post(&self.url).json(body);
        if !self.token.is_empty() {
            req = req.bearer_auth(&self.token);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            content_type,
            body,
        }
    }

    #[track_caller]
    fn assert_acked(answer: &Answer, acked_seq: i64) {
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body, json!({ "acked_seq": acked_seq }));
    }

    #[track_caller]
    fn assert_gap(answer: &Answer, expected_seq: i64) {
        assert_eq!(answer.status, 409, "{}", answer.body);
        assert_eq!(answer.content_type, "application/problem+json");
        assert_eq!(answer.body["code"], "seq_gap");
        assert_eq!(answer.body["status"], 409);
        assert_eq!(answer.body["expected_seq"], expected_seq);
    }

    #[track_caller]
    fn assert_problem(answer: &Answer, status: u16, code: &str) {
        assert_eq!(answer.status.as_u16(), status, "{}", answer.body);
        assert_eq!(answer.content_type, "application/problem+json");
        assert_eq!(answer.body["code"], code, "{}", answer.body);
    }

    /// Sends every report of `stream` through a channel that loses, delays, duplicates
    /// and replays reports and loses acknowledgements, following the protocol: resend
    /// from the first unacknowledged report, or from `expected_seq` after a 409. Returns
    /// how many gaps and duplicates the control plane saw.
    async fn deliver_unreliably(
        &self,
        deployment_id: &str,
        stream: &Stream,
        rng: &mut Rng,
    ) -> (u32, u32) {
        let n = stream.minutes.len() as i64;
        let (mut acked, mut next) = (0i64, 1i64);
        let (mut gaps, mut duplicates) = (0, 0);
        let mut delayed = Vec::new();
        for _ in 0..20_000 {
            if acked == n {
                return (gaps, duplicates);
            }
            if next > n {
                next = acked + 1; // the retry timer fires
            }
            let (seq, ack_lost) = match rng.below(12) {
                0 | 1 => {
                    next += 1; // lost in transit
                    continue;
                }
                2 => {
                    delayed.push(next);
                    next += 1;
                    continue;
                }
                3 if !delayed.is_empty() => (
                    delayed.remove(rng.below(delayed.len() as u64) as usize),
                    false,
                ),
                4 if acked > 0 => (1 + rng.below(acked as u64) as i64, false),
                5 => {
                    next += 1;
                    (next - 1, true)
                }
                _ => {
                    next += 1;
                    (next - 1, false)
                }
            };
            let answer = self.send(&stream.body(deployment_id, seq)).await;
            match answer.status.as_u16() {
                409 => gaps += 1,
                200 if answer.body["acked_seq"].as_i64() != Some(seq) => duplicates += 1,
                _ => {}
            }
            if ack_lost {
                continue;
            }
            match answer.status.as_u16() {
                200 => {
                    let acked_seq = answer.body["acked_seq"].as_i64().unwrap();
                    assert!(
                        acked_seq >= seq,
                        "an ack covers the report: {seq} vs {acked_seq}"
                    );
                    acked = acked.max(acked_seq);
                }
                409 => {
                    let expected = answer.body["expected_seq"].as_i64().unwrap();
                    assert!(expected <= seq, "a gap is before the report sent");
                    acked = acked.max(expected - 1);
                    next = expected;
                }
                other => panic!("unexpected answer {other}: {}", answer.body),
            }
        }
        panic!(
            "{}/{} was not delivered in 20000 steps",
            stream.node, stream.epoch
        );
    }
}

fn node_token(cp: &ControlPlane, deployment_id: &str) -> String {
    let path = cp
        .data_dir
        .path()
        .join("deployments")
        .join(deployment_id)
        .join("node-token");
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

fn broker_config(cp: &ControlPlane, deployment_id: &str) -> Value {
    let path = cp
        .data_dir
        .path()
        .join("deployments")
        .join(deployment_id)
        .join("config.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Start of the hour two hours ago: recent enough for every retention, and far from the
/// minutes a live broker reports.
fn test_base() -> i64 {
    let now = Utc::now().timestamp();
    now - now.rem_euclid(3600) - 2 * 3600
}

#[track_caller]
fn assert_point(point: &Value, ts: i64, step: i64, u: &Usage) {
    let ctx = format!("point {point} vs expected {u:?}");
    assert_eq!(point["ts"], rfc3339(ts), "{ctx}");
    for (field, value) in [
        ("messages_in", u.messages_in),
        ("messages_out", u.messages_out),
        ("retained_out", u.retained_out),
        ("http_published", u.http_published),
        ("bytes_in", u.bytes_in),
        ("bytes_out", u.bytes_out),
        ("dropped", u.dropped),
        ("sessions_max", u.sessions_max),
        ("connected_max", u.connected_max),
        ("offline_persistent_max", u.offline_persistent_max),
        ("tps_max", u.tps_max),
        ("messages", messages(u)),
    ] {
        assert_eq!(point[field].as_i64(), Some(value), "{field}: {ctx}");
    }
    let close = |field: &str, want: f64| {
        let got = point[field].as_f64().unwrap();
        assert!((got - want).abs() < 1e-9, "{field}: {got} vs {want}: {ctx}");
    };
    close("sessions_avg", u.session_seconds as f64 / step as f64);
    close("tps_avg", messages(u) as f64 / step as f64);
}

// ---------------------------------------------------------------------------------------
// End to end, over HTTP, on both backends.

async fn protocol_is_idempotent_and_totals_exact(backend: Backend) {
    let cp = ControlPlane::start_with(backend, &[]);
    let (project_id, api) = cp.api.project_with_key("metered").await;
    let id = api.create_deployment("meter", "dedicated").await;
    api.wait_status(&id, "running").await;

    // The broker is told where and how to report; the token is on disk for it alone.
    let token = node_token(&cp, &id);
    assert!(token.starts_with("skn_"), "{token}");
    let config = broker_config(&cp, &id);
    assert_eq!(
        config["metering"],
        json!({
            "url": format!("{}/internal/v1/metering/reports", cp.base_url),
            "token": token,
            "interval_ms": 10_000,
        })
    );
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["node-token", "config.json"] {
            let path = cp.data_dir.path().join("deployments").join(&id).join(file);
            assert_eq!(
                std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
                0o600,
                "{file}"
            );
        }
    }
    // A stopped deployment still takes reports (a broker's last ones arrive after it
    // stops); stopping leaves this test the only reporter.
    api.post(&format!("/deployments/{id}/stop"), json!({}))
        .await;
    api.wait_status(&id, "stopped").await;

    let node = Node::new(&cp, &token);
    let base = test_base();
    let mut rng = Rng(0x5eed_0001 + backend as u64);
    let scripted = Stream::generate(&mut rng, "node-a", 1_764_400_000_123, 6, base, 0);
    let body = |seq| scripted.body(&id, seq);

    Node::assert_acked(&node.send(&body(1)).await, 1);
    Node::assert_acked(&node.send(&body(1)).await, 1); // duplicate: acknowledged, ignored
    Node::assert_gap(&node.send(&body(3)).await, 2); // 2 is missing
    Node::assert_acked(&node.send(&body(2)).await, 2);
    Node::assert_acked(&node.send(&body(3)).await, 3);
    Node::assert_acked(&node.send(&body(2)).await, 3); // late duplicate: acks the latest
    Node::assert_gap(&node.send(&body(5)).await, 4); // 4 was lost
    for seq in 4..=6 {
        Node::assert_acked(&node.send(&body(seq)).await, seq);
    }

    // Another node, and node-a again after a restart (new epoch), over a bad channel.
    let other = Stream::generate(&mut rng, "node-b", 1_764_400_000_999, 30, base, 0);
    let restarted = Stream::generate(&mut rng, "node-a", 1_764_400_500_000, 20, base, 5);
    for stream in [&other, &restarted] {
        let (gaps, duplicates) = node.deliver_unreliably(&id, stream, &mut rng).await;
        assert!(
            gaps > 0 && duplicates > 0,
            "the channel lost and repeated: {gaps} gaps, {duplicates} duplicates"
        );
    }

    let entries: Vec<_> = [&scripted, &other, &restarted]
        .iter()
        .flat_map(|s| s.entries())
        .collect();
    let window = 15 * 60;
    for (step, step_name) in [(60, "1m"), (300, "5m"), (3600, "1h")] {
        let to = base + window.max(step);
        let series = api
            .get(&format!(
                "/deployments/{id}/metrics?from={}&to={}&step={step_name}",
                rfc3339(base),
                rfc3339(to)
            ))
            .await;
        assert_eq!(series.status, 200, "{}", series.text);
        let points = series.body["points"].as_array().unwrap();
        let want = expected(&entries, every(step));
        assert_eq!(points.len() as i64, (to - base) / step);
        for (i, point) in points.iter().enumerate() {
            let ts = base + i as i64 * step;
            assert_point(point, ts, step, &want.get(&ts).copied().unwrap_or_default());
        }
    }

    let month = DateTime::from_timestamp(base, 0).unwrap();
    let usage = api
        .get(&format!(
            "/projects/{project_id}/usage?month={:04}-{:02}",
            month.year(),
            month.month()
        ))
        .await;
    assert_eq!(usage.status, 200, "{}", usage.text);
    let total = expected(&entries, month_of)[&month_of(base)];
    let want = json!({
        "session_minutes": total.session_seconds as f64 / 60.0,
        "peak_sessions": total.sessions_max,
        "peak_tps": total.tps_max,
        "messages": messages(&total),
        "bytes_in": total.bytes_in,
        "bytes_out": total.bytes_out,
    });
    let mut per_deployment = want.clone();
    per_deployment["deployment_id"] = json!(id);
    per_deployment["name"] = json!("meter");
    assert_eq!(
        usage.body,
        json!({
            "project_id": project_id,
            "month": format!("{:04}-{:02}", month.year(), month.month()),
            "deployments": [per_deployment],
            "total": want,
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn protocol_is_idempotent_and_totals_exact_sqlite() {
    protocol_is_idempotent_and_totals_exact(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn protocol_is_idempotent_and_totals_exact_postgres() {
    protocol_is_idempotent_and_totals_exact(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_are_authenticated_validated_and_outlive_their_deployment() {
    let mut cp = ControlPlane::start();
    let (project_id, api) = cp.api.project_with_key("acme").await;
    let (_, stranger) = cp.api.project_with_key("stranger").await;
    let a = api.create_deployment("a", "dedicated").await;
    let b = api.create_deployment("b", "serverless").await;
    api.wait_status(&a, "running").await;
    api.wait_status(&b, "running").await;
    let (token_a, token_b) = (node_token(&cp, &a), node_token(&cp, &b));
    assert_ne!(token_a, token_b);

    // The token is stable: a control-plane restart re-adopts the broker with it.
    cp.restart();
    api.wait_status(&a, "running").await;
    assert_eq!(node_token(&cp, &a), token_a);
    assert_eq!(
        broker_config(&cp, &a)["metering"]["token"],
        token_a.as_str()
    );

    let base = test_base();
    let mut rng = Rng(42);
    let stream = Stream::generate(&mut rng, "n", 7, 3, base, 0);
    let node_a = Node::new(&cp, &token_a);
    Node::assert_acked(&node_a.send(&stream.body(&a, 1)).await, 1);

    // Authentication.
    let valid = stream.body(&a, 2);
    Node::assert_problem(&Node::new(&cp, "").send(&valid).await, 401, "missing_token");
    Node::assert_problem(
        &Node::new(&cp, "skn_nope").send(&valid).await,
        401,
        "invalid_token",
    );
    Node::assert_problem(
        &Node::new(&cp, &token_b).send(&valid).await,
        401,
        "invalid_token",
    );
    Node::assert_problem(
        &Node::new(&cp, &api.token).send(&valid).await,
        401,
        "invalid_token",
    );
    Node::assert_problem(
        &Node::new(&cp, skyport_tests::ADMIN_TOKEN)
            .send(&valid)
            .await,
        401,
        "invalid_token",
    );

    // Validation: 422 with the offending field; nothing is applied.
    let with = |path: &[&str], value: Value| {
        let mut body = valid.clone();
        let mut at = &mut body;
        for key in &path[..path.len() - 1] {
            at = match key.parse::<usize>() {
                Ok(i) => &mut at[i],
                Err(_) => &mut at[*key],
            };
        }
        at[path[path.len() - 1]] = value;
        body
    };
    for (body, code, field) in [
        (
            with(&["minutes", "0", "bytes_in"], json!(-1)),
            "invalid_minutes",
            Some("minutes[0].bytes_in"),
        ),
        (
            with(&["minutes", "0", "minute"], json!(rfc3339(base + 30))),
            "invalid_minutes",
            Some("minutes[0].minute"),
        ),
        (
            with(&["minutes", "0", "minute"], json!("yesterday")),
            "invalid_minutes",
            Some("minutes[0].minute"),
        ),
        (
            with(&["minutes", "0", "seconds"], json!(61)),
            "invalid_minutes",
            Some("minutes[0].seconds"),
        ),
        (
            with(&["minutes", "0", "surprise"], json!(1)),
            "unknown_field",
            None,
        ),
        (with(&["surprise"], json!(1)), "unknown_field", None),
        (with(&["seq"], json!(0)), "invalid_seq", Some("seq")),
        (with(&["epoch"], json!(-5)), "invalid_epoch", Some("epoch")),
        (
            with(&["node_id"], json!("")),
            "invalid_node_id",
            Some("node_id"),
        ),
        (
            with(&["deployment_id"], json!("not-a-uuid")),
            "invalid_deployment_id",
            Some("deployment_id"),
        ),
        (with(&["seq"], json!("two")), "invalid_seq", Some("seq")),
    ] {
        let answer = node_a.send(&body).await;
        Node::assert_problem(&answer, 422, code);
        if let Some(field) = field {
            assert_eq!(answer.body["field"], field, "{}", answer.body);
        }
    }
    let mut missing = valid.clone();
    missing["minutes"][0]
        .as_object_mut()
        .unwrap()
        .remove("tps_max");
    Node::assert_problem(&node_a.send(&missing).await, 422, "missing_field");
    let raw = reqwest::Client::new()
        .post(&node_a.url)
        .bearer_auth(&token_a)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    // None of that was applied: seq 2 is still next.
    Node::assert_acked(&node_a.send(&stream.body(&a, 2)).await, 2);

    // Bad input on the read side.
    let metrics = |query: String| {
        let (api, path) = (api.clone(), format!("/deployments/{a}/metrics?{query}"));
        async move { api.get(&path).await }
    };
    metrics("from=yesterday".into())
        .await
        .assert_problem(400, "invalid_time");
    metrics("to=2026-13-01T00:00:00Z".into())
        .await
        .assert_problem(400, "invalid_time");
    metrics("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z".into())
        .await
        .assert_problem(400, "invalid_range");
    for step in ["30s", "0s", "soon", "90s", "1.5m", "400d"] {
        metrics(format!("step={step}"))
            .await
            .assert_problem(400, "invalid_step");
    }
    metrics("from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:01Z&step=1m".into())
        .await
        .assert_problem(400, "too_many_points");
    let day = metrics("from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&step=1m".into()).await;
    assert_eq!(
        day.body["points"].as_array().map(Vec::len),
        Some(1440),
        "exactly the maximum is fine"
    );
    let usage = |who: &skyport_tests::Api, query: &str| {
        let (who, path) = (who.clone(), format!("/projects/{project_id}/usage{query}"));
        async move { who.get(&path).await }
    };
    for month in ["2026-13", "2026-1", "nope", "2026-00", "9999-01"] {
        usage(&api, &format!("?month={month}"))
            .await
            .assert_problem(400, "invalid_month");
    }
    assert_eq!(
        usage(&api, "").await.status,
        200,
        "the current month by default"
    );
    assert_eq!(
        usage(&cp.api, "?month=2026-01").await.status,
        200,
        "the admin reads any project"
    );
    usage(&stranger, "?month=2026-01")
        .await
        .assert_problem(404, "not_found");
    stranger
        .get(&format!("/deployments/{a}/metrics"))
        .await
        .assert_problem(404, "not_found");
    api.get(&format!("/deployments/{}/metrics", Id::new()))
        .await
        .assert_problem(404, "not_found");

    // After delete: reports are refused with 404, usage stays readable by its project.
    api.call(Method::DELETE, &format!("/deployments/{a}"), None)
        .await;
    api.wait_gone(&a).await;
    Node::assert_problem(&node_a.send(&stream.body(&a, 3)).await, 404, "not_found");
    let from = rfc3339(base);
    let to = rfc3339(base + 3600);
    let series = api
        .get(&format!(
            "/deployments/{a}/metrics?from={from}&to={to}&step=1h"
        ))
        .await;
    assert_eq!(series.status, 200, "{}", series.text);
    let want = expected(
        &[stream.minutes[0].clone(), stream.minutes[1].clone()].concat(),
        every(3600),
    );
    assert_point(&series.body["points"][0], base, 3600, &want[&base]);
    stranger
        .get(&format!("/deployments/{a}/metrics"))
        .await
        .assert_problem(404, "not_found");
    let month = DateTime::from_timestamp(base, 0).unwrap();
    let usage = usage(
        &api,
        &format!("?month={:04}-{:02}", month.year(), month.month()),
    )
    .await;
    assert_eq!(usage.body["deployments"][0]["deployment_id"], a.as_str());
    assert_eq!(
        usage.body["deployments"][0]["name"],
        Value::Null,
        "deleted: no name"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_exposes_api_reconcile_and_metering_families() {
    let cp = ControlPlane::start();
    let (_, api) = cp.api.project_with_key("observed").await;
    let id = api.create_deployment("watched", "dedicated").await;
    api.wait_status(&id, "running").await;
    api.get(&format!("/deployments/{id}")).await;
    api.get("/nowhere").await;
    let token = node_token(&cp, &id);
    let mut rng = Rng(7);
    let stream = Stream::generate(&mut rng, "prom", 1, 3, test_base(), 0);
    let node = Node::new(&cp, &token);
    Node::assert_acked(&node.send(&stream.body(&id, 1)).await, 1);
    Node::assert_gap(&node.send(&stream.body(&id, 3)).await, 2);

    let resp = reqwest::Client::new()
        .get(format!("{}/metrics", cp.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    for needle in [
        "# TYPE skyport_http_requests_total counter",
        r#"skyport_http_requests_total{method="GET",route="/api/v1/deployments/{deployment_id}",status="200"}"#,
        r#"skyport_http_requests_total{method="POST",route="/api/v1/deployments",status="202"} 1"#,
        r#"skyport_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"skyport_http_requests_total{method="POST",route="/internal/v1/metering/reports",status="409"} 1"#,
        "# TYPE skyport_http_request_duration_seconds histogram",
        r#"skyport_http_request_duration_seconds_bucket{method="GET",route="/api/v1/deployments/{deployment_id}",status="200",le="+Inf"}"#,
        "# TYPE skyport_reconcile_total counter",
        r#"skyport_reconcile_total{result="converged"}"#,
        r#"skyport_deployments{status="running"} 1"#,
        r#"skyport_deployments{status="failed"} 0"#,
        r#"skyport_metering_reports_total{result="applied"} 1"#,
        r#"skyport_metering_reports_total{result="gap"} 1"#,
        &format!(r#"skyport_metering_lag_seconds{{deployment_id="{id}"}}"#),
        "# TYPE skyport_metering_lag_max_seconds gauge",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    let converged = text
        .lines()
        .find(|l| l.starts_with(r#"skyport_reconcile_total{result="converged"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap();
    assert!(converged >= 1);
}

// ---------------------------------------------------------------------------------------
// Store level, on both backends: roll-ups across hour, day and month boundaries,
// retention with an injected clock, and concurrent copies of one report.

struct FixedClock(DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

async fn deployment(store: &dyn Store) -> Deployment {
    store.migrate().await.unwrap();
    let project = Project {
        id: Id::new(),
        name: format!("p-{}", Id::new()),
        created_at: Utc::now(),
    };
    store.create_project(&project).await.unwrap();
    let now = Utc::now();
    let d = Deployment {
        id: Id::new(),
        project_id: project.id,
        name: "d".into(),
        plan: Plan::Dedicated,
        tier: Tier {
            max_sessions: 1,
            max_tps: 1,
        },
        version: "0.1".into(),
        desired_state: DesiredState::Running,
        status: Status::Running,
        status_reason: None,
        generation: 1,
        observed_generation: 1,
        applied_revision: 0,
        endpoints: None,
        created_at: now,
        updated_at: now,
    };
    let created = Event::new(&d, EventType::DeploymentCreated, &Actor::System, json!({}));
    store.create_deployment(&d, &created).await.unwrap();
    d
}

fn ts(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .unwrap()
        .timestamp()
}

async fn rollups_and_retention(store: Arc<dyn Store>) {
    let d = deployment(store.as_ref()).await;
    let applied_at = ts(2026, 11, 1, 1, 31) * 1000;
    // Three hours from 22:30 on 31 October to 01:30 on 1 November, from two nodes.
    let base = ts(2026, 10, 31, 22, 30);
    let mut rng = Rng(0xfeed);
    let streams = [
        Stream::generate(&mut rng, "n1", 1, 540, base, 0),
        Stream::generate(&mut rng, "n2", 2, 500, base, 10),
    ];
    for stream in &streams {
        for seq in 1..=stream.minutes.len() as i64 {
            let outcome = store
                .apply_report(d.project_id, &stream.report(d.id, seq), applied_at)
                .await
                .unwrap();
            assert_eq!(outcome, ReportOutcome::Applied { acked_seq: seq });
        }
    }
    let entries: Vec<_> = streams.iter().flat_map(Stream::entries).collect();
    let (from, to) = (base, ts(2026, 11, 1, 2, 0));
    let (project_id, deployment_id) = (d.project_id, d.id);
    let series = |g: Granularity, step: i64| {
        let store = store.clone();
        async move {
            store
                .usage_series(
                    project_id,
                    deployment_id,
                    g,
                    from - from.rem_euclid(step),
                    to,
                    step,
                )
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.period_start, r.usage))
                .collect::<BTreeMap<_, _>>()
        }
    };
    assert_eq!(
        series(Granularity::Minute, 60).await,
        expected(&entries, every(60))
    );
    assert_eq!(
        series(Granularity::Minute, 300).await,
        expected(&entries, every(300))
    );
    assert_eq!(
        series(Granularity::Hour, 3600).await,
        expected(&entries, every(3600))
    );
    assert_eq!(
        series(Granularity::Hour, 86_400).await,
        expected(&entries, every(86_400))
    );
    let months = expected(&entries, month_of);
    assert_eq!(months.len(), 2, "the data spans October and November");
    for (month, want) in &months {
        let got = store.monthly_usage(d.project_id, *month).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].deployment_id, got[0].name.as_deref()),
            (d.id, Some("d"))
        );
        assert_eq!(got[0].usage, *want);
    }

    // Retention: a week later, October's minutes are gone; hours and months remain.
    let retention = Retention {
        minutes: Duration::from_secs(7 * 86_400),
        hours: Duration::from_secs(90 * 86_400),
    };
    let at = |t: i64| FixedClock(DateTime::from_timestamp(t, 0).unwrap());
    let october_minutes = expected(&entries, every(60))
        .keys()
        .filter(|&&m| m < ts(2026, 11, 1, 0, 0))
        .count();
    let purged = purge_once(store.as_ref(), &at(ts(2026, 11, 8, 0, 0)), retention)
        .await
        .unwrap();
    assert_eq!(
        purged,
        Purged {
            minutes: october_minutes as u64,
            hours: 0,
            cursors: 0
        }
    );
    let november: Vec<_> = entries
        .iter()
        .filter(|(m, _)| *m >= ts(2026, 11, 1, 0, 0))
        .copied()
        .collect();
    assert_eq!(
        series(Granularity::Minute, 60).await,
        expected(&november, every(60))
    );
    assert_eq!(
        series(Granularity::Hour, 3600).await,
        expected(&entries, every(3600))
    );
    // Ninety days on, October's hours go too (and the cursors, last used on 1 November).
    let purged = purge_once(store.as_ref(), &at(ts(2027, 1, 30, 0, 0)), retention)
        .await
        .unwrap();
    assert_eq!(purged.hours, 2, "22:00 and 23:00 on 31 October");
    assert_eq!(purged.cursors, 0, "last used at 01:31, after the cutoff");
    assert_eq!(
        series(Granularity::Hour, 3600).await,
        expected(&november, every(3600))
    );
    let purged = purge_once(store.as_ref(), &at(ts(2027, 6, 1, 0, 0)), retention)
        .await
        .unwrap();
    assert_eq!(purged.cursors, 2);
    for (month, want) in &months {
        assert_eq!(
            store.monthly_usage(d.project_id, *month).await.unwrap()[0].usage,
            *want,
            "months are kept"
        );
    }
}

async fn concurrent_copies_apply_once(store: Arc<dyn Store>) {
    let d = deployment(store.as_ref()).await;
    let base = ts(2026, 11, 29, 7, 0);
    let mut rng = Rng(99);
    let stream = Stream::generate(&mut rng, "racer", 5, 4, base, 0);
    for seq in 1..=4 {
        let copies: Vec<_> = (0..8)
            .map(|_| {
                let (store, report, project_id) =
                    (store.clone(), stream.report(d.id, seq), d.project_id);
                tokio::spawn(
                    async move { store.apply_report(project_id, &report, 0).await.unwrap() },
                )
            })
            .collect();
        let mut outcomes = Vec::new();
        for copy in copies {
            outcomes.push(copy.await.unwrap());
        }
        let applied = outcomes
            .iter()
            .filter(|o| matches!(o, ReportOutcome::Applied { .. }))
            .count();
        assert_eq!(
            applied, 1,
            "exactly one copy of seq {seq} applies: {outcomes:?}"
        );
    }
    let got = store
        .usage_series(
            d.project_id,
            d.id,
            Granularity::Minute,
            base,
            base + 3600,
            3600,
        )
        .await
        .unwrap();
    assert_eq!(
        got[0].usage,
        expected(&stream.entries(), every(3600))[&base]
    );
    let gap = store
        .apply_report(d.project_id, &stream.report(d.id, 4), 0)
        .await
        .unwrap();
    assert_eq!(gap, ReportOutcome::Duplicate { acked_seq: 4 });
    let mut later = stream.report(d.id, 4);
    later.seq = 9;
    assert_eq!(
        store.apply_report(d.project_id, &later, 0).await.unwrap(),
        ReportOutcome::Gap { expected_seq: 5 }
    );
}

async fn sqlite_store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("metering.db").display());
    let store = store::connect(&url).await.unwrap();
    (dir, store)
}

#[tokio::test(flavor = "multi_thread")]
async fn rollups_and_retention_sqlite() {
    let (_dir, store) = sqlite_store().await;
    rollups_and_retention(store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rollups_and_retention_postgres() {
    let db = TestDatabase::create();
    rollups_and_retention(store::connect(&db.url).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_copies_apply_once_sqlite() {
    let (_dir, store) = sqlite_store().await;
    concurrent_copies_apply_once(store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_copies_apply_once_postgres() {
    let db = TestDatabase::create();
    concurrent_copies_apply_once(store::connect(&db.url).await.unwrap()).await;
}

#[test]
fn test_data_stays_within_the_protocol_limits() {
    let mut rng = Rng(1);
    for _ in 0..1000 {
        let u = rng.usage();
        assert!(u.seconds <= 60 && u.session_seconds <= u.sessions_max * u.seconds);
        assert!(u.connected_max + u.offline_persistent_max == u.sessions_max);
    }
    let t = DateTime::from_timestamp(test_base(), 0).unwrap();
    assert_eq!((t.minute(), t.second()), (0, 0));
}

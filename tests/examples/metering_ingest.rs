//! Benchmark (not a test): metering ingest throughput of the control plane.
//!
//! 1,000 deployments reporting every 10 s need 100 reports/s. This starts the real
//! `skyport` binary on SQLite and on PostgreSQL, registers 1,000 deployments (stopped, so
//! no brokers run) with node tokens, then sends rounds of one report per deployment — as
//! fast as the control plane takes them, `--concurrency` in flight — and reports the
//! sustained reports/s, latency percentiles and the headroom over 100 reports/s. Each
//! report carries one minute (every sixth a second one, as a minute boundary gives).
//!
//! Run with `bash bench/metering.sh` (release build); results go to
//! `bench/results/metering-ingest.{json,md}`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};
use skyport_control_plane::domain::{
    token, Actor, DesiredState, EventType, Id, Plan, Status, Tier,
};
use skyport_control_plane::metering::generate_node_token;
use skyport_control_plane::store::{self, Deployment, Event, Project};
use skyport_tests::{workspace_root, Backend, ControlPlane};

const NEEDED_PER_SECOND: f64 = 100.0;

struct Options {
    deployments: usize,
    rounds: usize,
    concurrency: usize,
    backends: Vec<Backend>,
}

fn options() -> Options {
    let mut o = Options {
        deployments: 1000,
        rounds: 30,
        concurrency: 32,
        backends: vec![Backend::Sqlite, Backend::Postgres],
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or_default();
        match pair[0].as_str() {
            "--deployments" => o.deployments = value.parse().expect("--deployments N"),
            "--rounds" => o.rounds = value.parse().expect("--rounds N"),
            "--concurrency" => o.concurrency = value.parse().expect("--concurrency N"),
            "--backend" => {
                o.backends = match value {
                    "sqlite" => vec![Backend::Sqlite],
                    "postgres" => vec![Backend::Postgres],
                    _ => panic!("--backend sqlite|postgres"),
                }
            }
            other => panic!("unknown option {other}"),
        }
    }
    o
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn run(backend: Backend, o: &Options) -> Value {
    let cp = ControlPlane::start_with(backend, &[]);
    let store = store::connect(cp.database_url()).await.expect("store");
    let project = Project {
        id: Id::new(),
        name: "bench".into(),
        created_at: Utc::now(),
    };
    store.create_project(&project).await.unwrap();
    let mut nodes = Vec::with_capacity(o.deployments);
    for i in 0..o.deployments {
        let now = Utc::now();
        let d = Deployment {
            id: Id::new(),
            project_id: project.id,
            name: format!("d{i}"),
            plan: Plan::Dedicated,
            tier: Tier {
                max_sessions: 1000,
                max_tps: 1000,
            },
            version: "0.1".into(),
            desired_state: DesiredState::Stopped,
            status: Status::Stopped,
            status_reason: None,
            generation: 1,
            observed_generation: 1,
            applied_revision: 0,
            endpoints: None,
            created_at: now,
            updated_at: now,
        };
        let event = Event::new(&d, EventType::DeploymentCreated, &Actor::System, json!({}));
        store.create_deployment(&d, &event).await.unwrap();
        let node_token = generate_node_token();
        store
            .register_node_token(d.id, project.id, &token::hash(&node_token))
            .await
            .unwrap();
        nodes.push((d.id.to_string(), node_token));
    }
    let nodes = Arc::new(nodes);
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(o.concurrency)
        .build()
        .unwrap();
    let url = format!("{}/internal/v1/metering/reports", cp.base_url);
    let epoch = Utc::now().timestamp_millis();
    let minute0 = {
        let now = Utc::now().timestamp();
        now - now.rem_euclid(60)
    };

    let mut latencies = Vec::with_capacity(o.deployments * o.rounds);
    let started = Instant::now();
    for round in 0..o.rounds {
        // Six 10 s reports per minute; the sixth also closes the previous minute.
        let minute = minute0 + (round as i64 / 6) * 60;
        let minutes = if round % 6 == 5 {
            vec![minute - 60, minute]
        } else {
            vec![minute]
        };
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..o.concurrency {
            let (http, url, nodes, next, minutes) = (
                http.clone(),
                url.clone(),
                nodes.clone(),
                next.clone(),
                minutes.clone(),
            );
            workers.spawn(async move {
                let mut times = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((deployment_id, node_token)) = nodes.get(i) else { break };
                    let body = json!({
                        "deployment_id": deployment_id,
                        "node_id": "bench-node-0",
                        "epoch": epoch,
                        "seq": round + 1,
                        "minutes": minutes.iter().map(|m| json!({
                            "minute": chrono::DateTime::from_timestamp(*m, 0).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                            "messages_in": 1200, "messages_out": 4800, "retained_out": 3, "http_published": 10,
                            "bytes_in": 96_000, "bytes_out": 384_000, "dropped": 0,
                            "sessions_max": 250, "connected_max": 240, "offline_persistent_max": 10,
                            "session_seconds": 2500, "seconds": 10, "tps_max": 700,
                        })).collect::<Vec<_>>(),
                    });
                    let t = Instant::now();
                    let resp = http.post(&url).bearer_auth(node_token).json(&body).send().await.expect("request");
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    assert_eq!(status, 200, "{text}");
                    times.push(t.elapsed());
                }
                times
            });
        }
        while let Some(times) = workers.join_next().await {
            latencies.extend(times.expect("worker"));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let reports = latencies.len();

    // Sanity: every report landed exactly once.
    let month = Utc::now();
    let usage = store
        .monthly_usage(
            project.id,
            skyport_control_plane::metering::month_start(
                chrono::Datelike::year(&month),
                chrono::Datelike::month(&month),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let messages: i64 = usage.iter().map(|u| u.usage.messages()).sum();
    let extra_minutes = (0..o.rounds).filter(|r| r % 6 == 5).count();
    assert_eq!(
        messages,
        (reports + extra_minutes * o.deployments) as i64 * (1200 + 4800 + 3 + 10),
        "every report is counted once (assumes the run does not cross a month boundary)"
    );

    latencies.sort();
    let per_second = reports as f64 / elapsed;
    let result = json!({
        "backend": match backend { Backend::Sqlite => "sqlite", Backend::Postgres => "postgres" },
        "deployments": o.deployments,
        "rounds": o.rounds,
        "concurrency": o.concurrency,
        "reports": reports,
        "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
        "reports_per_s": per_second.round() as i64,
        "needed_reports_per_s": NEEDED_PER_SECOND,
        "headroom": (per_second / NEEDED_PER_SECOND * 10.0).round() / 10.0,
        "latency_ms": {
            "p50": (percentile(&latencies, 0.50) * 100.0).round() / 100.0,
            "p99": (percentile(&latencies, 0.99) * 100.0).round() / 100.0,
            "max": (percentile(&latencies, 1.0) * 100.0).round() / 100.0,
        },
    });
    eprintln!("{result}");
    result
}

#[tokio::main]
async fn main() {
    let o = options();
    let mut results = Vec::new();
    for backend in o.backends.clone() {
        results.push(run(backend, &o).await);
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let doc = json!({
        "benchmark": "metering ingest: POST /internal/v1/metering/reports, one report per deployment per round",
        "machine": { "cores": cores },
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "results": results,
    });
    let dir = workspace_root().join("bench/results");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("metering-ingest.json"),
        serde_json::to_string_pretty(&doc).unwrap() + "\n",
    )
    .unwrap();

    let mut md = String::from(
        "# Metering ingest\n\n\
         `bash bench/metering.sh` — the real `skyport` binary; 1,000 deployments (stopped, so no \
         brokers) each send one report per round to `POST /internal/v1/metering/reports`, \
         as fast as they are answered. 1,000 deployments reporting every 10 s need \
         **100 reports/s**.\n\n\
         | backend | reports | concurrency | reports/s | headroom vs 100/s | p50 ms | p99 ms | max ms |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for r in &results {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {}× | {} | {} | {} |\n",
            r["backend"].as_str().unwrap(),
            r["reports"],
            r["concurrency"],
            r["reports_per_s"],
            r["headroom"],
            r["latency_ms"]["p50"],
            r["latency_ms"]["p99"],
            r["latency_ms"]["max"],
        ));
    }
    md.push_str(&format!(
        "\n{cores} cores, {} build. Each report is one transaction: the cursor update and the \
         minute, hour and month upserts. SQLite runs in WAL mode with its default `synchronous` \
         (FULL); PostgreSQL is the local server with its defaults. The load generator runs on \
         the same cores.\n",
        doc["profile"].as_str().unwrap()
    ));
    std::fs::write(dir.join("metering-ingest.md"), md).unwrap();
    println!("{}", serde_json::to_string_pretty(&doc).unwrap());
}

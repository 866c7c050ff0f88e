//! External HTTP authentication throughput: `Security::authenticate` decisions per second
//! against a local HTTP auth service, with many concurrent CONNECTs, with the decision
//! cache on (TTL 60 s, a small set of repeated credentials) and off (every CONNECT asks
//! the service). The service allows everyone, so every non-`Allow` is a timeout or error.
//!
//! `bash bench/auth.sh` runs it in release mode and writes `bench/results/auth.md`.
//! Options: `--seconds N` (per scenario, default 5), `--concurrency N` (default 256),
//! `--users N` (distinct credentials when cached, default 100).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use skyport_broker::security::settings::{
    Authentication, HttpMethod, HttpSource, SecuritySettings, Source,
};
use skyport_broker::security::{ClientInfo, ConnectVerdict, Security, Transport};

struct Options {
    seconds: u64,
    concurrency: usize,
    users: usize,
}

fn options() -> Options {
    let mut options = Options {
        seconds: 5,
        concurrency: 256,
        users: 100,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = || -> u64 {
            pair.get(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{} needs a number", pair[0]))
        };
        match pair[0].as_str() {
            "--seconds" => options.seconds = value(),
            "--concurrency" => options.concurrency = value() as usize,
            "--users" => options.users = value() as usize,
            other => panic!("unknown option {other}"),
        }
    }
    options
}

/// The auth service: 200 for everyone, counting requests.
async fn start_service(hits: Arc<AtomicU64>) -> String {
    let app = Router::new().route(
        "/auth",
        post(move |body: String| {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::Relaxed);
                std::hint::black_box(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/auth")
}

struct Outcome {
    decisions: u64,
    allowed: u64,
    failed: u64,
    service_hits: u64,
    elapsed: Duration,
    p99_ms: f64,
}

async fn run(security: &Security, options: &Options, cached: bool, hits: &AtomicU64) -> Outcome {
    let before = hits.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let started = Instant::now();
    let unique = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..options.concurrency)
        .map(|worker| {
            let security = security.clone();
            let unique = unique.clone();
            let users = options.users;
            tokio::spawn(async move {
                let (mut allowed, mut failed) = (0u64, 0u64);
                let mut latencies = Vec::new();
                let mut i = worker;
                while Instant::now() < deadline {
                    let n = if cached {
                        i % users
                    } else {
                        unique.fetch_add(1, Ordering::Relaxed) as usize
                    };
                    i += 1;
                    let client = ClientInfo {
                        client_id: format!("client-{n}"),
                        username: Some(format!("user-{n}")),
                        peer: SocketAddr::from(([127, 0, 0, 1], 40_000)),
                        transport: Transport::Mqtt,
                        listener_port: 1883,
                    };
                    let password = format!("password-{n}");
                    let t = Instant::now();
                    match security
                        .authenticate(&client, Some(password.as_bytes()))
                        .await
                    {
                        ConnectVerdict::Allow => allowed += 1,
                        _ => failed += 1,
                    }
                    latencies.push(t.elapsed());
                }
                (allowed, failed, latencies)
            })
        })
        .collect();
    let (mut allowed, mut failed, mut latencies) = (0, 0, Vec::new());
    for worker in workers {
        let (a, f, l) = worker.await.unwrap();
        allowed += a;
        failed += f;
        latencies.extend(l);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let p99 = latencies
        .get(latencies.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default();
    Outcome {
        decisions: allowed + failed,
        allowed,
        failed,
        service_hits: hits.load(Ordering::Relaxed) - before,
        elapsed,
        p99_ms: p99.as_secs_f64() * 1000.0,
    }
}

fn settings(url: &str, cache_ttl_ms: u64, pool_size: usize) -> SecuritySettings {
    SecuritySettings {
        authentication: Authentication {
            allow_anonymous: false,
            chain: vec![Source::Http(HttpSource {
                url: url.to_owned(),
                method: HttpMethod::Post,
                body: BTreeMap::from([
                    ("username".into(), "%u".into()),
                    ("clientid".into(), "%c".into()),
                    ("password".into(), "%P".into()),
                ]),
                headers: BTreeMap::new(),
                timeout_ms: 5_000,
                cache_ttl_ms,
                pool_size,
            })],
        },
        ..SecuritySettings::default()
    }
}

#[tokio::main]
async fn main() {
    let options = options();
    let hits = Arc::new(AtomicU64::new(0));
    let url = start_service(hits.clone()).await;
    let dir = std::env::temp_dir().join(format!("skyport-auth-bench-{}", std::process::id()));
    let security = Security::open(&dir).expect("open the security store");

    let mut rows = Vec::new();
    for (name, cached) in [("cache on (TTL 60 s)", true), ("cache off", false)] {
        let ttl = if cached { 60_000 } else { 0 };
        security.set_settings(settings(&url, ttl, options.concurrency));
        let outcome = run(&security, &options, cached, &hits).await;
        eprintln!(
            "{name}: {:.0} decisions/s, {} failed",
            outcome.decisions as f64 / outcome.elapsed.as_secs_f64(),
            outcome.failed
        );
        rows.push((name, outcome));
    }
    let _ = std::fs::remove_dir_all(&dir);

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("# External HTTP authentication\n");
    println!(
        "`bash bench/auth.sh` — `Security::authenticate` with one external HTTP source (POST, \
         form body with `%u`, `%c`, `%P`; timeout 5 s) against a local axum service that allows \
         everyone; {} concurrent callers for {} s per scenario; {} distinct credentials when \
         the cache is on, a new one for every CONNECT when it is off. Goal: at least 10,000 \
         decisions/s with the cache on, and no timeouts.\n",
        options.concurrency, options.seconds, options.users
    );
    println!("| scenario | decisions | decisions/s | allowed | timeouts/errors | requests to the service | p99 ms |");
    println!("|---|---|---|---|---|---|---|");
    for (name, o) in &rows {
        println!(
            "| {name} | {} | {:.0} | {} | {} | {} | {:.2} |",
            o.decisions,
            o.decisions as f64 / o.elapsed.as_secs_f64(),
            o.allowed,
            o.failed,
            o.service_hits,
            o.p99_ms
        );
    }
    println!(
        "\n{cores} cores, release build; the service and the callers share the process and \
         the cores."
    );
}

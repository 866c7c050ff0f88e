//! Fan-in, fan-out and idle connections: skyport-broker against its peers, in one run.
//!
//! Targets: a private Mosquitto (or an already running one, `--mosquitto-addr`), bare
//! rumqttd (this program re-executed with `--serve-rumqttd PORT`) and skyport-broker
//! (its own connections and sessions around rumqttd's router), all with the same limits.
//!
//! * Traffic: fan-in (16 publishers -> 1 subscriber on a wildcard) and fan-out
//!   (1 publisher -> 16 subscribers), QoS 0 and QoS 1. Each payload carries its send time,
//!   so every delivery gives an end-to-end latency sample. Each scenario runs twice per
//!   round: *saturated* (closed loop: each publisher keeps at most `--window` messages
//!   not yet delivered to every subscriber; gives msgs/s and latency under load) and
//!   *paced* (open loop at a fixed `--paced-rate` deliveries/s, the same for every target;
//!   gives latency below saturation).
//! * Idle connections: a fresh instance of each target gets `--idle-connections` raw
//!   MQTT connections (CONNECT, keep-alive 600 s, CONNACK, then silence); the server's
//!   RSS growth gives connections per GiB.
//!
//! Clients are a minimal raw MQTT client (`common/mqtt.rs`) with `TCP_NODELAY`, all in
//! this process: rumqttc 0.24 cannot disable Nagle's algorithm, which put up to 40 ms of
//! client-side delay into the QoS 0 latencies.
//!
//! Run it with `bench/fanout.sh`; results go to `bench/results/fanout.{json,md}`.

mod common;

/// The allocator skyport-broker uses, so bare rumqttd (this program re-executed with
/// `--serve-rumqttd`) is measured with it too.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use common::{command_line, mqtt, serve_rumqttd, ChildGuard};
use futures::StreamExt;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};

/// Fan-in/fan-out throughput and latency, and idle-connection memory:
/// Mosquitto vs bare rumqttd vs skyport-broker.
#[derive(Debug, Parser)]
struct Args {
    /// The skyport-broker binary to measure (build it with --release).
    #[arg(long, default_value = "target/release/skyport-broker")]
    broker_bin: PathBuf,
    /// The Mosquitto binary; the benchmark runs a private instance with the same limits
    /// as the other targets.
    #[arg(long, default_value = "mosquitto")]
    mosquitto_bin: PathBuf,
    /// Measure an already running Mosquitto instead of a private one (its own limits).
    #[arg(long)]
    mosquitto_addr: Option<SocketAddr>,
    /// With --mosquitto-addr: its process id, for RSS (default: `pgrep -x mosquitto` if
    /// that finds exactly one).
    #[arg(long)]
    mosquitto_pid: Option<u32>,
    /// Publishers in fan-in, subscribers in fan-out.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Deliveries per saturated QoS 0 scenario (split evenly over the publishers).
    #[arg(long, default_value_t = 320_000)]
    qos0_deliveries: u64,
    /// Deliveries per saturated QoS 1 scenario.
    #[arg(long, default_value_t = 240_000)]
    qos1_deliveries: u64,
    /// Saturated runs: messages each publisher may have on their way (published, not yet
    /// delivered to every subscriber).
    #[arg(long, default_value_t = 100)]
    window: u32,
    /// Paced runs: deliveries per second, summed over the subscribers.
    #[arg(long, default_value_t = 16_000)]
    paced_rate: u64,
    /// Paced runs: how long the publishers publish.
    #[arg(long, default_value_t = 2.0)]
    paced_seconds: f64,
    /// Payload size in bytes (at least 10: send time and publisher index).
    #[arg(long, default_value_t = 64)]
    payload_bytes: usize,
    /// Rounds per scenario and target; each figure is the median over rounds.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Idle connections per target (0 skips the idle measurement).
    #[arg(long, default_value_t = 5_000)]
    idle_connections: usize,
    /// Where fanout.json and fanout.md are written.
    #[arg(long, default_value = "bench/results")]
    out_dir: PathBuf,
    /// Internal: serve a bare rumqttd on 127.0.0.1:PORT until stdin closes.
    #[arg(long, hide = true)]
    serve_rumqttd: Option<u16>,
}

/// The private Mosquitto's limits, matching rumqttd's as skyport-broker's engine runs it:
/// 100 QoS 1 messages in flight per client, no cap on a client's queue (rumqttd serves
/// subscribers from its commit log, which holds up to 1 GiB), 1 MiB packets.
const MOSQUITTO_LIMITS: &str = "max_inflight_messages 100\n\
                                max_queued_messages 0\n\
                                max_packet_size 1048576\n";

/// Upper bound on one measurement; messages not delivered by then count as lost.
const ROUND_CAP: Duration = Duration::from_secs(60);
/// A round also ends when nothing arrives for this long.
const IDLE_END: Duration = Duration::from_secs(5);
/// Idle connections opened at the same time.
const CONNECT_CONCURRENCY: usize = 32;
/// File descriptors a skyport-broker connection takes in the broker process: the
/// client's socket and both ends of the loopback connection to its engine.
const SKYPORT_FDS_PER_CONNECTION: usize = 1;

const TARGETS: [&str; 3] = ["mosquitto", "rumqttd", "skyport-broker"];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(port) = args.serve_rumqttd {
        serve_rumqttd(port);
    }
    anyhow::ensure!(args.payload_bytes >= 10, "--payload-bytes must be >= 10");
    anyhow::ensure!(
        args.clients >= 1 && args.clients <= usize::from(u16::MAX),
        "bad --clients"
    );
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        tokio::select! {
            result = bench(&args) => result,
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
        }
    })
    // Child processes are killed by their guards' Drop on every path.
}

/// A broker under test; the process (if the benchmark started it) dies with this.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    pid: Option<u32>,
    _guard: Option<ChildGuard>,
}

async fn start(args: &Args, name: &'static str) -> anyhow::Result<Target> {
    let guard = match name {
        "mosquitto" => {
            if let Some(addr) = args.mosquitto_addr {
                let pid = args
                    .mosquitto_pid
                    .or_else(|| match &pgrep("mosquitto")[..] {
                        [pid] => Some(*pid),
                        _ => None,
                    });
                return Ok(Target {
                    name,
                    addr,
                    pid,
                    _guard: None,
                });
            }
            ChildGuard::mosquitto(&args.mosquitto_bin, MOSQUITTO_LIMITS)?
        }
        "rumqttd" => ChildGuard::rumqttd()?,
        _ => ChildGuard::skyport(&args.broker_bin, true).await?,
    };
    Ok(Target {
        name,
        addr: guard.addr,
        pid: Some(guard.pid()),
        _guard: Some(guard),
    })
}

/// Process ids of processes named exactly `name`.
fn pgrep(name: &str) -> Vec<u32> {
    std::process::Command::new("pgrep")
        .args(["-x", name])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

async fn bench(args: &Args) -> anyhow::Result<()> {
    let before = Environment::now();
    eprintln!("load before: {}", before.loadavg);
    let started = Instant::now();

    let mut idle = Vec::new();
    let idle_n = idle_connection_count(args.idle_connections);
    if idle_n > 0 {
        for name in TARGETS {
            let target = start(args, name).await?;
            let result = idle_capacity(&target, idle_n).await?;
            eprintln!(
                "idle {:<15} {}/{} alive, RSS {} -> {} KiB, {} connections/GiB",
                name,
                result.alive,
                result.requested,
                fmt_opt(result.rss_before_kib),
                fmt_opt(result.rss_after_kib),
                result
                    .connections_per_gib
                    .map_or("n/a".into(), |c| format!("{c:.0}"))
            );
            idle.push(result);
        }
    }

    let mut targets = Vec::new();
    for name in TARGETS {
        targets.push(start(args, name).await?);
    }
    let scenarios = scenarios(args);
    let loads = [
        Load::Saturated {
            window: args.window,
        },
        Load::Paced {
            deliveries_per_s: args.paced_rate,
            seconds: args.paced_seconds,
        },
    ];

    // Warm every target up (connections, allocations) before measuring.
    let warm_up = Scenario {
        shape: Shape::FanIn,
        qos: 1,
        publishers: args.clients,
        subscribers: 1,
        per_publisher: 200,
    };
    for target in &targets {
        measure(target.addr, warm_up, loads[0], args.payload_bytes, "warmup").await?;
    }

    // rounds[scenario][load][target]
    let mut rounds: Vec<[BTreeMap<&str, Vec<Measurement>>; 2]> =
        vec![Default::default(); scenarios.len()];
    for round in 0..args.rounds {
        // Interleave targets so machine noise spreads over all of them.
        for (i, scenario) in scenarios.iter().enumerate() {
            for target in &targets {
                for (l, load) in loads.iter().enumerate() {
                    let tag = format!("r{round}s{i}l{l}");
                    let m =
                        measure(target.addr, *scenario, *load, args.payload_bytes, &tag).await?;
                    eprintln!(
                        "round {round} {:<16} {:<9} {:<15} {:>9.0} msgs/s ({}/{} in {:.2}s) p50 {:>8.0} us p99 {:>8.0} us",
                        scenario.name(),
                        load.name(),
                        target.name,
                        m.msgs_per_s,
                        m.delivered,
                        m.expected,
                        m.seconds,
                        m.p50_us,
                        m.p99_us
                    );
                    rounds[i][l].entry(target.name).or_default().push(m);
                }
            }
        }
    }
    drop(targets);

    let traffic: Vec<ScenarioResult> = scenarios
        .iter()
        .zip(rounds)
        .map(|(scenario, [saturated, paced])| ScenarioResult {
            scenario: scenario.name(),
            params: *scenario,
            saturated: summarise(loads[0], saturated),
            paced: summarise(loads[1], paced),
        })
        .collect();
    let after = Environment::now();
    eprintln!("load after: {}", after.loadavg);
    let report = Report {
        traffic,
        idle,
        before,
        after,
        minutes: started.elapsed().as_secs_f64() / 60.0,
    };
    let md = markdown(args, &report);
    println!("\n{md}");
    write_results(args, &report, &md)
}

fn scenarios(args: &Args) -> Vec<Scenario> {
    let n = args.clients;
    let mut out = Vec::new();
    for (qos, deliveries) in [(0, args.qos0_deliveries), (1, args.qos1_deliveries)] {
        for shape in [Shape::FanIn, Shape::FanOut] {
            let (publishers, subscribers) = match shape {
                Shape::FanIn => (n, 1),
                Shape::FanOut => (1, n),
            };
            out.push(Scenario {
                shape,
                qos,
                publishers,
                subscribers,
                per_publisher: (deliveries / (publishers * subscribers) as u64).max(1),
            });
        }
    }
    out
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Shape {
    FanIn,
    FanOut,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Scenario {
    shape: Shape,
    qos: u8,
    publishers: usize,
    subscribers: usize,
    /// Messages each publisher sends in a saturated run.
    per_publisher: u64,
}

impl Scenario {
    fn name(&self) -> String {
        let shape = match self.shape {
            Shape::FanIn => "fan-in",
            Shape::FanOut => "fan-out",
        };
        format!(
            "QoS {} {shape} {}->{}",
            self.qos, self.publishers, self.subscribers
        )
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case", tag = "load")]
enum Load {
    /// Closed loop: each publisher waits while `window` of its messages are on their way.
    Saturated { window: u32 },
    /// Open loop at a fixed total delivery rate.
    Paced { deliveries_per_s: u64, seconds: f64 },
}

impl Load {
    fn name(&self) -> &'static str {
        match self {
            Load::Saturated { .. } => "saturated",
            Load::Paced { .. } => "paced",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Measurement {
    /// Deliveries to subscribers per second (fan-out counts each copy).
    msgs_per_s: f64,
    delivered: u64,
    expected: u64,
    seconds: f64,
    /// End-to-end latency (publish call to delivery event), exact percentiles.
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
}

/// Medians over rounds, each figure on its own.
#[derive(Debug, Clone, Serialize)]
struct Summary {
    msgs_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    /// Summed over rounds, so that loss is visible.
    delivered: u64,
    expected: u64,
}

#[derive(Debug, Serialize)]
struct LoadResult {
    load: Load,
    /// Median figures per target.
    targets: BTreeMap<String, Summary>,
    /// All rounds per target.
    rounds: BTreeMap<String, Vec<Measurement>>,
    skyport_vs_mosquitto: Ratios,
    skyport_vs_rumqttd: Ratios,
}

/// skyport-broker's figure divided by a peer's (throughput: higher is better; latency:
/// lower is better).
#[derive(Debug, Default, Serialize)]
struct Ratios {
    msgs_per_s: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
}

#[derive(Debug, Serialize)]
struct ScenarioResult {
    scenario: String,
    #[serde(flatten)]
    params: Scenario,
    saturated: LoadResult,
    paced: LoadResult,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn summarise(load: Load, rounds: BTreeMap<&str, Vec<Measurement>>) -> LoadResult {
    let targets: BTreeMap<String, Summary> = rounds
        .iter()
        .map(|(name, ms)| {
            let pick = |f: fn(&Measurement) -> f64| median(ms.iter().map(f).collect());
            let summary = Summary {
                msgs_per_s: pick(|m| m.msgs_per_s),
                p50_us: pick(|m| m.p50_us),
                p99_us: pick(|m| m.p99_us),
                delivered: ms.iter().map(|m| m.delivered).sum(),
                expected: ms.iter().map(|m| m.expected).sum(),
            };
            (name.to_string(), summary)
        })
        .collect();
    let ratios = |peer: &str| {
        let (Some(s), Some(p)) = (targets.get("skyport-broker"), targets.get(peer)) else {
            return Ratios::default();
        };
        Ratios {
            msgs_per_s: Some(s.msgs_per_s / p.msgs_per_s),
            p50: Some(s.p50_us / p.p50_us),
            p99: Some(s.p99_us / p.p99_us),
        }
    };
    LoadResult {
        load,
        skyport_vs_mosquitto: ratios("mosquitto"),
        skyport_vs_rumqttd: ratios("rumqttd"),
        targets,
        rounds: rounds
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

/// Send time (ns after the run's origin) and publisher index, from a payload's head.
fn stamp(payload: &[u8]) -> Option<(u64, usize)> {
    let sent = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    let publisher = u16::from_le_bytes(payload.get(8..10)?.try_into().ok()?);
    Some((sent, usize::from(publisher)))
}

/// Keep-alive of every benchmark connection: long enough that no PINGREQ is due.
const KEEP_ALIVE_S: u16 = 600;
/// QoS 1 messages a publisher may have unacknowledged (as rumqttc's `set_inflight(100)`).
const CLIENT_INFLIGHT: usize = 100;
/// Largest batch of PUBLISHes a saturated publisher writes at once.
const WRITE_BATCH: usize = 16 * 1024;

/// One round of one scenario under one load: subscribers subscribe, publishers connect,
/// then all publishers start together; the clock runs from the start to the last delivery.
async fn measure(
    addr: SocketAddr,
    scenario: Scenario,
    load: Load,
    payload_bytes: usize,
    tag: &str,
) -> anyhow::Result<Measurement> {
    let qos = scenario.qos;
    let (publishers, subscribers) = (scenario.publishers, scenario.subscribers);
    let fanned = (publishers * subscribers) as u64;
    let (per_publisher, period) = match load {
        Load::Saturated { .. } => (scenario.per_publisher, None),
        Load::Paced {
            deliveries_per_s,
            seconds,
        } => {
            let per_publisher_rate = (deliveries_per_s as f64 / fanned as f64).max(1.0);
            (
                ((per_publisher_rate * seconds) as u64).max(1),
                Some(Duration::from_secs_f64(1.0 / per_publisher_rate)),
            )
        }
    };
    let expected = per_publisher * fanned;
    let run = format!("{}-{tag}", std::process::id());
    let base = format!("skyport-bench/{run}");
    let filter = match scenario.shape {
        Shape::FanIn => format!("{base}/+"),
        Shape::FanOut => format!("{base}/0"),
    };
    let origin = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    // Nanoseconds after `origin` of the latest delivery.
    let last_delivery = Arc::new(AtomicU64::new(0));
    // Saturated runs, per publisher: how many more copies it may have on their way.
    let windows: Arc<Vec<Semaphore>> = Arc::new(match load {
        Load::Saturated { window } => (0..publishers)
            .map(|_| Semaphore::new(window as usize * subscribers))
            .collect(),
        Load::Paced { .. } => Vec::new(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (go_tx, go_rx) = watch::channel(false);

    let mut sampling = Vec::new();
    for i in 0..subscribers {
        let stream = mqtt::connect(addr, &format!("sub-{run}-{i}"), KEEP_ALIVE_S).await?;
        let (rx, mut tx) = stream.into_split();
        let mut rx = mqtt::Packets::new(rx);
        tx.write_all(&mqtt::subscribe_packet(1, &filter, qos))
            .await?;
        tokio::time::timeout(Duration::from_secs(10), rx.expect(mqtt::SUBACK))
            .await
            .map_err(|_| anyhow::anyhow!("no SUBACK from {addr}"))??;
        let (received, last_delivery, windows) =
            (received.clone(), last_delivery.clone(), windows.clone());
        let mut stop = stop_rx.clone();
        let capacity = (per_publisher * publishers as u64) as usize;
        sampling.push(tokio::spawn(async move {
            let mut samples: Vec<u64> = Vec::with_capacity(capacity);
            let mut acks = Vec::new();
            loop {
                let batch = rx.next_batch(|first, body| {
                    if first & 0xf0 != mqtt::PUBLISH {
                        return;
                    }
                    let now = origin.elapsed().as_nanos() as u64;
                    let Some((qos, packet_id, payload)) = mqtt::parse_publish(first, body) else {
                        return;
                    };
                    if qos > 0 {
                        mqtt::push_puback(&mut acks, packet_id);
                    }
                    if let Some((sent, publisher)) = stamp(payload) {
                        samples.push(now.saturating_sub(sent));
                        if let Some(window) = windows.get(publisher) {
                            window.add_permits(1);
                        }
                    }
                    received.fetch_add(1, Ordering::Relaxed);
                    last_delivery.store(now, Ordering::Relaxed);
                });
                let more = tokio::select! {
                    more = batch => more,
                    _ = stop.wait_for(|stop| *stop) => break,
                };
                if !matches!(more, Ok(true)) {
                    break;
                }
                if !acks.is_empty() {
                    if tx.write_all(&acks).await.is_err() {
                        break;
                    }
                    acks.clear();
                }
            }
            let _ = tx.write_all(&mqtt::DISCONNECT).await;
            samples
        }));
    }

    let mut publishing = tokio::task::JoinSet::new();
    for p in 0..publishers {
        let stream = mqtt::connect(addr, &format!("pub-{run}-{p}"), KEEP_ALIVE_S).await?;
        let (rx, mut tx) = stream.into_split();
        // QoS 1: PUBACKs reopen the in-flight window.
        let inflight = Arc::new(Semaphore::new(CLIENT_INFLIGHT));
        let mut stop = stop_rx.clone();
        {
            let inflight = inflight.clone();
            let mut rx = mqtt::Packets::new(rx);
            publishing.spawn(async move {
                loop {
                    let acked = rx.next_batch(|first, _| {
                        if first == mqtt::PUBACK {
                            inflight.add_permits(1);
                        }
                    });
                    tokio::select! {
                        more = acked => if !matches!(more, Ok(true)) { break },
                        _ = stop.wait_for(|stop| *stop) => break,
                    }
                }
            });
        }
        let topic = format!("{base}/{p}");
        let (windows, mut go, mut stop) = (windows.clone(), go_rx.clone(), stop_rx.clone());
        let copies = subscribers as u32;
        publishing.spawn(async move {
            let _ = go.wait_for(|go| *go).await;
            let mut payload = vec![b'x'; payload_bytes];
            payload[8..10].copy_from_slice(&(p as u16).to_le_bytes());
            let mut ticks = period.map(tokio::time::interval);
            let mut out = Vec::with_capacity(WRITE_BATCH + 1024);
            let (mut sent, mut packet_id) = (0, 0u16);
            let mut push = |out: &mut Vec<u8>| {
                packet_id = packet_id.checked_add(1).unwrap_or(1);
                let now = origin.elapsed().as_nanos() as u64;
                payload[..8].copy_from_slice(&now.to_le_bytes());
                mqtt::push_publish(out, &topic, qos, packet_id, &payload);
            };
            'publish: while sent < per_publisher {
                // Wait for the first message of a batch...
                match &mut ticks {
                    Some(ticks) => {
                        ticks.tick().await;
                    }
                    None => {
                        let permit = windows[p].acquire_many(copies);
                        match tokio::time::timeout(IDLE_END, permit).await {
                            Ok(Ok(permit)) => permit.forget(),
                            // Copies were lost: the window never reopens.
                            _ => break 'publish,
                        }
                    }
                }
                if qos > 0 {
                    match tokio::time::timeout(IDLE_END, inflight.acquire()).await {
                        Ok(Ok(permit)) => permit.forget(),
                        _ => break 'publish,
                    }
                }
                push(&mut out);
                sent += 1;
                // ...then, when saturated, add what the windows allow right away.
                while ticks.is_none() && sent < per_publisher && out.len() < WRITE_BATCH {
                    let Ok(copies) = windows[p].try_acquire_many(copies) else {
                        break;
                    };
                    if qos > 0 {
                        // Dropping `copies` unused gives them back.
                        let Ok(one) = inflight.try_acquire() else {
                            break;
                        };
                        one.forget();
                    }
                    copies.forget();
                    push(&mut out);
                    sent += 1;
                }
                if tx.write_all(&out).await.is_err() {
                    break;
                }
                out.clear();
            }
            let _ = stop.wait_for(|stop| *stop).await;
            let _ = tx.write_all(&mqtt::DISCONNECT).await;
        });
    }

    let started = origin.elapsed();
    go_tx.send(true)?;
    let deadline = Instant::now() + ROUND_CAP;
    let (mut seen, mut seen_at) = (0, Instant::now());
    loop {
        let now_received = received.load(Ordering::Relaxed);
        if now_received >= expected || Instant::now() >= deadline {
            break;
        }
        if now_received != seen {
            (seen, seen_at) = (now_received, Instant::now());
        } else if seen_at.elapsed() >= IDLE_END {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let delivered = received.load(Ordering::Relaxed);
    let end = Duration::from_nanos(last_delivery.load(Ordering::Relaxed));
    let seconds = end.saturating_sub(started).as_secs_f64().max(1e-6);
    // Every task sends DISCONNECT and ends.
    stop_tx.send(true)?;
    let mut samples = Vec::with_capacity(delivered as usize);
    for task in sampling {
        samples.extend(task.await.unwrap_or_default());
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while publishing.join_next().await.is_some() {}
    })
    .await;
    publishing.abort_all();
    samples.sort_unstable();
    let percentile = |q: f64| {
        let i = ((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1));
        samples.get(i).map_or(f64::NAN, |&ns| ns as f64 / 1_000.0)
    };
    Ok(Measurement {
        msgs_per_s: delivered as f64 / seconds,
        delivered,
        expected,
        seconds,
        p50_us: percentile(0.50),
        p99_us: percentile(0.99),
        max_us: samples.last().map_or(f64::NAN, |&ns| ns as f64 / 1_000.0),
    })
}

#[derive(Debug, Serialize)]
struct IdleResult {
    target: String,
    requested: usize,
    /// Connections that got a CONNACK.
    connected: usize,
    /// Connections still open when RSS was read after.
    alive: usize,
    /// First refusal or error, if any connection failed.
    error: Option<String>,
    connect_seconds: f64,
    rss_before_kib: Option<u64>,
    rss_after_kib: Option<u64>,
    kib_per_connection: Option<f64>,
    connections_per_gib: Option<f64>,
}

/// How many idle connections fit the file descriptor limit (one per connection in
/// skyport-broker, and one in the benchmark's own process under the same limit).
fn idle_connection_count(wanted: usize) -> usize {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        });
    let Some(limit) = limit else {
        return wanted;
    };
    let fits = limit.saturating_sub(512) / SKYPORT_FDS_PER_CONNECTION;
    if wanted > fits {
        eprintln!(
            "warning: {wanted} idle connections need {} file descriptors in skyport-broker; \
             the limit is {limit}, so measuring {fits}",
            wanted * SKYPORT_FDS_PER_CONNECTION
        );
        return fits;
    }
    wanted
}

/// Resident set size of `pid` in KiB, if `/proc/<pid>/status` is readable.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Waits until `pid`'s RSS stops moving (two reads 500 ms apart within 0.5 %), at most 10 s.
async fn settled_rss(pid: u32) -> Option<u64> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut last = rss_kib(pid)?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = rss_kib(pid)?;
        if now.abs_diff(last) * 200 <= last {
            return Some(now);
        }
        last = now;
    }
    Some(last)
}

async fn open_idle(addr: SocketAddr, client_id: String) -> anyhow::Result<TcpStream> {
    tokio::time::timeout(
        Duration::from_secs(30),
        mqtt::connect(addr, &client_id, KEEP_ALIVE_S),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no CONNACK within 30 s"))?
    .map_err(Into::into)
}

/// Opens `n` idle connections to a fresh `target` and reads its RSS growth.
async fn idle_capacity(target: &Target, n: usize) -> anyhow::Result<IdleResult> {
    let rss_before = match target.pid {
        Some(pid) => settled_rss(pid).await,
        None => None,
    };
    let started = Instant::now();
    let run = std::process::id();
    let name = target.name;
    let opened: Vec<anyhow::Result<TcpStream>> = futures::stream::iter(0..n)
        .map(|i| open_idle(target.addr, format!("idle-{run}-{name}-{i}")))
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let connect_seconds = started.elapsed().as_secs_f64();
    let mut error = None;
    let mut streams = Vec::with_capacity(n);
    for result in opened {
        match result {
            Ok(stream) => streams.push(stream),
            Err(e) => {
                error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    let connected = streams.len();
    let rss_after = match target.pid {
        Some(pid) => settled_rss(pid).await,
        None => None,
    };
    // An open, silent connection has nothing to read.
    let alive = streams
        .iter()
        .filter(|s| {
            let mut buf = [0u8; 16];
            matches!(s.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count();
    drop(streams);
    let delta = match (rss_before, rss_after) {
        (Some(b), Some(a)) if a > b && alive > 0 => Some(a - b),
        _ => None,
    };
    Ok(IdleResult {
        target: name.to_owned(),
        requested: n,
        connected,
        alive,
        error,
        connect_seconds,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        kib_per_connection: delta.map(|d| d as f64 / alive as f64),
        connections_per_gib: delta.map(|d| alive as f64 / (d as f64 / (1024.0 * 1024.0))),
    })
}

/// What else the machine was doing.
#[derive(Debug, Serialize)]
struct Environment {
    at: String,
    loadavg: String,
    /// Compiler and cargo processes (not the benchmark's: it is built before it runs).
    rustc_processes: usize,
    cargo_processes: usize,
}

impl Environment {
    fn now() -> Self {
        Self {
            at: command_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_default(),
            loadavg: std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|_| "unknown".into()),
            rustc_processes: pgrep("rustc").len(),
            cargo_processes: pgrep("cargo").len(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    traffic: Vec<ScenarioResult>,
    idle: Vec<IdleResult>,
    before: Environment,
    after: Environment,
    minutes: f64,
}

fn fmt_opt(x: Option<u64>) -> String {
    x.map_or("n/a".into(), |x| x.to_string())
}

fn ratio(x: Option<f64>) -> String {
    x.filter(|x| x.is_finite())
        .map_or("n/a".into(), |x| format!("{x:.2}x"))
}

fn versions() -> BTreeMap<&'static str, String> {
    let git = command_line("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let dirty = command_line("git", &["status", "--porcelain", "--", "broker-node/src"])
        .is_some_and(|l| !l.is_empty());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("model name"))?;
            Some(line.split_once(':')?.1.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    BTreeMap::from([
        (
            "cpus",
            std::thread::available_parallelism()
                .map_or(0, |n| n.get())
                .to_string(),
        ),
        ("cpu", cpu),
        (
            "kernel",
            command_line("uname", &["-sr"]).unwrap_or_else(|| "unknown".into()),
        ),
        (
            "mosquitto",
            command_line("mosquitto", &["-h"]).unwrap_or_else(|| "unknown".into()),
        ),
        ("rumqttd", common::RUMQTTD_VERSION.to_owned()),
        (
            "clients",
            "the benchmark's own minimal MQTT 3.1.1 client (examples/common/mqtt.rs), TCP_NODELAY"
                .to_owned(),
        ),
        (
            "skyport-broker",
            format!(
                "{} at {git}{}",
                env!("CARGO_PKG_VERSION"),
                if dirty {
                    " with uncommitted changes in broker-node/src"
                } else {
                    ""
                }
            ),
        ),
    ])
}

fn markdown(args: &Args, report: &Report) -> String {
    let v = versions();
    let (before, after) = (&report.before, &report.after);
    let mosquitto_setup = match args.mosquitto_addr {
        Some(addr) => {
            format!("the Mosquitto already running on {addr}, with its own configuration")
        }
        None => "a private Mosquitto started by the benchmark with `max_inflight_messages 100`, \
                 `max_queued_messages 0` (no cap: rumqttd serves subscribers from its commit log), \
                 `max_packet_size 1048576`"
            .to_owned(),
    };
    let mut out = format!(
        "# Fan-in, fan-out and idle connections: skyport-broker vs bare rumqttd vs Mosquitto\n\n\
         Generated {} by `bench/fanout.sh` in {:.1} minutes on {} CPUs ({}), {}.\n\
         Versions: {}; rumqttd {}; skyport-broker {}; clients: {}.\n\n\
         **The machine is shared.** Load average (1, 5, 15 min) before the release build: {}; \
         before the measurements: {} ({} rustc, {} cargo processes running); after: {} ({} rustc, \
         {} cargo). {} All targets are interleaved within each round, so noise from other \
         work spreads over all of them.\n\n\
         Same limits for all three: 100 QoS 1 messages in flight per client, 1 MiB packets, \
         no publish-rate or session limits (skyport-broker without `limits`: no `max_tps`, no \
         `max_sessions`; its metering counters on, as deployed), anonymous clients allowed. \
         Mosquitto is {mosquitto_setup}; bare rumqttd has skyport-broker's engine settings. \
         TCP_NODELAY: the benchmark's clients and skyport-broker (client sockets) set it; \
         Mosquitto (default `set_tcp_nodelay false`) and rumqttd (no such setting) do not. At \
         QoS 0 a receiver sends nothing back, so Nagle's algorithm with delayed ACKs can hold a \
         broker's small writes for up to 40 ms; that shows in some latencies.\n\n",
        before.at,
        report.minutes,
        v["cpus"],
        v["cpu"],
        v["kernel"],
        v["mosquitto"],
        v["rumqttd"],
        v["skyport-broker"],
        v["clients"],
        std::env::var("SKYPORT_BENCH_LOAD_BEFORE_BUILD").unwrap_or_else(|_| "not recorded".into()),
        before.loadavg,
        before.rustc_processes,
        before.cargo_processes,
        after.loadavg,
        after.rustc_processes,
        after.cargo_processes,
        if before.rustc_processes
            + after.rustc_processes
            + before.cargo_processes
            + after.cargo_processes
            > 0
        {
            "Other builds or a CI run were running, so absolute figures are lower than on an \
             idle machine."
        } else {
            "No rustc or cargo process was running at either point; the load averages include \
             the benchmark itself and anything else on the machine."
        },
    );
    out += &format!(
        "Method: {n} clients in fan-in ({n} publishers, one subscriber on `prefix/+`) and \
         fan-out (one publisher, {n} subscribers), {} byte payloads whose first bytes hold the \
         send time, so every delivery is a latency sample (from the publish call to the \
         subscriber's delivery event, both clients in the benchmark's process; exact \
         percentiles over all samples of a round). Each figure is the median of {} rounds. \
         *Saturated*: closed loop, each publisher keeps at most {} messages on their way (not \
         yet delivered to every subscriber), so queues stay bounded and latency is the \
         brokers' under full load, not an unbounded client queue; QoS 0 is paced by this \
         window too; at QoS 1 each publisher also keeps at most 100 PUBLISHes unacknowledged. \
         {} deliveries per QoS 0 scenario, {} per QoS 1. *Paced*: open loop at \
         {} deliveries/s (the same for every target, below every target's saturation) for \
         {} s: latency without queueing. msgs/s counts deliveries (fan-out counts each copy); \
         delivered/expected is summed over rounds.\n\n",
        args.payload_bytes,
        args.rounds,
        args.window,
        args.qos0_deliveries,
        args.qos1_deliveries,
        args.paced_rate,
        args.paced_seconds,
        n = args.clients,
    );
    out += &goals(report);
    out += &format!(
        "\n## Throughput, saturated (window {})\n\n\
         | scenario | Mosquitto msgs/s (delivered/expected) | bare rumqttd msgs/s | skyport-broker msgs/s | skyport / Mosquitto | skyport / rumqttd |\n\
         |---|---|---|---|---|---|\n",
        args.window
    );
    for r in &report.traffic {
        let cell = |t: &str| {
            r.saturated.targets.get(t).map_or("n/a".into(), |s| {
                format!("{:.0} ({}/{})", s.msgs_per_s, s.delivered, s.expected)
            })
        };
        out += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.scenario,
            cell("mosquitto"),
            cell("rumqttd"),
            cell("skyport-broker"),
            ratio(r.saturated.skyport_vs_mosquitto.msgs_per_s),
            ratio(r.saturated.skyport_vs_rumqttd.msgs_per_s),
        );
    }
    for (title, pick) in [
        (
            format!(
                "Latency under load (the saturated runs, window {})",
                args.window
            ),
            (|r: &ScenarioResult| &r.saturated) as fn(&ScenarioResult) -> &LoadResult,
        ),
        (
            format!("Latency paced at {} deliveries/s", args.paced_rate),
            |r: &ScenarioResult| &r.paced,
        ),
    ] {
        out += &format!(
            "\n## {title}\n\n\
             p50 / p99 in microseconds; ratios below 1 mean skyport-broker is faster.\n\n\
             | scenario | Mosquitto | bare rumqttd | skyport-broker | skyport / Mosquitto p50, p99 | skyport / rumqttd p50, p99 |\n\
             |---|---|---|---|---|---|\n"
        );
        for r in &report.traffic {
            let load = pick(r);
            let cell = |t: &str| {
                load.targets.get(t).map_or("n/a".into(), |s| {
                    let loss = if s.delivered < s.expected {
                        format!(" ({}/{})", s.delivered, s.expected)
                    } else {
                        String::new()
                    };
                    format!("{:.0} / {:.0}{loss}", s.p50_us, s.p99_us)
                })
            };
            out += &format!(
                "| {} | {} | {} | {} | {}, {} | {}, {} |\n",
                r.scenario,
                cell("mosquitto"),
                cell("rumqttd"),
                cell("skyport-broker"),
                ratio(load.skyport_vs_mosquitto.p50),
                ratio(load.skyport_vs_mosquitto.p99),
                ratio(load.skyport_vs_rumqttd.p50),
                ratio(load.skyport_vs_rumqttd.p99),
            );
        }
    }
    if !report.idle.is_empty() {
        out += "\n## Idle connections\n\n\
                A fresh instance of each target; raw MQTT 3.1.1 connections (CONNECT with \
                keep-alive 600 s, CONNACK, then silence), 32 opened at a time. RSS is \
                `VmRSS` of the server process once it has settled, before and after; \
                connections per GiB = connections / RSS growth. skyport-broker's figure \
                covers its whole process (connections, sessions and the routing engine).\n\n\
                | target | connections alive/requested | RSS before MiB | RSS after MiB | KiB per connection | connections per GiB |\n\
                |---|---|---|---|---|---|\n";
        for r in &report.idle {
            let mib = |k: Option<u64>| {
                k.map_or("unavailable".into(), |k| {
                    format!("{:.1}", k as f64 / 1024.0)
                })
            };
            out += &format!(
                "| {} | {}/{}{} | {} | {} | {} | {} |\n",
                r.target,
                r.alive,
                r.requested,
                r.error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" (first error: {e})")),
                mib(r.rss_before_kib),
                mib(r.rss_after_kib),
                r.kib_per_connection
                    .map_or("n/a".into(), |k| format!("{k:.1}")),
                r.connections_per_gib
                    .map_or("n/a".into(), |c| format!("{c:.0}")),
            );
        }
        let per_gib = |t: &str| {
            report
                .idle
                .iter()
                .find(|r| r.target == t)
                .and_then(|r| r.connections_per_gib)
        };
        let sky = per_gib("skyport-broker");
        out += &format!(
            "\nskyport-broker / Mosquitto connections per GiB: {}; skyport-broker / bare rumqttd: {}.\n",
            ratio(sky.zip(per_gib("mosquitto")).map(|(s, m)| s / m)),
            ratio(sky.zip(per_gib("rumqttd")).map(|(s, r)| s / r)),
        );
    }
    out
}

/// The acceptance goals against the worst scenario.
fn goals(report: &Report) -> String {
    let worst = |f: fn(&LoadResult) -> Option<f64>| {
        report
            .traffic
            .iter()
            .filter_map(|r| Some((f(&r.saturated)?, r.scenario.clone())))
            .min_by(|a, b| a.0.total_cmp(&b.0))
    };
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "n/a",
    };
    let vs_mosquitto = worst(|l| l.skyport_vs_mosquitto.msgs_per_s);
    let vs_rumqttd = worst(|l| l.skyport_vs_rumqttd.msgs_per_s);
    let idle = report
        .idle
        .iter()
        .find(|r| r.target == "skyport-broker")
        .and_then(|r| r.connections_per_gib);
    let show = |w: &Option<(f64, String)>| {
        w.as_ref()
            .map_or("n/a".into(), |(x, s)| format!("{x:.2}x (worst: {s})"))
    };
    format!(
        "## Goals\n\n\
         | goal | skyport-broker | |\n|---|---|---|\n\
         | throughput >= 1.5x Mosquitto in every scenario | {} | {} |\n\
         | throughput at most 10 % below bare rumqttd (>= 0.90x) in every scenario | {} | {} |\n\
         | >= 25 000 idle connections per GiB of RSS | {} | {} |\n",
        show(&vs_mosquitto),
        verdict(vs_mosquitto.as_ref().map(|w| w.0 >= 1.5)),
        show(&vs_rumqttd),
        verdict(vs_rumqttd.as_ref().map(|w| w.0 >= 0.9)),
        idle.map_or("n/a".into(), |c| format!("{c:.0}")),
        verdict(idle.map(|c| c >= 25_000.0)),
    )
}

fn write_results(args: &Args, report: &Report, md: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out_dir)?;
    let json = serde_json::json!({
        "versions": versions(),
        "payload_bytes": args.payload_bytes,
        "rounds": args.rounds,
        "clients": args.clients,
        "window": args.window,
        "paced_rate": args.paced_rate,
        "paced_seconds": args.paced_seconds,
        "mosquitto": args.mosquitto_addr.map_or_else(
            || format!("private instance with: {}", MOSQUITTO_LIMITS.replace('\n', "; ")),
            |a| format!("running instance on {a}"),
        ),
        "metric": "deliveries to subscribers per second and end-to-end latency (us), \
                   medians of rounds; idle: server RSS growth per connection",
        "report": report,
    });
    std::fs::write(
        args.out_dir.join("fanout.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    std::fs::write(args.out_dir.join("fanout.md"), md)?;
    eprintln!("wrote {}", args.out_dir.join("fanout.{json,md}").display());
    Ok(())
}

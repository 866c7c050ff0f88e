//! Pub/sub throughput of skyport-broker against its peers, measured in one run:
//! Mosquitto (127.0.0.1:1883), bare rumqttd (this program re-executed with
//! `--serve-rumqttd PORT`) and skyport-broker (its own sessions around rumqttd's router).
//!
//! Run it with `bench/run.sh`; results go to `bench/results/throughput.{json,md}`.

mod common;

/// The allocator skyport-broker uses, so bare rumqttd (this program re-executed with
/// `--serve-rumqttd`) is measured with it too.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use common::{command_line, options, serve_rumqttd, ChildGuard};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde::Serialize;

/// Pub/sub throughput: Mosquitto vs bare rumqttd vs skyport-broker.
#[derive(Debug, Parser)]
struct Args {
    /// The skyport-broker binary to measure (build it with --release).
    #[arg(long, default_value = "target/release/skyport-broker")]
    broker_bin: PathBuf,
    /// The Mosquitto peer.
    #[arg(long, default_value = "127.0.0.1:1883")]
    mosquitto: SocketAddr,
    /// Messages published per QoS 0 scenario.
    #[arg(long, default_value_t = 50_000)]
    qos0_messages: u64,
    /// Messages published per QoS 1 scenario.
    #[arg(long, default_value_t = 20_000)]
    qos1_messages: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 64)]
    payload_bytes: usize,
    /// Rounds per scenario and target; the median is reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Where throughput.json and throughput.md are written.
    #[arg(long, default_value = "bench/results")]
    out_dir: PathBuf,
    /// Internal: serve a bare rumqttd on 127.0.0.1:PORT until stdin closes.
    #[arg(long, hide = true)]
    serve_rumqttd: Option<u16>,
}

/// Upper bound on one measurement; messages not delivered by then count as lost.
const ROUND_CAP: Duration = Duration::from_secs(60);
/// A round also ends when nothing arrives for this long after the last publish.
const IDLE_END: Duration = Duration::from_secs(5);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(port) = args.serve_rumqttd {
        serve_rumqttd(port);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        tokio::select! {
            result = bench(&args) => result,
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
        }
    })
    // Child processes are killed by their guards' Drop on every path.
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Scenario {
    qos: u8,
    subscribers: usize,
    messages: u64,
}

impl Scenario {
    fn name(&self) -> String {
        format!("QoS {} 1 -> {}", self.qos, self.subscribers)
    }
}

#[derive(Debug, Clone, Serialize)]
struct Measurement {
    /// Messages delivered to subscribers per second (fan-out counts each copy).
    msgs_per_s: f64,
    delivered: u64,
    expected: u64,
    seconds: f64,
}

#[derive(Debug, Serialize)]
struct ScenarioResult {
    scenario: String,
    #[serde(flatten)]
    params: Scenario,
    /// Median round per target.
    targets: BTreeMap<String, Measurement>,
    /// All rounds per target.
    rounds: BTreeMap<String, Vec<Measurement>>,
    skyport_vs_mosquitto: Option<f64>,
    skyport_vs_rumqttd: Option<f64>,
    rumqttd_vs_mosquitto: Option<f64>,
    /// skyport-broker with metering counters / without (1.0 = counting is free).
    counted_vs_uncounted: Option<f64>,
}

async fn bench(args: &Args) -> anyhow::Result<()> {
    let rumqttd = ChildGuard::rumqttd()?;
    let skyport = ChildGuard::skyport(&args.broker_bin, true).await?;
    let uncounted = ChildGuard::skyport(&args.broker_bin, false).await?;
    let mut targets = vec![
        ("rumqttd", rumqttd.addr),
        ("skyport-broker", skyport.addr),
        ("skyport-uncounted", uncounted.addr),
    ];
    if StdTcpStream::connect_timeout(&args.mosquitto, Duration::from_secs(2)).is_ok() {
        targets.insert(0, ("mosquitto", args.mosquitto));
    } else {
        eprintln!(
            "warning: no Mosquitto on {}; ratios against it are omitted",
            args.mosquitto
        );
    }
    let payload = vec![b'x'; args.payload_bytes];
    let scenarios = [
        Scenario {
            qos: 0,
            subscribers: 1,
            messages: args.qos0_messages,
        },
        Scenario {
            qos: 0,
            subscribers: 4,
            messages: args.qos0_messages,
        },
        Scenario {
            qos: 1,
            subscribers: 1,
            messages: args.qos1_messages,
        },
        Scenario {
            qos: 1,
            subscribers: 4,
            messages: args.qos1_messages,
        },
    ];

    // Warm every target up (connections, allocations) before measuring.
    let warm_up = Scenario {
        qos: 1,
        subscribers: 1,
        messages: 2_000,
    };
    for (_, addr) in &targets {
        measure(*addr, warm_up, &payload, "warmup").await?;
    }

    let mut rounds: Vec<BTreeMap<String, Vec<Measurement>>> =
        vec![BTreeMap::new(); scenarios.len()];
    for round in 0..args.rounds {
        // Interleave targets so machine noise spreads over all of them.
        for (i, scenario) in scenarios.iter().enumerate() {
            for (name, addr) in &targets {
                let m = measure(*addr, *scenario, &payload, &format!("r{round}s{i}")).await?;
                eprintln!(
                    "round {round} {:<12} {:<15} {:>10.0} msgs/s ({}/{} in {:.2}s)",
                    scenario.name(),
                    name,
                    m.msgs_per_s,
                    m.delivered,
                    m.expected,
                    m.seconds
                );
                rounds[i].entry(name.to_string()).or_default().push(m);
            }
        }
    }

    let results: Vec<ScenarioResult> = scenarios
        .iter()
        .zip(rounds)
        .map(|(scenario, rounds)| summarise(*scenario, rounds))
        .collect();
    let table = markdown_table(&results);
    println!("\n{table}");
    write_results(args, &results, &table)?;
    Ok(())
}

fn summarise(scenario: Scenario, rounds: BTreeMap<String, Vec<Measurement>>) -> ScenarioResult {
    let targets: BTreeMap<String, Measurement> = rounds
        .iter()
        .map(|(name, ms)| {
            let mut sorted = ms.clone();
            sorted.sort_by(|a, b| a.msgs_per_s.total_cmp(&b.msgs_per_s));
            (name.clone(), sorted[sorted.len() / 2].clone())
        })
        .collect();
    let rate = |name: &str| targets.get(name).map(|m| m.msgs_per_s);
    let ratio = |a: &str, b: &str| Some(rate(a)? / rate(b)?);
    ScenarioResult {
        scenario: scenario.name(),
        params: scenario,
        skyport_vs_mosquitto: ratio("skyport-broker", "mosquitto"),
        skyport_vs_rumqttd: ratio("skyport-broker", "rumqttd"),
        rumqttd_vs_mosquitto: ratio("rumqttd", "mosquitto"),
        counted_vs_uncounted: ratio("skyport-broker", "skyport-uncounted"),
        targets,
        rounds,
    }
}

/// One round: `subscribers` clients subscribe, one client publishes
/// `messages`; the clock runs from the first publish to the last delivery.
async fn measure(
    addr: SocketAddr,
    scenario: Scenario,
    payload: &[u8],
    tag: &str,
) -> anyhow::Result<Measurement> {
    let qos = if scenario.qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    let run = format!("{}-{tag}", std::process::id());
    let topic = format!("skyport-bench/{run}");
    let received = Arc::new(AtomicU64::new(0));
    let origin = Instant::now();
    // Nanoseconds after `origin` of the latest delivery.
    let last_delivery = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut clients = Vec::new();

    for i in 0..scenario.subscribers {
        let (client, mut eventloop) =
            AsyncClient::new(options(&format!("sub-{run}-{i}"), addr), 1_000);
        client.subscribe(&topic, qos).await?;
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        let (received, last_delivery) = (received.clone(), last_delivery.clone());
        tasks.spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            while let Ok(event) = eventloop.poll().await {
                match event {
                    Event::Incoming(Packet::SubAck(_)) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Event::Incoming(Packet::Publish(_)) => {
                        received.fetch_add(1, Ordering::Relaxed);
                        last_delivery.store(origin.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed_rx)
            .await
            .map_err(|_| anyhow::anyhow!("no SUBACK from {addr}"))??;
        clients.push(client);
    }

    let (publisher, mut eventloop) = AsyncClient::new(options(&format!("pub-{run}"), addr), 1_000);
    tasks.spawn(async move { while eventloop.poll().await.is_ok() {} });
    let started = origin.elapsed();
    let expected = scenario.messages * scenario.subscribers as u64;
    for _ in 0..scenario.messages {
        publisher
            .publish(&topic, qos, false, payload.to_vec())
            .await?;
    }

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
    for client in clients.iter().chain([&publisher]) {
        let _ = client.try_disconnect();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    tasks.abort_all();
    Ok(Measurement {
        msgs_per_s: delivered as f64 / seconds,
        delivered,
        expected,
        seconds,
    })
}

fn markdown_table(results: &[ScenarioResult]) -> String {
    let rate = |r: &ScenarioResult, t: &str| {
        r.targets
            .get(t)
            .map(|m| format!("{:.0} ({}/{})", m.msgs_per_s, m.delivered, m.expected))
            .unwrap_or_else(|| "n/a".into())
    };
    let ratio = |x: Option<f64>| {
        x.map(|x| format!("{x:.2}x"))
            .unwrap_or_else(|| "n/a".into())
    };
    let mut out = String::from(
        "| scenario | Mosquitto msgs/s (delivered/expected) | bare rumqttd msgs/s | skyport-broker msgs/s | skyport without counters msgs/s | skyport / Mosquitto | skyport / rumqttd | rumqttd / Mosquitto | with / without counters |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario,
            rate(r, "mosquitto"),
            rate(r, "rumqttd"),
            rate(r, "skyport-broker"),
            rate(r, "skyport-uncounted"),
            ratio(r.skyport_vs_mosquitto),
            ratio(r.skyport_vs_rumqttd),
            ratio(r.rumqttd_vs_mosquitto),
            ratio(r.counted_vs_uncounted),
        ));
    }
    out
}

fn write_results(args: &Args, results: &[ScenarioResult], table: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out_dir)?;
    let date = command_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mosquitto = command_line("mosquitto", &["-h"]).unwrap_or_else(|| "unknown".into());
    let json = serde_json::json!({
        "generated_at": date,
        "cpus": cpus,
        "mosquitto": mosquitto,
        "rumqttd": common::RUMQTTD_VERSION,
        "client": "rumqttc 0.24 (same process as the measurement, all targets)",
        "payload_bytes": args.payload_bytes,
        "rounds": args.rounds,
        "metric": "messages delivered to subscribers per second, median of rounds; fan-out counts each copy",
        "results": results,
    });
    std::fs::write(
        args.out_dir.join("throughput.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    let md = format!(
        "# Throughput: skyport-broker vs bare rumqttd vs Mosquitto\n\n\
         Generated {date} by `bench/run.sh` on {cpus} CPUs; {mosquitto}; rumqttd {rumqttd}.\n\
         One rumqttc publisher, {} byte payloads, median of {} rounds; msgs/s counts \
         deliveries to subscribers (fan-out counts each copy). skyport-broker serves the \
         connections and sessions itself and routes through rumqttd's router in process. \
         \"without counters\" is the same node with its metering counters off \
         (`SKYPORT_BROKER_COUNTING=off`): the last column is the metering cost.\n\n{table}",
        args.payload_bytes,
        args.rounds,
        rumqttd = common::RUMQTTD_VERSION,
    );
    std::fs::write(args.out_dir.join("throughput.md"), md)?;
    eprintln!(
        "wrote {}",
        args.out_dir.join("throughput.{json,md}").display()
    );
    Ok(())
}

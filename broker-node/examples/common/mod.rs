//! Pieces shared by the benchmark examples (`throughput`, `fanout`): starting and
//! stopping the targets (bare rumqttd, skyport-broker, a private Mosquitto), client
//! options and the run's environment.
//!
//! Each example uses only some of these.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener as StdTcpListener, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::MqttOptions;

pub mod mqtt;

/// The rumqttd release both bare rumqttd and skyport-broker's engine run.
pub const RUMQTTD_VERSION: &str = "0.20.0";

/// rumqttc options shared by every benchmark client.
pub fn options(id: &str, addr: SocketAddr) -> MqttOptions {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(1 << 20, 1 << 20)
        .set_inflight(100);
    options
}

/// A broker process started by a benchmark; killed when dropped.
pub struct ChildGuard {
    child: Child,
    pub addr: SocketAddr,
    _dir: Option<TempDir>,
}

impl ChildGuard {
    /// Bare rumqttd: the running example re-executed with `--serve-rumqttd PORT`, which
    /// must call [`serve_rumqttd`].
    pub fn rumqttd() -> anyhow::Result<Self> {
        let addr = free_addr()?;
        let child = Command::new(std::env::current_exe()?)
            .args(["--serve-rumqttd", &addr.port().to_string()])
            // The child exits when this pipe closes, even if we are killed.
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let guard = Self {
            child,
            addr,
            _dir: None,
        };
        wait_accepting(addr)?;
        Ok(guard)
    }

    /// skyport-broker letting anonymous clients in, with no tier limits (no `max_tps`,
    /// no `max_sessions`) and no session queue limit in the way (like the private
    /// Mosquitto's `max_queued_messages 0`; bare rumqttd has none); `counting` off
    /// measures the node without its metering counters (`SKYPORT_BROKER_COUNTING=off`).
    pub async fn skyport(bin: &Path, counting: bool) -> anyhow::Result<Self> {
        let dir = TempDir::new()?;
        std::fs::write(
            dir.0.join("security.json"),
            r#"{"authentication": {"allow_anonymous": true},
                "sessions": {"max_queued_messages": 10000000}}"#,
        )?;
        let (tcp, api) = (free_addr()?, free_addr()?);
        let config = dir.0.join("broker.json");
        let json = serde_json::json!({
            "deployment_id": "bench",
            "listeners": {"tcp": tcp.to_string(), "api": api.to_string()},
        });
        std::fs::write(&config, json.to_string())?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn,rumqttd=off")
            .env(
                "SKYPORT_BROKER_COUNTING",
                if counting { "on" } else { "off" },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;
        let guard = Self {
            child,
            addr: tcp,
            _dir: Some(dir),
        };
        let url = format!("http://{api}/readyz");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(reqwest::get(&url).await, Ok(r) if r.status() == 200) {
            anyhow::ensure!(
                Instant::now() < deadline,
                "skyport-broker not ready at {url}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(guard)
    }

    /// A private Mosquitto on a free loopback port with `config` (listener, logging and
    /// persistence lines are added here).
    pub fn mosquitto(bin: &Path, config: &str) -> anyhow::Result<Self> {
        let dir = TempDir::new()?;
        let addr = free_addr()?;
        let file = dir.0.join("mosquitto.conf");
        std::fs::write(
            &file,
            format!(
                "listener {} {}\nallow_anonymous true\npersistence false\n\
                 log_dest stderr\nlog_type error\nlog_type warning\n{config}",
                addr.port(),
                addr.ip()
            ),
        )?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;
        let guard = Self {
            child,
            addr,
            _dir: Some(dir),
        };
        wait_accepting(addr)?;
        Ok(guard)
    }

    /// The broker's process id (its RSS is in `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> std::io::Result<Self> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("skyport-bench-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_addr() -> std::io::Result<SocketAddr> {
    StdTcpListener::bind("127.0.0.1:0")?.local_addr()
}

pub fn wait_accepting(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while StdTcpStream::connect(addr).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "nothing accepts on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Bare rumqttd with the same router and connection settings as skyport-broker's engine.
pub fn serve_rumqttd(port: u16) -> ! {
    use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let server = ServerSettings {
        name: "bench-v4".into(),
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 1024 * 1024,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some([("bench".to_owned(), server)].into()),
        ..Config::default()
    };
    if let Err(e) = Broker::new(config).start() {
        eprintln!("rumqttd: {e}");
    }
    std::process::exit(1)
}

/// The first line a command prints (stdout, then stderr), if it runs.
pub fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    text.lines().next().map(|l| l.trim().to_owned())
}

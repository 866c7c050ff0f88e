//! On-disk layout of a local deployment: `<data-dir>/deployments/<id>/`.
//!
//! ```text
//! config.json      broker configuration (rewritten on every apply)
//! ports.json       host ports of the broker (allocated in the store, unique per host;
//!                  kept here too so a restarted control plane can re-adopt the broker)
//! runtime.json     pid and generation of the running broker, for re-adoption
//! tls/server.pem   server certificate chain issued by Skyport's CA
//! tls/server.key   its private key (mode 0600)
//! security.json    hot-reloaded security settings (app keys, auth chains, custom TLS),
//!                  rewritten without restarting the broker
//! tls/custom.pem   custom certificate chain, when the owner uploaded one
//! tls/custom.key   its private key (mode 0600)
//! tls/client-ca.pem  client CA of two-way TLS
//! node-token       the broker's metering token (mode 0600), created once
//! broker.log       the broker's stdout and stderr
//! ```

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::Id;
use crate::orchestrator::OrchestratorError;

/// Host ports of one deployment's listeners.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    pub tcp: u16,
    pub tls: u16,
    pub ws: u16,
    pub wss: u16,
    pub api: u16,
}

/// What is needed to re-adopt a running broker after a control-plane restart.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuntimeRecord {
    pub pid: u32,
    pub generation: i64,
    pub config_hash: String,
}

/// Paths of one deployment's files.
#[derive(Clone, Debug)]
pub struct DeploymentDir {
    pub root: PathBuf,
}

impl DeploymentDir {
    pub fn new(deployments_root: &Path, id: Id) -> Self {
        Self {
            root: deployments_root.join(id.to_string()),
        }
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }
    pub fn ports(&self) -> PathBuf {
        self.root.join("ports.json")
    }
    pub fn runtime(&self) -> PathBuf {
        self.root.join("runtime.json")
    }
    pub fn cert(&self) -> PathBuf {
        self.root.join("tls").join("server.pem")
    }
    pub fn key(&self) -> PathBuf {
        self.root.join("tls").join("server.key")
    }
    pub fn security(&self) -> PathBuf {
        self.root.join(skyport_settings::security::FILE_NAME)
    }
    pub fn log(&self) -> PathBuf {
        self.root.join("broker.log")
    }
    pub fn node_token(&self) -> PathBuf {
        self.root.join("node-token")
    }

    /// The deployment's node token, generated on first use and then kept, so brokers
    /// (also re-adopted ones) keep authenticating with the same one.
    pub fn node_token_or_create(&self) -> Result<String, OrchestratorError> {
        if let Ok(existing) = std::fs::read_to_string(self.node_token()) {
            let existing = existing.trim();
            if !existing.is_empty() {
                return Ok(existing.to_owned());
            }
        }
        let token = crate::metering::generate_node_token();
        write_atomic(&self.node_token(), format!("{token}\n").as_bytes())?;
        Ok(token)
    }

    /// The ports recorded for this deployment's broker.
    pub fn read_ports(&self) -> Option<Ports> {
        read_json::<Ports>(&self.ports())
    }

    pub fn write_ports(&self, ports: Ports) -> Result<(), OrchestratorError> {
        write_atomic(
            &self.ports(),
            &serde_json::to_vec_pretty(&ports).unwrap_or_default(),
        )
    }

    pub fn read_runtime(&self) -> Option<RuntimeRecord> {
        read_json(&self.runtime())
    }

    pub fn write_runtime(&self, record: &RuntimeRecord) -> Result<(), OrchestratorError> {
        write_atomic(
            &self.runtime(),
            &serde_json::to_vec(record).unwrap_or_default(),
        )
    }

    pub fn clear_runtime(&self) {
        let _ = std::fs::remove_file(self.runtime());
    }

    /// The last lines the broker printed: the reason it exited, usually.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes a file so readers see the old or the new content, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OrchestratorError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(OrchestratorError::io(format!("creating {}", dir.display())))?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    // Created private: the file may be a private key.
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(&tmp);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut file| file.write_all(bytes))
            .map_err(OrchestratorError::io(format!("writing {}", tmp.display())))?;
    }
    std::fs::rename(&tmp, path).map_err(OrchestratorError::io(format!(
        "renaming to {}",
        path.display()
    )))
}

impl Ports {
    /// Listener names, as the store records them.
    pub const LISTENERS: [&'static str; 5] = ["tcp", "tls", "ws", "wss", "api"];

    /// Each listener with its port.
    pub fn records(self) -> Vec<crate::store::PortRecord> {
        [self.tcp, self.tls, self.ws, self.wss, self.api]
            .into_iter()
            .zip(Self::LISTENERS)
            .map(|(port, listener)| crate::store::PortRecord {
                listener: listener.into(),
                port,
            })
            .collect()
    }

    /// The ports of a complete set of records; `None` when a listener is missing.
    pub fn from_records(records: &[crate::store::PortRecord]) -> Option<Self> {
        let port = |name: &str| records.iter().find(|r| r.listener == name).map(|r| r.port);
        Some(Self {
            tcp: port("tcp")?,
            tls: port("tls")?,
            ws: port("ws")?,
            wss: port("wss")?,
            api: port("api")?,
        })
    }

    /// Whether every port can be bound on `ip` right now (nothing else holds it).
    pub fn bindable(self, ip: IpAddr) -> bool {
        [self.tcp, self.tls, self.ws, self.wss, self.api]
            .into_iter()
            .all(|port| TcpListener::bind(SocketAddr::new(ip, port)).is_ok())
    }
}

/// Picks five distinct free ports by binding port 0 and releasing it. Candidates only:
/// the store decides whether another deployment already holds one.
pub fn allocate_ports(ip: IpAddr) -> std::io::Result<Ports> {
    let listeners = (0..5)
        .map(|_| TcpListener::bind(SocketAddr::new(ip, 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let port = |i: usize| listeners[i].local_addr().map(|a| a.port());
    Ok(Ports {
        tcp: port(0)?,
        tls: port(1)?,
        ws: port(2)?,
        wss: port(3)?,
        api: port(4)?,
    })
}

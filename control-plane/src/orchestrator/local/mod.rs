//! The local orchestrator: one `skyport-broker` child process per deployment.
//!
//! Brokers run in their own process group, so they outlive a control-plane restart (the
//! data plane does not depend on the control plane being up); on start the orchestrator
//! re-adopts them from `runtime.json`, checking pid and command line.

mod layout;
mod process;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use skyport_settings::config::{Config as BrokerConfig, Listeners, MeteringTarget, TlsFiles};
use tokio::process::Child;
use tokio::sync::Mutex;

use self::layout::{write_atomic, DeploymentDir, Ports, RuntimeRecord};
use super::security::{NetworkDelivery, SecuritySource, TlsFileNames};
use super::{Applied, Observed, Orchestrator, OrchestratorError};
use crate::ca::Ca;
use crate::domain::{Endpoints, Id};
use crate::metering::ReportingTarget;
use crate::store::Deployment;

/// Custom TLS files, relative to the deployment dir (where `security.json` is).
const TLS_FILES: TlsFileNames = TlsFileNames {
    cert: "tls/custom.pem",
    key: "tls/custom.key",
    ca: "tls/client-ca.pem",
    domain_prefix: "tls/domains/",
};

/// How long a running broker is given to pick up a rewritten `security.json`: it polls
/// the file every [`skyport_settings::security::POLL_INTERVAL`]. (The broker does not report
/// which version it applied, so this is a bound, not an acknowledgement.)
const SECURITY_RELOAD_GRACE: Duration = Duration::from_millis(1_200);

/// How long a broker gets to exit after SIGTERM before SIGKILL.
/// (It disconnects its clients and saves persistent sessions with their queued messages
/// first; see `skyport_broker::broker`.)
const STOP_GRACE: Duration = Duration::from_secs(15);
/// Longest wait between restarts of a failing broker.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Settings of the local orchestrator.
#[derive(Clone, Debug)]
pub struct LocalSettings {
    /// `<data-dir>/deployments`.
    pub deployments_dir: PathBuf,
    /// The `skyport-broker` executable.
    pub broker_bin: PathBuf,
    /// Address brokers listen on.
    pub listen_ip: IpAddr,
    /// Host name or address put in endpoint URLs and certificates.
    pub public_host: String,
}

/// A broker process this orchestrator started or adopted.
struct Running {
    pid: u32,
    /// Our child, when we spawned it (`None` when adopted after a restart).
    child: Option<Child>,
    generation: i64,
    config_hash: String,
    ports: Ports,
    api: SocketAddr,
    /// Until then the broker may not have reloaded the security settings just written,
    /// so it is not reported as reflecting the new generation yet.
    reloading_until: Option<Instant>,
}

/// Crash bookkeeping between restarts.
#[derive(Default)]
struct Failures {
    count: u32,
    last_exit: Option<String>,
    retry_at: Option<Instant>,
}

#[derive(Default)]
struct State {
    running: HashMap<Id, Running>,
    failures: HashMap<Id, Failures>,
}

pub struct LocalOrchestrator {
    settings: LocalSettings,
    ca: Arc<Ca>,
    http: reqwest::Client,
    state: Mutex<State>,
    /// Where brokers send usage reports; none configured, brokers do not report.
    metering: Option<ReportingTarget>,
    /// Where deployments' security settings come from; none, brokers get the defaults.
    security: Option<SecuritySource>,
}

impl LocalOrchestrator {
    /// Creates the orchestrator and re-adopts brokers left running by a previous run.
    pub fn new(settings: LocalSettings, ca: Arc<Ca>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.deployments_dir)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .no_proxy()
            .build()?;
        let orchestrator = Self {
            settings,
            ca,
            http,
            state: Mutex::new(State::default()),
            metering: None,
            security: None,
        };
        orchestrator.adopt_survivors()?;
        Ok(orchestrator)
    }

    /// Brokers report usage to `target`, each with its deployment's node token.
    pub fn with_metering(mut self, target: ReportingTarget) -> Self {
        self.metering = Some(target);
        self
    }

    /// Brokers get their security settings from `source`.
    pub fn with_security(mut self, source: SecuritySource) -> Self {
        self.security = Some(source);
        self
    }

    /// Writes `security.json` and the custom TLS files it names, each atomically: the
    /// files before the settings pointing at them, and stale files removed after the
    /// settings stopped naming them. A running broker reloads the settings in place.
    /// Returns whether anything changed.
    async fn write_security(
        &self,
        deployment: &Deployment,
        dir: &DeploymentDir,
    ) -> Result<bool, OrchestratorError> {
        let security =
            SecuritySource::load_or_default(self.security.as_ref(), deployment.id).await?;
        let files = security.tls_files(TLS_FILES);
        let mut changed = false;
        for file in &files {
            changed |= write_if_changed(
                &dir.root.join(&file.name),
                file.contents.expose_secret().as_bytes(),
            )?;
        }
        changed |= write_if_changed(
            &dir.security(),
            &security.settings_json(TLS_FILES, NetworkDelivery::InProcess),
        )?;
        let domain_files = std::fs::read_dir(dir.root.join(TLS_FILES.domain_prefix))
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                entry
                    .file_name()
                    .to_str()
                    .map(|name| format!("{}{name}", TLS_FILES.domain_prefix))
            });
        let stale: Vec<String> = [TLS_FILES.cert, TLS_FILES.key, TLS_FILES.ca]
            .map(String::from)
            .into_iter()
            .chain(domain_files)
            .filter(|name| !files.iter().any(|f| &f.name == name))
            .collect();
        for name in stale {
            changed |= std::fs::remove_file(dir.root.join(name)).is_ok();
        }
        Ok(changed)
    }

    /// The `"metering"` section of the deployment's broker configuration.
    async fn metering_config(
        &self,
        deployment: &Deployment,
        dir: &DeploymentDir,
    ) -> Result<Option<MeteringTarget>, OrchestratorError> {
        let Some(target) = &self.metering else {
            return Ok(None);
        };
        let token = dir.node_token_or_create()?;
        let section =
            target
                .enroll(deployment, &token)
                .await
                .map_err(|err| OrchestratorError::Io {
                    context: "registering the node token".into(),
                    source: std::io::Error::other(err),
                })?;
        Ok(Some(section))
    }

    fn dir(&self, id: Id) -> DeploymentDir {
        DeploymentDir::new(&self.settings.deployments_dir, id)
    }

    fn adopt_survivors(&self) -> anyhow::Result<()> {
        let mut state = self
            .state
            .try_lock()
            .expect("no one else holds the state yet");
        for id in self.dir_ids() {
            let dir = self.dir(id);
            let Some(record) = dir.read_runtime() else {
                continue;
            };
            let config = dir.config();
            if !process::is_our_broker(record.pid, &config.to_string_lossy()) {
                dir.clear_runtime();
                continue;
            }
            let Ok(ports) = dir.ports_or_allocate(self.settings.listen_ip) else {
                continue;
            };
            tracing::info!(deployment.id = %id, pid = record.pid, "re-adopted running broker");
            state.running.insert(
                id,
                Running {
                    pid: record.pid,
                    child: None,
                    generation: record.generation,
                    config_hash: record.config_hash,
                    api: SocketAddr::new(self.settings.listen_ip, ports.api),
                    ports,
                    reloading_until: None,
                },
            );
        }
        Ok(())
    }

    fn dir_ids(&self) -> Vec<Id> {
        let Ok(entries) = std::fs::read_dir(&self.settings.deployments_dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect()
    }

    fn endpoints(&self, deployment: &Deployment, ports: Ports) -> Endpoints {
        let host = &self.settings.public_host;
        let plain = deployment.plan.exposes_plaintext();
        Endpoints {
            host: host.clone(),
            mqtt: plain.then(|| format!("mqtt://{host}:{}", ports.tcp)),
            mqtts: Some(format!("mqtts://{host}:{}", ports.tls)),
            ws: plain.then(|| format!("ws://{host}:{}/mqtt", ports.ws)),
            wss: Some(format!("wss://{host}:{}/mqtt", ports.wss)),
            api: format!("http://{host}:{}", ports.api),
        }
    }

    /// The broker configuration for the deployment's spec.
    fn broker_config(
        &self,
        deployment: &Deployment,
        ports: Ports,
        dir: &DeploymentDir,
        metering: Option<MeteringTarget>,
    ) -> Vec<u8> {
        let ip = self.settings.listen_ip;
        let addr = |port: u16| SocketAddr::new(ip, port);
        let plain = deployment.plan.exposes_plaintext();
        let config = BrokerConfig {
            deployment_id: deployment.id.to_string(),
            listeners: Listeners {
                tcp: plain.then(|| addr(ports.tcp)),
                tls: Some(addr(ports.tls)),
                ws: plain.then(|| addr(ports.ws)),
                wss: Some(addr(ports.wss)),
                api: addr(ports.api),
            },
            tls: Some(TlsFiles {
                cert_file: dir.cert(),
                key_file: dir.key(),
            }),
            limits: deployment.tier.broker_limits(),
            metering,
            // Both default to the config file's directory, the deployment dir.
            security_file: None,
            data_dir: None,
        };
        config.to_json_pretty().into_bytes()
    }

    fn certificate_names(&self) -> Vec<String> {
        let mut names = vec![self.settings.public_host.clone()];
        for extra in ["localhost", "127.0.0.1"] {
            if !names.iter().any(|n| n == extra) {
                names.push(extra.to_owned());
            }
        }
        if !self.settings.listen_ip.is_unspecified() {
            let ip = self.settings.listen_ip.to_string();
            if !names.contains(&ip) {
                names.push(ip);
            }
        }
        names
    }

    async fn spawn(
        &self,
        deployment: &Deployment,
        dir: &DeploymentDir,
        ports: Ports,
        config: Vec<u8>,
        config_hash: String,
    ) -> Result<Running, OrchestratorError> {
        let issued = self
            .ca
            .issue_server_cert(&self.certificate_names())
            .map_err(|e| OrchestratorError::Certificate(e.to_string()))?;
        write_atomic(&dir.cert(), issued.chain_pem.as_bytes())?;
        write_atomic(&dir.key(), issued.key_pem.as_bytes())?;
        write_atomic(&dir.config(), &config)?;

        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.log())
            .map_err(OrchestratorError::io("opening broker.log"))?;
        let log_err = log
            .try_clone()
            .map_err(OrchestratorError::io("opening broker.log"))?;
        let child = tokio::process::Command::new(&self.settings.broker_bin)
            .arg("--config")
            .arg(dir.config())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            // Own process group: a Ctrl-C aimed at the control plane leaves brokers running.
            .process_group(0)
            .kill_on_drop(false)
            .spawn()
            .map_err(OrchestratorError::io(format!(
                "starting {}",
                self.settings.broker_bin.display()
            )))?;
        let pid = child.id().unwrap_or_default();
        dir.write_runtime(&RuntimeRecord {
            pid,
            generation: deployment.generation,
            config_hash: config_hash.clone(),
        })?;
        tracing::info!(deployment.id = %deployment.id, pid, "broker started");
        Ok(Running {
            pid,
            child: Some(child),
            generation: deployment.generation,
            config_hash,
            api: SocketAddr::new(self.settings.listen_ip, ports.api),
            ports,
            reloading_until: None,
        })
    }
}

/// Writes `bytes` to `path` atomically unless it already holds exactly them, so an
/// unchanged file is not touched (the broker's watcher sees no change); returns whether
/// it wrote.
fn write_if_changed(path: &std::path::Path, bytes: &[u8]) -> Result<bool, OrchestratorError> {
    if std::fs::read(path).is_ok_and(|current| current == bytes) {
        return Ok(false);
    }
    write_atomic(path, bytes)?;
    Ok(true)
}

/// Whether a broker process is alive; reaps it if it is our child and has exited.
fn check_alive(running: &mut Running, config_path: &str) -> Result<(), String> {
    match running.child.as_mut() {
        Some(child) => match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("broker exited ({status})")),
            Err(err) => Err(format!("broker status unknown: {err}")),
        },
        None if process::is_our_broker(running.pid, config_path) => Ok(()),
        None => Err("broker process is gone".into()),
    }
}

async fn stop_running(mut running: Running, config_path: &str) {
    let pid = running.pid;
    process::terminate(pid, STOP_GRACE, || {
        check_alive(&mut running, config_path).is_ok()
    })
    .await;
}

#[async_trait]
impl Orchestrator for LocalOrchestrator {
    async fn observe(&self, deployment: &Deployment) -> Observed {
        let dir = self.dir(deployment.id);
        let config_path = dir.config().to_string_lossy().into_owned();
        let mut state = self.state.lock().await;
        let State { running, failures } = &mut *state;
        let Some(proc_) = running.get_mut(&deployment.id) else {
            let f = failures.get(&deployment.id);
            return Observed::Down {
                last_exit: f.and_then(|f| f.last_exit.clone()),
                failures: f.map_or(0, |f| f.count),
            };
        };
        if let Err(reason) = check_alive(proc_, &config_path) {
            running.remove(&deployment.id);
            dir.clear_runtime();
            let f = failures.entry(deployment.id).or_default();
            f.count += 1;
            let tail = dir.log_tail(3);
            let reason = if tail.is_empty() {
                reason
            } else {
                format!("{reason}: {tail}")
            };
            tracing::warn!(deployment.id = %deployment.id, %reason, failures = f.count, "broker went down");
            let backoff = Duration::from_millis(250 * 2u64.pow(f.count.min(8))).min(MAX_BACKOFF);
            f.retry_at = Some(Instant::now() + backoff);
            f.last_exit = Some(reason.clone());
            return Observed::Down {
                last_exit: Some(reason),
                failures: f.count,
            };
        }
        if proc_
            .reloading_until
            .is_some_and(|until| Instant::now() < until)
        {
            return Observed::Starting;
        }
        let (api, generation, ports) = (proc_.api, proc_.generation, proc_.ports);
        drop(state);
        let ready = self
            .http
            .get(format!("http://{api}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if !ready {
            return Observed::Starting;
        }
        self.state.lock().await.failures.remove(&deployment.id);
        Observed::Ready {
            generation,
            endpoints: self.endpoints(deployment, ports),
        }
    }

    async fn apply(&self, deployment: &Deployment) -> Result<Applied, OrchestratorError> {
        let dir = self.dir(deployment.id);
        let config_path = dir.config().to_string_lossy().into_owned();
        let ports = dir.ports_or_allocate(self.settings.listen_ip)?;
        let metering = self.metering_config(deployment, &dir).await?;
        let config = self.broker_config(deployment, ports, &dir, metering);
        let config_hash = hex::encode(Sha256::digest(&config));
        // Outside the config hash: security changes never restart the broker.
        let security_changed = self.write_security(deployment, &dir).await?;

        let mut state = self.state.lock().await;
        if let Some(running) = state.running.get_mut(&deployment.id) {
            if running.config_hash == config_hash {
                if security_changed {
                    running.reloading_until = Some(Instant::now() + SECURITY_RELOAD_GRACE);
                }
                if running.generation != deployment.generation {
                    running.generation = deployment.generation;
                    dir.write_runtime(&RuntimeRecord {
                        pid: running.pid,
                        generation: running.generation,
                        config_hash,
                    })?;
                }
                return Ok(Applied::Unchanged);
            }
            // The configuration changed: roll the broker over to the new one.
            let old = state.running.remove(&deployment.id).expect("present above");
            tracing::info!(deployment.id = %deployment.id, "configuration changed; restarting broker");
            stop_running(old, &config_path).await;
            dir.clear_runtime();
        } else if state
            .failures
            .get(&deployment.id)
            .and_then(|f| f.retry_at)
            .is_some_and(|at| Instant::now() < at)
        {
            return Ok(Applied::BackingOff);
        }
        let running = self
            .spawn(deployment, &dir, ports, config, config_hash)
            .await?;
        state.running.insert(deployment.id, running);
        Ok(Applied::Started)
    }

    async fn stop(&self, id: Id) -> Result<(), OrchestratorError> {
        let dir = self.dir(id);
        let running = {
            let mut state = self.state.lock().await;
            state.failures.remove(&id);
            state.running.remove(&id)
        };
        if let Some(running) = running {
            tracing::info!(deployment.id = %id, pid = running.pid, "stopping broker");
            stop_running(running, &dir.config().to_string_lossy()).await;
        }
        dir.clear_runtime();
        Ok(())
    }

    async fn remove(&self, id: Id) -> Result<(), OrchestratorError> {
        self.stop(id).await?;
        let dir = self.dir(id);
        match std::fs::remove_dir_all(&dir.root) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(OrchestratorError::Io {
                context: format!("removing {}", dir.root.display()),
                source: err,
            }),
        }
    }

    async fn runtimes(&self) -> Vec<Id> {
        self.dir_ids()
    }
}

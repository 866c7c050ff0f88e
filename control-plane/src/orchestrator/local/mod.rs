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
use crate::certificates::ServerCertificates;
use crate::domain::{Endpoints, Id};
use crate::metering::ReportingTarget;
use crate::store::{Deployment, Store};

/// Custom TLS files, relative to the deployment dir (where `security.json` is).
const TLS_FILES: TlsFileNames = TlsFileNames {
    cert: "tls/custom.pem",
    key: "tls/custom.key",
    ca: "tls/client-ca.pem",
    domain_prefix: "tls/domains/",
};

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
    /// Where host ports are allocated; none, each deployment dir keeps its own (tests).
    port_store: Option<Arc<dyn Store>>,
    /// Where deployments' server certificates are kept and renewed; none, each
    /// deployment dir keeps the one issued when it was first started (tests).
    certificates: Option<ServerCertificates>,
}

/// Attempts at finding ports no other deployment holds before giving up for this pass.
const PORT_ATTEMPTS: usize = 32;

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
            port_store: None,
            certificates: None,
        };
        orchestrator.adopt_survivors()?;
        Ok(orchestrator)
    }

    /// Brokers report usage to `target`, each with its deployment's node token.
    pub fn with_metering(mut self, target: ReportingTarget) -> Self {
        self.metering = Some(target);
        self
    }

    /// Host ports are allocated in `store`, unique per host.
    pub fn with_port_store(mut self, store: Arc<dyn Store>) -> Self {
        self.port_store = Some(store);
        self
    }

    /// Brokers serve the server certificates `source` keeps (and renews).
    pub fn with_certificates(mut self, source: ServerCertificates) -> Self {
        self.certificates = Some(source);
        self
    }

    /// Writes the deployment's server certificate where its config names it, key first,
    /// each atomically and only when it changed (a running broker notices new files and
    /// swaps them in for new handshakes). Returns whether anything changed.
    async fn write_server_certificate(
        &self,
        deployment: &Deployment,
        dir: &DeploymentDir,
    ) -> Result<bool, OrchestratorError> {
        let names = self.certificate_names();
        let (chain_pem, key_pem) = match &self.certificates {
            Some(source) => {
                let cert = source.for_deployment(deployment, &names).await?;
                (cert.chain_pem, cert.key_pem)
            }
            None if dir.cert().exists() && dir.key().exists() => return Ok(false),
            None => {
                let issued = self
                    .ca
                    .issue_server_cert(&names, chrono::Utc::now())
                    .map_err(|e| OrchestratorError::Certificate(e.to_string()))?;
                (issued.chain_pem, issued.key_pem.into())
            }
        };
        let key_changed = write_if_changed(&dir.key(), key_pem.expose_secret().as_bytes())?;
        let cert_changed = write_if_changed(&dir.cert(), chain_pem.as_bytes())?;
        Ok(key_changed || cert_changed)
    }

    /// The store's name for this host: ports are unique per host.
    fn port_host(&self) -> String {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|n| n.trim().to_owned())
            .unwrap_or_default();
        format!("{name}/{}", self.settings.listen_ip)
    }

    /// The deployment's host ports: those it holds, unless no broker runs and one of
    /// them is taken by something else (or the last broker could not bind one), in
    /// which case it gets new ones.
    async fn ports(&self, id: Id, dir: &DeploymentDir) -> Result<Ports, OrchestratorError> {
        let ip = self.settings.listen_ip;
        let (running, bind_failed) = {
            let state = self.state.lock().await;
            (
                state.running.get(&id).map(|r| r.ports),
                state
                    .failures
                    .get(&id)
                    .and_then(|f| f.last_exit.as_deref())
                    .is_some_and(|exit| exit.contains("in use")),
            )
        };
        if let Some(ports) = running {
            return Ok(ports);
        }
        let held = match &self.port_store {
            Some(store) => Ports::from_records(
                &store
                    .ports(&self.port_host(), id)
                    .await
                    .map_err(|e| port_error(e.to_string()))?,
            ),
            None => dir.read_ports(),
        };
        if let Some(ports) = held {
            if !bind_failed && ports.bindable(ip) {
                if dir.read_ports() != Some(ports) {
                    dir.write_ports(ports)?;
                }
                return Ok(ports);
            }
            tracing::warn!(deployment.id = %id, "a port of the deployment is taken; allocating new ones");
        }
        for _ in 0..PORT_ATTEMPTS {
            let candidate =
                layout::allocate_ports(ip).map_err(OrchestratorError::io("allocating ports"))?;
            let claimed = match &self.port_store {
                Some(store) => match store
                    .claim_ports(&self.port_host(), id, &candidate.records())
                    .await
                {
                    Ok(()) => true,
                    Err(crate::store::StoreError::Conflict(_)) => false,
                    Err(e) => return Err(port_error(e.to_string())),
                },
                None => true,
            };
            if claimed {
                dir.write_ports(candidate)?;
                return Ok(candidate);
            }
        }
        Err(port_error(format!(
            "no free ports found in {PORT_ATTEMPTS} attempts"
        )))
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
        let security = SecuritySource::load_or_default(self.security.as_ref(), deployment).await?;
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
        self.adopt_into(&mut state);
        Ok(())
    }

    /// Adopts every broker recorded in a deployment dir's `runtime.json` that still runs.
    fn adopt_into(&self, state: &mut State) {
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
            let Some(ports) = dir.read_ports() else {
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
                },
            );
        }
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
            limits: deployment.tier.broker_limits(deployment.plan),
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
        })
    }
}

fn port_error(message: String) -> OrchestratorError {
    OrchestratorError::Io {
        context: "allocating ports".into(),
        source: std::io::Error::other(message),
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

/// Carries the current request id (of the API request or reconcile step) to the broker.
fn traced(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match crate::telemetry::current_request_id() {
        Some(id) => request.header(crate::telemetry::REQUEST_ID_HEADER, id),
        None => request,
    }
}

/// Sends a probe (`/readyz`, `POST /reload`) to a broker: the revision of the security
/// settings it has in force, when it is ready (`Some(None)` from a broker too old to
/// report one).
async fn probe(request: &reqwest::RequestBuilder) -> Option<Option<i64>> {
    #[derive(serde::Deserialize)]
    struct Ready {
        revision: Option<i64>,
    }
    let response = request.try_clone()?.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json::<Ready>().await.ok().map(|r| r.revision)
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
        let (api, generation, ports) = (proc_.api, proc_.generation, proc_.ports);
        drop(state);
        let Some(revision) = probe(&traced(self.http.get(format!("http://{api}/readyz")))).await
        else {
            return Observed::Starting;
        };
        self.state.lock().await.failures.remove(&deployment.id);
        Observed::Ready {
            // The configuration is the one of `generation` (a change restarts the
            // broker); the security settings are those of the revision it reports.
            generation: revision.map_or(generation, |revision| generation.min(revision)),
            endpoints: self.endpoints(deployment, ports),
        }
    }

    async fn apply(&self, deployment: &Deployment) -> Result<Applied, OrchestratorError> {
        let dir = self.dir(deployment.id);
        let config_path = dir.config().to_string_lossy().into_owned();
        let ports = self.ports(deployment.id, &dir).await?;
        let metering = self.metering_config(deployment, &dir).await?;
        let config = self.broker_config(deployment, ports, &dir, metering);
        let config_hash = hex::encode(Sha256::digest(&config));
        // Outside the config hash: certificate and security changes never restart the
        // broker. The certificate first: the new `security.json` (its revision) tells the
        // broker to look at every file.
        let certificate_changed = self.write_server_certificate(deployment, &dir).await?;
        let security_changed = self.write_security(deployment, &dir).await? || certificate_changed;

        let mut state = self.state.lock().await;
        if let Some(running) = state.running.get_mut(&deployment.id) {
            if running.config_hash == config_hash {
                // Have the broker look at the new files now rather than at its next poll,
                // so the reconciler's next look (right after this) finds them in force.
                let reload = security_changed
                    .then(|| traced(self.http.post(format!("http://{}/reload", running.api))));
                if running.generation != deployment.generation {
                    running.generation = deployment.generation;
                    dir.write_runtime(&RuntimeRecord {
                        pid: running.pid,
                        generation: running.generation,
                        config_hash,
                    })?;
                }
                drop(state);
                if let Some(reload) = reload {
                    probe(&reload).await;
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

    /// Re-reads what runs from the deployment dirs (another replica may have started or
    /// stopped brokers since this one last led), and stops brokers no `runtime.json`
    /// records: a leader killed between starting a broker and recording it leaves one,
    /// which would otherwise hold the deployment's ports beside its replacement.
    async fn take_over(&self) {
        let mut state = self.state.lock().await;
        // Children of an earlier term are dropped here; tokio reaps them if they exit.
        *state = State::default();
        self.adopt_into(&mut state);
        let adopted: std::collections::HashSet<u32> =
            state.running.values().map(|r| r.pid).collect();
        drop(state);
        for pid in process::brokers_under(&self.settings.deployments_dir) {
            if adopted.contains(&pid) {
                continue;
            }
            tracing::warn!(
                pid,
                "stopping a broker no runtime.json records (its leader died while starting it)"
            );
            process::terminate(pid, STOP_GRACE, || process::is_our_broker(pid, "")).await;
        }
        tracing::info!(brokers = adopted.len(), "took over running brokers");
    }
}

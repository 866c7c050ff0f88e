//! Wiring: state shared by handlers, the HTTP app, and the serve loop.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::routing::get;
use axum::Router;
use secrecy::ExposeSecret;
use tokio::sync::Notify;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::ca::Ca;
use crate::config::{CommonArgs, OrchestratorKind, ServeArgs};
use crate::domain::token;
use crate::encryption::SecretKey;
use crate::error::ApiError;
use crate::http;
use crate::orchestrator::kubernetes::KubernetesOrchestrator;
use crate::orchestrator::local::{LocalOrchestrator, LocalSettings};
use crate::orchestrator::security::SecuritySource;
use crate::orchestrator::Orchestrator;
use crate::reconcile::Reconciler;
use crate::store::Store;

/// What every handler can reach.
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// SHA-256 of the admin token; the token itself is not kept.
    pub admin_token_hash: String,
    pub ca: Arc<Ca>,
    /// Wakes the reconciler after a spec change.
    pub reconcile: Arc<Notify>,
    /// Woken whenever the reconciler records a revision a broker has applied.
    pub applied: Arc<Notify>,
    /// How long writes wait for the running broker to apply them.
    pub apply_timeout: std::time::Duration,
    /// Prometheus metrics, served at `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Encrypts secrets kept in the store (custom TLS private keys).
    pub secret_key: Arc<SecretKey>,
    /// Verifies custom domains' DNS records.
    pub dns: Arc<crate::dns::DnsVerifier>,
    /// What the platform offers the networking add-ons.
    pub network: NetworkPlatform,
    /// Sign-in rules of the web console.
    pub signin: SigninPolicy,
}

/// Sign-in rules of the web console, from the operator's settings.
#[derive(Clone, Debug)]
pub struct SigninPolicy {
    pub session_ttl: std::time::Duration,
    pub lockout: std::time::Duration,
    /// Wrong passwords in a row that lock an account.
    pub max_failures: i64,
    /// Always mark the session cookie `Secure`.
    pub secure_cookies: bool,
}

impl SigninPolicy {
    pub fn from_args(serve: &ServeArgs) -> Self {
        Self {
            session_ttl: serve.console_session_ttl,
            lockout: serve.signin_lockout,
            max_failures: 10,
            secure_cookies: serve.secure_cookies,
        }
    }
}

/// The platform's side of the networking add-ons, from the operator's settings.
#[derive(Clone, Debug)]
pub struct NetworkPlatform {
    /// Egress addresses a new NAT gateway gets (empty: NAT gateways are unavailable).
    pub egress_addresses: Vec<std::net::IpAddr>,
    /// Address of internal endpoints, when the platform fixes it (local); `None` when a
    /// load balancer assigns it (Kubernetes).
    pub internal_address: Option<std::net::IpAddr>,
    /// Whether internal endpoints can be created: always locally; on Kubernetes only
    /// with `--internal-lb-provider` (else the Service would be a public one).
    pub internal_endpoints: bool,
    /// First back-off of the background DNS re-check of pending domains.
    pub dns_recheck_interval: std::time::Duration,
}

impl NetworkPlatform {
    pub fn from_args(serve: &ServeArgs) -> Self {
        let local = serve.orchestrator == OrchestratorKind::Local;
        let egress_addresses = if serve.nat_egress_addresses.is_empty() && local {
            vec![std::net::Ipv4Addr::new(127, 0, 0, 2).into()]
        } else {
            serve.nat_egress_addresses.clone()
        };
        Self {
            egress_addresses,
            internal_address: serve
                .internal_address
                .or(local.then(|| std::net::Ipv4Addr::new(127, 0, 0, 3).into())),
            internal_endpoints: local || serve.kube.internal_lb_provider.is_some(),
            dns_recheck_interval: serve.dns_recheck_interval,
        }
    }
}

/// The HTTP application: `/api/v1/…`, its OpenAPI document, health and the web console.
pub fn router(state: Arc<AppState>) -> Router {
    let (api, doc) = http::router();
    let doc = Arc::new(doc);
    let api = api.route(
        "/openapi.json",
        get(move || http::serve_openapi(doc.clone())),
    );
    Router::new()
        .nest("/api/v1", api)
        .nest(http::reports::BASE, http::reports::router())
        .merge(crate::console::router())
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(crate::metrics::serve))
        .fallback(|| async { ApiError::not_found("route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .layer(RequestBodyLimitLayer::new(http::json::MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The admin token: given, or read from / generated into `DATA_DIR/admin-token`.
/// Returns the token and whether it should be printed (it was not given by the operator).
fn admin_token(serve: &ServeArgs, data_dir: &Path) -> anyhow::Result<(String, bool)> {
    if let Some(token) = &serve.admin_token {
        let token = token.expose_secret().trim().to_owned();
        anyhow::ensure!(
            token.len() >= 16,
            "the admin token must be at least 16 characters"
        );
        return Ok((token, false));
    }
    let path = data_dir.join("admin-token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_owned();
        if !existing.is_empty() {
            return Ok((existing, true));
        }
    }
    let generated = token::generate("ska_");
    std::fs::write(&path, format!("{generated}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok((generated, true))
}

/// The broker executable: `skyport-broker` next to this executable, where `cargo build`
/// (both binaries of the workspace) puts it. Under `cargo run --bin skyport`, which builds
/// only `skyport`, a missing broker is built first with the same cargo, profile and
/// target directory, so the README's one command starts everything.
fn default_broker_bin() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe().context("locating the skyport executable")?;
    let sibling = exe.with_file_name("skyport-broker");
    if !sibling.exists() && run_by_cargo(&exe) {
        if let Some(cargo) = std::env::var_os("CARGO") {
            build_broker(&cargo, Path::new(env!("CARGO_MANIFEST_DIR")), &exe)?;
        }
    }
    Ok(sibling)
}

/// Whether this is `cargo run` of this very package, from its target directory (not a
/// copy of the binary, nor a process started by some other package's tests).
fn run_by_cargo(exe: &Path) -> bool {
    let ours = std::env::var_os("CARGO_MANIFEST_DIR")
        .is_some_and(|dir| Path::new(&dir) == Path::new(env!("CARGO_MANIFEST_DIR")));
    let in_target = exe
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|profile| profile == "release" || profile == "debug");
    ours && in_target
}

/// `cargo build -p skyport-broker` into the target directory and profile `exe` came from.
fn build_broker(cargo: &std::ffi::OsStr, manifest_dir: &Path, exe: &Path) -> anyhow::Result<()> {
    let profile_dir = exe.parent().context("the executable has no directory")?;
    let target_dir = profile_dir
        .parent()
        .context("the executable is not in a cargo target directory")?;
    let mut build = std::process::Command::new(cargo);
    build
        .arg("build")
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        .args(["-p", "skyport-broker", "--bin", "skyport-broker"])
        .arg("--target-dir")
        .arg(target_dir);
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        build.arg("--release");
    }
    eprintln!("skyport: building skyport-broker (first run under cargo run)");
    let status = build
        .status()
        .context("running cargo to build skyport-broker")?;
    anyhow::ensure!(
        status.success(),
        "building skyport-broker failed ({status})"
    );
    Ok(())
}

/// Runs the control plane until SIGINT or SIGTERM.
pub async fn serve(common: &CommonArgs, serve: &ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&common.data_dir)
        .with_context(|| format!("creating data dir {}", common.data_dir.display()))?;
    let store = crate::store::connect(&common.database_url()).await?;
    store.migrate().await.context("applying migrations")?;
    let ca = Arc::new(Ca::load_or_create(store.as_ref()).await?);
    let (admin_token, print_token) = admin_token(serve, &common.data_dir)?;
    let secret_key = Arc::new(SecretKey::given_or_from_dir(
        serve.secret_key.as_ref(),
        &common.data_dir,
    )?);
    let security = SecuritySource::new(store.clone(), secret_key.clone());
    // Bound before the orchestrator starts: brokers are told the actual address (port 0).
    let listener = tokio::net::TcpListener::bind(serve.listen)
        .await
        .with_context(|| format!("binding {}", serve.listen))?;
    let addr = listener.local_addr()?;
    let internal_url = crate::metering::internal_url(serve.internal_url.as_deref(), addr)?;
    let reporting = crate::metering::ReportingTarget::new(
        &internal_url,
        serve.metering_interval,
        store.clone(),
    )?;
    let metrics = Arc::new(crate::metrics::Metrics::new());

    let orchestrator: Arc<dyn Orchestrator> = match serve.orchestrator {
        OrchestratorKind::Local => {
            let broker_bin = match &serve.broker_bin {
                Some(path) => path.clone(),
                None => default_broker_bin()?,
            };
            anyhow::ensure!(
                broker_bin.exists(),
                "broker executable {} not found: build it (cargo build --release --bin skyport-broker, or cargo build --release for both binaries) or pass --broker-bin",
                broker_bin.display()
            );
            Arc::new(
                LocalOrchestrator::new(
                    LocalSettings {
                        deployments_dir: common.data_dir.join("deployments"),
                        broker_bin,
                        listen_ip: serve.broker_listen_ip,
                        public_host: serve.public_host.clone(),
                    },
                    ca.clone(),
                )?
                .with_metering(reporting.clone())
                .with_security(security)
                .with_port_store(store.clone()),
            )
        }
        OrchestratorKind::Kubernetes => {
            if serve.internal_url.is_none() {
                tracing::warn!(
                    %internal_url,
                    "no --internal-url: broker pods will send usage reports to the address the API is bound to, which they usually cannot reach"
                );
            }
            Arc::new(
                KubernetesOrchestrator::connect(serve.kube.settings(), ca.clone())
                    .await?
                    .with_metering(reporting.clone())
                    .with_security(security),
            )
        }
    };

    let wake = Arc::new(Notify::new());
    let applied = Arc::new(Notify::new());
    let reconciler = Reconciler::new(store.clone(), orchestrator, wake.clone())
        .with_metrics(metrics.clone())
        .with_applied(applied.clone());
    let reconcile_task = tokio::spawn(reconciler.run());
    let purge_task = tokio::spawn(crate::events::run_purger(
        store.clone(),
        Arc::new(crate::events::SystemClock),
        serve.event_retention,
        serve.event_purge_interval,
    ));

    let metering_purge_task = tokio::spawn(crate::metering::retention::run_purger(
        store.clone(),
        Arc::new(crate::events::SystemClock),
        crate::metering::retention::Retention {
            minutes: serve.metering_minute_retention,
            hours: serve.metering_hour_retention,
        },
        serve.metering_purge_interval,
    ));

    let state = Arc::new(AppState {
        store,
        admin_token_hash: token::hash(&admin_token),
        ca,
        reconcile: wake,
        applied,
        apply_timeout: serve.apply_timeout,
        metrics,
        secret_key,
        dns: Arc::new(
            crate::dns::DnsVerifier::new(serve.dns_server)
                .context("configuring the DNS resolver")?,
        ),
        network: NetworkPlatform::from_args(serve),
        signin: SigninPolicy::from_args(serve),
    });
    let domain_checks = tokio::spawn(crate::domains::run_rechecks(state.clone()));
    let session_purge_task = tokio::spawn(crate::signin::run_purger(
        state.store.clone(),
        state.reconcile.clone(),
        serve.console_session_purge_interval,
    ));
    println!("Skyport control plane listening on http://{addr}");
    println!("  Console: http://{addr}/");
    println!("  API:     http://{addr}/api/v1");
    println!("  OpenAPI: http://{addr}/api/v1/openapi.json");
    if print_token {
        println!(
            "  Admin token: {admin_token}  (kept in {})",
            common.data_dir.join("admin-token").display()
        );
    } else {
        println!("  Admin token: as given by --admin-token / SKYPORT_ADMIN_TOKEN");
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    reconcile_task.abort();
    domain_checks.abort();
    purge_task.abort();
    metering_purge_task.abort();
    session_purge_task.abort();
    tracing::info!("control plane stopped; brokers keep running and are re-adopted on next start");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

//! Wiring: state shared by handlers, the HTTP app, and the serve loop.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::routing::get;
use axum::Router;
use secrecy::ExposeSecret;
use tokio::sync::Notify;
use tower_http::limit::RequestBodyLimitLayer;

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
    /// The revisions this replica's reconciler recorded as applied by brokers.
    pub applied: Arc<crate::reconcile::AppliedRevisions>,
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
    /// Rate limits and quotas of the API.
    pub limits: ApiLimits,
    /// Which replica runs the reconciler and background work.
    pub leadership: Arc<crate::leadership::Leadership>,
    /// Alert evaluation settings and notification delivery.
    pub alerts: Arc<crate::alerts::Alerts>,
}

/// Rate limits and quotas of the API, from the operator's settings.
pub struct ApiLimits {
    /// Deployments a project may have unless it has its own quota.
    pub deployment_quota: i64,
    /// Per-credential request budget; `None` when off.
    pub rate_limiter: Option<http::rate_limit::RateLimiter>,
}

impl ApiLimits {
    pub fn from_args(serve: &ServeArgs) -> Self {
        Self {
            deployment_quota: serve.deployment_quota,
            rate_limiter: serve.rate_limit.0.map(http::rate_limit::RateLimiter::new),
        }
    }
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
    let api = api
        .route(
            "/openapi.json",
            get(move || http::serve_openapi(doc.clone())),
        )
        // The rate limit first (outermost): a refused request is not kept for replay.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::idempotency::idempotent,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::rate_limit::limit,
        ));
    let app = Router::new()
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
        .layer(RequestBodyLimitLayer::new(http::json::MAX_BODY_BYTES));
    crate::telemetry::with_request_layers(app).with_state(state)
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
    let (admin_token, print_token) = admin_token(serve, &common.data_dir)?;
    let secret_key = Arc::new(
        SecretKey::given_or_from_dir(serve.secret_key.as_ref(), &common.data_dir).context(
            "the secret key (--secret-key / SKYPORT_SECRET_KEY, else DATA_DIR/secret-key)",
        )?,
    );
    let ca = Arc::new(Ca::load_or_create(store.as_ref(), &secret_key).await?);
    let clock = crate::certificates::clock(serve.clock_offset);
    let certificates = crate::certificates::ServerCertificates::new(
        store.clone(),
        ca.clone(),
        secret_key.clone(),
        clock.clone(),
    );
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
                .with_port_store(store.clone())
                .with_certificates(certificates),
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
    let applied = Arc::new(crate::reconcile::AppliedRevisions::default());
    let leadership = crate::leadership::Leadership::start(
        serve
            .replica_id
            .clone()
            .unwrap_or_else(crate::leadership::default_identity),
        election(common, serve).await?,
    );
    let state = Arc::new(AppState {
        store: store.clone(),
        admin_token_hash: token::hash(&admin_token),
        ca,
        reconcile: wake.clone(),
        applied: applied.clone(),
        apply_timeout: serve.apply_timeout,
        metrics: metrics.clone(),
        secret_key: secret_key.clone(),
        dns: Arc::new(
            crate::dns::DnsVerifier::new(serve.dns_server)
                .context("configuring the DNS resolver")?,
        ),
        network: NetworkPlatform::from_args(serve),
        signin: SigninPolicy::from_args(serve),
        limits: ApiLimits::from_args(serve),
        leadership: leadership.clone(),
        alerts: Arc::new(crate::alerts::Alerts::from_args(
            serve,
            secret_key.clone(),
            metrics.clone(),
        )?),
    });
    let background = tokio::spawn(crate::leadership::run_while_leader(
        leadership,
        metrics.clone(),
        {
            let orchestrator = orchestrator.clone();
            move || {
                let orchestrator = orchestrator.clone();
                async move { orchestrator.take_over().await }
            }
        },
        {
            let state = state.clone();
            let retention = BackgroundSettings::from_args(serve, clock);
            move |work: &mut tokio::task::JoinSet<()>| {
                spawn_background(work, &state, orchestrator.clone(), &retention);
            }
        },
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
    background.abort();
    tracing::info!("control plane stopped; brokers keep running and are re-adopted on next start");
    Ok(())
}

/// How leaders are elected, from the settings and the database.
async fn election(
    common: &CommonArgs,
    serve: &ServeArgs,
) -> anyhow::Result<crate::leadership::Election> {
    use crate::config::LeaderElectionKind as Kind;
    use crate::leadership::{lease::LeaseLock, postgres::AdvisoryLock, Election};
    let url = common.database_url();
    let on_postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
    let kind = match serve.leader_election {
        Kind::Auto if serve.orchestrator == OrchestratorKind::Kubernetes => Kind::Kubernetes,
        Kind::Auto if on_postgres => Kind::Postgres,
        Kind::Auto => Kind::None,
        other => other,
    };
    Ok(match kind {
        Kind::None | Kind::Auto => Election::Single,
        Kind::Postgres => {
            anyhow::ensure!(
                on_postgres,
                "--leader-election postgres needs a postgres:// --database-url"
            );
            Election::Postgres(AdvisoryLock::new(&url)?)
        }
        Kind::Kubernetes => {
            let client = kube::Client::try_default()
                .await
                .context("connecting to Kubernetes for the leader Lease")?;
            let namespace = serve
                .leader_lease_namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned());
            Election::Lease(LeaseLock::new(client, &namespace, &serve.leader_lease))
        }
    })
}

/// Intervals and retention of the leader's background work.
struct BackgroundSettings {
    event_retention: std::time::Duration,
    event_purge_interval: std::time::Duration,
    metering: crate::metering::retention::Retention,
    metering_purge_interval: std::time::Duration,
    console_session_purge_interval: std::time::Duration,
    certificate_check_interval: std::time::Duration,
    /// The clock certificate renewal reads.
    clock: Arc<dyn crate::events::Clock>,
}

impl BackgroundSettings {
    fn from_args(serve: &ServeArgs, clock: Arc<dyn crate::events::Clock>) -> Self {
        Self {
            certificate_check_interval: serve.certificate_check_interval,
            clock,
            event_retention: serve.event_retention,
            event_purge_interval: serve.event_purge_interval,
            metering: crate::metering::retention::Retention {
                minutes: serve.metering_minute_retention,
                hours: serve.metering_hour_retention,
            },
            metering_purge_interval: serve.metering_purge_interval,
            console_session_purge_interval: serve.console_session_purge_interval,
        }
    }
}

/// The leader's work: the reconciler, domain re-checks, alert evaluation, certificate
/// renewal and the purges.
fn spawn_background(
    work: &mut tokio::task::JoinSet<()>,
    state: &Arc<AppState>,
    orchestrator: Arc<dyn Orchestrator>,
    settings: &BackgroundSettings,
) {
    let store = state.store.clone();
    let reconciler = Reconciler::new(store.clone(), orchestrator, state.reconcile.clone())
        .with_metrics(state.metrics.clone())
        .with_applied(state.applied.clone());
    work.spawn(reconciler.run());
    work.spawn(crate::domains::run_rechecks(state.clone()));
    work.spawn(crate::alerts::evaluate::run(
        store.clone(),
        state.alerts.clone(),
    ));
    work.spawn(crate::events::run_purger(
        store.clone(),
        Arc::new(crate::events::SystemClock),
        settings.event_retention,
        settings.event_purge_interval,
    ));
    work.spawn(crate::metering::retention::run_purger(
        store.clone(),
        Arc::new(crate::events::SystemClock),
        settings.metering,
        settings.metering_purge_interval,
    ));
    work.spawn(crate::signin::run_purger(
        store.clone(),
        state.reconcile.clone(),
        settings.console_session_purge_interval,
    ));
    work.spawn(crate::certificates::run(
        state.clone(),
        settings.clock.clone(),
        settings.certificate_check_interval,
    ));
    work.spawn(http::idempotency::run_purger(
        store,
        settings.event_purge_interval,
    ));
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

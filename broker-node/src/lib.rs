//! Skyport broker node: rumqttd as the MQTT engine behind Skyport's own
//! TCP, TLS, WebSocket and WSS listeners, plus the deployment HTTP API.

pub mod api;
pub mod broker;
pub mod cli;
pub mod config;
mod engine;
pub mod front;
pub mod metering;
pub mod mqtt;
pub mod reload;
pub mod rules;
pub mod security;
mod store;
pub mod telemetry;

use std::future::IntoFuture;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tracing::info;

use config::{Config, ConfigError};
use front::tls::TlsError;
use front::BindError;

/// How long a connection may take to send CONNECT unless the config says otherwise.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the node could not start or had to stop; each kind has its exit code.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Security(#[from] security::SecurityError),
    #[error(transparent)]
    Reload(#[from] reload::ReloadError),
    #[error(transparent)]
    Broker(#[from] broker::StartError),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

impl RunError {
    /// Process exit code: 2 bad configuration, 3 bind failure, 1 anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Config(_)
            | RunError::Tls(_)
            | RunError::Security(_)
            | RunError::Reload(_) => 2,
            RunError::Bind(_) => 3,
            RunError::Broker(_) | RunError::Signals(_) => 1,
        }
    }
}

/// Runs the node until SIGTERM or SIGINT (`Ok`) or a fatal error.
#[tracing::instrument(skip_all, fields(deployment.id = %config.deployment_id))]
pub async fn run(config: Config) -> Result<(), RunError> {
    let mut sigterm = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;

    let api_listener = front::bind("api", config.listeners.api).await?;
    let mqtt_listeners = front::bind_all(&config.listeners).await?;

    // Metering reports are the platform's traffic, not the deployment's: they never leave
    // from the deployment's egress address.
    let metering = metering::Metering::new(config.metering_settings()?, reqwest::Client::new());
    let security = security::Security::open(&config.data_dir())?;
    let reloader = reload::Reloader::start(&config, security.clone())?;
    let tls = reloader.tls();
    let internal_endpoint = reloader.internal_endpoint();
    let reload = reloader.handle();
    let reloading = tokio::spawn(reloader.run());

    let (broker, background) = broker::Broker::open(
        &config.data_dir(),
        metering.meter.clone(),
        security.clone(),
        broker::Options {
            max_sessions: config.limits.max_sessions,
            max_tps: config.limits.max_tps,
            // Benchmarks only: measures the node without its metering counters.
            counting: std::env::var("SKYPORT_BROKER_COUNTING").map_or(true, |v| v != "off"),
            connect_timeout: config
                .limits
                .connect_timeout_ms
                .map_or(CONNECT_TIMEOUT, Duration::from_millis),
        },
    )?;

    broker
        .rules
        .start(broker.clone(), rule_settings(&config.limits))
        .await;

    let readiness = api::Readiness::default().with_reload(reload);
    info!(addr = %config.listeners.api, "serving the deployment API");
    let api_server = tokio::spawn(
        axum::serve(
            api_listener,
            api::router(readiness.clone(), security.clone(), broker.clone())
                .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .into_future(),
    );
    let sampler = tokio::spawn(metering.clone().run_sampler());
    let reporter = tokio::spawn(metering.clone().run_reporter());
    let mirror = front::internal::Mirror {
        ports: mqtt_listeners
            .iter()
            .filter_map(|(kind, l)| Some((*kind, l.local_addr().ok()?.port())))
            .collect(),
        tls: tls.clone(),
        broker: broker.clone(),
    };
    let fronts = front::serve_all(mqtt_listeners, tls, broker.clone());
    let internal = tokio::spawn(front::internal::supervise(internal_endpoint, mirror));
    readiness.set_ready();

    tokio::select! {
        _ = sigterm.recv() => info!("SIGTERM received, shutting down"),
        _ = sigint.recv() => info!("SIGINT received, shutting down"),
    }
    drop(fronts);
    internal.abort();
    // A planned stop: clients are told, persistent sessions are already in the store.
    broker.shutdown(SHUTDOWN_DISCONNECT).await;
    broker.store.write_durable(Vec::new()).await;
    broker.rules.sync().await;
    api_server.abort();
    reloading.abort();
    background.abort();
    reporter.abort();
    sampler.abort();
    metering.shutdown().await;
    Ok(())
}

/// The rule engine's settings from the config's limits.
fn rule_settings(limits: &skyport_settings::config::Limits) -> rules::Settings {
    let default = rules::buffer::Limits::default();
    rules::Settings {
        buffer: rules::buffer::Limits {
            max_messages: limits
                .rule_buffer_messages
                .map_or(default.max_messages, |n| n.max(1) as usize),
            max_bytes: limits
                .rule_buffer_bytes
                .map_or(default.max_bytes, |n| n.max(1) as usize),
        },
        plan: limits.plan.as_deref().and_then(rules::plan::Plan::named),
    }
}

/// How long clients get to be disconnected when the node stops.
const SHUTDOWN_DISCONNECT: Duration = Duration::from_secs(3);

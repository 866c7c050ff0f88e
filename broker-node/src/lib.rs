//! Skyport broker node: rumqttd as the MQTT engine behind Skyport's own
//! TCP, TLS, WebSocket and WSS listeners, plus the deployment HTTP API.

pub mod api;
pub mod cli;
pub mod config;
mod engine;
pub mod front;
pub mod metering;
pub mod publisher;
pub mod reload;
pub mod security;
pub mod sessions;
pub mod telemetry;

use std::future::IntoFuture;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info};

use config::{Config, ConfigError};
use engine::{Engine, EngineError};
use front::proxy::Upstreams;
use front::tls::TlsError;
use front::BindError;

/// How long rumqttd may take to answer on its internal listeners.
const ENGINE_START_TIMEOUT: Duration = Duration::from_secs(30);

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
    Engine(#[from] EngineError),
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
            RunError::Engine(_) | RunError::Signals(_) => 1,
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
    let publisher = publisher::Publisher::new(metering.meter.clone());
    let clients = front::clients::Clients::default();
    let subscriptions = front::clients::Subscriptions::default();
    let pending = sessions::Pending::default();
    let security = security::Security::open(&config.data_dir())?;
    let reloader = reload::Reloader::start(&config, security.clone())?;
    let tls = reloader.tls();
    let internal_endpoint = reloader.internal_endpoint();
    let reloading = tokio::spawn(reloader.run());
    let readiness = api::Readiness::default();
    info!(addr = %config.listeners.api, "serving the deployment API");
    let api_server = tokio::spawn(
        axum::serve(
            api_listener,
            api::router(
                readiness.clone(),
                security.clone(),
                api::Node {
                    publisher: publisher.clone(),
                    clients: clients.clone(),
                    subscriptions: subscriptions.clone(),
                    meter: metering.meter.clone(),
                    pending: pending.clone(),
                },
            )
            .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .into_future(),
    );

    let (engine, stopped) = Engine::start()?;
    let stopped = stopped.wait();
    tokio::pin!(stopped);
    tokio::select! {
        ready = engine.wait_ready(ENGINE_START_TIMEOUT) => ready?,
        e = &mut stopped => return Err(e.into()),
    }
    publisher.attach(engine.v4_addr());
    let data_dir = config.data_dir();
    let settings = security.clone();
    let journal = |publisher, meter, subscriptions, pending| sessions::Node {
        data_dir: &data_dir,
        limit: settings.settings().sessions.max_queued_messages,
        meter,
        subscriptions,
        publisher,
        pending,
    };
    let restored = sessions::restore(journal(
        &publisher,
        &metering.meter,
        &subscriptions,
        &pending,
    ))
    .await;
    if restored > 0 {
        info!(sessions = restored, "persistent sessions restored");
    }
    let (events, events_task) = front::events::Events::start(publisher.clone());
    let keeper = tokio::spawn(sessions::run_keeper(
        publisher.clone(),
        metering.meter.clone(),
        pending.clone(),
        events.clone(),
        security.clone(),
    ));
    let expiry = tokio::spawn(end_expired_sessions(
        publisher.clone(),
        metering.meter.clone(),
        subscriptions.clone(),
        pending.clone(),
    ));
    let sampler = tokio::spawn(metering.clone().run_sampler());
    let reporter = tokio::spawn(metering.clone().run_reporter());
    let upstreams = Upstreams {
        v4: engine.v4_addr(),
        v5: engine.v5_addr(),
        meter: metering.meter.clone(),
        security,
        // Benchmarks only: measures the node without its metering counters.
        counting: std::env::var("SKYPORT_BROKER_COUNTING").map_or(true, |v| v != "off"),
        clients: clients.clone(),
        events,
        subscriptions: subscriptions.clone(),
        max_sessions: config.limits.max_sessions,
        throttle: config.limits.max_tps.and_then(front::proxy::throttle),
        pending: pending.clone(),
    };
    info!(v4 = %upstreams.v4, v5 = %upstreams.v5, "MQTT engine ready");
    let mirror = front::internal::Mirror {
        ports: mqtt_listeners
            .iter()
            .filter_map(|(kind, l)| Some((*kind, l.local_addr().ok()?.port())))
            .collect(),
        tls: tls.clone(),
        upstreams: upstreams.clone(),
    };
    let fronts = front::serve_all(mqtt_listeners, tls, upstreams);
    let internal = tokio::spawn(front::internal::supervise(internal_endpoint, mirror));
    readiness.set_ready();

    let outcome = tokio::select! {
        _ = sigterm.recv() => { info!("SIGTERM received, shutting down"); Ok(()) }
        _ = sigint.recv() => { info!("SIGINT received, shutting down"); Ok(()) }
        e = &mut stopped => { error!(error = %e, "MQTT engine stopped"); Err(e.into()) }
        e = engine.watch() => { error!(error = %e, "MQTT engine stopped answering"); Err(e.into()) }
    };
    // Close the listeners before the process exits; rumqttd itself cannot be stopped.
    drop(fronts);
    keeper.abort();
    if outcome.is_ok() {
        // A planned stop: carry persistent sessions over to the next start.
        clients.disconnect_all(SHUTDOWN_DISCONNECT).await;
        match sessions::save(journal(
            &publisher,
            &metering.meter,
            &subscriptions,
            &pending,
        ))
        .await
        {
            Ok(saved) => info!(sessions = saved, "persistent sessions saved"),
            Err(e) => error!(error = %e, "cannot save persistent sessions"),
        }
    }
    internal.abort();
    api_server.abort();
    reloading.abort();
    expiry.abort();
    events_task.abort();
    reporter.abort();
    sampler.abort();
    metering.shutdown().await;
    outcome
}

/// How long clients get to be disconnected when the node stops.
const SHUTDOWN_DISCONNECT: Duration = Duration::from_secs(3);

/// How often expired persistent sessions are looked for.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);

/// Ends, in the engine, the persistent sessions whose expiry has passed (the engine itself
/// would keep them forever): their subscriptions and queued messages go, and they stop
/// counting as sessions.
async fn end_expired_sessions(
    publisher: publisher::Publisher,
    meter: std::sync::Arc<metering::Meter>,
    subscriptions: front::clients::Subscriptions,
    pending: sessions::Pending,
) {
    let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
    loop {
        tick.tick().await;
        for client_id in meter.expired(std::time::Instant::now()) {
            match publisher.end_session(&client_id).await {
                Ok(()) => {
                    meter.forget_session(&client_id);
                    subscriptions.forget(&client_id);
                    pending.forget(&client_id);
                    info!(%client_id, "persistent session expired");
                }
                Err(e) => error!(%client_id, error = %e, "cannot end an expired session"),
            }
        }
    }
}

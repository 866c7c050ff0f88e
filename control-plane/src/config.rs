//! Command line and environment: every option is a flag with a `SKYPORT_…` twin.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

/// Skyport: a self-hostable managed-MQTT cloud.
///
/// Without a subcommand, runs the control plane: the REST API under /api/v1 and the
/// reconciler that runs one MQTT broker per deployment.
#[derive(Debug, Parser)]
#[command(name = "skyport", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane (the default).
    Serve,
    /// Apply or revert database migrations, then exit.
    Migrate {
        #[command(subcommand)]
        direction: Option<MigrateDirection>,
    },
    /// Print the OpenAPI document of the REST API (as committed in openapi/skyport.json).
    Openapi,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum MigrateDirection {
    /// Apply every pending migration (the default).
    Up,
    /// Revert migrations newer than --target (0 reverts everything).
    Down {
        /// Version to revert down to; 0 reverts all migrations.
        #[arg(long, default_value_t = 0)]
        target: i64,
    },
}

/// Options shared by every subcommand.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Directory for Skyport's state: the SQLite database, the admin token and each local
    /// deployment's configuration, certificates and logs.
    #[arg(long, env = "SKYPORT_DATA_DIR", default_value = "./skyport-data", global = true)]
    pub data_dir: PathBuf,

    /// Database URL: `sqlite://PATH` or `postgres://USER@HOST/DB`. Defaults to SQLite at
    /// DATA_DIR/skyport.db.
    #[arg(long, env = "SKYPORT_DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Log format on stderr.
    #[arg(long, env = "SKYPORT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

impl CommonArgs {
    /// The database URL, defaulting to SQLite in the data dir.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!("sqlite://{}", self.data_dir.join("skyport.db").display())
        })
    }
}

/// Options of the control-plane server.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address the REST API listens on (port 0 picks a free port).
    #[arg(long, env = "SKYPORT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Where deployments' brokers run.
    #[arg(long, env = "SKYPORT_ORCHESTRATOR", value_enum, default_value_t = OrchestratorKind::Local)]
    pub orchestrator: OrchestratorKind,

    /// Admin token (bearer) for managing projects and API keys. When unset, one is
    /// generated on first start, kept in DATA_DIR/admin-token and printed at start.
    #[arg(long, env = "SKYPORT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<SecretString>,

    /// Host name or address clients use to reach local brokers; it goes into endpoint URLs
    /// and server certificates.
    #[arg(long, env = "SKYPORT_PUBLIC_HOST", default_value = "127.0.0.1")]
    pub public_host: String,

    /// Address local brokers listen on.
    #[arg(long, env = "SKYPORT_BROKER_LISTEN_IP", default_value = "127.0.0.1")]
    pub broker_listen_ip: IpAddr,

    /// How long deployment events are kept before they are purged (e.g. `7d`, `36h`).
    #[arg(long, env = "SKYPORT_EVENT_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub event_retention: std::time::Duration,

    /// How often expired events are purged.
    #[arg(long, env = "SKYPORT_EVENT_PURGE_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub event_purge_interval: std::time::Duration,

    /// The skyport-broker executable for the local orchestrator. Defaults to the one next
    /// to this executable.
    #[arg(long, env = "SKYPORT_BROKER_BIN")]
    pub broker_bin: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OrchestratorKind {
    /// Each deployment's broker is a child process on this host.
    Local,
    /// Each deployment is a set of Kubernetes objects (not in this build yet).
    Kubernetes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

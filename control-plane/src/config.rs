//! Command line and environment: every option is a flag with a `SKYPORT_…` twin.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

use crate::orchestrator::kubernetes::{InternalLbProvider, KubernetesSettings, NatProvider};

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
    /// Print the web console's typed client (a JavaScript module) for an OpenAPI
    /// document: `openapi/skyport.json` gives `control-plane/console/api.gen.js`,
    /// `openapi/broker.json` gives `control-plane/console/broker.gen.js`.
    ConsoleClient {
        /// The OpenAPI document (JSON) to generate the client from.
        spec: PathBuf,
    },
    /// Manage console users (people who sign in to the web console), then exit.
    Users {
        #[command(subcommand)]
        action: UsersCommand,
    },
    /// Print, as multi-document YAML, the Kubernetes objects the kubernetes orchestrator
    /// would apply for a deployment, then exit.
    ///
    /// The objects are exactly the driver's, with two values only a cluster and the
    /// control plane's database can supply: the TLS Secret holds a certificate from a
    /// throwaway CA generated for this run (the driver uses Skyport's own CA), and owner
    /// references carry the all-zero UID where the API server assigns the root
    /// ConfigMap's. The pod template's content hash follows from the certificate.
    RenderManifests {
        /// JSON of the deployment, as `GET /api/v1/deployments/{id}` returns it.
        #[arg(long)]
        deployment_file: PathBuf,

        #[command(flatten)]
        kube: KubeArgs,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum UsersCommand {
    /// Add a console user. The password is read from stdin with --password-stdin;
    /// otherwise one is generated and printed once.
    Add {
        /// The user's e-mail address, which they sign in with.
        email: String,
        /// Read the password from the first line of stdin (at least 10 characters).
        #[arg(long)]
        password_stdin: bool,
        /// Also make the user a member of this project (its id).
        #[arg(long)]
        project: Option<String>,
        /// The user's role in --project.
        #[arg(long, value_parser = ["owner", "developer", "viewer"], default_value = "developer", requires = "project")]
        role: String,
    },
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
    #[arg(
        long,
        env = "SKYPORT_DATA_DIR",
        default_value = "./skyport-data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// Database URL: `sqlite://PATH` or `postgres://USER@HOST/DB`. Defaults to SQLite at
    /// DATA_DIR/skyport.db.
    #[arg(
        long,
        env = "SKYPORT_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// Log format on stderr.
    #[arg(long, env = "SKYPORT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

impl CommonArgs {
    /// The database URL, defaulting to SQLite in the data dir.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("skyport.db").display()))
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

    /// Key encrypting secrets at rest (custom TLS private keys): base64 of 32 random
    /// bytes (`openssl rand -base64 32`). When unset, one is generated on first start and
    /// kept in DATA_DIR/secret-key. Every replica must use the same key.
    #[arg(long, env = "SKYPORT_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<SecretString>,

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

    /// How often the leader looks for certificates to renew (Skyport-issued ones, 30 days
    /// before they expire) and uploaded ones nearing expiry.
    #[arg(long, env = "SKYPORT_CERTIFICATE_CHECK_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub certificate_check_interval: std::time::Duration,

    /// TEST ONLY: moves the clock certificate renewal reads forward by this much (e.g.
    /// `340d`), to see renewals happen without waiting a year. Never set in production.
    #[arg(long, env = "SKYPORT_CLOCK_OFFSET", value_parser = humantime::parse_duration, hide = true)]
    pub clock_offset: Option<std::time::Duration>,

    /// Base URL at which brokers reach this control plane's internal API (where they send
    /// usage reports). Defaults to `http://` and the address the API listens on, with
    /// 127.0.0.1 for an unspecified address.
    #[arg(long, env = "SKYPORT_INTERNAL_URL")]
    pub internal_url: Option<String>,

    /// How long a write that the running broker must apply (app keys, authentication,
    /// TLS, domains, ...) waits for it before answering 202 with `applied: false`.
    #[arg(long, env = "SKYPORT_APPLY_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub apply_timeout: std::time::Duration,

    /// How often the leader evaluates alert rules (e.g. `30s`).
    #[arg(long, env = "SKYPORT_ALERT_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub alert_interval: std::time::Duration,

    /// SMTP server for email alert channels: `smtp://[user:password@]host[:port]`
    /// (`?tls=required` for STARTTLS) or `smtps://…`. Without it, email channels cannot
    /// be created.
    #[arg(long, env = "SKYPORT_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SecretString>,

    /// `From` address of alert emails.
    #[arg(
        long,
        env = "SKYPORT_SMTP_FROM",
        default_value = "Skyport <skyport@localhost>"
    )]
    pub smtp_from: String,

    /// How often each broker reports its usage (e.g. `10s`).
    #[arg(long, env = "SKYPORT_METERING_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub metering_interval: std::time::Duration,

    /// How long per-minute usage is kept (e.g. `7d`).
    #[arg(long, env = "SKYPORT_METERING_MINUTE_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub metering_minute_retention: std::time::Duration,

    /// How long hourly usage is kept (e.g. `90d`); monthly usage is kept for ever.
    #[arg(long, env = "SKYPORT_METERING_HOUR_RETENTION", default_value = "90d", value_parser = humantime::parse_duration)]
    pub metering_hour_retention: std::time::Duration,

    /// How often expired usage rows are purged.
    #[arg(long, env = "SKYPORT_METERING_PURGE_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub metering_purge_interval: std::time::Duration,

    /// The skyport-broker executable for the local orchestrator. Defaults to the one next
    /// to this executable.
    #[arg(long, env = "SKYPORT_BROKER_BIN")]
    pub broker_bin: Option<PathBuf>,

    /// DNS server (`ADDR:PORT`) that custom domains are verified against. Defaults to
    /// the system's resolvers.
    #[arg(long, env = "SKYPORT_DNS_SERVER")]
    pub dns_server: Option<SocketAddr>,

    /// First wait before a pending custom domain's DNS record is looked up again in the
    /// background; each further miss doubles it, up to an hour.
    #[arg(long, env = "SKYPORT_DNS_RECHECK_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub dns_recheck_interval: std::time::Duration,

    /// Fixed egress address(es) of NAT gateways, shown to deployment owners (repeat, or
    /// comma-separate). The local orchestrator binds brokers' outbound sockets to the
    /// first; defaults to 127.0.0.2 there. On Kubernetes these are the NAT's public
    /// addresses; without them NAT gateways cannot be created.
    #[arg(
        long = "nat-egress-address",
        env = "SKYPORT_NAT_EGRESS_ADDRESSES",
        value_delimiter = ','
    )]
    pub nat_egress_addresses: Vec<IpAddr>,

    /// Private address of internal endpoints on the local orchestrator (brokers listen
    /// there on their public ports, for the allowed ranges only); defaults to 127.0.0.3.
    /// On Kubernetes the internal load balancer assigns it.
    #[arg(long, env = "SKYPORT_INTERNAL_ADDRESS")]
    pub internal_address: Option<IpAddr>,

    /// How long a web-console sign-in lasts (e.g. `12h`).
    #[arg(long, env = "SKYPORT_CONSOLE_SESSION_TTL", default_value = "12h", value_parser = humantime::parse_duration)]
    pub console_session_ttl: std::time::Duration,

    /// How often expired web-console sessions (and the app keys they made) are purged.
    #[arg(long, env = "SKYPORT_CONSOLE_SESSION_PURGE_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub console_session_purge_interval: std::time::Duration,

    /// How long an account is refused sign-in (429) after 10 wrong passwords in a row.
    #[arg(long, env = "SKYPORT_SIGNIN_LOCKOUT", default_value = "15m", value_parser = humantime::parse_duration)]
    pub signin_lockout: std::time::Duration,

    /// Mark the session cookie `Secure` on every response. Without it, the cookie is
    /// `Secure` when the request came over TLS as a proxy reports it
    /// (`X-Forwarded-Proto: https`).
    #[arg(long, env = "SKYPORT_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// Most deployments a project may have, unless the admin set the project's own
    /// (`PUT /api/v1/projects/{id}/quota`). Creating one more is 409 `quota_exceeded`.
    #[arg(long, env = "SKYPORT_DEPLOYMENT_QUOTA", default_value_t = 20, value_parser = clap::value_parser!(i64).range(0..=100_000))]
    pub deployment_quota: i64,

    /// Rate limit of `/api/v1` per credential (API key, admin token, console session):
    /// `N/DURATION` allows N requests at once, refilled evenly over DURATION (e.g.
    /// `200/10s`); `off` disables it. Beyond it: 429 with `Retry-After`.
    #[arg(long, env = "SKYPORT_RATE_LIMIT", default_value = "200/10s")]
    pub rate_limit: crate::http::rate_limit::RateLimitSetting,

    /// How replicas elect the one that runs the reconciler and background work: `auto`
    /// is a Kubernetes Lease with the kubernetes orchestrator, a PostgreSQL advisory
    /// lock on PostgreSQL, and none (this replica leads) on SQLite.
    #[arg(long, env = "SKYPORT_LEADER_ELECTION", value_enum, default_value_t = LeaderElectionKind::Auto)]
    pub leader_election: LeaderElectionKind,

    /// Name of the Lease used for leader election on Kubernetes.
    #[arg(long, env = "SKYPORT_LEADER_LEASE", default_value = "skyport-leader")]
    pub leader_lease: String,

    /// Namespace of the leader Lease; defaults to the control plane's own (in-cluster)
    /// or the kubeconfig context's.
    #[arg(long, env = "SKYPORT_LEADER_LEASE_NAMESPACE")]
    pub leader_lease_namespace: Option<String>,

    /// This replica's name in leader election (`/api/v1/readyz` shows the leader's);
    /// defaults to `HOSTNAME:PID` (the pod name on Kubernetes).
    #[arg(long, env = "SKYPORT_REPLICA_ID")]
    pub replica_id: Option<String>,

    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LeaderElectionKind {
    /// Lease on Kubernetes, advisory lock on PostgreSQL, none on SQLite.
    Auto,
    /// This replica always leads: only for a single replica.
    None,
    /// A PostgreSQL session-level advisory lock.
    Postgres,
    /// A Kubernetes `coordination.k8s.io/v1` Lease.
    Kubernetes,
}

/// Options of the kubernetes orchestrator (and of `render-manifests`). The cluster is
/// the in-cluster configuration, or KUBECONFIG's current context.
#[derive(Debug, Clone, Args)]
pub struct KubeArgs {
    /// Namespace holding every deployment's objects. It must exist and be dedicated to
    /// this control plane: objects there of deployments unknown to it are deleted.
    #[arg(long, env = "SKYPORT_KUBE_NAMESPACE", default_value = "skyport")]
    pub kube_namespace: String,

    /// Container image of the broker pods.
    #[arg(long, env = "SKYPORT_BROKER_IMAGE", default_value = concat!("skyport/skyport-broker:", env!("CARGO_PKG_VERSION")))]
    pub broker_image: String,

    /// Storage class of each deployment's session-data volume (the cluster's default when
    /// unset). Applies to new deployments: a volume keeps the class it was created with.
    #[arg(long, env = "SKYPORT_STORAGE_CLASS")]
    pub storage_class: Option<String>,

    /// Size of each deployment's session-data volume. Applies to new deployments.
    #[arg(long, env = "SKYPORT_BROKER_STORAGE_SIZE", default_value = "1Gi")]
    pub broker_storage_size: String,

    /// Cloud provider of internal load balancers (for the internal endpoint add-on).
    #[arg(long, env = "SKYPORT_INTERNAL_LB_PROVIDER", value_enum)]
    pub internal_lb_provider: Option<InternalLbProvider>,

    /// How a deployment's NAT gateway is realised: `node-pool` (the pod runs on nodes
    /// whose subnet egresses through the cloud NAT; label and taint `skyport.io/egress=nat`)
    /// or `calico` (Calico egress gateways labelled `skyport.io/egress-gateway=true`).
    #[arg(long, env = "SKYPORT_NAT_PROVIDER", value_enum, default_value_t = NatProvider::NodePool)]
    pub nat_provider: NatProvider,

    /// Base domain of deployments' host names: each deployment is reached at
    /// `<id>.<base-domain>`, which its server certificate covers and its Service asks
    /// external-dns to publish. Unset, clients use the load balancer's address.
    #[arg(long, env = "SKYPORT_BASE_DOMAIN")]
    pub base_domain: Option<String>,
}

impl KubeArgs {
    /// The orchestrator's settings.
    pub fn settings(&self) -> KubernetesSettings {
        KubernetesSettings {
            namespace: self.kube_namespace.clone(),
            broker_image: self.broker_image.clone(),
            storage_class: self.storage_class.clone(),
            storage_size: self.broker_storage_size.clone(),
            internal_lb_provider: self.internal_lb_provider,
            nat_provider: self.nat_provider,
            base_domain: self.base_domain.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OrchestratorKind {
    /// Each deployment's broker is a child process on this host.
    Local,
    /// Each deployment is a set of Kubernetes objects in --kube-namespace.
    Kubernetes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

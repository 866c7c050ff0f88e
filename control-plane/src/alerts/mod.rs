//! Alerts: per-project rules with thresholds on deployments' load, status, certificates
//! and domains, evaluated by the leader, notified to webhooks and email.
//!
//! - [`rule`]: rules, conditions and channels (domain types that parse at the edge);
//! - [`store`]: their storage, and the state of active alerts;
//! - [`evaluate`]: the leader's evaluation loop and the alert state machine;
//! - [`channel`]: delivery (signed webhooks, SMTP).
//!
//! `docs/control-plane.md` ("Alerts") is the user's view.

pub mod channel;
pub mod evaluate;
pub mod rule;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

pub use channel::{Mailer, Notifier};
pub use rule::{
    expires_within, AlertChannel, AlertRule, AlertState, ChannelTarget, Condition, Invalid,
};
pub use store::AlertStore;

/// What evaluation and the API need of alerts.
pub struct Alerts {
    pub notifier: Arc<Notifier>,
    /// How often the leader evaluates the rules.
    pub interval: Duration,
    /// A usage report older than this says nothing of the load now (the deployment
    /// stopped reporting): sessions and TPS count as 0.
    pub load_stale_after: Duration,
}

impl Alerts {
    /// From the operator's settings: `--alert-interval`, `--smtp-url`, `--smtp-from`, and
    /// the metering interval (reports older than three intervals are stale).
    pub fn from_args(
        serve: &crate::config::ServeArgs,
        secret_key: Arc<crate::encryption::SecretKey>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret;
        let mailer = serve
            .smtp_url
            .as_ref()
            .map(|url| Mailer::new(url.expose_secret(), &serve.smtp_from))
            .transpose()?;
        Ok(Self {
            notifier: Arc::new(Notifier::new(mailer, secret_key, metrics)?),
            interval: serve.alert_interval,
            load_stale_after: serve.metering_interval * 3 + Duration::from_secs(5),
        })
    }
}

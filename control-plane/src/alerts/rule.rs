//! Alert rules and channels: what is watched, at which threshold, and where alerts go.
//! Values parse at the edge: once a [`Condition`] or [`ChannelTarget`] exists it is valid.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::Id;

/// Most channels one rule notifies.
pub const MAX_CHANNELS_PER_RULE: usize = 16;
/// Most recipients of one email channel.
pub const MAX_RECIPIENTS: usize = 16;
/// Longest repeat interval, in seconds (a week).
pub const MAX_REPEAT_SECONDS: i64 = 7 * 24 * 3600;

/// What a rule watches, on every deployment it applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Sessions (connected plus persistent offline) reach `percent` of the tier's
    /// `max_sessions`, as in the deployment's latest usage report.
    Sessions {
        /// 1 to 1000.
        #[schema(minimum = 1, maximum = 1000)]
        percent: i64,
    },
    /// Messages per second reach `percent` of the tier's `max_tps` (the busiest second
    /// of the deployment's latest usage report).
    Tps {
        /// 1 to 1000.
        #[schema(minimum = 1, maximum = 1000)]
        percent: i64,
    },
    /// Traffic (bytes in plus bytes out) in the last `window_minutes` whole minutes
    /// (the current one included) reaches `bytes`.
    Traffic {
        /// 1 to 10^15.
        #[schema(minimum = 1)]
        bytes: i64,
        /// 1 to 1440.
        #[schema(minimum = 1, maximum = 1440)]
        window_minutes: i64,
    },
    /// The deployment has not been `running` for `minutes` (0 to 10080). Deployments
    /// stopped on purpose count only with `include_stopped`.
    DeploymentNotRunning {
        #[schema(minimum = 0, maximum = 10080)]
        minutes: i64,
        #[serde(default)]
        include_stopped: bool,
    },
    /// An uploaded certificate (the deployment's custom TLS certificate, or a custom
    /// domain's) expires within `days` (1 to 365), or has expired.
    CertificateExpiring {
        #[schema(minimum = 1, maximum = 365)]
        days: i64,
    },
    /// A custom domain is still waiting for its DNS record after `checks` (1 to 1000)
    /// DNS checks.
    DomainVerificationFailing {
        #[schema(minimum = 1, maximum = 1000)]
        checks: i64,
    },
}

/// Why a rule or channel was refused: a stable code and the field it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub field: String,
    pub detail: String,
}

impl Invalid {
    pub fn new(code: &'static str, field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            code,
            field: field.into(),
            detail: detail.into(),
        }
    }
}

fn bounded(field: &str, value: i64, min: i64, max: i64) -> Result<(), Invalid> {
    if (min..=max).contains(&value) {
        return Ok(());
    }
    Err(Invalid::new(
        "invalid_condition",
        format!("condition.{field}"),
        format!("condition.{field} must be between {min} and {max}, got {value}"),
    ))
}

impl Condition {
    /// Checks the bounds of every parameter.
    pub fn validate(self) -> Result<Self, Invalid> {
        match &self {
            Condition::Sessions { percent } | Condition::Tps { percent } => {
                bounded("percent", *percent, 1, 1000)?
            }
            Condition::Traffic {
                bytes,
                window_minutes,
            } => {
                bounded("bytes", *bytes, 1, 1_000_000_000_000_000)?;
                bounded("window_minutes", *window_minutes, 1, 1440)?;
            }
            Condition::DeploymentNotRunning { minutes, .. } => {
                bounded("minutes", *minutes, 0, 10080)?
            }
            Condition::CertificateExpiring { days } => bounded("days", *days, 1, 365)?,
            Condition::DomainVerificationFailing { checks } => bounded("checks", *checks, 1, 1000)?,
        }
        Ok(self)
    }

    /// The condition's name, as in its `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Condition::Sessions { .. } => "sessions",
            Condition::Tps { .. } => "tps",
            Condition::Traffic { .. } => "traffic",
            Condition::DeploymentNotRunning { .. } => "deployment_not_running",
            Condition::CertificateExpiring { .. } => "certificate_expiring",
            Condition::DomainVerificationFailing { .. } => "domain_verification_failing",
        }
    }

    /// How long the condition must hold before the alert fires.
    pub fn hold(&self) -> chrono::Duration {
        match self {
            Condition::DeploymentNotRunning { minutes, .. } => chrono::Duration::minutes(*minutes),
            _ => chrono::Duration::zero(),
        }
    }
}

/// Whether a certificate valid until `not_after` has expired, or expires within
/// `within`, as of `now`. The `certificate_expiring` condition; certificate renewal uses
/// it too.
pub fn expires_within(
    not_after: DateTime<Utc>,
    now: DateTime<Utc>,
    within: chrono::Duration,
) -> bool {
    not_after
        <= now
            .checked_add_signed(within)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Where a channel sends alerts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelTarget {
    /// `POST`s each notification as JSON to `url`, signed with the channel's secret
    /// (`X-Skyport-Signature: sha256=<hex HMAC-SHA256 of "<X-Skyport-Timestamp>.<body>">`).
    Webhook {
        /// An absolute `http` or `https` URL, without credentials.
        url: String,
    },
    /// Mails each notification to `to` through the operator's SMTP server.
    Email {
        /// 1 to 16 addresses.
        to: Vec<String>,
    },
}

impl ChannelTarget {
    /// Checks the URL or the addresses.
    pub fn validate(self) -> Result<Self, Invalid> {
        match &self {
            ChannelTarget::Webhook { url } => {
                if url.len() > 2048 {
                    return Err(Invalid::new(
                        "invalid_url",
                        "url",
                        "the URL is longer than 2048 bytes",
                    ));
                }
                crate::domain::auth_chain::check_url(url)
                    .map_err(|detail| Invalid::new("invalid_url", "url", detail))?;
            }
            ChannelTarget::Email { to } => {
                if to.is_empty() || to.len() > MAX_RECIPIENTS {
                    return Err(Invalid::new(
                        "invalid_to",
                        "to",
                        format!("give 1 to {MAX_RECIPIENTS} addresses"),
                    ));
                }
                for (i, address) in to.iter().enumerate() {
                    address.parse::<lettre::Address>().map_err(|e| {
                        Invalid::new(
                            "invalid_to",
                            format!("to[{i}]"),
                            format!("`{address}` is not an email address: {e}"),
                        )
                    })?;
                }
            }
        }
        Ok(self)
    }

    /// The channel's type, as in its `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelTarget::Webhook { .. } => "webhook",
            ChannelTarget::Email { .. } => "email",
        }
    }
}

/// A project's alert rule.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRule {
    pub id: Id,
    pub project_id: Id,
    pub name: String,
    /// The one deployment it watches; `None`: every deployment of the project.
    pub deployment_id: Option<Id>,
    pub condition: Condition,
    /// Channels notified when it fires, repeats and resolves.
    pub channel_ids: Vec<Id>,
    /// Notify again this often while it stays active; `None`: once.
    pub repeat_interval_seconds: Option<i64>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A project's alert channel; a webhook's secret only sealed.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertChannel {
    pub id: Id,
    pub project_id: Id,
    pub name: String,
    pub target: ChannelTarget,
    /// The webhook's signing secret, sealed with the control plane's secret key (the
    /// channel id as context).
    pub secret_ciphertext: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One rule's alert on one subject (a deployment, or one of its certificates or
/// domains): pending while the condition holds for less than the rule asks, firing
/// after. Gone once the condition ends.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertState {
    pub rule_id: Id,
    /// `<deployment id>`, `<deployment id>/tls` or `<deployment id>/domain/<name>`.
    pub subject: String,
    pub project_id: Id,
    pub deployment_id: Id,
    /// When the condition was first seen true.
    pub since: DateTime<Utc>,
    pub fired_at: Option<DateTime<Utc>>,
    pub last_notified_at: Option<DateTime<Utc>>,
    /// Notifications sent for it (the first and the repeats).
    pub notifications: i64,
    /// What the last evaluation saw.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_strictly_and_check_bounds() {
        let c: Condition = serde_json::from_str(r#"{"kind":"sessions","percent":80}"#).unwrap();
        assert_eq!(c.clone().validate().unwrap(), c);
        assert!(
            serde_json::from_str::<Condition>(r#"{"kind":"sessions","percent":80,"x":1}"#).is_err()
        );
        assert!(serde_json::from_str::<Condition>(r#"{"kind":"nope"}"#).is_err());
        let zero = Condition::Tps { percent: 0 }.validate().unwrap_err();
        assert_eq!(
            (zero.code, zero.field.as_str()),
            ("invalid_condition", "condition.percent")
        );
        let c: Condition =
            serde_json::from_str(r#"{"kind":"deployment_not_running","minutes":5}"#).unwrap();
        assert_eq!(
            c,
            Condition::DeploymentNotRunning {
                minutes: 5,
                include_stopped: false
            }
        );
        assert_eq!(c.hold(), chrono::Duration::minutes(5));
        assert!(Condition::Traffic {
            bytes: 1,
            window_minutes: 1441
        }
        .validate()
        .is_err());
    }

    #[test]
    fn expiry_window_includes_expired_certificates() {
        let now = Utc::now();
        let days = chrono::Duration::days(30);
        assert!(expires_within(now - chrono::Duration::days(1), now, days));
        assert!(expires_within(now + chrono::Duration::days(29), now, days));
        assert!(expires_within(now + days, now, days));
        assert!(!expires_within(now + chrono::Duration::days(31), now, days));
    }

    #[test]
    fn channels_check_urls_and_addresses() {
        assert!(ChannelTarget::Webhook {
            url: "https://hooks.example.com/skyport".into()
        }
        .validate()
        .is_ok());
        let bad = ChannelTarget::Webhook {
            url: "ftp://x".into(),
        }
        .validate()
        .unwrap_err();
        assert_eq!(bad.code, "invalid_url");
        let bad = ChannelTarget::Email {
            to: vec!["ops@example.com".into(), "not an address".into()],
        }
        .validate()
        .unwrap_err();
        assert_eq!((bad.code, bad.field.as_str()), ("invalid_to", "to[1]"));
        assert!(ChannelTarget::Email { to: vec![] }.validate().is_err());
    }
}

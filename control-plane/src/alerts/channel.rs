//! Delivering notifications: webhooks (JSON, HMAC-SHA256 signed) and email over SMTP.
//!
//! Each notification goes to each of its rule's channels in its own task, retried a
//! few times with back-off, so a slow or failing channel never holds up evaluation or
//! the other channels. Delivery is at least once: a webhook whose answer was lost is
//! called again with the same notification `id`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;
use serde::Serialize;
use sha2::Sha256;
use utoipa::ToSchema;

use super::rule::{AlertChannel, ChannelTarget, Condition};
use crate::encryption::SecretKey;

/// Header carrying the webhook's signature: `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-skyport-signature";
/// Header carrying the Unix time (seconds) the signature covers.
pub const TIMESTAMP_HEADER: &str = "x-skyport-timestamp";
/// Attempts per channel and notification.
const ATTEMPTS: u32 = 4;
/// Longest a webhook call or an SMTP exchange may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a notification announces an alert or its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatus {
    Firing,
    Resolved,
}

/// The rule a notification is about.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RuleRef {
    pub id: String,
    pub name: String,
    pub condition: Condition,
}

/// The deployment a notification is about.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeploymentRef {
    pub id: String,
    /// Absent once the deployment is deleted.
    pub name: Option<String>,
}

/// What a webhook receives as its JSON body (and an email says in words).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Notification {
    /// Unique per notification; retried deliveries keep it.
    pub id: String,
    pub status: NotificationStatus,
    pub project_id: String,
    pub rule: RuleRef,
    pub deployment: DeploymentRef,
    /// `<deployment id>`, `<deployment id>/tls` or `<deployment id>/domain/<name>`.
    pub subject: String,
    /// What was observed, for humans.
    pub message: String,
    /// When the condition was first seen.
    pub since: DateTime<Utc>,
    pub fired_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// 1 for an alert's first notification, 2, 3, … for its repeats (resolutions carry
    /// the count of the last one).
    pub sequence: i64,
}

impl Notification {
    fn headline(&self) -> String {
        let state = match self.status {
            NotificationStatus::Firing => "FIRING",
            NotificationStatus::Resolved => "RESOLVED",
        };
        let deployment = self
            .deployment
            .name
            .as_deref()
            .unwrap_or(&self.deployment.id);
        format!("[Skyport] {state}: {} on {deployment}", self.rule.name)
    }

    fn text(&self) -> String {
        let mut text = format!(
            "{}\n\nRule: {} ({}, {})\nDeployment: {} ({})\nSubject: {}\nSince: {}\nFired: {}\n",
            self.message,
            self.rule.name,
            self.rule.condition.kind(),
            self.rule.id,
            self.deployment.name.as_deref().unwrap_or("(deleted)"),
            self.deployment.id,
            self.subject,
            self.since.to_rfc3339(),
            self.fired_at.to_rfc3339(),
        );
        if let Some(resolved) = self.resolved_at {
            text.push_str(&format!("Resolved: {}\n", resolved.to_rfc3339()));
        }
        text
    }
}

/// `sha256=` and the hex HMAC-SHA256, keyed with `secret`, of `<timestamp>.<body>`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The operator's SMTP server and sender address.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// From `smtp://[user:password@]host[:port]` (`?tls=required` for STARTTLS) or
    /// `smtps://…` (TLS from the start), and the `From` address.
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("--smtp-url: {e}"))?
            .timeout(Some(TIMEOUT))
            .build();
        let from = from
            .parse()
            .map_err(|e| anyhow::anyhow!("--smtp-from `{from}`: {e}"))?;
        Ok(Self { transport, from })
    }
}

/// Sends notifications to channels.
pub struct Notifier {
    http: reqwest::Client,
    mailer: Option<Mailer>,
    secret_key: Arc<SecretKey>,
    metrics: Arc<crate::metrics::Metrics>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("webhook answered {0}")]
    Status(reqwest::StatusCode),
    #[error("webhook call failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the channel's secret cannot be opened")]
    Secret,
    #[error("email channels need the operator's --smtp-url")]
    NoSmtp,
    #[error("building the email: {0}")]
    Mail(String),
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

impl Notifier {
    pub fn new(
        mailer: Option<Mailer>,
        secret_key: Arc<SecretKey>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("skyport-alerts/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            mailer,
            secret_key,
            metrics,
        })
    }

    /// Whether email channels can be used.
    pub fn has_mailer(&self) -> bool {
        self.mailer.is_some()
    }

    /// Delivers `notification` to every channel, each in its own task with retries.
    pub fn send(self: &Arc<Self>, channels: Vec<AlertChannel>, notification: Arc<Notification>) {
        for channel in channels {
            let notifier = self.clone();
            let notification = notification.clone();
            tokio::spawn(
                async move { notifier.deliver_with_retries(&channel, &notification).await },
            );
        }
    }

    async fn deliver_with_retries(&self, channel: &AlertChannel, notification: &Notification) {
        let mut backoff = Duration::from_secs(1);
        for attempt in 1..=ATTEMPTS {
            match self.deliver(channel, notification).await {
                Ok(()) => {
                    tracing::info!(alert_channel.id = %channel.id, notification.id = %notification.id,
                        status = ?notification.status, "alert notification delivered");
                    self.metrics.alert_notification(channel.target.kind(), true);
                    return;
                }
                Err(err) => {
                    tracing::warn!(alert_channel.id = %channel.id, notification.id = %notification.id,
                        attempt, error = %err, "alert notification not delivered");
                }
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 4;
            }
        }
        self.metrics
            .alert_notification(channel.target.kind(), false);
    }

    /// One attempt to deliver `notification` to `channel`.
    pub async fn deliver(
        &self,
        channel: &AlertChannel,
        notification: &Notification,
    ) -> Result<(), DeliveryError> {
        match &channel.target {
            ChannelTarget::Webhook { url } => {
                let secret = channel
                    .secret_ciphertext
                    .as_deref()
                    .and_then(|sealed| self.secret_key.open(sealed, &channel.id.to_string()).ok())
                    .ok_or(DeliveryError::Secret)?;
                let body = serde_json::to_vec(notification).expect("notifications serialise");
                let timestamp = Utc::now().timestamp();
                let signed = signature(secret.expose_secret().as_bytes(), timestamp, &body);
                let answer = self
                    .http
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(TIMESTAMP_HEADER, timestamp.to_string())
                    .header(SIGNATURE_HEADER, signed)
                    .header("x-skyport-notification", &notification.id)
                    .body(body)
                    .send()
                    .await?;
                if !answer.status().is_success() {
                    return Err(DeliveryError::Status(answer.status()));
                }
                Ok(())
            }
            ChannelTarget::Email { to } => {
                let mailer = self.mailer.as_ref().ok_or(DeliveryError::NoSmtp)?;
                let mut message = lettre::Message::builder()
                    .from(mailer.from.clone())
                    .subject(notification.headline())
                    .header(lettre::message::header::ContentType::TEXT_PLAIN);
                for address in to {
                    let mailbox: Mailbox = address
                        .parse()
                        .map_err(|e| DeliveryError::Mail(format!("`{address}`: {e}")))?;
                    message = message.to(mailbox);
                }
                let message = message
                    .body(notification.text())
                    .map_err(|e| DeliveryError::Mail(e.to_string()))?;
                mailer.transport.send(message).await?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Reference: Python's hmac.new(b"Jefe", b'1700000000.{"a":1}', hashlib.sha256).
        assert_eq!(
            signature(b"Jefe", 1_700_000_000, br#"{"a":1}"#),
            "sha256=fa5f6481efc59da48b19c9dc10196c9953e5651f8304b3a318b6b87d70272e0a"
        );
    }
}

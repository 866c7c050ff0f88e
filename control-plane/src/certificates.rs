//! Certificates over their lifetime: each deployment's Skyport-issued server certificate
//! (kept in the store, so every replica serves and renews the same one), its renewal and
//! that of Skyport-issued domain certificates 30 days before they expire, and notices
//! about uploaded certificates nearing expiry.
//!
//! Renewal runs on the leader every `--certificate-check-interval`. A renewal stores the
//! new certificate, bumps the deployment's generation and records `certificate.renewed`
//! in one transaction; the reconciler then hands the broker the new files like any other
//! change and the broker swaps them in for new handshakes, so connected clients stay
//! connected. An uploaded certificate (custom TLS, custom domain) that expires within 30
//! days gets one `certificate.expiring` event, for alert rules to act on.
//!
//! "Now" comes from an injectable [`Clock`]; `SKYPORT_CLOCK_OFFSET` (test only) moves it
//! forward, and certificates issued meanwhile are dated by the same clock, so a renewed
//! certificate is not due again at once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::app::AppState;
use crate::ca::Ca;
use crate::domain::{Actor, EventType, Id};
use crate::encryption::SecretKey;
pub use crate::events::Clock;
use crate::orchestrator::OrchestratorError;
use crate::store::{
    Deployment, DeploymentCertificate, DomainRecord, Event, Store, StoreError, StoreResult,
};

/// Skyport-issued certificates are renewed, and uploaded ones noticed, this many days
/// before they expire.
pub const RENEW_BEFORE_DAYS: i64 = 30;
/// Most certificates of each kind one check renews.
const BATCH: i64 = 32;

/// The system clock moved forward by a fixed offset (tests of renewal).
pub struct OffsetClock(pub chrono::Duration);

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.0
    }
}

/// The clock renewal reads: the system's, moved by `offset` when one is set.
pub fn clock(offset: Option<Duration>) -> Arc<dyn Clock> {
    match offset.and_then(|o| chrono::Duration::from_std(o).ok()) {
        Some(offset) if !offset.is_zero() => {
            tracing::warn!(offset = %humantime::format_duration(offset.to_std().unwrap_or_default()), "SKYPORT_CLOCK_OFFSET is set: certificates are renewed by a clock ahead of the system's (test only)");
            Arc::new(OffsetClock(offset))
        }
        _ => Arc::new(crate::events::SystemClock),
    }
}

/// A deployment's server certificate, key decrypted.
pub struct ServerCertificate {
    /// Leaf first, then the CA.
    pub chain_pem: String,
    pub key_pem: SecretString,
}

/// Where orchestrators get deployments' server certificates from: the store, issuing
/// (and storing) one with Skyport's CA when a deployment has none for its names.
#[derive(Clone)]
pub struct ServerCertificates {
    store: Arc<dyn Store>,
    ca: Arc<Ca>,
    key: Arc<SecretKey>,
    clock: Arc<dyn Clock>,
}

fn same_names(a: &[String], b: &[String]) -> bool {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort();
    b.sort();
    a == b
}

impl ServerCertificates {
    pub fn new(
        store: Arc<dyn Store>,
        ca: Arc<Ca>,
        key: Arc<SecretKey>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            ca,
            key,
            clock,
        }
    }

    /// The deployment's certificate for `names`: the stored one, or a new one when it
    /// has none or one for other names.
    pub async fn for_deployment(
        &self,
        deployment: &Deployment,
        names: &[String],
    ) -> Result<ServerCertificate, OrchestratorError> {
        let stored = self
            .store
            .deployment_certificate(deployment.id)
            .await
            .map_err(certificate_error)?;
        if let Some(stored) = stored.as_ref().filter(|c| same_names(&c.names, names)) {
            return self.open(stored);
        }
        let issued = self
            .ca
            .issue_server_cert(names, self.clock.now())
            .map_err(|e| OrchestratorError::Certificate(e.to_string()))?;
        let record = DeploymentCertificate {
            deployment_id: deployment.id,
            project_id: deployment.project_id,
            names: names.to_vec(),
            cert_pem: issued.chain_pem,
            key_ciphertext: self
                .key
                .seal(issued.key_pem.as_bytes(), &deployment.id.to_string()),
            serial: issued.serial,
            not_after: issued.not_after,
            issued_at: Utc::now(),
        };
        let previous = stored.as_ref().map(|c| c.serial.as_str());
        match self
            .store
            .put_deployment_certificate(&record, previous, None)
            .await
        {
            Ok(()) => {
                tracing::info!(deployment.id = %deployment.id, serial = %record.serial, "issued the deployment's server certificate");
                Ok(ServerCertificate {
                    chain_pem: record.cert_pem,
                    key_pem: issued.key_pem.into(),
                })
            }
            // Issued or renewed by someone else meanwhile: serve theirs.
            Err(StoreError::Stale) => {
                match self.store.deployment_certificate(deployment.id).await {
                    Ok(Some(theirs)) if same_names(&theirs.names, names) => self.open(&theirs),
                    Ok(_) => Err(OrchestratorError::Certificate(
                        "the certificate changed while it was issued; retrying".into(),
                    )),
                    Err(err) => Err(certificate_error(err)),
                }
            }
            Err(other) => Err(certificate_error(other)),
        }
    }

    fn open(&self, stored: &DeploymentCertificate) -> Result<ServerCertificate, OrchestratorError> {
        let key_pem = self
            .key
            .open(&stored.key_ciphertext, &stored.deployment_id.to_string())
            .map_err(|e| OrchestratorError::Certificate(e.to_string()))?;
        Ok(ServerCertificate {
            chain_pem: stored.cert_pem.clone(),
            key_pem,
        })
    }
}

fn certificate_error(err: StoreError) -> OrchestratorError {
    OrchestratorError::Certificate(format!("loading the server certificate: {err}"))
}

/// What one check did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Checked {
    pub renewed: usize,
    pub noticed: usize,
}

/// Runs [`check_once`] every `every` until the task is dropped (on the leader).
pub async fn run(state: Arc<AppState>, clock: Arc<dyn Clock>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match check_once(&state, clock.as_ref()).await {
            Ok(checked) if checked.renewed > 0 => state.reconcile.notify_one(),
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err, "checking certificates failed"),
        }
    }
}

/// Renews the Skyport-issued certificates due as of `clock`'s now and gives notice of
/// uploaded ones nearing expiry.
pub async fn check_once(state: &AppState, clock: &dyn Clock) -> StoreResult<Checked> {
    let now = clock.now();
    let before = now + chrono::Duration::days(RENEW_BEFORE_DAYS);
    let mut checked = Checked::default();
    for due in state
        .store
        .due_deployment_certificates(before, BATCH)
        .await?
    {
        checked.renewed += usize::from(renew_deployment(state, &due, now).await?);
    }
    for (project_id, due) in state.store.due_domain_certificates(before, BATCH).await? {
        checked.renewed += usize::from(renew_domain(state, project_id, &due, now).await?);
    }
    for notice in state.store.expiring_uploaded_certificates(before).await? {
        let days_left = (notice.not_after - now).num_days();
        let (certificate, domain) = match notice.resource.strip_prefix("domain:") {
            Some(domain) => ("domain", Some(domain)),
            None => ("custom", None),
        };
        let event = system_event(
            notice.deployment_id,
            notice.project_id,
            EventType::CertificateExpiring,
            serde_json::json!({
                "certificate": certificate,
                "domain": domain,
                "not_after": notice.not_after,
                "days_left": days_left,
            }),
        );
        if state
            .store
            .record_certificate_notice(&notice, &event)
            .await?
        {
            tracing::warn!(deployment.id = %notice.deployment_id, resource = %notice.resource, days_left, "an uploaded certificate expires soon");
            checked.noticed += 1;
        }
    }
    Ok(checked)
}

/// Renews one deployment certificate; false when it changed meanwhile.
async fn renew_deployment(
    state: &AppState,
    due: &DeploymentCertificate,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let issued = match state.ca.issue_server_cert(&due.names, now) {
        Ok(issued) => issued,
        Err(err) => {
            tracing::error!(deployment.id = %due.deployment_id, error = %err, "issuing a renewed certificate failed");
            return Ok(false);
        }
    };
    let renewed = DeploymentCertificate {
        cert_pem: issued.chain_pem,
        key_ciphertext: state
            .secret_key
            .seal(issued.key_pem.as_bytes(), &due.deployment_id.to_string()),
        serial: issued.serial,
        not_after: issued.not_after,
        issued_at: Utc::now(),
        ..due.clone()
    };
    let event = system_event(
        due.deployment_id,
        due.project_id,
        EventType::CertificateRenewed,
        serde_json::json!({
            "certificate": "deployment",
            "serial": renewed.serial,
            "not_after": renewed.not_after,
            "previous_serial": due.serial,
            "previous_not_after": due.not_after,
        }),
    );
    match state
        .store
        .put_deployment_certificate(&renewed, Some(&due.serial), Some(&event))
        .await
    {
        Ok(()) => {
            tracing::info!(deployment.id = %due.deployment_id, serial = %renewed.serial, not_after = %renewed.not_after, "renewed the deployment's certificate");
            Ok(true)
        }
        Err(StoreError::Stale | StoreError::NotFound) => Ok(false),
        Err(other) => Err(other),
    }
}

/// Renews one Skyport-issued domain certificate; false when it changed meanwhile.
async fn renew_domain(
    state: &AppState,
    project_id: Id,
    due: &DomainRecord,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let issued = match state
        .ca
        .issue_server_cert(std::slice::from_ref(&due.domain), now)
    {
        Ok(issued) => issued,
        Err(err) => {
            tracing::error!(domain = %due.domain, error = %err, "issuing a renewed domain certificate failed");
            return Ok(false);
        }
    };
    let renewed = DomainRecord {
        cert_pem: issued.chain_pem,
        key_ciphertext: state
            .secret_key
            .seal(issued.key_pem.as_bytes(), &due.deployment_id.to_string()),
        cert_expires_at: issued.not_after,
        ..due.clone()
    };
    let event = system_event(
        due.deployment_id,
        project_id,
        EventType::CertificateRenewed,
        serde_json::json!({
            "certificate": "domain",
            "domain": due.domain,
            "serial": issued.serial,
            "not_after": renewed.cert_expires_at,
            "previous_not_after": due.cert_expires_at,
        }),
    );
    match state
        .store
        .renew_domain_certificate(project_id, &renewed, &due.cert_pem, &event)
        .await
    {
        Ok(()) => {
            tracing::info!(deployment.id = %due.deployment_id, domain = %due.domain, "renewed the domain's certificate");
            Ok(true)
        }
        Err(StoreError::Stale | StoreError::NotFound) => Ok(false),
        Err(other) => Err(other),
    }
}

fn system_event(
    deployment_id: Id,
    project_id: Id,
    kind: EventType,
    details: serde_json::Value,
) -> Event {
    Event {
        id: Id::new(),
        deployment_id,
        project_id,
        kind,
        actor: Actor::System.render(),
        details,
        created_at: Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_as_sets() {
        let a = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let b = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        assert!(same_names(&a, &b));
        assert!(!same_names(&a, &b[..1]));
    }

    #[test]
    fn the_offset_clock_runs_ahead() {
        let clock = OffsetClock(chrono::Duration::days(340));
        let ahead = clock.now() - Utc::now();
        assert!(ahead >= chrono::Duration::days(340) - chrono::Duration::seconds(5));
    }
}

//! Custom domain verification: one DNS check of a pending domain, run when the owner
//! asks (`POST …/domains/{domain}/verify`) and by a background loop with back-off.
//!
//! A verified domain becomes `active` in the same transaction that bumps the
//! deployment's generation and records `domain.verified`, so the reconciler hands its
//! certificate to the broker, which serves it by SNI without restarting. A miss keeps
//! the domain `pending_dns` with what DNS answered, and schedules the next look:
//! `--dns-recheck-interval` after the first miss, doubling up to an hour.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::app::AppState;
use crate::domain::network::{DnsRecord, DomainName};
use crate::domain::{Actor, EventType, Id};
use crate::store::{Deployment, DomainCheck, DomainRecord, Event, StoreError};

/// The longest wait between background checks of one domain.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How often the background loop looks for due checks.
const TICK: Duration = Duration::from_millis(500);
/// Most checks one tick runs.
const BATCH: i64 = 32;

/// When to look again after `checks` misses.
pub fn next_check_at(first: Duration, checks: i64, now: DateTime<Utc>) -> DateTime<Utc> {
    let factor = 1u32 << checks.clamp(0, 20);
    let wait = first.saturating_mul(factor).min(MAX_BACKOFF);
    now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1))
}

/// The record the owner must create for `domain` of `deployment`, once it has a host.
pub fn required_record(deployment: &Deployment, domain: &str) -> Option<DnsRecord> {
    let host = &deployment.endpoints.as_ref()?.host;
    let domain = DomainName::parse(domain).ok()?;
    Some(DnsRecord::for_host(&domain, host))
}

/// Looks `record`'s domain up once and records the outcome. `Stale` when the domain
/// went away or became active meanwhile.
pub async fn check(
    state: &AppState,
    deployment: &Deployment,
    record: &DomainRecord,
    actor: &Actor,
) -> Result<DomainRecord, StoreError> {
    let domain = DomainName::parse(&record.domain)
        .map_err(|e| StoreError::Corrupt(format!("stored domain: {}", e.detail)))?;
    let now = Utc::now();
    let (verified, observation) = match required_record(deployment, &record.domain) {
        Some(required) => {
            let (verified, observation) = state.dns.verify(&domain, &required).await;
            (verified, Some((required, observation)))
        }
        // No host yet (the deployment never ran): nothing to compare with.
        None => (false, None),
    };
    let observed = match &observation {
        Some((_, observation)) => serde_json::to_value(observation).unwrap_or_default(),
        None => serde_json::json!({ "error": "the deployment has no endpoint yet" }),
    };
    let event = verified.then(|| {
        Event::new(
            deployment,
            EventType::DomainVerified,
            actor,
            serde_json::json!({
                "domain": record.domain,
                "record": observation.as_ref().map(|(required, _)| required),
            }),
        )
    });
    let outcome = DomainCheck {
        observed,
        checked_at: now,
        verified,
        next_check_at: (!verified)
            .then(|| next_check_at(state.network.dns_recheck_interval, record.checks, now)),
    };
    let updated = state
        .store
        .record_domain_check(
            deployment.project_id,
            deployment.id,
            &record.domain,
            &outcome,
            event.as_ref(),
        )
        .await?;
    if verified {
        tracing::info!(deployment.id = %deployment.id, domain = %record.domain, "custom domain verified");
        state.reconcile.notify_one();
    }
    Ok(updated)
}

/// Runs due background checks forever.
pub async fn run_rechecks(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let due = match state.store.due_domain_checks(Utc::now(), BATCH).await {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(error = %err, "cannot list pending domains");
                continue;
            }
        };
        for (project_id, record) in due {
            if let Err(err) = recheck(&state, project_id, record.deployment_id, &record).await {
                tracing::debug!(domain = %record.domain, error = %err, "background domain check");
            }
        }
    }
}

async fn recheck(
    state: &AppState,
    project_id: Id,
    deployment_id: Id,
    record: &DomainRecord,
) -> Result<(), StoreError> {
    let deployment = state
        .store
        .get_deployment(project_id, deployment_id)
        .await?;
    check(state, &deployment, record, &Actor::System).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_an_hour() {
        let now = Utc::now();
        let first = Duration::from_secs(30);
        assert_eq!(
            next_check_at(first, 0, now) - now,
            chrono::Duration::seconds(30)
        );
        assert_eq!(
            next_check_at(first, 3, now) - now,
            chrono::Duration::seconds(240)
        );
        assert_eq!(
            next_check_at(first, 40, now) - now,
            chrono::Duration::hours(1)
        );
    }
}

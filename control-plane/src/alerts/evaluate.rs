//! Evaluation: every interval the leader checks each enabled rule on each deployment it
//! watches, from what the control plane already knows (deployments' status, the load
//! of their last usage report, usage per minute, uploaded certificates, domain checks).
//!
//! Per rule and subject, an alert is opened when the condition is first seen true,
//! fires once it has held for the rule's time (at once for most conditions), repeats
//! every `repeat_interval_seconds` while it holds, and resolves when it no longer does
//! (or its subject is gone). Firing and resolving are recorded in the deployment's event
//! log (`alert.fired`, `alert.resolved`) in the transaction that changes the state, and
//! only the writer that made the change notifies.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::channel::{DeploymentRef, Notification, NotificationStatus, RuleRef};
use super::rule::{expires_within, AlertChannel, AlertRule, AlertState, Condition};
use super::Alerts;
use crate::domain::{Actor, DesiredState, EventType, Id, Status};
use crate::metering::Granularity;
use crate::store::metering::Load;
use crate::store::{
    CertSource, Deployment, DomainStatus, Event, NetworkRecord, Store, StoreResult,
};

/// What one evaluation saw of one subject.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub subject: String,
    pub active: bool,
    /// What was seen, for humans: goes into events and notifications.
    pub message: String,
}

/// What to do with one rule's alert on one subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// The condition holds, not yet for the rule's time: record it as pending.
    Open,
    /// Fire (after recording it, when `open`).
    Fire {
        open: bool,
    },
    /// Notify again; `previous` is the last notification's time (compare-and-set).
    Repeat {
        previous: DateTime<Utc>,
    },
    /// The condition ended: drop the alert, resolving it if it had fired.
    Close,
}

/// The state machine of one alert: pure, so every path is unit-tested.
pub fn transition(
    active: bool,
    state: Option<&AlertState>,
    hold: chrono::Duration,
    repeat: Option<chrono::Duration>,
    now: DateTime<Utc>,
) -> Action {
    match (active, state) {
        (false, None) => Action::Nothing,
        (false, Some(_)) => Action::Close,
        (true, None) if hold <= chrono::Duration::zero() => Action::Fire { open: true },
        (true, None) => Action::Open,
        (true, Some(s)) => match (s.fired_at, s.last_notified_at) {
            (None, _) if now - s.since >= hold => Action::Fire { open: false },
            (None, _) => Action::Nothing,
            (Some(_), Some(last)) => match repeat {
                Some(every) if now - last >= every => Action::Repeat { previous: last },
                _ => Action::Nothing,
            },
            (Some(_), None) => Action::Nothing,
        },
    }
}

/// What one pass reads once and shares between rules.
struct Facts<'a> {
    store: &'a dyn Store,
    now: DateTime<Utc>,
    loads: HashMap<Id, Load>,
    networks: HashMap<Id, NetworkRecord>,
    tls: HashMap<Id, Option<DateTime<Utc>>>,
    channels: HashMap<Id, Vec<AlertChannel>>,
}

impl Facts<'_> {
    async fn network(&mut self, id: Id) -> StoreResult<&NetworkRecord> {
        if !self.networks.contains_key(&id) {
            let network = self.store.network(id).await?;
            self.networks.insert(id, network);
        }
        Ok(&self.networks[&id])
    }

    /// When the deployment's uploaded TLS certificate expires, if it has one.
    async fn tls_expiry(&mut self, id: Id) -> StoreResult<Option<DateTime<Utc>>> {
        if let Some(known) = self.tls.get(&id) {
            return Ok(*known);
        }
        let expiry = self
            .store
            .get_tls(id)
            .await?
            .map(|tls| tls.details.not_after);
        self.tls.insert(id, expiry);
        Ok(expiry)
    }

    async fn channels(&mut self, rule: &AlertRule) -> StoreResult<Vec<AlertChannel>> {
        if !self.channels.contains_key(&rule.project_id) {
            let channels = self.store.list_alert_channels(rule.project_id).await?;
            self.channels.insert(rule.project_id, channels);
        }
        Ok(self.channels[&rule.project_id]
            .iter()
            .filter(|c| rule.channel_ids.contains(&c.id))
            .cloned()
            .collect())
    }
}

fn percent_of(value: i64, limit: i64) -> i64 {
    if limit <= 0 {
        return 0;
    }
    value.saturating_mul(100) / limit
}

/// `value` of `what` against `percent`% of the tier's `limit`.
fn against_tier(d: &Deployment, what: &str, value: i64, limit: i64, percent: i64) -> Observation {
    Observation {
        subject: d.id.to_string(),
        // value / limit >= percent / 100, in integers.
        active: value.saturating_mul(100) >= limit.saturating_mul(percent),
        message: format!(
            "{value} {what} on {}: {}% of the tier's {limit} (alert at {percent}%)",
            d.name,
            percent_of(value, limit)
        ),
    }
}

fn certificate(
    subject: String,
    what: &str,
    not_after: DateTime<Utc>,
    days: i64,
    now: DateTime<Utc>,
) -> Observation {
    let left = (not_after - now).num_days();
    let message = if not_after <= now {
        format!(
            "the certificate of {what} expired at {}",
            not_after.to_rfc3339()
        )
    } else {
        format!(
            "the certificate of {what} expires at {} ({left} days left; alert at {days} days)",
            not_after.to_rfc3339()
        )
    };
    Observation {
        subject,
        active: expires_within(not_after, now, chrono::Duration::days(days)),
        message,
    }
}

/// Whether `d` is not running; one stopped on purpose only with `include_stopped`.
fn not_running(d: &Deployment, minutes: i64, include_stopped: bool) -> Observation {
    let on_purpose = d.desired_state == DesiredState::Stopped;
    let message = if d.status == Status::Running {
        format!("{} is running", d.name)
    } else {
        let reason = d
            .status_reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        format!(
            "{} is {}{reason} (alert after {minutes} minute(s) not running)",
            d.name,
            d.status.as_str()
        )
    };
    Observation {
        subject: d.id.to_string(),
        active: d.status != Status::Running && (include_stopped || !on_purpose),
        message,
    }
}

/// Observes `condition` on deployment `d`: one observation per subject.
async fn observe(
    condition: &Condition,
    d: &Deployment,
    facts: &mut Facts<'_>,
) -> StoreResult<Vec<Observation>> {
    let now = facts.now;
    let load = facts.loads.get(&d.id).copied();
    Ok(match condition {
        Condition::Sessions { percent } => vec![against_tier(
            d,
            "sessions",
            load.map_or(0, |l| l.sessions),
            d.tier.max_sessions,
            *percent,
        )],
        Condition::Tps { percent } => vec![against_tier(
            d,
            "messages per second",
            load.map_or(0, |l| l.tps),
            d.tier.max_tps,
            *percent,
        )],
        Condition::Traffic {
            bytes,
            window_minutes,
        } => {
            let minute = now.timestamp().div_euclid(60) * 60;
            let rows = facts
                .store
                .usage_series(
                    d.project_id,
                    d.id,
                    Granularity::Minute,
                    minute - (window_minutes - 1) * 60,
                    minute + 60,
                    60,
                )
                .await?;
            let total: i64 = rows
                .iter()
                .map(|r| r.usage.bytes_in.saturating_add(r.usage.bytes_out))
                .fold(0, i64::saturating_add);
            vec![Observation {
                subject: d.id.to_string(),
                active: total >= *bytes,
                message: format!(
                    "{total} bytes in and out on {} in the last {window_minutes} minute(s) (alert at {bytes})",
                    d.name
                ),
            }]
        }
        Condition::DeploymentNotRunning {
            minutes,
            include_stopped,
        } => vec![not_running(d, *minutes, *include_stopped)],
        Condition::CertificateExpiring { days } => {
            let mut seen = Vec::new();
            if let Some(not_after) = facts.tls_expiry(d.id).await? {
                let what = format!("{} (custom TLS)", d.name);
                seen.push(certificate(
                    format!("{}/tls", d.id),
                    &what,
                    not_after,
                    *days,
                    now,
                ));
            }
            for domain in &facts.network(d.id).await?.domains {
                if domain.cert_source == CertSource::Uploaded {
                    seen.push(certificate(
                        format!("{}/domain/{}", d.id, domain.domain),
                        &domain.domain,
                        domain.cert_expires_at,
                        *days,
                        now,
                    ));
                }
            }
            seen
        }
        Condition::DomainVerificationFailing { checks } => facts
            .network(d.id)
            .await?
            .domains
            .iter()
            .map(|domain| {
                let pending = domain.status == DomainStatus::PendingDns;
                Observation {
                    subject: format!("{}/domain/{}", d.id, domain.domain),
                    active: pending && domain.checks >= *checks,
                    message: if pending {
                        format!(
                            "{} has no matching DNS record after {} check(s) (alert at {checks})",
                            domain.domain, domain.checks
                        )
                    } else {
                        format!("{} is verified", domain.domain)
                    },
                }
            })
            .collect(),
    })
}

/// Runs [`pass`] every `alerts.interval` until the task is dropped.
pub async fn run(store: Arc<dyn Store>, alerts: Arc<Alerts>) {
    let mut tick = tokio::time::interval(alerts.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(err) = pass(store.as_ref(), &alerts, Utc::now()).await {
            tracing::error!(error = %err, "alert evaluation failed");
        }
    }
}

/// Evaluates every enabled rule once, as of `now`.
pub async fn pass(store: &dyn Store, alerts: &Alerts, now: DateTime<Utc>) -> StoreResult<()> {
    let rules = store.enabled_alert_rules().await?;
    let mut states: HashMap<Id, HashMap<String, AlertState>> = HashMap::new();
    for state in store.alert_states(None).await? {
        states
            .entry(state.rule_id)
            .or_default()
            .insert(state.subject.clone(), state);
    }
    let deployments = store.all_deployments().await?;
    let stale_before =
        now - chrono::Duration::from_std(alerts.load_stale_after).unwrap_or(chrono::Duration::MAX);
    let mut facts = Facts {
        store,
        now,
        loads: store
            .current_loads(stale_before.timestamp_millis())
            .await?
            .into_iter()
            .collect(),
        networks: HashMap::new(),
        tls: HashMap::new(),
        channels: HashMap::new(),
    };
    for rule in &rules {
        let mut known = states.remove(&rule.id).unwrap_or_default();
        let watched = deployments.iter().filter(|d| {
            d.project_id == rule.project_id
                && d.status != Status::Deleting
                && rule.deployment_id.is_none_or(|id| id == d.id)
        });
        for d in watched {
            for seen in observe(&rule.condition, d, &mut facts).await? {
                let state = known.remove(&seen.subject);
                let subject = Subject {
                    project_id: d.project_id,
                    deployment_id: d.id,
                    deployment_name: Some(d.name.clone()),
                };
                step(store, alerts, &mut facts, rule, &subject, seen, state).await?;
            }
        }
        // Subjects no longer there (a deployment, certificate or domain removed): over.
        for (name, state) in known {
            let subject = Subject {
                project_id: state.project_id,
                deployment_id: state.deployment_id,
                deployment_name: deployments
                    .iter()
                    .find(|d| d.id == state.deployment_id)
                    .map(|d| d.name.clone()),
            };
            let seen = Observation {
                subject: name,
                active: false,
                message: "no longer watched: the deployment, certificate or domain is gone".into(),
            };
            step(store, alerts, &mut facts, rule, &subject, seen, Some(state)).await?;
        }
    }
    Ok(())
}

/// The deployment an alert belongs to.
struct Subject {
    project_id: Id,
    deployment_id: Id,
    deployment_name: Option<String>,
}

async fn step(
    store: &dyn Store,
    alerts: &Alerts,
    facts: &mut Facts<'_>,
    rule: &AlertRule,
    subject: &Subject,
    seen: Observation,
    state: Option<AlertState>,
) -> StoreResult<()> {
    let now = facts.now;
    let repeat = rule.repeat_interval_seconds.map(chrono::Duration::seconds);
    let action = transition(
        seen.active,
        state.as_ref(),
        rule.condition.hold(),
        repeat,
        now,
    );
    let event = |kind| Event {
        id: Id::new(),
        deployment_id: subject.deployment_id,
        project_id: subject.project_id,
        kind,
        actor: Actor::System.render(),
        details: serde_json::json!({
            "rule_id": rule.id.to_string(),
            "rule_name": rule.name,
            "condition": rule.condition,
            "subject": seen.subject,
            "message": seen.message,
        }),
        created_at: now,
    };
    let opened = AlertState {
        rule_id: rule.id,
        subject: seen.subject.clone(),
        project_id: subject.project_id,
        deployment_id: subject.deployment_id,
        since: now,
        fired_at: None,
        last_notified_at: None,
        notifications: 0,
        message: seen.message.clone(),
    };
    let (status, since, fired_at, sequence) = match action {
        Action::Nothing => return Ok(()),
        Action::Open => {
            store.open_alert(&opened).await?;
            return Ok(());
        }
        Action::Fire { open } => {
            if open {
                store.open_alert(&opened).await?;
            }
            let fired = store
                .fire_alert(
                    rule.id,
                    &seen.subject,
                    now,
                    &seen.message,
                    &event(EventType::AlertFired),
                )
                .await?;
            if !fired {
                return Ok(());
            }
            tracing::info!(alert_rule.id = %rule.id, subject = %seen.subject, message = %seen.message, "alert fired");
            let since = state.as_ref().map_or(now, |s| s.since);
            (NotificationStatus::Firing, since, now, 1)
        }
        Action::Repeat { previous } => {
            let Some(s) = state else { return Ok(()) };
            if !store
                .renotify_alert(rule.id, &seen.subject, previous, now, &seen.message)
                .await?
            {
                return Ok(());
            }
            (
                NotificationStatus::Firing,
                s.since,
                s.fired_at.unwrap_or(now),
                s.notifications + 1,
            )
        }
        Action::Close => {
            let Some(s) = state else { return Ok(()) };
            if !store
                .close_alert(rule.id, &seen.subject, &event(EventType::AlertResolved))
                .await?
            {
                return Ok(());
            }
            tracing::info!(alert_rule.id = %rule.id, subject = %seen.subject, message = %seen.message, "alert resolved");
            (
                NotificationStatus::Resolved,
                s.since,
                s.fired_at.unwrap_or(now),
                s.notifications,
            )
        }
    };
    let channels = facts.channels(rule).await?;
    if channels.is_empty() {
        return Ok(());
    }
    let notification = Notification {
        id: uuid::Uuid::new_v4().to_string(),
        status,
        project_id: subject.project_id.to_string(),
        rule: RuleRef {
            id: rule.id.to_string(),
            name: rule.name.clone(),
            condition: rule.condition.clone(),
        },
        deployment: DeploymentRef {
            id: subject.deployment_id.to_string(),
            name: subject.deployment_name.clone(),
        },
        subject: seen.subject,
        message: seen.message,
        since,
        fired_at,
        resolved_at: (status == NotificationStatus::Resolved).then_some(now),
        sequence,
    };
    alerts.notifier.send(channels, Arc::new(notification));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(since: DateTime<Utc>, fired: Option<DateTime<Utc>>) -> AlertState {
        AlertState {
            rule_id: Id::new(),
            subject: "s".into(),
            project_id: Id::new(),
            deployment_id: Id::new(),
            since,
            fired_at: fired,
            last_notified_at: fired,
            notifications: i64::from(fired.is_some()),
            message: String::new(),
        }
    }

    #[test]
    fn alerts_fire_once_repeat_and_resolve() {
        let now = Utc::now();
        let zero = chrono::Duration::zero();
        let minute = chrono::Duration::minutes(1);
        // Seen for the first time: fires at once without a hold, else waits.
        assert_eq!(
            transition(true, None, zero, None, now),
            Action::Fire { open: true }
        );
        assert_eq!(transition(true, None, minute, None, now), Action::Open);
        // Pending: fires once it has held long enough.
        let pending = state(now - chrono::Duration::seconds(30), None);
        assert_eq!(
            transition(true, Some(&pending), minute, None, now),
            Action::Nothing
        );
        assert_eq!(
            transition(
                true,
                Some(&pending),
                chrono::Duration::seconds(30),
                None,
                now
            ),
            Action::Fire { open: false }
        );
        // Firing: nothing more without a repeat interval; a repeat once it has passed.
        let fired_at = now - chrono::Duration::seconds(90);
        let firing = state(now - minute * 2, Some(fired_at));
        assert_eq!(
            transition(true, Some(&firing), zero, None, now),
            Action::Nothing
        );
        assert_eq!(
            transition(
                true,
                Some(&firing),
                zero,
                Some(chrono::Duration::minutes(5)),
                now
            ),
            Action::Nothing
        );
        assert_eq!(
            transition(true, Some(&firing), zero, Some(minute), now),
            Action::Repeat { previous: fired_at }
        );
        // The condition ends: pending and firing alerts close; nothing to do otherwise.
        assert_eq!(
            transition(false, Some(&firing), zero, None, now),
            Action::Close
        );
        assert_eq!(
            transition(false, Some(&pending), zero, None, now),
            Action::Close
        );
        assert_eq!(transition(false, None, zero, None, now), Action::Nothing);
    }

    fn deployment(status: Status, desired_state: DesiredState) -> Deployment {
        Deployment {
            id: Id::new(),
            project_id: Id::new(),
            name: "d".into(),
            plan: crate::domain::Plan::Dedicated,
            tier: crate::domain::Tier {
                max_sessions: 3,
                max_tps: 10,
            },
            version: "v".into(),
            desired_state,
            status,
            status_reason: None,
            generation: 1,
            observed_generation: 1,
            applied_revision: 1,
            endpoints: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn tier_thresholds_compare_in_integers() {
        let d = deployment(Status::Running, DesiredState::Running);
        // 2 of 3 is 66.6%: below 67%, at or above 66%.
        assert!(!against_tier(&d, "sessions", 2, 3, 67).active);
        assert!(against_tier(&d, "sessions", 2, 3, 66).active);
        assert!(against_tier(&d, "sessions", 3, 3, 100).active);
        assert!(!against_tier(&d, "sessions", 0, 3, 1).active);
    }

    #[test]
    fn stopped_on_purpose_counts_as_not_running_only_when_asked() {
        let running = deployment(Status::Running, DesiredState::Running);
        assert!(!not_running(&running, 0, true).active);
        let failed = deployment(Status::Failed, DesiredState::Running);
        assert!(not_running(&failed, 0, false).active);
        assert!(not_running(&failed, 0, false)
            .message
            .contains("d is failed"));
        let stopped = deployment(Status::Stopped, DesiredState::Stopped);
        assert!(!not_running(&stopped, 0, false).active);
        assert!(not_running(&stopped, 0, true).active);
    }
}

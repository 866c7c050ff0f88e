//! Election with a Kubernetes `coordination.k8s.io/v1` Lease (as client-go's leader
//! election does).
//!
//! Every [`super::RETRY`] each replica reads the Lease: it takes it when it is absent,
//! expired (`renewTime + leaseDurationSeconds` in the past) or already its own, by a
//! `replace` carrying the `resourceVersion` it read, so of two replicas racing for it the
//! API server accepts exactly one (the other gets 409). The holder renews the same way;
//! a renewal that fails (an error, or a 409 because someone else took an expired lease)
//! ends its leadership at once, before the lease can expire.

use chrono::Utc;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use super::RETRY;

/// How long a lease holds without renewal: the longest a dead leader keeps it.
pub const LEASE_DURATION_SECONDS: i32 = 10;

/// The Lease object and the API it lives in.
#[derive(Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
}

impl LeaseLock {
    /// The Lease `name` in `namespace`.
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
        }
    }

    /// Campaigns for ever, publishing whether this replica leads on `leading`.
    pub async fn campaign(self, identity: String, leading: watch::Sender<bool>) {
        loop {
            let held = match self.try_acquire_or_renew(&identity).await {
                Ok(held) => held,
                Err(err) => {
                    tracing::warn!(error = %err, lease = %self.name, "leader lease unreachable");
                    false
                }
            };
            if held != *leading.borrow() {
                tracing::info!(lease = %self.name, held, "leader lease changed hands");
            }
            leading.send_replace(held);
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Who holds an unexpired lease.
    pub async fn holder(&self) -> anyhow::Result<Option<String>> {
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            return Ok(None);
        };
        let spec = lease.spec.unwrap_or_default();
        let expired = expired(&spec);
        Ok(spec.holder_identity.filter(|_| !expired))
    }

    /// Takes or renews the lease; whether this replica holds it now.
    async fn try_acquire_or_renew(&self, identity: &str) -> Result<bool, kube::Error> {
        let now = MicroTime(Utc::now());
        let Some(current) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(identity.to_owned()),
                    lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return conflict_is_false(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = current.spec.clone().unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(identity);
        if !ours && spec.holder_identity.is_some() && !expired(&spec) {
            return Ok(false);
        }
        let next = LeaseSpec {
            holder_identity: Some(identity.to_owned()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            acquire_time: if ours {
                spec.acquire_time.clone()
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(spec.lease_transitions.unwrap_or(0) + i32::from(!ours)),
            ..spec
        };
        let lease = Lease {
            // Carries the resourceVersion read above: a concurrent change makes this 409.
            metadata: current.metadata,
            spec: Some(next),
        };
        conflict_is_false(
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await,
        )
    }
}

fn expired(spec: &LeaseSpec) -> bool {
    let Some(renewed) = &spec.renew_time else {
        return true;
    };
    let duration = chrono::Duration::seconds(i64::from(
        spec.lease_duration_seconds
            .unwrap_or(LEASE_DURATION_SECONDS),
    ));
    renewed.0 + duration < Utc::now()
}

/// A write that lost a race (409) means someone else holds the lease.
fn conflict_is_false(result: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(err) => Err(err),
    }
}

//! A deployment as one JSON document: what `GET /deployments/{id}` answers, and what
//! `skyport render-manifests` reads back from a file. Both the API and the Kubernetes
//! renderer depend on this shape, so it lives in the domain rather than in either layer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::network::DomainStatus;
use super::{DesiredState, Endpoints, Plan, Status, Tier};

/// A deployment: its spec, and the status the reconciler observed.
// Deserialize: `skyport render-manifests` reads this shape from a file.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeploymentView {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub plan: Plan,
    pub tier: Tier,
    pub version: String,
    /// What the deployment was asked to be doing.
    pub desired_state: DesiredState,
    pub status: Status,
    /// Why the status is what it is, e.g. the failure reason.
    pub status_reason: Option<String>,
    /// Bumped on every spec change.
    pub generation: i64,
    /// The generation the running broker reflects.
    pub observed_generation: i64,
    /// The revision of the settings (app keys, authentication, TLS, domains, ...) the
    /// running broker reported having in force; a resource whose `revision` is above it
    /// is `pending`. It does not advance while the deployment is stopped.
    #[serde(default)]
    pub applied_revision: i64,
    /// Where clients connect; absent until the broker first runs.
    pub endpoints: Option<Endpoints>,
    /// Networking add-ons: shown by `GET /deployments/{id}`, absent from lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A deployment's networking add-ons, in brief (each has its own resource for details).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct NetworkView {
    /// Custom domains with their status (`pending_dns` or `active`).
    #[serde(default)]
    pub domains: Vec<NetworkDomain>,
    /// The NAT gateway's egress addresses; empty without one.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub egress_addresses: Vec<std::net::IpAddr>,
    #[serde(default)]
    pub internal_endpoint: Option<NetworkInternalEndpoint>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NetworkDomain {
    pub domain: String,
    pub status: DomainStatus,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NetworkInternalEndpoint {
    /// Absent until the platform assigns one.
    #[schema(value_type = Option<String>)]
    pub address: Option<std::net::IpAddr>,
    #[schema(value_type = Vec<String>)]
    pub allowed_cidrs: Vec<ipnet::IpNet>,
}

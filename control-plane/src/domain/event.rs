//! Deployment events: what happened to a deployment, by whom, kept for the retention period.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Type of a deployment event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum EventType {
    #[serde(rename = "deployment.created")]
    DeploymentCreated,
    #[serde(rename = "deployment.provisioning")]
    DeploymentProvisioning,
    #[serde(rename = "deployment.running")]
    DeploymentRunning,
    #[serde(rename = "deployment.stopped")]
    DeploymentStopped,
    #[serde(rename = "deployment.started")]
    DeploymentStarted,
    #[serde(rename = "deployment.tier_changed")]
    DeploymentTierChanged,
    #[serde(rename = "deployment.failed")]
    DeploymentFailed,
    #[serde(rename = "deployment.deleted")]
    DeploymentDeleted,
    #[serde(rename = "broker.restarted")]
    BrokerRestarted,
    #[serde(rename = "tls.updated")]
    TlsUpdated,
    #[serde(rename = "tls.removed")]
    TlsRemoved,
    #[serde(rename = "domain.added")]
    DomainAdded,
    #[serde(rename = "domain.verified")]
    DomainVerified,
    #[serde(rename = "domain.removed")]
    DomainRemoved,
    #[serde(rename = "nat_gateway.created")]
    NatGatewayCreated,
    #[serde(rename = "nat_gateway.deleted")]
    NatGatewayDeleted,
    #[serde(rename = "internal_endpoint.created")]
    InternalEndpointCreated,
    /// Its allowed ranges changed (an extension of the contract's list: a change that
    /// is neither a creation nor a deletion).
    #[serde(rename = "internal_endpoint.updated")]
    InternalEndpointUpdated,
    #[serde(rename = "internal_endpoint.deleted")]
    InternalEndpointDeleted,
    /// An alert rule's condition became true (details: rule, subject, message).
    #[serde(rename = "alert.fired")]
    AlertFired,
    /// An alert's condition ended.
    #[serde(rename = "alert.resolved")]
    AlertResolved,
    /// A Skyport-issued certificate (the deployment's, or a custom domain's) was renewed.
    #[serde(rename = "certificate.renewed")]
    CertificateRenewed,
    /// An uploaded certificate expires within 30 days (once per certificate).
    #[serde(rename = "certificate.expiring")]
    CertificateExpiring,
}

impl EventType {
    pub const ALL: [EventType; 23] = [
        EventType::DeploymentCreated,
        EventType::DeploymentProvisioning,
        EventType::DeploymentRunning,
        EventType::DeploymentStopped,
        EventType::DeploymentStarted,
        EventType::DeploymentTierChanged,
        EventType::DeploymentFailed,
        EventType::DeploymentDeleted,
        EventType::BrokerRestarted,
        EventType::TlsUpdated,
        EventType::TlsRemoved,
        EventType::DomainAdded,
        EventType::DomainVerified,
        EventType::DomainRemoved,
        EventType::NatGatewayCreated,
        EventType::NatGatewayDeleted,
        EventType::InternalEndpointCreated,
        EventType::InternalEndpointUpdated,
        EventType::InternalEndpointDeleted,
        EventType::AlertFired,
        EventType::AlertResolved,
        EventType::CertificateRenewed,
        EventType::CertificateExpiring,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::DeploymentCreated => "deployment.created",
            EventType::DeploymentProvisioning => "deployment.provisioning",
            EventType::DeploymentRunning => "deployment.running",
            EventType::DeploymentStopped => "deployment.stopped",
            EventType::DeploymentStarted => "deployment.started",
            EventType::DeploymentTierChanged => "deployment.tier_changed",
            EventType::DeploymentFailed => "deployment.failed",
            EventType::DeploymentDeleted => "deployment.deleted",
            EventType::BrokerRestarted => "broker.restarted",
            EventType::TlsUpdated => "tls.updated",
            EventType::TlsRemoved => "tls.removed",
            EventType::DomainAdded => "domain.added",
            EventType::DomainVerified => "domain.verified",
            EventType::DomainRemoved => "domain.removed",
            EventType::NatGatewayCreated => "nat_gateway.created",
            EventType::NatGatewayDeleted => "nat_gateway.deleted",
            EventType::InternalEndpointCreated => "internal_endpoint.created",
            EventType::InternalEndpointUpdated => "internal_endpoint.updated",
            EventType::InternalEndpointDeleted => "internal_endpoint.deleted",
            EventType::AlertFired => "alert.fired",
            EventType::AlertResolved => "alert.resolved",
            EventType::CertificateRenewed => "certificate.renewed",
            EventType::CertificateExpiring => "certificate.expiring",
        }
    }
}

impl FromStr for EventType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown event type `{s}`"))
    }
}

/// Who caused an event: an API key, a console user, or Skyport itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    ApiKey(super::Id),
    /// A console user, signed in.
    User(super::Id),
    System,
}

impl Actor {
    pub fn render(&self) -> String {
        match self {
            Actor::ApiKey(id) => format!("api_key:{id}"),
            Actor::User(id) => format!("user:{id}"),
            Actor::System => "system".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_name_and_serde() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
    }
}

//! Deployment vocabulary: plans, tiers, names, lifecycle states and endpoints.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Service plan, as EMQX Cloud sells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// Shared-style plan: TLS ports only (mqtts, wss).
    Serverless,
    /// Dedicated broker: all listeners.
    Dedicated,
    /// Dedicated broker with premium tiers and add-ons.
    Premium,
}

impl Plan {
    /// Whether the plan exposes plain-text listeners (mqtt, ws).
    pub fn exposes_plaintext(self) -> bool {
        !matches!(self, Plan::Serverless)
    }

    /// Tier given to a deployment whose request names none.
    pub fn default_tier(self) -> Tier {
        match self {
            Plan::Serverless | Plan::Dedicated => Tier {
                max_sessions: 1_000,
                max_tps: 1_000,
            },
            Plan::Premium => Tier {
                max_sessions: 5_000,
                max_tps: 5_000,
            },
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Serverless => "serverless",
            Plan::Dedicated => "dedicated",
            Plan::Premium => "premium",
        }
    }
}

impl FromStr for Plan {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "serverless" => Ok(Plan::Serverless),
            "dedicated" => Ok(Plan::Dedicated),
            "premium" => Ok(Plan::Premium),
            other => Err(format!(
                "unknown plan `{other}`: expected serverless, dedicated or premium"
            )),
        }
    }
}

/// Capacity limits of a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Maximum sessions (connected plus persistent offline), 1 to 1,000,000.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_sessions: i64,
    /// Maximum messages per second, 1 to 1,000,000.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_tps: i64,
}

impl Tier {
    pub const MAX: i64 = 1_000_000;

    /// The limits section of the broker's config (the bounds keep both counts positive);
    /// the plan bounds the node's rules and sinks.
    pub fn broker_limits(self, plan: Plan) -> skyport_settings::config::Limits {
        skyport_settings::config::Limits {
            max_sessions: u64::try_from(self.max_sessions).ok(),
            max_tps: u64::try_from(self.max_tps).ok(),
            plan: Some(plan.as_str().to_owned()),
            ..Default::default()
        }
    }

    /// Checks the bounds; the error names the offending field.
    pub fn validate(self) -> Result<Self, String> {
        for (field, value) in [
            ("max_sessions", self.max_sessions),
            ("max_tps", self.max_tps),
        ] {
            if !(1..=Self::MAX).contains(&value) {
                return Err(format!(
                    "tier.{field} must be between 1 and {}, got {value}",
                    Self::MAX
                ));
            }
        }
        Ok(self)
    }
}

/// A deployment name: 1 to 64 characters, letters, digits, space, `-`, `_` or `.`,
/// starting with a letter or digit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentName(String);

impl DeploymentName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let len = raw.chars().count();
        if len == 0 {
            return Err("name must not be empty".into());
        }
        if len > Self::MAX_LEN {
            return Err(format!(
                "name is {len} characters long; the maximum is {}",
                Self::MAX_LEN
            ));
        }
        if !raw
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        {
            return Err("name must start with a letter or digit".into());
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.')))
        {
            return Err(format!(
                "name contains `{bad}`; allowed are letters, digits, space, `-`, `_` and `.`"
            ));
        }
        if raw.ends_with(' ') {
            return Err("name must not end with a space".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeploymentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the user asked the deployment to be doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    Running,
    Stopped,
}

impl DesiredState {
    pub fn as_str(self) -> &'static str {
        match self {
            DesiredState::Running => "running",
            DesiredState::Stopped => "stopped",
        }
    }
}

impl FromStr for DesiredState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(Self::Running),
            "stopped" => Ok(Self::Stopped),
            other => Err(format!("unknown desired state `{other}`")),
        }
    }
}

/// Observed lifecycle status of a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Provisioning,
    Running,
    Updating,
    Stopping,
    Stopped,
    Starting,
    Deleting,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Provisioning => "provisioning",
            Status::Running => "running",
            Status::Updating => "updating",
            Status::Stopping => "stopping",
            Status::Stopped => "stopped",
            Status::Starting => "starting",
            Status::Deleting => "deleting",
            Status::Failed => "failed",
        }
    }

    /// Statuses in which the reconciler still has work to do, so it polls quickly.
    pub fn is_transitional(self) -> bool {
        matches!(
            self,
            Status::Provisioning
                | Status::Updating
                | Status::Stopping
                | Status::Starting
                | Status::Deleting
        )
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Status::Provisioning,
            Status::Running,
            Status::Updating,
            Status::Stopping,
            Status::Stopped,
            Status::Starting,
            Status::Deleting,
            Status::Failed,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
        .ok_or_else(|| format!("unknown status `{s}`"))
    }
}

/// Where clients reach a deployment. Absent URLs are listeners the plan does not expose.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Endpoints {
    /// Host name or address clients connect to.
    pub host: String,
    /// Plain MQTT over TCP, e.g. `mqtt://host:1883`.
    pub mqtt: Option<String>,
    /// MQTT over TLS, e.g. `mqtts://host:8883`.
    pub mqtts: Option<String>,
    /// MQTT over WebSocket, e.g. `ws://host:8083/mqtt`.
    pub ws: Option<String>,
    /// MQTT over secure WebSocket, e.g. `wss://host:8084/mqtt`.
    pub wss: Option<String>,
    /// Base URL of the deployment's HTTP API (the v4 API lives under `{api}/api/v4`).
    pub api: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_at_the_edge() {
        assert!(DeploymentName::parse("demo").is_ok());
        assert!(DeploymentName::parse("My broker-1.prod_eu").is_ok());
        assert!(DeploymentName::parse("").is_err());
        assert!(DeploymentName::parse(" lead").is_err());
        assert!(DeploymentName::parse("trail ").is_err());
        assert!(DeploymentName::parse("bad/slash").is_err());
        assert!(DeploymentName::parse(&"a".repeat(64)).is_ok());
        assert!(DeploymentName::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn tiers_are_bounded() {
        assert!(Tier {
            max_sessions: 1,
            max_tps: 1
        }
        .validate()
        .is_ok());
        assert!(Tier {
            max_sessions: 0,
            max_tps: 1
        }
        .validate()
        .is_err());
        assert!(Tier {
            max_sessions: 1,
            max_tps: Tier::MAX + 1
        }
        .validate()
        .is_err());
    }

    #[test]
    fn status_round_trips() {
        for s in ["provisioning", "running", "stopped", "failed", "deleting"] {
            assert_eq!(s.parse::<Status>().unwrap().as_str(), s);
        }
    }
}

//! What a deployment's plan allows of data integrations: serverless only the webhook and
//! republish actions and 4 rules; dedicated 50 rules, premium 200, every sink.

use super::resource;

/// A plan's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub name: String,
    pub max_rules: usize,
    /// `None`: every action.
    pub actions: Option<&'static [&'static str]>,
    /// `None`: every resource type.
    pub resource_types: Option<&'static [&'static str]>,
}

/// A change the plan does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the {plan} plan does not include {what}")]
    NotSupported { plan: String, what: String },
    #[error("the {plan} plan allows {max} rules")]
    LimitReached { plan: String, max: usize },
}

impl PlanError {
    /// The stable problem code answered for it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotSupported { .. } => "plan_not_supported",
            Self::LimitReached { .. } => "plan_limit_reached",
        }
    }
}

impl Plan {
    /// The limits of plan `name`; `None` for an unknown plan (no limits).
    pub fn named(name: &str) -> Option<Self> {
        let (max_rules, actions, resource_types): (
            usize,
            Option<&'static [&'static str]>,
            Option<&'static [&'static str]>,
        ) = match name {
            "serverless" => (
                4,
                Some(&["republish", "data_to_webserver"]),
                Some(&[resource::WEB_HOOK]),
            ),
            "dedicated" => (50, None, None),
            "premium" => (200, None, None),
            _ => return None,
        };
        Some(Self {
            name: name.to_owned(),
            max_rules,
            actions,
            resource_types,
        })
    }

    pub fn check_rule_count(&self, count: usize) -> Result<(), PlanError> {
        if count > self.max_rules {
            return Err(PlanError::LimitReached {
                plan: self.name.clone(),
                max: self.max_rules,
            });
        }
        Ok(())
    }

    pub fn check_action(&self, name: &str) -> Result<(), PlanError> {
        match self.actions {
            Some(allowed)
                if !allowed.contains(&name)
                    && super::actions::catalogue().iter().any(|a| a.name == name) =>
            {
                Err(PlanError::NotSupported {
                    plan: self.name.clone(),
                    what: format!("the {name} action"),
                })
            }
            _ => Ok(()),
        }
    }

    pub fn check_resource(&self, kind: &str) -> Result<(), PlanError> {
        match self.resource_types {
            Some(allowed) if !allowed.contains(&kind) && resource::TYPES.contains(&kind) => {
                Err(PlanError::NotSupported {
                    plan: self.name.clone(),
                    what: format!("{kind} resources"),
                })
            }
            _ => Ok(()),
        }
    }
}

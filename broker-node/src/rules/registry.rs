//! Creating, changing and removing rules and resources: each change is checked whole,
//! stored durably, then put in force by swapping the rule set (clients stay connected;
//! unchanged actions keep their buffers and tasks).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::actions::{Action, ActionError};
use super::buffer::Buffer;
use super::engine::{Live, LiveAction, LiveRule, RuleMetrics};
use super::model::{new_id, now_ms, ActionRecord, ResourceRecord, RuleRecord};
use super::plan::PlanError;
use super::resource::Resource;
use super::sql::{self, SqlError};
use super::Rules;

/// Rules and resources in force.
#[derive(Default)]
pub struct Registry {
    rules: BTreeMap<String, Arc<LiveRule>>,
    resources: BTreeMap<String, Arc<Resource>>,
}

/// Why a change was refused (nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("rawsql: {0}")]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Action(#[from] ActionError),
    #[error("a rule needs at least one action")]
    NoActions,
    #[error("{0}")]
    Invalid(String),
    #[error("no rule or resource {0:?}")]
    NotFound(String),
    #[error("{0:?} already exists")]
    Exists(String),
    #[error("resource {resource} is used by rule {rule}; delete or change the rule first")]
    InUse { resource: String, rule: String },
    #[error("resource unreachable: {0}; nothing was stored")]
    Unreachable(String),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("rule store: {0}")]
    Store(#[from] super::store::StoreError),
    #[error("the rule engine has not started")]
    NotStarted,
}

/// A rule to create.
pub struct NewRule {
    pub id: Option<String>,
    pub rawsql: String,
    pub actions: Vec<(String, Map<String, Value>)>,
    pub description: String,
    pub enabled: bool,
}

/// Changes to a rule; what is `None` stays.
#[derive(Default)]
pub struct RuleUpdate {
    pub rawsql: Option<String>,
    pub actions: Option<Vec<(String, Map<String, Value>)>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

/// A resource to create.
pub struct NewResource {
    pub id: Option<String>,
    pub kind: String,
    pub config: Map<String, Value>,
    pub description: String,
}

/// Ids are printable, short, and safe in a URL path.
fn check_id(id: &str) -> Result<(), RuleError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(RuleError::Invalid(format!(
            "id {id:?} must be 1 to 64 letters, digits, ':', '_', '-' or '.'"
        )))
    }
}

impl Rules {
    /// Loads stored resources and rules into force (at start).
    pub(super) async fn restore(&self) {
        let mut registry = self.inner.registry.lock().await;
        match self.inner.store.resources() {
            Ok(rows) => {
                for (id, row) in rows {
                    let built = serde_json::from_slice::<ResourceRecord>(&row)
                        .map_err(|e| e.to_string())
                        .and_then(|record| record.opened(&self.inner.key))
                        .and_then(|(record, clear)| {
                            Ok((Resource::build(record, self.egress())?, clear))
                        });
                    match built {
                        Ok((resource, clear)) => {
                            if clear {
                                // Stored in the clear by an older node: sealed from now on.
                                if let Err(e) = self.persist_resource(&resource.record).await {
                                    tracing::error!(resource = %id, error = %e, "cannot seal the stored resource's secrets");
                                }
                            }
                            registry.resources.insert(id, Arc::new(resource));
                        }
                        Err(e) => {
                            tracing::error!(resource = %id, error = %e, "stored resource unusable; skipped")
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the stored resources"),
        }
        let rows = self.inner.store.rules().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the stored rules");
            Vec::new()
        });
        for (id, row) in rows {
            let built = serde_json::from_slice::<RuleRecord>(&row)
                .map_err(|e| RuleError::Invalid(e.to_string()))
                .and_then(|record| self.build(record, None, &registry));
            match built {
                Ok(rule) => {
                    registry.rules.insert(id, Arc::new(rule));
                }
                Err(e) => tracing::error!(rule = %id, error = %e, "stored rule unusable; skipped"),
            }
        }
        // Buffers of actions that no longer exist.
        let actions: std::collections::HashSet<&str> = registry
            .rules
            .values()
            .flat_map(|r| r.actions.iter().map(|a| a.record.id.as_str()))
            .collect();
        if let Ok(buffered) = self.inner.store.buffered_actions() {
            for action in buffered.iter().filter(|a| !actions.contains(a.as_str())) {
                let _ = self
                    .inner
                    .store
                    .buffer_writer()
                    .send(super::store::BufferOp::DeleteAll {
                        action: action.as_str().into(),
                    });
            }
        }
        let rules = registry.rules.len();
        self.publish(&registry);
        if rules > 0 {
            tracing::info!(
                rules,
                resources = registry.resources.len(),
                "rules restored"
            );
        }
    }

    /// The deployment's egress address (NAT gateway), if any.
    fn egress(&self) -> Option<std::net::IpAddr> {
        self.inner
            .broker
            .get()
            .and_then(|b| b.security.settings().network.egress_address)
    }

    /// Puts `registry`'s rules in force.
    fn publish(&self, registry: &Registry) {
        self.inner.live.store(Arc::new(Live {
            rules: registry.rules.values().cloned().collect(),
        }));
    }

    /// A rule in force for `record`; actions equal to one of `previous`'s are kept
    /// (buffer, counters and task).
    fn build(
        &self,
        record: RuleRecord,
        previous: Option<&LiveRule>,
        registry: &Registry,
    ) -> Result<LiveRule, RuleError> {
        let statement = sql::parse(&record.rawsql)?;
        if record.actions.is_empty() {
            return Err(RuleError::NoActions);
        }
        let broker = self.inner.broker.get().ok_or(RuleError::NotStarted)?;
        let resources: HashMap<String, Arc<Resource>> = registry
            .resources
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut actions = Vec::new();
        for action in &record.actions {
            let kept = previous.and_then(|p| p.actions.iter().find(|a| a.record == *action));
            if let Some(kept) = kept {
                actions.push(kept.clone());
                continue;
            }
            let prepared = Action::prepare(&action.name, &action.params, &resources)?;
            let restored = self.inner.store.buffered(&action.id)?;
            let buffer = Buffer::new(
                &action.id,
                self.settings().buffer,
                self.inner.store.buffer_writer(),
                restored,
            );
            actions.push(Arc::new(LiveAction::start(
                action.clone(),
                prepared,
                buffer,
                broker.clone(),
            )));
        }
        Ok(LiveRule {
            record,
            statement,
            actions,
            metrics: previous
                .map_or_else(|| Arc::new(RuleMetrics::default()), |p| p.metrics.clone()),
        })
    }

    /// Checks the plan's limits for `actions` (and one more rule when `adding`).
    fn check_plan(
        &self,
        registry: &Registry,
        actions: &[(String, Map<String, Value>)],
        adding: bool,
    ) -> Result<(), RuleError> {
        if let Some(plan) = &self.settings().plan {
            if adding {
                plan.check_rule_count(registry.rules.len() + 1)?;
            }
            for (name, _) in actions {
                plan.check_action(name)?;
            }
        }
        Ok(())
    }

    pub async fn create_rule(&self, new: NewRule) -> Result<Arc<LiveRule>, RuleError> {
        let mut registry = self.inner.registry.lock().await;
        let id = new.id.unwrap_or_else(|| new_id("rule:"));
        check_id(&id)?;
        if registry.rules.contains_key(&id) {
            return Err(RuleError::Exists(id));
        }
        sql::parse(&new.rawsql)?;
        self.check_plan(&registry, &new.actions, true)?;
        let record = RuleRecord {
            id: id.clone(),
            rawsql: new.rawsql,
            actions: action_records(new.actions),
            description: new.description,
            enabled: new.enabled,
            created_at: now_ms(),
        };
        let rule = Arc::new(self.build(record, None, &registry)?);
        self.persist_rule(&rule.record).await?;
        registry.rules.insert(id, rule.clone());
        self.publish(&registry);
        Ok(rule)
    }

    pub async fn update_rule(
        &self,
        id: &str,
        update: RuleUpdate,
    ) -> Result<Arc<LiveRule>, RuleError> {
        let mut registry = self.inner.registry.lock().await;
        let previous = registry
            .rules
            .get(id)
            .cloned()
            .ok_or_else(|| RuleError::NotFound(id.to_owned()))?;
        let mut record = previous.record.clone();
        if let Some(rawsql) = update.rawsql {
            record.rawsql = rawsql;
        }
        if let Some(actions) = update.actions {
            self.check_plan(&registry, &actions, false)?;
            // An action given again with the same name and params keeps its id (and so
            // its buffer).
            let mut old = previous.record.actions.clone();
            record.actions = actions
                .into_iter()
                .map(|(name, params)| {
                    match old
                        .iter()
                        .position(|a| a.name == name && a.params == params)
                    {
                        Some(i) => old.remove(i),
                        None => action_records(vec![(name, params)]).remove(0),
                    }
                })
                .collect();
        }
        if let Some(description) = update.description {
            record.description = description;
        }
        if let Some(enabled) = update.enabled {
            record.enabled = enabled;
        }
        let rule = Arc::new(self.build(record, Some(&previous), &registry)?);
        self.persist_rule(&rule.record).await?;
        registry.rules.insert(id.to_owned(), rule.clone());
        self.publish(&registry);
        discard_unused(&previous, Some(&rule));
        Ok(rule)
    }

    pub async fn delete_rule(&self, id: &str) -> Result<(), RuleError> {
        let mut registry = self.inner.registry.lock().await;
        let Some(previous) = registry.rules.get(id).cloned() else {
            return Err(RuleError::NotFound(id.to_owned()));
        };
        let store = self.inner.store.clone();
        let key = id.to_owned();
        tokio::task::spawn_blocking(move || store.delete_rule(&key))
            .await
            .map_err(|e| RuleError::Invalid(e.to_string()))??;
        registry.rules.remove(id);
        self.publish(&registry);
        discard_unused(&previous, None);
        Ok(())
    }

    pub async fn rules(&self) -> Vec<Arc<LiveRule>> {
        self.inner
            .registry
            .lock()
            .await
            .rules
            .values()
            .cloned()
            .collect()
    }

    pub async fn rule(&self, id: &str) -> Option<Arc<LiveRule>> {
        self.inner.registry.lock().await.rules.get(id).cloned()
    }

    pub async fn create_resource(&self, new: NewResource) -> Result<Arc<Resource>, RuleError> {
        let mut registry = self.inner.registry.lock().await;
        let id = new.id.unwrap_or_else(|| new_id("resource:"));
        check_id(&id)?;
        if registry.resources.contains_key(&id) {
            return Err(RuleError::Exists(id));
        }
        if let Some(plan) = &self.settings().plan {
            plan.check_resource(&new.kind)?;
        }
        let record = ResourceRecord {
            id: id.clone(),
            kind: new.kind,
            config: new.config,
            description: new.description,
            created_at: now_ms(),
        };
        let resource =
            Arc::new(Resource::build(record, self.egress()).map_err(RuleError::Invalid)?);
        resource.check().await.map_err(RuleError::Unreachable)?;
        self.persist_resource(&resource.record).await?;
        registry.resources.insert(id, resource.clone());
        Ok(resource)
    }

    pub async fn resources(&self) -> Vec<Arc<Resource>> {
        self.inner
            .registry
            .lock()
            .await
            .resources
            .values()
            .cloned()
            .collect()
    }

    pub async fn resource(&self, id: &str) -> Option<Arc<Resource>> {
        self.inner.registry.lock().await.resources.get(id).cloned()
    }

    pub async fn delete_resource(&self, id: &str) -> Result<(), RuleError> {
        let mut registry = self.inner.registry.lock().await;
        if !registry.resources.contains_key(id) {
            return Err(RuleError::NotFound(id.to_owned()));
        }
        for rule in registry.rules.values() {
            if rule.actions.iter().any(|a| a.action.resource() == Some(id)) {
                return Err(RuleError::InUse {
                    resource: id.to_owned(),
                    rule: rule.record.id.clone(),
                });
            }
        }
        let store = self.inner.store.clone();
        let key = id.to_owned();
        tokio::task::spawn_blocking(move || store.delete_resource(&key))
            .await
            .map_err(|e| RuleError::Invalid(e.to_string()))??;
        registry.resources.remove(id);
        Ok(())
    }

    /// Stores `record` durably, its secrets sealed.
    async fn persist_resource(&self, record: &ResourceRecord) -> Result<(), RuleError> {
        let row = serde_json::to_vec(&record.sealed(&self.inner.key))
            .map_err(|e| RuleError::Invalid(e.to_string()))?;
        let store = self.inner.store.clone();
        let key = record.id.clone();
        tokio::task::spawn_blocking(move || store.put_resource(&key, &row))
            .await
            .map_err(|e| RuleError::Invalid(e.to_string()))??;
        Ok(())
    }

    async fn persist_rule(&self, record: &RuleRecord) -> Result<(), RuleError> {
        let row = serde_json::to_vec(record).map_err(|e| RuleError::Invalid(e.to_string()))?;
        let store = self.inner.store.clone();
        let key = record.id.clone();
        tokio::task::spawn_blocking(move || store.put_rule(&key, &row))
            .await
            .map_err(|e| RuleError::Invalid(e.to_string()))??;
        Ok(())
    }

    /// How many rules and resources there are.
    pub async fn counts(&self) -> (usize, usize) {
        let registry = self.inner.registry.lock().await;
        (registry.rules.len(), registry.resources.len())
    }
}

/// Records with fresh ids for `actions`.
fn action_records(actions: Vec<(String, Map<String, Value>)>) -> Vec<ActionRecord> {
    actions
        .into_iter()
        .map(|(name, params)| ActionRecord {
            id: new_id(&format!("{name}_")),
            name,
            params,
        })
        .collect()
}

/// Empties the buffers of `previous`'s actions that `current` no longer has.
fn discard_unused(previous: &LiveRule, current: Option<&LiveRule>) {
    for action in &previous.actions {
        let kept = current.is_some_and(|c| c.actions.iter().any(|a| Arc::ptr_eq(a, action)));
        if !kept {
            action.buffer.discard();
        }
    }
}

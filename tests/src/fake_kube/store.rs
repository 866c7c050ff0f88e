//! The fake API server's objects and the rules every write follows: server-side apply
//! with field managers, updates, `resourceVersion`, `generation`, finalizers, owner
//! references with cascading deletion, and the event log watches replay.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::fields::{self, FieldSet};
use super::kinds::{ApiError, Kind, Selector};
use super::validation::{check_identity, check_statefulset_update};

type Key = (&'static str, String, String);

/// One change, as a watch stream reports it.
#[derive(Clone, Debug)]
pub struct Event {
    pub rv: u64,
    pub resource: &'static str,
    pub namespace: String,
    pub kind: &'static str,
    pub object: Value,
}

/// A `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    manager: String,
    operation: String,
    subresource: String,
    api_version: String,
    time: String,
    fields: FieldSet,
}

#[derive(Default)]
struct State {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    log: Vec<Event>,
}

pub struct Store {
    state: Mutex<State>,
    events: broadcast::Sender<Event>,
}

/// How a write names the subresource it goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    Main,
    Status,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn entries(object: &Value) -> Vec<Entry> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| Entry {
                    manager: e["manager"].as_str().unwrap_or_default().to_owned(),
                    operation: e["operation"].as_str().unwrap_or_default().to_owned(),
                    subresource: e["subresource"].as_str().unwrap_or_default().to_owned(),
                    api_version: e["apiVersion"].as_str().unwrap_or_default().to_owned(),
                    time: e["time"].as_str().unwrap_or_default().to_owned(),
                    fields: fields::from_v1(&e["fieldsV1"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn set_entries(object: &mut Value, list: Vec<Entry>) {
    let rendered: Vec<Value> = list
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": fields::to_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    object["metadata"]["managedFields"] = Value::Array(rendered);
}

/// Everything but metadata and status: what `generation` tracks.
fn spec_of(object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    v
}

fn finalizers(object: &Value) -> Vec<Value> {
    object["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Keeps only what a write to `sub` may change.
fn restrict(kind: &Kind, sub: Sub, body: &mut Value) {
    let Some(map) = body.as_object_mut() else {
        return;
    };
    match sub {
        Sub::Main if kind.has_status => {
            map.remove("status");
        }
        Sub::Main => {}
        Sub::Status => {
            map.retain(|k, _| matches!(k.as_str(), "status" | "apiVersion" | "kind" | "metadata"))
        }
    }
}

impl Default for Store {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            events: broadcast::channel(4096).0,
        }
    }
}

impl Store {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, kind: &'static Kind, ns: &str, name: &str) -> Result<Value, ApiError> {
        let key = (kind.resource, ns.to_owned(), name.to_owned());
        self.lock()
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind, name))
    }

    /// Matching objects and the list's resourceVersion.
    pub fn list(&self, kind: &'static Kind, ns: &str, selector: &Selector) -> (Vec<Value>, u64) {
        let state = self.lock();
        let items = state
            .objects
            .iter()
            .filter(|((r, n, _), o)| *r == kind.resource && n == ns && selector.matches(o))
            .map(|(_, o)| o.clone())
            .collect();
        (items, state.rv)
    }

    /// Events after `since` (or synthetic ADDED events for everything, when `None`) and a
    /// receiver for the ones to come, taken atomically so nothing falls in between.
    pub fn watch(
        &self,
        kind: &'static Kind,
        ns: &str,
        since: Option<u64>,
    ) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let state = self.lock();
        let rx = self.events.subscribe();
        let backlog = match since {
            Some(rv) => state
                .log
                .iter()
                .filter(|e| e.rv > rv && e.resource == kind.resource && e.namespace == ns)
                .cloned()
                .collect(),
            None => state
                .objects
                .iter()
                .filter(|((r, n, _), _)| *r == kind.resource && n == ns)
                .map(|((r, n, _), o)| Event {
                    rv: state.rv,
                    resource: r,
                    namespace: n.clone(),
                    kind: "ADDED",
                    object: o.clone(),
                })
                .collect(),
        };
        (backlog, rx)
    }

    /// Server-side apply of `body` by `manager`. Returns the object and whether it was
    /// created.
    #[expect(clippy::too_many_arguments, reason = "mirrors the request's parts")]
    pub fn apply(
        &self,
        kind: &'static Kind,
        ns: &str,
        name: &str,
        mut body: Value,
        manager: &str,
        force: bool,
        sub: Sub,
    ) -> Result<(Value, bool), ApiError> {
        check_identity(kind, ns, name, &body)?;
        restrict(kind, sub, &mut body);
        let mut state = self.lock();
        let key = (kind.resource, ns.to_owned(), name.to_owned());
        let live = state.objects.get(&key).cloned();
        if sub == Sub::Status && live.is_none() {
            return Err(ApiError::not_found(kind, name));
        }
        let mut applied_fields = fields::of(&body);
        if sub == Sub::Status {
            applied_fields.retain(|p| p.first().is_some_and(|f| f == "f:status"));
        }
        let live_value = live.clone().unwrap_or(Value::Null);
        let mut list = entries(&live_value);
        let subresource = if sub == Sub::Status { "status" } else { "" };
        let is_me = |e: &Entry| {
            e.manager == manager && e.operation == "Apply" && e.subresource == subresource
        };
        let differs = |p: &fields::Path| fields::get(&live_value, p) != fields::get(&body, p);

        let mut conflicts = Vec::new();
        for e in list.iter().filter(|e| !is_me(e)) {
            for q in &e.fields {
                if let Some(p) = applied_fields
                    .iter()
                    .find(|p| fields::overlaps(p, q) && differs(p))
                {
                    conflicts.push((e.manager.clone(), fields::display(p)));
                }
            }
        }
        if !conflicts.is_empty() {
            if !force {
                let lines: Vec<String> = conflicts
                    .iter()
                    .map(|(m, f)| format!("conflict with \"{m}\": {f}"))
                    .collect();
                let mut err = ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "Apply failed with {} conflict{}: {}",
                        conflicts.len(),
                        if conflicts.len() == 1 { "" } else { "s" },
                        lines.join("; ")
                    ),
                );
                err.causes = conflicts.iter().map(|(m, f)| json!({"type": "FieldManagerConflict", "message": format!("conflict with \"{m}\""), "field": f})).collect();
                return Err(err);
            }
            for e in list.iter_mut().filter(|e| !is_me(e)) {
                e.fields.retain(|q| {
                    !applied_fields
                        .iter()
                        .any(|p| fields::overlaps(p, q) && differs(p))
                });
            }
        }

        let mut new = live.clone().unwrap_or_else(|| {
            json!({
                "apiVersion": kind.api_version(), "kind": kind.kind,
                "metadata": { "name": name, "namespace": ns },
            })
        });
        let previous: FieldSet = list
            .iter()
            .find(|e| is_me(e))
            .map(|e| e.fields.clone())
            .unwrap_or_default();
        for p in previous.difference(&applied_fields) {
            let shared = list
                .iter()
                .filter(|e| !is_me(e))
                .any(|e| e.fields.iter().any(|q| fields::overlaps(p, q)));
            if !shared {
                fields::remove(&mut new, p);
            }
        }
        for p in &applied_fields {
            fields::copy(&mut new, &body, p);
        }
        match list.iter_mut().find(|e| is_me(e)) {
            Some(e) if e.fields == applied_fields => {}
            Some(e) => {
                e.fields = applied_fields;
                e.time = now();
            }
            None => list.push(Entry {
                manager: manager.to_owned(),
                operation: "Apply".into(),
                subresource: subresource.into(),
                api_version: kind.api_version(),
                time: now(),
                fields: applied_fields,
            }),
        }
        set_entries(&mut new, list);
        let created = live.is_none();
        let object = self.commit(&mut state, kind, key, live, new)?;
        Ok((object, created))
    }

    /// A JSON merge patch (or create, when `create`) by `manager`, as an `Update`.
    #[expect(clippy::too_many_arguments, reason = "mirrors the request's parts")]
    pub fn update(
        &self,
        kind: &'static Kind,
        ns: &str,
        name: &str,
        mut patch: Value,
        manager: &str,
        sub: Sub,
        create: bool,
    ) -> Result<Value, ApiError> {
        if create {
            check_identity(kind, ns, name, &patch)?;
        }
        let precondition = patch["metadata"]["resourceVersion"]
            .as_str()
            .map(str::to_owned);
        if let Some(meta) = patch.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        restrict(kind, sub, &mut patch);
        let mut state = self.lock();
        let key = (kind.resource, ns.to_owned(), name.to_owned());
        let live = state.objects.get(&key).cloned();
        let base = match (&live, create) {
            (Some(_), true) => {
                return Err(ApiError::new(
                    409,
                    "AlreadyExists",
                    format!("{} \"{name}\" already exists", kind.qualified()),
                ))
            }
            (None, false) => return Err(ApiError::not_found(kind, name)),
            (Some(live), false) => live.clone(),
            (None, true) => {
                json!({"apiVersion": kind.api_version(), "kind": kind.kind, "metadata": {"name": name, "namespace": ns}})
            }
        };
        if let (Some(want), Some(live)) = (&precondition, &live) {
            if live["metadata"]["resourceVersion"].as_str() != Some(want) {
                return Err(ApiError::new(409, "Conflict", format!("Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again", kind.qualified())));
            }
        }
        let mut new = base.clone();
        fields::merge_patch(&mut new, &patch);
        let all: FieldSet = fields::of(&base)
            .union(&fields::of(&new))
            .cloned()
            .collect();
        let changed: FieldSet = all
            .into_iter()
            .filter(|p| fields::get(&base, p) != fields::get(&new, p))
            .collect();
        let subresource = if sub == Sub::Status { "status" } else { "" };
        let mut list = entries(&base);
        for e in &mut list {
            e.fields
                .retain(|q| !changed.iter().any(|p| fields::overlaps(p, q)));
        }
        let mine: FieldSet = changed
            .into_iter()
            .filter(|p| fields::get(&new, p).is_some())
            .collect();
        match list.iter_mut().find(|e| {
            e.manager == manager && e.operation == "Update" && e.subresource == subresource
        }) {
            Some(e) => {
                e.fields.extend(mine);
                e.time = now();
            }
            None => list.push(Entry {
                manager: manager.to_owned(),
                operation: "Update".into(),
                subresource: subresource.into(),
                api_version: kind.api_version(),
                time: now(),
                fields: mine,
            }),
        }
        set_entries(&mut new, list);
        self.commit(&mut state, kind, key, live, new)
    }

    /// Deletes the object: at once, or (with finalizers) by marking it. `Ok(Some(obj))`
    /// when it still exists, `Ok(None)` when it is gone.
    pub fn delete(
        &self,
        kind: &'static Kind,
        ns: &str,
        name: &str,
        orphan: bool,
    ) -> Result<Option<Value>, ApiError> {
        let mut state = self.lock();
        let key = (kind.resource, ns.to_owned(), name.to_owned());
        let live = state
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind, name))?;
        if finalizers(&live).is_empty() {
            self.erase(&mut state, key, orphan);
            return Ok(None);
        }
        if live["metadata"]["deletionTimestamp"].is_string() {
            return Ok(Some(live));
        }
        let mut new = live.clone();
        new["metadata"]["deletionTimestamp"] = json!(now());
        new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        self.commit(&mut state, kind, key, Some(live), new)
            .map(Some)
    }

    /// Stores `new` if it differs from `live`, with a new resourceVersion (and generation
    /// when the spec changed); finishes a deletion whose finalizers are all gone.
    fn commit(
        &self,
        state: &mut State,
        kind: &'static Kind,
        key: Key,
        live: Option<Value>,
        mut new: Value,
    ) -> Result<Value, ApiError> {
        if let Some(live) = &live {
            if live["metadata"]["deletionTimestamp"].is_string() {
                let before = finalizers(live);
                if finalizers(&new).iter().any(|f| !before.contains(f)) {
                    return Err(ApiError::new(422, "Invalid", format!("{} \"{}\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted", kind.qualified(), key.2)));
                }
            }
            if *live == new {
                return Ok(new);
            }
        }
        if kind.resource == "statefulsets" {
            if let Some(live) = &live {
                check_statefulset_update(live, &new, &key.2)?;
            }
        }
        let generation = match &live {
            None => 1,
            Some(live) => {
                let g = live["metadata"]["generation"].as_i64().unwrap_or(1);
                if spec_of(live) != spec_of(&new) {
                    g + 1
                } else {
                    g
                }
            }
        };
        state.rv += 1;
        let meta = new["metadata"]
            .as_object_mut()
            .expect("objects have metadata");
        meta.insert("resourceVersion".into(), json!(state.rv.to_string()));
        meta.insert("generation".into(), json!(generation));
        if live.is_none() {
            meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            meta.insert("creationTimestamp".into(), json!(now()));
        }
        let kind_of_event = if live.is_none() { "ADDED" } else { "MODIFIED" };
        state.objects.insert(key.clone(), new.clone());
        self.record(state, key.0, &key.1, kind_of_event, new.clone());
        if new["metadata"]["deletionTimestamp"].is_string() && finalizers(&new).is_empty() {
            self.erase(state, key, false);
        }
        Ok(new)
    }

    fn record(
        &self,
        state: &mut State,
        resource: &'static str,
        ns: &str,
        kind: &'static str,
        object: Value,
    ) {
        let event = Event {
            rv: state.rv,
            resource,
            namespace: ns.to_owned(),
            kind,
            object,
        };
        state.log.push(event.clone());
        let _ = self.events.send(event);
    }

    /// Removes the object and garbage-collects (or orphans) its dependents.
    fn erase(&self, state: &mut State, key: Key, orphan: bool) {
        let Some(mut gone) = state.objects.remove(&key) else {
            return;
        };
        state.rv += 1;
        gone["metadata"]["resourceVersion"] = json!(state.rv.to_string());
        let uid = gone["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.record(state, key.0, &key.1, "DELETED", gone);
        let dependents: Vec<Key> = state
            .objects
            .iter()
            .filter(|((_, ns, _), o)| *ns == key.1 && owner_uids(o).contains(&uid))
            .map(|(k, _)| k.clone())
            .collect();
        for dep in dependents {
            let Some(object) = state.objects.get(&dep).cloned() else {
                continue;
            };
            let others_alive = owner_uids(&object)
                .iter()
                .any(|u| *u != uid && state.objects.values().any(|o| o["metadata"]["uid"] == *u));
            let kind = super::kinds::KINDS
                .iter()
                .find(|k| k.resource == dep.0)
                .expect("stored kinds are known");
            if orphan || others_alive {
                let mut new = object.clone();
                if let Some(refs) = new["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != uid.as_str());
                }
                let _ = self.commit(state, kind, dep, Some(object), new);
            } else if finalizers(&object).is_empty() {
                self.erase(state, dep, false);
            } else if !object["metadata"]["deletionTimestamp"].is_string() {
                let mut new = object.clone();
                new["metadata"]["deletionTimestamp"] = json!(now());
                let _ = self.commit(state, kind, dep, Some(object), new);
            }
        }
    }
}

fn owner_uids(object: &Value) -> Vec<String> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r["uid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

//! Field ownership for server-side apply, in the API server's `FieldsV1` shape.
//!
//! The subset: maps are owned field by field; `metadata.finalizers` is a set (each value
//! owned on its own, `v:` keys); every other list is atomic (owned and replaced as a
//! whole), where the real API server also knows associative lists keyed by name or port.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// One owned field: a path of `f:<name>` / `v:<json>` elements.
pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

/// Server-managed metadata that no manager owns.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// The fields set in `object` (an applied configuration or a live object).
pub fn of(object: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    if let Value::Object(map) = object {
        for (key, child) in map {
            match key.as_str() {
                "apiVersion" | "kind" => {}
                "metadata" => {
                    if let Value::Object(meta) = child {
                        for (mk, mv) in meta {
                            if !SERVER_METADATA.contains(&mk.as_str()) {
                                collect(mv, vec!["f:metadata".into(), format!("f:{mk}")], &mut out);
                            }
                        }
                    }
                }
                _ => collect(child, vec![format!("f:{key}")], &mut out),
            }
        }
    }
    out
}

fn collect(value: &Value, path: Path, out: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let mut p = path.clone();
                p.push(format!("f:{key}"));
                collect(child, p, out);
            }
        }
        Value::Array(items) if is_set(&path) && !items.is_empty() => {
            for item in items {
                let mut p = path.clone();
                p.push(format!("v:{item}"));
                out.insert(p);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

fn is_set(path: &Path) -> bool {
    path.len() == 2 && path[0] == "f:metadata" && path[1] == "f:finalizers"
}

/// Whether one path is a prefix of the other (owning one means touching the other).
pub fn overlaps(a: &Path, b: &Path) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// The value at `path`, if set.
pub fn get<'a>(object: &'a Value, path: &Path) -> Option<&'a Value> {
    let mut cur = object;
    for el in path {
        if let Some(name) = el.strip_prefix("f:") {
            cur = cur.as_object()?.get(name)?;
        } else if let Some(v) = el.strip_prefix("v:") {
            let want: Value = serde_json::from_str(v).ok()?;
            return cur.as_array()?.iter().find(|i| **i == want);
        }
    }
    Some(cur)
}

/// Sets `path` in `object` to the value it has in `from`.
pub fn copy(object: &mut Value, from: &Value, path: &Path) {
    let Some(value) = get(from, path).cloned() else {
        return;
    };
    let mut cur = object;
    for (i, el) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        if let Some(name) = el.strip_prefix("f:") {
            if !cur.is_object() {
                *cur = Value::Object(Map::new());
            }
            let map = cur.as_object_mut().expect("made an object");
            if last {
                map.insert(name.to_owned(), value);
                return;
            }
            let next_is_value = path.get(i + 1).is_some_and(|n| n.starts_with("v:"));
            cur = map.entry(name.to_owned()).or_insert_with(|| {
                if next_is_value {
                    Value::Array(Vec::new())
                } else {
                    Value::Object(Map::new())
                }
            });
        } else {
            if !cur.is_array() {
                *cur = Value::Array(Vec::new());
            }
            let items = cur.as_array_mut().expect("made an array");
            if !items.contains(&value) {
                items.push(value);
            }
            return;
        }
    }
}

/// Removes `path` from `object`, pruning maps and sets it leaves empty.
pub fn remove(object: &mut Value, path: &Path) {
    fn go(cur: &mut Value, path: &[String]) -> bool {
        let Some((el, rest)) = path.split_first() else {
            return false;
        };
        if let Some(name) = el.strip_prefix("f:") {
            let Some(map) = cur.as_object_mut() else {
                return false;
            };
            if rest.is_empty() {
                map.remove(name);
            } else if let Some(child) = map.get_mut(name) {
                if go(child, rest) {
                    map.remove(name);
                }
            }
            map.is_empty()
        } else if let Some(v) = el.strip_prefix("v:") {
            let Some(items) = cur.as_array_mut() else {
                return false;
            };
            if let Ok(want) = serde_json::from_str::<Value>(v) {
                items.retain(|i| *i != want);
            }
            items.is_empty()
        } else {
            false
        }
    }
    go(object, path);
}

/// `FieldsV1` JSON of a set.
pub fn to_v1(set: &FieldSet) -> Value {
    let mut root = Value::Object(Map::new());
    for path in set {
        let mut cur = &mut root;
        for el in path {
            cur = cur
                .as_object_mut()
                .expect("fieldsV1 nodes are objects")
                .entry(el.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    root
}

/// The set a `FieldsV1` JSON describes.
pub fn from_v1(v1: &Value) -> FieldSet {
    fn go(node: &Value, path: Path, out: &mut FieldSet) {
        match node.as_object() {
            Some(map) if !map.is_empty() => {
                for (key, child) in map {
                    if key == "." {
                        continue;
                    }
                    let mut p = path.clone();
                    p.push(key.clone());
                    go(child, p, out);
                }
            }
            _ if !path.is_empty() => {
                out.insert(path);
            }
            _ => {}
        }
    }
    let mut out = FieldSet::new();
    go(v1, Vec::new(), &mut out);
    out
}

/// The path in the API server's conflict message style: `.spec.replicas`.
pub fn display(path: &Path) -> String {
    path.iter()
        .map(|el| match el.strip_prefix("f:") {
            Some(name) => format!(".{name}"),
            None => format!("[{}]", el.trim_start_matches("v:")),
        })
        .collect()
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let map = target.as_object_mut().expect("made an object");
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

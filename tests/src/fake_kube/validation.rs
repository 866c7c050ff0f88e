//! Request validation the fake API server shares with the real one: identity of the
//! body against the URL, object names, and StatefulSet spec immutability.

use serde_json::{Map, Value};

use super::kinds::{ApiError, Kind};

/// The body must be of the endpoint's kind, name and namespace.
pub fn check_identity(kind: &Kind, ns: &str, name: &str, body: &Value) -> Result<(), ApiError> {
    let bad = |msg: String| Err(ApiError::new(400, "BadRequest", msg));
    if body["apiVersion"] != kind.api_version().as_str() || body["kind"] != kind.kind {
        return bad(format!(
            "the body is {} {}, the endpoint serves {} {}",
            body["apiVersion"],
            body["kind"],
            kind.api_version(),
            kind.kind
        ));
    }
    if body["metadata"]["name"].as_str().is_some_and(|n| n != name) {
        return bad(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            body["metadata"]["name"]
        ));
    }
    if body["metadata"]["namespace"]
        .as_str()
        .is_some_and(|n| n != ns)
    {
        return bad(format!(
            "the namespace of the object ({}) does not match the namespace on the request ({ns})",
            body["metadata"]["namespace"]
        ));
    }
    if !kind.valid_name(name) {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "{} \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\"",
                kind.qualified()
            ),
        ));
    }
    Ok(())
}

/// The API server's StatefulSet update validation: only some spec fields may change.
pub fn check_statefulset_update(live: &Value, new: &Value, name: &str) -> Result<(), ApiError> {
    const MUTABLE: &[&str] = &[
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "revisionHistoryLimit",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    ];
    let frozen = |spec: &Value| -> Map<String, Value> {
        spec.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| !MUTABLE.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    if frozen(&live["spec"]) != frozen(&new["spec"]) {
        return Err(ApiError::new(422, "Invalid", format!("StatefulSet.apps \"{name}\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")));
    }
    Ok(())
}

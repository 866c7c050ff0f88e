//! The kinds the fake API server serves, label selectors, and API errors as `Status`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// A namespaced resource type.
#[derive(Debug, PartialEq, Eq)]
pub struct Kind {
    pub resource: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Whether `status` is a subresource (ignored on writes to the main resource).
    pub has_status: bool,
}

pub const KINDS: &[Kind] = &[
    Kind {
        resource: "configmaps",
        group: "",
        version: "v1",
        kind: "ConfigMap",
        has_status: false,
    },
    Kind {
        resource: "secrets",
        group: "",
        version: "v1",
        kind: "Secret",
        has_status: false,
    },
    Kind {
        resource: "services",
        group: "",
        version: "v1",
        kind: "Service",
        has_status: true,
    },
    Kind {
        resource: "pods",
        group: "",
        version: "v1",
        kind: "Pod",
        has_status: true,
    },
    Kind {
        resource: "persistentvolumeclaims",
        group: "",
        version: "v1",
        kind: "PersistentVolumeClaim",
        has_status: true,
    },
    Kind {
        resource: "statefulsets",
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
        has_status: true,
    },
    Kind {
        resource: "poddisruptionbudgets",
        group: "policy",
        version: "v1",
        kind: "PodDisruptionBudget",
        has_status: true,
    },
    Kind {
        resource: "leases",
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        has_status: false,
    },
    Kind {
        resource: "networkpolicies",
        group: "networking.k8s.io",
        version: "v1",
        kind: "NetworkPolicy",
        has_status: false,
    },
];

impl Kind {
    pub fn find(group: &str, version: &str, resource: &str) -> Option<&'static Kind> {
        KINDS
            .iter()
            .find(|k| k.group == group && k.version == version && k.resource == resource)
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `statefulsets.apps`, or `configmaps` for the core group, as in API messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// Whether `name` is valid for this kind (DNS-1035 label for Services, DNS-1123
    /// subdomain otherwise).
    pub fn valid_name(&self, name: &str) -> bool {
        let charset =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
        let alnum =
            |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if self.resource == "services" {
            name.len() <= 63
                && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && name.chars().all(|c| charset(c) && c != '.')
                && alnum(name.chars().last())
        } else {
            !name.is_empty()
                && name.len() <= 253
                && name.chars().all(charset)
                && alnum(name.chars().next())
                && alnum(name.chars().last())
        }
    }
}

/// An API error, rendered as a `Status` object.
#[derive(Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub causes: Vec<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            causes: Vec::new(),
        }
    }

    pub fn not_found(kind: &Kind, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", kind.qualified()),
        )
    }

    pub fn status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": { "causes": self.causes },
            "code": self.code,
        })
    }
}

/// A parsed label selector: `k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated.
#[derive(Debug, Default)]
pub struct Selector(Vec<(String, Op)>);

#[derive(Debug)]
enum Op {
    Eq(String),
    Ne(String),
    Exists,
    Missing,
}

impl Selector {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part.contains(" in ") || part.contains(" notin ") || part.contains('(') {
                return Err(ApiError::new(
                    400,
                    "BadRequest",
                    format!("set-based selector `{part}` is not supported by the fake API server"),
                ));
            }
            let req = if let Some((k, v)) = part.split_once("!=") {
                (k.trim().to_owned(), Op::Ne(v.trim().to_owned()))
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (k.trim().to_owned(), Op::Eq(v.trim().to_owned()))
            } else if let Some(k) = part.strip_prefix('!') {
                (k.trim().to_owned(), Op::Missing)
            } else {
                (part.to_owned(), Op::Exists)
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels: BTreeMap<String, String> = object["metadata"]["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        self.0.iter().all(|(key, op)| match op {
            Op::Eq(v) => labels.get(key) == Some(v),
            Op::Ne(v) => labels.get(key) != Some(v),
            Op::Exists => labels.contains_key(key),
            Op::Missing => !labels.contains_key(key),
        })
    }
}

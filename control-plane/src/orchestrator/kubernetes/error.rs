//! Errors of the Kubernetes driver: which call failed, on which object, and why.

/// A failed call to the API server, or a certificate that could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The API server refused or could not be reached; its reason is in `source`.
    #[error("{action} {kind} {name}: {source}")]
    Api {
        action: &'static str,
        kind: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("issuing the server certificate: {0}")]
    Certificate(String),
    /// The deployment's node token could not be recorded in the store.
    #[error("registering the node token: {0}")]
    Metering(String),
    #[error("the API server returned {kind} {name} without a uid")]
    MissingUid { kind: &'static str, name: String },
}

impl KubeError {
    /// Maps a kube error of `action` on `kind` `name`.
    pub fn api(
        action: &'static str,
        kind: impl Into<String>,
        name: impl Into<String>,
    ) -> impl FnOnce(kube::Error) -> Self {
        let (kind, name) = (kind.into(), name.into());
        move |source| KubeError::Api {
            action,
            kind,
            name,
            source: Box::new(source),
        }
    }
}

/// Whether the API server answered 404.
pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(response) if response.code == 404)
}

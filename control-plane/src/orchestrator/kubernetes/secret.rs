//! Reading and applying Secrets (TLS, security) with raw requests, so its body never passes
//! through kube's typed helpers, which log response text when it fails to parse.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{GetParams, Patch, PatchParams};
use kube::core::Request;
use kube::Client;

use super::error::{is_not_found, KubeError};
use super::manifests::FIELD_MANAGER;

fn request(namespace: &str) -> Request {
    Request::new(format!("/api/v1/namespaces/{namespace}/secrets"))
}

/// The Secret, or `None` when it does not exist.
pub async fn get(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Secret>, KubeError> {
    let fail = || KubeError::api("reading", "Secret", name);
    let req = request(namespace)
        .get(name, &GetParams::default())
        .map_err(|e| fail()(kube::Error::BuildRequest(e)))?;
    match client.request_text(req).await {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| fail()(kube::Error::SerdeError(e))),
        Err(err) if is_not_found(&err) => Ok(None),
        Err(err) => Err(fail()(err)),
    }
}

/// Server-side applies the Secret (field manager `skyport`, forced).
pub async fn apply(client: &Client, secret: &Secret) -> Result<(), KubeError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let namespace = secret.metadata.namespace.clone().unwrap_or_default();
    let fail = || KubeError::api("applying", "Secret", name.as_str());
    let req = request(&namespace)
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(secret),
        )
        .map_err(|e| fail()(kube::Error::BuildRequest(e)))?;
    client.request_text(req).await.map_err(fail())?;
    Ok(())
}

//! The Kubernetes orchestrator: each deployment is a set of objects applied with
//! server-side apply (field manager `skyport`, forced) through kube-rs.
//!
//! **One shared namespace** (`--kube-namespace`) holds every deployment's objects, told
//! apart by labels and names (`skyport-<id>…`). A namespace per deployment would need
//! cluster-wide rights to create and delete namespaces; one namespace keeps the control
//! plane's RBAC to a namespaced Role, and tenants are separated by per-deployment
//! NetworkPolicies. The namespace must be dedicated to one control plane: objects there
//! whose deployment is not in its database are collected as orphans.
//!
//! **A root object per deployment**, the ConfigMap `skyport-<id>-root`, owns every other
//! object (owner references) and carries the finalizer `skyport.dev/cleanup`. Deleting
//! it stops the workload, deletes the session volumes (which StatefulSets do not own on
//! every cluster version), then releases the finalizer; the garbage collector deletes
//! the rest.
//!
//! Config and certificate changes roll the pod through a content-hash annotation on the
//! pod template (the broker does not hot-reload them yet). Security settings (app keys,
//! authentication and authorization chains, custom TLS) are a separate Secret,
//! `skyport-<id>-security`, mounted as a directory and left out of that hash: the kubelet
//! updates it in place and the broker reloads it without a restart. Stop scales the
//! StatefulSet to zero, keeping its volume; start applies it again with one replica.
//!
//! **Metering**: with a reporting target, each deployment gets a random node token,
//! generated on first apply and kept in its security Secret (key `node-token`, read back
//! on every apply), and its hash is registered with the store. The broker's config (a
//! ConfigMap) names the token's file, never the token.

mod error;
pub mod manifests;
pub mod render;
mod secret;
pub mod settings;
mod status;
mod tls;
mod workload;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use error::is_not_found;
pub use error::KubeError;
use manifests::{
    BrokerMetering, Names, DEPLOYMENT_ID, FIELD_MANAGER, FINALIZER, NODE_TOKEN_KEY, ROOT_SELECTOR,
};
pub use settings::{InternalLbProvider, KubernetesSettings, NatProvider};

use super::security::{BrokerSecurity, SecuritySource};
use super::{Applied, Observed, Orchestrator, OrchestratorError};
use crate::ca::Ca;
use crate::domain::Id;
use crate::metering::ReportingTarget;
use crate::store::Deployment;

/// Runs deployments as Kubernetes objects.
pub struct KubernetesOrchestrator {
    client: Client,
    settings: KubernetesSettings,
    ca: Arc<Ca>,
    /// Where deployments' security settings come from; none, brokers get the defaults.
    security: Option<SecuritySource>,
    /// Where brokers report usage; none, they do not report.
    metering: Option<ReportingTarget>,
}

impl KubernetesOrchestrator {
    pub fn new(client: Client, settings: KubernetesSettings, ca: Arc<Ca>) -> Self {
        Self {
            client,
            settings,
            ca,
            security: None,
            metering: None,
        }
    }

    /// Brokers report usage to `target`, each with its deployment's node token.
    pub fn with_metering(mut self, target: ReportingTarget) -> Self {
        self.metering = Some(target);
        self
    }

    /// Brokers get their security settings from `source`.
    pub fn with_security(mut self, source: SecuritySource) -> Self {
        self.security = Some(source);
        self
    }

    /// Connects with the in-cluster configuration or KUBECONFIG.
    pub async fn connect(settings: KubernetesSettings, ca: Arc<Ca>) -> anyhow::Result<Self> {
        let client = Client::try_default().await.map_err(|e| {
            anyhow::anyhow!("connecting to Kubernetes (in-cluster config or KUBECONFIG): {e}")
        })?;
        Ok(Self::new(client, settings, ca))
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    async fn apply_object<K>(&self, object: &K) -> Result<K, KubeError>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Debug
            + Serialize
            + DeserializeOwned,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        self.api::<K>()
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(object),
            )
            .await
            .map_err(KubeError::api("applying", K::kind(&()), name))
    }

    async fn get_opt<K>(&self, name: &str) -> Result<Option<K>, KubeError>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Debug
            + DeserializeOwned,
    {
        self.api::<K>()
            .get_opt(name)
            .await
            .map_err(KubeError::api("reading", K::kind(&()), name))
    }

    /// Deletes the named object if it exists.
    async fn delete_opt<K>(&self, name: &str) -> Result<(), KubeError>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Debug
            + DeserializeOwned,
    {
        match self
            .api::<K>()
            .delete(name, &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(KubeError::api("deleting", K::kind(&()), name)(e)),
        }
    }

    async fn pods(&self, id: Id) -> Result<Vec<Pod>, KubeError> {
        let selector = format!("app.kubernetes.io/instance={}", Names::of(id).base);
        let list = self
            .api::<Pod>()
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(KubeError::api("listing", "Pod", selector))?;
        Ok(list.items)
    }

    async fn read_state(&self, d: &Deployment) -> Result<Observed, KubeError> {
        let names = Names::of(d.id);
        let sts = self.get_opt::<StatefulSet>(&names.base).await?;
        let service = self.get_opt::<Service>(&names.base).await?;
        let pods = match &sts {
            Some(_) => self.pods(d.id).await?,
            None => Vec::new(),
        };
        Ok(status::observe(
            d,
            &self.settings,
            sts.as_ref(),
            service.as_ref(),
            &pods,
        ))
    }

    /// The deployment's metering settings: its node token (the one kept in the live
    /// security Secret, else a new one), registered with the store.
    async fn metering_for(
        &self,
        d: &Deployment,
        security_secret: &str,
    ) -> Result<Option<BrokerMetering>, KubeError> {
        let Some(target) = &self.metering else {
            return Ok(None);
        };
        let live = secret::get(&self.client, &self.settings.namespace, security_secret).await?;
        let kept = live
            .as_ref()
            .and_then(|s| s.data.as_ref()?.get(NODE_TOKEN_KEY))
            .and_then(|b| std::str::from_utf8(&b.0).ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        let token = kept.unwrap_or_else(crate::metering::generate_node_token);
        let section = target
            .enroll(d, &token)
            .await
            .map_err(|e| KubeError::Metering(e.to_string()))?;
        Ok(Some(BrokerMetering::from_enrolled(section, token.into())))
    }

    async fn apply_all(
        &self,
        d: &Deployment,
        security: &BrokerSecurity,
    ) -> Result<Applied, KubeError> {
        let names = Names::of(d.id);
        let live_sts = self.get_opt::<StatefulSet>(&names.base).await?;
        let live_secret = secret::get(&self.client, &self.settings.namespace, &names.tls).await?;
        let cert_names = manifests::certificate_names(d.id, &self.settings);
        let tls = tls::reuse_or_issue(live_secret.as_ref(), &cert_names, &self.ca)
            .map_err(|e| KubeError::Certificate(e.to_string()))?;
        let metering = self.metering_for(d, &names.security).await?;

        // The root first: every other object names its uid as owner.
        let root = self
            .apply_object(&manifests::root(d, &self.settings))
            .await?;
        let uid = root.metadata.uid.ok_or_else(|| KubeError::MissingUid {
            kind: "ConfigMap",
            name: names.root.clone(),
        })?;
        let mut m = manifests::build(d, &self.settings, &tls, security, metering.as_ref(), &uid);
        // Claim templates are immutable: keep the live ones even if the storage settings
        // changed since, so the deployment keeps its volume.
        if let Some(live) = live_sts.as_ref().and_then(|s| s.spec.as_ref()) {
            if let (Some(spec), Some(claims)) =
                (m.stateful_set.spec.as_mut(), &live.volume_claim_templates)
            {
                spec.volume_claim_templates = Some(
                    claims
                        .iter()
                        .cloned()
                        .map(|mut c| {
                            c.status = None;
                            c
                        })
                        .collect(),
                );
            }
        }
        self.apply_object(&m.config).await?;
        secret::apply(&self.client, &m.tls).await?;
        secret::apply(&self.client, &m.security).await?;
        self.apply_object(&m.service).await?;
        match &m.internal_service {
            Some(internal) => {
                self.apply_object(internal).await?;
            }
            None => self.delete_opt::<Service>(&names.internal).await?,
        }
        self.apply_object(&m.pdb).await?;
        self.apply_object(&m.network_policy).await?;
        let applied = self.apply_object(&m.stateful_set).await?;

        let spec_changed = live_sts
            .as_ref()
            .is_none_or(|live| live.metadata.generation != applied.metadata.generation);
        if spec_changed {
            tracing::info!(deployment.id = %d.id, generation = d.generation, "applied a new pod spec");
            return Ok(Applied::Started);
        }
        let pods = self.pods(d.id).await?;
        let failing = matches!(
            status::observe(d, &self.settings, Some(&applied), None, &pods),
            Observed::Down { .. }
        );
        Ok(if failing {
            Applied::BackingOff
        } else {
            Applied::Unchanged
        })
    }

    async fn scale_to_zero(&self, id: Id) -> Result<(), KubeError> {
        let name = Names::of(id).base;
        let patch = json!({ "spec": { "replicas": 0 } });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        match self
            .api::<StatefulSet>()
            .patch(&name, &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            Err(err) => Err(KubeError::api("scaling down", "StatefulSet", name)(err)),
        }
    }

    async fn delete_all(&self, id: Id) -> Result<(), KubeError> {
        let names = Names::of(id);
        // The workload first, so nothing re-creates the claims deleted next.
        match self
            .api::<StatefulSet>()
            .delete(&names.base, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(KubeError::api("deleting", "StatefulSet", &names.base)(err)),
        }
        let claims = self.api::<PersistentVolumeClaim>();
        let selector = format!("{DEPLOYMENT_ID}={id}");
        let list = claims
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(KubeError::api(
                "listing",
                "PersistentVolumeClaim",
                &selector,
            ))?;
        for claim in list.items {
            let name = claim.metadata.name.unwrap_or_default();
            match claims.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(err) if is_not_found(&err) => {}
                Err(err) => {
                    return Err(KubeError::api("deleting", "PersistentVolumeClaim", name)(
                        err,
                    ))
                }
            }
        }
        self.release_root(&names.root).await
    }

    /// Deletes the root and releases its finalizer; owner references take the rest.
    async fn release_root(&self, name: &str) -> Result<(), KubeError> {
        let roots = self.api::<ConfigMap>();
        let Some(root) = self.get_opt::<ConfigMap>(name).await? else {
            return Ok(());
        };
        if root.metadata.deletion_timestamp.is_none() {
            match roots.delete(name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(err) if is_not_found(&err) => return Ok(()),
                Err(err) => return Err(KubeError::api("deleting", "ConfigMap", name)(err)),
            }
        }
        let Some(root) = self.get_opt::<ConfigMap>(name).await? else {
            return Ok(());
        };
        let finalizers = root.metadata.finalizers.unwrap_or_default();
        if !finalizers.iter().any(|f| f == FINALIZER) {
            return Ok(());
        }
        let rest: Vec<&String> = finalizers.iter().filter(|f| *f != FINALIZER).collect();
        // The resourceVersion makes this a compare-and-swap: another controller's
        // finalizer added meanwhile is not dropped.
        let patch = json!({ "metadata": {
            "finalizers": rest,
            "resourceVersion": root.metadata.resource_version,
        }});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        match roots.patch(name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            Err(err) => Err(KubeError::api(
                "releasing the finalizer of",
                "ConfigMap",
                name,
            )(err)),
        }
    }
}

#[async_trait]
impl Orchestrator for KubernetesOrchestrator {
    async fn observe(&self, deployment: &Deployment) -> Observed {
        match self.read_state(deployment).await {
            Ok(observed) => observed,
            Err(err) => {
                tracing::warn!(deployment.id = %deployment.id, error = %err, "reading deployment state failed");
                Observed::Down {
                    last_exit: Some(err.to_string()),
                    failures: 0,
                }
            }
        }
    }

    async fn apply(&self, deployment: &Deployment) -> Result<Applied, OrchestratorError> {
        let security = SecuritySource::load_or_default(self.security.as_ref(), deployment).await?;
        Ok(self.apply_all(deployment, &security).await?)
    }

    async fn stop(&self, id: Id) -> Result<(), OrchestratorError> {
        Ok(self.scale_to_zero(id).await?)
    }

    async fn remove(&self, id: Id) -> Result<(), OrchestratorError> {
        Ok(self.delete_all(id).await?)
    }

    /// The internal Service's load-balancer ingress: its IP, or the first address its
    /// host name resolves to (clouds that name their load balancers).
    async fn internal_endpoint_address(&self, deployment: &Deployment) -> Option<std::net::IpAddr> {
        let names = Names::of(deployment.id);
        let service = match self.get_opt::<Service>(&names.internal).await {
            Ok(service) => service?,
            Err(err) => {
                tracing::warn!(deployment.id = %deployment.id, error = %err, "reading the internal Service failed");
                return None;
            }
        };
        let ingress = status::ingress_address(&service)?;
        if let Ok(ip) = ingress.parse() {
            return Some(ip);
        }
        let resolved = tokio::net::lookup_host((ingress.as_str(), 0)).await;
        match resolved {
            Ok(mut addresses) => addresses.next().map(|a| a.ip()),
            Err(err) => {
                tracing::warn!(deployment.id = %deployment.id, host = %ingress, error = %err, "resolving the internal load balancer failed");
                None
            }
        }
    }

    async fn runtimes(&self) -> Vec<Id> {
        match self
            .api::<ConfigMap>()
            .list(&ListParams::default().labels(ROOT_SELECTOR))
            .await
        {
            Ok(list) => list
                .items
                .iter()
                .filter_map(|root| {
                    root.metadata
                        .labels
                        .as_ref()?
                        .get(DEPLOYMENT_ID)?
                        .parse()
                        .ok()
                })
                .collect(),
            Err(err) => {
                tracing::warn!(error = %err, "listing deployment roots failed");
                Vec::new()
            }
        }
    }
}

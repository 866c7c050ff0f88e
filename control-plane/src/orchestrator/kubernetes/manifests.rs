//! Every object the driver applies for a deployment, built by pure functions from the
//! deployment record, the settings and the TLS material, so `render-manifests` prints
//! exactly what the driver applies.
//!
//! Object names derive from the full deployment id (`skyport-<uuid>`, 44 characters):
//! short enough for Service names (63) and StatefulSet pod labels (52), and never
//! ambiguous the way a truncated id would be.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use skyport_settings::config::{Config as BrokerConfig, Listeners, MeteringTarget, TlsFiles};

use super::settings::KubernetesSettings;
use super::workload;
use crate::domain::Id;
use crate::orchestrator::security::{BrokerSecurity, NetworkDelivery, TlsFileNames};
use crate::store::Deployment;

/// Finalizer on the root object: Skyport removes the deployment's volumes before the
/// root (and with it, through owner references, everything else) may go.
pub const FINALIZER: &str = "skyport.dev/cleanup";
/// Pod-template annotation holding the hash of the broker's config and certificate, so a
/// change to either rolls the pods (the broker does not hot-reload them yet).
pub const CONFIG_HASH: &str = "skyport.dev/config-hash";
/// StatefulSet annotation: the deployment generation it was last applied for.
pub const GENERATION: &str = "skyport.dev/generation";
/// Label carrying the deployment id on every object (and on the PVCs).
pub const DEPLOYMENT_ID: &str = "skyport.dev/deployment-id";
/// Label marking the per-deployment root object.
pub const ROLE: &str = "skyport.dev/role";
/// The field manager of every write.
pub const FIELD_MANAGER: &str = "skyport";
/// Selector of every root object this control plane owns.
pub const ROOT_SELECTOR: &str = "app.kubernetes.io/managed-by=skyport,skyport.dev/role=root";

/// Container ports: EMQX's, so clients and load balancers see the ports they expect.
pub mod port {
    pub const MQTT: u16 = 1883;
    pub const MQTTS: u16 = 8883;
    pub const WS: u16 = 8083;
    pub const WSS: u16 = 8084;
    pub const API: u16 = 8081;
}

/// Where the pod finds its files.
pub const CONFIG_DIR: &str = "/etc/skyport/config";
pub const TLS_DIR: &str = "/etc/skyport/tls";
/// The security Secret's mount: `security.json` and the custom TLS files it names. A
/// Secret volume without `subPath`, so the kubelet updates it in place and the broker
/// reloads it without the pod restarting.
pub const SECURITY_DIR: &str = "/etc/skyport/security";
/// Custom TLS files, as keys of the security Secret (relative to `security.json`).
pub const SECURITY_TLS_FILES: TlsFileNames = TlsFileNames {
    cert: "custom.pem",
    key: "custom.key",
    ca: "client-ca.pem",
    domain_prefix: "domain-",
};
pub const DATA_DIR: &str = "/var/lib/skyport";
/// Key of the security Secret holding the deployment's node token, which the broker
/// sends with its usage reports. Generated once and kept in the Secret; the config's
/// `"metering"` section names the file (`token_file`), never the token.
pub const NODE_TOKEN_KEY: &str = "node-token";

/// How the deployment's broker reports usage, when the control plane meters.
#[derive(Clone)]
pub struct BrokerMetering {
    /// The `"metering"` section of the broker config, without the token itself.
    pub section: MeteringTarget,
    /// The node token, stored in the security Secret under [`NODE_TOKEN_KEY`].
    pub token: SecretString,
}

impl BrokerMetering {
    /// `section` as [`crate::metering::ReportingTarget::enroll`] returns it, with its
    /// `"token"` replaced by a `"token_file"` in the mounted security Secret.
    pub fn from_enrolled(mut section: MeteringTarget, token: SecretString) -> Self {
        section.token = None;
        section.token_file = Some(format!("{SECURITY_DIR}/{NODE_TOKEN_KEY}").into());
        Self { section, token }
    }
}

impl std::fmt::Debug for BrokerMetering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerMetering")
            .field("section", &self.section)
            .finish_non_exhaustive()
    }
}

/// The server certificate a deployment's broker serves.
#[derive(Clone)]
pub struct TlsMaterial {
    /// Leaf first, then Skyport's CA.
    pub chain_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

/// Names of one deployment's objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// StatefulSet, Service, PodDisruptionBudget and NetworkPolicy.
    pub base: String,
    pub root: String,
    pub config: String,
    pub tls: String,
    /// The Secret holding `security.json` and custom TLS material.
    pub security: String,
    /// The internal `LoadBalancer` Service of the internal endpoint add-on.
    pub internal: String,
}

impl Names {
    pub fn of(id: Id) -> Self {
        let base = format!("skyport-{id}");
        Self {
            root: format!("{base}-root"),
            config: format!("{base}-config"),
            tls: format!("{base}-tls"),
            security: format!("{base}-security"),
            internal: format!("{base}-internal"),
            base,
        }
    }
}

/// Every object of one deployment, in the order they are applied.
#[derive(Clone)]
pub struct Manifests {
    pub root: ConfigMap,
    pub config: ConfigMap,
    pub tls: Secret,
    pub security: Secret,
    pub service: Service,
    /// Present when the deployment has an internal endpoint.
    pub internal_service: Option<Service>,
    pub pdb: PodDisruptionBudget,
    pub network_policy: NetworkPolicy,
    pub stateful_set: StatefulSet,
}

impl Manifests {
    /// The objects as multi-document YAML, `---` separated.
    pub fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
        let mut docs = vec![
            serde_yaml::to_string(&self.root)?,
            serde_yaml::to_string(&self.config)?,
            serde_yaml::to_string(&self.tls)?,
            serde_yaml::to_string(&self.security)?,
            serde_yaml::to_string(&self.service)?,
        ];
        if let Some(internal) = &self.internal_service {
            docs.push(serde_yaml::to_string(internal)?);
        }
        docs.extend([
            serde_yaml::to_string(&self.pdb)?,
            serde_yaml::to_string(&self.network_policy)?,
            serde_yaml::to_string(&self.stateful_set)?,
        ]);
        Ok(docs.iter().map(|d| format!("---\n{d}")).collect())
    }
}

/// Labels that select the deployment's pods; they never change (selectors are immutable).
pub fn selector_labels(id: Id) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "skyport-broker".into()),
        ("app.kubernetes.io/instance".into(), Names::of(id).base),
    ])
}

/// Labels of every object of the deployment.
pub fn labels(d: &Deployment) -> BTreeMap<String, String> {
    let mut labels = selector_labels(d.id);
    labels.extend([
        ("app.kubernetes.io/component".into(), "broker".into()),
        ("app.kubernetes.io/part-of".into(), "skyport".into()),
        ("app.kubernetes.io/managed-by".into(), "skyport".into()),
        ("app.kubernetes.io/version".into(), d.version.clone()),
        (DEPLOYMENT_ID.into(), d.id.to_string()),
        ("skyport.dev/project-id".into(), d.project_id.to_string()),
        ("skyport.dev/plan".into(), d.plan.as_str().into()),
    ]);
    labels
}

/// The deployment's default host name, when the operator configured a base domain.
pub fn default_host(id: Id, settings: &KubernetesSettings) -> Option<String> {
    settings
        .base_domain
        .as_ref()
        .map(|domain| format!("{id}.{domain}"))
}

/// Names the server certificate covers: the default host (if any), then the Service's
/// in-cluster names. Derived from the spec alone, so the certificate is issued once and
/// not re-issued (rolling the pods) when the load balancer's address appears.
pub fn certificate_names(id: Id, settings: &KubernetesSettings) -> Vec<String> {
    let service = Names::of(id).base;
    let ns = &settings.namespace;
    let mut names: Vec<String> = default_host(id, settings).into_iter().collect();
    names.extend([
        format!("{service}.{ns}.svc"),
        format!("{service}.{ns}.svc.cluster.local"),
    ]);
    names
}

/// The root object: a ConfigMap every other object is owned by. Deleting it (once its
/// finalizer is released) garbage-collects the rest. A ConfigMap rather than a custom
/// resource, so installing Skyport needs no CRD.
pub fn root(d: &Deployment, settings: &KubernetesSettings) -> ConfigMap {
    let names = Names::of(d.id);
    let mut labels = labels(d);
    labels.insert(ROLE.into(), "root".into());
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(names.root),
            namespace: Some(settings.namespace.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "skyport.dev/deployment-name".into(),
                d.name.clone(),
            )])),
            finalizers: Some(vec![FINALIZER.into()]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("deployment-id".into(), d.id.to_string()),
            ("project-id".into(), d.project_id.to_string()),
        ])),
        ..ConfigMap::default()
    }
}

/// Builds every object; `root_uid` is the root's uid, which the API server assigns.
/// Without `metering`, the broker does not report usage (`render-manifests`).
pub fn build(
    d: &Deployment,
    settings: &KubernetesSettings,
    tls: &TlsMaterial,
    security: &BrokerSecurity,
    metering: Option<&BrokerMetering>,
    root_uid: &str,
) -> Manifests {
    let names = Names::of(d.id);
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: names.root.clone(),
        uid: root_uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let meta = |name: &str| ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(settings.namespace.clone()),
        labels: Some(labels(d)),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    };
    let config_json = broker_config(d, metering);
    let config_hash = content_hash(&config_json, tls);

    let config = ConfigMap {
        metadata: meta(&names.config),
        data: Some(BTreeMap::from([("config.json".into(), config_json)])),
        ..ConfigMap::default()
    };
    let tls_secret = Secret {
        metadata: meta(&names.tls),
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            (
                "tls.crt".into(),
                ByteString(tls.chain_pem.clone().into_bytes()),
            ),
            (
                "tls.key".into(),
                ByteString(tls.key_pem.clone().into_bytes()),
            ),
            ("ca.crt".into(), ByteString(tls.ca_pem.clone().into_bytes())),
        ])),
        ..Secret::default()
    };
    // Not part of the pod template's content hash: changes reach the running broker
    // through the kubelet's in-place update of the mounted Secret.
    let mut security_data = BTreeMap::from([(
        skyport_settings::security::FILE_NAME.to_owned(),
        ByteString(security.settings_json(SECURITY_TLS_FILES, NetworkDelivery::Platform)),
    )]);
    for file in security.tls_files(SECURITY_TLS_FILES) {
        security_data.insert(
            file.name,
            ByteString(file.contents.expose_secret().as_bytes().to_vec()),
        );
    }
    if let Some(metering) = metering {
        security_data.insert(
            NODE_TOKEN_KEY.to_owned(),
            ByteString(metering.token.expose_secret().as_bytes().to_vec()),
        );
    }
    let security_secret = Secret {
        metadata: meta(&names.security),
        type_: Some("Opaque".into()),
        data: Some(security_data),
        ..Secret::default()
    };
    let mut service_meta = meta(&names.base);
    if let Some(host) = default_host(d.id, settings) {
        service_meta.annotations = Some(BTreeMap::from([(
            "external-dns.alpha.kubernetes.io/hostname".into(),
            host,
        )]));
    }
    let service_ports = |ports: Vec<(&'static str, u16)>| {
        ports
            .into_iter()
            .map(|(name, port)| ServicePort {
                name: Some(name.into()),
                port: port.into(),
                target_port: Some(IntOrString::String(name.into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            })
            .collect()
    };
    let service = Service {
        metadata: service_meta,
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            selector: Some(selector_labels(d.id)),
            ports: Some(service_ports(exposed_ports(d))),
            // Clients' own addresses reach the broker (peername in events, ban list).
            external_traffic_policy: Some("Local".into()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    // The internal endpoint: the same MQTT ports (not the API) on the provider's
    // internal load balancer, open to the allowed ranges only.
    // Without a provider there is no way to make the load balancer internal: no Service
    // rather than a public one (the API refuses internal endpoints in that case).
    let internal_service = security
        .internal_endpoint
        .as_ref()
        .zip(settings.internal_lb_provider)
        .map(|(internal, provider)| {
            let mut internal_meta = meta(&names.internal);
            internal_meta.annotations = Some(provider.service_annotations());
            Service {
                metadata: internal_meta,
                spec: Some(ServiceSpec {
                    type_: Some("LoadBalancer".into()),
                    selector: Some(selector_labels(d.id)),
                    ports: Some(service_ports(
                        exposed_ports(d)
                            .into_iter()
                            .filter(|(name, _)| *name != "api")
                            .collect(),
                    )),
                    load_balancer_source_ranges: Some(
                        internal
                            .allowed_cidrs
                            .iter()
                            .map(|c| c.to_string())
                            .collect(),
                    ),
                    external_traffic_policy: Some("Local".into()),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            }
        });
    let pdb = PodDisruptionBudget {
        metadata: meta(&names.base),
        spec: Some(PodDisruptionBudgetSpec {
            // One broker pod per deployment: allow draining its node (a cluster upgrade
            // must progress) but never evict two at once; sessions survive on the volume.
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(d.id)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    };
    let network_policy = NetworkPolicy {
        metadata: meta(&names.base),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(d.id)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            // Only the listeners the plan exposes accept traffic, from anywhere; egress
            // stays open for external authentication and integrations.
            ingress: Some(vec![NetworkPolicyIngressRule {
                ports: Some(
                    exposed_ports(d)
                        .into_iter()
                        .map(|(_, port)| NetworkPolicyPort {
                            port: Some(IntOrString::Int(port.into())),
                            protocol: Some("TCP".into()),
                            ..NetworkPolicyPort::default()
                        })
                        .collect(),
                ),
                ..NetworkPolicyIngressRule::default()
            }]),
            ..NetworkPolicySpec::default()
        }),
    };
    let nat = (!security.egress_addresses.is_empty()).then_some(settings.nat_provider);
    let stateful_set = workload::stateful_set(d, settings, meta(&names.base), &config_hash, nat);
    Manifests {
        root: root(d, settings),
        config,
        tls: tls_secret,
        security: security_secret,
        service,
        internal_service,
        pdb,
        network_policy,
        stateful_set,
    }
}

/// The listeners the plan exposes, by port name: serverless has TLS ones only.
pub fn exposed_ports(d: &Deployment) -> Vec<(&'static str, u16)> {
    let plain = d.plan.exposes_plaintext();
    [
        ("mqtt", port::MQTT, plain),
        ("mqtts", port::MQTTS, true),
        ("ws", port::WS, plain),
        ("wss", port::WSS, true),
        ("api", port::API, true),
    ]
    .into_iter()
    .filter(|(_, _, on)| *on)
    .map(|(name, port, _)| (name, port))
    .collect()
}

/// The broker's config file (`skyport_settings::config`). It is a
/// ConfigMap: the metering section names the node token's file, never the token.
pub fn broker_config(d: &Deployment, metering: Option<&BrokerMetering>) -> String {
    let plain = d.plan.exposes_plaintext();
    let addr = |port: u16| SocketAddr::from(([0, 0, 0, 0], port));
    let config = BrokerConfig {
        deployment_id: d.id.to_string(),
        listeners: Listeners {
            tcp: plain.then(|| addr(port::MQTT)),
            tls: Some(addr(port::MQTTS)),
            ws: plain.then(|| addr(port::WS)),
            wss: Some(addr(port::WSS)),
            api: addr(port::API),
        },
        tls: Some(TlsFiles {
            cert_file: format!("{TLS_DIR}/tls.crt").into(),
            key_file: format!("{TLS_DIR}/tls.key").into(),
        }),
        limits: d.tier.broker_limits(d.plan),
        metering: metering.map(|m| m.section.clone()),
        // The Secret cannot share the ConfigMap's directory, so the broker is told where
        // its security settings are.
        security_file: Some(
            format!("{SECURITY_DIR}/{}", skyport_settings::security::FILE_NAME).into(),
        ),
        // State (users, ACL rules, bans, metering outbox) on the session-data volume.
        data_dir: Some(DATA_DIR.into()),
    };
    config.to_json_pretty()
}

/// SHA-256 over everything the broker reads from its volumes.
fn content_hash(config_json: &str, tls: &TlsMaterial) -> String {
    let mut hash = Sha256::new();
    for part in [config_json, &tls.chain_pem, &tls.key_pem, &tls.ca_pem] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::domain::{DesiredState, Plan, Status, Tier};

    fn deployment(plan: Plan) -> Deployment {
        let at = chrono::DateTime::UNIX_EPOCH;
        Deployment {
            id: "0192f0a0-0000-7000-8000-00000000000a".parse().unwrap(),
            project_id: "0192f0a0-0000-7000-8000-00000000000b".parse().unwrap(),
            name: "d".into(),
            plan,
            tier: Tier {
                max_sessions: 5_000,
                max_tps: 2_000,
            },
            version: "0.1".into(),
            desired_state: DesiredState::Running,
            status: Status::Running,
            status_reason: None,
            generation: 1,
            observed_generation: 1,
            applied_revision: 0,
            endpoints: None,
            created_at: at,
            updated_at: at,
        }
    }

    /// The config is written to the byte as expected: its hash rolls the pods. (The plan
    /// joined `limits` for the rule engine's plan rules, which rolls each pod once.)
    #[test]
    fn broker_config_is_stable() {
        let metering = BrokerMetering::from_enrolled(
            MeteringTarget {
                url: "http://cp:8080/internal/v1/metering/reports".into(),
                token: Some("skn_secret".into()),
                token_file: None,
                interval_ms: 5_000,
            },
            "skn_secret".to_owned().into(),
        );
        let text = broker_config(&deployment(Plan::Serverless), Some(&metering));
        let expected = json!({
            "deployment_id": "0192f0a0-0000-7000-8000-00000000000a",
            "listeners": {
                "tcp": null,
                "tls": "0.0.0.0:8883",
                "ws": null,
                "wss": "0.0.0.0:8084",
                "api": format!("0.0.0.0:{}", port::API),
            },
            "tls": {
                "cert_file": "/etc/skyport/tls/tls.crt",
                "key_file": "/etc/skyport/tls/tls.key",
            },
            "security_file": "/etc/skyport/security/security.json",
            "data_dir": DATA_DIR,
            "limits": {"max_sessions": 5000, "max_tps": 2000, "plan": "serverless"},
            "metering": {
                "url": "http://cp:8080/internal/v1/metering/reports",
                "token_file": "/etc/skyport/security/node-token",
                "interval_ms": 5000,
            },
        });
        assert_eq!(text, serde_json::to_string_pretty(&expected).unwrap());
        assert!(!text.contains("skn_secret"));

        let dedicated: Value =
            serde_json::from_str(&broker_config(&deployment(Plan::Dedicated), None)).unwrap();
        assert_eq!(dedicated["listeners"]["tcp"], "0.0.0.0:1883");
        assert_eq!(dedicated["listeners"]["ws"], "0.0.0.0:8083");
        assert!(dedicated.get("metering").is_none());
    }
}

//! The StatefulSet running the deployment's broker pod.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, HTTPGetAction,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext, Toleration,
    Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::manifests::{
    exposed_ports, labels, selector_labels, Names, CONFIG_DIR, CONFIG_HASH, DATA_DIR,
    DEPLOYMENT_ID, GENERATION, SECURITY_DIR, TLS_DIR,
};
use super::settings::{KubernetesSettings, NatProvider, TierResources, EGRESS_KEY};
use crate::domain::DesiredState;
use crate::store::Deployment;

/// The uid and gid the broker runs as: the broker image's `USER`
/// (docker/skyport-broker.Dockerfile); also the volumes' group.
const BROKER_UID: i64 = 10001;

/// The StatefulSet: one broker pod (rumqttd does not cluster, so a second replica would
/// split clients between brokers that do not share messages), zero when stopped.
pub fn stateful_set(
    d: &Deployment,
    settings: &KubernetesSettings,
    mut meta: ObjectMeta,
    config_hash: &str,
    nat: Option<NatProvider>,
) -> StatefulSet {
    let names = Names::of(d.id);
    meta.annotations = Some(BTreeMap::from([(
        GENERATION.into(),
        d.generation.to_string(),
    )]));
    let replicas = match d.desired_state {
        DesiredState::Running => 1,
        DesiredState::Stopped => 0,
    };
    StatefulSet {
        metadata: meta,
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(names.base.clone()),
            selector: LabelSelector {
                match_labels: Some(selector_labels(d.id)),
                ..LabelSelector::default()
            },
            // Delete the volume with the deployment, keep it when stopped (scaled to 0).
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Delete".into()),
                    when_scaled: Some("Retain".into()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(d)),
                    annotations: Some({
                        let mut annotations = nat.map(|p| p.pod_annotations()).unwrap_or_default();
                        annotations.insert(CONFIG_HASH.into(), config_hash.to_owned());
                        annotations
                    }),
                    ..ObjectMeta::default()
                }),
                spec: Some(nat_placement(pod_spec(d, settings, &names), nat)),
            },
            volume_claim_templates: Some(vec![data_claim(d, settings)]),
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

/// Places a pod with a NAT gateway where its egress is NAT'd (see [`NatProvider`]).
fn nat_placement(mut spec: PodSpec, nat: Option<NatProvider>) -> PodSpec {
    if nat == Some(NatProvider::NodePool) {
        spec.node_selector = Some(BTreeMap::from([(EGRESS_KEY.into(), "nat".into())]));
        spec.tolerations = Some(vec![Toleration {
            key: Some(EGRESS_KEY.into()),
            operator: Some("Equal".into()),
            value: Some("nat".into()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        }]);
    }
    spec
}

/// The session-data claim template. It depends on the deployment id and the storage
/// settings only, never on the tier or plan: StatefulSets refuse changes to their claim
/// templates, and a renamed template would orphan the sessions on the old volume.
pub fn data_claim(d: &Deployment, settings: &KubernetesSettings) -> PersistentVolumeClaim {
    let mut claim_labels = selector_labels(d.id);
    claim_labels.insert(DEPLOYMENT_ID.into(), d.id.to_string());
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            labels: Some(claim_labels),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: settings.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".into(),
                    Quantity(settings.storage_size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

fn pod_spec(d: &Deployment, settings: &KubernetesSettings, names: &Names) -> PodSpec {
    let tier = TierResources::for_tier(d.tier.max_sessions, d.tier.max_tps);
    let probe = |path: &str, period: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("api".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(3),
        ..Probe::default()
    };
    let container = Container {
        name: "broker".into(),
        image: Some(settings.broker_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["skyport-broker".into()]),
        args: Some(vec!["--config".into(), format!("{CONFIG_DIR}/config.json")]),
        ports: Some(
            exposed_ports(d)
                .into_iter()
                .map(|(name, port)| ContainerPort {
                    name: Some(name.into()),
                    container_port: port.into(),
                    protocol: Some("TCP".into()),
                    ..ContainerPort::default()
                })
                .collect(),
        ),
        readiness_probe: Some(probe("/readyz", 5)),
        liveness_probe: Some(probe("/healthz", 10)),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), Quantity(tier.cpu_request)),
                ("memory".into(), Quantity(tier.memory_request)),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".into(),
                Quantity(tier.memory_limit),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            mount("config", CONFIG_DIR, true),
            mount("tls", TLS_DIR, true),
            mount("security", SECURITY_DIR, true),
            mount("data", DATA_DIR, false),
        ]),
        ..Container::default()
    };
    PodSpec {
        containers: vec![container],
        // The broker never talks to the Kubernetes API.
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(30),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(BROKER_UID),
            run_as_group: Some(BROKER_UID),
            fs_group: Some(BROKER_UID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        volumes: Some(vec![
            Volume {
                name: "config".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: names.config.clone(),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            },
            Volume {
                name: "tls".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(names.tls.clone()),
                    // Readable by the broker's group (fsGroup) only.
                    default_mode: Some(0o440),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            },
            Volume {
                name: "security".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(names.security.clone()),
                    default_mode: Some(0o440),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            },
        ]),
        ..PodSpec::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

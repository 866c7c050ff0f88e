//! Settings of the Kubernetes orchestrator, shared by the driver and `render-manifests`.

use std::collections::BTreeMap;

use clap::ValueEnum;

/// The cloud whose internal load balancer serves a deployment's internal endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InternalLbProvider {
    /// AWS Load Balancer Controller / in-tree AWS provider.
    Aws,
    /// GKE.
    Gcp,
    /// AKS.
    Azure,
    /// Another provider: the internal Service gets no provider annotation; the operator's
    /// admission policy or LB controller is expected to add its own.
    Custom,
}

/// How a deployment with a NAT gateway gets its fixed egress addresses on the cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum NatProvider {
    /// A node pool whose subnet egresses through a cloud NAT gateway with fixed addresses
    /// (AWS NAT Gateway, GCP Cloud NAT, Azure NAT Gateway): the pod gets the node
    /// selector `skyport.io/egress: nat` and tolerates the taint
    /// `skyport.io/egress=nat:NoSchedule`, which the operator puts on that pool.
    #[default]
    NodePool,
    /// Calico egress gateways: the pod is annotated to send its egress through the
    /// gateway pods labelled `skyport.io/egress-gateway: "true"`.
    Calico,
}

/// Label and taint key of the NAT'd node pool, and label of Calico egress gateways.
pub const EGRESS_KEY: &str = "skyport.io/egress";

impl NatProvider {
    /// Pod annotations that route the pod's egress through the NAT.
    pub fn pod_annotations(self) -> BTreeMap<String, String> {
        match self {
            NatProvider::NodePool => BTreeMap::new(),
            NatProvider::Calico => BTreeMap::from([(
                "egress.projectcalico.org/selector".to_owned(),
                "skyport.io/egress-gateway == 'true'".to_owned(),
            )]),
        }
    }
}

impl InternalLbProvider {
    /// Annotations that make a `LoadBalancer` Service internal on this provider.
    pub fn service_annotations(self) -> BTreeMap<String, String> {
        let pairs: &[(&str, &str)] = match self {
            InternalLbProvider::Aws => &[
                (
                    "service.beta.kubernetes.io/aws-load-balancer-scheme",
                    "internal",
                ),
                (
                    "service.beta.kubernetes.io/aws-load-balancer-internal",
                    "true",
                ),
            ],
            InternalLbProvider::Gcp => &[("networking.gke.io/load-balancer-type", "Internal")],
            InternalLbProvider::Azure => &[(
                "service.beta.kubernetes.io/azure-load-balancer-internal",
                "true",
            )],
            InternalLbProvider::Custom => &[],
        };
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }
}

/// Everything the driver needs besides a deployment's own record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesSettings {
    /// Namespace every deployment's objects live in (see the module docs for why one).
    pub namespace: String,
    /// Container image running `skyport-broker`.
    pub broker_image: String,
    /// Storage class of the session-data volume; `None` uses the cluster's default.
    pub storage_class: Option<String>,
    /// Size of the session-data volume (a Kubernetes quantity such as `1Gi`).
    pub storage_size: String,
    /// Provider of the internal load balancer, for the internal endpoint add-on.
    pub internal_lb_provider: Option<InternalLbProvider>,
    /// How NAT gateways are realised.
    pub nat_provider: NatProvider,
    /// When set, each deployment's default host is `<id>.<base_domain>`: it goes into the
    /// server certificate, the endpoints, and an external-dns annotation on the Service.
    pub base_domain: Option<String>,
}

/// Pod resources derived from a deployment's tier.
///
/// The mapping, sized from rumqttd's footprint (a few KiB per idle session, roughly one
/// core per 100k messages/s):
///
/// | resource | request | limit |
/// |---|---|---|
/// | CPU | 100m + 1m per 100 TPS | none: throttling an MQTT broker turns into latency spikes |
/// | memory | 64Mi + 1Mi per 64 sessions (16 KiB each) | 2 × request |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierResources {
    pub cpu_request: String,
    pub memory_request: String,
    pub memory_limit: String,
}

impl TierResources {
    /// Resources for a tier of `max_sessions` sessions and `max_tps` messages/s.
    pub fn for_tier(max_sessions: i64, max_tps: i64) -> Self {
        let cpu_millis = 100 + max_tps.max(0) / 100;
        let memory_mib = 64 + (max_sessions.max(0) + 63) / 64;
        Self {
            cpu_request: format!("{cpu_millis}m"),
            memory_request: format!("{memory_mib}Mi"),
            memory_limit: format!("{}Mi", memory_mib * 2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_grow_with_the_tier() {
        let small = TierResources::for_tier(1_000, 1_000);
        assert_eq!(small.cpu_request, "110m");
        assert_eq!(small.memory_request, "80Mi");
        assert_eq!(small.memory_limit, "160Mi");
        let big = TierResources::for_tier(1_000_000, 1_000_000);
        assert_eq!(big.cpu_request, "10100m");
        assert_eq!(big.memory_request, "15689Mi");
    }

    #[test]
    fn every_named_provider_marks_its_service_internal() {
        for provider in [
            InternalLbProvider::Aws,
            InternalLbProvider::Gcp,
            InternalLbProvider::Azure,
        ] {
            assert!(!provider.service_annotations().is_empty(), "{provider:?}");
        }
        assert!(InternalLbProvider::Custom.service_annotations().is_empty());
    }
}

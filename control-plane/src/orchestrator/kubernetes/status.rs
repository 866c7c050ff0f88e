//! Reading a deployment's state back from its objects.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Service};

use super::manifests::{default_host, port, GENERATION};
use super::settings::KubernetesSettings;
use crate::domain::Endpoints;
use crate::orchestrator::Observed;
use crate::store::Deployment;

/// Container waiting reasons that mean the broker cannot run as specified.
const FAILING: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// What the StatefulSet, its pods and the Service say about the deployment.
pub fn observe(
    d: &Deployment,
    settings: &KubernetesSettings,
    stateful_set: Option<&StatefulSet>,
    service: Option<&Service>,
    pods: &[Pod],
) -> Observed {
    let Some(sts) = stateful_set else {
        return Observed::Down {
            last_exit: None,
            failures: 0,
        };
    };
    let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if replicas == 0 || sts.metadata.deletion_timestamp.is_some() {
        return Observed::Down {
            last_exit: None,
            failures: 0,
        };
    }
    if let Some((reason, failures)) = pod_failure(pods) {
        return Observed::Down {
            last_exit: Some(reason),
            failures,
        };
    }
    let status = sts.status.clone().unwrap_or_default();
    let rolled_out = status.observed_generation.unwrap_or(0)
        >= sts.metadata.generation.unwrap_or(0)
        && status.updated_replicas.unwrap_or(0) >= replicas;
    if !rolled_out || status.ready_replicas.unwrap_or(0) < replicas {
        return Observed::Starting;
    }
    let Some(address) = service.and_then(ingress_address) else {
        // The broker is up but the cloud has not given the load balancer an address yet.
        return Observed::Starting;
    };
    let generation = sts
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(GENERATION))
        .and_then(|g| g.parse().ok())
        .unwrap_or(0);
    let host = default_host(d.id, settings).unwrap_or(address);
    Observed::Ready {
        generation,
        endpoints: endpoints(d, &host),
    }
}

/// The load balancer's first ingress IP or host name.
pub fn ingress_address(service: &Service) -> Option<String> {
    let ingress = service
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?;
    ingress
        .iter()
        .find_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
        .filter(|a| !a.is_empty())
}

/// A failing container's reason and restart count, if any pod has one.
fn pod_failure(pods: &[Pod]) -> Option<(String, u32)> {
    pods.iter().find_map(|pod| {
        let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
        statuses.iter().find_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.as_deref()?;
            FAILING.contains(&reason).then(|| {
                let pod_name = pod.metadata.name.as_deref().unwrap_or("pod");
                let message = waiting.message.as_deref().unwrap_or_default();
                let failures = u32::try_from(c.restart_count)
                    .unwrap_or(0)
                    .saturating_add(1);
                (
                    format!("{pod_name}: {reason}: {message}")
                        .trim_end_matches(": ")
                        .to_owned(),
                    failures,
                )
            })
        })
    })
}

/// Endpoint URLs on the Service's ports; listeners the plan does not expose are absent.
pub fn endpoints(d: &Deployment, host: &str) -> Endpoints {
    let plain = d.plan.exposes_plaintext();
    let authority = if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Endpoints {
        host: host.to_owned(),
        mqtt: plain.then(|| format!("mqtt://{authority}:{}", port::MQTT)),
        mqtts: Some(format!("mqtts://{authority}:{}", port::MQTTS)),
        ws: plain.then(|| format!("ws://{authority}:{}/mqtt", port::WS)),
        wss: Some(format!("wss://{authority}:{}/mqtt", port::WSS)),
        api: format!("http://{authority}:{}", port::API),
    }
}

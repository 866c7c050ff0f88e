//! `skyport render-manifests`: the objects the driver would apply for a deployment.

use std::path::Path;

use anyhow::Context;

use super::manifests::{self, Manifests};
use super::settings::KubernetesSettings;
use crate::ca::Ca;
use crate::domain::view::DeploymentView;
use crate::orchestrator::security::BrokerSecurity;
use crate::store::Deployment;

/// Stands in for the root ConfigMap's uid in owner references: the API server assigns
/// the real one when the root is first applied.
pub const UNASSIGNED_UID: &str = "00000000-0000-0000-0000-000000000000";

/// Reads a deployment as `GET /deployments/{id}` returns it, with the networking
/// add-ons of its `network` section (egress addresses, internal endpoint).
pub fn read_deployment(path: &Path) -> anyhow::Result<(Deployment, BrokerSecurity)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the deployment file {}", path.display()))?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    let view: DeploymentView = serde_path_to_error::deserialize(de).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a deployment as GET /deployments/{{id}} returns it: at `{}`: {}",
            path.display(),
            e.path(),
            e.inner()
        )
    })?;
    let parse_id = |field: &str, raw: &str| {
        raw.parse().with_context(|| {
            format!(
                "{}: `{field}` is not a deployment id: `{raw}`",
                path.display()
            )
        })
    };
    let tier = view
        .tier
        .validate()
        .map_err(|msg| anyhow::anyhow!("{}: {msg}", path.display()))?;
    let network = view.network.unwrap_or_default();
    let security = BrokerSecurity {
        revision: view.generation,
        egress_addresses: network.egress_addresses,
        internal_endpoint: network.internal_endpoint.map(|internal| {
            crate::store::InternalEndpointRecord {
                address: internal.address,
                allowed_cidrs: internal.allowed_cidrs,
                created_at: view.updated_at,
                updated_at: view.updated_at,
            }
        }),
        ..BrokerSecurity::default()
    };
    let deployment = Deployment {
        id: parse_id("id", &view.id)?,
        project_id: parse_id("project_id", &view.project_id)?,
        name: view.name,
        plan: view.plan,
        tier,
        version: view.version,
        desired_state: view.desired_state,
        status: view.status,
        status_reason: view.status_reason,
        generation: view.generation,
        observed_generation: view.observed_generation,
        applied_revision: view.applied_revision,
        endpoints: view.endpoints,
        created_at: view.created_at,
        updated_at: view.updated_at,
    };
    Ok((deployment, security))
}

/// The deployment's objects, with a server certificate from a throwaway CA. Secrets
/// (keys, custom certificates, credentials) live in the control plane's database and
/// are not rendered: `security` carries only what the deployment file shows.
pub fn render(
    deployment: &Deployment,
    security: &BrokerSecurity,
    settings: &KubernetesSettings,
) -> anyhow::Result<Manifests> {
    let ca = Ca::ephemeral()?;
    let tls = super::tls::reuse_or_issue(
        None,
        &manifests::certificate_names(deployment.id, settings),
        &ca,
    )?;
    Ok(manifests::build(
        deployment,
        settings,
        &tls,
        security,
        None,
        UNASSIGNED_UID,
    ))
}

/// Runs the subcommand: prints the YAML on stdout.
pub fn run(deployment_file: &Path, settings: &KubernetesSettings) -> anyhow::Result<()> {
    let (deployment, security) = read_deployment(deployment_file)?;
    anyhow::ensure!(
        security.internal_endpoint.is_none() || settings.internal_lb_provider.is_some(),
        "{} has an internal endpoint: pass --internal-lb-provider (aws, gcp, azure or custom) so its load balancer is internal",
        deployment_file.display()
    );
    let yaml = render(&deployment, &security, settings)?.to_yaml()?;
    print!("{yaml}");
    Ok(())
}

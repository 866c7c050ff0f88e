//! `skyport render-manifests` for every plan × internal LB provider × running/stopped,
//! and with the networking add-ons for every internal LB provider × NAT provider,
//! validated against the Kubernetes schema by kubernetes-validate in strict mode.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::{json, Value};
use skyport_tests::{binary, python};

/// The Kubernetes version kube-rs' k8s-openapi (feature `v1_34`) targets.
const KUBERNETES_VERSION: &str = "1.34.0";

fn deployment_json(plan: &str, desired_state: &str) -> serde_json::Value {
    json!({
        "id": "0192f0a0-0000-7000-8000-00000000000a",
        "project_id": "0192f0a0-0000-7000-8000-00000000000b",
        "name": "render me",
        "plan": plan,
        "tier": {"max_sessions": 5000, "max_tps": 2000},
        "version": "0.1",
        "desired_state": desired_state,
        "status": if desired_state == "running" { "running" } else { "stopped" },
        "status_reason": null,
        "generation": 4,
        "observed_generation": 4,
        "endpoints": null,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-02T00:00:00Z",
    })
}

fn render(file: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(binary("skyport"))
        .arg("render-manifests")
        .arg("--deployment-file")
        .arg(file)
        .args(extra)
        .env_remove("RUST_BACKTRACE")
        .env_remove("SKYPORT_INTERNAL_LB_PROVIDER")
        .env_remove("SKYPORT_NAT_PROVIDER")
        .output()
        .expect("running skyport render-manifests")
}

/// Runs kubernetes-validate in strict mode on `files`; panics with its report on refusal.
fn validate_strict(files: &[PathBuf]) {
    let out = Command::new(python::tool("kubernetes-validate"))
        .args(["--strict", "--quiet", "-k", KUBERNETES_VERSION])
        .args(files)
        .output()
        .expect("running kubernetes-validate");
    assert!(
        out.status.success(),
        "kubernetes-validate refused the manifests:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Renders `deployment` with `extra` options; panics with stderr on failure.
fn render_yaml(dir: &Path, stem: &str, deployment: &Value, extra: &[&str]) -> String {
    let input = dir.join(format!("{stem}.json"));
    std::fs::write(&input, deployment.to_string()).unwrap();
    let out = render(&input, extra);
    assert!(
        out.status.success(),
        "{stem}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The YAML's documents, as JSON values.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("a YAML document"))
        .collect()
}

fn kinds(docs: &[Value]) -> Vec<&str> {
    docs.iter().map(|d| d["kind"].as_str().unwrap()).collect()
}

/// The documents without what differs from one render to the next: the certificate
/// from the throwaway CA, and the hash of the config and certificate on the pod.
fn without_certificate(mut docs: Vec<Value>) -> Vec<Value> {
    for doc in &mut docs {
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        if doc["kind"] == "Secret" && name.ends_with("-tls") {
            doc.as_object_mut().unwrap().remove("data");
        }
        if doc["kind"] == "StatefulSet" {
            doc["spec"]["template"]["metadata"]["annotations"]
                .as_object_mut()
                .unwrap()
                .remove("skyport.dev/config-hash");
        }
    }
    docs
}

const EIGHT_KINDS: [&str; 8] = [
    "ConfigMap",
    "ConfigMap",
    "Secret",
    "Secret",
    "Service",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "StatefulSet",
];

#[test]
fn every_plan_and_option_renders_schema_valid_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for plan in ["serverless", "dedicated", "premium"] {
        for provider in ["aws", "gcp", "azure"] {
            for state in ["running", "stopped"] {
                let input = dir.path().join(format!("{plan}-{provider}-{state}.json"));
                std::fs::write(&input, deployment_json(plan, state).to_string()).unwrap();
                let out = render(&input, &["--internal-lb-provider", provider]);
                assert!(
                    out.status.success(),
                    "{plan}/{provider}/{state}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let yaml = String::from_utf8(out.stdout).unwrap();
                let kinds: Vec<&str> = yaml
                    .lines()
                    .filter_map(|l| l.strip_prefix("kind: "))
                    .collect();
                assert_eq!(kinds, EIGHT_KINDS);
                assert_eq!(yaml.matches("\n---\n").count() + 1, 8, "eight documents");
                let replicas = if state == "running" {
                    "replicas: 1"
                } else {
                    "replicas: 0"
                };
                assert!(yaml.contains(replicas), "{plan}/{state}");
                assert_eq!(
                    yaml.contains("port: 1883"),
                    plan != "serverless",
                    "{plan} plain MQTT"
                );
                let output = dir.path().join(format!("{plan}-{provider}-{state}.yaml"));
                std::fs::write(&output, yaml).unwrap();
                files.push(output);
            }
        }
    }
    validate_strict(&files);
}

const ALLOWED_CIDRS: [&str; 2] = ["10.1.0.0/16", "192.168.10.0/24"];

/// A deployment as `GET /deployments/{id}` shows it with a NAT gateway, an internal
/// endpoint and a custom domain.
fn networked_deployment_json(plan: &str) -> Value {
    let mut d = deployment_json(plan, "running");
    d["network"] = json!({
        "domains": [{"domain": "mqtt.example.com", "status": "active"}],
        "egress_addresses": ["203.0.113.7"],
        "internal_endpoint": {"address": null, "allowed_cidrs": ALLOWED_CIDRS},
    });
    d
}

fn internal_lb_annotations(provider: &str) -> Value {
    match provider {
        "aws" => json!({
            "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
            "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
        }),
        "gcp" => json!({"networking.gke.io/load-balancer-type": "Internal"}),
        "azure" => json!({"service.beta.kubernetes.io/azure-load-balancer-internal": "true"}),
        other => panic!("no annotations known for {other}"),
    }
}

/// `security.json` of the security Secret.
fn security_json(secret: &Value) -> Value {
    assert!(
        secret["metadata"]["name"]
            .as_str()
            .unwrap()
            .ends_with("-security"),
        "{secret}"
    );
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(secret.clone()).unwrap();
    serde_json::from_slice(&secret.data.unwrap()["security.json"].0).unwrap()
}

fn port_names(service: &Value) -> Vec<&str> {
    service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect()
}

#[test]
fn networking_add_ons_render_an_internal_service_and_nat_placement() {
    let dir = tempfile::tempdir().unwrap();
    let id = "0192f0a0-0000-7000-8000-00000000000a";
    let mut files = Vec::new();
    for plan in ["dedicated", "premium"] {
        for provider in ["aws", "gcp", "azure"] {
            for nat in ["node-pool", "calico"] {
                let what = format!("{plan}-{provider}-{nat}");
                let yaml = render_yaml(
                    dir.path(),
                    &what,
                    &networked_deployment_json(plan),
                    &["--internal-lb-provider", provider, "--nat-provider", nat],
                );
                let docs = documents(&yaml);
                assert_eq!(
                    kinds(&docs),
                    [
                        "ConfigMap",
                        "ConfigMap",
                        "Secret",
                        "Secret",
                        "Service",
                        "Service",
                        "PodDisruptionBudget",
                        "NetworkPolicy",
                        "StatefulSet"
                    ],
                    "{what}"
                );
                assert_eq!(
                    yaml.matches("\n---\n").count() + 1,
                    9,
                    "{what}: nine documents"
                );

                // The public Service is as without the add-ons.
                let public = &docs[4];
                assert_eq!(
                    public["metadata"]["name"],
                    format!("skyport-{id}"),
                    "{what}"
                );
                assert!(
                    public["metadata"].get("annotations").is_none(),
                    "{what}: the public Service is not internal: {public}"
                );
                assert!(
                    public["spec"].get("loadBalancerSourceRanges").is_none(),
                    "{what}"
                );
                assert!(port_names(public).contains(&"api"), "{what}");

                // The internal one: the provider's internal load balancer, the MQTT ports
                // without the API, open to the allowed ranges only.
                let internal = &docs[5];
                assert_eq!(
                    internal["metadata"]["name"],
                    format!("skyport-{id}-internal"),
                    "{what}"
                );
                assert_eq!(
                    internal["metadata"]["annotations"],
                    internal_lb_annotations(provider),
                    "{what}"
                );
                assert_eq!(
                    internal["metadata"]["labels"], public["metadata"]["labels"],
                    "{what}"
                );
                assert_eq!(internal["spec"]["type"], "LoadBalancer", "{what}");
                assert_eq!(
                    internal["spec"]["selector"], public["spec"]["selector"],
                    "{what}: the same pod"
                );
                assert_eq!(
                    internal["spec"]["loadBalancerSourceRanges"],
                    json!(ALLOWED_CIDRS),
                    "{what}"
                );
                let mqtt_ports: Vec<&str> = port_names(public)
                    .into_iter()
                    .filter(|name| *name != "api")
                    .collect();
                assert!(!mqtt_ports.is_empty());
                assert_eq!(port_names(internal), mqtt_ports, "{what}: no API port");
                assert!(
                    internal["spec"]["ports"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|p| p["port"] != 8081 && p["targetPort"] != "api"),
                    "{what}: {internal}"
                );

                // The NAT gateway moves the pod where its egress is NAT'd.
                let pod = &docs[8]["spec"]["template"];
                let calico_selector =
                    &pod["metadata"]["annotations"]["egress.projectcalico.org/selector"];
                match nat {
                    "node-pool" => {
                        assert_eq!(
                            pod["spec"]["nodeSelector"],
                            json!({"skyport.io/egress": "nat"}),
                            "{what}"
                        );
                        assert_eq!(
                            pod["spec"]["tolerations"],
                            json!([{
                                "key": "skyport.io/egress",
                                "operator": "Equal",
                                "value": "nat",
                                "effect": "NoSchedule",
                            }]),
                            "{what}"
                        );
                        assert!(calico_selector.is_null(), "{what}");
                    }
                    _ => {
                        assert_eq!(
                            *calico_selector, "skyport.io/egress-gateway == 'true'",
                            "{what}"
                        );
                        assert!(pod["spec"].get("nodeSelector").is_none(), "{what}");
                        assert!(pod["spec"].get("tolerations").is_none(), "{what}");
                    }
                }
                assert!(
                    pod["metadata"]["annotations"]["skyport.dev/config-hash"].is_string(),
                    "{what}: the config hash is kept"
                );
                // The platform realises the add-ons: the broker is not told the egress
                // or internal addresses (and has no domain certificates in a render).
                assert_eq!(
                    security_json(&docs[3])["network"],
                    json!({"domains": [], "egress_address": null, "internal_endpoint": null}),
                    "{what}"
                );

                let output = dir.path().join(format!("{what}.yaml"));
                std::fs::write(&output, yaml).unwrap();
                files.push(output);
            }
        }
    }
    validate_strict(&files);
}

#[test]
fn an_absent_or_empty_network_section_renders_the_eight_documents_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for plan in ["dedicated", "premium"] {
        for nat in ["node-pool", "calico"] {
            let options = ["--internal-lb-provider", "aws", "--nat-provider", nat];
            let plain = deployment_json(plan, "running");
            let baseline = documents(&render_yaml(
                dir.path(),
                &format!("{plan}-{nat}-absent"),
                &plain,
                &options,
            ));
            assert_eq!(kinds(&baseline), EIGHT_KINDS);
            let pod = &baseline[7]["spec"]["template"];
            assert!(pod["spec"].get("nodeSelector").is_none());
            assert!(pod["spec"].get("tolerations").is_none());
            assert_eq!(
                pod["metadata"]["annotations"].as_object().unwrap().len(),
                1,
                "only the config hash: {pod}"
            );
            let baseline = without_certificate(baseline);

            let empties = [
                ("null", json!(null)),
                ("object", json!({})),
                (
                    "lists",
                    json!({"domains": [], "egress_addresses": [], "internal_endpoint": null}),
                ),
                // Domains alone change nothing on the cluster: the broker serves them.
                (
                    "domains",
                    json!({"domains": [{"domain": "mqtt.example.com", "status": "pending_dns"}]}),
                ),
            ];
            for (name, network) in empties {
                let what = format!("{plan}-{nat}-{name}");
                let mut d = plain.clone();
                d["network"] = network;
                let yaml = render_yaml(dir.path(), &what, &d, &options);
                let docs = documents(&yaml);
                assert_eq!(kinds(&docs), EIGHT_KINDS, "{what}");
                assert_eq!(yaml.matches("\n---\n").count() + 1, 8, "{what}");
                assert!(!yaml.contains("-internal"), "{what}");
                assert_eq!(without_certificate(docs), baseline, "{what}");
                let output = dir.path().join(format!("{what}.yaml"));
                std::fs::write(&output, yaml).unwrap();
                files.push(output);
            }
        }
    }
    validate_strict(&files);
}

#[test]
fn the_validator_refuses_what_the_schema_does_not_know() {
    // Guards the test above: strict mode must fail on an unknown field.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("d.json");
    std::fs::write(&input, deployment_json("dedicated", "running").to_string()).unwrap();
    let yaml = String::from_utf8(render(&input, &[]).stdout).unwrap();
    let broken = yaml.replacen("  serviceName:", "  serviceNme: typo\n  serviceName:", 1);
    assert_ne!(broken, yaml);
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, broken).unwrap();
    let out = Command::new(python::tool("kubernetes-validate"))
        .args(["--strict", "--quiet", "-k", KUBERNETES_VERSION])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("serviceNme"));
}

#[test]
fn a_bad_deployment_file_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = render(&dir.path().join("absent.json"), &[]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("reading the deployment file"));
    assert!(missing.stdout.is_empty(), "nothing is printed");

    let mut bad = deployment_json("gold", "running");
    let file = dir.path().join("gold.json");
    std::fs::write(&file, bad.to_string()).unwrap();
    let out = render(&file, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("at `plan`") && stderr.contains("unknown variant `gold`"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    bad["plan"] = json!("dedicated");
    bad["tier"] = json!({"max_sessions": 0, "max_tps": 1});
    std::fs::write(&file, bad.to_string()).unwrap();
    let out = render(&file, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tier.max_sessions must be between 1"));
}

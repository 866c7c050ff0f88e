//! `skyport render-manifests` for every plan × internal LB provider × running/stopped,
//! validated against the Kubernetes schema by kubernetes-validate in strict mode.

use std::process::Command;

use serde_json::json;
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

fn render(file: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(binary("skyport"))
        .arg("render-manifests")
        .arg("--deployment-file")
        .arg(file)
        .args(extra)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("running skyport render-manifests")
}

#[test]
fn every_plan_and_option_renders_schema_valid_manifests() {
    let validate = python::tool("kubernetes-validate");
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
                assert_eq!(
                    kinds,
                    [
                        "ConfigMap",
                        "ConfigMap",
                        "Secret",
                        "Secret",
                        "Service",
                        "PodDisruptionBudget",
                        "NetworkPolicy",
                        "StatefulSet"
                    ]
                );
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
    let out = Command::new(validate)
        .args(["--strict", "--quiet", "-k", KUBERNETES_VERSION])
        .args(&files)
        .output()
        .expect("running kubernetes-validate");
    assert!(
        out.status.success(),
        "kubernetes-validate refused the manifests:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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

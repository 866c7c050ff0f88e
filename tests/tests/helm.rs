//! The Helm chart (`helm/skyport`) rendered and linted by the real Helm engine
//! (helm-python-sdk, through `tests/py/helm_render.py`), every rendering validated with
//! `kubernetes-validate --strict`, and the committed default rendering
//! (`helm/rendered/default.yaml`) checked for drift.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};
use skyport_tests::{python, workspace_root};

const REGENERATE: &str = "target/pytools/bin/python tests/py/helm_render.py write";
/// The chart's `kubeVersion` floor and the current Kubernetes release.
const KUBE_VERSIONS: [&str; 2] = ["1.27.0", "1.37.0"];
const RELEASE: &str = "skyport";
const NAMESPACE: &str = "skyport";

fn helm_render(args: &[&str]) -> Output {
    Command::new(python::interpreter())
        .arg(workspace_root().join("tests/py/helm_render.py"))
        .args(args)
        .current_dir(workspace_root())
        .output()
        .expect("running tests/py/helm_render.py")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Validates every object in `file` against the Kubernetes schemas in strict mode.
fn validate(file: &Path, objects: usize) {
    for version in KUBE_VERSIONS {
        let out = Command::new(python::tool("kubernetes-validate"))
            .args(["--strict", "-k", version])
            .arg(file)
            .output()
            .expect("running kubernetes-validate");
        let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success(),
            "kubernetes-validate {version} refused {}:\n{report}",
            file.display()
        );
        // An unknown kind is only a warning to kubernetes-validate: refuse it here.
        assert!(
            !report.contains("WARN"),
            "kubernetes-validate {version} warned:\n{report}"
        );
        assert_eq!(
            report.matches("passed for resource").count(),
            objects,
            "not every object was validated against {version}:\n{report}"
        );
    }
}

/// One rendering of the chart, already validated.
struct Rendering {
    objects: Vec<Value>,
    /// Secret name → key → decoded value.
    secrets: BTreeMap<String, BTreeMap<String, String>>,
    notes: String,
}

fn render(values: Value) -> Rendering {
    render_release(values, RELEASE, NAMESPACE)
}

fn render_release(values: Value, name: &str, namespace: &str) -> Rendering {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("manifests.yaml");
    let out = helm_render(&[
        "render",
        "--values",
        &values.to_string(),
        "--name",
        name,
        "--namespace",
        namespace,
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "rendering with {values} failed:\n{}",
        text(&out.stderr)
    );
    let rendered: Value = serde_json::from_slice(&out.stdout).unwrap();
    let objects = rendered["objects"].as_array().unwrap().clone();
    validate(&file, objects.len());
    Rendering {
        objects,
        secrets: serde_json::from_value(rendered["secrets"].clone()).unwrap(),
        notes: rendered["notes"].as_str().unwrap().to_owned(),
    }
}

/// Renders `values`, expecting the chart to refuse them; returns Helm's message.
fn refused(values: Value) -> String {
    let out = helm_render(&["render", "--values", &values.to_string()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{values} was not refused:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

impl Rendering {
    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn get(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in {:#?}", self.kinds()))
    }

    fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .objects
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        kinds.sort();
        kinds
    }

    fn deployment(&self) -> &Value {
        let deployments = self.all("Deployment");
        assert_eq!(deployments.len(), 1);
        deployments[0]
    }
}

/// A pod template's first container's environment: name → `value` or `valueFrom`.
fn env(workload: &Value) -> BTreeMap<String, Value> {
    workload["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let value = e
                .get("value")
                .or_else(|| e.get("valueFrom"))
                .unwrap()
                .clone();
            (e["name"].as_str().unwrap().to_owned(), value)
        })
        .collect()
}

fn secret_ref(name: &str, key: &str) -> Value {
    json!({"secretKeyRef": {"name": name, "key": key}})
}

#[test]
fn chart_lints_clean_with_every_value_set() {
    for values in [
        json!({}),
        json!({"ingress": {"enabled": true, "host": "api.example.com", "tls": {"enabled": true}}}),
        json!({"rbac": {"clusterWide": true}, "orchestrator": {"namespace": "brokers"}}),
        json!({"database": {"existingSecret": {"name": "pg"}}, "adminToken": {"existingSecret": {"name": "admin"}}, "secretKey": {"existingSecret": "skyport-key"}}),
    ] {
        let out = helm_render(&["lint", "--values", &values.to_string()]);
        assert!(out.status.success(), "lint failed: {}", text(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            report["errors"],
            json!([]),
            "lint errors with {values}: {report:#}"
        );
        // Severity 2 is a warning, 3 an error; 1 (info, e.g. "icon is recommended") is fine.
        let serious: Vec<&Value> = report["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["severity"].as_i64().unwrap() >= 2)
            .collect();
        assert!(
            serious.is_empty(),
            "lint warnings with {values}: {serious:#?}"
        );
    }
}

#[test]
fn committed_default_rendering_is_current_and_valid() {
    let out = helm_render(&["default"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let committed_path = workspace_root().join("helm/rendered/default.yaml");
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        text(&out.stdout) == committed,
        "helm/rendered/default.yaml is stale: regenerate it with `{REGENERATE}` and commit it"
    );
    validate(&committed_path, committed.matches("\n# Source: ").count());
}

#[test]
fn default_values_install_the_control_plane() {
    let r = render(json!({}));
    assert_eq!(
        r.kinds(),
        [
            "Deployment/skyport",
            "Job/skyport-migrate",
            "PodDisruptionBudget/skyport",
            "Role/skyport-driver",
            "Role/skyport-leader-election",
            "RoleBinding/skyport-driver",
            "RoleBinding/skyport-leader-election",
            "Secret/skyport-admin-token",
            "Secret/skyport-database",
            "Secret/skyport-secret-key",
            "Service/skyport",
            "ServiceAccount/skyport",
        ]
    );
    for object in &r.objects {
        let labels = &object["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/name"], "skyport", "{object:#}");
        assert_eq!(labels["app.kubernetes.io/instance"], RELEASE);
        assert_eq!(labels["app.kubernetes.io/version"], "0.1.0");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
        assert_eq!(labels["helm.sh/chart"], "skyport-0.1.0");
    }

    let deployment = r.deployment();
    // Two replicas: one leads, the other serves the API and takes over.
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "skyport/skyport:0.1.0");
    assert_eq!(pod["serviceAccountName"], "skyport");
    assert_eq!(
        container["ports"],
        json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
    );
    for probe in ["startupProbe", "livenessProbe"] {
        assert_eq!(
            container[probe]["httpGet"],
            json!({"path": "/api/v1/healthz", "port": "http"}),
            "{probe}"
        );
    }
    // Ready once the database answers and a leader is known.
    assert_eq!(
        container["readinessProbe"]["httpGet"],
        json!({"path": "/api/v1/readyz", "port": "http"})
    );
    // Replicas spread over nodes, and evictions keep one serving.
    let selector = json!({
        "app.kubernetes.io/name": "skyport",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": "control-plane",
    });
    assert_eq!(
        pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"],
        json!([{"weight": 100, "podAffinityTerm": {
            "topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchLabels": selector},
        }}])
    );
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"], selector,
        "the anti-affinity selects exactly the control plane's pods"
    );
    let pdb = r.get("PodDisruptionBudget", "skyport");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], selector);
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );

    let cp_env = env(deployment);
    assert_eq!(cp_env["SKYPORT_LISTEN"], "0.0.0.0:8080");
    assert_eq!(cp_env["SKYPORT_ORCHESTRATOR"], "kubernetes");
    assert_eq!(cp_env["SKYPORT_LOG_FORMAT"], "json");
    assert_eq!(cp_env["SKYPORT_KUBE_NAMESPACE"], NAMESPACE);
    assert_eq!(
        cp_env["SKYPORT_BROKER_IMAGE"],
        "skyport/skyport-broker:0.1.0"
    );
    assert_eq!(cp_env["SKYPORT_INTERNAL_LB_PROVIDER"], "aws");
    // Broker pods report usage to the control plane through its Service.
    assert_eq!(
        cp_env["SKYPORT_INTERNAL_URL"],
        "http://skyport.skyport.svc:8080"
    );
    assert_eq!(
        cp_env["SKYPORT_DATABASE_URL"],
        secret_ref("skyport-database", "database-url")
    );
    assert_eq!(
        cp_env["SKYPORT_ADMIN_TOKEN"],
        secret_ref("skyport-admin-token", "admin-token")
    );
    // The key encrypting stored TLS private keys comes from a Secret, not the pod's
    // scratch data dir, so restarts and replicas share it.
    assert_eq!(
        cp_env["SKYPORT_SECRET_KEY"],
        secret_ref("skyport-secret-key", "secret-key")
    );
    for unset in [
        "SKYPORT_BASE_DOMAIN",
        "SKYPORT_STORAGE_CLASS",
        "SKYPORT_BROKER_STORAGE_SIZE",
        "SKYPORT_PUBLIC_HOST",
    ] {
        assert!(!cp_env.contains_key(unset), "{unset} is set by default");
    }
    // The read-only root file system leaves the data dir to an emptyDir.
    let data_dir = cp_env["SKYPORT_DATA_DIR"].as_str().unwrap();
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == data_dir)
        .expect("the data dir is mounted");
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert_eq!(volume["emptyDir"], json!({}));

    // The Service reaches the pods.
    let service = r.get("Service", "skyport");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}])
    );
    let pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap();
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(pod_labels.get(key), Some(value), "selector {key}");
    }
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"]
    );

    // The migration hook runs `skyport migrate` against the same database Secret, which is
    // itself a hook created first (ordinary objects do not exist yet at pre-install).
    let job = r.get("Job", "skyport-migrate");
    let hook = &job["metadata"]["annotations"];
    assert_eq!(hook["helm.sh/hook"], "pre-install,pre-upgrade");
    assert_eq!(
        hook["helm.sh/hook-delete-policy"],
        "before-hook-creation,hook-succeeded"
    );
    let job_pod = &job["spec"]["template"]["spec"];
    assert_eq!(job_pod["containers"][0]["image"], "skyport/skyport:0.1.0");
    assert_eq!(job_pod["containers"][0]["args"], json!(["migrate"]));
    assert_eq!(job_pod["restartPolicy"], "Never");
    assert_eq!(job_pod["automountServiceAccountToken"], false);
    assert_eq!(
        env(job)["SKYPORT_DATABASE_URL"],
        cp_env["SKYPORT_DATABASE_URL"]
    );
    // `skyport migrate` touches no encrypted data.
    assert!(!env(job).contains_key("SKYPORT_SECRET_KEY"));
    let db_secret = &r.get("Secret", "skyport-database")["metadata"]["annotations"];
    assert_eq!(db_secret["helm.sh/hook"], "pre-install,pre-upgrade");
    let weight = |v: &Value| v.as_str().unwrap().parse::<i32>().unwrap();
    assert!(weight(&db_secret["helm.sh/hook-weight"]) < weight(&hook["helm.sh/hook-weight"]));
    assert_eq!(
        r.secrets["skyport-database"]["database-url"],
        "postgres://skyport@postgresql:5432/skyport"
    );

    // No token given: the chart generates one (the binary wants 16+ characters).
    let token = &r.secrets["skyport-admin-token"]["admin-token"];
    assert!(
        token.len() == 40 && token.chars().all(|c| c.is_ascii_alphanumeric()),
        "{token}"
    );
    // No secret key given: the chart generates base64 of 32 bytes (what the binary wants),
    // kept across upgrades (lookup) and uninstalls (resource policy).
    let key = &r.secrets["skyport-secret-key"]["secret-key"];
    assert!(
        key.len() == 32 && key.chars().all(|c| c.is_ascii_alphanumeric()),
        "{key}"
    );
    let key_secret = r.get("Secret", "skyport-secret-key");
    assert_eq!(
        key_secret["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    assert!(key_secret["metadata"]["annotations"]
        .get("helm.sh/hook")
        .is_none());
    assert!(
        r.notes
            .contains("kubectl get secret --namespace skyport skyport-admin-token"),
        "{}",
        r.notes
    );
    assert!(r
        .notes
        .contains("kubectl port-forward --namespace skyport service/skyport 8080:8080"));
    assert!(r.notes.contains("http://127.0.0.1:8080/api/v1/projects"));
}

/// A role's rules as "group/resource" → verbs.
fn grants(role: &Value) -> BTreeMap<String, Vec<String>> {
    let mut grants: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rule in role["rules"].as_array().unwrap() {
        let verbs: Vec<String> = serde_json::from_value(rule["verbs"].clone()).unwrap();
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                let key = format!("{}/{}", group.as_str().unwrap(), resource.as_str().unwrap());
                grants.entry(key).or_default().extend(verbs.clone());
            }
        }
    }
    grants
}

/// What the kubernetes driver needs: apply, read back and delete its objects, delete the
/// session volumes, read pods; Namespaces only when it may create them (cluster-wide).
fn driver_grants(cluster_wide: bool) -> BTreeMap<String, Vec<String>> {
    let verbs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let apply = verbs(&[
        "get", "list", "watch", "create", "update", "patch", "delete",
    ]);
    let mut expected = BTreeMap::new();
    for resource in [
        "apps/statefulsets",
        "/services",
        "/configmaps",
        "/secrets",
        "policy/poddisruptionbudgets",
        "networking.k8s.io/networkpolicies",
    ] {
        expected.insert(resource.to_owned(), apply.clone());
    }
    expected.insert(
        "/persistentvolumeclaims".into(),
        verbs(&["get", "list", "delete"]),
    );
    expected.insert("/pods".into(), verbs(&["get", "list", "watch"]));
    if cluster_wide {
        expected.insert("/namespaces".into(), apply);
    }
    expected
}

fn assert_leader_election(r: &Rendering) {
    let leases = r.get("Role", "skyport-leader-election");
    assert_eq!(leases["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        grants(leases),
        BTreeMap::from([(
            "coordination.k8s.io/leases".to_owned(),
            ["get", "list", "watch", "create", "update", "patch"]
                .map(String::from)
                .to_vec()
        )])
    );
    let binding = r.get("RoleBinding", "skyport-leader-election");
    assert_eq!(binding["roleRef"]["name"], "skyport-leader-election");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "skyport", "namespace": NAMESPACE}])
    );
}

#[test]
fn rbac_is_by_default_a_role_granting_only_what_the_driver_uses() {
    let r = render(json!({}));
    assert!(r.all("ClusterRole").is_empty() && r.all("ClusterRoleBinding").is_empty());
    let role = r.get("Role", "skyport-driver");
    assert_eq!(role["metadata"]["namespace"], NAMESPACE);
    assert_eq!(grants(role), driver_grants(false));
    let binding = r.get("RoleBinding", "skyport-driver");
    assert_eq!(binding["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "skyport-driver"})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "skyport", "namespace": NAMESPACE}])
    );
    assert_leader_election(&r);

    // Deployments in another namespace: the Role goes there, the Lease stays at home.
    let r = render(json!({"orchestrator": {"namespace": "brokers"}}));
    assert_eq!(
        r.get("Role", "skyport-driver")["metadata"]["namespace"],
        "brokers"
    );
    let binding = r.get("RoleBinding", "skyport-driver");
    assert_eq!(binding["metadata"]["namespace"], "brokers");
    assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);
    assert_eq!(env(r.deployment())["SKYPORT_KUBE_NAMESPACE"], "brokers");
    assert_leader_election(&r);
}

#[test]
fn cluster_wide_rbac_is_a_cluster_role_that_adds_namespaces() {
    let r = render(json!({"rbac": {"clusterWide": true}}));
    assert!(r
        .all("Role")
        .iter()
        .all(|role| role["metadata"]["name"] != "skyport-driver"));
    assert_eq!(
        grants(r.get("ClusterRole", "skyport-skyport-driver")),
        driver_grants(true)
    );
    let binding = r.get("ClusterRoleBinding", "skyport-skyport-driver");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "skyport-skyport-driver"})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "skyport", "namespace": NAMESPACE}])
    );
    assert_leader_election(&r);
}

#[test]
fn rbac_and_service_account_can_be_left_to_the_operator() {
    let r = render(
        json!({"rbac": {"create": false}, "serviceAccount": {"create": false, "name": "provided"}}),
    );
    for kind in [
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    ] {
        assert!(
            r.all(kind).is_empty(),
            "{kind} rendered with rbac.create=false"
        );
    }
    assert_eq!(
        r.deployment()["spec"]["template"]["spec"]["serviceAccountName"],
        "provided"
    );
}

#[test]
fn ingress_serves_the_api_host() {
    let r = render(json!({"ingress": {
        "enabled": true,
        "className": "nginx",
        "host": "skyport.example.com",
        "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
        "tls": {"enabled": true},
    }}));
    let ingress = r.get("Ingress", "skyport");
    assert_eq!(
        ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"],
        "letsencrypt"
    );
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(
        ingress["spec"]["tls"],
        json!([{"hosts": ["skyport.example.com"], "secretName": "skyport-tls"}])
    );
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"], "skyport.example.com");
    assert_eq!(
        rule["http"]["paths"][0]["backend"],
        json!({"service": {"name": "skyport", "port": {"name": "http"}}})
    );
    assert!(
        r.notes
            .contains("https://skyport.example.com/api/v1/projects"),
        "{}",
        r.notes
    );

    let r = render(
        json!({"ingress": {"enabled": true, "host": "skyport.example.com", "tls": {"enabled": true, "secretName": "own-cert"}}}),
    );
    let ingress = r.get("Ingress", "skyport");
    assert!(
        ingress["spec"].get("ingressClassName").is_none(),
        "no class: the cluster default"
    );
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "own-cert");
    assert!(render(json!({})).all("Ingress").is_empty());
}

#[test]
fn existing_secrets_are_referenced_not_created() {
    let r = render(json!({
        "database": {"existingSecret": {"name": "pg-credentials", "key": "url"}},
        "adminToken": {"existingSecret": {"name": "skyport-admin", "key": "token"}},
        "secretKey": {"existingSecret": "skyport-encryption"},
    }));
    assert!(r.all("Secret").is_empty(), "{:?}", r.kinds());
    assert_eq!(
        env(r.deployment())["SKYPORT_SECRET_KEY"],
        secret_ref("skyport-encryption", "secret-key")
    );
    let env_cp = env(r.deployment());
    assert_eq!(
        env_cp["SKYPORT_DATABASE_URL"],
        secret_ref("pg-credentials", "url")
    );
    assert_eq!(
        env_cp["SKYPORT_ADMIN_TOKEN"],
        secret_ref("skyport-admin", "token")
    );
    assert_eq!(
        env(r.get("Job", "skyport-migrate"))["SKYPORT_DATABASE_URL"],
        secret_ref("pg-credentials", "url")
    );
    assert!(r.notes.contains("skyport-admin"), "{}", r.notes);
}

#[test]
fn given_values_fill_the_chart_secrets_and_roll_the_pods() {
    let values = |url: &str| {
        json!({
            "database": {"url": url},
            "adminToken": {"value": "an-admin-token-of-32-characters!"},
            "migration": {"enabled": false},
        })
    };
    let r = render(values("postgres://skyport:pw@db.internal:5432/skyport"));
    assert_eq!(
        r.secrets["skyport-database"]["database-url"],
        "postgres://skyport:pw@db.internal:5432/skyport"
    );
    assert_eq!(
        r.secrets["skyport-admin-token"]["admin-token"],
        "an-admin-token-of-32-characters!"
    );
    // Without the hook Job, the database Secret is an ordinary release object.
    assert!(r.all("Job").is_empty());
    assert!(r.get("Secret", "skyport-database")["metadata"]
        .get("annotations")
        .is_none());

    let checksum = |r: &Rendering| {
        r.deployment()["spec"]["template"]["metadata"]["annotations"]["checksum/database"].clone()
    };
    let other = render(values("postgres://skyport:other@db.internal:5432/skyport"));
    assert_ne!(
        checksum(&r),
        checksum(&other),
        "a new database URL must roll the pods"
    );
}

#[test]
fn each_internal_lb_provider_reaches_the_driver() {
    for provider in ["aws", "gcp", "azure", "custom"] {
        let r = render(json!({"orchestrator": {"internalLoadBalancerProvider": provider}}));
        assert_eq!(
            env(r.deployment())["SKYPORT_INTERNAL_LB_PROVIDER"],
            provider
        );
    }
}

#[test]
fn a_single_replica_has_no_disruption_budget_and_given_affinity_wins() {
    let affinity = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "pool", "operator": "In", "values": ["control"]}
        ]}]
    }}});
    let r = render(json!({"replicaCount": 1, "affinity": affinity}));
    assert!(r.all("PodDisruptionBudget").is_empty(), "{:?}", r.kinds());
    let deployment = r.deployment();
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["template"]["spec"]["affinity"], affinity);
    let unspread = render(
        json!({"spreadReplicas": false, "podDisruptionBudget": {"enabled": false, "minAvailable": 1}}),
    );
    assert!(unspread.deployment()["spec"]["template"]["spec"]["affinity"].is_null());
    assert!(unspread.all("PodDisruptionBudget").is_empty());
}

#[test]
fn replicas_and_orchestrator_settings_reach_the_control_plane() {
    let r = render_release(
        json!({
            "replicaCount": 3,
            "image": {"repository": "registry.internal/skyport", "tag": "0.1.0-rc1", "pullPolicy": "Always"},
            "baseDomain": "mqtt.example.com",
            "publicHost": "mqtt.example.com",
            "logFormat": "text",
            "logLevel": "debug",
            "orchestrator": {
                "brokerImage": {"repository": "registry.internal/skyport-broker", "tag": "0.1.0-rc1"},
                "storageClass": "fast-ssd",
                "brokerStorageSize": "5Gi",
            },
            "service": {"type": "ClusterIP", "port": 9090},
            "rbac": {"clusterWide": true},
            "extraEnv": [{"name": "SKYPORT_EVENT_RETENTION", "value": "14d"}],
        }),
        "prod",
        "mqtt",
    );
    let deployment = r.get("Deployment", "prod-skyport");
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.internal/skyport:0.1.0-rc1"
    );
    assert_eq!(
        r.get("Job", "prod-skyport-migrate")["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.internal/skyport:0.1.0-rc1"
    );
    let cp_env = env(deployment);
    assert_eq!(cp_env["SKYPORT_BASE_DOMAIN"], "mqtt.example.com");
    assert_eq!(cp_env["SKYPORT_PUBLIC_HOST"], "mqtt.example.com");
    assert_eq!(cp_env["SKYPORT_LOG_FORMAT"], "text");
    assert_eq!(cp_env["RUST_LOG"], "debug");
    assert_eq!(
        cp_env["SKYPORT_BROKER_IMAGE"],
        "registry.internal/skyport-broker:0.1.0-rc1"
    );
    assert_eq!(cp_env["SKYPORT_STORAGE_CLASS"], "fast-ssd");
    assert_eq!(cp_env["SKYPORT_BROKER_STORAGE_SIZE"], "5Gi");
    assert_eq!(
        cp_env["SKYPORT_INTERNAL_URL"],
        "http://prod-skyport.mqtt.svc:9090"
    );
    assert_eq!(cp_env["SKYPORT_KUBE_NAMESPACE"], "mqtt");
    assert_eq!(cp_env["SKYPORT_EVENT_RETENTION"], "14d");
    assert_eq!(
        cp_env["SKYPORT_DATABASE_URL"],
        secret_ref("prod-skyport-database", "database-url")
    );
    // Cluster-scoped names carry the release namespace, so two releases never collide.
    r.get("ClusterRole", "mqtt-prod-skyport-driver");
    for object in &r.objects {
        let cluster_scoped = matches!(
            object["kind"].as_str(),
            Some("ClusterRole" | "ClusterRoleBinding")
        );
        assert_eq!(
            object["metadata"].get("namespace").is_none(),
            cluster_scoped,
            "{object:#}"
        );
        if !cluster_scoped {
            assert_eq!(object["metadata"]["namespace"], "mqtt");
        }
    }
}

#[test]
fn schema_refuses_bad_values() {
    for (values, message) in [
        (json!({"bogus": 1}), "additional properties 'bogus' not allowed"),
        (json!({"ingress": {"tls": {"enabeld": true}}}), "at '/ingress/tls': additional properties 'enabeld' not allowed"),
        (json!({"orchestrator": {"internalLoadBalancerProvider": "oracle"}}), "at '/orchestrator/internalLoadBalancerProvider': value must be one of 'aws', 'gcp', 'azure', 'custom'"),
        (json!({"logFormat": "xml"}), "at '/logFormat': value must be one of 'text', 'json'"),
        (json!({"replicaCount": 0}), "at '/replicaCount': minimum"),
        (json!({"ingress": {"enabled": true}}), "at '/ingress/host': minLength"),
        (json!({"database": {"url": "mysql://db/skyport"}}), "at '/database/url'"),
        (json!({"database": {"url": ""}}), "at '/database': 'anyOf' failed"),
        (json!({"adminToken": {"value": "too-short"}}), "at '/adminToken/value'"),
        (json!({"secretKey": {"existingSecret": "Not_A_Name"}}), "at '/secretKey/existingSecret'"),
        (json!({"secretKey": {"value": "abc"}}), "at '/secretKey': additional properties 'value' not allowed"),
        (json!({"orchestrator": {"namespace": "Not_A_Namespace"}}), "at '/orchestrator/namespace'"),
        (json!({"orchestrator": {"brokerStorageSize": "lots"}}), "at '/orchestrator/brokerStorageSize'"),
        (json!({"internalUrl": "prod-skyport:8080"}), "at '/internalUrl'"),
        (json!({"service": {"type": "ExternalName"}}), "at '/service/type': value must be one of"),
    ] {
        let stderr = refused(values.clone());
        assert!(stderr.contains("HelmValuesError"), "{values}: {stderr}");
        assert!(stderr.contains(message), "{values}: expected `{message}` in:\n{stderr}");
    }
}

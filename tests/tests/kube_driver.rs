//! The Kubernetes driver against the fake API server, through kube-rs over real HTTP.

use std::sync::Arc;

use chrono::Utc;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{json, Value};
use skyport_control_plane::ca::Ca;
use skyport_control_plane::domain::{DesiredState, Id, Plan, Status, Tier};
use skyport_control_plane::orchestrator::kubernetes::{KubernetesOrchestrator, KubernetesSettings};
use skyport_control_plane::orchestrator::{Applied, Observed, Orchestrator};
use skyport_control_plane::store::Deployment;
use skyport_tests::fake_kube::{kubelet, FakeKube};

const NS: &str = "skyport-test";

fn settings() -> KubernetesSettings {
    KubernetesSettings {
        namespace: NS.into(),
        broker_image: "skyport/skyport-broker:test".into(),
        storage_class: Some("fast".into()),
        storage_size: "1Gi".into(),
        internal_lb_provider: None,
        nat_provider: Default::default(),
        base_domain: None,
    }
}

fn deployment(plan: Plan) -> Deployment {
    Deployment {
        id: Id::new(),
        project_id: Id::new(),
        name: "demo".into(),
        plan,
        tier: plan.default_tier(),
        version: "0.1".into(),
        desired_state: DesiredState::Running,
        status: Status::Provisioning,
        status_reason: None,
        generation: 1,
        observed_generation: 0,
        applied_revision: 0,
        endpoints: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

struct Setup {
    fake: FakeKube,
    client: kube::Client,
    driver: KubernetesOrchestrator,
}

fn setup_with(settings: KubernetesSettings) -> Setup {
    let fake = FakeKube::start();
    let client = fake.client(NS);
    let ca = Arc::new(Ca::ephemeral().expect("a CA"));
    let driver = KubernetesOrchestrator::new(client.clone(), settings, ca);
    Setup {
        fake,
        client,
        driver,
    }
}

fn setup() -> Setup {
    setup_with(settings())
}

fn base(d: &Deployment) -> String {
    format!("skyport-{}", d.id)
}

impl Setup {
    fn obj(&self, resource: &str, name: &str) -> Value {
        self.fake
            .object(resource, NS, name)
            .unwrap_or_else(|| panic!("{resource}/{name} exists"))
    }

    /// Every object of the deployment (not its claims), by resource.
    fn objects_of(&self, d: &Deployment) -> Vec<(&'static str, Value)> {
        let b = base(d);
        [
            ("configmaps", format!("{b}-root")),
            ("configmaps", format!("{b}-config")),
            ("secrets", format!("{b}-tls")),
            ("services", b.clone()),
            ("poddisruptionbudgets", b.clone()),
            ("networkpolicies", b.clone()),
            ("statefulsets", b.clone()),
        ]
        .into_iter()
        .map(|(r, n)| (r, self.obj(r, &n)))
        .collect()
    }

    fn sts(&self, d: &Deployment) -> Value {
        self.obj("statefulsets", &base(d))
    }
}

fn hash(sts: &Value) -> String {
    sts["spec"]["template"]["metadata"]["annotations"]["skyport.dev/config-hash"]
        .as_str()
        .expect("hash annotation")
        .to_owned()
}

fn rv(o: &Value) -> String {
    o["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_creates_every_object_with_labels_owner_refs_and_field_manager() {
    let s = setup();
    let d = deployment(Plan::Dedicated);
    assert_eq!(s.driver.apply(&d).await.unwrap(), Applied::Started);

    let objects = s.objects_of(&d);
    let root = &objects[0].1;
    assert_eq!(
        root["metadata"]["finalizers"],
        json!(["skyport.dev/cleanup"])
    );
    assert_eq!(root["metadata"]["labels"]["skyport.dev/role"], "root");
    let root_uid = root["metadata"]["uid"].as_str().unwrap();
    for (resource, o) in &objects {
        let labels = &o["metadata"]["labels"];
        assert_eq!(
            labels["app.kubernetes.io/name"], "skyport-broker",
            "{resource}"
        );
        assert_eq!(labels["app.kubernetes.io/instance"], base(&d), "{resource}");
        assert_eq!(
            labels["app.kubernetes.io/managed-by"], "skyport",
            "{resource}"
        );
        assert_eq!(labels["app.kubernetes.io/part-of"], "skyport", "{resource}");
        assert_eq!(labels["app.kubernetes.io/version"], "0.1", "{resource}");
        assert_eq!(
            labels["skyport.dev/deployment-id"],
            d.id.to_string(),
            "{resource}"
        );
        let managers: Vec<(&str, &str)> = o["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["manager"].as_str().unwrap(),
                    e["operation"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            managers,
            vec![("skyport", "Apply")],
            "{resource} is applied by skyport only"
        );
        if o["metadata"]["name"] != root["metadata"]["name"] {
            let owner = &o["metadata"]["ownerReferences"][0];
            assert_eq!(owner["uid"], root_uid, "{resource} is owned by the root");
            assert_eq!(owner["kind"], "ConfigMap");
            assert_eq!(owner["controller"], true);
        }
    }

    let secret = s.obj("secrets", &format!("{}-tls", base(&d)));
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let typed: k8s_openapi::api::core::v1::Secret = serde_json::from_value(secret.clone()).unwrap();
    let data = typed.data.unwrap();
    let decode = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
    assert!(
        decode("tls.crt").ends_with(&decode("ca.crt")),
        "the chain ends with Skyport's CA"
    );
    assert!(decode("tls.key").contains("PRIVATE KEY"));

    let config: Value = serde_json::from_str(
        s.obj("configmaps", &format!("{}-config", base(&d)))["data"]["config.json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(config["listeners"]["tcp"], "0.0.0.0:1883");
    assert_eq!(config["listeners"]["api"], "0.0.0.0:8081");
    assert_eq!(config["limits"]["max_sessions"], d.tier.max_sessions);
    assert!(config.get("metering").is_none(), "no reporting target");

    let svc = s.obj("services", &base(&d));
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    let ports: Vec<i64> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, vec![1883, 8883, 8083, 8084, 8081]);

    let sts = s.sts(&d);
    let container = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "skyport/skyport-broker:test");
    assert_eq!(
        container["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "api"})
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "api"})
    );
    assert_eq!(
        container["resources"]["requests"],
        json!({"cpu": "110m", "memory": "80Mi"})
    );
    assert_eq!(sts["spec"]["replicas"], 1);
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"],
        "fast"
    );
    assert_eq!(s.driver.runtimes().await, vec![d.id]);
}

#[tokio::test(flavor = "multi_thread")]
async fn reapplying_an_unchanged_deployment_changes_nothing() {
    let s = setup();
    let d = deployment(Plan::Premium);
    s.driver.apply(&d).await.unwrap();
    let before: Vec<String> = s.objects_of(&d).iter().map(|(_, o)| rv(o)).collect();
    assert_eq!(s.driver.apply(&d).await.unwrap(), Applied::Unchanged);
    let after: Vec<String> = s.objects_of(&d).iter().map(|(_, o)| rv(o)).collect();
    assert_eq!(
        before, after,
        "no object was written again (the certificate was reused)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tier_change_updates_resources_and_keeps_the_volume() {
    let s = setup();
    let mut d = deployment(Plan::Dedicated);
    s.driver.apply(&d).await.unwrap();
    kubelet::ensure_claims(&s.client, NS).await.unwrap();
    let claim_name = format!("data-{}-0", base(&d));
    let claim = s.obj("persistentvolumeclaims", &claim_name);
    let before = s.sts(&d);

    d.tier = Tier {
        max_sessions: 100_000,
        max_tps: 50_000,
    };
    d.generation += 1;
    assert_eq!(s.driver.apply(&d).await.unwrap(), Applied::Started);
    let after = s.sts(&d);
    let resources = &after["spec"]["template"]["spec"]["containers"][0]["resources"];
    assert_eq!(
        resources["requests"],
        json!({"cpu": "600m", "memory": "1627Mi"})
    );
    assert_eq!(resources["limits"], json!({"memory": "3254Mi"}));
    assert_eq!(
        after["spec"]["volumeClaimTemplates"], before["spec"]["volumeClaimTemplates"],
        "claim template identity kept"
    );
    assert_eq!(
        after["metadata"]["generation"],
        before["metadata"]["generation"].as_i64().unwrap() + 1
    );
    assert_ne!(
        hash(&after),
        hash(&before),
        "new limits in the config roll the pod"
    );
    assert_eq!(
        after["metadata"]["annotations"]["skyport.dev/generation"],
        "2"
    );
    let claim_after = s.obj("persistentvolumeclaims", &claim_name);
    assert_eq!(
        claim_after["metadata"]["uid"], claim["metadata"]["uid"],
        "the same volume"
    );

    // Another storage setting later does not touch the existing template (the API
    // server refuses template changes, and sessions live on the old volume).
    let other = KubernetesOrchestrator::new(
        s.client.clone(),
        KubernetesSettings {
            storage_size: "5Gi".into(),
            ..settings()
        },
        Arc::new(Ca::ephemeral().unwrap()),
    );
    d.generation += 1;
    other.apply(&d).await.unwrap();
    assert_eq!(
        s.sts(&d)["spec"]["volumeClaimTemplates"],
        before["spec"]["volumeClaimTemplates"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn config_and_certificate_changes_roll_the_pod_and_a_rename_does_not() {
    let s = setup();
    let mut d = deployment(Plan::Dedicated);
    s.driver.apply(&d).await.unwrap();
    let first = s.sts(&d);

    d.name = "renamed".into();
    d.generation += 1;
    assert_eq!(
        s.driver.apply(&d).await.unwrap(),
        Applied::Unchanged,
        "no pod change"
    );
    let renamed = s.sts(&d);
    assert_eq!(hash(&renamed), hash(&first));
    assert_eq!(
        renamed["metadata"]["generation"],
        first["metadata"]["generation"]
    );

    d.plan = Plan::Serverless;
    d.generation += 1;
    assert_eq!(s.driver.apply(&d).await.unwrap(), Applied::Started);
    let serverless = s.sts(&d);
    assert_ne!(
        hash(&serverless),
        hash(&first),
        "new listeners roll the pod"
    );
    let ports: Vec<i64> = s.obj("services", &base(&d))["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ports,
        vec![8883, 8084, 8081],
        "serverless exposes TLS ports and the API only"
    );

    // A lost certificate is re-issued, and the new one rolls the pod.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(s.client.clone(), NS);
    secrets
        .delete(&format!("{}-tls", base(&d)), &Default::default())
        .await
        .unwrap();
    assert_eq!(s.driver.apply(&d).await.unwrap(), Applied::Started);
    assert_ne!(hash(&s.sts(&d)), hash(&serverless));
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_scales_to_zero_keeping_the_volume_and_start_scales_back() {
    let s = setup();
    let mut d = deployment(Plan::Dedicated);
    s.driver.apply(&d).await.unwrap();
    kubelet::ensure_claims(&s.client, NS).await.unwrap();
    let claim_name = format!("data-{}-0", base(&d));
    let claim_uid = s.obj("persistentvolumeclaims", &claim_name)["metadata"]["uid"].clone();

    s.driver.stop(d.id).await.unwrap();
    assert_eq!(s.sts(&d)["spec"]["replicas"], 0);
    assert_eq!(
        s.obj("persistentvolumeclaims", &claim_name)["metadata"]["uid"],
        claim_uid
    );
    d.desired_state = DesiredState::Stopped;
    assert_eq!(
        s.driver.observe(&d).await,
        Observed::Down {
            last_exit: None,
            failures: 0
        }
    );
    s.driver.stop(d.id).await.unwrap();

    d.desired_state = DesiredState::Running;
    d.generation += 1;
    assert_eq!(s.driver.apply(&d).await.unwrap(), Applied::Started);
    assert_eq!(s.sts(&d)["spec"]["replicas"], 1);
    assert_eq!(
        s.obj("persistentvolumeclaims", &claim_name)["metadata"]["uid"],
        claim_uid,
        "start reuses the volume"
    );
}

async fn set_status<K>(client: &kube::Client, name: &str, status: Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), NS);
    let params = PatchParams {
        field_manager: Some("test-controller".into()),
        ..Default::default()
    };
    api.patch_status(name, &params, &Patch::Merge(&json!({ "status": status })))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn status_comes_from_ready_replicas_and_the_load_balancer() {
    let s = setup();
    let d = deployment(Plan::Serverless);
    assert_eq!(
        s.driver.observe(&d).await,
        Observed::Down {
            last_exit: None,
            failures: 0
        }
    );
    s.driver.apply(&d).await.unwrap();
    assert_eq!(
        s.driver.observe(&d).await,
        Observed::Starting,
        "no pod is ready yet"
    );

    let generation = s.sts(&d)["metadata"]["generation"].clone();
    set_status::<StatefulSet>(&s.client, &base(&d), json!({"observedGeneration": generation, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1})).await;
    assert_eq!(
        s.driver.observe(&d).await,
        Observed::Starting,
        "the load balancer has no address yet"
    );

    set_status::<Service>(
        &s.client,
        &base(&d),
        json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}),
    )
    .await;
    let Observed::Ready {
        generation,
        endpoints,
    } = s.driver.observe(&d).await
    else {
        panic!("ready")
    };
    assert_eq!(generation, d.generation);
    assert_eq!(endpoints.host, "203.0.113.7");
    assert_eq!(endpoints.mqtt, None, "serverless has no plain MQTT");
    assert_eq!(endpoints.ws, None);
    assert_eq!(endpoints.mqtts.as_deref(), Some("mqtts://203.0.113.7:8883"));
    assert_eq!(
        endpoints.wss.as_deref(),
        Some("wss://203.0.113.7:8084/mqtt")
    );
    assert_eq!(endpoints.api, "http://203.0.113.7:8081");

    // A crash-looping pod is a failure with the kubelet's reason.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(s.client.clone(), NS);
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("{}-0", base(&d)), "labels": {"app.kubernetes.io/instance": base(&d)}},
        "spec": {"containers": [{"name": "broker", "image": "x"}]}});
    pods.patch(
        &format!("{}-0", base(&d)),
        &PatchParams::apply("test-controller"),
        &Patch::Apply(&pod),
    )
    .await
    .unwrap();
    set_status::<k8s_openapi::api::core::v1::Pod>(&s.client, &format!("{}-0", base(&d)), json!({"containerStatuses": [{"name": "broker", "image": "x", "imageID": "", "ready": false, "restartCount": 4,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}}}]})).await;
    let Observed::Down {
        last_exit: Some(reason),
        failures: 5,
    } = s.driver.observe(&d).await
    else {
        panic!("down")
    };
    assert!(
        reason.contains("CrashLoopBackOff: back-off restarting failed container"),
        "{reason}"
    );
    assert_eq!(s.driver.apply(&d).await.unwrap(), Applied::BackingOff);
}

#[tokio::test(flavor = "multi_thread")]
async fn base_domain_names_the_endpoints_certificate_and_dns_record() {
    let s = setup_with(KubernetesSettings {
        base_domain: Some("mqtt.example.test".into()),
        ..settings()
    });
    let d = deployment(Plan::Dedicated);
    s.driver.apply(&d).await.unwrap();
    let host = format!("{}.mqtt.example.test", d.id);
    assert_eq!(
        s.obj("services", &base(&d))["metadata"]["annotations"]
            ["external-dns.alpha.kubernetes.io/hostname"],
        host.as_str()
    );
    let generation = s.sts(&d)["metadata"]["generation"].clone();
    set_status::<StatefulSet>(&s.client, &base(&d), json!({"observedGeneration": generation, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1})).await;
    set_status::<Service>(
        &s.client,
        &base(&d),
        json!({"loadBalancer": {"ingress": [{"hostname": "lb-1.elb.example.test"}]}}),
    )
    .await;
    let Observed::Ready { endpoints, .. } = s.driver.observe(&d).await else {
        panic!("ready")
    };
    assert_eq!(endpoints.host, host);
    assert_eq!(endpoints.mqtt, Some(format!("mqtt://{host}:1883")));
}

#[tokio::test(flavor = "multi_thread")]
async fn remove_deletes_everything_after_the_finalizers_are_released() {
    let s = setup();
    let d = deployment(Plan::Dedicated);
    let other = deployment(Plan::Dedicated);
    s.driver.apply(&d).await.unwrap();
    s.driver.apply(&other).await.unwrap();
    kubelet::ensure_claims(&s.client, NS).await.unwrap();
    let mut ids = s.driver.runtimes().await;
    ids.sort();
    let mut want = vec![d.id, other.id];
    want.sort();
    assert_eq!(ids, want);

    // Another controller's finalizer on the root holds it (and so its dependents'
    // garbage collection) until that controller lets go.
    let roots: Api<ConfigMap> = Api::namespaced(s.client.clone(), NS);
    let root_name = format!("{}-root", base(&d));
    let patch = json!({"metadata": {"finalizers": ["skyport.dev/cleanup", "example.com/audit"]}});
    roots
        .patch(
            &root_name,
            &PatchParams {
                field_manager: Some("auditor".into()),
                ..Default::default()
            },
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();

    s.driver.remove(d.id).await.unwrap();
    let root = s.obj("configmaps", &root_name);
    assert!(
        root["metadata"]["deletionTimestamp"].is_string(),
        "the root is being deleted"
    );
    assert_eq!(
        root["metadata"]["finalizers"],
        json!(["example.com/audit"]),
        "skyport released only its own finalizer"
    );
    assert!(
        s.fake.object("statefulsets", NS, &base(&d)).is_none(),
        "the workload went first"
    );
    assert!(
        s.fake
            .object(
                "persistentvolumeclaims",
                NS,
                &format!("data-{}-0", base(&d))
            )
            .is_none(),
        "the volume went with it"
    );
    assert!(
        s.fake.object("services", NS, &base(&d)).is_some(),
        "dependents wait for the root"
    );

    roots
        .patch(
            &root_name,
            &PatchParams {
                field_manager: Some("auditor".into()),
                ..Default::default()
            },
            &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    let left: Vec<Value> = s
        .fake
        .all_objects(NS)
        .into_iter()
        .filter(|o| o["metadata"]["labels"]["skyport.dev/deployment-id"] == d.id.to_string())
        .collect();
    assert!(
        left.is_empty(),
        "garbage collection removed everything: {left:#?}"
    );
    assert_eq!(
        s.driver.runtimes().await,
        vec![other.id],
        "the other deployment is untouched"
    );
    assert!(s.fake.object("statefulsets", NS, &base(&other)).is_some());

    s.driver.remove(d.id).await.unwrap();
    s.driver.remove(other.id).await.unwrap();
    assert!(
        s.fake.all_objects(NS).is_empty(),
        "{:#?}",
        s.fake.all_objects(NS)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forced_apply_takes_fields_back_and_refusals_carry_the_servers_reason() {
    let s = setup();
    let d = deployment(Plan::Dedicated);
    s.driver.apply(&d).await.unwrap();
    let services: Api<Service> = Api::namespaced(s.client.clone(), NS);
    let edit = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": base(&d), "labels": {"app.kubernetes.io/part-of": "hand-edited"}}});
    let err = services
        .patch(
            &base(&d),
            &PatchParams::apply("kubectl"),
            &Patch::Apply(&edit),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(response) = err else {
        panic!("an API error")
    };
    assert_eq!(response.code, 409);
    assert!(
        response.message.contains("conflict with \"skyport\""),
        "{}",
        response.message
    );
    services
        .patch(
            &base(&d),
            &PatchParams::apply("kubectl").force(),
            &Patch::Apply(&edit),
        )
        .await
        .unwrap();
    assert_eq!(
        s.obj("services", &base(&d))["metadata"]["labels"]["app.kubernetes.io/part-of"],
        "hand-edited"
    );

    s.driver.apply(&d).await.unwrap();
    assert_eq!(
        s.obj("services", &base(&d))["metadata"]["labels"]["app.kubernetes.io/part-of"],
        "skyport",
        "the driver's forced apply wins"
    );

    // A StatefulSet the API server will not let the driver change: the error names why.
    let taken = deployment(Plan::Dedicated);
    let sets: Api<StatefulSet> = Api::namespaced(s.client.clone(), NS);
    let squatter = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": base(&taken)},
        "spec": {"serviceName": "elsewhere", "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    sets.patch(
        &base(&taken),
        &PatchParams::apply("someone-else"),
        &Patch::Apply(&squatter),
    )
    .await
    .unwrap();
    let err = s.driver.apply(&taken).await.unwrap_err().to_string();
    assert!(err.contains("applying StatefulSet"), "{err}");
    assert!(
        err.contains("Forbidden: updates to statefulset spec"),
        "{err}"
    );
}

/// The security Secret's decoded data.
fn security_data(s: &Setup, d: &Deployment) -> std::collections::BTreeMap<String, String> {
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(s.obj("secrets", &format!("{}-security", base(d)))).unwrap();
    secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn metering_keeps_a_node_token_in_the_security_secret_not_the_config() {
    use skyport_control_plane::domain::token;
    use skyport_control_plane::metering::ReportingTarget;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cp.db").display());
    let store = skyport_control_plane::store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let target = ReportingTarget::new(
        "http://cp.skyport.svc:8080/",
        std::time::Duration::from_secs(5),
        store.clone(),
    )
    .unwrap();
    let s = setup();
    let ca = Arc::new(Ca::ephemeral().expect("a CA"));
    let driver =
        KubernetesOrchestrator::new(s.client.clone(), settings(), ca).with_metering(target.clone());
    let d = deployment(Plan::Dedicated);
    assert_eq!(driver.apply(&d).await.unwrap(), Applied::Started);

    let data = security_data(&s, &d);
    let node_token = data["node-token"].clone();
    assert!(node_token.starts_with("skn_"), "{node_token}");
    assert!(data.contains_key("security.json"));
    let owner = store
        .find_node_token(&token::hash(&node_token))
        .await
        .unwrap()
        .expect("the token is registered");
    assert_eq!(
        (owner.deployment_id, owner.project_id),
        (d.id, d.project_id)
    );

    // The config (a ConfigMap) names the token's file in the mounted Secret.
    let config_map = s.obj("configmaps", &format!("{}-config", base(&d)));
    let config: Value =
        serde_json::from_str(config_map["data"]["config.json"].as_str().unwrap()).unwrap();
    assert_eq!(
        config["metering"],
        json!({
            "url": "http://cp.skyport.svc:8080/internal/v1/metering/reports",
            "token_file": "/etc/skyport/security/node-token",
            "interval_ms": 5000,
        })
    );
    let sts = s.sts(&d);
    for (what, object) in [("ConfigMap", &config_map), ("StatefulSet", &sts)] {
        assert!(
            !object.to_string().contains(&node_token),
            "the {what} carries the node token"
        );
    }
    let mounts = &sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"];
    assert!(
        mounts
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "security" && m["mountPath"] == "/etc/skyport/security"),
        "{mounts}"
    );

    // Re-applying, and a restarted control plane (a new driver), keep the token: the pod
    // does not roll and its token stays valid.
    let before = hash(&sts);
    assert_eq!(driver.apply(&d).await.unwrap(), Applied::Unchanged);
    assert_eq!(hash(&s.sts(&d)), before);
    let ca = Arc::new(Ca::ephemeral().expect("a CA"));
    let restarted =
        KubernetesOrchestrator::new(s.client.clone(), settings(), ca).with_metering(target);
    restarted.apply(&d).await.unwrap();
    assert_eq!(security_data(&s, &d)["node-token"], node_token);
    assert!(store
        .find_node_token(&token::hash(&node_token))
        .await
        .unwrap()
        .is_some());

    // Another deployment gets a token of its own.
    let other = deployment(Plan::Dedicated);
    driver.apply(&other).await.unwrap();
    assert_ne!(security_data(&s, &other)["node-token"], node_token);
}

/// The services' port numbers.
fn port_numbers(service: &Value) -> Vec<i64> {
    service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn internal_endpoint_and_nat_gateway_from_the_store_are_applied_and_removed() {
    use skyport_control_plane::domain::{Actor, EventType};
    use skyport_control_plane::encryption::SecretKey;
    use skyport_control_plane::orchestrator::kubernetes::{InternalLbProvider, NatProvider};
    use skyport_control_plane::orchestrator::security::SecuritySource;
    use skyport_control_plane::store::{Event, InternalEndpointRecord, NatGatewayRecord, Project};

    // The store the driver reads each deployment's add-ons from.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cp.db").display());
    let store = skyport_control_plane::store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let d = deployment(Plan::Dedicated);
    store
        .create_project(&Project {
            id: d.project_id,
            name: "networked".into(),
            created_at: Utc::now(),
        })
        .await
        .unwrap();
    let event = |kind| Event::new(&d, kind, &Actor::System, json!({}));
    store
        .create_deployment(&d, &event(EventType::DeploymentCreated))
        .await
        .unwrap();
    let key = Arc::new(SecretKey::from_base64(&format!("{}=", "A".repeat(43))).unwrap());
    let kube_settings = KubernetesSettings {
        internal_lb_provider: Some(InternalLbProvider::Aws),
        ..settings()
    };
    let s = setup_with(kube_settings.clone());
    // One CA for every driver, as across control plane restarts: the certificate is kept.
    let ca = Arc::new(Ca::ephemeral().expect("a CA"));
    let driver = |settings: KubernetesSettings| {
        KubernetesOrchestrator::new(s.client.clone(), settings, ca.clone())
            .with_security(SecuritySource::new(store.clone(), key.clone()))
    };
    let node_pool = driver(kube_settings.clone());
    let internal_name = format!("{}-internal", base(&d));

    // No add-ons: no internal Service (deleting the absent one is no error), no placement.
    assert_eq!(node_pool.apply(&d).await.unwrap(), Applied::Started);
    assert!(s.fake.object("services", NS, &internal_name).is_none());
    let pod_spec = |s: &Setup| s.sts(&d)["spec"]["template"]["spec"].clone();
    assert!(pod_spec(&s).get("nodeSelector").is_none());
    assert!(pod_spec(&s).get("tolerations").is_none());
    let first = s.sts(&d);

    // An internal endpoint: a second LoadBalancer Service on the provider's internal load
    // balancer, open to the allowed ranges, without the API port. The pod does not roll.
    let internal = |cidrs: &[&str]| InternalEndpointRecord {
        address: Some("10.0.0.9".parse().unwrap()),
        allowed_cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    store
        .put_internal_endpoint(
            d.project_id,
            d.id,
            &internal(&["10.1.0.0/16", "192.168.10.0/24"]),
            &event(EventType::InternalEndpointCreated),
        )
        .await
        .unwrap();
    assert_eq!(node_pool.apply(&d).await.unwrap(), Applied::Unchanged);
    let svc = s.obj("services", &internal_name);
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(
        svc["spec"]["loadBalancerSourceRanges"],
        json!(["10.1.0.0/16", "192.168.10.0/24"])
    );
    assert_eq!(
        svc["metadata"]["annotations"],
        json!({
            "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
            "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
        })
    );
    assert_eq!(port_numbers(&svc), vec![1883, 8883, 8083, 8084], "no API");
    let public = s.obj("services", &base(&d));
    assert_eq!(svc["spec"]["selector"], public["spec"]["selector"]);
    assert!(public["spec"].get("loadBalancerSourceRanges").is_none());
    assert!(public["metadata"].get("annotations").is_none());
    let root = s.obj("configmaps", &format!("{}-root", base(&d)));
    assert_eq!(
        svc["metadata"]["ownerReferences"][0]["uid"], root["metadata"]["uid"],
        "owned by the root, so collected with the deployment"
    );
    assert_eq!(hash(&s.sts(&d)), hash(&first), "no roll");
    assert_eq!(
        s.sts(&d)["metadata"]["generation"],
        first["metadata"]["generation"]
    );

    // Changed ranges are applied in place.
    store
        .put_internal_endpoint(
            d.project_id,
            d.id,
            &internal(&["172.16.0.0/12"]),
            &event(EventType::InternalEndpointUpdated),
        )
        .await
        .unwrap();
    node_pool.apply(&d).await.unwrap();
    let updated = s.obj("services", &internal_name);
    assert_eq!(
        updated["spec"]["loadBalancerSourceRanges"],
        json!(["172.16.0.0/12"])
    );
    assert_eq!(updated["metadata"]["uid"], svc["metadata"]["uid"]);

    // A NAT gateway moves the pod to the NAT'd node pool.
    let (_, created) = store
        .put_nat_gateway(
            d.project_id,
            d.id,
            &NatGatewayRecord {
                egress_addresses: vec!["203.0.113.7".parse().unwrap()],
                created_at: Utc::now(),
            },
            &event(EventType::NatGatewayCreated),
        )
        .await
        .unwrap();
    assert!(created);
    assert_eq!(node_pool.apply(&d).await.unwrap(), Applied::Started);
    let spec = pod_spec(&s);
    assert_eq!(spec["nodeSelector"], json!({"skyport.io/egress": "nat"}));
    assert_eq!(
        spec["tolerations"],
        json!([{"key": "skyport.io/egress", "operator": "Equal", "value": "nat", "effect": "NoSchedule"}])
    );
    assert!(s.sts(&d)["spec"]["template"]["metadata"]["annotations"]
        .get("egress.projectcalico.org/selector")
        .is_none());
    assert!(
        !s.sts(&d).to_string().contains("203.0.113.7")
            && !s
                .obj("configmaps", &format!("{}-config", base(&d)))
                .to_string()
                .contains("203.0.113.7"),
        "the platform NATs: the broker is not told the address"
    );

    // A control plane switched to Calico egress gateways takes the placement back.
    let calico = driver(KubernetesSettings {
        nat_provider: NatProvider::Calico,
        ..kube_settings.clone()
    });
    assert_eq!(calico.apply(&d).await.unwrap(), Applied::Started);
    let sts = s.sts(&d);
    assert_eq!(
        sts["spec"]["template"]["metadata"]["annotations"]["egress.projectcalico.org/selector"],
        "skyport.io/egress-gateway == 'true'"
    );
    let spec = &sts["spec"]["template"]["spec"];
    assert!(spec.get("nodeSelector").is_none(), "{spec}");
    assert!(spec.get("tolerations").is_none(), "{spec}");

    // Removing the internal endpoint deletes its Service, and only it.
    assert!(store
        .delete_internal_endpoint(
            d.project_id,
            d.id,
            &event(EventType::InternalEndpointDeleted)
        )
        .await
        .unwrap());
    assert_eq!(calico.apply(&d).await.unwrap(), Applied::Unchanged);
    assert!(
        s.fake.object("services", NS, &internal_name).is_none(),
        "the internal Service is gone"
    );
    assert_eq!(
        s.obj("services", &base(&d))["metadata"]["uid"],
        public["metadata"]["uid"],
        "the public Service stays"
    );
    assert_eq!(calico.apply(&d).await.unwrap(), Applied::Unchanged);

    // Removing the NAT gateway puts the pod back where it was.
    assert!(store
        .delete_nat_gateway(d.project_id, d.id, &event(EventType::NatGatewayDeleted))
        .await
        .unwrap());
    assert_eq!(node_pool.apply(&d).await.unwrap(), Applied::Started);
    let sts = s.sts(&d);
    assert_eq!(
        sts["spec"]["template"]["spec"], first["spec"]["template"]["spec"],
        "no placement left"
    );
    assert_eq!(
        sts["spec"]["template"]["metadata"]["annotations"],
        first["spec"]["template"]["metadata"]["annotations"]
    );

    // The internal Service goes with the deployment.
    store
        .put_internal_endpoint(
            d.project_id,
            d.id,
            &internal(&["10.1.0.0/16"]),
            &event(EventType::InternalEndpointCreated),
        )
        .await
        .unwrap();
    node_pool.apply(&d).await.unwrap();
    assert!(s.fake.object("services", NS, &internal_name).is_some());
    node_pool.remove(d.id).await.unwrap();
    assert!(
        s.fake.all_objects(NS).is_empty(),
        "{:#?}",
        s.fake.all_objects(NS)
    );
}

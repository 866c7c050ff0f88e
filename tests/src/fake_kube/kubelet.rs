//! The cluster's moving parts for tests, talking to the API server through kube-rs as
//! real controllers do: the StatefulSet controller (claims from templates, status), a
//! kubelet that runs each StatefulSet's pod as a real `skyport-broker` process, and a
//! cloud load-balancer controller.
//!
//! Addresses: each StatefulSet's pod gets a loopback address of its own, 127.x.y.z
//! (all of 127.0.0.0/8 is loopback on Linux), and the load balancer of its governing
//! Service (`spec.serviceName`) reports that same address as its ingress IP. The pod's
//! listeners keep their container ports: the kubelet rewrites the broker config's
//! `0.0.0.0:PORT` to `127.x.y.z:PORT`, so clients use the Service's ports (1883, 8883…)
//! on the ingress address, as on a cluster, without touching 127.0.0.1:1883
//! (Mosquitto's). Mounted ConfigMaps and Secrets are written under a temp dir and the
//! config's paths rebased onto it; mounted Secrets are kept up to date while the pod runs.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::ResourceExt;
use serde_json::{json, Value};

/// Creates the claims of every StatefulSet's volume templates, as the StatefulSet
/// controller does (owned by the StatefulSet when its retention policy deletes them).
pub async fn ensure_claims(client: &kube::Client, namespace: &str) -> kube::Result<()> {
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    for sts in sets.list(&ListParams::default()).await?.items {
        ensure_claims_of(&claims, &sts).await?;
    }
    Ok(())
}

async fn ensure_claims_of(
    claims: &Api<PersistentVolumeClaim>,
    sts: &StatefulSet,
) -> kube::Result<()> {
    let spec = sts.spec.clone().unwrap_or_default();
    if sts.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let owned = spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .and_then(|p| p.when_deleted.as_deref())
        == Some("Delete");
    for ordinal in 0..spec.replicas.unwrap_or(1) {
        for template in spec.volume_claim_templates.iter().flatten() {
            let name = format!("{}-{}-{ordinal}", template.name_any(), sts.name_any());
            if claims.get_opt(&name).await?.is_some() {
                continue;
            }
            let owner = OwnerReference {
                api_version: "apps/v1".into(),
                kind: "StatefulSet".into(),
                name: sts.name_any(),
                uid: sts.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            };
            let claim = PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(name),
                    labels: template.metadata.labels.clone(),
                    owner_references: owned.then(|| vec![owner]),
                    ..ObjectMeta::default()
                },
                spec: template.spec.clone(),
                status: None,
            };
            let params = PostParams {
                field_manager: Some("fake-statefulset-controller".into()),
                ..PostParams::default()
            };
            claims.create(&params, &claim).await?;
        }
    }
    Ok(())
}

/// A pod the kubelet runs: a real broker process.
struct RunningPod {
    child: tokio::process::Child,
    template_hash: String,
    api: SocketAddr,
    /// Mounted Secrets (name, directory): kept up to date while the pod runs.
    secrets: Vec<(String, PathBuf)>,
    _dir: tempfile::TempDir,
}

/// The fake kubelet, StatefulSet controller and load balancer, running until dropped.
pub struct Kubelet {
    task: tokio::task::JoinHandle<()>,
    watchers: Vec<tokio::task::JoinHandle<()>>,
    pods: Arc<Mutex<HashMap<String, RunningPod>>>,
}

struct Ctx {
    client: kube::Client,
    namespace: String,
    broker_bin: PathBuf,
    pods: Arc<Mutex<HashMap<String, RunningPod>>>,
    /// Loopback address per governing Service name.
    addresses: Mutex<HashMap<String, Ipv4Addr>>,
    http: reqwest::Client,
}

impl Kubelet {
    /// Starts watching `namespace` (list + watch through kube-runtime reflectors).
    pub async fn start(client: kube::Client, namespace: &str, broker_bin: PathBuf) -> Self {
        let pods = Arc::new(Mutex::new(HashMap::new()));
        let ctx = Arc::new(Ctx {
            client: client.clone(),
            namespace: namespace.to_owned(),
            broker_bin,
            pods: pods.clone(),
            addresses: Mutex::default(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(1))
                .build()
                .expect("http client"),
        });
        let (sets, sets_writer) = reflector::store::<StatefulSet>();
        let (services, services_writer) = reflector::store::<Service>();
        let sets_stream = reflector(
            sets_writer,
            watcher(
                Api::<StatefulSet>::namespaced(client.clone(), namespace),
                watcher::Config::default(),
            )
            .default_backoff(),
        )
        .applied_objects();
        let services_stream = reflector(
            services_writer,
            watcher(
                Api::<Service>::namespaced(client, namespace),
                watcher::Config::default(),
            )
            .default_backoff(),
        )
        .applied_objects();
        // Watchers run as their own tasks, aborted with the kubelet: left running after the
        // fake API server stops, a watcher would retry in a tight loop and keep the test
        // runtime from shutting down.
        let watchers = vec![
            tokio::spawn(sets_stream.for_each(|_| async {})),
            tokio::spawn(services_stream.for_each(|_| async {})),
        ];
        let task = tokio::spawn(async move {
            loop {
                let sts: Vec<StatefulSet> = sets.state().iter().map(|s| (**s).clone()).collect();
                let svcs: Vec<Service> = services.state().iter().map(|s| (**s).clone()).collect();
                if let Err(err) = ctx.tick(&sts, &svcs).await {
                    eprintln!("fake kubelet: {err}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Self {
            task,
            watchers,
            pods,
        }
    }

    /// Pids of the broker processes running now.
    pub fn pids(&self) -> Vec<u32> {
        self.pods
            .lock()
            .unwrap()
            .values()
            .filter_map(|p| p.child.id())
            .collect()
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
        for watcher in &self.watchers {
            watcher.abort();
        }
        for (_, pod) in self.pods.lock().unwrap().drain() {
            if let Some(pid) = pod.child.id() {
                crate::process::kill_and_wait(pid);
            }
        }
    }
}

impl Ctx {
    async fn tick(&self, sets: &[StatefulSet], services: &[Service]) -> anyhow::Result<()> {
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), &self.namespace);
        let live: Vec<String> = sets.iter().map(|s| s.name_any()).collect();
        let stale: Vec<RunningPod> = {
            let mut pods = self.pods.lock().unwrap();
            let gone: Vec<String> = pods.keys().filter(|k| !live.contains(k)).cloned().collect();
            gone.into_iter().filter_map(|k| pods.remove(&k)).collect()
        };
        drop(stale); // kill_on_drop ends them
        for sts in sets {
            ensure_claims_of(&claims, sts).await?;
            self.run_pod(sts).await?;
        }
        for svc in services {
            self.provision_lb(svc).await?;
        }
        Ok(())
    }

    fn address(&self, service: &str, ports: &[u16]) -> Ipv4Addr {
        let mut addresses = self.addresses.lock().unwrap();
        *addresses
            .entry(service.to_owned())
            .or_insert_with(|| free_loopback(ports))
    }

    async fn run_pod(&self, sts: &StatefulSet) -> anyhow::Result<()> {
        let name = sts.name_any();
        let spec = sts.spec.clone().unwrap_or_default();
        let replicas = spec.replicas.unwrap_or(1).min(1);
        let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(serde_json::to_vec(
            &spec.template,
        )?));
        let deleting = sts.metadata.deletion_timestamp.is_some();
        let current = self
            .pods
            .lock()
            .unwrap()
            .get(&name)
            .map(|p| p.template_hash.clone());
        if replicas == 0 || deleting || current.as_deref().is_some_and(|h| h != hash) {
            self.pods.lock().unwrap().remove(&name);
        }
        let exited = {
            let mut pods = self.pods.lock().unwrap();
            let dead = pods
                .get_mut(&name)
                .is_some_and(|p| !matches!(p.child.try_wait(), Ok(None)));
            if dead {
                pods.remove(&name);
            }
            dead
        };
        if exited {
            eprintln!("fake kubelet: the broker of {name} exited; restarting it");
        }
        if replicas == 1 && !deleting && !self.pods.lock().unwrap().contains_key(&name) {
            let pod = self.start_pod(sts, &hash).await?;
            self.pods.lock().unwrap().insert(name.clone(), pod);
        } else {
            self.refresh_secrets(&name).await?;
        }
        let api = self.pods.lock().unwrap().get(&name).map(|p| p.api);
        let ready = match api {
            Some(api) => self
                .http
                .get(format!("http://{api}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()),
            None => false,
        };
        let ready = i32::from(ready);
        let status = json!({ "status": {
            "observedGeneration": sts.metadata.generation,
            "replicas": replicas, "currentReplicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": ready, "availableReplicas": ready,
        }});
        let known = sts.status.as_ref().map(|s| {
            (
                s.observed_generation,
                s.ready_replicas.unwrap_or(0),
                s.replicas,
            )
        });
        if known != Some((sts.metadata.generation, ready, replicas)) {
            let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &self.namespace);
            let params = PatchParams {
                field_manager: Some("fake-kubelet".into()),
                ..PatchParams::default()
            };
            api.patch_status(&name, &params, &Patch::Merge(&status))
                .await?;
        }
        Ok(())
    }

    /// Rewrites a running pod's mounted Secrets that changed, as a real kubelet does
    /// (a new file renamed over the old one).
    async fn refresh_secrets(&self, pod: &str) -> anyhow::Result<()> {
        let mounts = match self.pods.lock().unwrap().get(pod) {
            Some(running) => running.secrets.clone(),
            None => return Ok(()),
        };
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        for (name, dir) in mounts {
            let Some(secret) = api.get_opt(&name).await? else {
                continue;
            };
            for (file, bytes) in secret.data.unwrap_or_default() {
                let path = dir.join(&file);
                if std::fs::read(&path).ok().as_deref() != Some(bytes.0.as_slice()) {
                    let tmp = dir.join(format!(".{file}.tmp"));
                    std::fs::write(&tmp, &bytes.0)?;
                    std::fs::rename(&tmp, &path)?;
                }
            }
        }
        Ok(())
    }

    async fn start_pod(&self, sts: &StatefulSet, hash: &str) -> anyhow::Result<RunningPod> {
        let spec = sts.spec.clone().unwrap_or_default();
        let pod = spec.template.spec.clone().unwrap_or_default();
        let container = pod
            .containers
            .first()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no container"))?;
        let ports: Vec<(String, u16)> = container
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone().unwrap_or_default(), p.container_port as u16))
            .collect();
        let service = spec.service_name.clone().unwrap_or_else(|| sts.name_any());
        let ip = self.address(&service, &ports.iter().map(|p| p.1).collect::<Vec<_>>());
        let dir = tempfile::Builder::new().prefix("fake-pod-").tempdir()?;
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        let mut secrets: Vec<(String, PathBuf)> = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let target = rebase(dir.path(), &mount.mount_path);
            std::fs::create_dir_all(&target)?;
            mounts.push((mount.mount_path.clone(), target.clone()));
            let Some(volume) = pod.volumes.iter().flatten().find(|v| v.name == mount.name) else {
                continue;
            };
            let files: BTreeMap<String, Vec<u8>> = if let Some(cm) = &volume.config_map {
                let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
                api.get(&cm.name)
                    .await?
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect()
            } else if let Some(secret) = &volume.secret {
                let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
                let name = secret.secret_name.clone().unwrap_or_default();
                secrets.push((name.clone(), target.clone()));
                api.get(&name)
                    .await?
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect()
            } else {
                BTreeMap::new()
            };
            for (file, bytes) in files {
                std::fs::write(target.join(file), bytes)?;
            }
        }
        let args = container.args.clone().unwrap_or_default();
        let config_arg = args
            .iter()
            .position(|a| a == "--config")
            .and_then(|i| args.get(i + 1))
            .ok_or_else(|| anyhow::anyhow!("no --config argument"))?;
        let config_path = rebase(dir.path(), config_arg);
        let mut config: Value = serde_json::from_slice(&std::fs::read(&config_path)?)?;
        rewrite(&mut config, ip, &mounts);
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let log = std::fs::File::create(dir.path().join("broker.log"))?;
        let child = tokio::process::Command::new(&self.broker_bin)
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let api_port = ports.iter().find(|p| p.0 == "api").map_or(8081, |p| p.1);
        Ok(RunningPod {
            child,
            template_hash: hash.to_owned(),
            api: SocketAddr::new(ip.into(), api_port),
            secrets,
            _dir: dir,
        })
    }

    async fn provision_lb(&self, svc: &Service) -> anyhow::Result<()> {
        let spec = svc.spec.clone().unwrap_or_default();
        if spec.type_.as_deref() != Some("LoadBalancer") || has_ingress(svc) {
            return Ok(());
        }
        let ports: Vec<u16> = spec.ports.iter().flatten().map(|p| p.port as u16).collect();
        let ip = self.address(&svc.name_any(), &ports);
        let api: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        let params = PatchParams {
            field_manager: Some("fake-cloud-lb".into()),
            ..PatchParams::default()
        };
        let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]}}});
        api.patch_status(&svc.name_any(), &params, &Patch::Merge(&status))
            .await?;
        Ok(())
    }
}

fn has_ingress(svc: &Service) -> bool {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .is_some_and(|i| !i.is_empty())
}

/// `root` + an absolute container path.
fn rebase(root: &Path, container_path: &str) -> PathBuf {
    root.join(container_path.trim_start_matches('/'))
}

/// Points the broker config at the pod's address and the rebased mounts.
fn rewrite(value: &mut Value, ip: Ipv4Addr, mounts: &[(String, PathBuf)]) {
    match value {
        Value::String(s) => {
            if let Some(port) = s.strip_prefix("0.0.0.0:") {
                *s = format!("{ip}:{port}");
            } else if let Some((from, to)) =
                mounts.iter().find(|(from, _)| s.starts_with(from.as_str()))
            {
                *s = to
                    .join(s[from.len()..].trim_start_matches('/'))
                    .to_string_lossy()
                    .into_owned();
            }
        }
        Value::Object(map) => map.values_mut().for_each(|v| rewrite(v, ip, mounts)),
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite(v, ip, mounts)),
        _ => {}
    }
}

/// A random 127.x.y.z (not 127.0.0.1) on which every port in `ports` is free now.
fn free_loopback(ports: &[u16]) -> Ipv4Addr {
    for _ in 0..1000 {
        let b = uuid::Uuid::new_v4().into_bytes();
        let ip = Ipv4Addr::new(127, b[0].max(1), b[1], b[2].clamp(2, 254));
        if ports.iter().all(|p| TcpListener::bind((ip, *p)).is_ok()) {
            return ip;
        }
    }
    panic!("no free loopback address for ports {ports:?}");
}

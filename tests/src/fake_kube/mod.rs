//! A fake Kubernetes API server: real HTTP on 127.0.0.1, an honest subset of the API for
//! the kinds Skyport manages, so kube-rs talks to it exactly as to a cluster.
//!
//! What it does like the real one: server-side apply (`application/apply-patch+yaml`)
//! with field managers in `metadata.managedFields`, conflicts when another manager owns
//! a field with a different value (unless `force=true`), JSON merge patches (with a
//! `resourceVersion` precondition), create, get, list with label selectors, watch
//! streams, delete with finalizers (`deletionTimestamp` until they are released) and
//! background garbage collection along owner references, a monotonic `resourceVersion`
//! that only moves when an object changes, `metadata.generation` bumped on spec changes,
//! the `status` subresource, and StatefulSet spec immutability.
//!
//! What it leaves out: defaulting, admission, schema validation (see the
//! kubernetes-validate tests), associative lists (every list but `finalizers` is atomic),
//! strategic merge patches, foreground deletion, and any controller: the StatefulSet
//! controller, kubelet and load balancer are played by [`kubelet`] in the tests that
//! need them.

mod fields;
mod kinds;
pub mod kubelet;
mod routes;
mod store;
mod validation;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

pub use kinds::{Kind, KINDS};
use store::Store;

/// A running fake API server; stops when dropped.
pub struct FakeKube {
    addr: SocketAddr,
    store: Arc<Store>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeKube {
    /// Starts the server on a free port of 127.0.0.1, on its own thread and runtime.
    pub fn start() -> Self {
        let store = Arc::new(Store::default());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let app = routes::router(store.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("fake API server runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("binding the fake API server");
                addr_tx
                    .send(listener.local_addr().expect("local address"))
                    .expect("reporting the address");
                tokio::select! {
                    result = axum::serve(listener, app) => result.expect("fake API server"),
                    _ = stop => {}
                }
            });
            runtime.shutdown_background();
        });
        let addr = addr_rx.recv().expect("the fake API server started");
        Self {
            addr,
            store,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client for this server, with `namespace` as its default namespace.
    pub fn client(&self, namespace: &str) -> kube::Client {
        let mut config = kube::Config::new(self.url().parse().expect("a valid URL"));
        config.default_namespace = namespace.to_owned();
        kube::Client::try_from(config).expect("a kube client")
    }

    /// Writes a kubeconfig whose current context is this server and `namespace`.
    pub fn write_kubeconfig(&self, path: &Path, namespace: &str) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
             users:\n- name: fake\n  user:\n    token: fake-token\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {namespace}\n\
             current-context: fake\n",
            url = self.url()
        );
        std::fs::write(path, text).expect("writing the kubeconfig");
    }

    /// The stored object, read directly (not through the API).
    pub fn object(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let kind = KINDS
            .iter()
            .find(|k| k.resource == resource)
            .expect("a served resource");
        self.store.get(kind, namespace, name).ok()
    }

    /// Every stored object of `resource` in `namespace`.
    pub fn objects(&self, resource: &str, namespace: &str) -> Vec<Value> {
        let kind = KINDS
            .iter()
            .find(|k| k.resource == resource)
            .expect("a served resource");
        self.store
            .list(kind, namespace, &kinds::Selector::default())
            .0
    }

    /// Every stored object of every kind in `namespace`.
    pub fn all_objects(&self, namespace: &str) -> Vec<Value> {
        KINDS
            .iter()
            .flat_map(|k| self.objects(k.resource, namespace))
            .collect()
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

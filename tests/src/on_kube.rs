//! The real `skyport` with `--orchestrator kubernetes` against a fresh fake API server
//! (through KUBECONFIG), with a fake kubelet running each pod as a real `skyport-broker`.

use crate::fake_kube::kubelet::Kubelet;
use crate::fake_kube::FakeKube;
use crate::{binary, Backend, ControlPlane};

/// A control plane on (fake) Kubernetes; everything stops when dropped, the control plane
/// first.
pub struct OnKube {
    pub cp: ControlPlane,
    pub kubelet: Kubelet,
    pub fake: FakeKube,
    _scratch: tempfile::TempDir,
}

impl OnKube {
    /// Starts the fake API server, its kubelet and `skyport` (SQLite) managing
    /// `namespace`, with the broker image `skyport/skyport-broker:e2e` and `extra_args`.
    pub async fn start(namespace: &str, extra_args: &[&str]) -> Self {
        let fake = FakeKube::start();
        let scratch = tempfile::tempdir().expect("a scratch directory");
        let kubeconfig = scratch.path().join("kubeconfig");
        fake.write_kubeconfig(&kubeconfig, namespace);
        let kubelet =
            Kubelet::start(fake.client(namespace), namespace, binary("skyport-broker")).await;
        let mut args = vec![
            "--orchestrator",
            "kubernetes",
            "--kube-namespace",
            namespace,
            "--broker-image",
            "skyport/skyport-broker:e2e",
        ];
        args.extend_from_slice(extra_args);
        let cp = ControlPlane::start_with_env(
            Backend::Sqlite,
            &args,
            &[("KUBECONFIG", kubeconfig.to_str().expect("a UTF-8 path"))],
        );
        Self {
            cp,
            kubelet,
            fake,
            _scratch: scratch,
        }
    }
}

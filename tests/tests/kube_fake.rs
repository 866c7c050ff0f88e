//! The fake API server's own contract, through kube-rs: watch streams, generation and
//! resourceVersion rules, the status subresource, and cascading deletion.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use skyport_tests::fake_kube::FakeKube;

const NS: &str = "fake";

fn config_map(name: &str, value: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": "t"}}, "data": {"k": value}})
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_streams_every_change_in_order() {
    let fake = FakeKube::start();
    let api: Api<ConfigMap> = Api::namespaced(fake.client(NS), NS);
    let ssa = PatchParams::apply("test");
    api.patch("before", &ssa, &Patch::Apply(config_map("before", "0")))
        .await
        .unwrap();

    let config = watcher::Config::default().labels("app=t");
    let mut events = watcher::watcher(api.clone(), config).boxed();
    let mut seen = Vec::new();
    // The initial list: the object that existed before the watch.
    while let Some(event) = events.try_next().await.unwrap() {
        match event {
            Event::InitApply(cm) => seen.push(format!("init {}", cm.metadata.name.unwrap())),
            Event::InitDone => break,
            _ => {}
        }
    }
    api.patch("a", &ssa, &Patch::Apply(config_map("a", "1")))
        .await
        .unwrap();
    api.patch("a", &ssa, &Patch::Apply(config_map("a", "2")))
        .await
        .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    while seen.len() < 4 {
        match events
            .try_next()
            .await
            .unwrap()
            .expect("the stream goes on")
        {
            Event::Apply(cm) => seen.push(format!(
                "apply {} {}",
                cm.metadata.name.unwrap(),
                cm.data.unwrap()["k"]
            )),
            Event::Delete(cm) => seen.push(format!("delete {}", cm.metadata.name.unwrap())),
            _ => {}
        }
    }
    assert_eq!(seen, ["init before", "apply a 1", "apply a 2", "delete a"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn resource_version_and_generation_move_only_on_change() {
    let fake = FakeKube::start();
    let client = fake.client(NS);
    let api: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(client.clone(), NS);
    let sts = |image: &str, label: &str| {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s", "labels": {"l": label}},
        "spec": {"serviceName": "s", "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}})
    };
    let ssa = PatchParams::apply("test");
    let first = api
        .patch("s", &ssa, &Patch::Apply(sts("i:1", "x")))
        .await
        .unwrap();
    assert_eq!(first.metadata.generation, Some(1));
    let same = api
        .patch("s", &ssa, &Patch::Apply(sts("i:1", "x")))
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version, first.metadata.resource_version,
        "a no-op apply writes nothing"
    );
    let relabelled = api
        .patch("s", &ssa, &Patch::Apply(sts("i:1", "y")))
        .await
        .unwrap();
    assert_eq!(
        relabelled.metadata.generation,
        Some(1),
        "metadata is not spec"
    );
    let rv = |o: &k8s_openapi::api::apps::v1::StatefulSet| {
        o.metadata
            .resource_version
            .clone()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(rv(&relabelled) > rv(&first));
    let new_image = api
        .patch("s", &ssa, &Patch::Apply(sts("i:2", "y")))
        .await
        .unwrap();
    assert_eq!(new_image.metadata.generation, Some(2));

    // Status goes through its subresource only.
    let status = json!({"status": {"replicas": 1, "readyReplicas": 1}});
    let ignored = api
        .patch("s", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert!(ignored.status.is_none(), "the main resource ignores status");
    let set = api
        .patch_status("s", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(set.status.unwrap().ready_replicas, Some(1));
    assert_eq!(set.metadata.generation, Some(2), "status is not spec");

    // A label selector narrows lists.
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    cms.patch(
        "x",
        &PatchParams::apply("test"),
        &Patch::Apply(config_map("x", "1")),
    )
    .await
    .unwrap();
    assert_eq!(
        cms.list(&ListParams::default().labels("app=t"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        cms.list(&ListParams::default().labels("app=other"))
            .await
            .unwrap()
            .items
            .len(),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_an_owner_cascades_through_dependents_with_finalizers() {
    let fake = FakeKube::start();
    let api: Api<ConfigMap> = Api::namespaced(fake.client(NS), NS);
    let ssa = PatchParams::apply("test");
    let owner = api
        .patch("owner", &ssa, &Patch::Apply(config_map("owner", "o")))
        .await
        .unwrap();
    let child = |name: &str, finalizers: serde_json::Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "finalizers": finalizers, "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}]}})
    };
    api.patch("plain", &ssa, &Patch::Apply(child("plain", json!([]))))
        .await
        .unwrap();
    api.patch(
        "held",
        &ssa,
        &Patch::Apply(child("held", json!(["example.com/hold"]))),
    )
    .await
    .unwrap();

    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    assert!(fake.object("configmaps", NS, "owner").is_none());
    assert!(
        fake.object("configmaps", NS, "plain").is_none(),
        "garbage-collected"
    );
    let held = fake
        .object("configmaps", NS, "held")
        .expect("held by its finalizer");
    assert!(held["metadata"]["deletionTimestamp"].is_string());

    // A finalizer may not be added to an object being deleted.
    let err = api
        .patch(
            "held",
            &ssa,
            &Patch::Apply(child(
                "held",
                json!(["example.com/hold", "example.com/more"]),
            )),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref r) if r.code == 422),
        "{err}"
    );
    api.patch("held", &ssa, &Patch::Apply(child("held", json!([]))))
        .await
        .unwrap();
    assert!(
        fake.object("configmaps", NS, "held").is_none(),
        "released, then gone"
    );
}

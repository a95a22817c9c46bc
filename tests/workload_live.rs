//! The workload of a real leaking process placed in a real cgroup laid out as
//! systemd, Docker, the kubelet (containerd, CRI-O) or Podman lay it out, named
//! from metadata files in a fixture `--host-root`; and the cgroup of
//! connections nobody accepted. Needs root and cgroup v2 (skips visibly).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Lab;
use common::cgroups::{Cgroup, container_id, host_root, v2_mount, write};
use connleak::snapshot::Snapshot;
use serde_json::{Value, json};

/// Runs a leaking server in cgroup `layout` with `metadata` files written
/// (relative path, contents, `{ID}` standing for the container id), and
/// returns the `processes[].workload` connleak reports for it.
fn workload_of(test: &str, layout: &str, metadata: &[(&str, &str)]) -> Option<(Value, String)> {
    let mut lab = Lab::new(test)?;
    let id = container_id(test);
    let cgroup = Cgroup::new(test, &layout.replace("{ID}", &id))?;
    let root = host_root(&lab.path("host"));
    for (rel, contents) in metadata {
        write(
            &root,
            &rel.replace("{ID}", &id),
            &contents.replace("{ID}", &id),
        );
    }
    let server = lab.spawn_in_cgroup(&cgroup.dir, "leak_server", &["--port", "7001"]);
    lab.spawn("clients", &["--port", "7001", "--n", "3"]);
    let report = lab.report(&["--host-root", root.to_str().unwrap()]);
    let process = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == server["pid"])
        .unwrap_or_else(|| panic!("the server is listed: {report:#}"));
    assert_eq!(process["workload"]["cgroup"], cgroup.path.as_str());
    Some((process["workload"].clone(), id))
}

const CONTAINERD_BUNDLE: &str =
    "run/containerd/io.containerd.runtime.v2.task/k8s.io/{ID}/config.json";
const CONTAINERD_ANNOTATIONS: &str = r#"{"ociVersion": "1.1.0", "annotations": {
    "io.kubernetes.cri.container-type": "container",
    "io.kubernetes.cri.sandbox-name": "cart-7d9f8",
    "io.kubernetes.cri.sandbox-namespace": "shop",
    "io.kubernetes.cri.container-name": "app"}}"#;

fn kubernetes_pod(kind: &str, id: &str) -> Value {
    json!({"kind": kind, "name": "shop/cart-7d9f8", "container_id": id, "pod": "cart-7d9f8",
           "namespace": "shop", "container": "app"})
}

/// Everything but the cgroup path, which `workload_of` checks.
fn without_cgroup(mut w: Value) -> Value {
    w.as_object_mut()
        .expect("a workload object")
        .remove("cgroup");
    w
}

#[test]
fn systemd_service_is_named_by_its_unit() {
    let unit = format!("leaky-{}.service", std::process::id());
    let Some((w, _)) = workload_of("wl-systemd", &format!("system.slice/{unit}"), &[]) else {
        return;
    };
    assert_eq!(
        without_cgroup(w),
        json!({"kind": "systemd", "name": unit, "container_id": null, "pod": null,
               "namespace": null, "container": null})
    );
}

#[test]
fn docker_container_is_named_from_its_config() {
    let Some((w, id)) = workload_of(
        "wl-docker",
        "system.slice/docker-{ID}.scope",
        &[(
            "var/lib/docker/containers/{ID}/config.v2.json",
            r#"{"ID": "x", "Name": "/web-1", "Config": {"Labels": {"app": "web"}}}"#,
        )],
    ) else {
        return;
    };
    assert_eq!(
        without_cgroup(w),
        json!({"kind": "docker", "name": "web-1", "container_id": id, "pod": null,
               "namespace": null, "container": "web-1"})
    );
}

#[test]
fn kubernetes_pod_with_containerd_systemd_driver() {
    let Some((w, id)) = workload_of(
        "wl-containerd-systemd",
        "kubepods.slice/kubepods-burstable.slice/\
         kubepods-burstable-pod8e1c1a5e_0d9b_4b3a_9f3e_2f1f6c9a7d11.slice/cri-containerd-{ID}.scope",
        &[(CONTAINERD_BUNDLE, CONTAINERD_ANNOTATIONS)],
    ) else {
        return;
    };
    assert_eq!(without_cgroup(w), kubernetes_pod("containerd", &id));
}

#[test]
fn kubernetes_pod_with_containerd_cgroupfs_driver() {
    let Some((w, id)) = workload_of(
        "wl-containerd-cgroupfs",
        "kubepods/burstable/pod8e1c1a5e-0d9b-4b3a-9f3e-2f1f6c9a7d11/{ID}",
        &[(CONTAINERD_BUNDLE, CONTAINERD_ANNOTATIONS)],
    ) else {
        return;
    };
    assert_eq!(without_cgroup(w), kubernetes_pod("containerd", &id));
}

#[test]
fn kubernetes_pod_with_cri_o() {
    let Some((w, id)) = workload_of(
        "wl-crio",
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1f2e.slice/crio-{ID}.scope",
        &[(
            "run/containers/storage/overlay-containers/{ID}/userdata/config.json",
            r#"{"annotations": {"io.kubernetes.pod.name": "cart-7d9f8",
                "io.kubernetes.pod.namespace": "shop", "io.kubernetes.container.name": "app"}}"#,
        )],
    ) else {
        return;
    };
    assert_eq!(without_cgroup(w), kubernetes_pod("cri-o", &id));
}

#[test]
fn podman_container_is_named_from_its_store() {
    let store = r#"[{"id": "{ID}", "names": ["db-1"], "image": "x"}]"#;
    let Some((w, id)) = workload_of(
        "wl-podman",
        "machine.slice/libpod-{ID}.scope",
        &[(
            "var/lib/containers/storage/overlay-containers/containers.json",
            store,
        )],
    ) else {
        return;
    };
    assert_eq!(
        without_cgroup(w),
        json!({"kind": "podman", "name": "db-1", "container_id": id, "pod": null,
               "namespace": null, "container": "db-1"})
    );
}

/// No metadata at all: the container is named by its short id, and nothing is made up.
#[test]
fn container_without_metadata_keeps_its_id() {
    let Some((w, id)) = workload_of(
        "wl-no-metadata",
        "kubepods.slice/kubepods-pod1.slice/cri-containerd-{ID}.scope",
        &[],
    ) else {
        return;
    };
    assert_eq!(
        without_cgroup(w),
        json!({"kind": "containerd", "name": &id[..12], "container_id": id, "pod": null,
               "namespace": null, "container": null})
    );
}

/// A process in the host's root cgroup belongs to no workload.
#[test]
fn root_cgroup_is_no_workload() {
    let Some(mut lab) = Lab::new("wl-root") else {
        return;
    };
    let Some(root_cgroup) = v2_mount() else {
        common::say("SKIP wl-root: no cgroup v2 hierarchy is mounted");
        return;
    };
    let server = lab.spawn_in_cgroup(&root_cgroup, "leak_server", &["--port", "7001"]);
    lab.spawn("clients", &["--port", "7001", "--n", "3"]);
    let report = lab.report(&[]);
    let process = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == server["pid"])
        .expect("the server is listed");
    assert_eq!(process["workload"], Value::Null, "{report:#}");
}

/// Connections the server never accepts have no process, but carry its
/// cgroup id, which the snapshot maps to the cgroup's path.
#[test]
fn unaccepted_connections_carry_the_listeners_cgroup() {
    let Some(mut lab) = Lab::new("wl-unaccepted") else {
        return;
    };
    let id = container_id("wl-unaccepted");
    let Some(cgroup) = Cgroup::new(
        "wl-unaccepted",
        &format!("kubepods.slice/kubepods-pod2.slice/cri-containerd-{id}.scope"),
    ) else {
        return;
    };
    lab.spawn_in_cgroup(
        &cgroup.dir,
        "backlog_server",
        &["--port", "7002", "--n", "16"],
    );
    lab.spawn("clients", &["--port", "7002", "--n", "5", "--kind", "idle"]);
    let saved = lab.path("snapshot.json");
    // From the host's mount namespace (--netns), where the cgroup v2 mount is
    // visible: `ip netns exec` mounts a /sys without it.
    let out = std::process::Command::new(common::CONNLEAK)
        .args([
            "--json",
            "--netns",
            &lab.ns,
            "--save",
            saved.to_str().unwrap(),
        ])
        .output()
        .expect("run connleak");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snapshot = Snapshot::load(&saved).expect("the saved snapshot loads");
    let queued: Vec<_> = snapshot
        .sockets
        .iter()
        .filter(|s| s.inode == 0 && s.local.port() == 7002)
        .collect();
    assert_eq!(queued.len(), 5, "{queued:#?}");
    for s in &queued {
        assert_eq!(s.cgroup_id, Some(cgroup.id()), "{s:#?}");
    }
    assert_eq!(
        snapshot.cgroups.get(&cgroup.id()),
        Some(&cgroup.path),
        "{:?}",
        snapshot.cgroups
    );
}

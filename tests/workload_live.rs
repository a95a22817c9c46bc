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

/// A leaking server in a real cgroup, with clients that left it CLOSE_WAIT
/// sockets, and a fixture host root holding the runtime's metadata.
struct Leaking {
    // Dropped first: the processes end before their cgroup is removed.
    lab: Lab,
    cgroup: Cgroup,
    root: std::path::PathBuf,
    id: String,
    pid: u64,
}

impl Leaking {
    /// Runs the server in cgroup `layout` with `metadata` files written
    /// (relative path, contents, `{ID}` standing for the container id) and
    /// `clients` clients that closed their end.
    fn new(test: &str, layout: &str, metadata: &[(&str, &str)], clients: u32) -> Option<Leaking> {
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
        lab.spawn("clients", &["--port", "7001", "--n", &clients.to_string()]);
        Some(Leaking {
            pid: server["pid"].as_u64().expect("the server's pid"),
            lab,
            cgroup,
            root,
            id,
        })
    }

    /// connleak's output with `args`, `--host-root` and no age threshold,
    /// whitespace folded (the report wraps lines); asserts exit status 0.
    fn output(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["--host-root", self.root.to_str().unwrap()]);
        all.extend(["--close-wait-min-age", "0"]);
        let out = self.lab.connleak_output(&all);
        assert!(
            out.status.success() || args.first() == Some(&"check"),
            "connleak {all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("UTF-8 output");
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    fn report(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.output(&all)).expect("JSON")
    }

    /// The server's `processes[]` entry.
    fn process(&self, report: &Value) -> Value {
        report["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"] == self.pid)
            .unwrap_or_else(|| panic!("the server is listed: {report:#}"))
            .clone()
    }
}

/// Runs a leaking server in cgroup `layout` with `metadata` files written
/// (relative path, contents, `{ID}` standing for the container id), and
/// returns the `processes[].workload` connleak reports for it.
fn workload_of(test: &str, layout: &str, metadata: &[(&str, &str)]) -> Option<(Value, String)> {
    let leak = Leaking::new(test, layout, metadata, 3)?;
    let process = leak.process(&leak.report(&[]));
    assert_eq!(process["workload"]["cgroup"], leak.cgroup.path.as_str());
    Some((process["workload"].clone(), leak.id.clone()))
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
/// cgroup id, which the snapshot maps to the cgroup's path: their finding is
/// the listener's workload, and stays a workload (told from that path) when
/// no process of it is visible.
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
    let root = host_root(&lab.path("host"));
    write(
        &root,
        &CONTAINERD_BUNDLE.replace("{ID}", &id),
        CONTAINERD_ANNOTATIONS,
    );
    let saved = lab.path("snapshot.json");
    // Queued for seconds: a listener that stopped accepting, not one at work.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // From the host's mount namespace (--netns), where the cgroup v2 mount is
    // visible: `ip netns exec` mounts a /sys without it.
    let out = std::process::Command::new(common::CONNLEAK)
        .args([
            "--json",
            "--netns",
            &lab.ns,
            "--save",
            saved.to_str().unwrap(),
            "--host-root",
            root.to_str().unwrap(),
        ])
        .output()
        .expect("run connleak");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let queue = common::findings(&report, "accept_queue_full");
    assert_eq!(queue.len(), 1, "{report:#}");
    assert_eq!(
        without_cgroup(queue[0]["workload"].clone()),
        kubernetes_pod("containerd", &id)
    );
    let snapshot = Snapshot::load(&saved).expect("the saved snapshot loads");
    let queued: Vec<_> = snapshot
        .sockets
        .iter()
        .filter(|s| s.inode() == 0 && s.local().port() == 7002)
        .collect();
    assert_eq!(queued.len(), 5, "{queued:#?}");
    for s in &queued {
        assert_eq!(s.cgroup_id(), Some(cgroup.id()), "{s:#?}");
    }
    assert_eq!(
        snapshot.cgroups.get(&cgroup.id()),
        Some(&cgroup.path),
        "{:?}",
        snapshot.cgroups
    );
    // No process visible (as if its fds could not be read): the queue's
    // workload comes from the cgroup its connections carry.
    let mut ownerless = snapshot.clone();
    ownerless.processes.clear();
    std::fs::write(&saved, serde_json::to_vec(&ownerless).unwrap()).unwrap();
    let out = std::process::Command::new(common::CONNLEAK)
        .args(["--json", "--from", saved.to_str().unwrap()])
        .output()
        .expect("run connleak");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let queue = common::findings(&report, "accept_queue_full");
    assert_eq!(queue.len(), 1, "{report:#}");
    assert_eq!(queue[0]["pid"], Value::Null);
    assert_eq!(queue[0]["workload"]["kind"], "containerd", "{report:#}");
    assert_eq!(queue[0]["workload"]["container_id"], id.as_str());
    assert_eq!(queue[0]["workload"]["cgroup"], cgroup.path.as_str());
}

const KUBERNETES_LAYOUT: &str = "kubepods.slice/kubepods-burstable.slice/\
     kubepods-burstable-pod8e1c1a5e_0d9b_4b3a_9f3e_2f1f6c9a7d11.slice/cri-containerd-{ID}.scope";

/// A pod's leak, named as the pod everywhere: the report, the JSON
/// (`findings[].workload`, `processes[].workload`), the check line and
/// Prometheus (read by the reference parser).
#[test]
fn a_pods_leak_is_named_by_the_pod_everywhere() {
    let Some(leak) = Leaking::new(
        "wl-pod-leak",
        KUBERNETES_LAYOUT,
        &[(CONTAINERD_BUNDLE, CONTAINERD_ANNOTATIONS)],
        12,
    ) else {
        return;
    };
    let pod = kubernetes_pod("containerd", &leak.id);
    let report = leak.report(&[]);
    let leaks = common::findings(&report, "close_wait_leak");
    assert_eq!(leaks.len(), 1, "{report:#}");
    assert_eq!(leaks[0]["pid"], leak.pid);
    assert_eq!(without_cgroup(leaks[0]["workload"].clone()), pod);
    assert_eq!(
        without_cgroup(leak.process(&report)["workload"].clone()),
        pod
    );

    let named = format!(
        "pod shop/cart-7d9f8 (container app), pid {} (python3)",
        leak.pid
    );
    let table = leak.output(&[]);
    let heading = format!(
        "WARNING close_wait_leak in pod shop/cart-7d9f8 (container app): pid {} (python3)",
        leak.pid
    );
    assert!(table.contains(&heading), "{table}");
    assert!(
        table.contains("WORKLOAD") && table.contains("shop/cart"),
        "{table}"
    );
    let check = leak.output(&["check"]);
    assert!(
        check.starts_with("CONNLEAK WARNING")
            && check.contains(&format!("close_wait_leak {named} 12 CLOSE_WAIT")),
        "{check}"
    );

    let prom = leak.lab.path("metrics.prom");
    std::fs::write(
        &prom,
        leak.lab
            .connleak_output(&[
                "--prometheus",
                "--host-root",
                leak.root.to_str().unwrap(),
                "--close-wait-min-age",
                "0",
            ])
            .stdout,
    )
    .unwrap();
    let Some(samples) = common::prometheus_samples(&prom) else {
        return;
    };
    let workload = ("workload", "shop/cart-7d9f8");
    let in_leak = [("kind", "close_wait_leak"), workload];
    assert_eq!(
        common::sample(&samples, "connleak_finding_sockets", &in_leak),
        Some(12.0)
    );
    let pid = leak.pid.to_string();
    let server = [("pid", pid.as_str()), workload];
    assert!(common::sample(&samples, "connleak_process_fds", &server).is_some());
    let cw = [("pid", pid.as_str()), workload, ("state", "CLOSE_WAIT")];
    assert_eq!(
        common::sample(&samples, "connleak_process_sockets", &cw),
        Some(12.0)
    );
}

/// A systemd service's leak is named by its unit, in the report and the check line.
#[test]
fn a_services_leak_is_named_by_its_unit() {
    let unit = format!("leaky-{}.service", std::process::id());
    let Some(leak) = Leaking::new("wl-unit-leak", &format!("system.slice/{unit}"), &[], 12) else {
        return;
    };
    let table = leak.output(&[]);
    let heading = format!("close_wait_leak in {unit}: pid {} (python3)", leak.pid);
    assert!(table.contains(&heading), "{table}");
    let check = leak.output(&["check"]);
    assert!(
        check.contains(&format!(
            "close_wait_leak {unit}, pid {} (python3) 12",
            leak.pid
        )),
        "{check}"
    );
    let report = leak.report(&[]);
    assert_eq!(
        common::findings(&report, "close_wait_leak")[0]["workload"]["name"],
        unit.as_str()
    );
}

/// `--workload` keeps what matches (by name, container or id) and, when
/// nothing does, says what it left out and keeps the status whole.
#[test]
fn workload_filter_narrows_and_says_what_it_left_out() {
    let Some(leak) = Leaking::new(
        "wl-filter",
        KUBERNETES_LAYOUT,
        &[(CONTAINERD_BUNDLE, CONTAINERD_ANNOTATIONS)],
        12,
    ) else {
        return;
    };
    let whole = leak.report(&[]);
    assert_eq!(whole["status"], "warning");
    let id_prefix = format!("{}*", &leak.id[..10]);
    for pattern in ["shop/*", "app", "shop/cart-7d9f?", id_prefix.as_str()] {
        let kept = leak.report(&["--workload", pattern]);
        assert_eq!(
            common::findings(&kept, "close_wait_leak").len(),
            1,
            "{pattern}: {kept:#}"
        );
        assert_eq!(kept["processes"].as_array().unwrap().len(), 1, "{pattern}");
        assert_eq!(kept["filtered"]["findings"], 0, "{pattern}");
    }
    let none = leak.report(&["--workload", "billing/*", "--workload", "nginx.service"]);
    assert_eq!(none["status"], "warning", "{none:#}");
    assert_eq!(none["findings"], json!([]));
    assert_eq!(none["processes"], json!([]));
    assert_eq!(
        none["filtered"]["filter"],
        "--workload billing/* --workload nginx.service"
    );
    assert_eq!(none["filtered"]["worst"], "warning");
    assert!(
        none["filtered"]["findings"].as_u64().unwrap() >= 1,
        "{none:#}"
    );
    assert!(
        none["filtered"]["processes"].as_u64().unwrap() >= 1,
        "{none:#}"
    );
    let table = leak.output(&["--workload", "billing/*"]);
    assert!(
        table.contains("outside --workload billing/* not shown (worst WARNING)"),
        "{table}"
    );
    let check = leak.output(&["check", "--workload", "billing/*"]);
    assert!(
        check.starts_with("CONNLEAK WARNING") && check.contains("outside --workload billing/*"),
        "{check}"
    );
}

/// `--all-netns` (its namespaces found under `--host-root`) labels a
/// namespace by the pod that owns it: the table's heading, the JSON, the
/// check line and a Prometheus series.
#[test]
fn all_netns_labels_a_pods_namespace() {
    let Some(leak) = Leaking::new(
        "wl-all-netns",
        KUBERNETES_LAYOUT,
        &[(
            CONTAINERD_BUNDLE,
            &CONTAINERD_ANNOTATIONS.replace("cart-7d9f8", "edge-5c4b2"),
        )],
        12,
    ) else {
        return;
    };
    let ns = leak.lab.ns.as_str();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::CONNLEAK)
            .args(args)
            .args(["--all-netns", "--close-wait-min-age", "0", "--host-root"])
            .arg(&leak.root)
            .env("NO_COLOR", "1")
            .env("COLUMNS", "200")
            .output()
            .expect("run connleak");
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let all: Value = serde_json::from_str(&run(&["--json"])).expect("JSON");
    let ours = all["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["netns"]["name"] == ns)
        .unwrap_or_else(|| panic!("namespace {ns} is reported: {all:#}"));
    assert_eq!(
        ours["netns_workload"]["name"], "shop/edge-5c4b2",
        "{ours:#}"
    );
    assert_eq!(ours["netns_workload"]["container"], "app");

    let table = run(&[]);
    let heading = format!("=== network namespace {ns}, pod shop/edge-5c4b2 (container app) ===");
    assert!(table.contains(&heading), "{table}");
    // Other namespaces of this host may have problems of their own.
    let check = run(&["check", "--workload", "shop/edge-*"]);
    let named = format!(
        "close_wait_leak in netns {ns} pod shop/edge-5c4b2 (container app), pid {} (python3) 12",
        leak.pid
    );
    assert!(check.contains(&named), "{check}");

    let prom = leak.lab.path("all.prom");
    std::fs::write(&prom, run(&["--prometheus"])).unwrap();
    let Some(samples) = common::prometheus_samples(&prom) else {
        return;
    };
    let owner = [("netns", ns), ("workload", "shop/edge-5c4b2")];
    assert_eq!(
        common::sample(&samples, "connleak_netns_workload", &owner),
        Some(1.0)
    );
    let leaking = [
        ("netns", ns),
        ("kind", "close_wait_leak"),
        ("workload", "shop/edge-5c4b2"),
    ];
    assert_eq!(
        common::sample(&samples, "connleak_finding_sockets", &leaking),
        Some(12.0)
    );
}

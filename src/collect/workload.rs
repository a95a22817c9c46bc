//! Which workload a cgroup path is, named as a person calls it: a systemd
//! unit, a Docker/Podman/LXC container, or a Kubernetes pod and container.
//!
//! The path says who made the cgroup (the layouts systemd, Docker, the
//! kubelet with containerd or CRI-O, Podman and LXC create); the names come
//! from the runtimes' own metadata files under the host root, never from a
//! daemon, so that naming works while dockerd or the kubelet is the problem.
//! A metadata file that is missing, unreadable or malformed leaves the
//! container named by its short id: never an error. Each container's file is
//! read once per snapshot, however many processes run in it.

use crate::snapshot::workload::{Names, named, place};
use crate::snapshot::{Workload, WorkloadKind};
use rustc_hash::FxHashMap;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest metadata file read (an OCI `config.json` is tens of KiB).
const MAX_METADATA_BYTES: u64 = 4 << 20;

/// The path of `/proc/PID/cgroup` text to tell the workload from: of the v2
/// and `name=systemd` paths, one that names a container wins (on a v1 host a
/// container's v2 path is still its runtime's unit), else the first not root.
pub fn telling_path(proc_cgroup: &str) -> Option<&str> {
    let paths = super::cgroup::parse_proc_cgroup(proc_cgroup);
    paths
        .candidates()
        .find(|p| place(p).is_some_and(|pl| pl.id.is_some()))
        .or_else(|| paths.candidates().next())
}

impl Names {
    fn kubernetes(labels: &BTreeMap<String, String>, keys: [&str; 3]) -> Names {
        let get = |k: &str| labels.get(k).filter(|v| !v.is_empty()).cloned();
        Names {
            name: None,
            pod: get(keys[0]),
            namespace: get(keys[1]),
            container: get(keys[2]),
        }
    }

    fn is_empty(&self) -> bool {
        *self == Names::default()
    }
}

/// The kubelet's labels on a Docker container (dockershim) and CRI-O's annotations.
const KUBELET_KEYS: [&str; 3] = [
    "io.kubernetes.pod.name",
    "io.kubernetes.pod.namespace",
    "io.kubernetes.container.name",
];
/// containerd's CRI plugin's annotations on a container's OCI bundle.
const CONTAINERD_CRI_KEYS: [&str; 3] = [
    "io.kubernetes.cri.sandbox-name",
    "io.kubernetes.cri.sandbox-namespace",
    "io.kubernetes.cri.container-name",
];

/// Docker's `config.v2.json`: the container's `Name` (`/web`) and, under
/// Kubernetes, the kubelet's labels.
pub fn docker_names(bytes: &[u8]) -> Names {
    #[derive(Deserialize)]
    struct Config {
        #[serde(rename = "Name", default)]
        name: String,
        #[serde(rename = "Config", default)]
        config: Inner,
    }
    #[derive(Deserialize, Default)]
    struct Inner {
        #[serde(rename = "Labels", default)]
        labels: Option<BTreeMap<String, String>>,
    }
    let Ok(c) = serde_json::from_slice::<Config>(bytes) else {
        return Names::default();
    };
    let mut names = Names::kubernetes(&c.config.labels.unwrap_or_default(), KUBELET_KEYS);
    let name = c.name.trim_start_matches('/');
    if !name.is_empty() {
        names.name = Some(name.to_string());
    }
    names
}

/// The annotations of an OCI runtime `config.json`, read for `keys`
/// (pod, namespace, container).
pub fn oci_names(bytes: &[u8], keys: [&str; 3]) -> Names {
    #[derive(Deserialize)]
    struct Spec {
        #[serde(default)]
        annotations: Option<BTreeMap<String, String>>,
    }
    serde_json::from_slice::<Spec>(bytes)
        .map(|s| Names::kubernetes(&s.annotations.unwrap_or_default(), keys))
        .unwrap_or_default()
}

/// containers/storage's `containers.json` (Podman's store): the first name of container `id`.
pub fn storage_name(bytes: &[u8], id: &str) -> Names {
    #[derive(Deserialize)]
    struct Entry {
        id: String,
        #[serde(default)]
        names: Vec<String>,
    }
    let entries: Vec<Entry> = serde_json::from_slice(bytes).unwrap_or_default();
    Names {
        name: entries
            .into_iter()
            .find(|e| e.id == id)
            .and_then(|e| e.names.into_iter().next()),
        ..Names::default()
    }
}

/// Names workloads for one snapshot, reading each container's metadata once.
pub struct Namer {
    host_root: PathBuf,
    /// (kind the path told, container id) → the kind its metadata proved and what it said.
    read: FxHashMap<(WorkloadKind, String), (WorkloadKind, Names)>,
}

impl Namer {
    pub fn new(host_root: &Path) -> Namer {
        Namer {
            host_root: host_root.to_path_buf(),
            read: FxHashMap::default(),
        }
    }

    /// The workload of process `pid`, from `PROC/PID/cgroup`; `None` in the
    /// root cgroup or when the file cannot be read (the process exited).
    pub fn of_process(&mut self, proc_root: &Path, pid: u32) -> Option<Workload> {
        let bytes = std::fs::read(proc_root.join(pid.to_string()).join("cgroup")).ok()?;
        let text = super::procfs::lossless_text(&bytes);
        self.workload(telling_path(&text)?)
    }

    /// The workload of a process in cgroup `path`; `None` for the root cgroup.
    pub fn workload(&mut self, path: &str) -> Option<Workload> {
        let place = place(path)?;
        let (kind, names) = match &place.id {
            Some(id) if place.kind != WorkloadKind::Lxc => {
                let root = &self.host_root;
                self.read
                    .entry((place.kind, id.clone()))
                    .or_insert_with(|| metadata(root, place.kind, id))
                    .clone()
            }
            _ => (place.kind, Names::default()),
        };
        Some(named(place, kind, names, path))
    }
}

/// Reads what the runtime that made container `id` wrote about it.
fn metadata(root: &Path, kind: WorkloadKind, id: &str) -> (WorkloadKind, Names) {
    let read = |rel: String, parse: &dyn Fn(&[u8]) -> Names| {
        read_capped(&root.join(rel)).map(|b| parse(&b))
    };
    let containerd = || {
        read(
            format!("run/containerd/io.containerd.runtime.v2.task/k8s.io/{id}/config.json"),
            &|b| oci_names(b, CONTAINERD_CRI_KEYS),
        )
    };
    let crio = || {
        read(
            format!("run/containers/storage/overlay-containers/{id}/userdata/config.json"),
            &|b| oci_names(b, KUBELET_KEYS),
        )
    };
    let found = match kind {
        WorkloadKind::Docker => read(
            format!("var/lib/docker/containers/{id}/config.v2.json"),
            &docker_names,
        )
        .map(|n| (kind, n)),
        WorkloadKind::CriO => crio().map(|n| (kind, n)),
        WorkloadKind::Podman => read(
            "var/lib/containers/storage/overlay-containers/containers.json".into(),
            &|b| storage_name(b, id),
        )
        .map(|n| (kind, n)),
        // The kubelet's cgroupfs layout is the same for both CRI runtimes.
        _ => containerd()
            .map(|n| (WorkloadKind::Containerd, n))
            .or_else(|| crio().map(|n| (WorkloadKind::CriO, n))),
    };
    found
        .filter(|(_, n)| !n.is_empty())
        .unwrap_or((kind, Names::default()))
}

/// A file's bytes, up to [`MAX_METADATA_BYTES`]; `None` when it cannot be
/// read or is larger.
fn read_capped(path: &Path) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_METADATA_BYTES + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    (bytes.len() as u64 <= MAX_METADATA_BYTES).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use WorkloadKind::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn told(path: &str) -> Option<(WorkloadKind, Option<String>, String)> {
        place(path).map(|p| (p.kind, p.id, p.name))
    }

    fn unit(kind: WorkloadKind, name: &str) -> Option<(WorkloadKind, Option<String>, String)> {
        Some((kind, None, name.to_string()))
    }

    fn container(kind: WorkloadKind) -> Option<(WorkloadKind, Option<String>, String)> {
        Some((kind, Some(ID.to_string()), ID[..12].to_string()))
    }

    #[test]
    fn systemd_units() {
        assert_eq!(
            told("/system.slice/nginx.service"),
            unit(Systemd, "nginx.service")
        );
        assert_eq!(
            told("/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service"),
            unit(Systemd, "foo.service")
        );
        assert_eq!(
            told("/user.slice/user-1000.slice/session-3.scope"),
            unit(Systemd, "session-3.scope")
        );
        // A unit that delegates its own sub-cgroups is still the unit.
        assert_eq!(
            told("/system.slice/build.service/worker/1"),
            unit(Systemd, "build.service")
        );
        // A private cgroup namespace writes the path relative to its root.
        assert_eq!(
            told("/../../system.slice/nginx.service"),
            unit(Systemd, "nginx.service")
        );
    }

    #[test]
    fn containers_by_layout() {
        assert_eq!(
            told(&format!("/system.slice/docker-{ID}.scope")),
            container(Docker)
        );
        assert_eq!(told(&format!("/docker/{ID}")), container(Docker));
        assert_eq!(
            told(&format!(
                "/kubepods.slice/kubepods-burstable.slice/\
                 kubepods-burstable-pod1a2b_3c.slice/cri-containerd-{ID}.scope"
            )),
            container(Containerd)
        );
        assert_eq!(
            told(&format!("/kubepods/burstable/pod1a2b-3c/{ID}")),
            container(Containerd)
        );
        assert_eq!(
            told(&format!("/kubepods/pod1a2b-3c/{ID}")),
            container(Containerd)
        );
        assert_eq!(
            told(&format!(
                "/kubepods.slice/kubepods-pod1.slice/crio-{ID}.scope"
            )),
            container(CriO)
        );
        assert_eq!(
            told(&format!("/kubepods/besteffort/pod1/crio-{ID}")),
            container(CriO)
        );
        assert_eq!(
            told(&format!("/machine.slice/libpod-{ID}.scope/container")),
            container(Podman)
        );
        assert_eq!(
            told(&format!("/libpod_parent/libpod-{ID}")),
            container(Podman)
        );
        assert_eq!(
            told("/lxc.payload.web1"),
            Some((Lxc, Some("web1".into()), "web1".into()))
        );
        assert_eq!(told("/lxc/db"), Some((Lxc, Some("db".into()), "db".into())));
    }

    #[test]
    fn the_path_that_names_a_container_wins() {
        let v1_docker = format!(
            "9:name=systemd:/docker/{ID}\n4:memory:/docker/{ID}\n0::/system.slice/containerd.service\n"
        );
        assert_eq!(telling_path(&v1_docker), Some(&*format!("/docker/{ID}")));
        let v2 = "1:name=systemd:/\n0::/system.slice/nginx.service\n";
        assert_eq!(telling_path(v2), Some("/system.slice/nginx.service"));
        let hybrid = "1:name=systemd:/user.slice/session-3.scope\n0::/\n";
        assert_eq!(telling_path(hybrid), Some("/user.slice/session-3.scope"));
        assert_eq!(telling_path("1:name=systemd:/\n0::/\n"), None);
        assert_eq!(telling_path(""), None);
    }

    #[test]
    fn everything_else_is_its_path() {
        assert_eq!(told("/"), None);
        assert_eq!(told(""), None);
        assert_eq!(told("/kubepods.slice"), unit(Cgroup, "/kubepods.slice"));
        assert_eq!(told("/batch/job7"), unit(Cgroup, "/batch/job7"));
        // Not a container id: too short, or upper case.
        assert_eq!(
            told("/system.slice/docker-abc.scope"),
            unit(Systemd, "docker-abc.scope")
        );
        assert_eq!(
            told(&format!("/docker/{}", ID.to_uppercase())).map(|t| t.0),
            Some(Cgroup)
        );
        assert_eq!(told(&format!("/other/{ID}")).map(|t| t.0), Some(Cgroup));
    }

    #[test]
    fn metadata_files_parse() {
        let docker = br#"{"ID":"x","Name":"/web-1","Config":{"Labels":null}}"#;
        assert_eq!(docker_names(docker).name.as_deref(), Some("web-1"));
        let shim = br#"{"Name":"/k8s_app_cart","Config":{"Labels":{
            "io.kubernetes.pod.name":"cart-7d9f8","io.kubernetes.pod.namespace":"shop",
            "io.kubernetes.container.name":"app"}}}"#;
        let n = docker_names(shim);
        assert_eq!(
            (
                n.pod.as_deref(),
                n.namespace.as_deref(),
                n.container.as_deref()
            ),
            (Some("cart-7d9f8"), Some("shop"), Some("app"))
        );
        let oci = br#"{"ociVersion":"1.0.2","annotations":{
            "io.kubernetes.cri.sandbox-name":"cart-7d9f8",
            "io.kubernetes.cri.sandbox-namespace":"shop",
            "io.kubernetes.cri.container-name":"app"}}"#;
        let n = oci_names(oci, CONTAINERD_CRI_KEYS);
        assert_eq!(n.pod.as_deref(), Some("cart-7d9f8"));
        assert_eq!(n.container.as_deref(), Some("app"));
        assert!(oci_names(oci, KUBELET_KEYS).is_empty());
        let store = format!(r#"[{{"id":"other","names":["x"]}},{{"id":"{ID}","names":["db"]}}]"#);
        assert_eq!(
            storage_name(store.as_bytes(), ID).name.as_deref(),
            Some("db")
        );
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            b"null",
            b"{\"annotations\":{\"a\":1}}",
            b"\xff",
        ] {
            assert!(docker_names(bad).is_empty());
            assert!(oci_names(bad, KUBELET_KEYS).is_empty());
            assert!(storage_name(bad, ID).is_empty());
        }
    }

    /// A fixture host root with a containerd bundle, a Docker config and
    /// nothing for a CRI-O container.
    #[test]
    fn names_from_a_host_root() -> std::io::Result<()> {
        let root = std::env::temp_dir().join(format!("connleak-names-{}", std::process::id()));
        let bundle = root.join(format!(
            "run/containerd/io.containerd.runtime.v2.task/k8s.io/{ID}"
        ));
        std::fs::create_dir_all(&bundle)?;
        std::fs::write(
            bundle.join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.sandbox-name":"cart-7d9f8",
               "io.kubernetes.cri.sandbox-namespace":"shop",
               "io.kubernetes.cri.container-name":"app"}}"#,
        )?;
        let docker = root.join(format!("var/lib/docker/containers/{ID}"));
        std::fs::create_dir_all(&docker)?;
        std::fs::write(docker.join("config.v2.json"), r#"{"Name":"/web-1"}"#)?;
        let mut namer = Namer::new(&root);
        let pod = namer.workload(&format!("/kubepods/burstable/pod1/{ID}"));
        let web = Namer::new(&root).workload(&format!("/docker/{ID}"));
        let unnamed = namer.workload(&format!("/kubepods.slice/x.slice/crio-{ID}.scope"));
        // Read once: the file's removal does not change a second answer.
        std::fs::remove_dir_all(&root)?;
        let again = namer.workload(&format!("/kubepods/burstable/pod1/{ID}"));
        let pod = pod.unwrap_or_else(|| unreachable!("a workload"));
        assert_eq!(pod.kind, Containerd);
        assert_eq!(pod.name, "shop/cart-7d9f8");
        assert_eq!(pod.pod.as_deref(), Some("cart-7d9f8"));
        assert_eq!(pod.namespace.as_deref(), Some("shop"));
        assert_eq!(pod.container.as_deref(), Some("app"));
        assert_eq!(pod.container_id.as_deref(), Some(ID));
        assert_eq!(again, Some(pod));
        let web = web.unwrap_or_else(|| unreachable!("a workload"));
        assert_eq!((web.kind, web.name.as_str()), (Docker, "web-1"));
        assert_eq!(web.container.as_deref(), Some("web-1"));
        // No CRI-O metadata: the short id names it, and nothing is made up.
        let unnamed = unnamed.unwrap_or_else(|| unreachable!("a workload"));
        assert_eq!((unnamed.kind, unnamed.name.as_str()), (CriO, &ID[..12]));
        assert_eq!((unnamed.pod, unnamed.container), (None, None));
        assert_eq!(unnamed.container_id.as_deref(), Some(ID));
        Ok(())
    }
}

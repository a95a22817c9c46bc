//! What a cgroup path says of its workload, from the path alone: which
//! runtime made it (systemd, Docker, containerd, CRI-O, Podman, LXC, the
//! kubelet's layouts) and the container id or unit in it, and the workload
//! named from that and what a runtime's metadata said. Pure functions of
//! data, so that the collector (which reads the metadata) and the report
//! (which names a saved snapshot's cgroups) share one naming.

use super::{Workload, WorkloadKind};

/// What the cgroup path alone tells.
#[derive(Debug, PartialEq, Eq)]
pub struct Place {
    pub kind: WorkloadKind,
    /// The container id, or the LXC container's name.
    pub id: Option<String>,
    /// The name when no metadata gives one: the unit, the LXC name, the
    /// short container id, or the path.
    pub name: String,
}

/// Tells the workload of a cgroup path; `None` for the root cgroup. The
/// deepest component that names a container wins (a container may nest
/// cgroups of its own), then the deepest systemd unit, then the path itself.
pub fn place(path: &str) -> Option<Place> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != "." && *c != "..")
        .collect();
    if parts.is_empty() {
        return None;
    }
    let container = (0..parts.len()).rev().find_map(|i| {
        let parent = i.checked_sub(1).map(|p| parts[p]);
        container_of(parts[i], parent, &parts[..i])
    });
    if let Some((kind, id)) = container {
        let name = if kind == WorkloadKind::Lxc {
            id.clone()
        } else {
            id.chars().take(12).collect()
        };
        return Some(Place {
            kind,
            id: Some(id),
            name,
        });
    }
    let unit = parts
        .iter()
        .rev()
        .find(|c| c.ends_with(".service") || c.ends_with(".scope"));
    Some(match unit {
        Some(unit) => Place {
            kind: WorkloadKind::Systemd,
            id: None,
            name: (*unit).to_string(),
        },
        None => Place {
            kind: WorkloadKind::Cgroup,
            id: None,
            name: path.to_string(),
        },
    })
}

/// The container one path component names, given its parent and ancestors.
fn container_of(
    part: &str,
    parent: Option<&str>,
    ancestors: &[&str],
) -> Option<(WorkloadKind, String)> {
    let scoped = |prefixes: &[&str]| {
        prefixes.iter().find_map(|p| {
            let rest = part.strip_prefix(p)?;
            let id = rest.strip_suffix(".scope").unwrap_or(rest);
            is_container_id(id).then(|| id.to_string())
        })
    };
    let tagged = [
        (WorkloadKind::Docker, &["docker-"][..]),
        (WorkloadKind::Containerd, &["cri-containerd-"][..]),
        (WorkloadKind::CriO, &["crio-conmon-", "crio-"][..]),
        (WorkloadKind::Podman, &["libpod-conmon-", "libpod-"][..]),
    ];
    if let Some(found) = tagged
        .iter()
        .find_map(|(kind, prefixes)| Some((*kind, scoped(prefixes)?)))
    {
        return Some(found);
    }
    if let Some(name) = part
        .strip_prefix("lxc.payload.")
        .or_else(|| part.strip_prefix("lxc.monitor."))
        .or_else(|| (parent == Some("lxc")).then_some(part))
    {
        return Some((WorkloadKind::Lxc, name.to_string()));
    }
    if !is_container_id(part) {
        return None;
    }
    // cgroupfs drivers: /docker/ID, /kubepods/[CLASS/]podUID/ID.
    if parent == Some("docker") {
        return Some((WorkloadKind::Docker, part.to_string()));
    }
    let in_pod = parent.is_some_and(|p| p.starts_with("pod"));
    if in_pod && ancestors.contains(&"kubepods") {
        // The layout names no runtime: containerd unless CRI-O's metadata says otherwise.
        return Some((WorkloadKind::Containerd, part.to_string()));
    }
    None
}

/// Docker, containerd, CRI-O and Podman ids are 64 lowercase hex digits.
fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What a runtime's metadata says of a container.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Names {
    pub name: Option<String>,
    pub pod: Option<String>,
    pub namespace: Option<String>,
    pub container: Option<String>,
}

/// The workload of cgroup `path` from the path alone, reading no metadata
/// (a saved snapshot's cgroup of sockets no process holds); `None` for the
/// root cgroup.
pub fn of_path(path: &str) -> Option<Workload> {
    let place = place(path)?;
    let kind = place.kind;
    Some(named(place, kind, Names::default(), path))
}

/// The workload at `place`, of the `kind` its metadata proved, with its names.
pub fn named(place: Place, kind: WorkloadKind, names: Names, path: &str) -> Workload {
    let container = names
        .container
        .or_else(|| (kind == WorkloadKind::Lxc).then(|| place.name.clone()))
        .or_else(|| names.name.clone());
    let name = match (&names.namespace, &names.pod) {
        (Some(ns), Some(pod)) => format!("{ns}/{pod}"),
        _ => names.name.unwrap_or(place.name),
    };
    Workload {
        kind,
        name,
        container_id: place.id.filter(|_| kind != WorkloadKind::Lxc),
        pod: names.pod,
        namespace: names.namespace,
        container,
        cgroup: path.to_string(),
    }
}

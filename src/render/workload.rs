//! How the human report and the `check` line name a workload: as a person
//! calls it — `pod shop/cart-7d9f8 (container app)`, `nginx.service`,
//! `docker container web-1` — and a namespace by its label and the workload
//! that owns it. Names come from files on the host: always escaped.

use super::text::escape;
use crate::diagnose::Finding;
use crate::report::Labelled;
use crate::snapshot::{Workload, WorkloadKind};

/// The workload as a person names it, escaped.
pub fn phrase(w: &Workload) -> String {
    let text = match (&w.namespace, &w.pod) {
        (Some(ns), Some(pod)) => match &w.container {
            Some(c) => format!("pod {ns}/{pod} (container {c})"),
            None => format!("pod {ns}/{pod}"),
        },
        _ => match w.kind {
            WorkloadKind::Systemd => w.name.clone(),
            WorkloadKind::Cgroup => format!("cgroup {}", w.name),
            WorkloadKind::Docker => format!("docker container {}", w.name),
            WorkloadKind::Containerd => format!("containerd container {}", w.name),
            WorkloadKind::CriO => format!("CRI-O container {}", w.name),
            WorkloadKind::Podman => format!("podman container {}", w.name),
            WorkloadKind::Lxc => format!("LXC container {}", w.name),
        },
    };
    escape(&text).into_owned()
}

/// ` in WORKLOAD` for a finding that has one, to follow its kind.
pub fn in_workload(f: &Finding) -> String {
    f.workload
        .as_ref()
        .map(|w| format!(" in {}", phrase(w)))
        .unwrap_or_default()
}

/// A namespace's label with the workload that owns it (`pid:4242, pod
/// shop/cart-7d9f8`), escaped; `None` when the report has no label.
pub fn namespace(l: &Labelled) -> Option<String> {
    let label = escape(l.label?).into_owned();
    Some(match &l.report.netns_workload {
        Some(w) => format!("{label}, {}", phrase(w)),
        None => label,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(kind: WorkloadKind, name: &str) -> Workload {
        Workload {
            kind,
            name: name.to_string(),
            container_id: None,
            pod: None,
            namespace: None,
            container: None,
            cgroup: "/x".to_string(),
        }
    }

    #[test]
    fn workloads_read_as_people_name_them() {
        let pod = Workload {
            pod: Some("cart-7d9f8".into()),
            namespace: Some("shop".into()),
            container: Some("app".into()),
            ..workload(WorkloadKind::Containerd, "shop/cart-7d9f8")
        };
        assert_eq!(phrase(&pod), "pod shop/cart-7d9f8 (container app)");
        let no_container = Workload {
            container: None,
            ..pod
        };
        assert_eq!(phrase(&no_container), "pod shop/cart-7d9f8");
        assert_eq!(
            phrase(&workload(WorkloadKind::Systemd, "nginx.service")),
            "nginx.service"
        );
        assert_eq!(
            phrase(&workload(WorkloadKind::Docker, "web-1")),
            "docker container web-1"
        );
        assert_eq!(
            phrase(&workload(WorkloadKind::Systemd, "x\x1b[2J.service")),
            "x\\e[2J.service"
        );
    }
}

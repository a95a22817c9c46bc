//! Which workload each finding belongs to, told once where the report is
//! built so that no rule needs to know: its owner's, or — for connections no
//! process holds (never accepted, inode 0) — the workload of the cgroup their
//! sockets carry. A cgroup a visible process also runs in is named as that
//! process's workload was (from the runtime's metadata, at collection); any
//! other is told from its path alone, so a saved snapshot stays pure data.
//! And which workload a network namespace belongs to: the one every process
//! in it shares.

use crate::diagnose::Finding;
use crate::snapshot::{Snapshot, Workload};
use rustc_hash::FxHashMap;
use std::collections::BTreeSet;

/// Fills `findings[].workload` from `snapshot`.
pub fn attribute(findings: &mut [Finding], snapshot: &Snapshot) {
    let by_pid: FxHashMap<u32, &Workload> = snapshot
        .processes
        .iter()
        .filter_map(|p| Some((p.pid, p.workload.as_ref()?)))
        .collect();
    let by_cgroup: FxHashMap<&str, &Workload> =
        by_pid.values().map(|w| (w.cgroup.as_str(), *w)).collect();
    for f in findings {
        f.workload = match f.pid {
            Some(pid) => by_pid.get(&pid).map(|w| (*w).clone()),
            None => cgroup_of(f, snapshot).and_then(|path| match by_cgroup.get(path) {
                Some(w) => Some((*w).clone()),
                None => crate::snapshot::workload::of_path(path),
            }),
        };
    }
}

/// The one cgroup path the sockets of an ownerless finding carry, if they
/// agree on one.
fn cgroup_of<'a>(f: &Finding, snapshot: &'a Snapshot) -> Option<&'a str> {
    let paths: BTreeSet<&str> = f
        .sockets
        .iter()
        .filter_map(|&i| snapshot.sockets.get(i)?.cgroup_id())
        .filter_map(|id| snapshot.cgroups.get(&id).map(String::as_str))
        .collect();
    match paths.len() {
        1 => paths.into_iter().next(),
        _ => None,
    }
}

/// The workload that owns a namespace: the one all its TCP-holding
/// processes share; `None` when they have none, several, or there are none.
/// Containers of one pod share its namespace: when they differ, the pod is
/// the workload, without a container, in the cgroup that holds them all.
pub fn of_namespace<'a>(
    mut workloads: impl Iterator<Item = Option<&'a Workload>>,
) -> Option<Workload> {
    let mut shared = workloads.next()??.clone();
    for w in workloads {
        let w = w.filter(|w| w.kind == shared.kind && w.name == shared.name)?;
        if w.container_id != shared.container_id || w.container != shared.container {
            shared.container_id = None;
            shared.container = None;
        }
        shared.cgroup = common_parent(&shared.cgroup, &w.cgroup);
    }
    Some(shared)
}

/// The deepest cgroup both paths are in.
fn common_parent(a: &str, b: &str) -> String {
    let same: Vec<&str> = a
        .split('/')
        .zip(b.split('/'))
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect();
    match same.join("/") {
        p if p.is_empty() => "/".to_string(),
        p => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::WorkloadKind;

    fn unit(name: &str) -> Workload {
        Workload {
            kind: WorkloadKind::Systemd,
            name: name.to_string(),
            container_id: None,
            pod: None,
            namespace: None,
            container: None,
            cgroup: format!("/system.slice/{name}"),
        }
    }

    fn backlog() -> Option<Snapshot> {
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/backlog.json");
        Snapshot::load(std::path::Path::new(fixture)).ok()
    }

    const POD: &str = "/kubepods/burstable/pod1/\
                       0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// The queue of a listener whose owner is not visible is still the
    /// workload of the cgroup its connections carry; with the owner visible,
    /// the owner's (named from metadata) wins.
    #[test]
    fn connections_nobody_accepted_are_their_cgroups() {
        let Some(mut s) = backlog() else {
            unreachable!("the fixture loads")
        };
        for sock in s.sockets.iter_mut().filter(|x| x.inode() == 0) {
            sock.edit(|sock| sock.cgroup_id = Some(77));
        }
        s.cgroups.insert(77, POD.to_string());
        let owned = s.clone();
        s.processes.clear();
        let report = crate::report::Report::build(&s, crate::diagnose::Thresholds::default());
        let queue = report
            .findings
            .iter()
            .find(|f| f.kind == "accept_queue_full");
        let w = queue.and_then(|f| f.workload.as_ref());
        assert_eq!(
            w.map(|w| (w.kind, w.cgroup.as_str())),
            Some((WorkloadKind::Containerd, POD))
        );

        let mut owned = owned;
        let named = Workload {
            name: "shop/cart".into(),
            cgroup: POD.into(),
            ..unit("x")
        };
        for p in &mut owned.processes {
            p.workload = Some(named.clone());
        }
        let report = crate::report::Report::build(&owned, crate::diagnose::Thresholds::default());
        assert!(
            report
                .findings
                .iter()
                .all(|f| f.pid.is_none() || f.workload.as_ref() == Some(&named))
        );
        assert!(report.findings.iter().any(|f| f.workload.is_some()));
    }

    #[test]
    fn a_namespace_is_a_workloads_when_all_share_it() {
        let (a, b) = (unit("a.service"), unit("b.service"));
        assert_eq!(
            of_namespace([Some(&a), Some(&a)].into_iter()),
            Some(a.clone())
        );
        assert_eq!(of_namespace([Some(&a), Some(&b)].into_iter()), None);
        assert_eq!(of_namespace([Some(&a), None].into_iter()), None);
        assert_eq!(of_namespace([None, Some(&a)].into_iter()), None);
        assert_eq!(of_namespace(std::iter::empty()), None);
        let container = |c: &str| Workload {
            container: Some(c.into()),
            cgroup: format!("/kubepods/pod1/{c}"),
            ..unit("shop/cart")
        };
        let (app, sidecar) = (container("app"), container("proxy"));
        let pod = of_namespace([Some(&app), Some(&sidecar)].into_iter());
        assert_eq!(
            pod.map(|w| (w.container, w.cgroup)),
            Some((None, "/kubepods/pod1".to_string()))
        );
    }
}

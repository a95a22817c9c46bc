//! Filters (`--pid`, `--port`, `--state`, `--workload`) narrow what a report shows, never
//! what it judges. A finding belongs to a filter when any socket or process
//! it counts matches — `fd_exhaustion` on a pile of CLOSE_WAIT sockets
//! belongs to `--state CLOSE_WAIT` and to the listener's `--port` — and what
//! the filter leaves out is counted in the report (`filtered`), with the
//! worst severity among it. The report's status stays that of every finding.
//! A `--workload` glob (`*`, `?`) matches a workload's name, pod, container
//! or container id; a finding is of it when its workload is. An incident
//! stays whole: a root cause is shown with its consequences when any of
//! them is of the filter.

use crate::diagnose::{Finding, Severity};
use crate::report::{Filtered, Report};
use crate::snapshot::{Snapshot, Workload};
use crate::tcp::TcpState;
use std::collections::HashMap;

/// What to narrow a report to; empty lists keep everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub pids: Vec<u32>,
    pub ports: Vec<u16>,
    pub states: Vec<TcpState>,
    /// Globs on the workload's name, pod, container or container id.
    pub workloads: Vec<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty()
            && self.ports.is_empty()
            && self.states.is_empty()
            && self.workloads.is_empty()
    }

    /// The filter as the command line spells it.
    pub fn describe(&self) -> String {
        let pids = self.pids.iter().map(|p| format!("--pid {p}"));
        let ports = self.ports.iter().map(|p| format!("--port {p}"));
        let states = self.states.iter().map(|s| format!("--state {}", s.name()));
        let workloads = self.workloads.iter().map(|w| format!("--workload {w}"));
        pids.chain(ports)
            .chain(states)
            .chain(workloads)
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn pid_ok(&self, pid: Option<u32>) -> bool {
        self.pids.is_empty() || pid.is_some_and(|p| self.pids.contains(&p))
    }

    fn workload_ok(&self, w: Option<&Workload>) -> bool {
        self.workloads.is_empty()
            || w.is_some_and(|w| {
                let names = [Some(&w.name), w.pod.as_ref(), w.container.as_ref()];
                let ids = [w.container_id.as_ref()];
                names
                    .into_iter()
                    .chain(ids)
                    .flatten()
                    .any(|n| self.workloads.iter().any(|g| glob(g, n)))
            })
    }

    /// Whether the finding, or any socket it counts, is of the filter.
    fn matches(&self, f: &Finding, snapshot: &Snapshot) -> bool {
        let sockets = || f.sockets.iter().filter_map(|&i| snapshot.sockets.get(i));
        let pid_ok = self.pid_ok(f.pid) || (f.peer_pid.is_some() && self.pid_ok(f.peer_pid));
        let port_ok = self.ports.is_empty()
            || [f.local, f.remote]
                .into_iter()
                .flatten()
                .chain(sockets().flat_map(|s| [s.local(), s.remote()]))
                .any(|a| self.ports.contains(&a.port()));
        let state_ok = self.states.is_empty()
            || f.state
                .into_iter()
                .chain(sockets().map(|s| s.state()))
                .any(|st| self.states.contains(&st));
        pid_ok && port_ok && state_ok && self.workload_ok(f.workload.as_ref())
    }

    /// Keeps the findings and processes of the filter in `report` (of
    /// `snapshot`), and counts what it left out.
    pub fn narrow(&self, report: &mut Report, snapshot: &Snapshot) {
        if self.is_empty() {
            return;
        }
        let keep = whole_incidents(&report.findings, |f| self.matches(f, snapshot));
        let (kept, hidden): (Vec<_>, Vec<_>) = std::mem::take(&mut report.findings)
            .into_iter()
            .zip(keep)
            .partition(|(_, k)| *k);
        report.findings = kept.into_iter().map(|(f, _)| f).collect();
        let hidden: Vec<Finding> = hidden.into_iter().map(|(f, _)| f).collect();
        let before = report.processes.len();
        report
            .processes
            .retain(|p| self.pid_ok(Some(p.pid)) && self.workload_ok(p.workload.as_ref()));
        report.filtered = Some(Filtered {
            filter: self.describe(),
            findings: hidden.len() as u64,
            problems: hidden
                .iter()
                .filter(|f| f.caused_by.is_none() && f.severity >= Severity::Warning)
                .count() as u64,
            worst: hidden.iter().map(|f| f.severity).max(),
            processes: (before - report.processes.len()) as u64,
        });
    }
}

/// Which findings to keep: those of every incident (a root cause and all it
/// causes) that has one finding `matching`, so that a filter never shows a
/// consequence without its cause, nor a cause without what it causes.
fn whole_incidents(findings: &[Finding], matching: impl Fn(&Finding) -> bool) -> Vec<bool> {
    let at: HashMap<&str, usize> = findings
        .iter()
        .enumerate()
        .map(|(i, f)| (f.id.as_str(), i))
        .collect();
    let root = |mut i: usize| {
        for _ in 0..findings.len() {
            match findings[i].caused_by.as_deref().and_then(|c| at.get(c)) {
                Some(&c) => i = c,
                None => break,
            }
        }
        i
    };
    let roots: Vec<usize> = (0..findings.len()).map(root).collect();
    let mut wanted = vec![false; findings.len()];
    for (i, f) in findings.iter().enumerate() {
        if matching(f) {
            wanted[roots[i]] = true;
        }
    }
    roots.iter().map(|&r| wanted[r]).collect()
}

/// Whether `text` matches `pattern`, where `*` stands for any run of
/// characters and `?` for one; everything else for itself.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative matching with one backtrack point: the last `*` seen.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        match p.get(i) {
            Some('*') => {
                star = Some((i, j));
                i += 1;
            }
            Some(&c) if c == '?' || c == t[j] => {
                i += 1;
                j += 1;
            }
            _ => match star {
                Some((si, sj)) => {
                    star = Some((si, sj + 1));
                    i = si + 1;
                    j = sj + 1;
                }
                None => return false,
            },
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_names() {
        for (pattern, text) in [
            ("shop/*", "shop/cart-7d9f8"),
            ("*cart*", "shop/cart-7d9f8"),
            ("nginx.service", "nginx.service"),
            ("ng?nx.*", "nginx.service"),
            ("*", ""),
            ("a*b*c", "aXbYbZc"),
            ("0123*", "0123456789abcdef"),
        ] {
            assert!(glob(pattern, text), "{pattern} {text}");
        }
        for (pattern, text) in [
            ("shop/*", "billing/cart"),
            ("nginx", "nginx.service"),
            ("?", ""),
            ("a*c", "abcd"),
            ("cart", "shop/cart"),
        ] {
            assert!(!glob(pattern, text), "{pattern} {text}");
        }
    }
}

//! Filters (`--pid`, `--port`, `--state`) narrow what a report shows, never
//! what it judges. A finding belongs to a filter when any socket or process
//! it counts matches — `fd_exhaustion` on a pile of CLOSE_WAIT sockets
//! belongs to `--state CLOSE_WAIT` and to the listener's `--port` — and what
//! the filter leaves out is counted in the report (`filtered`), with the
//! worst severity among it. The report's status stays that of every finding.

use crate::diagnose::Finding;
use crate::report::{Filtered, Report};
use crate::snapshot::Snapshot;
use crate::tcp::TcpState;

/// What to narrow a report to; empty lists keep everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub pids: Vec<u32>,
    pub ports: Vec<u16>,
    pub states: Vec<TcpState>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty() && self.ports.is_empty() && self.states.is_empty()
    }

    /// The filter as the command line spells it.
    pub fn describe(&self) -> String {
        let pids = self.pids.iter().map(|p| format!("--pid {p}"));
        let ports = self.ports.iter().map(|p| format!("--port {p}"));
        let states = self.states.iter().map(|s| format!("--state {}", s.name()));
        pids.chain(ports)
            .chain(states)
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn pid_ok(&self, pid: Option<u32>) -> bool {
        self.pids.is_empty() || pid.is_some_and(|p| self.pids.contains(&p))
    }

    /// Whether the finding, or any socket it counts, is of the filter.
    fn matches(&self, f: &Finding, snapshot: &Snapshot) -> bool {
        let sockets = || f.sockets.iter().filter_map(|&i| snapshot.sockets.get(i));
        let pid_ok = self.pid_ok(f.pid) || (f.peer_pid.is_some() && self.pid_ok(f.peer_pid));
        let port_ok = self.ports.is_empty()
            || [f.local, f.remote]
                .into_iter()
                .flatten()
                .chain(sockets().flat_map(|s| [s.local, s.remote]))
                .any(|a| self.ports.contains(&a.port()));
        let state_ok = self.states.is_empty()
            || f.state
                .into_iter()
                .chain(sockets().map(|s| s.state))
                .any(|st| self.states.contains(&st));
        pid_ok && port_ok && state_ok
    }

    /// Keeps the findings and processes of the filter in `report` (of
    /// `snapshot`), and counts what it left out.
    pub fn narrow(&self, report: &mut Report, snapshot: &Snapshot) {
        if self.is_empty() {
            return;
        }
        let (kept, hidden): (Vec<Finding>, Vec<Finding>) = std::mem::take(&mut report.findings)
            .into_iter()
            .partition(|f| self.matches(f, snapshot));
        report.findings = kept;
        let before = report.processes.len();
        report.processes.retain(|p| self.pid_ok(Some(p.pid)));
        report.filtered = Some(Filtered {
            filter: self.describe(),
            findings: hidden.len() as u64,
            worst: hidden.iter().map(|f| f.severity).max(),
            processes: (before - report.processes.len()) as u64,
        });
    }
}

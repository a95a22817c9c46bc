//! The report: a snapshot's diagnosis in the shape of connleak's JSON contract
//! (`schema_version` 1). Monitoring parses it, so fields are only ever added,
//! never renamed or removed. Every renderer (table, JSON) works from this one
//! value, built without reading the clock or the system.

use crate::diagnose::{
    Finding, Index, Severity, Span, Thresholds, Trend, Window, diagnose_indexed,
};
use crate::snapshot::{Netns, Runtime, Snapshot, SocketSource, Unreadable};
use crate::tcp::TcpState;
use serde::Serialize;
use std::collections::BTreeMap;

pub mod workloads;

pub const SCHEMA_VERSION: u32 = 1;

/// The overall verdict: the worst finding's severity, `Ok` when none is a warning or worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Critical,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub status: Status,
    /// RFC 3339, UTC.
    pub taken_at: String,
    pub host: Option<String>,
    pub netns: Netns,
    /// With `--all-netns`, the workload that owns the namespace (the one all
    /// its TCP-holding processes share), when one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns_workload: Option<crate::snapshot::Workload>,
    pub kernel: Option<String>,
    pub source: SocketSource,
    pub duration_ms: u64,
    pub summary: Summary,
    pub processes: Vec<ProcessReport>,
    pub findings: Vec<Finding>,
    pub unreadable: Unreadable,
    /// The sample window, when several samples were taken.
    #[serde(rename = "trend", skip_serializing_if = "Option::is_none")]
    pub window: Option<Span>,
    /// The trace of a traced run (`connleak trace`, `watch --trace`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceSummary>,
    /// What a filter (`--pid`, `--port`, `--state`, `--workload`) left out, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filtered: Option<Filtered>,
    /// The namespace's kernel counters, for the Prometheus renderer (not in the JSON).
    #[serde(skip)]
    pub counters: BTreeMap<String, BTreeMap<String, i64>>,
}

/// What a traced run recorded: births of TCP sockets by `connect()` and
/// `accept()` on the whole host, and those it lost (its maps were full).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TraceSummary {
    /// Seconds since tracing started.
    pub seconds: f64,
    pub births: u64,
    pub lost: u64,
}

/// What a filter left out of a report: the report says so, so that a
/// filter never hides a problem, and its status stays that of everything.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Filtered {
    /// The filter as given on the command line (`--port 7007 --state CLOSE_WAIT`).
    pub filter: String,
    /// Findings outside the filter, and the worst of them.
    pub findings: u64,
    /// Of them, the root causes at warning or worse: the problems outside the filter.
    pub problems: u64,
    pub worst: Option<Severity>,
    /// Processes outside the filter.
    pub processes: u64,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub sockets: u64,
    pub states: BTreeMap<TcpState, u64>,
    /// Sockets no visible process holds (TIME_WAIT, not yet accepted, or owners we could not read).
    pub unowned: u64,
    /// Of them, those some process holds (an fd names them) that could not be
    /// read: denied, hidden, or exited meanwhile (absent when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub held_unseen: u64,
    /// Of them, those their process closed while the kernel still finishes
    /// the close (FIN-WAIT-1, FIN-WAIT-2, CLOSING, LAST-ACK with no fd):
    /// orphans, not connections waiting to be accepted (absent when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub orphaned: u64,
}

#[derive(Debug, Serialize)]
pub struct ProcessReport {
    pub pid: u32,
    pub comm: String,
    pub cmdline: String,
    pub uid: Option<u32>,
    pub states: BTreeMap<TcpState, u64>,
    pub fds: u32,
    /// Soft RLIMIT_NOFILE; `null` when unlimited or unreadable.
    pub fd_limit: Option<u64>,
    pub threads: Option<u32>,
    /// The systemd unit, container or pod it runs in; `null` in the root cgroup.
    pub workload: Option<crate::snapshot::Workload>,
    /// The runtime it runs on (`jvm`, `go`, `node`, `python`, `nginx`), when recognised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<Runtime>,
    /// The connection-pool libraries seen in it (`hikaricp`, `okhttp`, `libpq`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub libraries: Vec<crate::snapshot::Library>,
    /// TCP sockets it holds that the kernel closed (reset, timeout) and
    /// unhashed: in no state count above (absent when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub closed_tcp_fds: u32,
    /// Its socket count over the sample window, when several samples were taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trend: Option<Trend>,
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

impl Report {
    /// The report of a single sample.
    pub fn build(snapshot: &Snapshot, thresholds: Thresholds) -> Report {
        Report::build_in(snapshot, thresholds, &Window::default())
    }

    /// The report of `snapshot`, the newest sample of `window`.
    pub fn build_in(snapshot: &Snapshot, thresholds: Thresholds, window: &Window) -> Report {
        let index = Index::new(snapshot);
        let found = diagnose_indexed(snapshot, &index, thresholds, window);
        let mut findings = crate::link::link(snapshot, &index, found);
        workloads::attribute(&mut findings, snapshot);
        let status = status_of(&findings);
        let states: BTreeMap<TcpState, u64> = TcpState::ALL
            .into_iter()
            .map(|st| (st, index.count(st)))
            .filter(|&(_, n)| n > 0)
            .collect();
        let mut processes: Vec<ProcessReport> = snapshot
            .processes
            .iter()
            .map(|p| {
                let states = index.states_of(p.pid);
                let trend = window.process_trend(p.pid, states.values().sum());
                ProcessReport {
                    pid: p.pid,
                    comm: p.comm.clone(),
                    cmdline: p.cmdline.clone(),
                    uid: p.uid,
                    states,
                    fds: p.fds,
                    fd_limit: p.fd_soft_limit,
                    threads: p.threads,
                    workload: p.workload.clone(),
                    runtime: p.runtime,
                    libraries: p.libraries.clone(),
                    closed_tcp_fds: p.closed_tcp_fds,
                    trend,
                }
            })
            .collect();
        let close_wait =
            |p: &ProcessReport| p.states.get(&TcpState::CloseWait).copied().unwrap_or(0);
        let total = |p: &ProcessReport| p.states.values().sum::<u64>();
        processes.sort_by(|a, b| {
            close_wait(b)
                .cmp(&close_wait(a))
                .then(b.closed_tcp_fds.cmp(&a.closed_tcp_fds))
                .then(total(b).cmp(&total(a)))
                .then(a.pid.cmp(&b.pid))
        });
        let sockets = snapshot.sockets.len() as u64;
        Report {
            schema_version: SCHEMA_VERSION,
            status,
            taken_at: rfc3339(snapshot.meta.taken_at_ms),
            host: snapshot.meta.host.clone(),
            netns: snapshot.meta.netns.clone(),
            netns_workload: None,
            kernel: snapshot.meta.kernel_release.clone(),
            source: snapshot.meta.source,
            duration_ms: snapshot.meta.duration_ms,
            summary: Summary {
                sockets,
                states,
                unowned: sockets.saturating_sub(index.owned()),
                held_unseen: (0..snapshot.sockets.len())
                    .filter(|&i| snapshot.sockets[i].inode() != 0 && index.owner(i).is_none())
                    .count() as u64,
                orphaned: snapshot
                    .sockets
                    .iter()
                    .filter(|s| s.inode() == 0 && s.state().is_closing_after_close())
                    .count() as u64,
            },
            processes,
            findings,
            unreadable: snapshot.unreadable.clone(),
            counters: snapshot.kernel.counters.clone(),
            window: window.span(snapshot),
            trace: None,
            filtered: None,
        }
    }
}

/// A namespace's report with the label it is shown under (`None`: the
/// current namespace or a saved snapshot): what every renderer takes.
#[derive(Debug, Clone, Copy)]
pub struct Labelled<'a> {
    pub label: Option<&'a str>,
    pub report: &'a Report,
}

/// The worst status of several reports.
pub fn worst(reports: &[Labelled]) -> Status {
    reports
        .iter()
        .map(|l| l.report.status)
        .max()
        .unwrap_or(Status::Ok)
}

impl Report {
    /// Labels the report's namespace by the workload all its processes share.
    pub fn label_namespace(&mut self) {
        self.netns_workload =
            workloads::of_namespace(self.processes.iter().map(|p| p.workload.as_ref()));
    }

    /// Remembers this report's sample in `window`, for the next sample's trend.
    pub fn record(&self, snapshot: &Snapshot, window: &mut Window) {
        let totals = self
            .processes
            .iter()
            .map(|p| (p.pid, p.states.values().sum()));
        window.record(snapshot, &self.findings, totals);
    }
}

fn status_of(findings: &[Finding]) -> Status {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Critical) => Status::Critical,
        Some(Severity::Warning) => Status::Warning,
        _ => Status::Ok,
    }
}

/// Milliseconds since the epoch as RFC 3339 UTC (`2026-11-25T04:02:11.123Z`).
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_579_331_123), "2026-11-25T04:02:11.123Z");
    }
}

//! Prometheus' text exposition format, for node_exporter's textfile collector
//! and for `connleak serve`'s `/metrics`: socket counts by state (and by owning process, for the top processes
//! only, to bound cardinality), findings by kind, severity and workload (the
//! unit, container or pod, empty for none), fd use against
//! the limit, the kernel counters that betray these states, and how the
//! collection went; a running agent adds its own state (its version, when it
//! last collected, how many collections failed). Label values are escaped as the format requires; process
//! names are untrusted.

use super::text::is_bidi_control;
use crate::report::{Labelled, Report};
use crate::snapshot::WATCHED_COUNTERS;
use crate::tcp::TcpState;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

/// Processes that get per-process series: the ones with the most sockets.
const TOP_PROCESSES: usize = 10;

/// Escapes a label value: backslash, double quote and newline as the format
/// requires, and every other control character (and bidirectional control)
/// as visible text, a backslash-escaped `\\x1b` that parsers keep as the four
/// characters `\x1b`: `cat` of the file never moves a terminal.
pub fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x100 && c.is_control() => {
                let _ = write!(out, "\\\\x{:02x}", c as u32);
            }
            c if c.is_control() || is_bidi_control(c) => {
                let _ = write!(out, "\\\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// One metric family: its HELP and TYPE lines, then its samples.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, String)>,
}

impl Family {
    fn gauge(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind: "gauge",
            samples: Vec::new(),
        }
    }

    fn counter(name: &'static str, help: &'static str) -> Family {
        Family {
            kind: "counter",
            ..Family::gauge(name, help)
        }
    }

    fn add(&mut self, labels: String, value: impl ToString) {
        self.samples.push((labels, value.to_string()));
    }
}

/// A namespace's label set, to which each sample adds its own labels.
struct Labels(Option<String>);

impl Labels {
    fn of(namespace: Option<&str>) -> Labels {
        Labels(namespace.map(|n| format!("netns=\"{}\"", label(n))))
    }

    /// `{netns="…",extra}`, or nothing when both are empty.
    fn with(&self, extra: &str) -> String {
        let parts: Vec<&str> = self
            .0
            .iter()
            .map(String::as_str)
            .chain(Some(extra).filter(|e| !e.is_empty()))
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", parts.join(","))
        }
    }
}

/// Every family connleak exports, in the order they are written.
struct Exposition {
    up: Family,
    status: Family,
    sockets: Family,
    unowned: Family,
    process_sockets: Family,
    process_fds: Family,
    process_fd_limit: Family,
    process_closed: Family,
    findings: Family,
    root_findings: Family,
    finding_sockets: Family,
    netns_workload: Family,
    counters: Family,
    unreadable: Family,
    duration: Family,
}

impl Exposition {
    fn new() -> Exposition {
        Exposition {
            up: Family::gauge("connleak_up", "1 when the socket table could be read."),
            status: Family::gauge(
                "connleak_status",
                "Worst finding: 0 ok, 1 warning, 2 critical.",
            ),
            sockets: Family::gauge("connleak_sockets", "TCP sockets by state."),
            unowned: Family::gauge(
                "connleak_unowned_sockets",
                "TCP sockets no visible process holds.",
            ),
            process_sockets: Family::gauge(
                "connleak_process_sockets",
                "TCP sockets of the top processes, by state.",
            ),
            process_fds: Family::gauge(
                "connleak_process_fds",
                "Open file descriptors of the top processes.",
            ),
            process_fd_limit: Family::gauge(
                "connleak_process_fd_limit",
                "Soft RLIMIT_NOFILE of the top processes.",
            ),
            process_closed: Family::gauge(
                "connleak_process_closed_tcp_fds",
                "TCP sockets the kernel closed (reset, timeout) that the process still holds.",
            ),
            findings: Family::gauge(
                "connleak_findings",
                "Findings by kind, severity and workload.",
            ),
            root_findings: Family::gauge(
                "connleak_root_findings",
                "Findings that are root causes (no other finding explains them), by kind, \
                 severity and workload; the rest are their consequences.",
            ),
            finding_sockets: Family::gauge(
                "connleak_finding_sockets",
                "Sockets (or fds) the findings count, by kind, severity and workload.",
            ),
            netns_workload: Family::gauge(
                "connleak_netns_workload",
                "1 for the workload that owns a network namespace (--all-netns).",
            ),
            counters: Family::counter(
                "connleak_kernel_tcp_events_total",
                "Kernel TCP counters of the network namespace, since it was created.",
            ),
            unreadable: Family::gauge(
                "connleak_unreadable_processes",
                "Processes whose fds could not be read, by reason.",
            ),
            duration: Family::gauge(
                "connleak_collection_duration_seconds",
                "Time taken to collect the snapshot.",
            ),
        }
    }

    /// One namespace's samples, in every family.
    fn add(&mut self, r: &Report, l: &Labels) {
        self.up.add(l.with(""), 1);
        self.status.add(l.with(""), r.status as u8);
        for st in TcpState::ALL {
            let n = r.summary.states.get(&st).copied().unwrap_or(0);
            self.sockets
                .add(l.with(&format!("state=\"{}\"", st.name())), n);
        }
        self.unowned.add(l.with(""), r.summary.unowned);
        self.add_processes(r, l);
        self.add_findings(r, l);
        self.add_namespace(r, l);
        for (group, name) in WATCHED_COUNTERS {
            if let Some(v) = r.counters.get(*group).and_then(|g| g.get(*name)) {
                let labels = l.with(&format!("group=\"{group}\",name=\"{name}\""));
                self.counters.add(labels, v);
            }
        }
        let u = &r.unreadable;
        self.unreadable
            .add(l.with("reason=\"denied\""), u.processes_denied);
        self.unreadable
            .add(l.with("reason=\"vanished\""), u.processes_vanished);
        self.duration
            .add(l.with(""), format!("{:.3}", r.duration_ms as f64 / 1000.0));
    }

    /// Per-process series, for the processes with the most sockets only.
    fn add_processes(&mut self, r: &Report, l: &Labels) {
        let mut top: Vec<_> = r.processes.iter().collect();
        top.sort_by_key(|p| std::cmp::Reverse(p.states.values().sum::<u64>()));
        for p in top.into_iter().take(TOP_PROCESSES) {
            let who = format!(
                "pid=\"{}\",comm=\"{}\",workload=\"{}\"",
                p.pid,
                label(&p.comm),
                label(workload_name(p.workload.as_ref()))
            );
            for (st, n) in &p.states {
                let labels = l.with(&format!("{who},state=\"{}\"", st.name()));
                self.process_sockets.add(labels, n);
            }
            self.process_fds.add(l.with(&who), p.fds);
            if let Some(limit) = p.fd_limit {
                self.process_fd_limit.add(l.with(&who), limit);
            }
        }
        let mut closed: Vec<_> = r
            .processes
            .iter()
            .filter(|p| p.closed_tcp_fds > 0)
            .collect();
        closed.sort_by_key(|p| std::cmp::Reverse(p.closed_tcp_fds));
        for p in closed.into_iter().take(TOP_PROCESSES) {
            let who = format!("pid=\"{}\",comm=\"{}\"", p.pid, label(&p.comm));
            self.process_closed.add(l.with(&who), p.closed_tcp_fds);
        }
    }

    /// Findings and the sockets they count, by kind, severity and workload.
    fn add_findings(&mut self, r: &Report, l: &Labels) {
        let mut by_kind: BTreeMap<(&str, &str, &str), (u64, u64, u64)> = BTreeMap::new();
        for x in &r.findings {
            let key = (
                x.kind,
                severity_name(x.severity),
                workload_name(x.workload.as_ref()),
            );
            let e = by_kind.entry(key).or_default();
            e.0 += 1;
            e.1 += u64::from(x.caused_by.is_none());
            e.2 += x.count;
        }
        for ((kind, sev, workload), (n, roots, count)) in by_kind {
            let labels = l.with(&format!(
                "kind=\"{kind}\",severity=\"{sev}\",workload=\"{}\"",
                label(workload)
            ));
            self.findings.add(labels.clone(), n);
            self.root_findings.add(labels.clone(), roots);
            self.finding_sockets.add(labels, count);
        }
    }

    /// The workload that owns a namespace other than connleak's own, as
    /// its own series: a `workload` label on the namespace's every series
    /// would clash with the process and finding series' own.
    fn add_namespace(&mut self, r: &Report, l: &Labels) {
        if let Some(w) = &r.netns_workload {
            let labels = l.with(&format!("workload=\"{}\"", label(&w.name)));
            self.netns_workload.add(labels, 1);
        }
    }

    fn families(&self) -> [&Family; 15] {
        [
            &self.up,
            &self.status,
            &self.sockets,
            &self.unowned,
            &self.process_sockets,
            &self.process_fds,
            &self.process_fd_limit,
            &self.process_closed,
            &self.findings,
            &self.root_findings,
            &self.finding_sockets,
            &self.netns_workload,
            &self.counters,
            &self.unreadable,
            &self.duration,
        ]
    }
}

/// Writes the reports (one per network namespace) as one exposition.
pub fn write(out: &mut impl Write, reports: &[Labelled]) -> io::Result<()> {
    write_families(out, exposition(reports).families())
}

/// What a running agent (`connleak serve`) says of itself beside its reports.
#[derive(Debug, Clone, Copy)]
pub struct Agent<'a> {
    pub version: &'a str,
    /// When the last collection that succeeded was taken, seconds since the
    /// epoch (`None`: none yet).
    pub last_collection: Option<f64>,
    /// Collections (and, with `--all-netns`, namespaces) that failed since it started.
    pub errors: u64,
    /// The last collection failed: `connleak_up` is 0 and no report is shown.
    pub failing: bool,
}

/// A running agent's exposition: the reports of its last collection (none
/// when it failed, or before the first) and the agent's own series.
pub fn write_agent(out: &mut impl Write, reports: &[Labelled], agent: &Agent) -> io::Result<()> {
    let mut exposition = exposition(reports);
    if agent.failing {
        exposition.up.add(String::new(), 0);
    }
    let mut build = Family::gauge(
        "connleak_build_info",
        "1, labelled with the version of connleak that serves these metrics.",
    );
    build.add(format!("{{version=\"{}\"}}", label(agent.version)), 1);
    let mut last = Family::gauge(
        "connleak_last_collection_timestamp_seconds",
        "When the last collection that succeeded was taken, seconds since the epoch.",
    );
    if let Some(at) = agent.last_collection {
        last.add(String::new(), format!("{at:.3}"));
    }
    let mut errors = Family::counter(
        "connleak_collection_errors_total",
        "Collections that failed (and namespaces that could not be read) since the agent started.",
    );
    errors.add(String::new(), agent.errors);
    let families = exposition.families().into_iter();
    write_families(out, families.chain([&build, &last, &errors]))
}

/// Every family of the reports, one namespace after the other.
fn exposition(reports: &[Labelled]) -> Exposition {
    let mut exposition = Exposition::new();
    for l in reports {
        exposition.add(l.report, &Labels::of(l.label));
    }
    exposition
}

/// The families that have samples: HELP, TYPE, then each sample.
fn write_families<'a>(
    out: &mut impl Write,
    families: impl IntoIterator<Item = &'a Family>,
) -> io::Result<()> {
    let mut text = String::new();
    for fam in families.into_iter().filter(|f| !f.samples.is_empty()) {
        let _ = writeln!(text, "# HELP {} {}", fam.name, fam.help);
        let _ = writeln!(text, "# TYPE {} {}", fam.name, fam.kind);
        for (labels, value) in &fam.samples {
            let _ = writeln!(text, "{}{labels} {value}", fam.name);
        }
    }
    out.write_all(text.as_bytes())
}

/// The `workload` label's value: the workload's name, empty without one.
fn workload_name(w: Option<&crate::snapshot::Workload>) -> &str {
    w.map_or("", |w| w.name.as_str())
}

fn severity_name(s: crate::diagnose::Severity) -> &'static str {
    match s {
        crate::diagnose::Severity::Info => "info",
        crate::diagnose::Severity::Warning => "warning",
        crate::diagnose::Severity::Critical => "critical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(label("java"), "java");
        // Terminal controls become visible text, never raw bytes.
        assert_eq!(
            label("\x1b[2J \x1b]0;pwn\x07"),
            "\\\\x1b[2J \\\\x1b]0;pwn\\\\x07"
        );
        assert_eq!(label("c1\u{9b}\u{7f}\t"), "c1\\\\x9b\\\\x7f\\\\x09");
        assert_eq!(label("a\u{202e}b"), "a\\\\u{202e}b");
        assert!(!label("\x1b\x07\r\0").chars().any(char::is_control));
    }
}

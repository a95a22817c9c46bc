//! Prometheus' text exposition format, for node_exporter's textfile collector:
//! socket counts by state (and by owning process, for the top processes
//! only, to bound cardinality), findings by kind and severity, fd use against
//! the limit, the kernel counters that betray these states, and how the
//! collection went. Label values are escaped as the format requires; process
//! names are untrusted.

use super::escape::is_bidi_control;
use crate::report::Labelled;
use crate::snapshot::WATCHED_COUNTERS;
use crate::tcp::TcpState;
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

/// Writes the reports (one per network namespace) as one exposition.
pub fn write(out: &mut impl Write, reports: &[Labelled]) -> io::Result<()> {
    let fam = |name, help, kind| Family {
        name,
        help,
        kind,
        samples: Vec::new(),
    };
    let mut f = [
        fam(
            "connleak_up",
            "1 when the socket table could be read.",
            "gauge",
        ),
        fam(
            "connleak_status",
            "Worst finding: 0 ok, 1 warning, 2 critical.",
            "gauge",
        ),
        fam("connleak_sockets", "TCP sockets by state.", "gauge"),
        fam(
            "connleak_unowned_sockets",
            "TCP sockets no visible process holds.",
            "gauge",
        ),
        fam(
            "connleak_process_sockets",
            "TCP sockets of the top processes, by state.",
            "gauge",
        ),
        fam(
            "connleak_process_fds",
            "Open file descriptors of the top processes.",
            "gauge",
        ),
        fam(
            "connleak_process_fd_limit",
            "Soft RLIMIT_NOFILE of the top processes.",
            "gauge",
        ),
        fam(
            "connleak_process_closed_tcp_fds",
            "TCP sockets the kernel closed (reset, timeout) that the process still holds.",
            "gauge",
        ),
        fam(
            "connleak_findings",
            "Findings by kind and severity.",
            "gauge",
        ),
        fam(
            "connleak_finding_sockets",
            "Sockets (or fds) the findings count, by kind and severity.",
            "gauge",
        ),
        fam(
            "connleak_kernel_counter_total",
            "Kernel TCP counters of the namespace since boot.",
            "counter",
        ),
        fam(
            "connleak_unreadable_processes",
            "Processes whose fds could not be read, by reason.",
            "gauge",
        ),
        fam(
            "connleak_collection_duration_seconds",
            "Time taken to collect the snapshot.",
            "gauge",
        ),
    ];
    for &Labelled {
        label: ns,
        report: r,
    } in reports
    {
        let ns_label = ns.map(|n| format!("netns=\"{}\"", label(n)));
        let labels = |extra: &str| -> String {
            let parts: Vec<&str> = ns_label
                .iter()
                .map(String::as_str)
                .chain(Some(extra).filter(|e| !e.is_empty()))
                .collect();
            if parts.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", parts.join(","))
            }
        };
        let [
            up,
            status,
            sockets,
            unowned,
            psock,
            pfds,
            plimit,
            pclosed,
            findings,
            fsocks,
            counters,
            unreadable,
            duration,
        ] = &mut f;
        up.samples.push((labels(""), "1".into()));
        status
            .samples
            .push((labels(""), (r.status as u8).to_string()));
        for st in TcpState::ALL {
            let n = r.summary.states.get(&st).copied().unwrap_or(0);
            sockets
                .samples
                .push((labels(&format!("state=\"{}\"", st.name())), n.to_string()));
        }
        unowned
            .samples
            .push((labels(""), r.summary.unowned.to_string()));
        let mut top: Vec<_> = r.processes.iter().collect();
        top.sort_by_key(|p| std::cmp::Reverse(p.states.values().sum::<u64>()));
        for p in top.into_iter().take(TOP_PROCESSES) {
            let who = format!("pid=\"{}\",comm=\"{}\"", p.pid, label(&p.comm));
            for (st, n) in &p.states {
                psock.samples.push((
                    labels(&format!("{who},state=\"{}\"", st.name())),
                    n.to_string(),
                ));
            }
            pfds.samples.push((labels(&who), p.fds.to_string()));
            if let Some(l) = p.fd_limit {
                plimit.samples.push((labels(&who), l.to_string()));
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
            pclosed
                .samples
                .push((labels(&who), p.closed_tcp_fds.to_string()));
        }
        let mut by_kind: std::collections::BTreeMap<(&str, &str), (u64, u64)> = Default::default();
        for x in &r.findings {
            let e = by_kind
                .entry((x.kind, severity_name(x.severity)))
                .or_default();
            e.0 += 1;
            e.1 += x.count;
        }
        for ((kind, sev), (n, count)) in by_kind {
            let l = labels(&format!("kind=\"{kind}\",severity=\"{sev}\""));
            findings.samples.push((l.clone(), n.to_string()));
            fsocks.samples.push((l, count.to_string()));
        }
        for (group, name) in WATCHED_COUNTERS {
            if let Some(v) = r.counters.get(*group).and_then(|g| g.get(*name)) {
                counters.samples.push((
                    labels(&format!("group=\"{group}\",name=\"{name}\"")),
                    v.to_string(),
                ));
            }
        }
        unreadable.samples.push((
            labels("reason=\"denied\""),
            r.unreadable.processes_denied.to_string(),
        ));
        unreadable.samples.push((
            labels("reason=\"vanished\""),
            r.unreadable.processes_vanished.to_string(),
        ));
        duration
            .samples
            .push((labels(""), format!("{:.3}", r.duration_ms as f64 / 1000.0)));
    }
    let mut text = String::new();
    for fam in f.iter().filter(|f| !f.samples.is_empty()) {
        let _ = writeln!(text, "# HELP {} {}", fam.name, fam.help);
        let _ = writeln!(text, "# TYPE {} {}", fam.name, fam.kind);
        for (labels, value) in &fam.samples {
            let _ = writeln!(text, "{}{labels} {value}", fam.name);
        }
    }
    out.write_all(text.as_bytes())
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

//! `connleak check`: one line in the monitoring-plugin format, for cron and
//! Nagios/Icinga/Sensu: `CONNLEAK STATUS - summary | perfdata`, then (with
//! `-v`) one finding a line. Quiet about healthy details.

use super::text::escape;
use crate::diagnose::{Finding, Severity, Thresholds, plural};
use crate::report::{Labelled, Status, worst};
use crate::snapshot::endpoint;
use crate::tcp::TcpState;
use std::io::{self, Write};

/// How many findings the status line names.
const NAMED: usize = 3;

/// The plugin exit code of a status.
pub fn exit_code(s: Status) -> u8 {
    match s {
        Status::Ok => 0,
        Status::Warning => 1,
        Status::Critical => 2,
    }
}

pub fn write(
    out: &mut impl Write,
    reports: &[Labelled],
    t: Thresholds,
    verbose: bool,
) -> io::Result<()> {
    let word = match worst(reports) {
        Status::Ok => "OK",
        Status::Warning => "WARNING",
        Status::Critical => "CRITICAL",
    };
    writeln!(
        out,
        "CONNLEAK {word} - {} | {}",
        summary(reports),
        perfdata(reports, t)
    )?;
    if verbose {
        for f in reports.iter().flat_map(|l| l.report.findings.iter()) {
            let lines: Vec<String> = f.evidence.iter().map(|e| escape(e).into_owned()).collect();
            writeln!(
                out,
                "{} {}{}: {}",
                f.severity.label(),
                f.kind,
                super::workload::in_workload(f),
                lines.join("; ")
            )?;
        }
    }
    Ok(())
}

/// The text of the status line: the problems (the first few named), or that
/// there are none; what a filter left out; whose owners are unknown.
fn summary(reports: &[Labelled]) -> String {
    let findings = || {
        reports
            .iter()
            .flat_map(|l| l.report.findings.iter().map(move |f| (l, f)))
    };
    // A problem is an incident: its root cause, named with what it causes.
    let problems: Vec<_> = findings()
        .filter(|(_, f)| f.caused_by.is_none() && f.severity >= Severity::Warning)
        .collect();
    let hidden_problems: u64 = reports
        .iter()
        .filter_map(|l| l.report.filtered.as_ref())
        .map(|h| h.problems)
        .sum();
    let mut summary = if problems.is_empty() {
        let sockets: u64 = reports.iter().map(|l| l.report.summary.sockets).sum();
        match findings().count() {
            // The status is that of everything: never "no leak" beside a WARNING.
            0 if hidden_problems > 0 => format!(
                "no problem within the filter, {} outside it",
                plural(hidden_problems, "problem")
            ),
            0 => format!("no leak found in {}", plural(sockets, "TCP socket")),
            n => format!(
                "{} below the thresholds in {}",
                plural(n as u64, "finding"),
                plural(sockets, "TCP socket")
            ),
        }
    } else {
        let named: Vec<String> = problems
            .iter()
            .take(NAMED)
            .map(|(l, f)| format!("{}{}", name(l, f), causing(&l.report.findings, f)))
            .collect();
        let more = problems.len().saturating_sub(NAMED);
        format!(
            "{}: {}{}",
            plural(problems.len() as u64, "problem"),
            named.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        )
    };
    for (ns, hidden) in reports
        .iter()
        .filter_map(|l| Some((super::workload::namespace(l), l.report.filtered.as_ref()?)))
    {
        if hidden.findings > 0 {
            summary.push_str(&format!(
                "; {} outside {}{}{}",
                plural(hidden.findings, "finding"),
                escape(&hidden.filter),
                ns.as_ref()
                    .map(|n| format!(" in netns {n}"))
                    .unwrap_or_default(),
                hidden
                    .worst
                    .map(|w| format!(" (worst {})", w.label()))
                    .unwrap_or_default()
            ));
        }
    }
    // Sockets are all there unprivileged; say whose owners are not.
    let denied: u64 = reports
        .iter()
        .map(|l| u64::from(l.report.unreadable.processes_denied))
        .sum();
    if denied > 0 {
        let processes = if denied == 1 { "process" } else { "processes" };
        summary.push_str(&format!(
            "; owners of {denied} {processes} unknown (permission denied)"
        ));
    }
    summary
}

/// ", causing accept_queue_full, connect_unanswered": the kinds of what a
/// root cause causes, directly or not (each kind once).
fn causing(findings: &[Finding], root: &Finding) -> String {
    let mut ids = vec![root.id.as_str()];
    let mut kinds: Vec<&str> = Vec::new();
    // A consequence follows its cause in report order.
    for f in findings {
        if f.caused_by.as_deref().is_some_and(|c| ids.contains(&c)) {
            ids.push(&f.id);
            if !kinds.contains(&f.kind) {
                kinds.push(f.kind);
            }
        }
    }
    if kinds.is_empty() {
        String::new()
    } else {
        format!(", causing {}", kinds.join(", "))
    }
}

/// One problem as the status line names it: kind, namespace, workload and
/// owner, count, state and endpoint. The namespace is named by its workload
/// only for a finding of none (the finding's own says it). A listener's
/// count is of queued connections.
fn name(l: &Labelled, f: &Finding) -> String {
    let ns = match &f.workload {
        Some(_) => l.label.map(|n| escape(n).into_owned()),
        None => super::workload::namespace(l),
    };
    let ns = ns.map(|n| format!(" in netns {n}")).unwrap_or_default();
    let workload = f.workload.as_ref().map(super::workload::phrase);
    let who = match (workload, f.pid, &f.comm) {
        (Some(w), Some(pid), Some(comm)) => format!("{w}, pid {pid} ({}) ", escape(comm)),
        (None, Some(pid), Some(comm)) => format!("pid {pid} ({}) ", escape(comm)),
        (Some(w), ..) => format!("{w} "),
        _ => String::new(),
    };
    let place = f
        .local
        .or(f.remote)
        .map(|e| format!(" {}", endpoint(&e)))
        .unwrap_or_default();
    let state = match f.state {
        Some(TcpState::Listen) => " queued".to_string(),
        Some(s) => format!(" {}", s.name()),
        None => String::new(),
    };
    format!("{}{ns} {who}{}{state}{place}", f.kind, f.count)
}

/// Performance data: socket counts by state, CLOSE_WAIT with its thresholds.
fn perfdata(reports: &[Labelled], t: Thresholds) -> String {
    let count = |st: TcpState| {
        reports
            .iter()
            .map(|l| l.report.summary.states.get(&st).copied().unwrap_or(0))
            .sum::<u64>()
    };
    let mut perf = vec![format!(
        "close_wait={};{};{}",
        count(TcpState::CloseWait),
        t.close_wait_warn,
        t.close_wait_crit
    )];
    for st in [
        TcpState::TimeWait,
        TcpState::Established,
        TcpState::FinWait2,
        TcpState::LastAck,
        TcpState::SynRecv,
        TcpState::Listen,
    ] {
        perf.push(format!("{}={}", st.name().to_lowercase(), count(st)));
    }
    perf.push(format!(
        "sockets={}",
        reports
            .iter()
            .map(|l| l.report.summary.sockets)
            .sum::<u64>()
    ));
    perf.join(" ")
}

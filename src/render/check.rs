//! `connleak check`: one line in the monitoring-plugin format, for cron and
//! Nagios/Icinga/Sensu: `CONNLEAK STATUS - summary | perfdata`, then (with
//! `-v`) one finding a line. Quiet about healthy details.

use super::text::escape;
use crate::diagnose::{Finding, Severity, Thresholds, kind, plural};
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

/// Performance data: socket counts by state (summed over the namespaces,
/// no thresholds: no threshold grades a whole namespace's count), and the
/// worst CLOSE_WAIT group beside the thresholds that grade it.
fn perfdata(reports: &[Labelled], t: Thresholds) -> String {
    let count = |st: TcpState| {
        reports
            .iter()
            .map(|l| l.report.summary.states.get(&st).copied().unwrap_or(0))
            .sum::<u64>()
    };
    let mut perf = vec![
        format!("close_wait={}", count(TcpState::CloseWait)),
        format!(
            "close_wait_worst_group={};{};{}",
            worst_close_wait_group(reports),
            t.close_wait_warn,
            t.close_wait_crit
        ),
    ];
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

/// What `--close-wait-warn` and `--close-wait-crit` grade, at its worst: the
/// stuck CLOSE_WAIT sockets of one process on one endpoint (or, for a leak
/// spread thin, of one listener or one process in all), the largest in any
/// namespace; 0 when no socket is stuck.
fn worst_close_wait_group(reports: &[Labelled]) -> u64 {
    reports
        .iter()
        .flat_map(|l| &l.report.findings)
        .filter(|f| [kind::CLOSE_WAIT_LEAK, kind::CLOSE_WAIT_ROLLUP].contains(&f.kind))
        .map(|f| f.graded.unwrap_or(f.count))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::diagnose::Window;
    use crate::report::Report;
    use crate::snapshot::Snapshot;

    /// Regression: `close_wait=80;10;200` put the sum of two namespaces'
    /// CLOSE_WAIT sockets beside thresholds that grade one process's on one
    /// endpoint, and counted sockets too young to be stuck: graphs coloured
    /// WARNING what the status called OK.
    #[test]
    fn perfdata_thresholds_stand_beside_the_value_they_grade() {
        let leak = include_bytes!("../../tests/fixtures/leak.json");
        let snapshot = Snapshot::from_json(leak).unwrap();
        let perf = |t: Thresholds, labels: &[Option<&str>]| {
            let report = Report::build_in(&snapshot, t, &Window::keeping(1));
            let reports: Vec<Labelled> = labels
                .iter()
                .map(|&label| Labelled {
                    label,
                    report: &report,
                })
                .collect();
            (worst(&reports), perfdata(&reports, t))
        };
        let t = Thresholds::default();
        // Two namespaces of one group of 40 each: 80 in all, 40 at worst.
        let (status, two) = perf(t, &[Some("a"), Some("b")]);
        assert_eq!(status, Status::Warning);
        assert!(
            two.starts_with("close_wait=80 close_wait_worst_group=40;10;200 "),
            "{two}"
        );
        // Every socket younger than --close-wait-min-age: none stuck, OK.
        let young = Thresholds {
            close_wait_min_age: 3600,
            ..t
        };
        let (status, one) = perf(young, &[None]);
        assert_eq!(status, Status::Ok);
        assert!(
            one.starts_with("close_wait=40 close_wait_worst_group=0;10;200 "),
            "{one}"
        );
    }
}

//! `connleak check`: one line in the monitoring-plugin format, for cron and
//! Nagios/Icinga/Sensu: `CONNLEAK STATUS - summary | perfdata`, then (with
//! `-v`) one finding a line. Quiet about healthy details.

use super::escape::escape;
use crate::diagnose::{Severity, Thresholds};
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
    labelled: &[Labelled],
    t: Thresholds,
    verbose: bool,
) -> io::Result<()> {
    let status = worst(labelled);
    let reports: Vec<_> = labelled.iter().map(|l| l.report).collect();
    let word = match status {
        Status::Ok => "OK",
        Status::Warning => "WARNING",
        Status::Critical => "CRITICAL",
    };
    let problems: Vec<_> = reports
        .iter()
        .flat_map(|r| r.findings.iter())
        .filter(|f| f.severity >= Severity::Warning)
        .collect();
    let summary = if problems.is_empty() {
        let sockets: u64 = reports.iter().map(|r| r.summary.sockets).sum();
        format!("no leak found in {sockets} TCP sockets")
    } else {
        let named: Vec<String> = problems
            .iter()
            .take(NAMED)
            .map(|f| {
                let who = match (f.pid, &f.comm) {
                    (Some(pid), Some(comm)) => format!("pid {pid} ({}) ", escape(comm)),
                    _ => String::new(),
                };
                let place = f
                    .local
                    .or(f.remote)
                    .map(|e| format!(" {}", endpoint(&e)))
                    .unwrap_or_default();
                let state = f
                    .state
                    .map(|s| format!(" {}", s.name()))
                    .unwrap_or_default();
                format!("{} {who}{}{state}{place}", f.kind, f.count)
            })
            .collect();
        let more = problems.len().saturating_sub(NAMED);
        format!(
            "{} finding{}: {}{}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            named.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        )
    };
    // Sockets are all there unprivileged; say whose owners are not.
    let denied: u64 = reports
        .iter()
        .map(|r| u64::from(r.unreadable.processes_denied))
        .sum();
    let summary = if denied > 0 {
        let processes = if denied == 1 { "process" } else { "processes" };
        format!("{summary}; owners of {denied} {processes} unknown (permission denied)")
    } else {
        summary
    };
    let count = |st: TcpState| {
        reports
            .iter()
            .map(|r| r.summary.states.get(&st).copied().unwrap_or(0))
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
        reports.iter().map(|r| r.summary.sockets).sum::<u64>()
    ));
    writeln!(out, "CONNLEAK {word} - {summary} | {}", perf.join(" "))?;
    if verbose {
        for f in reports.iter().flat_map(|r| r.findings.iter()) {
            let lines: Vec<String> = f.evidence.iter().map(|e| escape(e).into_owned()).collect();
            writeln!(
                out,
                "{} {}: {}",
                f.severity.label(),
                f.kind,
                lines.join("; ")
            )?;
        }
    }
    Ok(())
}

//! The human report: findings first (what, who, how many, since when, why in
//! TCP terms, what to do), then the evidence tables. Readable in 80 columns;
//! colour only when the caller says so (a terminal, and no `NO_COLOR`); every
//! string from outside escaped.

use super::text::{escape, per_minute, sparkline, wrap};
use crate::diagnose::{Finding, Severity, plural};
use crate::report::{Labelled, Report, Status};
use crate::snapshot::SocketSource;
use crate::tcp::TcpState;
use std::io::{self, Write};

#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    pub width: u16,
    /// The live view (`watch`): a trend line under each finding that has one.
    pub live: bool,
}

impl Style {
    fn paint(&self, text: &str, sgr: &str) -> String {
        if self.color {
            format!("\x1b[{sgr}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn severity(&self, s: Severity) -> String {
        let sgr = match s {
            Severity::Critical => "1;31",
            Severity::Warning => "1;33",
            Severity::Info => "36",
        };
        self.paint(s.label(), sgr)
    }

    fn status(&self, s: Status) -> String {
        match s {
            Status::Ok => self.paint("OK", "1;32"),
            Status::Warning => self.severity(Severity::Warning),
            Status::Critical => self.severity(Severity::Critical),
        }
    }
}

/// The human report of each namespace, headed by its name when there are several.
pub fn write_all(out: &mut impl Write, reports: &[Labelled], style: Style) -> io::Result<()> {
    write_all_marking(out, reports, style, |_| {})
}

/// [`write_all`], calling `mark` with the output so far before each finding:
/// the live view learns where each one begins, to count those it cuts off.
pub fn write_all_marking<W: Write>(
    out: &mut W,
    reports: &[Labelled],
    style: Style,
    mut mark: impl FnMut(&W),
) -> io::Result<()> {
    for (i, l) in reports.iter().enumerate() {
        if let Some(label) = super::workload::namespace(l).filter(|_| reports.len() > 1) {
            if i > 0 {
                writeln!(out)?;
            }
            writeln!(out, "=== network namespace {label} ===")?;
        }
        write_marking(out, l.report, style, &mut mark)?;
    }
    Ok(())
}

/// The human report of one namespace.
pub fn write(out: &mut impl Write, r: &Report, style: Style) -> io::Result<()> {
    write_marking(out, r, style, &mut |_| {})
}

/// [`write`], calling `mark` before each finding (see [`write_all_marking`]).
fn write_marking<W: Write>(
    out: &mut W,
    r: &Report,
    style: Style,
    mark: &mut impl FnMut(&W),
) -> io::Result<()> {
    let width = usize::from(style.width.max(40));
    write_heading(out, r, style, width)?;
    let filter = r.filtered.as_ref();
    if let Some(f) = filter.filter(|f| f.findings > 0) {
        let line = format!(
            "{} outside {} not shown{}; the status counts them.",
            plural(f.findings, "finding"),
            escape(&f.filter),
            f.worst
                .map(|w| format!(" (worst {})", style.severity(w)))
                .unwrap_or_default()
        );
        wrap(out, &line, "", "  ", width)?;
        writeln!(out)?;
    }
    if r.findings.is_empty() {
        match filter {
            Some(f) => writeln!(out, "No findings match {}.", escape(&f.filter))?,
            None => writeln!(
                out,
                "No findings: no TCP socket is stuck in a state connleak checks."
            )?,
        }
        writeln!(out)?;
    }
    let depths = depths(&r.findings);
    for (f, depth) in r.findings.iter().zip(depths) {
        mark(out);
        write_finding(out, f, depth, style, width)?;
    }
    match filter {
        Some(f) if r.processes.is_empty() && f.processes > 0 => {
            writeln!(out, "No process matches {}.", escape(&f.filter))?
        }
        _ => super::processes::write(out, r, width)?,
    }
    writeln!(out)?;
    wrap(out, &states_line(r), "", "  ", width)?;
    if let Some(t) = &r.trace {
        wrap(out, &super::call_sites::summary(t), "", "  ", width)?;
    }
    write_unreadable(out, r, width)
}

/// The status line (problems, place, time) and how the sockets were read.
fn write_heading(out: &mut impl Write, r: &Report, style: Style, width: usize) -> io::Result<()> {
    // A problem is an incident: a root cause at warning or worse (a root is
    // as severe as the worst of its consequences).
    let worth = r
        .findings
        .iter()
        .filter(|f| f.caused_by.is_none() && f.severity >= Severity::Warning)
        .count() as u64;
    let problems = match r.filtered.as_ref() {
        Some(f) if worth == 0 && f.problems > 0 => {
            format!(
                "{} outside {}",
                plural(f.problems, "problem"),
                escape(&f.filter)
            )
        }
        _ => plural(worth, "problem"),
    };
    let place = match (&r.host, &r.netns.name) {
        (Some(h), Some(ns)) => format!("{} (netns {})", escape(h), escape(ns)),
        (Some(h), None) => escape(h).into_owned(),
        (None, Some(ns)) => format!("netns {}", escape(ns)),
        (None, None) => "this host".to_string(),
    };
    let head = format!(
        "connleak: {} - {} on {place} at {}",
        style.status(r.status),
        problems,
        r.taken_at
    );
    wrap(out, &head, "", "  ", width)?;
    let source = match r.source {
        SocketSource::SockDiag => "sock_diag",
        SocketSource::ProcNet => "/proc/net/tcp (no socket ages)",
    };
    let read = format!(
        "{} read via {source} in {} ms{}",
        plural(r.summary.sockets, "TCP socket"),
        r.duration_ms,
        r.kernel
            .as_deref()
            .map(|k| format!("; kernel {}", escape(k)))
            .unwrap_or_default()
    );
    wrap(out, &read, "  ", "    ", width)?;
    writeln!(out)
}

/// Sockets by state, and how many no process holds: TIME_WAIT sockets are
/// closed and kept by the kernel; sockets an fd names belong to processes
/// we could not read (never told as closed); the rest wait in an accept
/// queue or are orphaned.
fn states_line(r: &Report) -> String {
    let states: Vec<String> = r
        .summary
        .states
        .iter()
        .map(|(st, n)| format!("{} {n}", st.name()))
        .collect();
    if states.is_empty() {
        return "Sockets by state: none".to_string();
    }
    let closed = r
        .summary
        .states
        .get(&TcpState::TimeWait)
        .copied()
        .unwrap_or(0);
    let unseen = r.summary.held_unseen;
    let orphaned = r.summary.orphaned;
    let others = r.summary.unowned.saturating_sub(closed + unseen + orphaned);
    let mut unheld = Vec::new();
    if closed > 0 {
        unheld.push(format!(
            "{closed} TIME_WAIT held by no process (closed; the kernel keeps them)"
        ));
    }
    if unseen > 0 {
        unheld.push(format!(
            "{unseen} held by processes not seen (not readable, or opened since their scan)"
        ));
    }
    if orphaned > 0 {
        unheld.push(format!(
            "{orphaned} orphaned (closed by their process; the kernel finishes the close)"
        ));
    }
    if others > 0 {
        let more = if closed + unseen + orphaned > 0 {
            " more"
        } else {
            ""
        };
        unheld.push(format!(
            "{others}{more} held by no process (in a listener's queues, not yet accepted)"
        ));
    }
    if unheld.is_empty() {
        unheld.push("every one held by a process".to_string());
    }
    format!(
        "Sockets by state: {}; {}",
        states.join(", "),
        unheld.join("; ")
    )
}

/// How deep each finding sits under its root cause (0 for a root), in
/// report order, where a consequence follows its cause.
fn depths(findings: &[Finding]) -> Vec<usize> {
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    findings
        .iter()
        .map(|f| {
            let d = f
                .caused_by
                .as_deref()
                .and_then(|c| at.get(c))
                .map_or(0, |d| d + 1);
            at.insert(&f.id, d);
            d
        })
        .collect()
}

/// One finding; a consequence (`depth` > 0) indented under its cause.
fn write_finding(
    out: &mut impl Write,
    f: &Finding,
    depth: usize,
    style: Style,
    width: usize,
) -> io::Result<()> {
    // Every rule's first evidence line says what, who, how many and where.
    let (head, rest) = f
        .evidence
        .split_first()
        .map_or(("", &[][..]), |(h, r)| (h.as_str(), r));
    let pad = "    ".repeat(depth);
    let (first, more) = if depth == 0 {
        (String::new(), "    ".to_string())
    } else {
        (
            format!("{}  ↳ ", "    ".repeat(depth - 1)),
            format!("{pad}    "),
        )
    };
    let head = format!(
        "{} {}{}{}: {}",
        style.severity(f.severity),
        f.kind,
        if is_new(f) { " (new)" } else { "" },
        super::workload::in_workload(f),
        escape(head)
    );
    wrap(out, &head, &first, &more, width)?;
    if let (true, Some(t), Some(g)) = (style.live, &f.trend, f.growth_per_s) {
        let line = format!(
            "{} {} over the last {} refreshes",
            sparkline(&t.counts),
            per_minute(g),
            t.counts.len()
        );
        wrap(out, &line, &format!("{pad}  trend: "), &more, width)?;
    }
    for e in rest {
        wrap(out, &escape(e), &format!("{pad}  - "), &more, width)?;
    }
    for site in f.call_sites.iter().take(super::call_sites::SHOWN) {
        let line = super::call_sites::line(site);
        wrap(out, &escape(&line), &format!("{pad}  born "), &more, width)?;
    }
    let todo = format!("{pad}  What to do: ");
    wrap(out, &escape(&f.suggestion), &todo, &more, width)?;
    writeln!(out)
}

/// A finding that the sample before this one did not have.
fn is_new(f: &Finding) -> bool {
    f.trend
        .as_ref()
        .is_some_and(|t| t.counts.len() > 1 && t.counts[t.counts.len() - 2] == 0)
}

/// The live view's keys, as its title and footer say them.
pub const KEYS: &str = "r refreshes now, q or Ctrl-C quits";

/// The live view's last line: when it was collected, how often it refreshes.
pub fn footer(reports: &[Labelled], interval: std::time::Duration) -> String {
    let last = reports.iter().map(|l| l.report).max_by_key(|r| &r.taken_at);
    let when = last.map_or_else(
        || "nothing collected".to_string(),
        |r| format!("collected {} in {} ms", r.taken_at, r.duration_ms),
    );
    format!(
        "refresh every {:.1} s; {when}; {KEYS}",
        interval.as_secs_f64()
    )
}

fn write_unreadable(out: &mut impl Write, r: &Report, width: usize) -> io::Result<()> {
    let u = &r.unreadable;
    if u.processes_denied > 0 {
        let line = format!(
            "Not readable: the fd tables of {} (permission denied); \
             the owners of their sockets are unknown. Run as root for owners (a \
             security module or a user namespace can deny even root).",
            plural(u64::from(u.processes_denied), "process")
        );
        wrap(out, &line, "", "  ", width)?;
    }
    if u.processes_vanished > 0 {
        let line = format!(
            "{} exited while being scanned.",
            plural(u64::from(u.processes_vanished), "process")
        );
        wrap(out, &line, "", "  ", width)?;
    }
    for s in &u.sources {
        let line = format!("Not readable: {}: {}", escape(&s.what), escape(&s.error));
        wrap(out, &line, "", "  ", width)?;
    }
    Ok(())
}

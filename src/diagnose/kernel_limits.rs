//! `time_wait_overflow` and `orphan_pressure`: the limits on TIME-WAIT
//! sockets (`tcp_max_tw_buckets`) and on sockets no process holds
//! (`tcp_max_orphans`). Past them the kernel destroys TIME-WAIT sockets early
//! (`TCPTimeWaitOverflow`) or resets connections (`TCPAbortOnMemory`,
//! "too many orphaned sockets").
//!
//! The kernel's accounting, not the states' names, decides what counts
//! where: with `tcp_fin_timeout` ≤ 60 s an orphaned FIN-WAIT-2 becomes a
//! timewait socket (inode 0, the TIME-WAIT timer) that counts toward
//! `tcp_max_tw_buckets`, not toward the orphans. The orphan count is global
//! across namespaces (`/proc/net/sockstat`'s `orphan`), and the kernel starts
//! resetting orphans at `orphans << shift > tcp_max_orphans` with a shift of
//! up to 2 under memory pressure: a quarter of the limit. Since-boot
//! counters make a warning only when they moved during a sampled window; in
//! a single run they are context.

use super::{Ceiling, Context, Finding, Rule, Severity, percent};
use crate::snapshot::{Socket, Timer};
use crate::tcp::TcpState;

pub const TIME_WAIT_RULE: Rule = Rule {
    kind: "time_wait_overflow",
    unit: super::Unit::Sockets,
    title: "TIME-WAIT sockets near tcp_max_tw_buckets",
    about: "TIME-WAIT sockets near net.ipv4.tcp_max_tw_buckets: past it the kernel destroys \
            them at once (TCPTimeWaitOverflow), losing TIME-WAIT's protection against stray \
            segments. Orphaned FIN-WAIT-2 sockets count here too when tcp_fin_timeout is 60 s \
            or less (the kernel keeps them as timewait sockets). A warning from \
            --kernel-limit-warn percent, or when TCPTimeWaitOverflow grew during a sampled \
            window (--samples); its count since boot alone is context. Reduce short \
            connections (keep-alive, pooling) rather than raising the limit blindly.",
    run: time_wait,
};

pub const ORPHAN_RULE: Rule = Rule {
    kind: "orphan_pressure",
    unit: super::Unit::Sockets,
    title: "sockets no process holds near tcp_max_orphans",
    about: "Sockets no process holds any more (closed, still in FIN-WAIT-1, a full FIN-WAIT-2, \
            LAST-ACK, CLOSING) near net.ipv4.tcp_max_orphans: the kernel resets connections \
            ('too many orphaned sockets'). The count is the whole host's (/proc/net/sockstat), \
            and under memory pressure the kernel acts at a quarter of the limit, so the \
            warning is from --kernel-limit-warn percent of that quarter; or when \
            TCPAbortOnMemory grew during a sampled window (--samples). Find the peers that do \
            not finish closing; tcp_orphan_retries bounds how long each lingers.",
    run: orphans,
};

/// The shift the kernel applies to the orphan count under memory pressure
/// (`tcp_too_many_orphans`): it acts at `tcp_max_orphans >> 2`.
const PRESSURE_SHIFT: u32 = 2;

/// A socket the kernel keeps as a timewait socket: TIME-WAIT, or an orphaned
/// FIN-WAIT-2 on the TIME-WAIT timer (`tcp_fin_timeout` ≤ 60 s).
fn is_timewait_sock(s: &Socket) -> bool {
    s.state() == TcpState::TimeWait
        || (s.state() == TcpState::FinWait2 && s.inode() == 0 && s.timer() == Timer::TimeWait)
}

/// A watched counter's value (since the namespace began counting) and, over a sampled window, how much it grew.
fn counter_text(cx: &Context, name: &str, what: &str) -> (Option<i64>, String) {
    let total = cx.snapshot.kernel.counter("TcpExt", name).unwrap_or(0);
    let moved = cx.window.counter_delta(cx.snapshot, "TcpExt", name);
    let since = cx.snapshot.meta.netns.counted_since();
    let text = match moved {
        Some(d) => {
            format!("{name} grew by {d} during the sampled window ({total} {since}): {what}")
        }
        None => format!("{name} {total} {since} (context: a single run cannot tell when): {what}"),
    };
    (moved, text)
}

fn time_wait(cx: &Context) -> Vec<Finding> {
    let k = &cx.snapshot.kernel;
    let Some(max) = k.sysctls.tcp_max_tw_buckets else {
        return Vec::new();
    };
    let time_wait = cx.index.count(TcpState::TimeWait);
    let fin_wait2 = cx
        .snapshot
        .sockets
        .iter()
        .filter(|s| s.state() == TcpState::FinWait2 && is_timewait_sock(s))
        .count() as u64;
    let count = time_wait + fin_wait2;
    let pct = percent(count, max);
    let (moved, overflow) = counter_text(
        cx,
        "TCPTimeWaitOverflow",
        "TIME-WAIT sockets destroyed early",
    );
    let overflowing = moved.is_some_and(|d| d > 0);
    // Timewait sockets a more specific warning already explains are not told again.
    let unexplained: Vec<usize> = cx
        .sockets()
        .filter(|(_, s)| is_timewait_sock(s))
        .map(|(i, _)| i)
        .collect();
    if (pct < cx.thresholds.kernel_limit_warn && !overflowing) || unexplained.is_empty() {
        return Vec::new();
    }
    let mut evidence = vec![format!(
        "{count} timewait sockets of net.ipv4.tcp_max_tw_buckets {max} ({pct}%)"
    )];
    if fin_wait2 > 0 {
        evidence.push(format!(
            "{fin_wait2} of them are orphaned FIN-WAIT-2 sockets: with tcp_fin_timeout {} s (60 \
             or less) the kernel keeps them as timewait sockets, counted here, not as orphans",
            k.sysctls
                .tcp_fin_timeout
                .map_or("unknown".to_string(), |t| t.to_string())
        ));
    }
    evidence.push(overflow);
    vec![Finding {
        severity: Severity::Warning,
        count,
        evidence,
        suggestion: "Cut the rate of short connections (keep-alive, pooling); the clients or \
                     servers closing first are named by ephemeral_port_exhaustion and \
                     server_active_close findings."
            .to_string(),
        sockets: unexplained,
        ceiling: Some(Ceiling::time_wait(
            max,
            "net.ipv4.tcp_max_tw_buckets",
            cx.thresholds.kernel_limit_warn,
        )),
        ..Finding::of(&TIME_WAIT_RULE, Some(TcpState::TimeWait))
    }]
}

fn orphans(cx: &Context) -> Vec<Finding> {
    let k = &cx.snapshot.kernel;
    // Full sockets no process holds; orphaned FIN-WAIT-2 timewait sockets are not orphans.
    let here = cx
        .snapshot
        .sockets
        .iter()
        .filter(|s| {
            s.inode() == 0
                && !is_timewait_sock(s)
                && matches!(
                    s.state(),
                    TcpState::FinWait1 | TcpState::FinWait2 | TcpState::LastAck | TcpState::Closing
                )
        })
        .count() as u64;
    // The kernel's count is host-wide; this namespace's table only when it is unreadable.
    let (count, counted) = match k.sockstat {
        Some(s) => (
            s.orphan,
            "orphaned sockets on the host (/proc/net/sockstat, every namespace)",
        ),
        None => (here, "orphaned sockets in this namespace"),
    };
    let (moved, aborts) = counter_text(
        cx,
        "TCPAbortOnMemory",
        "connections reset for lack of memory or orphans",
    );
    let aborting = moved.is_some_and(|d| d > 0);
    let pressure_limit = k.sysctls.tcp_max_orphans.map(|m| m >> PRESSURE_SHIFT);
    let pct = pressure_limit.map(|l| percent(count, l));
    let near = pct.is_some_and(|p| p >= cx.thresholds.kernel_limit_warn);
    if !near && !aborting {
        return Vec::new();
    }
    let mut evidence = vec![match (k.sysctls.tcp_max_orphans, pressure_limit, pct) {
        (Some(max), Some(at), Some(p)) => format!(
            "{count} {counted} of net.ipv4.tcp_max_orphans {max}; under memory pressure the \
             kernel resets orphans from {at} (a quarter: orphans << {PRESSURE_SHIFT}), and this \
             is {p}% of that"
        ),
        _ => format!("{count} {counted} (tcp_max_orphans is not visible in this namespace)"),
    }];
    if k.sockstat.is_some() {
        evidence.push(format!("{here} of them in this namespace's table"));
    }
    evidence.push(aborts);
    vec![Finding {
        severity: Severity::Warning,
        count,
        evidence,
        suggestion: "Find which peers leave sockets in FIN-WAIT or LAST-ACK (ss -tan state \
                     fin-wait-1, state last-ack); lower tcp_fin_timeout or tcp_orphan_retries \
                     only if the peers are known to be gone."
            .to_string(),
        ..Finding::of(&ORPHAN_RULE, None)
    }]
}

//! `time_wait_overflow` and `orphan_pressure`: the namespace-wide limits on
//! TIME-WAIT sockets (`tcp_max_tw_buckets`) and on sockets no process holds
//! (`tcp_max_orphans`). Past them the kernel destroys TIME-WAIT sockets early
//! (`TCPTimeWaitOverflow`) or resets connections (`TCPAbortOnMemory`,
//! "too many orphaned sockets").

use super::{Ceiling, Context, Finding, Rule, Severity, percent};
use crate::tcp::TcpState;

pub const TIME_WAIT_RULE: Rule = Rule {
    kind: "time_wait_overflow",
    title: "TIME-WAIT sockets near tcp_max_tw_buckets",
    about: "TIME-WAIT sockets near net.ipv4.tcp_max_tw_buckets: past it the kernel destroys \
            them at once (TCPTimeWaitOverflow), losing TIME-WAIT's protection against stray \
            segments. Reduce short connections (keep-alive, pooling) rather than raising the \
            limit blindly.",
    run: time_wait,
};

pub const ORPHAN_RULE: Rule = Rule {
    kind: "orphan_pressure",
    title: "sockets no process holds near tcp_max_orphans",
    about: "Sockets no process holds any more (closed, still in FIN-WAIT, LAST-ACK, CLOSING) \
            near net.ipv4.tcp_max_orphans, or TCPAbortOnMemory counting: the kernel resets \
            connections ('too many orphaned sockets'). Find the peers that do not finish \
            closing; tcp_orphan_retries bounds how long each lingers.",
    run: orphans,
};

fn time_wait(cx: &Context) -> Vec<Finding> {
    let k = &cx.snapshot.kernel;
    let count = cx.index.count(TcpState::TimeWait);
    let overflow = k.counter("TcpExt", "TCPTimeWaitOverflow").unwrap_or(0);
    let Some(max) = k.sysctls.tcp_max_tw_buckets else {
        return Vec::new();
    };
    let pct = percent(count, max);
    // TIME_WAIT sockets a more specific warning already explains are not told again.
    let unexplained: Vec<usize> = cx.in_state(TcpState::TimeWait).map(|(i, _)| i).collect();
    if (pct < cx.thresholds.kernel_limit_warn && overflow == 0) || unexplained.is_empty() {
        return Vec::new();
    }
    vec![Finding {
        severity: if pct >= cx.thresholds.kernel_limit_warn {
            Severity::Warning
        } else {
            Severity::Info
        },
        count,
        evidence: vec![
            format!("{count} TIME-WAIT sockets of net.ipv4.tcp_max_tw_buckets {max} ({pct}%)"),
            format!(
                "TCPTimeWaitOverflow {overflow} since boot (TIME-WAIT sockets destroyed early)"
            ),
        ],
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
    let count = cx
        .snapshot
        .sockets
        .iter()
        .filter(|s| {
            s.inode == 0
                && matches!(
                    s.state,
                    TcpState::FinWait1 | TcpState::FinWait2 | TcpState::LastAck | TcpState::Closing
                )
        })
        .count() as u64;
    let aborts = k.counter("TcpExt", "TCPAbortOnMemory").unwrap_or(0);
    let pct = k.sysctls.tcp_max_orphans.map(|max| percent(count, max));
    let near = pct.is_some_and(|p| p >= cx.thresholds.kernel_limit_warn);
    if !near && aborts == 0 {
        return Vec::new();
    }
    let mut evidence = vec![match (k.sysctls.tcp_max_orphans, pct) {
        (Some(max), Some(p)) => {
            format!("{count} orphaned sockets of net.ipv4.tcp_max_orphans {max} ({p}%)")
        }
        _ => format!("{count} orphaned sockets (tcp_max_orphans is not visible in this namespace)"),
    }];
    evidence.push(format!(
        "TCPAbortOnMemory {aborts} since boot (connections reset for lack of memory or orphans)"
    ));
    vec![Finding {
        severity: if near {
            Severity::Warning
        } else {
            Severity::Info
        },
        count,
        evidence,
        suggestion: "Find which peers leave sockets in FIN-WAIT or LAST-ACK (stalled_close, \
                     half_closed_peer findings); lower tcp_fin_timeout or tcp_orphan_retries \
                     only if the peers are known to be gone."
            .to_string(),
        ..Finding::of(&ORPHAN_RULE, None)
    }]
}

//! `fd_exhaustion`: a process at or near its soft `RLIMIT_NOFILE`.
//!
//! At the limit, `accept()` and `socket()` fail with `EMFILE`: the service
//! stops taking connections although the host is fine. When leaked CLOSE-WAIT
//! sockets fill the table, the leak is the cause and `EMFILE` the symptom, and
//! this finding takes those sockets over from `close_wait_leak`. So it is
//! when TCP sockets the kernel already closed (`closed_not_released`) fill
//! it: they are in no socket table, only in the fd count.

use super::cause::cause_enum;
use super::{Context, Finding, Rule, Severity, percent, who};
use crate::snapshot::Process;
use crate::tcp::TcpState;
use rustc_hash::FxHashMap;

pub const RULE: Rule = Rule {
    kind: "fd_exhaustion",
    unit: super::Unit::Fds,
    title: "a process near its open-file limit (EMFILE)",
    about: "A process near its soft RLIMIT_NOFILE: at the limit accept() and socket() fail \
            with EMFILE. When CLOSE-WAIT sockets, or TCP sockets the kernel closed and the \
            process never did (closed_not_released), fill its fd table, that leak is the cause \
            and EMFILE the symptom: fix the leak; raising the limit (LimitNOFILE=, ulimit -n) only \
            buys time.",
    run: find,
};

cause_enum! {
/// Why the fd table is full.
pub enum FdCause {
    /// Leaked CLOSE-WAIT sockets fill at least half of it.
    CloseWaitLeak = "close_wait_leak": "Leaked CLOSE-WAIT sockets fill at least half of the \
        process's fd table: the fd limit is a consequence of the leak. Fix the leak (close \
        the socket when read() returns 0); raising the limit only delays the next outage.",
    /// TCP sockets the kernel closed and the process did not (in no TCP
    /// table) fill at least half of it.
    ClosedNotReleased = "closed_not_released": "TCP sockets the kernel already closed (reset, \
        timed out) and the process never closed fill at least half of its fd table. Fix: \
        close the socket when a read or write fails or returns EOF.",
    /// Anything else: the load, or fds of other kinds.
    FdLimit = "fd_limit": "The fd table is full of something else than leaked sockets: the \
        load, or fds of other kinds (files, pipes). Find what holds them (ls -l \
        /proc/PID/fd); raise the limit if the load is real.",
}
}

impl FdCause {
    fn suggestion(self) -> &'static str {
        match self {
            FdCause::CloseWaitLeak => {
                "Fix the CLOSE_WAIT leak (close the socket when read() returns 0); restart to \
                 recover now. Raising the limit only delays the next outage."
            }
            FdCause::ClosedNotReleased => {
                "Fix the leak of closed connections (closed_not_released: close the socket \
                 when a read or write fails or returns EOF); restart to recover now. Raising \
                 the limit only delays the next outage."
            }
            FdCause::FdLimit => {
                "Find what holds the fds (ls -l /proc/PID/fd); raise the limit (LimitNOFILE= in \
                 the unit, ulimit -n) if the load is real."
            }
        }
    }
}

pub fn find(cx: &Context) -> Vec<Finding> {
    let pressed: Vec<(&Process, u64)> = cx
        .snapshot
        .processes
        .iter()
        .filter_map(|p| {
            let limit = p.fd_soft_limit?;
            (percent(u64::from(p.fds), limit) >= cx.thresholds.fd_warn).then_some((p, limit))
        })
        .collect();
    if pressed.is_empty() {
        return Vec::new();
    }
    // Their unclaimed CLOSE_WAIT sockets, gathered in one pass.
    let mut close_wait_of: FxHashMap<u32, Vec<usize>> =
        pressed.iter().map(|(p, _)| (p.pid, Vec::new())).collect();
    for (i, _) in cx.in_state(TcpState::CloseWait) {
        if let Some(of) = cx
            .index
            .owner(i)
            .and_then(|o| close_wait_of.get_mut(&o.pid))
        {
            of.push(i);
        }
    }
    pressed
        .into_iter()
        .map(|(p, limit)| {
            let close_wait = close_wait_of.remove(&p.pid).unwrap_or_default();
            finding(cx, p, limit, close_wait)
        })
        .collect()
}

/// The finding of process `p`, at `limit`, holding these unclaimed CLOSE_WAIT sockets.
fn finding(cx: &Context, p: &Process, limit: u64, close_wait: Vec<usize>) -> Finding {
    let t = cx.thresholds;
    let pct = percent(u64::from(p.fds), limit);
    let mix = cx.index.states_of(p.pid);
    let tcp: u64 = mix.values().sum();
    let mix_text: Vec<String> = mix.iter().map(|(st, n)| format!("{st} {n}")).collect();
    let closed = u64::from(p.closed_tcp_fds);
    let mut evidence = vec![
        format!(
            "{} has {} fds open of a soft limit of {limit} ({pct}%; hard limit {})",
            who(Some(p)),
            p.fds,
            p.fd_hard_limit
                .map_or("unlimited".to_string(), |h| h.to_string())
        ),
        format!(
            "its fds: {tcp} TCP sockets ({}), {}{} other",
            if mix_text.is_empty() {
                "none".to_string()
            } else {
                mix_text.join(", ")
            },
            if closed > 0 {
                format!("{closed} TCP sockets in no table (closed_not_released), ")
            } else {
                String::new()
            },
            u64::from(p.fds).saturating_sub(tcp + closed)
        ),
    ];
    let fills = |n: u64| n * 2 >= u64::from(p.fds);
    let leak = fills(close_wait.len() as u64);
    let cause = if leak {
        evidence.push(format!(
            "{} of them are CLOSE-WAIT sockets it never closed: that leak is the cause, \
             EMFILE (accept() failing) the symptom",
            close_wait.len()
        ));
        FdCause::CloseWaitLeak
    } else if fills(closed) {
        evidence.push(format!(
            "{closed} of them are TCP sockets whose connections the kernel already closed \
             (reset or timeout) and the process never did: that leak is the cause, EMFILE \
             the symptom"
        ));
        FdCause::ClosedNotReleased
    } else {
        FdCause::FdLimit
    };
    Finding {
        severity: Severity::grade(pct, t.fd_warn, t.fd_crit),
        count: u64::from(p.fds),
        evidence,
        suggestion: cause.suggestion().to_string(),
        cause: Some(cause.into()),
        sockets: if leak { close_wait } else { Vec::new() },
        ..Finding::of(&RULE, None)
    }
    .owned_by(Some(p))
}

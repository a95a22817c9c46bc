//! `closed_not_released`: TCP sockets the kernel closed and the process never did.
//!
//! A leaked connection does not stay in CLOSE-WAIT for ever: once the
//! application writes to it after the peer has gone (the peer answers with a
//! reset), or keep-alive or the retransmission timer gives up, the socket
//! moves to CLOSE and the kernel unhashes it. `ss`, `/proc/net/tcp` and
//! sock_diag stop showing it, so the CLOSE-WAIT count looks flat while the
//! process's fds climb to `EMFILE`. The collector finds them by their fds
//! (see `collect::unreleased`); this rule grades them per process.

use super::{Context, Finding, Rule, Severity, percent, who};
use crate::snapshot::{Process, Sockstat};

pub const RULE: Rule = Rule {
    kind: "closed_not_released",
    unit: super::Unit::Sockets,
    title: "TCP sockets the kernel closed that the process still holds",
    about: "TCP sockets a process still holds after the kernel closed them. When a connection \
            ends by a reset (the application wrote after the peer had closed, and the peer \
            answered RST) or by a timeout (keep-alive or the retransmission timer gave up), \
            the socket moves to CLOSE and the kernel removes it from its TCP tables: ss, \
            /proc/net/tcp and sock_diag no longer show it, lsof shows \"can't identify \
            protocol\". Only the application's close() frees the fd and the socket's memory. \
            It is where leaked CLOSE-WAIT sockets end up: the CLOSE-WAIT count stays flat \
            while the fds climb to EMFILE. Warning from --unreleased-warn sockets per process, \
            critical when they fill half the soft fd limit. Fix: close the socket on every \
            error path (ECONNRESET, EPIPE, ETIMEDOUT) and when read() returns 0.",
    run: find,
};

/// Share of the soft fd limit these sockets alone may take before the
/// process is on its way to `EMFILE` from this leak: critical.
const CRIT_LIMIT_SHARE: u64 = 50;

const SUGGESTION: &str = "Close the socket on every path that ends a connection: when read() \
    returns 0, and when a read or write fails (ECONNRESET, EPIPE, ETIMEDOUT); the connection \
    is dead but its fd stays until close(). Look for connections kept after an error (a map or \
    pool that never evicts them; try-with-resources / finally / defer / a Drop guard). \
    Restarting frees them, and the leak comes back.";

pub fn find(cx: &Context) -> Vec<Finding> {
    let t = cx.thresholds;
    cx.snapshot
        .processes
        .iter()
        .filter(|p| p.closed_tcp_fds > 0)
        .map(|p| {
            let n = u64::from(p.closed_tcp_fds);
            let share = p.fd_soft_limit.map(|l| percent(n, l));
            let severity = if share.is_some_and(|s| s >= CRIT_LIMIT_SHARE) {
                Severity::Critical
            } else {
                Severity::grade(n, t.unreleased_warn, u64::MAX)
            };
            Finding {
                severity,
                count: n,
                evidence: evidence(cx, p, share),
                suggestion: SUGGESTION.to_string(),
                ..Finding::of(&RULE, None)
            }
            .owned_by(Some(p))
        })
        .collect()
}

/// The kernel's own count as a cross-check: `alloc` (every TCP socket, every
/// namespace) minus the hashed ones of this namespace bounds the unhashed
/// sockets from above.
fn sockstat_evidence(s: Sockstat, n: u32) -> String {
    let hashed = s.inuse.saturating_add(s.inuse6);
    let outside = s.alloc.saturating_sub(hashed);
    let verdict = if outside >= u64::from(n) {
        "consistent with these"
    } else {
        "fewer than counted here: some may be connections opened while connleak read the table"
    };
    format!(
        "/proc/net/sockstat: {} TCP sockets allocated (every namespace), {hashed} in this \
         namespace's tables: at most {outside} are in no table, {verdict}",
        s.alloc
    )
}

fn evidence(cx: &Context, p: &Process, share: Option<u64>) -> Vec<String> {
    let n = p.closed_tcp_fds;
    let mut evidence = vec![
        format!(
            "{} holds {n} TCP sockets that are in no TCP table: their connections ended by a \
             reset (a write after the peer closed) or a keep-alive / retransmission timeout, \
             the kernel moved them to CLOSE and unhashed them; ss and /proc/net/tcp do not \
             show them, lsof says \"can't identify protocol\"",
            who(Some(p))
        ),
        "only the application's close() frees them: each keeps an fd and its socket memory"
            .to_string(),
        format!(
            "pid {} has {} fds open of a soft limit of {}{}",
            p.pid,
            p.fds,
            p.fd_soft_limit
                .map_or("unlimited".to_string(), |l| l.to_string()),
            share.map_or(String::new(), |s| format!("; these sockets are {s}% of it"))
        ),
    ];
    if let Some(close_wait) = cx
        .index
        .states_of(p.pid)
        .get(&crate::tcp::TcpState::CloseWait)
    {
        evidence.push(format!(
            "it also holds {close_wait} CLOSE-WAIT sockets: leaked CLOSE-WAIT sockets end up \
             here once something is written to them or keep-alive fires"
        ));
    }
    if let Some(s) = cx.snapshot.kernel.sockstat {
        evidence.push(sockstat_evidence(s, n));
    }
    evidence
}

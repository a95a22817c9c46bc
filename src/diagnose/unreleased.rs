//! `closed_not_released`: TCP sockets the kernel closed and the process never did.
//!
//! A leaked connection does not stay in CLOSE-WAIT for ever: once the
//! application writes to it after the peer has gone (the peer answers with a
//! reset), or keep-alive or the retransmission timer gives up, the socket
//! moves to CLOSE and the kernel unhashes it. `ss`, `/proc/net/tcp` and
//! sock_diag stop showing it, so the CLOSE-WAIT count looks flat while the
//! process's fds climb to `EMFILE`. A `connect()` that failed (refused, timed
//! out) leaves its socket in CLOSE too, and a client that keeps it after the
//! error leaks the same way. The collector finds them by their fds (see
//! `collect::unreleased`) and, where the fd iterator reads the sockets
//! themselves, what the kernel still holds of each; this rule grades them
//! per process and tells the failed connects (with their destinations) from
//! connections reset after a write or while idle.

use super::cause::cause_enum;
use super::{Context, Finding, Peer, Rule, Severity, percent, who};
use crate::snapshot::{ClosedGroup, Process, Sockstat};

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
            while the fds climb to EMFILE. A connect() that failed (refused, timed out) leaves \
            its socket in CLOSE as well, and a client that keeps the socket after the error \
            leaks the same way; where the kernel's sockets can be read (the BPF fd iterator), \
            the finding tells failed connects, with their destinations, from connections reset \
            after a write or while idle. Warning from --unreleased-warn sockets per process, \
            critical when they fill half the soft fd limit. Fix: close the socket on every \
            error path (ECONNRESET, EPIPE, ETIMEDOUT, ECONNREFUSED) and when read() returns 0.",
    run: find,
};

/// Share of the soft fd limit these sockets alone may take before the
/// process is on its way to `EMFILE` from this leak: critical.
const CRIT_LIMIT_SHARE: u64 = 50;

cause_enum! {
/// How the sockets' connections ended, as far as the kernel still tells.
#[derive(PartialOrd, Ord)]
pub enum UnreleasedCause {
    /// A SYN went out and no connection came of it: refused or timed out.
    ConnectFailed = "connect_failed": "TCP sockets in no table whose connect() failed \
        (refused, or no answer until the kernel gave up), kept open by the process: each \
        failed attempt leaks an fd. Fix: close the socket when connect() fails, on every \
        retry path.",
    /// Established, and data sent was never acknowledged when it ended: a
    /// write after the peer closed or went away.
    ResetAfterWrite = "reset_after_write": "TCP sockets in no table that ended with data they \
        sent unacknowledged: a write after the peer had closed or gone, answered by a reset \
        or given up by the retransmission timer, and never closed by the process. Fix: close \
        the socket when a write fails (EPIPE, ECONNRESET).",
    /// Established, nothing in flight when it ended: reset (or timed out by
    /// keep-alive) while idle, as a pooled connection is.
    EndedWhileIdle = "ended_while_idle": "TCP sockets in no table that ended while idle (a \
        peer's idle timeout, a restart or a middlebox reset them, or keep-alive gave up) and \
        that the process keeps: often a pool that never notices its dead connections. Fix: \
        drop a connection whose read fails or returns EOF; check pooled connections.",
    /// Established, ended in order: the peer's FIN came, nothing in flight,
    /// no reset: only `close()` is missing.
    ClosedInOrder = "closed_in_order": "TCP sockets in no table whose connection ended in \
        order both ways (the peer's FIN came, nothing was in flight, no reset): the process \
        called shutdown() without close(), or saw the end and kept the socket. Fix: call \
        close() after shutdown() and when read() returns 0.",
    /// No SYN ever went out: `socket()` never connected, or a `connect()`
    /// that failed before sending anything (no route).
    NeverConnected = "never_connected": "TCP sockets in no table that never sent a SYN: made \
        by socket() and never connected, or a connect() that failed before sending anything \
        (no route). Fix: close the socket on every path after socket(), a failed connect() \
        included.",
}
}

impl UnreleasedCause {
    fn of(g: &ClosedGroup) -> UnreleasedCause {
        let wrote_into_the_end = g.unacked || g.error.as_deref() == Some("EPIPE");
        match (g.established, wrote_into_the_end) {
            (true, true) => UnreleasedCause::ResetAfterWrite,
            (true, false) if g.peer_fin && g.error.is_none() => UnreleasedCause::ClosedInOrder,
            (true, false) => UnreleasedCause::EndedWhileIdle,
            (false, _) if g.peer.is_some() || g.unacked => UnreleasedCause::ConnectFailed,
            (false, _) => UnreleasedCause::NeverConnected,
        }
    }

    /// What `n` such sockets are, for the evidence (the count after the
    /// label, so that one reads as well as many).
    fn told(self, n: u32) -> String {
        let (what, how) = match self {
            UnreleasedCause::ConnectFailed => (
                "connects that never got established",
                "the SYN went out and no connection came of it (refused, or no answer until \
                 the kernel gave up); connect() failed and the socket was kept",
            ),
            UnreleasedCause::ResetAfterWrite => (
                "ended with data they sent unacknowledged",
                "a write after the peer had closed or gone, answered by a reset or given up \
                 by the retransmission timer",
            ),
            UnreleasedCause::EndedWhileIdle => (
                "ended while idle, with nothing in flight and no FIN from the peer",
                "the peer (a server's idle timeout, a restart, a middlebox) reset them, or \
                 keep-alive gave up, while they sat unused",
            ),
            UnreleasedCause::ClosedInOrder => (
                "closed in order both ways",
                "the peer's FIN came, nothing was in flight, no reset: a shutdown() without \
                 close(), or an end the application saw and kept the socket",
            ),
            UnreleasedCause::NeverConnected => (
                "never sent a SYN",
                "made by socket() and never connected, or a connect() that failed before \
                 sending anything (no route to the destination)",
            ),
        };
        format!("{what}: {n} ({how})")
    }

    fn suggestion(self) -> &'static str {
        match self {
            UnreleasedCause::ConnectFailed => {
                "Close the socket when connect() fails (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH), \
                 on every retry path: the failed socket's fd stays open until close(). Look at \
                 the code that connects to the destinations named above: a retry loop that makes a new \
                 socket per attempt and keeps the old one, or a client object dropped without \
                 close() after a connect error. Then find out why those destinations refuse or \
                 do not answer."
            }
            UnreleasedCause::ResetAfterWrite => {
                "Close the socket on every path that ends a connection: when read() returns 0, \
                 and when a read or write fails (ECONNRESET, EPIPE, ETIMEDOUT); the connection \
                 is dead but its fd stays until close(). Look for connections kept after an \
                 error (a map or pool that never evicts them; try-with-resources / finally / \
                 defer / a Drop guard). Restarting frees them, and the leak comes back."
            }
            UnreleasedCause::EndedWhileIdle => {
                "Close pooled connections whose read or write fails (ECONNRESET, ETIMEDOUT) and \
                 evict them from the pool: the peer reset them while they sat idle. Validate a \
                 connection before reuse, and keep the pool's idle time and max lifetime below \
                 the server's idle timeout."
            }
            UnreleasedCause::ClosedInOrder => {
                "Call close() after shutdown(), and when read() returns 0: shutdown() only ends \
                 the conversation, the fd and the socket's memory stay until close()."
            }
            UnreleasedCause::NeverConnected => {
                "Close sockets that are never used: a socket() made ahead of time, or one whose \
                 connect() failed at once (ENETUNREACH, EADDRNOTAVAIL), is an fd until close()."
            }
        }
    }
}

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
            let cause = dominant(&p.closed_tcp);
            Finding {
                severity,
                count: n,
                evidence: evidence(cx, p, share),
                suggestion: cause
                    .unwrap_or(UnreleasedCause::ResetAfterWrite)
                    .suggestion()
                    .to_string(),
                cause: cause.map(Into::into),
                peers: failed_connect_peers(&p.closed_tcp),
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

/// The cause of most of the sockets, when the kernel's sockets were read.
fn dominant(groups: &[ClosedGroup]) -> Option<UnreleasedCause> {
    UnreleasedCause::ALL
        .iter()
        .copied()
        .map(|c| (sockets_of(groups, c), c))
        .filter(|&(n, _)| n > 0)
        .max_by_key(|&(n, c)| (n, std::cmp::Reverse(c)))
        .map(|(_, c)| c)
}

fn sockets_of(groups: &[ClosedGroup], cause: UnreleasedCause) -> u32 {
    groups
        .iter()
        .filter(|g| UnreleasedCause::of(g) == cause)
        .map(|g| g.count)
        .sum()
}

/// The hosts the failed connects went to, most first.
fn failed_connect_peers(groups: &[ClosedGroup]) -> Vec<Peer> {
    let mut peers: Vec<Peer> = Vec::new();
    for g in groups
        .iter()
        .filter(|g| UnreleasedCause::of(g) == UnreleasedCause::ConnectFailed)
    {
        let Some(host) = g.peer else { continue };
        match peers.iter_mut().find(|p| p.host == host) {
            Some(p) => p.connections += u64::from(g.count),
            None => peers.push(Peer {
                host,
                pid: None,
                comm: None,
                connections: u64::from(g.count),
            }),
        }
    }
    peers.sort_by(|a, b| b.connections.cmp(&a.connections).then(a.host.cmp(&b.host)));
    peers
}

/// Where the groups of one cause went, with their counts and the errors
/// the kernel still holds for the application: `10.0.0.9:5432 (9, ETIMEDOUT unread)`.
fn destinations(groups: &[ClosedGroup], cause: UnreleasedCause) -> Option<String> {
    let parts: Vec<String> = groups
        .iter()
        .filter(|g| UnreleasedCause::of(g) == cause)
        .filter_map(|g| {
            let host = g.peer?;
            let mut about = vec![g.count.to_string()];
            about.extend(g.error.as_ref().map(|e| format!("{e} unread")));
            let at = match g.peer_port {
                Some(port) => crate::snapshot::endpoint(&std::net::SocketAddr::new(host, port)),
                None => {
                    if cause == UnreleasedCause::ConnectFailed {
                        // A failed blocking connect() resets the socket, port and all.
                        about.push("port no longer known".to_string());
                    }
                    host.to_string()
                }
            };
            Some(format!("{at} ({})", about.join(", ")))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn breakdown(groups: &[ClosedGroup]) -> Vec<String> {
    if groups.is_empty() {
        return vec![
            "how their connections ended was not read (it takes the BPF fd iterator: root, \
             Linux 6.1+ with BTF): a reset (a write after the peer closed), a keep-alive or \
             retransmission timeout, or a connect() that failed"
                .to_string(),
        ];
    }
    UnreleasedCause::ALL
        .iter()
        .copied()
        .filter_map(|c| {
            let n = sockets_of(groups, c);
            (n > 0).then(|| match destinations(groups, c) {
                Some(d) => format!("{}; toward {d}", c.told(n)),
                None => c.told(n),
            })
        })
        .collect()
}

fn evidence(cx: &Context, p: &Process, share: Option<u64>) -> Vec<String> {
    let n = p.closed_tcp_fds;
    let mut evidence = vec![format!(
        "{} holds {n} TCP sockets that are in no TCP table: the kernel moved them to CLOSE \
         and unhashed them; ss and /proc/net/tcp do not show them, lsof says \"can't \
         identify protocol\"",
        who(Some(p))
    )];
    evidence.extend(breakdown(&p.closed_tcp));
    evidence.extend([
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
    ]);
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

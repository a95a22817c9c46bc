//! `close_wait_leak`: sockets stuck in CLOSE-WAIT, the passive closer's state.
//!
//! The peer sent FIN; the kernel acknowledged it and will do nothing more.
//! Only the application's `close()` moves the socket on (to LAST-ACK), and no
//! timer ends the state, so every CLOSE_WAIT socket that stays is a file
//! descriptor the application forgot or never got to. The kernel's evidence
//! tells why, per socket:
//!
//! - Recv-Q counts the peer's FIN as one unread byte until the application
//!   reads EOF. Recv-Q 0: the application read EOF and never called `close()`
//!   (the classic leak). Recv-Q 1: it has not read since the peer closed (an
//!   idle pooled connection nobody checks). Recv-Q > 1: request bytes were
//!   never read at all (a stuck or exhausted worker).
//! - Inode 0 on a listening port: the kernel accepted the connection but the
//!   application never called `accept()`: it sits in the accept queue.
//! - The local port is a listening port (server side) or not (client side,
//!   a pool toward the remote endpoint).
//! - tcp_info's time since the last segment from the peer is the time since
//!   its FIN: how long the socket has been stuck.
//!
//! Sockets are grouped per owning process and per listening port (server
//! side) or remote endpoint (client side).

use super::{ConnSide, Context, Finding, Rule, Severity, canonical, human_duration, percent, who};
use crate::snapshot::{Process, Socket, endpoint};
use crate::tcp::TcpState;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;

pub const RULE: Rule = Rule {
    kind: "close_wait_leak",
    title: "the peer closed, the application never did (CLOSE-WAIT)",
    about: "Sockets stuck in CLOSE-WAIT: the peer closed, the application did not. Only the \
            application's close() ends the state. Recv-Q 0: it read EOF and never closed \
            (cause never_closed_after_eof); Recv-Q 1: nobody read the socket since the peer \
            closed, typically idle pooled connections (unread_after_peer_close); Recv-Q > 1: \
            request data never read (request_never_read). Fix the code path that should close, \
            or evict idle pooled connections before the server does.",
    run: find,
};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
    pid: Option<u32>,
    side_is_server: bool,
    /// The listener (server side) or the remote endpoint (client side).
    endpoint: SocketAddr,
}

#[derive(Default)]
struct Group<'a> {
    owner: Option<&'a Process>,
    sockets: Vec<usize>,
    count: u64,
    /// Old enough (or of unknown age) to count as stuck rather than closing.
    stuck: u64,
    eof_read: u64,
    fin_unread: u64,
    data_unread: u64,
    max_unread: u32,
    never_accepted: u64,
    oldest_ms: Option<u32>,
    newest_ms: Option<u32>,
}

/// Time since the peer's FIN, from tcp_info: the last segment the peer sent.
fn age_ms(s: &Socket) -> Option<u32> {
    s.tcp_info?.last_ack_recv_ms
}

/// Old enough (or of unknown age) to count as stuck rather than still closing.
pub(super) fn is_stuck(cx: &Context, s: &Socket) -> bool {
    let min_age_ms = cx.thresholds.close_wait_min_age.saturating_mul(1000);
    age_ms(s).is_none_or(|a| u64::from(a) >= min_age_ms)
}

pub fn find(cx: &Context) -> Vec<Finding> {
    let mut groups: BTreeMap<GroupKey, Group> = BTreeMap::new();
    for (i, s) in cx.in_state(TcpState::CloseWait) {
        let listener = cx.index.listener_of(s);
        let owner = cx.index.responsible(s);
        let key = GroupKey {
            pid: owner.map(|p| p.pid),
            side_is_server: listener.is_some(),
            endpoint: canonical(listener.map_or(s.remote, |l| l.local)),
        };
        let g = groups.entry(key).or_default();
        g.owner = owner;
        g.sockets.push(i);
        g.count += 1;
        if is_stuck(cx, s) {
            g.stuck += 1;
        }
        let age = age_ms(s);
        if let Some(a) = age {
            g.oldest_ms = Some(g.oldest_ms.map_or(a, |o| o.max(a)));
            g.newest_ms = Some(g.newest_ms.map_or(a, |n| n.min(a)));
        }
        match s.recv_q {
            0 => g.eof_read += 1,
            1 => g.fin_unread += 1,
            n => {
                g.data_unread += 1;
                g.max_unread = g.max_unread.max(n);
            }
        }
        if s.inode == 0 {
            g.never_accepted += 1;
        }
    }
    groups
        .into_iter()
        .filter(|(_, g)| g.stuck > 0)
        .map(|(key, g)| finding(cx, &key, g))
        .collect()
}

/// Which of the three Recv-Q cases dominates the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseWaitCause {
    NeverClosedAfterEof,
    UnreadAfterPeerClose,
    RequestNeverRead,
}

impl CloseWaitCause {
    fn of(g: &Group) -> CloseWaitCause {
        if g.eof_read >= g.fin_unread && g.eof_read >= g.data_unread {
            CloseWaitCause::NeverClosedAfterEof
        } else if g.fin_unread >= g.data_unread {
            CloseWaitCause::UnreadAfterPeerClose
        } else {
            CloseWaitCause::RequestNeverRead
        }
    }

    fn suggestion(self, side: ConnSide) -> &'static str {
        match (self, side) {
            (CloseWaitCause::NeverClosedAfterEof, _) => {
                "The application sees EOF (read() returns 0) and does not close the socket. Find the \
                 code path that handles 'peer closed' and close there: try-with-resources / finally / \
                 defer / a Drop guard, including on error paths. Restarting the process frees the \
                 sockets but the leak comes back."
            }
            (CloseWaitCause::UnreadAfterPeerClose, ConnSide::Client) => {
                "Pooled connections closed by the server sit idle and nobody reads them. Make the \
                 pool's idle timeout shorter than the server's keep-alive timeout, validate or evict \
                 idle connections, or poll them for EOF."
            }
            (CloseWaitCause::UnreadAfterPeerClose, ConnSide::Server) => {
                "The server holds connections it no longer reads after the client closed: idle \
                 keep-alive connections with no read timeout, or handlers parked elsewhere. Add an \
                 idle/read timeout and close on EOF."
            }
            (CloseWaitCause::RequestNeverRead, _) => {
                "Requests arrived and were never read: the workers that should read them are stuck \
                 or all busy. Take a thread dump (jstack, py-spy dump, gdb) to see what they block \
                 on; add read timeouts and size the pool for slow clients."
            }
        }
    }
}

fn finding(cx: &Context, key: &GroupKey, g: Group) -> Finding {
    let side = if key.side_is_server {
        ConnSide::Server
    } else {
        ConnSide::Client
    };
    let cause = CloseWaitCause::of(&g);
    let (local, remote) = match side {
        ConnSide::Server => (Some(key.endpoint), None),
        ConnSide::Client => (None, Some(key.endpoint)),
    };
    Finding {
        severity: severity(cx, &g),
        count: g.count,
        local,
        remote,
        evidence: evidence(cx, key, side, &g),
        suggestion: cause.suggestion(side).to_string(),
        side: Some(side),
        cause: Some(cause.into()),
        oldest_s: oldest_s(&g),
        sockets: g.sockets,
        ..Finding::of(&RULE, Some(TcpState::CloseWait))
    }
    .owned_by(g.owner)
}

fn oldest_s(g: &Group) -> Option<u64> {
    g.oldest_ms.map(|ms| u64::from(ms) / 1000)
}

/// By the stuck sockets; a warning whose oldest socket is old enough is critical.
fn severity(cx: &Context, g: &Group) -> Severity {
    let t = cx.thresholds;
    match Severity::grade(g.stuck, t.close_wait_warn, t.close_wait_crit) {
        Severity::Warning if oldest_s(g).is_some_and(|a| a >= t.close_wait_crit_age) => {
            Severity::Critical
        }
        s => s,
    }
}

/// Who holds how many where, then the kernel's evidence per Recv-Q case, age and fds.
fn evidence(cx: &Context, key: &GroupKey, side: ConnSide, g: &Group) -> Vec<String> {
    let who = who(g.owner);
    let at = endpoint(&key.endpoint);
    let mut evidence = vec![match side {
        ConnSide::Server => format!(
            "{who} holds {} CLOSE_WAIT sockets accepted on listener {at}",
            g.count
        ),
        ConnSide::Client => format!(
            "{who} holds {} CLOSE_WAIT sockets toward {at} (client side)",
            g.count
        ),
    }];
    evidence.push(
        "CLOSE-WAIT: the peer sent FIN first and the kernel acknowledged it; no timer ends this \
         state, only the application's close() (then LAST-ACK)"
            .to_string(),
    );
    recv_q_evidence(g, &mut evidence);
    age_evidence(cx, g, &mut evidence);
    if let Some(p) = g.owner
        && let Some(limit) = p.fd_soft_limit
    {
        evidence.push(format!(
            "pid {} has {} fds open of a soft limit of {limit} ({}%)",
            p.pid,
            p.fds,
            percent(u64::from(p.fds), limit)
        ));
    }
    evidence
}

/// What the Recv-Q of the sockets says, and which were never accepted.
fn recv_q_evidence(g: &Group, evidence: &mut Vec<String>) {
    if g.eof_read > 0 {
        evidence.push(format!(
            "{} with Recv-Q 0: the application read EOF and never called close()",
            g.eof_read
        ));
    }
    if g.fin_unread > 0 {
        evidence.push(format!(
            "{} with Recv-Q 1: only the peer's FIN is unread; the application has not read since \
             the peer closed",
            g.fin_unread
        ));
    }
    if g.data_unread > 0 {
        evidence.push(format!(
            "{} with Recv-Q > 1 (up to {} bytes): request data never read at all",
            g.data_unread, g.max_unread
        ));
    }
    if g.never_accepted > 0 {
        evidence.push(format!(
            "{} never accept()ed (inode 0): still in the listener's accept queue",
            g.never_accepted
        ));
    }
}

/// How long ago the peers closed, and how many are too young to count.
fn age_evidence(cx: &Context, g: &Group, evidence: &mut Vec<String>) {
    match (g.oldest_ms, g.newest_ms) {
        (Some(old), Some(new)) => evidence.push(format!(
            "peer closed {} ago (oldest), {} ago (newest), per tcp_info",
            human_duration(u64::from(old) / 1000),
            human_duration(u64::from(new) / 1000)
        )),
        _ => evidence.push("age unknown: no tcp_info from this socket source".to_string()),
    }
    if g.stuck < g.count {
        evidence.push(format!(
            "{} younger than {} s, possibly still being closed; not counted toward severity",
            g.count - g.stuck,
            cx.thresholds.close_wait_min_age
        ));
    }
}

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
//!   idle pooled connection nobody checks). Recv-Q > 1 on the server side:
//!   request bytes were never read at all (a stuck or exhausted worker). On
//!   the client side any Recv-Q >= 1 means unread since the peer closed: the
//!   bytes before the FIN are the rest of a response or the server's goodbye
//!   (`farewell`), never a request, and the fix is the pool's idle timeout,
//!   not a thread dump — unless the runtime's HTTP client reads its own idle
//!   pool (Go, Node): then nobody reads because the application holds a
//!   response it never closed, and no pool setting helps.
//! - Inode 0 on a listening port: the kernel completed the handshake but the
//!   application never called `accept()`: the connection sits in the accept
//!   queue, and its client gave up. No process holds it, so these sockets are
//!   a group of their own (cause `never_accepted`), "queued, not held" on the
//!   listener's holder, never counted among the sockets it holds.
//! - The local port is a listening port (server side) or not (client side,
//!   a pool toward the remote endpoint).
//! - tcp_info's time since the last segment from the peer is the time since
//!   its FIN: how long the socket has been stuck. Age alone makes a server's
//!   leak critical, not a client's stale pool: a bounded pool the server
//!   closed stays flat, so it needs growth, fd pressure or a count far beyond
//!   a pool.
//!
//! Sockets are grouped per owning process and per listening port (server
//! side) or remote endpoint (client side).

use super::cause::cause_enum;
use super::{
    ConnSide, Context, Finding, Rule, Severity, canonical, farewell, human_duration, idioms,
    percent, plural, who,
};
use crate::snapshot::{Process, Socket, endpoint};
use crate::tcp::TcpState;
use std::collections::BTreeMap;
use std::net::SocketAddr;

pub const RULE: Rule = Rule {
    kind: "close_wait_leak",
    unit: super::Unit::Sockets,
    title: "the peer closed, the application never did (CLOSE-WAIT)",
    about: "Sockets stuck in CLOSE-WAIT: the peer closed, the application did not. Only the \
            application's close() ends the state. Recv-Q 0: it read EOF and never closed \
            (cause never_closed_after_eof); Recv-Q 1: nobody read the socket since the peer \
            closed, typically idle pooled connections (unread_after_peer_close); Recv-Q > 1 on \
            the server side: request data never read (request_never_read). On the client side \
            any Recv-Q >= 1 is unread_after_peer_close: the bytes before the FIN are the rest \
            of a response nobody read or the server's goodbye (a TLS close_notify alert, a \
            database's idle-timeout error, an HTTP/2 GOAWAY), never a request; in a runtime \
            whose HTTP client reads its own idle pool (Go, Node) it is response_not_closed: the \
            application holds a response it never closed. Fix the code path that should close, \
            or evict idle pooled connections before the server does. A client's stale pool is critical only \
            when it grows, presses on the fd limit or reaches --close-wait-crit, not by age. \
            Inode 0 on a listening port: queued in the accept queue, never accept()ed, the \
            client gave up (never_accepted): told apart, on the listener's holder, as queued, \
            not held.",
    run: find,
};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
    pid: Option<u32>,
    side_is_server: bool,
    /// Connections in the listener's accept queue (inode 0): queued, not held.
    queued: bool,
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
    min_unread: u32,
    max_unread: u32,
    oldest_ms: Option<u32>,
    newest_ms: Option<u32>,
}

/// Time since the peer's FIN, from tcp_info: the last segment the peer sent.
fn age_ms(s: &Socket) -> Option<u32> {
    s.tcp_info()?.last_ack_recv_ms
}

/// Old enough (or of unknown age) to count as stuck rather than still closing.
pub(super) fn is_stuck(cx: &Context, s: &Socket) -> bool {
    let min_age_ms = cx.thresholds.close_wait_min_age.saturating_mul(1000);
    age_ms(s).is_none_or(|a| u64::from(a) >= min_age_ms)
}

pub fn find(cx: &Context) -> Vec<Finding> {
    let mut groups: BTreeMap<GroupKey, Group> = BTreeMap::new();
    for (i, s) in cx.in_state(TcpState::CloseWait) {
        let listener = cx.index.listener_of(i);
        let owner = cx.index.responsible(i);
        let key = GroupKey {
            pid: owner.map(|p| p.pid),
            side_is_server: listener.is_some(),
            queued: listener.is_some() && s.inode() == 0,
            endpoint: canonical(listener.map_or(s.remote(), |l| l.local())),
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
        match s.recv_q() {
            0 => g.eof_read += 1,
            1 => g.fin_unread += 1,
            n => {
                g.min_unread = if g.data_unread == 0 {
                    n
                } else {
                    g.min_unread.min(n)
                };
                g.data_unread += 1;
                g.max_unread = g.max_unread.max(n);
            }
        }
    }
    groups
        .into_iter()
        .filter(|(_, g)| g.stuck > 0)
        .map(|(key, g)| finding(cx, &key, g))
        .collect()
}

cause_enum! {
/// Which of the three Recv-Q cases dominates the group.
pub enum CloseWaitCause {
    NeverClosedAfterEof = "never_closed_after_eof": "CLOSE-WAIT sockets with nothing left \
        unread: the peer closed, the application read the end of the stream (read() returned \
        0) and never called close(). Fix: close the socket when a read returns 0, on every \
        path (finally, defer, a guard that drops it).",
    UnreadAfterPeerClose = "unread_after_peer_close": "CLOSE-WAIT sockets with data still \
        unread before the peer's FIN: the application stopped reading before the peer closed. \
        On a client, idle pooled connections the server closed, which the pool never checks; \
        on a server, connections whose idle clients left while no timeout closed them. Fix: \
        check pooled connections before use, or keep their idle time below the server's; give \
        a server an idle timeout.",
    RequestNeverRead = "request_never_read": "CLOSE-WAIT sockets whose Recv-Q holds a request \
        as well as the FIN: the client sent it, waited, and gave up; the application accepted \
        the connection and never read it, its workers busy or blocked. Fix: see what the \
        workers do (a thread dump); bound the time a request may take; add workers or shed \
        load.",
    /// Queued in a listener's accept queue, never accept()ed: the client gave up.
    NeverAccepted = "never_accepted": NEVER_ACCEPTED_ABOUT,
    /// Client side, in a runtime whose HTTP client reads its idle pooled
    /// connections: a response (or stream) the application never closed.
    ResponseNotClosed = "response_not_closed": "Client side, in a runtime whose HTTP client \
        reads its own idle pooled connections: CLOSE-WAIT sockets still holding data are \
        responses (or streams) the application took and never closed, so the pool never got \
        their connections back. Fix: close every response body (defer resp.Body.Close(), \
        try-with-resources), on the error paths too.",
}
}

/// What `connleak explain never_accepted` says.
const NEVER_ACCEPTED_ABOUT: &str = "CLOSE-WAIT sockets with inode 0 on a listening port: \
    the kernel completed the handshake and queued the connection, the application never called \
    accept(), and the client gave up (its FIN turned the queued socket CLOSE-WAIT). No process \
    holds them: they are queued, not held, and told on the listener's holder apart from the \
    sockets it holds. Each fills a slot of the accept queue (new handshakes are dropped when \
    it is full) and wastes a worker when it is finally accepted, only to read EOF. Fix: see \
    what the thread that calls accept() does (a thread dump): accept in a loop of its own, \
    hand connections to workers without blocking; a larger backlog only buys time.";

impl CloseWaitCause {
    /// Queued connections are their own case. On the client side the bytes
    /// before the FIN are the server's goodbye, so any unread Recv-Q counts
    /// as unread since the peer closed.
    /// A client whose runtime reads its own idle pool holds a response on
    /// what nobody reads: the application's, not the pool's.
    fn of(key: &GroupKey, g: &Group, side: ConnSide) -> CloseWaitCause {
        let unread = match side {
            ConnSide::Client => g.fin_unread + g.data_unread,
            ConnSide::Server => g.fin_unread.max(g.data_unread),
        };
        let reads_pool = pool_reader(g, key).is_some();
        if key.queued {
            CloseWaitCause::NeverAccepted
        } else if g.eof_read >= unread {
            CloseWaitCause::NeverClosedAfterEof
        } else if side == ConnSide::Client && reads_pool {
            CloseWaitCause::ResponseNotClosed
        } else if side == ConnSide::Client || g.fin_unread >= g.data_unread {
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
                 pool's idle timeout shorter than the server's keep-alive timeout (urllib3/requests: \
                 a smaller pool or retries on stale connections; HikariCP: maxLifetime below the \
                 server's; Go: http.Transport.IdleConnTimeout), validate or \
                 evict idle connections, or poll them for EOF."
            }
            (CloseWaitCause::UnreadAfterPeerClose, ConnSide::Server) => {
                "The server holds connections it no longer reads after the client closed: idle \
                 keep-alive connections with no read timeout, or handlers parked elsewhere. Add an \
                 idle/read timeout and close on EOF."
            }
            (CloseWaitCause::ResponseNotClosed, _) => {
                "The application holds responses it never closed: its runtime's HTTP client \
                 reads idle pooled connections and closes those the server shut, so these are \
                 connections a response still holds. Close every response body on every path \
                 (and read it to the end to reuse the connection); a pool setting changes \
                 nothing here."
            }
            (CloseWaitCause::NeverAccepted, _) => {
                "Clients give up before the application accepts their connection. See what the \
                 thread that calls accept() does (a thread dump: jstack, py-spy dump, gdb): accept \
                 in a loop of its own and hand connections to workers without blocking. A larger \
                 backlog or somaxconn only buys time."
            }
            (CloseWaitCause::RequestNeverRead, _) => {
                // Server side only: a client's unread bytes are the server's goodbye.
                "Requests arrived and were never read: the workers that should read them are stuck \
                 or all busy. Take a thread dump (jstack, py-spy dump, gdb) to see what they block \
                 on; add read timeouts and size the pool for slow clients."
            }
        }
    }
}

/// The HTTP client of the group's owner that reads its own idle pooled
/// connections (Go's net/http Transport, Node's http.Agent), when the
/// connections are that client's: toward a database's or a broker's port
/// they belong to a driver's pool (database/sql, pgx, a Redis client), which
/// reads nothing while idle.
fn pool_reader(g: &Group, key: &GroupKey) -> Option<&'static str> {
    let runtime = g.owner.and_then(|p| p.runtime)?;
    let client = runtime.idle_pool_reader()?;
    (!farewell::speaks_its_own_protocol(key.endpoint.port())).then_some(client)
}

fn finding(cx: &Context, key: &GroupKey, g: Group) -> Finding {
    let side = if key.side_is_server {
        ConnSide::Server
    } else {
        ConnSide::Client
    };
    let cause = CloseWaitCause::of(key, &g, side);
    let stale_pool = side == ConnSide::Client && cause == CloseWaitCause::UnreadAfterPeerClose;
    let (local, remote) = match side {
        ConnSide::Server => (Some(key.endpoint), None),
        ConnSide::Client => (None, Some(key.endpoint)),
    };
    let mut evidence = evidence(cx, key, side, &g, stale_pool);
    if let (CloseWaitCause::ResponseNotClosed, Some(p), Some(client)) =
        (cause, g.owner, pool_reader(&g, key))
    {
        evidence.insert(
            2,
            format!(
                "pid {}'s HTTP client, {client}, reads its idle pooled connections and closes \
                 those the server shut: a CLOSE-WAIT here is a connection the application \
                 still holds a response on (a body never closed), not an idle pooled one",
                p.pid
            ),
        );
    }
    Finding {
        severity: severity(cx, &g, stale_pool),
        count: g.count,
        graded: Some(g.stuck),
        local,
        remote,
        evidence,
        suggestion: idioms::suggest(
            cause.suggestion(side),
            g.owner,
            idioms::Need::of_close_wait(cause, side, g.owner),
        ),
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

/// By the stuck sockets; a warning whose oldest socket is old enough is
/// critical, except a client's stale pool: a bounded pool the server closed
/// stays as it is however old, so it is critical only under fd pressure (or
/// by count, or by growth over a sampled window, which the window adds).
fn severity(cx: &Context, g: &Group, stale_pool: bool) -> Severity {
    let t = cx.thresholds;
    match Severity::grade(g.stuck, t.close_wait_warn, t.close_wait_crit) {
        Severity::Warning if stale_pool && fd_pressure(cx, g) => Severity::Critical,
        Severity::Warning if !stale_pool && old(cx, g) => Severity::Critical,
        s => s,
    }
}

/// The oldest socket is past `--close-wait-crit-age`.
fn old(cx: &Context, g: &Group) -> bool {
    oldest_s(g).is_some_and(|a| a >= cx.thresholds.close_wait_crit_age)
}

/// The owner uses `--fd-warn` percent of its soft fd limit or more.
fn fd_pressure(cx: &Context, g: &Group) -> bool {
    g.owner
        .and_then(|p| Some(percent(u64::from(p.fds), p.fd_soft_limit?)))
        .is_some_and(|used| used >= cx.thresholds.fd_warn)
}

/// Who holds how many where, then the kernel's evidence per Recv-Q case, age and fds.
fn evidence(
    cx: &Context,
    key: &GroupKey,
    side: ConnSide,
    g: &Group,
    stale_pool: bool,
) -> Vec<String> {
    let who = who(g.owner);
    let at = endpoint(&key.endpoint);
    if key.queued {
        return queued_evidence(cx, &who, &at, g);
    }
    let mut evidence = vec![match side {
        ConnSide::Server => format!(
            "{who} holds {} accepted on listener {at}",
            plural(g.count, "CLOSE_WAIT socket")
        ),
        ConnSide::Client => format!(
            "{who} holds {} toward {at} (client side)",
            plural(g.count, "CLOSE_WAIT socket")
        ),
    }];
    evidence.push(
        "CLOSE-WAIT: the peer sent FIN first and the kernel acknowledged it; no timer ends this \
         state, only the application's close() (then LAST-ACK)"
            .to_string(),
    );
    recv_q_evidence(key, side, g, &mut evidence);
    age_evidence(cx, g, &mut evidence);
    if stale_pool && old(cx, g) && !fd_pressure(cx, g) {
        evidence.push(format!(
            "not critical by age alone: a stale pool stays as large as the pool (10 by default in \
             urllib3 and HikariCP) however old it gets; critical when it grows over a sampled \
             window (--samples), presses on the fd limit, or reaches {} sockets",
            cx.thresholds.close_wait_crit
        ));
    }
    if let Some(p) = g.owner
        && let Some(limit) = p.fd_soft_limit
    {
        let pressing = if stale_pool && fd_pressure(cx, g) {
            ": a stale pool pressing on the fd limit, critical"
        } else {
            ""
        };
        evidence.push(format!(
            "pid {} has {} fds open of a soft limit of {limit} ({}%){pressing}",
            p.pid,
            p.fds,
            percent(u64::from(p.fds), limit)
        ));
    }
    evidence
}

/// The connections of a listener's accept queue whose clients gave up:
/// queued, not held, so no Recv-Q case and no fd count applies.
fn queued_evidence(cx: &Context, who: &str, at: &str, g: &Group) -> Vec<String> {
    let mut evidence = vec![
        format!(
            "{} CLOSE_WAIT connections queued, not held, on listener {at} of {who}: never \
             accept()ed (inode 0, no process has an fd for them)",
            g.count
        ),
        "the kernel completed the handshake and queued each connection; its client gave up \
         (sent FIN) before the application called accept(): each fills a slot of the accept \
         queue and wastes a worker when it is finally accepted, only to read EOF"
            .to_string(),
    ];
    age_evidence(cx, g, &mut evidence);
    evidence
}

/// What the Recv-Q of the sockets says.
fn recv_q_evidence(key: &GroupKey, side: ConnSide, g: &Group, evidence: &mut Vec<String>) {
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
    if g.data_unread > 0 && side == ConnSide::Client {
        // Recv-Q counts the FIN as one byte: the server's last data is one less.
        let (min, max) = (g.min_unread - 1, g.max_unread - 1);
        let sizes = if min == max {
            format!("{min} bytes")
        } else {
            format!("{min}-{max} bytes")
        };
        let what = farewell::guess_range(min, max, key.endpoint.port())
            .map(|g| format!("; {g}"))
            .unwrap_or_default();
        let reads_pool = pool_reader(g, key).is_some();
        let whose = match (what.is_empty(), reads_pool) {
            // A goodbye the size tells, or else: the rest of a response nobody read.
            (false, _) => what,
            (true, true) => "; the rest of a response the application never read: its \
                             runtime reads idle pooled connections, so nobody reads these"
                .to_string(),
            (true, false) => {
                "; the rest of a response nobody read, or the server's goodbye".to_string()
            }
        };
        evidence.push(format!(
            "{} with Recv-Q > 1: {sizes} the server sent before its FIN, unread since the peer \
             closed (never a request){whose}",
            g.data_unread
        ));
    } else if g.data_unread > 0 {
        evidence.push(format!(
            "{} with Recv-Q > 1 (up to {} bytes): request data never read at all",
            g.data_unread, g.max_unread
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

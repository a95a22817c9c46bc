//! `worker_pool_exhausted`: a fixed pool whose workers are all busy or
//! blocked, so connections the kernel accepted (and the accept loop handed
//! over) are never read.
//!
//! The socket table shows it as request bytes waiting unread in the server's
//! own fd table: ESTABLISHED with Recv-Q > 0 for a while, or CLOSE_WAIT with
//! Recv-Q > 1 (the request plus the FIN of a client that gave up). The owner's
//! threads say why: which system call each is blocked in, and on which socket.
//! The finding stands on the socket evidence alone, whatever the workers block
//! on; the threads only explain it, pool by pool, and name the dependency the
//! workers wait on when it is an outgoing connection. Unread data on an
//! ESTABLISHED connection counts only after `unread_min_age` seconds without
//! new data, or unread in every sample of the window over that long: a shorter wait is backpressure (a proxy streaming to a slow
//! upstream, a broker muting a connection), not a stuck pool. A process that
//! serves from an event loop is left to `event_loop_not_reading`.

use super::cause::cause_enum;
use super::idioms::{Need, suggest};
use super::pools::{self, Pool, Wait};
use super::{Context, Finding, Rule, Severity, canonical, plural, who};
use crate::snapshot::{Process, Runtime, Socket, endpoint};
use crate::tcp::TcpState;
use std::collections::BTreeMap;
use std::net::SocketAddr;

pub const RULE: Rule = Rule {
    kind: "worker_pool_exhausted",
    unit: super::Unit::Connections,
    title: "a server's workers are all blocked; accepted requests go unread",
    about: "A server's workers are all busy or blocked, so accepted connections are never \
            read: request bytes wait in Recv-Q of ESTABLISHED sockets (for 10 s or more: a \
            shorter wait is backpressure), or of CLOSE-WAIT ones once the client gave up. The \
            owner's threads, grouped into pools by name, show what the workers block on: idle \
            accepted clients (add read timeouts), an outgoing dependency that does not answer \
            (named: put a timeout and a bulkhead on it), or a lock. Event-loop servers (Go, \
            Node, nginx, Netty, asyncio) are event_loop_not_reading instead.",
    run: find,
};

cause_enum! {
/// What the owner's threads say about why nobody reads.
pub enum WorkerPoolCause {
    /// At least half the workers block reading accepted clients.
    WorkersBlockedOnReads = "workers_blocked_on_reads": "At least half the worker threads \
        block reading accepted clients that send nothing, so new requests wait behind them. \
        Fix: give reads a timeout (SO_RCVTIMEO, a read deadline) or read without blocking.",
    /// At least half the workers wait on one outgoing connection's answer.
    WorkersBlockedOnDependency = "workers_blocked_on_dependency": "At least half the worker \
        threads wait on one outgoing connection's answer: a slow dependency (a database, an \
        upstream service) holds the pool. Fix: a timeout on the dependency's calls, and a \
        bound on how many workers may wait on it.",
    WorkersBlockedElsewhere = "workers_blocked_elsewhere": "The worker threads are busy or \
        blocked on something other than sockets (locks, disk, CPU), so accepted requests are \
        not read. Fix: a thread dump says where they wait; add workers only once that is \
        understood.",
    /// The threads could not be read.
    WorkersUnknown = "workers_unknown": "The owner's threads could not be read (permission \
        denied, or it exited), so why its workers do not read is unknown. Run connleak as \
        root to read their wait channels.",
}
}

impl WorkerPoolCause {
    fn suggestion(self, owner: &Process, dependency: Option<SocketAddr>) -> String {
        let (generic, need) = match self {
            WorkerPoolCause::WorkersBlockedOnReads => (
                "The workers sit in blocking reads on connections whose clients send nothing, so \
                 new requests wait behind them. Give reads a timeout (SO_RCVTIMEO, a read \
                 deadline), size the pool for slow or idle clients, or move to non-blocking I/O."
                    .to_string(),
                Need::ServerIdleTimeout,
            ),
            WorkerPoolCause::WorkersBlockedOnDependency => {
                let dep = dependency.map_or_else(|| "a dependency".to_string(), |d| endpoint(&d));
                (
                    format!(
                        "The workers wait on {dep}, a dependency that does not answer, so every \
                         worker is taken and new requests wait unread. Put a connect and read \
                         timeout on calls toward {dep} and a bulkhead (a bounded pool or \
                         semaphore of its own) so it cannot take every worker; a read timeout \
                         toward the clients does not help here."
                    ),
                    Need::DependencyTimeout,
                )
            }
            WorkerPoolCause::WorkersBlockedElsewhere => (
                "The workers are blocked on something other than their clients (a lock, a slow \
                 dependency, a sleep). Take a thread dump (jstack, py-spy dump, gdb -p) to see \
                 what they wait on; put timeouts on that dependency; size the pool."
                    .to_string(),
                Need::ThreadDump,
            ),
            WorkerPoolCause::WorkersUnknown => (
                "Nobody reads these requests: take a thread dump of the server to see what its \
                 workers do, and add read timeouts and a bounded pool."
                    .to_string(),
                Need::ThreadDump,
            ),
        };
        suggest(&generic, Some(owner), need)
    }
}

/// A request waiting unread in an accepted connection; an ESTABLISHED one
/// only once it stayed unread for `min_age_ms` (shorter is backpressure):
/// nothing new arrived for that long (tcp_info), or it held unread bytes in
/// every sample of the window over that long.
fn unread_request(cx: &Context, s: &Socket, min_age_ms: u64) -> bool {
    let now = cx.snapshot.meta.taken_at_ms;
    s.has_unread_request()
        && (s.state() != TcpState::Established
            || s.tcp_info()
                .and_then(|t| t.last_data_recv_ms)
                .is_some_and(|ms| u64::from(ms) >= min_age_ms)
            || cx
                .window
                .unread_ms(s, now)
                .is_some_and(|ms| ms >= min_age_ms))
}

/// Accepted connections with requests unread long enough, by (holder, listener).
pub(super) fn unread_groups(cx: &Context) -> BTreeMap<(u32, SocketAddr), Vec<usize>> {
    let min_age_ms = cx.thresholds.unread_min_age.saturating_mul(1000);
    let mut groups: BTreeMap<(u32, SocketAddr), Vec<usize>> = BTreeMap::new();
    for (i, s) in cx.sockets() {
        if s.inode() == 0 || !unread_request(cx, s, min_age_ms) {
            continue;
        }
        let (Some(owner), Some(listener)) = (cx.index.owner(i), cx.index.listener_for(&s.local()))
        else {
            continue;
        };
        groups
            .entry((owner.pid, canonical(listener.local())))
            .or_default()
            .push(i);
    }
    groups
}

/// Whether `owner` serves its connections from an event loop: by its
/// runtime, or by threads parked in epoll_wait and none in blocking reads.
pub(super) fn serves_by_event_loop(owner: &Process, pools: &[Pool]) -> bool {
    owner.runtime.is_some_and(Runtime::is_event_loop) || pools::looks_like_event_loop(pools)
}

pub fn find(cx: &Context) -> Vec<Finding> {
    unread_groups(cx)
        .into_iter()
        .filter_map(|((pid, listener), sockets)| {
            let owner = cx.index.process(pid)?;
            let pools = pools::pools(cx.index, owner);
            (!serves_by_event_loop(owner, &pools))
                .then(|| finding(cx, owner, &pools, listener, sockets))
        })
        .collect()
}

/// The socket evidence both thread models share: what waits unread, where.
pub(super) fn unread_evidence(
    cx: &Context,
    owner: &Process,
    listener: SocketAddr,
    sockets: &[usize],
) -> Vec<String> {
    let count = sockets.len() as u64;
    let (mut closed, mut bytes) = (0, 0u64);
    for &i in sockets {
        let s = &cx.snapshot.sockets[i];
        closed += u64::from(s.state() == TcpState::CloseWait);
        bytes += u64::from(s.recv_q());
    }
    let mut evidence = vec![
        format!(
            "{} accepted on {} by {}, with {bytes} request bytes nobody read",
            plural(count, "connection"),
            endpoint(&listener),
            who(Some(owner))
        ),
        format!(
            "{closed} of them in CLOSE-WAIT with Recv-Q > 1: the client sent its request, waited, \
             gave up and closed; {} still ESTABLISHED with data waiting",
            count - closed
        ),
    ];
    if let Some(r) = owner.runtime {
        evidence.push(format!("runtime: {}", r.name()));
    }
    evidence
}

fn finding(
    cx: &Context,
    owner: &Process,
    pools: &[Pool],
    listener: SocketAddr,
    sockets: Vec<usize>,
) -> Finding {
    let t = cx.thresholds;
    let count = sockets.len() as u64;
    let mut evidence = unread_evidence(cx, owner, listener, &sockets);
    if owner.tasks.is_empty() {
        evidence.push("its threads could not be read (needs root or CAP_SYS_PTRACE)".to_string());
    }
    evidence.extend(pools.iter().take(MAX_POOLS_SHOWN).map(pools::evidence));
    let workers = pools::workers(pools);
    let dependency = workers.and_then(pools::main_dependency);
    let cause = match workers {
        None => WorkerPoolCause::WorkersUnknown,
        Some(w) => {
            let total = w.threads.len();
            let clients = w.count(|x| *x == Wait::Client);
            match dependency {
                Some((_, n)) if n >= clients && n * 2 >= total => {
                    WorkerPoolCause::WorkersBlockedOnDependency
                }
                _ if w.reading() * 2 >= total => WorkerPoolCause::WorkersBlockedOnReads,
                _ => WorkerPoolCause::WorkersBlockedElsewhere,
            }
        }
    };
    Finding {
        severity: Severity::grade(count, t.unread_warn, t.unread_crit),
        count,
        local: Some(listener),
        evidence,
        suggestion: cause.suggestion(owner, dependency.map(|(d, _)| d)),
        side: Some(super::ConnSide::Server),
        cause: Some(cause.into()),
        sockets,
        ..Finding::of(&RULE, None)
    }
    .owned_by(Some(owner))
}

/// Pools named in the evidence at most, largest first.
pub(super) const MAX_POOLS_SHOWN: usize = 4;

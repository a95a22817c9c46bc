//! `accept_queue_full`: a listener that stopped accepting.
//!
//! The kernel completes handshakes on its own and queues the connections for
//! `accept()`. A LISTEN socket's Recv-Q is that queue and its Send-Q the
//! backlog (already capped by `somaxconn`). Connections that wait there have
//! no fd, hence inode 0, and when their clients give up they turn CLOSE-WAIT
//! still unaccepted. Once the queue is full, new handshakes are dropped
//! (`ListenOverflows`, `ListenDrops`). The holder's threads (read for any
//! listener with a queue) say why nobody accepts: workers all held by idle
//! clients, and whether any thread is in `accept()` at all.

use super::idioms::{Need, suggest};
use super::pools::{self, Wait};
use super::{Context, Finding, Rule, Severity, canonical, close_wait, plural, who};
use crate::snapshot::{Process, Socket, endpoint};
use crate::tcp::TcpState;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::net::SocketAddr;

pub const RULE: Rule = Rule {
    kind: "accept_queue_full",
    unit: super::Unit::Connections,
    title: "a listener stopped accepting; its accept queue fills",
    about: "A listener whose accept queue (LISTEN Recv-Q) fills: connections wait there for \
            seconds, or their clients gave up, or the queue holds more than its backlog \
            (Send-Q, capped by somaxconn) and new handshakes are dropped (ListenOverflows): \
            the application stopped calling accept() or calls it too slowly. Queued \
            connections have inode 0. A queue is called full only past its backlog (or with \
            overflows rising). Find why the accept loop is stuck or slow; a larger backlog or \
            somaxconn only buys time.",
    run: find,
};

pub fn find(cx: &Context) -> Vec<Finding> {
    // Since boot it is context; growing during a sampled window, a queue overflowing now.
    let moved = cx
        .window
        .counter_delta(cx.snapshot, "TcpExt", "ListenOverflows")
        .filter(|&d| d > 0);
    let overflowing = moved.is_some();
    let mut waiting = queues(cx);
    let mut out = Vec::new();
    for (li, l) in cx.in_state(TcpState::Listen) {
        let queued = waiting.remove(&li).unwrap_or_default();
        let backlog = cx.snapshot.backlog(l);
        // The kernel drops handshakes once the queue holds more than the backlog.
        let full = backlog.is_some_and(|b| b > 0 && l.recv_q() > b);
        let gave_up = queued
            .iter()
            .filter(|(_, st)| *st == TcpState::CloseWait)
            .count() as u64;
        // ListenOverflows is the namespace's: it tells on the listeners at least half full.
        let filling = backlog.is_none_or(|b| u64::from(l.recv_q()) * 2 >= u64::from(b));
        // A connection waiting a moment is an accept loop at work, not a stuck one.
        let waited = queued
            .iter()
            .any(|&(i, _)| close_wait::is_stuck(cx, &cx.snapshot.sockets[i]));
        if !(full || gave_up > 0 || waited || (overflowing && filling)) {
            continue;
        }
        let severity = if full || gave_up >= cx.thresholds.unread_warn || (overflowing && filling) {
            Severity::Warning
        } else {
            Severity::Info
        };
        let owner = cx.index.owner(li);
        let mut evidence = vec![
            queue_line(cx, l, owner, backlog),
            format!(
                "{} waiting unaccepted (inode 0: no process has an fd for them); {gave_up} \
                 of them in CLOSE-WAIT, their clients already gave up",
                plural(queued.len() as u64, "connection")
            ),
        ];
        evidence.extend(sharing_evidence(cx, l));
        evidence.push(if full {
            "the queue is full (more than its backlog): further handshakes are dropped and \
             clients retry or time out"
                .to_string()
        } else {
            "the queue is not full: handshakes still complete, and the connections wait for \
             an accept() that does not come"
                .to_string()
        });
        if let Some(threads) = owner.and_then(|o| threads_story(cx, o, l)) {
            evidence.push(threads);
        }
        counter_evidence(cx, moved, &mut evidence);
        let mut sockets: Vec<usize> = queued.iter().map(|(i, _)| *i).collect();
        sockets.push(li);
        out.push(
            Finding {
                severity,
                count: u64::from(l.recv_q()).max(queued.len() as u64),
                local: Some(canonical(l.local())),
                evidence,
                suggestion: suggest(
                    "The accept loop is stuck or too slow: see what the thread that \
                             calls accept() does (a thread dump), and whether it waits for a \
                             free worker. A larger backlog or somaxconn only buys time.",
                    owner,
                    Need::ThreadDump,
                ),
                side: Some(super::ConnSide::Server),
                sockets,
                ..Finding::of(&RULE, Some(TcpState::Listen))
            }
            .owned_by(owner),
        );
    }
    out
}

/// "accept queue 50 of 50; 200 of 200 worker threads blocked in recvfrom()
/// on idle clients; no thread in accept()", from the holder's threads.
fn threads_story(cx: &Context, owner: &Process, l: &Socket) -> Option<String> {
    if owner.tasks.is_empty() {
        return None;
    }
    let pools = pools::pools(cx.index, owner);
    let mut parts = vec![format!("accept queue {} of {}", l.recv_q(), l.send_q())];
    if let Some(w) = pools::workers(&pools) {
        let clients: Vec<_> = w
            .threads
            .iter()
            .filter(|t| t.wait == Wait::Client)
            .collect();
        let idle = clients
            .iter()
            .filter(|t| t.socket.is_some_and(|s| s.recv_q() == 0))
            .count();
        let Some(call) = clients.first().and_then(|t| t.task.syscall.as_deref()) else {
            parts.push(pools::evidence(w));
            return Some(with_accept(parts, &pools));
        };
        parts.push(format!(
            "{} of {} worker threads (pool `{}`) blocked in {call}() on clients, {idle} of \
             them idle",
            clients.len(),
            w.threads.len(),
            w.label
        ));
    }
    Some(with_accept(parts, &pools))
}

/// The parts, and whether any thread is in accept(). An event loop
/// (nginx, Node, Go) accepts when epoll says so: no thread blocks in accept()
/// there, and saying "no thread in accept()" would point the wrong way.
fn with_accept(mut parts: Vec<String>, pools: &[pools::Pool]) -> String {
    let polling = pools
        .iter()
        .flat_map(|p| &p.threads)
        .any(|t| t.wait == Wait::EventLoop);
    parts.push(match (pools::accepting(pools), polling) {
        (0, false) => "no thread in accept()".to_string(),
        (0, true) => "no thread blocked in accept(): its event loop accepts".to_string(),
        (n, _) => format!("{n} thread(s) in accept()"),
    });
    parts.join("; ")
}

/// "listener 127.0.0.1:80 of pid 1 (nginx): accept queue 9 of a backlog of 8".
fn queue_line(cx: &Context, l: &Socket, owner: Option<&Process>, backlog: Option<u32>) -> String {
    format!(
        "listener {} of {}: accept queue {}{}{}",
        endpoint(&l.local()),
        who(owner),
        l.recv_q(),
        backlog.map_or(
            " (backlog unknown: /proc/net/tcp does not show it)".to_string(),
            |b| format!(" of a backlog of {b}")
        ),
        cx.snapshot
            .kernel
            .sysctls
            .somaxconn
            .map(|m| format!(" (somaxconn {m})"))
            .unwrap_or_default()
    )
}

/// With SO_REUSEPORT, that this listener is one of several on its address.
fn sharing_evidence(cx: &Context, l: &Socket) -> Option<String> {
    let sharing = cx.index.listeners_at(&l.local()).count();
    (sharing > 1).then(|| {
        format!(
            "one of {sharing} listeners on this address (SO_REUSEPORT), each with its own \
             queue and process; the kernel does not say which queue a waiting connection \
             is in, so each listener is given as many as its queue holds"
        )
    })
}

/// The namespace's listen-queue counters, and how much they moved in the window.
fn counter_evidence(cx: &Context, moved: Option<i64>, evidence: &mut Vec<String>) {
    let k = &cx.snapshot.kernel;
    if let (Some(o), Some(d)) = (
        k.counter("TcpExt", "ListenOverflows"),
        k.counter("TcpExt", "ListenDrops"),
    ) {
        evidence.push(format!(
            "ListenOverflows {o}, ListenDrops {d} {}",
            cx.snapshot.meta.netns.counted_since()
        ));
    }
    if let Some(d) = moved {
        evidence.push(format!(
            "ListenOverflows grew by {d} during the sampled window: handshakes dropped on a \
             full accept queue now"
        ));
    }
}

/// Unaccepted connections (inode 0), by the listener (its index) they queue on.
fn queues(cx: &Context) -> FxHashMap<usize, Vec<(usize, TcpState)>> {
    let mut waiting: FxHashMap<SocketAddr, Vec<(usize, TcpState)>> = FxHashMap::default();
    for (i, s) in cx.sockets() {
        if s.inode() == 0
            && matches!(s.state(), TcpState::Established | TcpState::CloseWait)
            && let Some(l) = cx.index.listener_for(&s.local())
        {
            waiting
                .entry(canonical(l.local()))
                .or_default()
                .push((i, s.state()));
        }
    }
    // Listeners by address: several share one with SO_REUSEPORT, each with its own queue.
    let mut listeners: BTreeMap<SocketAddr, Vec<(usize, &Socket)>> = BTreeMap::new();
    for (li, l) in cx.in_state(TcpState::Listen) {
        listeners
            .entry(canonical(l.local()))
            .or_default()
            .push((li, l));
    }
    let mut of_listener = FxHashMap::default();
    for (addr, mut group) in listeners {
        let mut queued = waiting.remove(&addr).unwrap_or_default();
        // The kernel does not say which queue holds a connection: each listener
        // takes as many as its own queue length, the fullest one the rest.
        group.sort_by_key(|(_, l)| l.recv_q());
        let last = group.len() - 1;
        for (k, (li, l)) in group.into_iter().enumerate() {
            let take = if k == last {
                queued.len()
            } else {
                queued.len().min(l.recv_q() as usize)
            };
            of_listener.insert(li, queued.drain(..take).collect());
        }
    }
    of_listener
}

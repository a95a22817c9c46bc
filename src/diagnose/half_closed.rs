//! `half_closed_peer`: one end shut down its side (FIN-WAIT-2, waiting for the
//! peer's FIN) and the other end never closes (CLOSE-WAIT).
//!
//! When both ends live on this host the two sockets pair up (the same
//! four-tuple, reversed), and both processes can be named: the one that never
//! closes, and the one that half-closed and waits. A FIN-WAIT-2 socket that no
//! process holds any more (orphaned) is bounded by `tcp_fin_timeout`.

use super::cause::cause_enum;
use super::{Context, Finding, Rule, Severity, canonical, plural, who};
use crate::snapshot::{Socket, endpoint};
use crate::tcp::TcpState;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeMap;
use std::net::SocketAddr;

pub const RULE: Rule = Rule {
    kind: "half_closed_peer",
    unit: super::Unit::Connections,
    title: "one end half-closed (FIN-WAIT-2), the other never closes (CLOSE-WAIT)",
    about: "A half-closed connection: one end called shutdown(SHUT_WR) and waits in FIN-WAIT-2 \
            for the other's FIN; the other end sits in CLOSE-WAIT and never closes. With both \
            ends on this host, pid is the process that never closes and peer_pid the one that \
            waits. Fix the side that never closes; an orphaned FIN-WAIT-2 (no process holds it) \
            disappears after net.ipv4.tcp_fin_timeout.",
    run: find,
};

cause_enum! {
/// Which end of a half-closed connection this host holds.
pub enum HalfClosedCause {
    /// Both ends local: one half-closed and waits, the other never closes.
    HalfCloseNotAnswered = "half_close_not_answered": "Both ends of the connections are on \
        this host: one end closed its side (FIN-WAIT-2) and waits, the other sits in \
        CLOSE-WAIT and never closes. Fix the end that never closes.",
    /// FIN-WAIT-2 sockets no process holds, waiting for peers that never close.
    OrphanedFinWait2 = "orphaned_fin_wait2": "FIN-WAIT-2 sockets no process holds: this host \
        closed them and the peers never sent their FIN. The kernel drops each after \
        net.ipv4.tcp_fin_timeout; many at once are peers that never close their end.",
}
}

pub fn find(cx: &Context) -> Vec<Finding> {
    let mut out = pairs(cx);
    out.extend(orphans(cx));
    out
}

/// A socket's four-tuple, canonical, and the one its peer's socket has.
fn ends(s: &Socket) -> (SocketAddr, SocketAddr) {
    (canonical(s.local()), canonical(s.remote()))
}

fn peer_ends(s: &Socket) -> (SocketAddr, SocketAddr) {
    (canonical(s.remote()), canonical(s.local()))
}

/// Half-closed connections with both ends here, by who never closes, who
/// waits, and the server endpoint.
fn pairs(cx: &Context) -> Vec<Finding> {
    let fin_wait2: FxHashMap<(SocketAddr, SocketAddr), usize> = cx
        .in_state(TcpState::FinWait2)
        .map(|(i, s)| (ends(s), i))
        .collect();
    if fin_wait2.is_empty() {
        return Vec::new();
    }
    // (closer pid, waiter pid, server endpoint) → (close_wait, fin_wait2) socket pairs
    type Key = (Option<u32>, Option<u32>, SocketAddr);
    let mut pairs: BTreeMap<Key, Vec<(usize, usize)>> = BTreeMap::new();
    for (ci, cw) in cx.in_state(TcpState::CloseWait) {
        let Some(&fi) = fin_wait2.get(&peer_ends(cw)) else {
            continue;
        };
        let fw = &cx.snapshot.sockets[fi];
        // Orphaned: the peer closed fully, which is the CLOSE_WAIT leak's case, not this one.
        let Some(waiter) = cx.index.owner(fi) else {
            continue;
        };
        let closer = cx.index.responsible(ci);
        let server = canonical(cx.index.listener_of(ci).map_or(fw.local(), |l| l.local()));
        pairs
            .entry((closer.map(|p| p.pid), Some(waiter.pid), server))
            .or_default()
            .push((ci, fi));
    }
    pairs
        .into_iter()
        .map(|((closer, waiter, server), socks)| pair_finding(cx, closer, waiter, server, socks))
        .collect()
}

/// FIN-WAIT-2 sockets no process holds, but for those whose other end is a
/// local CLOSE_WAIT: they belong to that end's finding. Kept in memory are
/// the orphans, never the CLOSE_WAIT sockets, which may be a million.
fn orphans(cx: &Context) -> Option<Finding> {
    let candidates: Vec<usize> = cx
        .in_state(TcpState::FinWait2)
        .filter(|(_, s)| s.inode() == 0)
        .map(|(i, _)| i)
        .collect();
    let warn = cx.thresholds.half_closed_warn;
    if (candidates.len() as u64) < warn {
        return None;
    }
    let ends_of = |i: &usize| ends(&cx.snapshot.sockets[*i]);
    let wanted: FxHashSet<(SocketAddr, SocketAddr)> = candidates.iter().map(ends_of).collect();
    let answered: FxHashSet<(SocketAddr, SocketAddr)> = cx
        .snapshot
        .sockets
        .iter()
        .filter(|s| s.state() == TcpState::CloseWait)
        .map(peer_ends)
        .filter(|e| wanted.contains(e))
        .collect();
    let orphans: Vec<usize> = candidates
        .into_iter()
        .filter(|i| !answered.contains(&ends_of(i)))
        .collect();
    (orphans.len() as u64 >= warn).then(|| orphan_finding(cx, orphans))
}

fn pair_finding(
    cx: &Context,
    closer: Option<u32>,
    waiter: Option<u32>,
    server: SocketAddr,
    socks: Vec<(usize, usize)>,
) -> Finding {
    let count = socks.len() as u64;
    let closer_p = closer.and_then(|pid| cx.index.process(pid));
    let waiter_p = waiter.and_then(|pid| cx.index.process(pid));
    let t = cx.thresholds;
    let severity = Severity::grade(count, t.half_closed_warn, t.half_closed_crit);
    let unread = socks
        .iter()
        .filter(|(ci, _)| cx.snapshot.sockets[*ci].recv_q() > 0)
        .count();
    let evidence = vec![
        format!(
            "{count} connections on {}: {} half-closed them (FIN-WAIT-2, still holding its end) \
             and {} never closes its end (CLOSE-WAIT)",
            endpoint(&server),
            who(waiter_p),
            who(closer_p)
        ),
        format!(
            "{} of the CLOSE-WAIT ends have read the FIN (Recv-Q 0), {unread} have not",
            count - unread as u64
        ),
        "FIN-WAIT-2 held by a process has no timer: both ends stay until the CLOSE-WAIT side \
         closes"
            .to_string(),
    ];
    Finding {
        severity,
        count,
        local: Some(server),
        evidence,
        suggestion: super::idioms::suggest(
            "The half-closing side signals 'no more requests' and waits for the answer \
             and the FIN; the other side must finish its reply and close() on EOF. Fix \
             the side that never closes (pid); give the waiting side a timeout.",
            closer_p,
            super::idioms::Need::CloseOnEof,
        ),
        cause: Some(HalfClosedCause::HalfCloseNotAnswered.into()),
        peer_pid: waiter_p.map(|p| p.pid),
        peer_comm: waiter_p.map(|p| p.comm.clone()),
        sockets: socks.into_iter().flat_map(|(a, b)| [a, b]).collect(),
        ..Finding::of(&RULE, Some(TcpState::CloseWait))
    }
    .owned_by(closer_p)
}

fn orphan_finding(cx: &Context, orphans: Vec<usize>) -> Finding {
    let timeout = cx.snapshot.kernel.sysctls.tcp_fin_timeout;
    Finding {
        count: orphans.len() as u64,
        evidence: vec![
            format!(
                "{} no process holds: this host closed them and the peers never sent their FIN",
                plural(orphans.len() as u64, "FIN-WAIT-2 socket")
            ),
            match timeout {
                Some(t) => format!("the kernel drops each after net.ipv4.tcp_fin_timeout = {t} s"),
                None => "the kernel drops each after net.ipv4.tcp_fin_timeout".to_string(),
            },
        ],
        suggestion: "Harmless while bounded by tcp_fin_timeout; many of them mean peers that \
                     never close their side (look at the remote ends)."
            .to_string(),
        cause: Some(HalfClosedCause::OrphanedFinWait2.into()),
        sockets: orphans,
        ..Finding::of(&RULE, Some(TcpState::FinWait2))
    }
}

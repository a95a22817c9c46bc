//! A peer host that stopped answering: data sent toward it is retransmitted
//! unanswered (`blocked_send`, peer gone), new connects toward it go
//! unanswered, its idle connections without keep-alive will never learn it
//! died, and closes toward it stall. One dead host is one incident: the
//! finding with the most connections that proves the silence is the root,
//! everything else toward that host its consequences. Only data
//! retransmitted unanswered proves a host dead: unanswered handshakes prove
//! that one address and port does not answer (a firewall, a full queue), and
//! a peer that answers window probes proves its host alive.

use super::{Context, Explained, Link};
use crate::diagnose::{
    BlockedSendCause, Cause, Finding, canonical, is_local_destination, kind, plural,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// a peer host that answers nothing (blocked_send peer_gone) → the other findings toward that
/// host: connect_unanswered, no_keepalive_idle, stalled_close, other processes' blocked_send; a
/// destination whose handshakes go unanswered (connect_unanswered) → other processes'
/// unanswered handshakes toward it; never a host proven alive (peer_not_reading toward it)
pub const DEAD_PEER: Link = Link {
    name: "dead_peer_host",
    run: dead_peer,
};

/// The kinds that a dead peer host explains when all their connections go
/// there (a `blocked_send` only when its peer is gone, not when it answers).
const TOWARD_IT: &[&str] = &[
    kind::BLOCKED_SEND,
    kind::CONNECT_UNANSWERED,
    kind::NO_KEEPALIVE_IDLE,
    kind::STALLED_CLOSE,
];

/// The one remote host every connection of `f` goes to, when it is not this host.
fn host_of(cx: &Context, f: &Finding) -> Option<IpAddr> {
    let mut host = None;
    for s in cx.sockets(f) {
        if is_local_destination(s) {
            return None;
        }
        let ip = canonical(s.remote()).ip();
        match host {
            None => host = Some(ip),
            Some(h) if h != ip => return None,
            Some(_) => {}
        }
    }
    host
}

/// Whether `f` proves that its host answers nothing, and how strongly
/// (retransmitted data beats unanswered handshakes, then more connections).
fn proof(f: &Finding) -> Option<(u8, u64)> {
    if f.kind == kind::BLOCKED_SEND
        && f.cause == Some(Cause::BlockedSend(BlockedSendCause::PeerGone))
    {
        Some((2, f.count))
    } else if f.kind == kind::CONNECT_UNANSWERED {
        Some((1, f.count))
    } else {
        None
    }
}

/// The findings toward one host, and the one that proves its silence best.
#[derive(Default)]
struct Toward {
    members: Vec<usize>,
    root: Option<((u8, u64), usize)>,
}

fn dead_peer(cx: &Context) -> Vec<Explained> {
    // A peer that answers window probes is alive: its host is up, whatever
    // else toward it goes unanswered (one port dropping SYNs proves nothing).
    let alive: BTreeSet<IpAddr> = cx
        .findings
        .iter()
        .filter(|f| f.cause == Some(Cause::BlockedSend(BlockedSendCause::PeerNotReading)))
        .filter_map(|f| host_of(cx, f))
        .collect();
    let mut hosts: BTreeMap<IpAddr, Toward> = BTreeMap::new();
    for (i, f) in cx.findings.iter().enumerate() {
        if !TOWARD_IT.contains(&f.kind) {
            continue;
        }
        let Some(host) = host_of(cx, f).filter(|h| !alive.contains(h)) else {
            continue;
        };
        let t = hosts.entry(host).or_default();
        t.members.push(i);
        if let Some(p) = proof(f)
            && t.root.is_none_or(|(best, _)| p > best)
        {
            t.root = Some((p, i));
        }
    }
    let mut out = Vec::new();
    for (host, Toward { members, root }) in hosts {
        let Some((_, cause)) = root else { continue };
        let c = &cx.findings[cause];
        let why = if c.kind == kind::BLOCKED_SEND {
            format!(
                "caused by {}: these connections go to {host}, which answers nothing ({} \
                 toward it retransmitting, unanswered)",
                c.id,
                plural(c.count, "connection")
            )
        } else {
            format!(
                "caused by {}: these handshakes go to {}, which answers none ({} toward it, \
                 unanswered)",
                c.id,
                c.remote
                    .map_or(host.to_string(), |r| crate::snapshot::endpoint(&r)),
                plural(c.count, "connection attempt")
            )
        };
        // Unanswered handshakes prove only that the destination port does not
        // answer: they explain other handshakes toward it, nothing established.
        let explained = |e: &usize| {
            let f = &cx.findings[*e];
            *e != cause
                && (c.kind == kind::BLOCKED_SEND
                    || (f.kind == kind::CONNECT_UNANSWERED
                        && f.remote.is_some()
                        && f.remote == c.remote))
        };
        for effect in members.into_iter().filter(explained) {
            out.push(Explained {
                cause,
                effect,
                why: why.clone(),
                suggestion: None,
            });
        }
    }
    out
}

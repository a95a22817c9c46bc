//! A peer host that stopped answering: data sent toward it is retransmitted
//! unanswered (`blocked_send`, peer gone), new connects toward it go
//! unanswered, its idle connections without keep-alive will never learn it
//! died, and closes toward it stall. One dead host is one incident: the
//! finding with the most connections that proves the silence is the root,
//! everything else toward that host its consequences.

use super::{Context, Explained, Link};
use crate::diagnose::{
    BlockedSendCause, Cause, Finding, canonical, is_local_destination, kind, plural,
};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// a peer host that answers nothing (blocked_send peer_gone, or else connect_unanswered) → the
/// other findings toward that host: connect_unanswered, no_keepalive_idle, stalled_close, other
/// processes' blocked_send
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
    let mut hosts: BTreeMap<IpAddr, Toward> = BTreeMap::new();
    for (i, f) in cx.findings.iter().enumerate() {
        // A peer that answers window probes is alive: it proves the host up.
        let alive = f.cause == Some(Cause::BlockedSend(BlockedSendCause::PeerNotReading));
        if !TOWARD_IT.contains(&f.kind) || alive {
            continue;
        }
        let Some(host) = host_of(cx, f) else { continue };
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
        let silence = if c.kind == kind::BLOCKED_SEND {
            format!(
                "{} toward it retransmitting, unanswered",
                plural(c.count, "connection")
            )
        } else {
            format!(
                "{} toward it, unanswered",
                plural(c.count, "connection attempt")
            )
        };
        for effect in members.into_iter().filter(|&e| e != cause) {
            out.push(Explained {
                cause,
                effect,
                why: format!(
                    "caused by {}: these connections go to {host}, which answers nothing \
                     ({silence})",
                    c.id
                ),
                suggestion: None,
            });
        }
    }
    out
}

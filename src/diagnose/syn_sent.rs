//! `connect_unanswered`: connection attempts (SYN-SENT) piling up toward one
//! destination: a dependency that does not answer.
//!
//! A destination that is up but has nothing listening answers a SYN with a
//! RST at once, and a reachable host answers with a SYN-ACK within a round
//! trip. A SYN that the kernel has to retransmit got no answer at all: the
//! host is down, a firewall drops it, or the route leads nowhere. Each such
//! attempt is a `connect()` (and often a thread) waiting up to
//! `tcp_syn_retries` (about two minutes by default) before it fails.
//! Toward a listener on this host the silence is the listener's own: its
//! queues drop the handshakes, and no route or firewall is to blame.
//! Attempts are grouped by the peer: one host, or the local process that
//! listens.

use super::peers::{self, Ends, PeerKey};
use super::{Context, Finding, Rule, Severity, plural, who};
use crate::snapshot::endpoint;
use crate::tcp::TcpState;
use std::collections::BTreeMap;

pub const RULE: Rule = Rule {
    kind: "connect_unanswered",
    unit: super::Unit::Connections,
    title: "connection attempts (SYN-SENT) toward one destination get no answer",
    about: "Connection attempts pile up in SYN-SENT toward one destination and the kernel \
            retransmits their SYNs: nothing answers, not even a refusal. The dependency is \
            down, a firewall or security group drops the SYNs, or the route leads nowhere. \
            Each attempt is a connect() waiting up to net.ipv4.tcp_syn_retries (about 2 min). \
            Check the destination and the path from this host; give the client a short \
            connect timeout and a circuit breaker so that callers fail fast.",
    run: find,
};

#[derive(Default)]
struct Group {
    sockets: Vec<usize>,
    /// Attempts whose SYN was retransmitted (or whose retransmissions are unknown).
    unanswered: u64,
    max_retransmits: u8,
}

pub fn find(cx: &Context) -> Vec<Finding> {
    let attempts: Vec<usize> = cx.in_state(TcpState::SynSent).map(|(i, _)| i).collect();
    let ends = Ends::find(cx, &attempts);
    let mut groups: BTreeMap<(Option<u32>, PeerKey), Group> = BTreeMap::new();
    for i in attempts {
        let s = &cx.snapshot.sockets[i];
        let owner = cx.index.owner(i).map(|p| p.pid);
        let g = groups.entry((owner, ends.key(i, s))).or_default();
        g.sockets.push(i);
        // Without tcp_info (the /proc/net source) the count of retransmissions
        // is unknown: count the attempt, as an age-unknown CLOSE-WAIT is counted.
        let retransmits = s.tcp_info().map(|t| t.retransmits);
        if retransmits.is_none_or(|r| r > 0) {
            g.unanswered += 1;
        }
        g.max_retransmits = g.max_retransmits.max(retransmits.unwrap_or(0));
    }
    let t = cx.thresholds;
    groups
        .into_iter()
        .filter(|(_, g)| g.unanswered >= t.syn_sent_warn)
        .map(|((pid, peer), g)| finding(cx, &ends, pid, peer, g))
        .collect()
}

fn finding(cx: &Context, ends: &Ends, pid: Option<u32>, peer: PeerKey, g: Group) -> Finding {
    let t = cx.thresholds;
    let owner = pid.and_then(|pid| cx.index.process(pid));
    let count = g.sockets.len() as u64;
    let peers = peers::list(cx, ends, &g.sockets);
    let (remote, endpoints) = peers::endpoints(cx, &g.sockets);
    let mut evidence = vec![format!(
        "{} has {} (SYN-SENT) toward {}; {} of them retransmitting \
         their SYN (up to {}): nothing answers, not even a refusal (RST)",
        who(owner),
        plural(count, "connection attempt"),
        peers::describe(&peers),
        g.unanswered,
        plural(u64::from(g.max_retransmits), "time")
    )];
    evidence.push(format!("toward {endpoints}"));
    let (why, suggestion) = destination(cx, ends, peer, &g.sockets, remote, &peers);
    evidence.push(why);
    Finding {
        severity: Severity::grade(g.unanswered, t.syn_sent_warn, t.syn_sent_crit),
        count,
        remote,
        evidence,
        suggestion,
        side: Some(super::ConnSide::Client),
        peers,
        sockets: g.sockets,
        ..Finding::of(&RULE, Some(TcpState::SynSent))
    }
    .owned_by(owner)
}

/// Why the destination does not answer, and what to do: a local listener
/// (its process known or not) is never blamed on routes or firewalls
/// between hosts.
fn destination(
    cx: &Context,
    ends: &Ends,
    peer: PeerKey,
    sockets: &[usize],
    remote: Option<std::net::SocketAddr>,
    peers: &[super::Peer],
) -> (String, String) {
    let listener = sockets.first().and_then(|&i| ends.process(i));
    let toward_this_host = sockets
        .first()
        .and_then(|&i| cx.snapshot.sockets.get(i))
        .is_some_and(super::is_local_destination);
    match (peer, listener) {
        (PeerKey::Process(_), Some(l)) => (
            format!(
                "the destination is a listener of {} on this host: it answers no handshake \
                 because its queues drop them (a full accept queue, or a full SYN queue); no \
                 route or firewall is involved",
                who(Some(l))
            ),
            format!(
                "The listener of {} on this host drops these handshakes: see why it stopped \
                 accepting (its accept queue, its threads). Give the client a connect timeout of \
                 seconds so that callers fail fast.",
                who(Some(l))
            ),
        ),
        _ if toward_this_host => (
            "the destination is an address of this host, and a closed port here would refuse \
             at once: a listener whose process connleak could not see (another user's, or \
             hidden) drops these handshakes from a full queue, or a local firewall rule drops \
             the SYNs; no route is involved"
                .to_string(),
            format!(
                "The listener at {} on this host answers no handshake: see its accept queue \
                 (ss -ltn: Recv-Q against the backlog) and what its process does, and any local \
                 firewall rule on it. Give the client a connect timeout of seconds so that \
                 callers fail fast.",
                remote.map_or("this host".to_string(), |r| endpoint(&r))
            ),
        ),
        _ => {
            let at = match (remote, peers.first()) {
                (Some(r), _) => endpoint(&r),
                (None, Some(p)) => p.host.to_string(),
                (None, None) => "the destination".to_string(),
            };
            (
                format!(
                    "a closed port refuses at once; silence means the host is down, a firewall \
                     drops the SYNs or the route leads nowhere; each attempt's wait: {}",
                    TcpState::SynSent.info().bound.describe()
                ),
                format!(
                    "The dependency at {at} does not answer: check that it is up and reachable \
                     from this host (routes, firewalls, security groups, its listen backlog). \
                     Give the client a connect timeout of seconds, not the kernel's two \
                     minutes, and a circuit breaker so that callers fail fast instead of \
                     piling up."
                ),
            )
        }
    }
}

//! `connect_unanswered`: connection attempts (SYN-SENT) piling up toward one
//! destination: a dependency that does not answer.
//!
//! A destination that is up but has nothing listening answers a SYN with a
//! RST at once, and a reachable host answers with a SYN-ACK within a round
//! trip. A SYN that the kernel has to retransmit got no answer at all: the
//! host is down, a firewall drops it, or the route leads nowhere. Each such
//! attempt is a `connect()` (and often a thread) waiting up to
//! `tcp_syn_retries` (about two minutes by default) before it fails.

use super::{Context, Finding, Rule, Severity, canonical, who};
use crate::snapshot::endpoint;
use crate::tcp::TcpState;
use std::collections::BTreeMap;
use std::net::SocketAddr;

pub const RULE: Rule = Rule {
    kind: "connect_unanswered",
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
    let mut groups: BTreeMap<(Option<u32>, SocketAddr), Group> = BTreeMap::new();
    for (i, s) in cx.in_state(TcpState::SynSent) {
        let owner = cx.index.owner(s).map(|p| p.pid);
        let g = groups.entry((owner, canonical(s.remote()))).or_default();
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
        .map(|((pid, remote), g)| {
            let owner = pid.and_then(|pid| cx.index.process(pid));
            let count = g.sockets.len() as u64;
            Finding {
                severity: Severity::grade(g.unanswered, t.syn_sent_warn, t.syn_sent_crit),
                count,
                remote: Some(remote),
                evidence: vec![
                    format!(
                        "{} has {count} connection attempts (SYN-SENT) toward {}; {} of them \
                         retransmitting their SYN (up to {} times): nothing answers, not even \
                         a refusal (RST)",
                        who(owner),
                        endpoint(&remote),
                        g.unanswered,
                        g.max_retransmits
                    ),
                    format!(
                        "a closed port refuses at once; silence means the host is down, a \
                         firewall drops the SYNs or the route leads nowhere; each attempt's \
                         wait: {}",
                        TcpState::SynSent.info().bound.describe()
                    ),
                ],
                suggestion: format!(
                    "The dependency at {} does not answer: check that it is up and reachable \
                     from this host (routes, firewalls, security groups, its listen backlog). \
                     Give the client a connect timeout of seconds, not the kernel's two \
                     minutes, and a circuit breaker so that callers fail fast instead of \
                     piling up.",
                    endpoint(&remote)
                ),
                side: Some(super::ConnSide::Client),
                sockets: g.sockets,
                ..Finding::of(&RULE, Some(TcpState::SynSent))
            }
            .owned_by(owner)
        })
        .collect()
}

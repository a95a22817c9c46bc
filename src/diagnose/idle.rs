//! `no_keepalive_idle`: ESTABLISHED connections silent far longer than usual
//! with no keep-alive timer. If the peer's host died or a middlebox forgot the
//! flow, nothing will ever tell this end: the connection (and whatever thread
//! waits on it) lives forever. A socket with any timer running is not idle:
//! keep-alive watches it, or it is stuck sending (`send_stall`). Grouped by
//! owner and peer (host, or local process), so that the connections toward
//! a host that died are one finding the link stage can tie to it.

use super::peers::{self, Ends, PeerKey};
use super::{Context, Finding, Rule, Severity, human_duration, plural, who};
use crate::snapshot::Timer;
use crate::tcp::TcpState;
use std::collections::BTreeMap;

pub const RULE: Rule = Rule {
    kind: "no_keepalive_idle",
    unit: super::Unit::Connections,
    title: "long-silent connections without keep-alive",
    about: "ESTABLISHED connections silent in both directions for a long time with no \
            keep-alive timer: if the peer's host died, this end never learns it. Enable \
            SO_KEEPALIVE (with net.ipv4.tcp_keepalive_time lowered or TCP_KEEPIDLE set), or an \
            application-level idle timeout or heartbeat.",
    run: find,
};

pub fn find(cx: &Context) -> Vec<Finding> {
    let idle_ms = cx.thresholds.idle.saturating_mul(1000);
    let silent: Vec<(usize, u64)> = cx
        .in_state(TcpState::Established)
        .filter_map(|(i, s)| {
            let t = s.tcp_info()?;
            let silent = t.last_data_recv_ms?.min(t.last_data_sent_ms?);
            // Keep-alive covers it; any other timer means it is not idle but
            // stuck sending (retransmitting, or probing a closed window).
            (u64::from(silent) >= idle_ms && s.timer() == Timer::None)
                .then_some((i, u64::from(silent)))
        })
        .collect();
    let indexes: Vec<usize> = silent.iter().map(|&(i, _)| i).collect();
    let ends = Ends::find(cx, &indexes);
    let mut groups: BTreeMap<(Option<u32>, PeerKey), (Vec<usize>, u64)> = BTreeMap::new();
    for (i, ms) in silent {
        let s = &cx.snapshot.sockets[i];
        let e = groups
            .entry((cx.index.owner(i).map(|p| p.pid), ends.key(i, s)))
            .or_default();
        e.0.push(i);
        e.1 = e.1.max(ms);
    }
    groups
        .into_iter()
        .map(|((pid, _), (sockets, oldest_ms))| {
            let owner = pid.and_then(|pid| cx.index.process(pid));
            let peers = peers::list(cx, &ends, &sockets);
            let (remote, endpoints) = peers::endpoints(cx, &sockets);
            Finding {
                severity: Severity::Info,
                count: sockets.len() as u64,
                remote,
                evidence: vec![
                    format!(
                        "{} has {} silent for over {} (longest {}), with no keep-alive timer",
                        who(owner),
                        plural(sockets.len() as u64, "ESTABLISHED connection"),
                        human_duration(cx.thresholds.idle),
                        human_duration(oldest_ms / 1000),
                    ),
                    format!("toward {}; endpoints {endpoints}", peers::describe(&peers)),
                ],
                suggestion: RULE.about.to_string(),
                oldest_s: Some(oldest_ms / 1000),
                peers,
                sockets,
                ..Finding::of(&RULE, Some(TcpState::Established))
            }
            .owned_by(owner)
        })
        .collect()
}

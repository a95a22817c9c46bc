//! `no_keepalive_idle`: ESTABLISHED connections silent far longer than usual
//! with no keep-alive timer. If the peer's host died or a middlebox forgot the
//! flow, nothing will ever tell this end: the connection (and whatever thread
//! waits on it) lives forever. A socket with any timer running is not idle:
//! keep-alive watches it, or it is stuck sending (`send_stall`).

use super::{Context, Finding, Rule, Severity, human_duration, who};
use crate::snapshot::{Timer, endpoint};
use crate::tcp::TcpState;
use std::collections::BTreeMap;

pub const RULE: Rule = Rule {
    kind: "no_keepalive_idle",
    title: "long-silent connections without keep-alive",
    about: "ESTABLISHED connections silent in both directions for a long time with no \
            keep-alive timer: if the peer's host died, this end never learns it. Enable \
            SO_KEEPALIVE (with net.ipv4.tcp_keepalive_time lowered or TCP_KEEPIDLE set), or an \
            application-level idle timeout or heartbeat.",
    run: find,
};

pub fn find(cx: &Context) -> Vec<Finding> {
    let idle_ms = cx.thresholds.idle.saturating_mul(1000);
    let mut per_owner: BTreeMap<Option<u32>, (Vec<usize>, u64)> = BTreeMap::new();
    for (i, s) in cx.in_state(TcpState::Established) {
        let Some(t) = s.tcp_info() else { continue };
        let silent = t
            .last_data_recv_ms
            .zip(t.last_data_sent_ms)
            .map(|(r, w)| r.min(w));
        let Some(silent) = silent.filter(|&ms| u64::from(ms) >= idle_ms) else {
            continue;
        };
        // Keep-alive covers it; any other timer means it is not idle but
        // stuck sending (retransmitting, or probing a closed window).
        if s.timer() != Timer::None {
            continue;
        }
        let e = per_owner
            .entry(cx.index.owner(s).map(|p| p.pid))
            .or_default();
        e.0.push(i);
        e.1 = e.1.max(u64::from(silent));
    }
    per_owner
        .into_iter()
        .map(|(pid, (sockets, oldest_ms))| {
            let owner = pid.and_then(|pid| cx.index.process(pid));
            let peers: Vec<String> = sockets
                .iter()
                .take(3)
                .map(|&i| endpoint(&cx.snapshot.sockets[i].remote()))
                .collect();
            Finding {
                severity: Severity::Info,
                count: sockets.len() as u64,
                evidence: vec![format!(
                    "{} ESTABLISHED connections of {} silent for over {} (longest {}), with no \
                     keep-alive timer; peers {}{}",
                    sockets.len(),
                    who(owner),
                    human_duration(cx.thresholds.idle),
                    human_duration(oldest_ms / 1000),
                    peers.join(", "),
                    if sockets.len() > 3 { ", ..." } else { "" }
                )],
                suggestion: RULE.about.to_string(),
                oldest_s: Some(oldest_ms / 1000),
                sockets,
                ..Finding::of(&RULE, Some(TcpState::Established))
            }
            .owned_by(owner)
        })
        .collect()
}

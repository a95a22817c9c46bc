//! `stalled_close`: LAST-ACK, FIN-WAIT-1 and CLOSING building up.
//!
//! In each of these states this host has sent its FIN and waits for the peer
//! to acknowledge it. A build-up means peers that stopped acknowledging (gone,
//! or with a full receive window), with the kernel retransmitting the FIN
//! until `tcp_orphan_retries` (orphaned sockets) gives up.

use super::{Context, Finding, Rule, Severity};
use crate::tcp::TcpState;

pub const RULE: Rule = Rule {
    kind: "stalled_close",
    title: "peers stopped acknowledging our FIN (LAST-ACK, FIN-WAIT-1, CLOSING)",
    about: "Sockets in LAST-ACK, FIN-WAIT-1 or CLOSING pile up: this host sent its FIN and the \
            peer does not acknowledge it (the peer vanished, a firewall dropped the flow, or \
            the peer's receive window is full). The kernel retransmits until \
            net.ipv4.tcp_orphan_retries gives up. Look at the remote ends and the path.",
    run: find,
};

pub fn find(cx: &Context) -> Vec<Finding> {
    [TcpState::LastAck, TcpState::FinWait1, TcpState::Closing]
        .into_iter()
        .filter_map(|state| {
            let sockets: Vec<usize> = cx.in_state(state).map(|(i, _)| i).collect();
            let count = sockets.len() as u64;
            if count < cx.thresholds.stalled_close_warn {
                return None;
            }
            let retrying = sockets
                .iter()
                .filter(|&&i| {
                    cx.snapshot.sockets[i]
                        .tcp_info
                        .is_some_and(|t| t.retransmits > 0)
                })
                .count();
            let orphans = sockets
                .iter()
                .filter(|&&i| cx.snapshot.sockets[i].inode == 0)
                .count();
            let remotes: std::collections::BTreeSet<_> = sockets
                .iter()
                .map(|&i| cx.snapshot.sockets[i].remote.ip())
                .collect();
            let info = state.info();
            Some(Finding {
                severity: Severity::Warning,
                count,
                evidence: vec![
                    format!(
                        "{count} sockets in {} toward {} remote addresses; {retrying} \
                         retransmitting their FIN; {orphans} orphaned (no process holds them)",
                        state.rfc_name(),
                        remotes.len()
                    ),
                    format!(
                        "leaves when {}; bounded by {}",
                        info.leaves_when,
                        info.bound.describe()
                    ),
                ],
                suggestion: "Find the remote ends (connleak --json, ss -tn state last-ack) and \
                             why they stopped acknowledging: a crashed peer, a firewall that \
                             forgot the flow, a peer that stopped reading."
                    .to_string(),
                sockets,
                ..Finding::of(&RULE, Some(state))
            })
        })
        .collect()
}

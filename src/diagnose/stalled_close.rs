//! `stalled_close`: LAST-ACK, FIN-WAIT-1 and CLOSING building up.
//!
//! In each of these states this host has sent its FIN (or queued it behind
//! unsent data) and waits for the peer to acknowledge it. Two causes need
//! opposite fixes, and the socket's timer tells them apart (`send_stall`): a
//! peer that is alive and does not read (its receive window is closed, it
//! answers the zero-window probes), or a peer or path that is gone (the kernel
//! retransmits with backoff until `tcp_orphan_retries` gives up).

use super::send_stall::{self, Stall};
use super::{Context, Finding, Rule, Severity, plural};
use crate::snapshot::Socket;
use crate::tcp::TcpState;
use std::collections::BTreeSet;

pub const RULE: Rule = Rule {
    kind: "stalled_close",
    unit: super::Unit::Sockets,
    title: "peers stopped acknowledging our FIN (LAST-ACK, FIN-WAIT-1, CLOSING)",
    about: "Sockets in LAST-ACK, FIN-WAIT-1 or CLOSING pile up: this host sent its FIN and the \
            peer does not acknowledge it. The timer tells why: zero-window probes the peer \
            answers mean it is alive and does not read (its receive window is full; fix the \
            reader, named when it is local); retransmissions with backoff mean the peer or the \
            path is gone (a crashed host, a firewall or conntrack that forgot the flow). The \
            kernel gives up after net.ipv4.tcp_orphan_retries.",
    run: find,
};

pub fn find(cx: &Context) -> Vec<Finding> {
    [TcpState::LastAck, TcpState::FinWait1, TcpState::Closing]
        .into_iter()
        .filter_map(|state| {
            let sockets: Vec<usize> = cx.in_state(state).map(|(i, _)| i).collect();
            (sockets.len() as u64 >= cx.thresholds.stalled_close_warn)
                .then(|| finding(cx, state, sockets))
        })
        .collect()
}

fn finding(cx: &Context, state: TcpState, sockets: Vec<usize>) -> Finding {
    let count = sockets.len() as u64;
    let socks: Vec<&Socket> = sockets.iter().map(|&i| &cx.snapshot.sockets[i]).collect();
    let of = |want: Stall| -> Vec<&Socket> {
        socks
            .iter()
            .copied()
            .filter(|s| send_stall::of(s) == Some(want))
            .collect()
    };
    let (not_reading, gone) = (of(Stall::PeerNotReading), of(Stall::PeerGone));
    let orphans = socks.iter().filter(|s| s.inode() == 0).count();
    let remotes: BTreeSet<_> = socks.iter().map(|s| s.remote().ip()).collect();
    let backoff = gone
        .iter()
        .filter_map(|s| s.tcp_info().map(|t| t.backoff))
        .max()
        .unwrap_or(0);
    let info = state.info();
    let mut evidence = vec![format!(
        "{} in {} toward {}; {orphans} orphaned (no process holds them)",
        plural(count, "socket"),
        state.rfc_name(),
        plural(remotes.len() as u64, "remote address"),
    )];
    if !not_reading.is_empty() {
        evidence.push(format!(
            "{} with the peer's receive window closed and its zero-window probes answered: the \
             peer is alive and does not read; peers not reading: {}",
            not_reading.len(),
            send_stall::peer_names(cx, &not_reading).join(", ")
        ));
    }
    if !gone.is_empty() {
        evidence.push(format!(
            "{} retransmitting unanswered with backoff (up to {backoff}): the peer or the path \
             is gone (a dead host, a firewall or conntrack that forgot the flow)",
            gone.len()
        ));
    }
    let unexplained = count - (not_reading.len() + gone.len()) as u64;
    if unexplained > 0 {
        evidence.push(format!(
            "{unexplained} with no retransmission or window probe under way (or no tcp_info to \
             tell)"
        ));
    }
    evidence.push(format!(
        "leaves when {}; bounded by {}",
        info.leaves_when,
        info.bound.describe()
    ));
    let suggestion = if not_reading.len() > gone.len() {
        "The peers are alive and do not read what this host sent: their receive windows are \
         full. Fix the reader (the peers named above: a blocked or slow consumer); give this \
         side a send timeout (SO_SNDTIMEO, TCP_USER_TIMEOUT) so that it does not wait forever."
    } else {
        "Find the remote ends (connleak --json, ss -tn state last-ack) and why they stopped \
         acknowledging: a crashed peer, a firewall or conntrack entry that forgot the flow, a \
         broken route."
    };
    Finding {
        severity: Severity::Warning,
        count,
        evidence,
        suggestion: suggestion.to_string(),
        sockets,
        ..Finding::of(&RULE, Some(state))
    }
}

//! `syn_backlog`: half-open connections piling up on a listener.
//!
//! A SYN-RECEIVED entry is a handshake this host answered (SYN-ACK) whose
//! final ACK never came: a SYN flood, or clients whose replies are lost on the
//! way back. They are bounded by the listener's backlog; past it the kernel
//! drops SYNs or answers with SYN cookies (`tcp_syncookies`).

use super::{Context, Finding, Rule, Severity, canonical, who};
use crate::snapshot::{Socket, endpoint};
use crate::tcp::TcpState;
use std::collections::BTreeMap;
use std::net::SocketAddr;

pub const RULE: Rule = Rule {
    kind: "syn_backlog",
    title: "half-open handshakes (SYN-RECEIVED) pile up on a listener",
    about: "SYN-RECEIVED entries piling up on a listener: handshakes whose final ACK never \
            arrives, from a SYN flood or from clients whose replies are lost on the way back. \
            Past the backlog the kernel drops SYNs (TCPReqQFullDrop) or answers with SYN \
            cookies (tcp_syncookies, SyncookiesSent). Keep tcp_syncookies=1, look at the \
            sources, filter them upstream, check the return path.",
    run: find,
};

pub fn find(cx: &Context) -> Vec<Finding> {
    let mut per_listener: BTreeMap<SocketAddr, Vec<usize>> = BTreeMap::new();
    for (i, s) in cx.sockets() {
        if matches!(s.state(), TcpState::SynRecv | TcpState::NewSynRecv) {
            let key = canonical(
                cx.index
                    .listener_for(&s.local())
                    .map_or(s.local(), |l| l.local()),
            );
            per_listener.entry(key).or_default().push(i);
        }
    }
    let k = &cx.snapshot.kernel;
    // Fewer half-open connections than this are routine at any real load.
    let min = cx.thresholds.syn_backlog_min;
    per_listener
        .into_iter()
        .filter(|(_, v)| v.len() as u64 >= min)
        .map(|(local, sockets)| {
            let count = sockets.len() as u64;
            let listeners: Vec<&Socket> = cx.index.listeners_at(&local).collect();
            let listener = listeners.first().copied();
            let backlog = listener
                .and_then(|l| cx.snapshot.backlog(l))
                .map(u64::from)
                .filter(|&b| b > 0);
            let severity = match backlog {
                Some(b) if count * 2 >= b => Severity::Warning,
                None if count >= min.saturating_mul(4) => Severity::Warning,
                _ => Severity::Info,
            };
            let sources: std::collections::BTreeSet<_> = sockets
                .iter()
                .map(|&i| cx.snapshot.sockets[i].remote().ip())
                .collect();
            let mut evidence = vec![format!(
                "{count} half-open connections (SYN-RECEIVED) on {} from {} source addresses{}",
                endpoint(&local),
                sources.len(),
                backlog
                    .map(|b| format!("; listener backlog {b}"))
                    .unwrap_or_default()
            )];
            if listeners.len() > 1 {
                let holders: Vec<String> =
                    listeners.iter().map(|l| who(cx.index.owner(l))).collect();
                evidence.push(format!(
                    "{} listeners share this address (SO_REUSEPORT): {}; the kernel does not \
                     say whose queue these handshakes wait in",
                    listeners.len(),
                    holders.join(", ")
                ));
            }
            kernel_evidence(k, &mut evidence);
            Finding {
                severity,
                count,
                local: Some(local),
                evidence,
                suggestion: "Look at where the SYNs come from (few sources: a flood or a broken \
                             client; many: lost replies or an overloaded path). Keep \
                             tcp_syncookies=1; filter floods upstream."
                    .to_string(),
                side: Some(super::ConnSide::Server),
                sockets,
                ..Finding::of(&RULE, Some(TcpState::SynRecv))
            }
            // With several listeners, no one of them can be named.
            .owned_by(match listeners[..] {
                [l] => cx.index.owner(l),
                _ => None,
            })
        })
        .collect()
}

/// The SYN-queue counters and what happens past the backlog (SYN cookies or drops).
fn kernel_evidence(k: &crate::snapshot::Kernel, evidence: &mut Vec<String>) {
    let counter = |n: &str| k.counter("TcpExt", n).map(|v| format!("{n} {v}"));
    let counters: Vec<String> = ["TCPReqQFullDrop", "TCPReqQFullDoCookies", "SyncookiesSent"]
        .iter()
        .filter_map(|n| counter(n))
        .collect();
    if !counters.is_empty() {
        evidence.push(format!(
            "{} in this network namespace since it was created (since boot, for the host's)",
            counters.join(", ")
        ));
    }
    evidence.push(match k.sysctls.tcp_syncookies {
        Some(0) => "net.ipv4.tcp_syncookies = 0: past the backlog, SYNs are dropped".to_string(),
        Some(n) => format!("net.ipv4.tcp_syncookies = {n}: past the backlog, SYN cookies answer"),
        None => "tcp_syncookies unknown".to_string(),
    });
}

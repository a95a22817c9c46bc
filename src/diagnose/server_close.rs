//! `server_active_close`: TIME-WAIT on a local listening port, meaning the
//! server closes connections first (HTTP/1.0 style, `Connection: close`).
//!
//! TIME-WAIT sockets have no owner; the listener's process answers for them.
//! On the server side they use no ephemeral ports, so they are harmless unless
//! they crowd `tcp_max_tw_buckets`, but each is a connection set up for one
//! request: keep-alive would save the handshakes.

use super::{Ceiling, Context, Finding, Rule, Severity, canonical, percent, plural};
use crate::snapshot::endpoint;
use crate::tcp::TcpState;
use std::collections::BTreeMap;
use std::net::SocketAddr;

pub const RULE: Rule = Rule {
    kind: "server_active_close",
    unit: super::Unit::Sockets,
    title: "a server closes first, leaving TIME-WAIT (missing keep-alive)",
    about: "TIME-WAIT on a local listening port: the server closes connections first \
            (HTTP/1.0, Connection: close, a short idle timeout). Harmless to ports on the \
            server side; only a problem near net.ipv4.tcp_max_tw_buckets (TCPTimeWaitOverflow). \
            Enable keep-alive so that clients reuse connections and close first.",
    run: find,
};

pub fn find(cx: &Context) -> Vec<Finding> {
    let mut by_listener: BTreeMap<SocketAddr, Vec<usize>> = BTreeMap::new();
    for (i, s) in cx.in_state(TcpState::TimeWait) {
        if let Some(l) = cx.index.listener_for(&s.local()) {
            by_listener.entry(l.local()).or_default().push(i);
        }
    }
    let sysctls = &cx.snapshot.kernel.sysctls;
    let all_tw = cx.index.count(TcpState::TimeWait);
    let overflow = cx.snapshot.kernel.counter("TcpExt", "TCPTimeWaitOverflow");
    by_listener
        .into_iter()
        .filter(|(_, socks)| socks.len() as u64 >= cx.thresholds.server_close_min)
        .map(|(listener, sockets)| {
            let count = sockets.len() as u64;
            let near_limit = sysctls
                .tcp_max_tw_buckets
                .is_some_and(|max| percent(all_tw, max) >= cx.thresholds.kernel_limit_warn);
            let mut evidence = vec![
                format!(
                    "{} on listener {}: the server sent FIN first",
                    plural(count, "TIME-WAIT socket"),
                    endpoint(&listener)
                ),
                "TIME-WAIT lasts a fixed 60 s on the side that closed first; on a server it \
                 takes no ephemeral port"
                    .to_string(),
            ];
            if let Some(max) = sysctls.tcp_max_tw_buckets {
                evidence.push(format!(
                    "{} in all of {max} net.ipv4.tcp_max_tw_buckets ({}%)",
                    plural(all_tw, "TIME-WAIT socket"),
                    percent(all_tw, max)
                ));
            }
            if let Some(o) = overflow.filter(|&o| o > 0) {
                evidence.push(format!(
                    "TCPTimeWaitOverflow {o}: the kernel already had to drop some"
                ));
            }
            let owner = cx
                .index
                .listener_at(&listener)
                .and_then(|l| cx.index.owner(l.at));
            Finding {
                severity: if near_limit {
                    Severity::Warning
                } else {
                    Severity::Info
                },
                count,
                local: Some(canonical(listener)),
                evidence,
                suggestion: "Let clients keep connections open (HTTP keep-alive; no \
                             'Connection: close'; a longer server idle timeout) so that they \
                             close first and the server holds no TIME-WAIT."
                    .to_string(),
                side: Some(super::ConnSide::Server),
                sockets,
                ceiling: sysctls.tcp_max_tw_buckets.map(|max| {
                    Ceiling::time_wait(
                        max,
                        "net.ipv4.tcp_max_tw_buckets",
                        cx.thresholds.kernel_limit_warn,
                    )
                }),
                ..Finding::of(&RULE, Some(TcpState::TimeWait))
            }
            .owned_by(owner)
        })
        .collect()
}

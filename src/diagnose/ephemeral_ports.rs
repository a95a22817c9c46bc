//! `ephemeral_port_exhaustion`: client-side connections to one destination
//! using up the local port range.
//!
//! Each outgoing connection takes a local port from `ip_local_port_range`
//! (minus `ip_local_reserved_ports`), unique per (source address, destination
//! address, destination port). A client that opens short connections and
//! closes first leaves each port in TIME-WAIT for 60 s, so at a few hundred
//! connections per second one destination runs out and `connect()` fails
//! with `EADDRNOTAVAIL`. `tcp_tw_reuse` lets new connections take over
//! TIME-WAIT ports (1: all; 2, the default: loopback only), which softens it.

use super::{Ceiling, Context, Finding, Rule, Severity, canonical, percent, who};
use crate::snapshot::{Process, Socket, Sysctls, endpoint};
use crate::tcp::TcpState;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

pub const RULE: Rule = Rule {
    kind: "ephemeral_port_exhaustion",
    unit: super::Unit::Sockets,
    title: "client connections to one destination use up the local ports",
    about: "Client-side connections (TIME-WAIT above all) to one destination using up the \
            local port range: connect() starts failing with EADDRNOTAVAIL. Short connections \
            closed by the client leave each port in TIME-WAIT for 60 s. Use keep-alive or a \
            connection pool; enable net.ipv4.tcp_tw_reuse; widen net.ipv4.ip_local_port_range; \
            spread over more source addresses.",
    run: find,
};

/// Ports of the range, minus the reserved ones inside it.
fn usable_ports(sysctls: &Sysctls) -> Option<u64> {
    let (lo, hi) = sysctls.ip_local_port_range?;
    let size = u64::from(hi.checked_sub(lo)?) + 1;
    let reserved: u64 = sysctls
        .ip_local_reserved_ports
        .iter()
        .flatten()
        .map(|&(a, b)| {
            let (a, b) = (a.max(lo), b.min(hi));
            if a <= b { u64::from(b - a) + 1 } else { 0 }
        })
        .sum();
    Some(size.saturating_sub(reserved)).filter(|&n| n > 0)
}

#[derive(Default)]
struct Group {
    sockets: Vec<usize>,
    time_wait: u64,
}

/// The destination a client-side socket uses a local port toward, from its
/// source address: `None` for a listener or a connection accepted on one.
/// One destination however it is spelt: a dual-stack socket writes IPv4 as
/// `::ffff:a.b.c.d`.
fn destination(cx: &Context, s: &Socket) -> Option<(IpAddr, SocketAddr)> {
    if s.state() == TcpState::Listen || cx.index.listener_for(&s.local()).is_some() {
        return None;
    }
    Some((s.local().ip().to_canonical(), canonical(s.remote())))
}

pub fn find(cx: &Context) -> Vec<Finding> {
    let Some(usable) = usable_ports(&cx.snapshot.kernel.sysctls) else {
        return Vec::new();
    };
    // Counted first, hashed, not ordered: a million sockets go through here,
    // and only the few groups that become findings keep their sockets.
    let mut counts: FxHashMap<(IpAddr, SocketAddr), u64> = FxHashMap::default();
    for (_, s) in cx.sockets() {
        if let Some(key) = destination(cx, s) {
            *counts.entry(key).or_default() += 1;
        }
    }
    // Half the warning level is worth an info line.
    let mut groups: FxHashMap<(IpAddr, SocketAddr), Group> = counts
        .into_iter()
        .filter(|&(_, n)| percent(n, usable) >= cx.thresholds.ports_warn / 2)
        .map(|(key, _)| (key, Group::default()))
        .collect();
    if groups.is_empty() {
        return Vec::new();
    }
    for (i, s) in cx.sockets() {
        if let Some(g) = destination(cx, s).and_then(|key| groups.get_mut(&key)) {
            g.sockets.push(i);
            g.time_wait += u64::from(s.state() == TcpState::TimeWait);
        }
    }
    let mut worth: Vec<_> = groups.into_iter().collect();
    worth.sort_unstable_by_key(|(key, _)| *key);
    worth
        .into_iter()
        .map(|((src, dst), g)| finding(cx, usable, src, dst, g))
        .collect()
}

fn finding(cx: &Context, usable: u64, src: IpAddr, dst: SocketAddr, g: Group) -> Finding {
    let t = cx.thresholds;
    let sysctls = &cx.snapshot.kernel.sysctls;
    let used = g.sockets.len() as u64;
    let pct = percent(used, usable);
    let mut severity = Severity::grade(pct, t.ports_warn, t.ports_crit);
    let reuse = match sysctls.tcp_tw_reuse {
        Some(1) => true,
        Some(2) => dst.ip().is_loopback(),
        _ => false,
    };
    // Owners are counted for the few groups that make a finding, not per socket.
    let mut owners: BTreeMap<u32, u64> = BTreeMap::new();
    for &i in &g.sockets {
        if let Some(p) = cx.index.owner(i) {
            *owners.entry(p.pid).or_default() += 1;
        }
    }
    let owner: Option<&Process> = owners
        .iter()
        .max_by_key(|(_, n)| **n)
        .and_then(|(pid, _)| cx.index.process(*pid));
    let (lo, hi) = sysctls.ip_local_port_range.unwrap_or_default();
    let from = match owner {
        Some(p) => format!("{} from {src}", who(Some(p))),
        None => format!("from {src}"),
    };
    let mut evidence = vec![
        format!(
            "{used} local ports of {usable} usable ({pct}%) in use {from} to {}: {} in \
             TIME-WAIT, {} in other states",
            endpoint(&dst),
            g.time_wait,
            used - g.time_wait
        ),
        format!(
            "net.ipv4.ip_local_port_range {lo}-{hi}{}",
            match &sysctls.ip_local_reserved_ports {
                Some(r) if !r.is_empty() => " minus ip_local_reserved_ports",
                _ => "",
            }
        ),
        "TIME-WAIT holds each port for a fixed 60 s after this host closed first".to_string(),
    ];
    if reuse {
        severity = match severity {
            Severity::Critical => Severity::Warning,
            _ => Severity::Info,
        };
        evidence.push(format!(
            "net.ipv4.tcp_tw_reuse = {} lets new connections to this destination reuse \
             TIME-WAIT ports idle for over 1 s, which softens the limit (severity lowered)",
            sysctls.tcp_tw_reuse.unwrap_or_default()
        ));
    }
    Finding {
        severity,
        count: used,
        remote: Some(dst),
        evidence,
        suggestion: super::idioms::suggest(
            "Reuse connections (HTTP keep-alive, a connection pool) instead of one per \
             request; set net.ipv4.tcp_tw_reuse=1; widen net.ipv4.ip_local_port_range; \
             or connect from more source addresses.",
            owner,
            super::idioms::Need::ConnectionReuse,
        ),
        side: Some(super::ConnSide::Client),
        sockets: g.sockets,
        ceiling: Some(Ceiling::time_wait(
            usable,
            "the usable local ports to this destination",
            t.ports_warn,
        )),
        ..Finding::of(&RULE, Some(TcpState::TimeWait))
    }
    .owned_by(owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_ports_subtract_reserved_inside_the_range() {
        let s = Sysctls {
            ip_local_port_range: Some((50000, 50999)),
            ip_local_reserved_ports: Some(vec![(8080, 8080), (50100, 50199), (50990, 51010)]),
            ..Sysctls::default()
        };
        assert_eq!(usable_ports(&s), Some(1000 - 100 - 10));
        assert_eq!(usable_ports(&Sysctls::default()), None);
    }
}

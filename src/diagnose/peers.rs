//! Who is at the other end of a group of connections, as the engineer acts
//! on it: one peer host, or, when the other end runs on this host, the one
//! local process that holds it. Connections are grouped by that peer, never
//! by the peer's port, so that six connections toward one client process
//! that stopped reading, or thirty toward one host that died, are one finding
//! that its threshold applies to.

use super::{Context, canonical};
use crate::snapshot::{Process, Socket, endpoint};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// How many peers an evidence line names; the rest are counted.
const NAMED: usize = 3;

/// What a group of connections is toward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerKey {
    /// A local process holds the other end (its pid).
    Process(u32),
    /// A host, by address (IPv4-mapped addresses as IPv4).
    Host(IpAddr),
}

/// One peer of a finding, with how many of its connections go there: the
/// JSON contract's `peers[]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Peer {
    /// The peer's address (for a local process, the address its end is bound to).
    pub host: IpAddr,
    /// The local process that holds the other end, when it runs here.
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub connections: u64,
}

/// The local processes holding the other end of `sockets` (by index into
/// the snapshot), found by their reversed four-tuple in one pass over the
/// table. A listening socket at the remote address stands for the other end
/// of a connection not yet established (SYN-SENT).
pub struct Ends<'a> {
    of: FxHashMap<usize, &'a Process>,
}

impl<'a> Ends<'a> {
    pub fn find(cx: &Context<'a>, sockets: &[usize]) -> Ends<'a> {
        let all = &cx.snapshot.sockets;
        let wanted: FxHashMap<(SocketAddr, SocketAddr), usize> = sockets
            .iter()
            .filter_map(|&i| all.get(i).map(|s| ((s.remote(), s.local()), i)))
            .collect();
        let mut of = FxHashMap::default();
        if !wanted.is_empty() {
            for (at, s) in all.iter().enumerate() {
                if let Some(&i) = wanted.get(&(s.local(), s.remote()))
                    && let Some(p) = cx.index.owner(at)
                {
                    of.insert(i, p);
                }
            }
        }
        for &i in sockets {
            if of.contains_key(&i) {
                continue;
            }
            let listener = all
                .get(i)
                .filter(|s| s.state() == crate::tcp::TcpState::SynSent && is_local_destination(s))
                .and_then(|s| cx.index.listener_for(&s.remote()));
            if let Some(p) = listener.and_then(|l| cx.index.owner(l.at)) {
                of.insert(i, p);
            }
        }
        Ends { of }
    }

    /// The peer of socket `i`, `s`.
    pub fn key(&self, i: usize, s: &Socket) -> PeerKey {
        match self.of.get(&i) {
            Some(p) => PeerKey::Process(p.pid),
            None => PeerKey::Host(canonical(s.remote()).ip()),
        }
    }

    /// The process at the other end of socket `i`, when it runs here.
    pub fn process(&self, i: usize) -> Option<&'a Process> {
        self.of.get(&i).copied()
    }
}

/// Whether a connection's destination is this namespace itself: a loopback
/// address, or the address the connection is bound to (the kernel picks the
/// destination as the source toward a local address).
pub fn is_local_destination(s: &Socket) -> bool {
    let remote = canonical(s.remote()).ip();
    remote.is_loopback() || remote == canonical(s.local()).ip()
}

/// The peers of a group of connections (socket indexes), most connections first.
pub fn list(cx: &Context, ends: &Ends, sockets: &[usize]) -> Vec<Peer> {
    let mut by: BTreeMap<PeerKey, Peer> = BTreeMap::new();
    for &i in sockets {
        let Some(s) = cx.snapshot.sockets.get(i) else {
            continue;
        };
        let key = ends.key(i, s);
        let p = ends.process(i);
        by.entry(key)
            .or_insert_with(|| Peer {
                host: canonical(s.remote()).ip(),
                pid: p.map(|p| p.pid),
                comm: p.map(|p| p.comm.clone()),
                connections: 0,
            })
            .connections += 1;
    }
    let mut peers: Vec<Peer> = by.into_values().collect();
    peers.sort_by_key(|p| std::cmp::Reverse(p.connections));
    peers
}

/// "pid 812 (python3) at 127.0.0.1, 6 connections; 10.0.0.7, 2 connections; and 4 more peers";
/// one peer alone without its count (the group's count says it).
pub fn describe(peers: &[Peer]) -> String {
    let name = |p: &Peer| match (p.pid, &p.comm) {
        (Some(pid), Some(comm)) => format!("pid {pid} ({comm}) at {}", p.host),
        _ => p.host.to_string(),
    };
    if let [only] = peers {
        return name(only);
    }
    let mut parts: Vec<String> = peers
        .iter()
        .take(NAMED)
        .map(|p| {
            format!(
                "{}, {}",
                name(p),
                super::plural(p.connections, "connection")
            )
        })
        .collect();
    if peers.len() > NAMED {
        parts.push(format!("and {} more peers", peers.len() - NAMED));
    }
    parts.join("; ")
}

/// The distinct remote endpoints of a group, "10.0.0.7:443 (28), 10.0.0.7:8443 (2)".
pub fn endpoints(cx: &Context, sockets: &[usize]) -> (Option<SocketAddr>, String) {
    let mut by: BTreeMap<SocketAddr, u64> = BTreeMap::new();
    for s in sockets.iter().filter_map(|&i| cx.snapshot.sockets.get(i)) {
        *by.entry(canonical(s.remote())).or_default() += 1;
    }
    let one = match by.keys().collect::<Vec<_>>()[..] {
        [only] => Some(*only),
        _ => None,
    };
    let mut shown: Vec<(SocketAddr, u64)> = by.into_iter().collect();
    shown.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
    let mut parts: Vec<String> = shown
        .iter()
        .take(NAMED)
        .map(|(a, n)| format!("{} ({n})", endpoint(a)))
        .collect();
    if shown.len() > NAMED {
        parts.push(format!("and {} more", shown.len() - NAMED));
    }
    (one, parts.join(", "))
}

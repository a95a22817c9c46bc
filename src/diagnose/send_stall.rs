//! Why a peer does not acknowledge what this host sent: it is alive and does
//! not read, or it (or the path to it) is gone. The two need opposite fixes
//! (the reader's code, or the network), and the kernel tells them apart:
//!
//! - A closed receive window: the kernel runs the zero-window probe timer,
//!   and a live peer answers every probe, which resets tcp_info's `probes` to
//!   0 while the timer backs off. Send-Q holds what the peer has not read.
//! - Nothing answers: the retransmission timer runs with `retransmits` > 0
//!   and growing backoff, or window probes go unanswered (`probes` climbs).
//!   A firewall or conntrack that forgot the flow, or a dead host.

use super::{Context, who};
use crate::snapshot::{Socket, Timer, endpoint};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// How many peers the evidence names.
const PEERS_SHOWN: usize = 3;

/// Unanswered window probes from which the peer counts as gone: one may be
/// in flight at any moment.
const PROBES_UNANSWERED: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// The peer's receive window is closed and it answers the probes.
    PeerNotReading,
    /// Retransmissions (or window probes) go unanswered.
    PeerGone,
}

/// How a socket's sending is stalled, when its timer says so.
pub fn of(s: &Socket) -> Option<Stall> {
    match (s.timer(), s.tcp_info()) {
        (Timer::ZeroWindowProbe, Some(t)) if t.probes >= PROBES_UNANSWERED => Some(Stall::PeerGone),
        (Timer::ZeroWindowProbe, _) => Some(Stall::PeerNotReading),
        (Timer::Retransmit, Some(t)) if t.retransmits > 0 => Some(Stall::PeerGone),
        _ => None,
    }
}

/// Up to [`PEERS_SHOWN`] remote endpoints, each with the local process that
/// holds its end when the peer runs on this host.
pub fn peer_names(cx: &Context, socks: &[&Socket]) -> Vec<String> {
    // One connection per remote endpoint: its reversed four-tuple finds the peer's socket.
    let peers: BTreeMap<SocketAddr, SocketAddr> =
        socks.iter().map(|s| (s.remote(), s.local())).collect();
    let shown: Vec<(SocketAddr, SocketAddr)> = peers
        .iter()
        .take(PEERS_SHOWN)
        .map(|(&remote, &local)| (remote, local))
        .collect();
    // One pass over the sockets for the few shown, not a map of them all.
    let mut held: FxHashMap<(SocketAddr, SocketAddr), usize> = FxHashMap::default();
    for (i, s) in cx.snapshot.sockets.iter().enumerate() {
        if shown.contains(&(s.local(), s.remote())) {
            held.insert((s.local(), s.remote()), i);
        }
    }
    let mut names: Vec<String> = shown
        .iter()
        .map(|&(remote, local)| {
            let owner = held.get(&(remote, local)).and_then(|&i| cx.index.owner(i));
            match owner {
                Some(p) => format!("{} held by {}", endpoint(&remote), who(Some(p))),
                None => endpoint(&remote),
            }
        })
        .collect();
    if peers.len() > PEERS_SHOWN {
        names.push(format!("and {} more", peers.len() - PEERS_SHOWN));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{SocketParts, TcpInfo};
    use crate::tcp::TcpState;

    fn sock(timer: Timer, retransmits: u8, probes: u8) -> Socket {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 80));
        Socket::from(SocketParts {
            state: TcpState::FinWait1,
            local: addr,
            remote: addr,
            inode: 0,
            uid: 0,
            cookie: None,
            recv_q: 0,
            send_q: 4096,
            timer,
            timer_ms: Some(200),
            tcp_info: Some(TcpInfo {
                retransmits,
                probes,
                backoff: 5,
                ..TcpInfo::default()
            }),
            cgroup_id: None,
        })
    }

    /// As a real receiver that never reads shows it: persist timer, probes 0, backoff 5.
    #[test]
    fn zero_window_answered_is_a_peer_not_reading() {
        let s = sock(Timer::ZeroWindowProbe, 0, 0);
        assert_eq!(of(&s), Some(Stall::PeerNotReading));
        assert_eq!(
            of(&sock(Timer::ZeroWindowProbe, 0, 1)),
            Some(Stall::PeerNotReading)
        );
    }

    #[test]
    fn retransmissions_or_unanswered_probes_are_a_peer_gone() {
        assert_eq!(of(&sock(Timer::Retransmit, 3, 0)), Some(Stall::PeerGone));
        assert_eq!(
            of(&sock(Timer::ZeroWindowProbe, 0, 4)),
            Some(Stall::PeerGone)
        );
        // The retransmission timer armed for data in flight is no stall.
        assert_eq!(of(&sock(Timer::Retransmit, 0, 0)), None);
        assert_eq!(of(&sock(Timer::KeepAlive, 0, 0)), None);
        assert_eq!(of(&sock(Timer::None, 0, 0)), None);
    }
}

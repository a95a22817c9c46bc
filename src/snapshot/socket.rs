//! One TCP socket, packed: a busy host has a million of them, and each byte
//! of a socket is a megabyte of connleak's memory there.
//!
//! [`Socket`] holds the fields of [`SocketParts`] in 96 bytes instead of 144:
//! each address as 16 bytes and a port (an IPv4 address in the first four,
//! told apart by a flag, so that an IPv4-mapped IPv6 address stays one), every
//! `Option` as a bit of one flag byte, the inode in the 32 bits the kernel
//! gives it (which pays for the cgroup id in full, so that a socket needs
//! no table outside itself). Rules read a socket through methods named as
//! its fields. It is built and edited as its
//! parts, and saved and loaded as them, so a snapshot file is what it was.

use super::{TcpInfo, Timer};
use crate::tcp::TcpState;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU64;

/// One TCP socket as the kernel reported it, field by field: how a
/// [`Socket`] is built and edited, and how a snapshot file spells it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SocketParts {
    pub state: TcpState,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// 0 for TIME_WAIT sockets and for connections not yet accepted. The
    /// kernel's socket inodes are 32-bit (and wrap): a larger one is refused.
    pub inode: u32,
    pub uid: u32,
    /// The kernel's socket cookie (unique while the socket lives, never 0); `None` from `/proc/net`.
    pub cookie: Option<NonZeroU64>,
    /// Bytes received and not read by the application; for LISTEN, the accept queue length.
    pub recv_q: u32,
    /// Bytes not yet acknowledged by the peer; for LISTEN, the backlog when
    /// read from sock_diag (`/proc/net/tcp` prints 0 there: read it through
    /// [`super::Snapshot::backlog`], which knows the difference).
    pub send_q: u32,
    pub timer: Timer,
    /// Milliseconds until the timer fires (TIME_WAIT: until the socket is gone).
    pub timer_ms: Option<u32>,
    pub tcp_info: Option<TcpInfo>,
    /// The cgroup v2 id of the socket (its creator's cgroup; for a connection
    /// not yet accepted, its listener's). `None` without cgroup v2, from
    /// `/proc/net`, and for TIME_WAIT and request sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_id: Option<u64>,
}

/// One TCP socket, packed (see the module): read it through the methods
/// named as the fields of [`SocketParts`].
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "SocketParts", into = "SocketParts")]
pub struct Socket {
    inode: u32,
    cookie: Option<NonZeroU64>,
    uid: u32,
    recv_q: u32,
    send_q: u32,
    /// 0 when absent (flag `TIMER_MS`), so that equal parts pack equal.
    timer_ms: u32,
    info: PackedInfo,
    /// 0 when absent: cgroup v2 ids are kernfs node ids, never 0.
    cgroup_id: u64,
    local: PackedAddr,
    remote: PackedAddr,
    state: TcpState,
    timer: Timer,
    flags: u8,
}

/// An address without its family: an IPv4 address in the first four bytes.
#[derive(Clone, Copy, PartialEq)]
struct PackedAddr {
    ip: [u8; 16],
    port: u16,
}

/// [`TcpInfo`] without its `Option`s (those are flags of the socket); an
/// absent value is 0.
#[derive(Clone, Copy, PartialEq, Default)]
struct PackedInfo {
    last_data_sent_ms: u32,
    last_data_recv_ms: u32,
    last_ack_recv_ms: u32,
    total_retrans: u32,
    retransmits: u8,
    probes: u8,
    backoff: u8,
}

/// Bits of `Socket::flags`.
const LOCAL_V4: u8 = 1;
const REMOTE_V4: u8 = 1 << 1;
const TIMER_MS: u8 = 1 << 2;
const TCP_INFO: u8 = 1 << 3;
const DATA_SENT: u8 = 1 << 4;
const DATA_RECV: u8 = 1 << 5;
const ACK_RECV: u8 = 1 << 6;
const RETRANS: u8 = 1 << 7;

/// `value` (0 when `None`) and `bit` when it is there.
fn split(value: Option<u32>, bit: u8) -> (u32, u8) {
    value.map_or((0, 0), |v| (v, bit))
}

impl PackedAddr {
    /// The address, and whether it is an IPv4 one.
    fn pack(addr: SocketAddr) -> (PackedAddr, bool) {
        let mut ip = [0; 16];
        let v4 = match addr.ip() {
            IpAddr::V4(v4) => {
                ip[..4].copy_from_slice(&v4.octets());
                true
            }
            IpAddr::V6(v6) => {
                ip = v6.octets();
                false
            }
        };
        let port = addr.port();
        (PackedAddr { ip, port }, v4)
    }

    fn unpack(self, v4: bool) -> SocketAddr {
        let ip = if v4 {
            let [a, b, c, d, ..] = self.ip;
            IpAddr::V4(Ipv4Addr::new(a, b, c, d))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.ip))
        };
        SocketAddr::new(ip, self.port)
    }
}

impl From<SocketParts> for Socket {
    fn from(p: SocketParts) -> Socket {
        let (local, local_v4) = PackedAddr::pack(p.local);
        let (remote, remote_v4) = PackedAddr::pack(p.remote);
        let (timer_ms, has_timer_ms) = split(p.timer_ms, TIMER_MS);
        let mut flags = has_timer_ms;
        flags |= if local_v4 { LOCAL_V4 } else { 0 };
        flags |= if remote_v4 { REMOTE_V4 } else { 0 };
        let mut info = PackedInfo::default();
        if let Some(t) = p.tcp_info {
            let (sent, sent_bit) = split(t.last_data_sent_ms, DATA_SENT);
            let (recv, recv_bit) = split(t.last_data_recv_ms, DATA_RECV);
            let (ack, ack_bit) = split(t.last_ack_recv_ms, ACK_RECV);
            let (retrans, retrans_bit) = split(t.total_retrans, RETRANS);
            flags |= TCP_INFO | sent_bit | recv_bit | ack_bit | retrans_bit;
            info = PackedInfo {
                last_data_sent_ms: sent,
                last_data_recv_ms: recv,
                last_ack_recv_ms: ack,
                total_retrans: retrans,
                retransmits: t.retransmits,
                probes: t.probes,
                backoff: t.backoff,
            };
        }
        Socket {
            inode: p.inode,
            cookie: p.cookie,
            uid: p.uid,
            recv_q: p.recv_q,
            send_q: p.send_q,
            timer_ms,
            info,
            cgroup_id: p.cgroup_id.unwrap_or(0),
            local,
            remote,
            state: p.state,
            timer: p.timer,
            flags,
        }
    }
}

impl From<Socket> for SocketParts {
    fn from(s: Socket) -> SocketParts {
        s.parts()
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.parts().fmt(f)
    }
}

impl Socket {
    fn has(&self, bit: u8) -> bool {
        self.flags & bit != 0
    }

    /// `value` when `bit` says it is there.
    fn flagged(&self, value: u32, bit: u8) -> Option<u32> {
        self.has(bit).then_some(value)
    }

    pub fn state(&self) -> TcpState {
        self.state
    }

    pub fn local(&self) -> SocketAddr {
        self.local.unpack(self.has(LOCAL_V4))
    }

    pub fn remote(&self) -> SocketAddr {
        self.remote.unpack(self.has(REMOTE_V4))
    }

    /// 0 for TIME_WAIT sockets and for connections not yet accepted.
    pub fn inode(&self) -> u64 {
        u64::from(self.inode)
    }

    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The kernel's socket cookie; `None` from `/proc/net`.
    pub fn cookie(&self) -> Option<NonZeroU64> {
        self.cookie
    }

    /// Bytes received and not read; for LISTEN, the accept queue length.
    pub fn recv_q(&self) -> u32 {
        self.recv_q
    }

    /// Bytes not yet acknowledged; for LISTEN, see [`super::Snapshot::backlog`].
    pub fn send_q(&self) -> u32 {
        self.send_q
    }

    pub fn timer(&self) -> Timer {
        self.timer
    }

    /// Milliseconds until the timer fires.
    pub fn timer_ms(&self) -> Option<u32> {
        self.flagged(self.timer_ms, TIMER_MS)
    }

    pub fn tcp_info(&self) -> Option<TcpInfo> {
        let i = &self.info;
        self.has(TCP_INFO).then(|| TcpInfo {
            retransmits: i.retransmits,
            probes: i.probes,
            backoff: i.backoff,
            last_data_sent_ms: self.flagged(i.last_data_sent_ms, DATA_SENT),
            last_data_recv_ms: self.flagged(i.last_data_recv_ms, DATA_RECV),
            last_ack_recv_ms: self.flagged(i.last_ack_recv_ms, ACK_RECV),
            total_retrans: self.flagged(i.total_retrans, RETRANS),
        })
    }

    /// The cgroup v2 id of the socket, when the kernel gave one.
    pub fn cgroup_id(&self) -> Option<u64> {
        (self.cgroup_id != 0).then_some(self.cgroup_id)
    }

    /// Every field, unpacked.
    pub fn parts(&self) -> SocketParts {
        SocketParts {
            state: self.state,
            local: self.local(),
            remote: self.remote(),
            inode: self.inode,
            uid: self.uid,
            cookie: self.cookie,
            recv_q: self.recv_q,
            send_q: self.send_q,
            timer: self.timer,
            timer_ms: self.timer_ms(),
            tcp_info: self.tcp_info(),
            cgroup_id: self.cgroup_id(),
        }
    }

    /// Changes fields through `change`, on the parts: for fixtures and tests.
    pub fn edit(&mut self, change: impl FnOnce(&mut SocketParts)) {
        let mut parts = self.parts();
        change(&mut parts);
        *self = Socket::from(parts);
    }

    /// Request bytes wait unread in a connection: Recv-Q > 0 when ESTABLISHED,
    /// Recv-Q > 1 in CLOSE-WAIT (where the peer's FIN counts as one byte).
    pub fn has_unread_request(&self) -> bool {
        match self.state {
            TcpState::CloseWait => self.recv_q > 1,
            TcpState::Established => self.recv_q > 0,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(local: &str, remote: &str) -> SocketParts {
        SocketParts {
            state: TcpState::Established,
            local: local.parse().unwrap_or_else(|_| unreachable!()),
            remote: remote.parse().unwrap_or_else(|_| unreachable!()),
            inode: u32::MAX,
            uid: 1000,
            cookie: NonZeroU64::new(7),
            recv_q: 3,
            send_q: u32::MAX,
            timer: Timer::Retransmit,
            timer_ms: Some(0),
            tcp_info: Some(TcpInfo {
                retransmits: 1,
                probes: 2,
                backoff: 255,
                last_data_sent_ms: Some(u32::MAX),
                last_data_recv_ms: None,
                last_ack_recv_ms: Some(0),
                total_retrans: None,
            }),
            cgroup_id: Some(u64::MAX),
        }
    }

    #[test]
    fn a_socket_is_96_bytes() {
        assert_eq!(size_of::<Socket>(), 96);
    }

    #[test]
    fn parts_come_back_as_they_went_in() {
        let cases = [
            parts("10.0.0.1:80", "[2001:db8::1]:443"),
            parts("[::ffff:10.1.2.3]:8080", "0.0.0.0:0"),
            parts("[::]:0", "[::ffff:0.0.0.0]:1"),
        ];
        for p in cases {
            assert_eq!(Socket::from(p.clone()).parts(), p);
            let bare = SocketParts {
                timer_ms: None,
                tcp_info: None,
                cgroup_id: None,
                cookie: None,
                ..p.clone()
            };
            assert_eq!(Socket::from(bare.clone()).parts(), bare);
        }
        let mapped = Socket::from(parts("[::ffff:10.1.2.3]:8080", "10.1.2.3:8080"));
        assert!(mapped.local().is_ipv6() && mapped.remote().is_ipv4());
        assert_eq!(mapped.local().to_string(), "[::ffff:10.1.2.3]:8080");
    }

    #[test]
    fn saved_as_its_parts() {
        let p = parts("127.0.0.1:80", "[::1]:5000");
        let packed = serde_json::to_string(&Socket::from(p.clone())).unwrap_or_default();
        assert_eq!(packed, serde_json::to_string(&p).unwrap_or_default());
        let back: Option<Socket> = serde_json::from_str(&packed).ok();
        assert_eq!(back.map(|s| s.parts()), Some(p));
    }

    /// The kernel's socket inodes are 32-bit: a file with a larger one is refused, not cut.
    #[test]
    fn an_inode_past_32_bits_is_refused() {
        let mut v = serde_json::to_value(parts("127.0.0.1:80", "[::1]:5000")).unwrap_or_default();
        v["inode"] = serde_json::json!(1_u64 << 32);
        let err = serde_json::from_value::<Socket>(v)
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("u32")), "refused");
    }

    #[test]
    fn equal_parts_are_equal_sockets() {
        let mut a = Socket::from(parts("127.0.0.1:80", "127.0.0.1:81"));
        let b = a.clone();
        a.edit(|p| p.timer_ms = Some(5));
        assert_ne!(a, b);
        a.edit(|p| p.timer_ms = Some(0));
        assert_eq!(a, b);
    }

    #[test]
    fn unread_request_discounts_the_fin() {
        let sock = |state, recv_q| {
            Socket::from(SocketParts {
                state,
                recv_q,
                ..parts("127.0.0.1:80", "127.0.0.1:80")
            })
        };
        assert!(sock(TcpState::Established, 1).has_unread_request());
        assert!(!sock(TcpState::Established, 0).has_unread_request());
        assert!(!sock(TcpState::CloseWait, 1).has_unread_request());
        assert!(sock(TcpState::CloseWait, 2).has_unread_request());
        assert!(!sock(TcpState::Listen, 5).has_unread_request());
    }
}

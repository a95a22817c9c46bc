//! What the kernel holds of a process's sockets, read by the socket
//! iterator program. Two readings of one record:
//!
//! - [`ClosedSocket`]: for a TCP socket that left every table (state CLOSE,
//!   unhashed, its fd still open), whether its connection was ever
//!   established, toward whom, whether data was in flight when it ended, and
//!   the error the application has not collected yet. Nothing else can tell:
//!   sock_diag, `/proc/net/tcp` and `getpeername` no longer see such a socket.
//! - [`HeldSocket`]: for a TCP socket still in the kernel's tables, its
//!   network namespace and the identity sock_diag finds it by (addresses,
//!   ports, device, cookie), and whether a listener has connections still
//!   in their handshake. A namespace whose every socket is held by a
//!   process is then read by asking sock_diag for these sockets one by one,
//!   instead of walking the host's whole table (see `collect::held`).
//!
//! The record is this module's, laid out for the program to fill with one
//! `bpf_probe_read_kernel` a field; this module parses it back.

use super::FdIterError;
use crate::collect::btf::{Btf, BtfError, Field};
use crate::tcp::TcpState;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Bytes of one record.
pub const SOCKET_RECORD: usize = 136;

/// Where each copied field goes in the record, by name: (record offset, size).
const FAMILY: (i16, usize) = (16, 2);
const STATE: (i16, usize) = (18, 1);
const DPORT: (i16, usize) = (20, 2);
const DADDR: (i16, usize) = (24, 4);
const PROTOCOL: (i16, usize) = (28, 2);
const TYPE: (i16, usize) = (30, 2);
const V6_DADDR: (i16, usize) = (32, 16);
const SRTT: (i16, usize) = (48, 4);
const ERR: (i16, usize) = (52, 4);
const SND_NXT: (i16, usize) = (56, 4);
const SND_UNA: (i16, usize) = (60, 4);
const FLAGS: (i16, usize) = (64, 8);
const BYTES_ACKED: (i16, usize) = (72, 8);
const BYTES_RECEIVED: (i16, usize) = (80, 8);
const NUM: (i16, usize) = (88, 2);
const RCV_SADDR: (i16, usize) = (92, 4);
const V6_RCV_SADDR: (i16, usize) = (96, 16);
const BOUND_DEV_IF: (i16, usize) = (112, 4);
const QLEN: (i16, usize) = (116, 4);
const COOKIE: (i16, usize) = (120, 8);
/// The inode of the socket's network namespace, read through its `struct net`.
pub(super) const NETNS: (i16, usize) = (128, 4);

/// The kernel offsets the socket program reads at.
pub(super) struct SockOffsets {
    pub private_data: Field,
    pub socket_sk: Field,
    /// (record offset, the field of the socket copied there).
    pub copies: Vec<(i16, Field)>,
    /// The socket's `struct net` pointer, and where in a `struct net` its
    /// namespace's inode is: copied to [`NETNS`].
    pub net: Field,
    pub net_inum: Field,
}

impl SockOffsets {
    pub(super) fn of(btf: &Btf) -> Result<SockOffsets, FdIterError> {
        // `struct sock` begins with its `sock_common`, and `tcp_sock` with
        // its `sock` (through inet_connection_sock and inet_sock).
        let common = |name| [("sock", "__sk_common"), ("sock_common", name)];
        let copy = |path: &[(&str, &'static str)], (at, size): (i16, usize)| {
            let f = nested(btf, path)?;
            if f.size == size {
                Ok::<_, FdIterError>((at, f))
            } else {
                let (strukt, name) = path[path.len() - 1];
                Err(BtfError::Size(format!("{strukt}.{name}")).into())
            }
        };
        Ok(SockOffsets {
            private_data: copy(&[("file", "private_data")], (0, 8))?.1,
            socket_sk: copy(&[("socket", "sk")], (0, 8))?.1,
            copies: vec![
                copy(&common("skc_family"), FAMILY)?,
                copy(&common("skc_state"), STATE)?,
                copy(&common("skc_dport"), DPORT)?,
                copy(&common("skc_daddr"), DADDR)?,
                copy(&common("skc_v6_daddr"), V6_DADDR)?,
                copy(&common("skc_num"), NUM)?,
                copy(&common("skc_rcv_saddr"), RCV_SADDR)?,
                copy(&common("skc_v6_rcv_saddr"), V6_RCV_SADDR)?,
                copy(&common("skc_bound_dev_if"), BOUND_DEV_IF)?,
                copy(&common("skc_cookie"), COOKIE)?,
                copy(&[("sock", "sk_protocol")], PROTOCOL)?,
                copy(&[("sock", "sk_type")], TYPE)?,
                copy(&[("sock", "sk_err")], ERR)?,
                // A member of `sock` until Linux 6.x moved it into `sock_common`.
                copy(&[("sock", "sk_flags")], FLAGS)
                    .or_else(|_| copy(&common("skc_flags"), FLAGS))?,
                copy(
                    &[
                        ("inet_connection_sock", "icsk_accept_queue"),
                        ("request_sock_queue", "qlen"),
                    ],
                    QLEN,
                )?,
                copy(&[("tcp_sock", "srtt_us")], SRTT)?,
                copy(&[("tcp_sock", "snd_nxt")], SND_NXT)?,
                copy(&[("tcp_sock", "snd_una")], SND_UNA)?,
                copy(&[("tcp_sock", "bytes_acked")], BYTES_ACKED)?,
                copy(&[("tcp_sock", "bytes_received")], BYTES_RECEIVED)?,
            ],
            net: copy(
                &[("sock", "__sk_common"), ("sock_common", "skc_net")],
                (0, 8),
            )?
            .1,
            net_inum: copy(&[("net", "ns"), ("ns_common", "inum")], NETNS)?.1,
        })
    }
}

/// A member inside members: each `(struct, field)` of `path` is a member of
/// the one before, and the offsets add up.
fn nested(btf: &Btf, path: &[(&str, &str)]) -> Result<Field, FdIterError> {
    let mut offset = 0i16;
    let mut size = 0;
    for &(strukt, name) in path {
        let f = btf.field(strukt, name)?;
        offset = offset
            .checked_add(f.offset)
            .ok_or_else(|| BtfError::Offset(format!("{strukt}.{name}")))?;
        size = f.size;
    }
    Ok(Field { offset, size })
}

/// A TCP socket in state CLOSE, as the kernel still holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedSocket {
    pub fd: u32,
    pub inode: u64,
    /// The address it connected (or tried to connect) to, if the kernel kept it.
    pub peer: Option<IpAddr>,
    /// Its port; 0 once a failed blocking connect() has reset the socket.
    pub peer_port: u16,
    /// Whatever it received or had acknowledged, or an RTT measured: the
    /// handshake completed at some point.
    pub established: bool,
    /// Data (or a FIN) it sent that was never acknowledged when it ended.
    pub unacked: bool,
    /// The peer's FIN arrived (`SOCK_DONE` in `sk_flags`, which is
    /// `skc_flags` of the socket's `sock_common`; only `tcp_fin` sets it, a
    /// reset or a timeout does not).
    pub peer_fin: bool,
    /// The error the kernel holds for the application (errno), not yet
    /// collected by a read, a write or `SO_ERROR`; 0 if none.
    pub error: i32,
}

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u16 = 6;
const SOCK_STREAM: u16 = 1;
/// `SOCK_DONE`'s bit in `sk_flags` (`enum sock_flags`: SOCK_DEAD, SOCK_DONE, ...).
const SOCK_DONE: u64 = 1 << 1;

/// The fields of one record, by where the program put them.
struct Record<'a>(&'a [u8]);

impl Record<'_> {
    fn bytes(&self, (at, size): (i16, usize)) -> Option<&[u8]> {
        self.0.get(at as usize..at as usize + size)
    }
    fn u16(&self, f: (i16, usize)) -> Option<u16> {
        self.bytes(f).map(|b| u16::from_ne_bytes([b[0], b[1]]))
    }
    fn u32(&self, f: (i16, usize)) -> Option<u32> {
        self.bytes(f)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&self, f: (i16, usize)) -> Option<u64> {
        let b = self.bytes(f)?;
        Some(u64::from_ne_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }
    /// The family and state of a TCP socket, `None` for any other socket
    /// (or a state this connleak does not know).
    fn tcp(&self) -> Option<(u16, TcpState)> {
        let tcp = self.u16(PROTOCOL)? == IPPROTO_TCP && self.u16(TYPE)? == SOCK_STREAM;
        let family = self.u16(FAMILY)?;
        let state = TcpState::from_kernel(self.bytes(STATE)?[0])?;
        (tcp && [AF_INET, AF_INET6].contains(&family)).then_some((family, state))
    }
    /// An address of the socket's family: the IPv4 or the IPv6 field.
    fn ip(&self, family: u16, v4: (i16, usize), v6: (i16, usize)) -> Option<IpAddr> {
        Some(if family == AF_INET {
            IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(self.bytes(v4)?).ok()?))
        } else {
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(self.bytes(v6)?).ok()?))
        })
    }
    fn fd(&self) -> Option<u32> {
        self.u32((4, 4))
    }
    fn inode(&self) -> Option<u64> {
        self.u64((8, 8))
    }
}

/// Parses one record: a TCP socket in state CLOSE, or `None` for any other socket.
pub fn closed(r: &[u8]) -> Option<ClosedSocket> {
    let r = Record(r);
    let (family, state) = r.tcp()?;
    if state != TcpState::Close {
        return None;
    }
    let peer = match r.ip(family, DADDR, V6_DADDR)? {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    Some(ClosedSocket {
        fd: r.fd()?,
        inode: r.inode()?,
        peer: Some(peer).filter(|ip| !ip.is_unspecified()),
        peer_port: u16::from_be(r.u16(DPORT)?),
        established: r.u32(SRTT)? > 0 || r.u64(BYTES_ACKED)? > 0 || r.u64(BYTES_RECEIVED)? > 0,
        unacked: r.u32(SND_NXT)? != r.u32(SND_UNA)?,
        peer_fin: r.u64(FLAGS)? & SOCK_DONE != 0,
        error: r.u32(ERR)? as i32,
    })
}

/// A TCP socket a process holds that is still in the kernel's tables (any
/// state but CLOSE): where it lives and what sock_diag finds it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldSocket {
    pub inode: u64,
    /// The inode of the socket's network namespace (which may not be its holder's).
    pub netns: u64,
    /// `AF_INET` or `AF_INET6`, as sock_diag is asked.
    pub family: u8,
    pub state: TcpState,
    pub local: SocketAddr,
    /// The peer; the unspecified address and port 0 for a listener.
    pub remote: SocketAddr,
    /// The device it is bound to (`SO_BINDTODEVICE`), 0 for none.
    pub bound_dev_if: u32,
    /// Its cookie, 0 while nothing asked for it.
    pub cookie: u64,
    /// A listener's connections still in their handshake (request sockets).
    pub handshakes: u32,
}

/// Parses one record: a TCP socket still in the tables, or `None` for any other socket.
pub fn held(r: &[u8]) -> Option<HeldSocket> {
    let r = Record(r);
    let (family, state) = r.tcp()?;
    if state == TcpState::Close {
        return None;
    }
    Some(HeldSocket {
        inode: r.inode()?,
        netns: u64::from(r.u32(NETNS)?),
        family: family as u8,
        state,
        local: SocketAddr::new(r.ip(family, RCV_SADDR, V6_RCV_SADDR)?, r.u16(NUM)?),
        remote: SocketAddr::new(r.ip(family, DADDR, V6_DADDR)?, u16::from_be(r.u16(DPORT)?)),
        bound_dev_if: r.u32(BOUND_DEV_IF)?,
        cookie: r.u64(COOKIE)?,
        handshakes: r.u32(QLEN)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The kernel's number for CLOSE, as the program copies it.
    const TCP_CLOSE: u8 = 7;

    /// A record as the program writes it.
    fn record(family: u16, state: u8, protocol: u16, addr6: [u8; 16]) -> Vec<u8> {
        let mut r = vec![0u8; SOCKET_RECORD];
        let mut put = |(at, _): (i16, usize), bytes: &[u8]| {
            r[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
        };
        put((4, 4), &9u32.to_ne_bytes());
        put((8, 8), &77u64.to_ne_bytes());
        put(FAMILY, &family.to_ne_bytes());
        put(STATE, &[state]);
        put(DPORT, &5432u16.to_be_bytes());
        put(DADDR, &[10, 0, 0, 9]);
        put(PROTOCOL, &protocol.to_ne_bytes());
        put(TYPE, &SOCK_STREAM.to_ne_bytes());
        put(V6_DADDR, &addr6);
        put(SND_NXT, &101u32.to_ne_bytes());
        put(SND_UNA, &100u32.to_ne_bytes());
        put(ERR, &(libc::ETIMEDOUT as u32).to_ne_bytes());
        r
    }

    #[test]
    fn a_failed_connect_reads_as_such() {
        let s = closed(&record(AF_INET, TCP_CLOSE, IPPROTO_TCP, [0; 16])).unwrap();
        assert_eq!((s.fd, s.inode), (9, 77));
        assert_eq!(s.peer, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9))));
        assert_eq!(s.peer_port, 5432);
        assert!(!s.established && s.unacked);
        assert_eq!(s.error, libc::ETIMEDOUT);
    }

    #[test]
    fn a_v4_mapped_peer_reads_as_ipv4_and_other_sockets_are_skipped() {
        let mut mapped = [0u8; 16];
        mapped[10..].copy_from_slice(&[0xff, 0xff, 127, 0, 0, 1]);
        let s = closed(&record(AF_INET6, TCP_CLOSE, IPPROTO_TCP, mapped)).unwrap();
        assert_eq!(s.peer, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        // Still in a table (ESTABLISHED), not TCP (UDP), or of another family.
        assert_eq!(closed(&record(AF_INET, 1, IPPROTO_TCP, [0; 16])), None);
        assert_eq!(closed(&record(AF_INET, TCP_CLOSE, 17, [0; 16])), None);
        assert_eq!(closed(&record(1, TCP_CLOSE, IPPROTO_TCP, [0; 16])), None);
        // A short record is refused, not read past its end.
        assert_eq!(closed(&[0u8; 20]), None);
    }

    #[test]
    fn a_held_socket_reads_with_its_namespace_and_identity() {
        let mut r = record(AF_INET, 10, IPPROTO_TCP, [0; 16]);
        let mut put = |(at, _): (i16, usize), bytes: &[u8]| {
            r[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
        };
        put(NUM, &8080u16.to_ne_bytes());
        put(RCV_SADDR, &[10, 0, 0, 1]);
        put(COOKIE, &42u64.to_ne_bytes());
        put(QLEN, &3u32.to_ne_bytes());
        put(NETNS, &4026531840u32.to_ne_bytes());
        let h = held(&r).unwrap();
        assert_eq!(
            (h.inode, h.netns, h.state, h.cookie),
            (77, 4026531840, TcpState::Listen, 42)
        );
        assert_eq!(h.local, "10.0.0.1:8080".parse().unwrap());
        assert_eq!(h.remote, "10.0.0.9:5432".parse().unwrap());
        assert_eq!(h.handshakes, 3);
        // A closed socket is not held in any table; a UDP one is not TCP.
        assert_eq!(
            held(&record(AF_INET, TCP_CLOSE, IPPROTO_TCP, [0; 16])),
            None
        );
        assert_eq!(held(&record(AF_INET, 1, 17, [0; 16])), None);
    }
}

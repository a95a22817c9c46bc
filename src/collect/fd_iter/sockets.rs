//! What the kernel still holds of a process's sockets, read by the socket
//! iterator program: for a TCP socket that left every table (state CLOSE,
//! unhashed, its fd still open), whether its connection was ever
//! established, toward whom, whether data was in flight when it ended, and
//! the error the application has not collected yet. Nothing else can tell:
//! sock_diag, `/proc/net/tcp` and `getpeername` no longer see such a socket.
//!
//! The record is this module's, laid out for the program to fill with one
//! `bpf_probe_read_kernel` a field; this module parses it back.

use super::FdIterError;
use crate::collect::btf::{Btf, BtfError, Field};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Bytes of one record.
pub const SOCKET_RECORD: usize = 88;

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

/// The kernel offsets the socket program reads at.
pub(super) struct SockOffsets {
    pub private_data: Field,
    pub socket_sk: Field,
    /// (record offset, the field of the socket copied there).
    pub copies: Vec<(i16, Field)>,
}

impl SockOffsets {
    pub(super) fn of(btf: &Btf) -> Result<SockOffsets, FdIterError> {
        let field = |strukt: &str, name: &str, (at, size): (i16, usize)| {
            Ok::<_, FdIterError>((at, btf.sized(strukt, name, size)?))
        };
        // `struct sock` begins with its `sock_common`, and `tcp_sock` with
        // its `sock` (through inet_connection_sock and inet_sock).
        let common = btf.field("sock", "__sk_common")?.offset;
        let in_common = |name, at| {
            let (at, f) = field("sock_common", name, at)?;
            let offset = f
                .offset
                .checked_add(common)
                .ok_or_else(|| BtfError::Offset(format!("sock.__sk_common.{name}")))?;
            Ok::<_, FdIterError>((at, Field { offset, ..f }))
        };
        Ok(SockOffsets {
            private_data: field("file", "private_data", (0, 8))?.1,
            socket_sk: field("socket", "sk", (0, 8))?.1,
            copies: vec![
                in_common("skc_family", FAMILY)?,
                in_common("skc_state", STATE)?,
                in_common("skc_dport", DPORT)?,
                in_common("skc_daddr", DADDR)?,
                in_common("skc_v6_daddr", V6_DADDR)?,
                field("sock", "sk_protocol", PROTOCOL)?,
                field("sock", "sk_type", TYPE)?,
                field("sock", "sk_err", ERR)?,
                // A member of `sock` until Linux 6.x moved it into `sock_common`.
                field("sock", "sk_flags", FLAGS).or_else(|_| in_common("skc_flags", FLAGS))?,
                field("tcp_sock", "srtt_us", SRTT)?,
                field("tcp_sock", "snd_nxt", SND_NXT)?,
                field("tcp_sock", "snd_una", SND_UNA)?,
                field("tcp_sock", "bytes_acked", BYTES_ACKED)?,
                field("tcp_sock", "bytes_received", BYTES_RECEIVED)?,
            ],
        })
    }
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
const TCP_CLOSE: u8 = 7;
const IPPROTO_TCP: u16 = 6;
const SOCK_STREAM: u16 = 1;
/// `SOCK_DONE`'s bit in `sk_flags` (`enum sock_flags`: SOCK_DEAD, SOCK_DONE, ...).
const SOCK_DONE: u64 = 1 << 1;

/// Parses one record: a TCP socket in state CLOSE, or `None` for any other socket.
pub fn parse(r: &[u8]) -> Option<ClosedSocket> {
    let bytes = |(at, size): (i16, usize)| r.get(at as usize..at as usize + size);
    let u16_at = |f| bytes(f).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let u32_at = |f| bytes(f).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at =
        |f| bytes(f).map(|b| u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]));
    let family = u16_at(FAMILY)?;
    let tcp = u16_at(PROTOCOL)? == IPPROTO_TCP && u16_at(TYPE)? == SOCK_STREAM;
    if !tcp || bytes(STATE)?[0] != TCP_CLOSE {
        return None;
    }
    let peer = match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::from(
            <[u8; 4]>::try_from(bytes(DADDR)?).ok()?,
        ))),
        AF_INET6 => {
            let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(bytes(V6_DADDR)?).ok()?);
            Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        _ => return None,
    }
    .filter(|ip| !ip.is_unspecified());
    Some(ClosedSocket {
        fd: u32_at((4, 4))?,
        inode: u64_at((8, 8))?,
        peer,
        peer_port: u16::from_be(u16_at(DPORT)?),
        established: u32_at(SRTT)? > 0 || u64_at(BYTES_ACKED)? > 0 || u64_at(BYTES_RECEIVED)? > 0,
        unacked: u32_at(SND_NXT)? != u32_at(SND_UNA)?,
        peer_fin: u64_at(FLAGS)? & SOCK_DONE != 0,
        error: u32_at(ERR)? as i32,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
        let s = parse(&record(AF_INET, TCP_CLOSE, IPPROTO_TCP, [0; 16])).unwrap();
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
        let s = parse(&record(AF_INET6, TCP_CLOSE, IPPROTO_TCP, mapped)).unwrap();
        assert_eq!(s.peer, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        // Still in a table (ESTABLISHED), not TCP (UDP), or of another family.
        assert_eq!(parse(&record(AF_INET, 1, IPPROTO_TCP, [0; 16])), None);
        assert_eq!(parse(&record(AF_INET, TCP_CLOSE, 17, [0; 16])), None);
        assert_eq!(parse(&record(1, TCP_CLOSE, IPPROTO_TCP, [0; 16])), None);
        // A short record is refused, not read past its end.
        assert_eq!(parse(&[0u8; 20]), None);
    }
}

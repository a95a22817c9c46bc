//! The socket table from the kernel's sock_diag netlink interface.
//!
//! This is what `ss` uses, and the only source that gives socket cookies,
//! TIME_WAIT expiry and `tcp_info` (how long since the peer last sent
//! anything). Both the requests (a few fixed bytes, `request_bytes`) and the
//! replies are handled here as raw bytes; `netlink-packet-sock-diag` gives only
//! its constants, because the crate has no legacy `TCPDIAG_GETSOCK` request,
//! drops the TIME_WAIT expiry, and its `tcp_info` parser fails on a kernel
//! whose struct is shorter than the crate's. Decoding is a pure function of the
//! bytes so that it can be tested and fuzzed without a kernel.
//!
//! Every dump walks the kernel's whole table of established sockets, shared by
//! all network namespaces and both families, and that walk costs about as much
//! as filling the replies of a namespace with a third of the host's sockets.
//! So both families are asked for in one request, the legacy
//! `TCPDIAG_GETSOCK`, which the kernel answers for IPv4 and IPv6 in one walk;
//! `SOCK_DIAG_BY_FAMILY` takes one family a walk, and is used only where the
//! legacy request is refused.

use super::dense::DenseSet;
use crate::snapshot::{Socket, SocketParts, TcpInfo, Timer};
use crate::tcp::TcpState;
use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN,
    NetlinkBuffer, NlasIterator,
};
use netlink_packet_sock_diag::{
    AF_INET, AF_INET6, INET_DIAG_INFO, IPPROTO_TCP, SOCK_DIAG_BY_FAMILY,
    inet::{ExtensionFlags, StateFlags},
};
use netlink_sys::{Socket as NlSocket, SocketAddr as NlAddr, protocols::NETLINK_SOCK_DIAG};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU64;

/// How often a dump the kernel marks interrupted is redone before its result is used as is.
const DUMP_ATTEMPTS: usize = 3;
/// Receive buffer: dumps come in datagrams of at most a few tens of KiB.
const RECV_BUF: usize = 256 * 1024;
/// Size of `struct inet_diag_msg`.
const INET_DIAG_MSG_LEN: usize = 72;
/// The legacy request (`linux/inet_diag.h`): a dump of it covers both families.
/// Its replies carry the same `inet_diag_msg` under this message type.
const TCPDIAG_GETSOCK: u16 = 18;
/// Sizes of the netlink header, of `struct inet_diag_req` (the legacy request)
/// and of `struct inet_diag_req_v2`; both requests end with the 48-byte
/// `struct inet_diag_sockid`, left zero in a dump.
const NLMSG_HDR_LEN: usize = 16;
const INET_DIAG_REQ_LEN: usize = 60;
const INET_DIAG_REQ_V2_LEN: usize = 56;
/// The attribute carrying a full socket's cgroup v2 id (`linux/inet_diag.h`,
/// Linux 5.7): sent with every full socket, no extension bit asks for it
/// (`idiag_ext` has 8 bits, for attributes 1 to 8).
const INET_DIAG_CGROUP_ID: u16 = 21;

#[derive(Debug, thiserror::Error)]
pub enum SockDiagError {
    #[error("cannot open a NETLINK_SOCK_DIAG socket (socket): {0}{hint}", hint = hint(.0))]
    Open(io::Error),
    #[error("sending the {family} sock_diag request: {source}")]
    Send {
        family: &'static str,
        source: io::Error,
    },
    #[error("reading the {family} sock_diag dump: {source}")]
    Recv {
        family: &'static str,
        source: io::Error,
    },
    #[error("the kernel refused the {family} sock_diag dump: {source}{hint}", hint = hint(source))]
    Refused {
        family: &'static str,
        source: io::Error,
    },
    #[error("malformed sock_diag reply: {0}")]
    Decode(String),
}

/// What to do when the kernel or a sandbox says no.
fn hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => {
            " (a sandbox forbids netlink sockets: run on the host, or use --source proc)"
        }
        Some(libc::EPROTONOSUPPORT | libc::ENOENT | libc::EAFNOSUPPORT) => {
            " (this kernel lacks TCP sock_diag: modprobe tcp_diag, or use --source proc)"
        }
        _ => "",
    }
}

/// The sockets of both families, and anything worth telling about how the dump went.
#[derive(Debug, Default)]
pub struct Dump {
    pub sockets: Vec<Socket>,
    pub notes: Vec<String>,
}

/// What one dump request asks the kernel for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    /// IPv4 and IPv6 in one walk (`TCPDIAG_GETSOCK`).
    Both,
    /// One family (`SOCK_DIAG_BY_FAMILY`), where the legacy request is refused.
    Family(u8),
}

impl Request {
    fn name(self) -> &'static str {
        match self {
            Request::Both => "IPv4 and IPv6",
            Request::Family(AF_INET) => "IPv4",
            Request::Family(_) => "IPv6",
        }
    }
}

/// Dumps every TCP socket, IPv4 and IPv6, in every state, with tcp_info.
/// `expected` sizes the socket vector up front, so that a large table is not
/// copied while it grows.
pub fn dump(expected: usize) -> Result<Dump, SockDiagError> {
    let mut nl = NlSocket::new(NETLINK_SOCK_DIAG).map_err(SockDiagError::Open)?;
    nl.bind_auto().map_err(SockDiagError::Open)?;
    let mut out = Dump {
        sockets: Vec::with_capacity(expected),
        notes: Vec::new(),
    };
    let mut buf = Vec::with_capacity(RECV_BUF);
    match dump_request(&nl, Request::Both, &mut buf, &mut out) {
        // A kernel without the legacy request: one family at a time.
        Err(SockDiagError::Refused { .. }) => {
            out.sockets.clear();
            for family in [AF_INET, AF_INET6] {
                dump_request(&nl, Request::Family(family), &mut buf, &mut out)?;
            }
        }
        done => done?,
    }
    dedup_by_cookie(&mut out.sockets);
    Ok(out)
}

/// One request's dump, redone while the kernel marks it interrupted.
fn dump_request(
    nl: &NlSocket,
    request: Request,
    buf: &mut Vec<u8>,
    out: &mut Dump,
) -> Result<(), SockDiagError> {
    let name = request.name();
    let start = out.sockets.len();
    for attempt in 1..=DUMP_ATTEMPTS {
        out.sockets.truncate(start);
        match dump_once(nl, request, buf, &mut out.sockets)? {
            Outcome::Complete => break,
            Outcome::NoSuchFamily => {
                out.notes
                    .push(format!("{name}: not available in this kernel"));
                break;
            }
            Outcome::Interrupted if attempt < DUMP_ATTEMPTS => {}
            Outcome::Interrupted => out.notes.push(format!(
                "{name}: the kernel marked the dump interrupted {DUMP_ATTEMPTS} times \
                 (sockets changing fast); the last one is used, de-duplicated by cookie"
            )),
        }
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Complete,
    Interrupted,
    NoSuchFamily,
}

fn dump_once(
    nl: &NlSocket,
    request: Request,
    buf: &mut Vec<u8>,
    out: &mut Vec<Socket>,
) -> Result<Outcome, SockDiagError> {
    let name = request.name();
    nl.send_to(&request_bytes(request), &NlAddr::new(0, 0), 0)
        .map_err(|source| SockDiagError::Send {
            family: name,
            source,
        })?;
    let mut interrupted = false;
    loop {
        buf.clear();
        let n = match nl.recv(buf, libc::MSG_TRUNC) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(SockDiagError::Recv {
                    family: name,
                    source,
                });
            }
        };
        if n > buf.len() {
            return Err(SockDiagError::Decode(format!(
                "a {n}-byte datagram did not fit the {RECV_BUF}-byte buffer"
            )));
        }
        match decode_datagram(buf, out)? {
            Datagram::More { interrupted: i } => interrupted |= i,
            Datagram::Done { interrupted: i } => {
                return Ok(if interrupted || i {
                    Outcome::Interrupted
                } else {
                    Outcome::Complete
                });
            }
            Datagram::Error(errno) => {
                let source = io::Error::from_raw_os_error(errno);
                // A kernel without IPv6 (or without the inet6 diag module) says so this way.
                if request == Request::Family(AF_INET6)
                    && [libc::ENOENT, libc::EAFNOSUPPORT].contains(&errno)
                {
                    return Ok(Outcome::NoSuchFamily);
                }
                return Err(SockDiagError::Refused {
                    family: name,
                    source,
                });
            }
        }
    }
}

/// The request as the kernel reads it: a dump of every TCP state with tcp_info.
fn request_bytes(request: Request) -> Vec<u8> {
    match request {
        // struct inet_diag_req: family (ignored by a dump), src_len, dst_len,
        // ext, the sockid, states, dbs.
        Request::Both => {
            let mut b = vec![0; INET_DIAG_REQ_LEN];
            b[3] = ExtensionFlags::INFO.bits();
            b[52..56].copy_from_slice(&StateFlags::all().bits().to_ne_bytes());
            message(TCPDIAG_GETSOCK, NLM_F_REQUEST | NLM_F_DUMP, 0, &b)
        }
        Request::Family(family) => message(
            SOCK_DIAG_BY_FAMILY,
            NLM_F_REQUEST | NLM_F_DUMP,
            0,
            &request_v2(family),
        ),
    }
}

/// `struct inet_diag_req_v2` for TCP sockets of `family` in every state,
/// with tcp_info: family, protocol, ext, pad, states, then the sockid
/// (bytes 8 to 56), left zero here: a dump names no socket.
pub(crate) fn request_v2(family: u8) -> Vec<u8> {
    let mut b = vec![0; INET_DIAG_REQ_V2_LEN];
    b[..3].copy_from_slice(&[family, IPPROTO_TCP, ExtensionFlags::INFO.bits()]);
    b[4..8].copy_from_slice(&StateFlags::all().bits().to_ne_bytes());
    b
}

/// A netlink message of type `kind` around `body`, numbered `seq` (the
/// kernel fills the port id).
pub(crate) fn message(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDR_LEN + body.len();
    let mut bytes = Vec::with_capacity(len);
    bytes.extend(u32::try_from(len).unwrap_or(u32::MAX).to_ne_bytes());
    bytes.extend(kind.to_ne_bytes());
    bytes.extend(flags.to_ne_bytes());
    bytes.extend(seq.to_ne_bytes());
    bytes.extend([0; 4]);
    bytes.extend(body);
    bytes
}

/// What one datagram of a dump said.
#[derive(Debug, PartialEq, Eq)]
pub enum Datagram {
    /// Sockets (possibly none); more datagrams follow.
    More { interrupted: bool },
    /// The dump is complete.
    Done { interrupted: bool },
    /// The kernel answered with this errno.
    Error(i32),
}

/// Decodes one datagram of a sock_diag dump, appending its sockets to `out`.
pub fn decode_datagram(mut bytes: &[u8], out: &mut Vec<Socket>) -> Result<Datagram, SockDiagError> {
    let mut interrupted = false;
    while !bytes.is_empty() {
        let msg = NetlinkBuffer::new_checked(bytes)
            .map_err(|e| SockDiagError::Decode(format!("netlink header: {e}")))?;
        let len = msg.length() as usize;
        interrupted |= msg.flags() & NLM_F_DUMP_INTR != 0;
        match msg.message_type() {
            NLMSG_DONE => return Ok(Datagram::Done { interrupted }),
            NLMSG_ERROR => {
                let code = error_code(msg.payload())?;
                if code != 0 {
                    return Ok(Datagram::Error(code.saturating_neg()));
                }
            }
            NLMSG_NOOP | NLMSG_OVERRUN => {}
            SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK => {
                if let Some(socket) = decode_socket(msg.payload())? {
                    out.push(socket);
                }
            }
            other => {
                return Err(SockDiagError::Decode(format!(
                    "unexpected netlink message type {other}"
                )));
            }
        }
        // Messages are 4-byte aligned; the last one may end the datagram unaligned.
        let step = len.next_multiple_of(4).min(bytes.len());
        bytes = &bytes[step..];
    }
    Ok(Datagram::More { interrupted })
}

/// The (negative) errno of an `NLMSG_ERROR` message's payload; 0 is an acknowledgement.
pub(crate) fn error_code(payload: &[u8]) -> Result<i32, SockDiagError> {
    payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_ne_bytes)
        .ok_or_else(|| SockDiagError::Decode("short NLMSG_ERROR".into()))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&b[at..at + 4]);
    u32::from_ne_bytes(word)
}

/// Decodes one `inet_diag_msg` and its attributes. `None` for a state this
/// connleak does not know (a newer kernel's), which is skipped, not fatal.
pub(crate) fn decode_socket(p: &[u8]) -> Result<Option<Socket>, SockDiagError> {
    if p.len() < INET_DIAG_MSG_LEN {
        return Err(SockDiagError::Decode(format!(
            "inet_diag_msg of {} bytes, expected at least {INET_DIAG_MSG_LEN}",
            p.len()
        )));
    }
    let family = p[0];
    let Some(state) = TcpState::from_kernel(p[1]) else {
        return Ok(None);
    };
    // struct inet_diag_sockid: sport, dport (network order), src[4], dst[4], if, cookie[2].
    let port = |at: usize| u16::from_be_bytes([p[at], p[at + 1]]);
    let addr = |at: usize| -> Result<IpAddr, SockDiagError> {
        match family {
            AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(
                p[at],
                p[at + 1],
                p[at + 2],
                p[at + 3],
            ))),
            AF_INET6 => {
                let mut a = [0; 16];
                a.copy_from_slice(&p[at..at + 16]);
                Ok(IpAddr::V6(Ipv6Addr::from(a)))
            }
            other => Err(SockDiagError::Decode(format!("address family {other}"))),
        }
    };
    let local = SocketAddr::new(addr(8)?, port(4));
    let remote = SocketAddr::new(addr(24)?, port(6));
    let cookie = NonZeroU64::new(u64::from(u32_at(p, 44)) | (u64::from(u32_at(p, 48)) << 32));
    let timer = Timer::from_kernel(p[2]);
    let expires = u32_at(p, 52);
    let mut tcp_info = None;
    let mut cgroup_id = None;
    for nla in NlasIterator::new(&p[INET_DIAG_MSG_LEN..]) {
        let nla = nla.map_err(|e| SockDiagError::Decode(format!("attribute: {e}")))?;
        match nla.kind() {
            INET_DIAG_INFO => tcp_info = Some(decode_tcp_info(nla.value())),
            INET_DIAG_CGROUP_ID => {
                cgroup_id = nla.value().try_into().ok().map(u64::from_ne_bytes);
            }
            _ => {}
        }
    }
    Ok(Some(Socket::from(SocketParts {
        state,
        local,
        remote,
        inode: u32_at(p, 68),
        uid: u32_at(p, 64),
        cookie,
        recv_q: u32_at(p, 56),
        send_q: u32_at(p, 60),
        timer,
        timer_ms: (timer != Timer::None).then_some(expires),
        tcp_info,
        cgroup_id,
    })))
}

/// Reads the fields connleak uses from `struct tcp_info` by offset; a field
/// beyond the end of a short (older kernel's) struct is `None`.
pub fn decode_tcp_info(b: &[u8]) -> TcpInfo {
    let field = |at: usize| (b.len() >= at + 4).then(|| u32_at(b, at));
    TcpInfo {
        retransmits: b.get(2).copied().unwrap_or(0),
        probes: b.get(3).copied().unwrap_or(0),
        backoff: b.get(4).copied().unwrap_or(0),
        last_data_sent_ms: field(44),
        last_data_recv_ms: field(52),
        last_ack_recv_ms: field(56),
        total_retrans: field(100),
    }
}

/// Drops repeated sockets (a redone or overlapping dump); sockets without a cookie are kept.
fn dedup_by_cookie(sockets: &mut Vec<Socket>) {
    let cookies = || sockets.iter().filter_map(|s| s.cookie()).map(|c| c.get());
    let mut seen = DenseSet::empty_for(cookies());
    sockets.retain(|s| s.cookie().is_none_or(|c| seen.insert(c.get())));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds one netlink message carrying an inet_diag_msg, as the kernel would.
    fn message(kind: u16, flags: u16, payload: &[u8]) -> Vec<u8> {
        let len = 16 + payload.len();
        let mut m = Vec::new();
        m.extend((len as u32).to_ne_bytes());
        m.extend(kind.to_ne_bytes());
        m.extend(flags.to_ne_bytes());
        m.extend(1u32.to_ne_bytes());
        m.extend(0u32.to_ne_bytes());
        m.extend(payload);
        m.resize(len.next_multiple_of(4), 0);
        m
    }

    fn inet_diag_msg(
        state: u8,
        timer: u8,
        expires: u32,
        rq: u32,
        inode: u32,
        info: &[u8],
    ) -> Vec<u8> {
        let mut p = vec![AF_INET, state, timer, 0];
        p.extend(7001u16.to_be_bytes());
        p.extend(40000u16.to_be_bytes());
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[127, 0, 0, 1]);
        let mut dst = [0u8; 16];
        dst[..4].copy_from_slice(&[127, 0, 0, 2]);
        p.extend(src);
        p.extend(dst);
        p.extend(0u32.to_ne_bytes());
        p.extend(0xdead_u32.to_ne_bytes());
        p.extend(0x1_u32.to_ne_bytes());
        for v in [expires, rq, 0, 1000, inode] {
            p.extend(v.to_ne_bytes());
        }
        if !info.is_empty() {
            let nla_len = 4 + info.len();
            p.extend((nla_len as u16).to_ne_bytes());
            p.extend(INET_DIAG_INFO.to_ne_bytes());
            p.extend(info);
            p.resize(p.len() + (nla_len.next_multiple_of(4) - nla_len), 0);
        }
        p
    }

    #[test]
    fn decodes_a_close_wait_socket_with_tcp_info() {
        let mut info = vec![0u8; 104];
        info[3] = 2; // probes
        info[4] = 5; // backoff
        info[56..60].copy_from_slice(&4200u32.to_ne_bytes());
        let mut dgram = message(
            SOCK_DIAG_BY_FAMILY,
            2,
            &inet_diag_msg(8, 0, 0, 1, 4242, &info),
        );
        dgram.extend(message(NLMSG_DONE, 2, &0i32.to_ne_bytes()));
        let mut out = Vec::new();
        let r = decode_datagram(&dgram, &mut out);
        assert_eq!(r.ok(), Some(Datagram::Done { interrupted: false }));
        assert_eq!(out.len(), 1);
        let s = &out[0];
        assert_eq!(s.state(), TcpState::CloseWait);
        assert_eq!(s.local().to_string(), "127.0.0.1:7001");
        assert_eq!(s.remote().to_string(), "127.0.0.2:40000");
        assert_eq!((s.recv_q(), s.inode(), s.uid()), (1, 4242, 1000));
        assert_eq!(s.cookie().map(NonZeroU64::get), Some(0x1_0000_dead));
        assert_eq!(s.tcp_info().and_then(|t| t.last_ack_recv_ms), Some(4200));
        assert_eq!(s.tcp_info().map(|t| (t.probes, t.backoff)), Some((2, 5)));
        assert_eq!(s.timer_ms(), None);
    }

    #[test]
    fn time_wait_keeps_its_expiry_and_short_tcp_info_parses() {
        let mut out = Vec::new();
        let d = message(
            SOCK_DIAG_BY_FAMILY,
            2,
            &inet_diag_msg(6, 3, 59000, 0, 0, &[]),
        );
        assert_eq!(
            decode_datagram(&d, &mut out).ok(),
            Some(Datagram::More { interrupted: false })
        );
        assert_eq!(out[0].timer(), Timer::TimeWait);
        assert_eq!(out[0].timer_ms(), Some(59000));
        // An old kernel's 48-byte tcp_info: the later fields are unknown, not zero.
        let t = decode_tcp_info(&[0u8; 48]);
        assert_eq!(t.last_data_sent_ms, Some(0));
        assert_eq!(t.last_data_recv_ms, None);
        assert_eq!(t.total_retrans, None);
    }

    #[test]
    fn a_socket_carries_its_cgroup_id() {
        let mut p = inet_diag_msg(3, 0, 0, 0, 0, &[]);
        p.extend(12u16.to_ne_bytes());
        p.extend(INET_DIAG_CGROUP_ID.to_ne_bytes());
        p.extend(4242u64.to_ne_bytes());
        let mut out = Vec::new();
        let d = message(SOCK_DIAG_BY_FAMILY, 2, &p);
        assert!(decode_datagram(&d, &mut out).is_ok());
        assert_eq!(out[0].cgroup_id(), Some(4242));
        // A malformed attribute value is no id, not an error.
        let mut short = inet_diag_msg(3, 0, 0, 0, 0, &[]);
        short.extend(8u16.to_ne_bytes());
        short.extend(INET_DIAG_CGROUP_ID.to_ne_bytes());
        short.extend(7u32.to_ne_bytes());
        let d = message(SOCK_DIAG_BY_FAMILY, 2, &short);
        assert!(decode_datagram(&d, &mut out).is_ok());
        assert_eq!(out[1].cgroup_id(), None);
    }

    #[test]
    fn errors_interruptions_and_garbage() {
        let mut out = Vec::new();
        let err = message(NLMSG_ERROR, 0, &(-libc::ENOENT).to_ne_bytes());
        assert_eq!(
            decode_datagram(&err, &mut out).ok(),
            Some(Datagram::Error(libc::ENOENT))
        );
        let intr = message(NLMSG_DONE, NLM_F_DUMP_INTR, &0i32.to_ne_bytes());
        assert_eq!(
            decode_datagram(&intr, &mut out).ok(),
            Some(Datagram::Done { interrupted: true })
        );
        assert!(decode_datagram(&[1, 2, 3], &mut out).is_err());
        let short = message(SOCK_DIAG_BY_FAMILY, 0, &[2, 1, 0]);
        assert!(decode_datagram(&short, &mut out).is_err());
        let mut lying = message(SOCK_DIAG_BY_FAMILY, 0, &inet_diag_msg(1, 0, 0, 0, 1, &[]));
        lying[0] = 255; // length beyond the datagram
        assert!(decode_datagram(&lying, &mut out).is_err());
    }

    #[test]
    fn requests_are_dumps_of_all_tcp_states_with_info() {
        let states = StateFlags::all().bits().to_ne_bytes();
        let both = request_bytes(Request::Both);
        let nl = NetlinkBuffer::new_checked(&both[..]).unwrap_or_else(|_| unreachable!());
        assert_eq!(nl.message_type(), TCPDIAG_GETSOCK);
        assert_eq!(nl.flags(), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(nl.length() as usize, both.len());
        let p = nl.payload();
        assert_eq!(p.len(), INET_DIAG_REQ_LEN);
        assert_eq!(p[3], ExtensionFlags::INFO.bits());
        assert_eq!(p[52..56], states);

        let v6 = request_bytes(Request::Family(AF_INET6));
        let nl = NetlinkBuffer::new_checked(&v6[..]).unwrap_or_else(|_| unreachable!());
        assert_eq!(nl.message_type(), SOCK_DIAG_BY_FAMILY);
        assert_eq!(nl.flags(), NLM_F_REQUEST | NLM_F_DUMP);
        let p = nl.payload();
        assert_eq!(p.len(), INET_DIAG_REQ_V2_LEN);
        assert_eq!(
            (p[0], p[1], p[2]),
            (AF_INET6, IPPROTO_TCP, ExtensionFlags::INFO.bits())
        );
        assert_eq!(p[4..8], states);
    }

    #[test]
    fn legacy_replies_decode_like_the_others() {
        let mut out = Vec::new();
        let d = message(TCPDIAG_GETSOCK, 2, &inet_diag_msg(1, 0, 0, 0, 7, &[]));
        assert!(decode_datagram(&d, &mut out).is_ok());
        assert_eq!(out[0].inode(), 7);
    }
}

//! Single sockets from sock_diag: an exact request names one socket by its
//! addresses, ports, device and cookie, and the kernel finds it with one
//! hash lookup and fills the same `inet_diag_msg` (with `tcp_info` and the
//! cgroup id) that a dump would. A dump walks the host's whole table, shared
//! by every network namespace, whatever the namespace holds; a few lookups
//! cost a few microseconds. `collect::held` decides when a namespace can be
//! read this way.
//!
//! Requests go out in batches, each message numbered by its place, and each
//! answer (the socket, or an errno such as `ENOENT` for a socket gone
//! meanwhile or `ESTALE` for another one at the same addresses) comes back
//! under the number of its request.

use super::sock_diag::{SockDiagError, decode_socket, error_code, message, request_v2};
use crate::snapshot::Socket;
use netlink_packet_core::{NLM_F_REQUEST, NLMSG_ERROR, NetlinkBuffer};
use netlink_packet_sock_diag::SOCK_DIAG_BY_FAMILY;
use netlink_sys::{Socket as NlSocket, SocketAddr as NlAddr, protocols::NETLINK_SOCK_DIAG};
use std::io;
use std::net::{IpAddr, SocketAddr};

/// Requests sent at once: their answers, a few hundred bytes each, must fit
/// the socket's receive buffer, or the kernel drops them.
const BATCH: usize = 64;
/// A cookie that asks the kernel not to compare (`INET_DIAG_NOCOOKIE`).
const NO_COOKIE: u64 = u64::MAX;

/// One socket, as an exact request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exact {
    /// `AF_INET` or `AF_INET6`: the family of the socket, not of its addresses.
    pub family: u8,
    pub local: SocketAddr,
    /// For a listener, any address and port: one of them picks which socket
    /// of an `SO_REUSEPORT` group answers.
    pub remote: SocketAddr,
    pub bound_dev_if: u32,
    /// 0: any socket at these addresses.
    pub cookie: u64,
}

/// The kernel's answer to one request: the socket, or the errno it answered with.
pub type Answer = Result<Socket, i32>;

/// The kernel's answer to each request, in the order asked.
pub fn lookup(requests: &[Exact]) -> Result<Vec<Answer>, SockDiagError> {
    let mut nl = NlSocket::new(NETLINK_SOCK_DIAG).map_err(SockDiagError::Open)?;
    nl.bind_auto().map_err(SockDiagError::Open)?;
    let mut answers: Vec<Option<Answer>> = vec![None; requests.len()];
    let mut buf = Vec::with_capacity(64 * 1024);
    for (batch, chunk) in requests.chunks(BATCH).enumerate() {
        let first = batch * BATCH;
        let mut bytes = Vec::new();
        for (i, r) in chunk.iter().enumerate() {
            bytes.extend(request_bytes(r, (first + i) as u32));
        }
        nl.send_to(&bytes, &NlAddr::new(0, 0), 0)
            .map_err(|source| SockDiagError::Send {
                family: "exact",
                source,
            })?;
        let mut pending = chunk.len();
        while pending > 0 {
            buf.clear();
            match nl.recv(&mut buf, 0) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(SockDiagError::Recv {
                        family: "exact",
                        source,
                    });
                }
            }
            for (seq, answer) in decode_answers(&buf)? {
                let slot = answers
                    .get_mut(seq as usize)
                    .filter(|s| {
                        s.is_none() && (first..first + chunk.len()).contains(&(seq as usize))
                    })
                    .ok_or_else(|| {
                        SockDiagError::Decode(format!("an answer to request {seq}, not asked"))
                    })?;
                *slot = Some(answer);
                pending -= 1;
            }
        }
    }
    Ok(answers
        .into_iter()
        .map(|a| a.unwrap_or(Err(libc::ENOENT)))
        .collect())
}

/// One exact request: `struct inet_diag_req_v2` whose sockid names the
/// socket: ports in network order, addresses, the device, the cookie in two
/// 32-bit halves.
fn request_bytes(r: &Exact, seq: u32) -> Vec<u8> {
    let mut p = request_v2(r.family);
    p[8..10].copy_from_slice(&r.local.port().to_be_bytes());
    p[10..12].copy_from_slice(&r.remote.port().to_be_bytes());
    put_ip(&mut p[12..28], r.local.ip());
    put_ip(&mut p[28..44], r.remote.ip());
    p[44..48].copy_from_slice(&r.bound_dev_if.to_ne_bytes());
    let cookie = if r.cookie == 0 { NO_COOKIE } else { r.cookie };
    p[48..52].copy_from_slice(&(cookie as u32).to_ne_bytes());
    p[52..56].copy_from_slice(&((cookie >> 32) as u32).to_ne_bytes());
    message(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, seq, &p)
}

fn put_ip(to: &mut [u8], ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => to[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => to.copy_from_slice(&v6.octets()),
    }
}

/// The answers in one datagram, by request number (fuzzed: `fuzzing::netlink`).
pub fn decode_answers(mut bytes: &[u8]) -> Result<Vec<(u32, Answer)>, SockDiagError> {
    let mut answers = Vec::new();
    while !bytes.is_empty() {
        let msg = NetlinkBuffer::new_checked(bytes)
            .map_err(|e| SockDiagError::Decode(format!("netlink header: {e}")))?;
        let seq = msg.sequence_number();
        match msg.message_type() {
            NLMSG_ERROR => {
                let code = error_code(msg.payload())?;
                answers.push((seq, Err(code.saturating_neg())));
            }
            SOCK_DIAG_BY_FAMILY => match decode_socket(msg.payload())? {
                Some(socket) => answers.push((seq, Ok(socket))),
                // A state this connleak does not know: as if it were gone.
                None => answers.push((seq, Err(libc::ENOENT))),
            },
            other => {
                return Err(SockDiagError::Decode(format!(
                    "unexpected netlink message type {other}"
                )));
            }
        }
        let step = (msg.length() as usize).next_multiple_of(4).min(bytes.len());
        bytes = &bytes[step..];
    }
    Ok(answers)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use netlink_packet_sock_diag::AF_INET;

    #[test]
    fn a_request_names_one_socket_in_network_order() {
        let r = Exact {
            family: AF_INET,
            local: "10.0.0.1:8080".parse().unwrap(),
            remote: "10.0.0.2:40000".parse().unwrap(),
            bound_dev_if: 3,
            cookie: 0x1_0000_0002,
        };
        let b = request_bytes(&r, 7);
        assert_eq!(b.len(), 72);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 7);
        // No NLM_F_DUMP: one socket, not a walk.
        assert_eq!(u16::from_ne_bytes([b[6], b[7]]), NLM_F_REQUEST);
        let p = &b[16..];
        assert_eq!(&p[8..12], &[0x1f, 0x90, 0x9c, 0x40]);
        assert_eq!(&p[12..16], &[10, 0, 0, 1]);
        assert_eq!(&p[28..32], &[10, 0, 0, 2]);
        assert_eq!(u32::from_ne_bytes(p[44..48].try_into().unwrap()), 3);
        assert_eq!(u32::from_ne_bytes(p[48..52].try_into().unwrap()), 2);
        assert_eq!(u32::from_ne_bytes(p[52..56].try_into().unwrap()), 1);
        // A cookie never asked for compares nothing.
        let any = request_bytes(&Exact { cookie: 0, ..r }, 0);
        assert_eq!(&any[16 + 48..16 + 56], &[0xff; 8]);
    }

    #[test]
    fn errors_answer_by_request_number_and_garbage_is_refused() {
        let mut e = vec![0u8; 36];
        e[..4].copy_from_slice(&36u32.to_ne_bytes());
        e[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        e[8..12].copy_from_slice(&5u32.to_ne_bytes());
        e[16..20].copy_from_slice(&(-libc::ESTALE).to_ne_bytes());
        let answers = decode_answers(&e).unwrap();
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].0, 5);
        assert_eq!(answers[0].1.as_ref().err(), Some(&libc::ESTALE));
        assert!(decode_answers(&[1, 2, 3]).is_err());
    }
}

//! The socket table from `/proc/net/tcp` and `/proc/net/tcp6`: the fallback
//! for kernels or sandboxes without sock_diag. It has no cookies and no
//! tcp_info, so ages are unknown; the report says which source it used.

use crate::snapshot::{Socket, SocketParts, Timer};
use crate::tcp::TcpState;
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[derive(Debug, thiserror::Error)]
#[error("{file} line {line}: {what}")]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub what: String,
}

/// Parses one `/proc/net/tcp`-format table, appending its sockets to `out`.
/// Rows whose state is unknown to this connleak are skipped.
pub fn parse(file: &str, reader: impl BufRead, out: &mut Vec<Socket>) -> Result<(), ParseError> {
    for (i, line) in reader.lines().enumerate().skip(1) {
        let err = |what: String| ParseError {
            file: file.to_string(),
            line: i + 1,
            what,
        };
        let line = line.map_err(|e| err(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        if let Some(socket) = parse_row(&line).map_err(err)? {
            out.push(socket);
        }
    }
    Ok(())
}

fn parse_row(line: &str) -> Result<Option<Socket>, String> {
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 {
        return Err(format!("expected at least 10 fields, found {}", f.len()));
    }
    let hex =
        |s: &str, what: &str| u32::from_str_radix(s, 16).map_err(|_| format!("bad {what} {s:?}"));
    let state = u8::from_str_radix(f[3], 16).map_err(|_| format!("bad state {:?}", f[3]))?;
    let Some(state) = TcpState::from_kernel(state) else {
        return Ok(None);
    };
    let (tx, rx) = f[4].split_once(':').ok_or("bad tx:rx queues")?;
    let (tr, when) = f[5].split_once(':').ok_or("bad timer field")?;
    let timer = Timer::from_kernel(u8::from_str_radix(tr, 16).map_err(|_| "bad timer")?);
    let jiffies = hex(when, "timer expiry")?;
    Ok(Some(Socket::from(SocketParts {
        state,
        local: endpoint(f[1])?,
        remote: endpoint(f[2])?,
        inode: f[9].parse().map_err(|_| format!("bad inode {:?}", f[9]))?,
        uid: f[7].parse().map_err(|_| format!("bad uid {:?}", f[7]))?,
        cookie: None,
        recv_q: hex(rx, "rx queue")?,
        send_q: hex(tx, "tx queue")?,
        timer,
        // Printed in clock ticks (USER_HZ, 100 on Linux).
        timer_ms: (timer != Timer::None).then(|| jiffies.saturating_mul(10)),
        tcp_info: None,
        cgroup_id: None,
    })))
}

/// `0100007F:1B59` → 127.0.0.1:7001. Addresses are 32-bit words in host byte order.
fn endpoint(s: &str) -> Result<SocketAddr, String> {
    let (addr, port) = s
        .split_once(':')
        .ok_or_else(|| format!("bad endpoint {s:?}"))?;
    let port = u16::from_str_radix(port, 16).map_err(|_| format!("bad port in {s:?}"))?;
    if !addr.is_ascii() {
        return Err(format!("bad address in {s:?}"));
    }
    let words: Vec<u32> = (0..addr.len() / 8)
        .map(|i| u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("bad address in {s:?}"))?;
    let ip = match (addr.len(), words.as_slice()) {
        (8, [w]) => IpAddr::V4(Ipv4Addr::from(w.to_ne_bytes())),
        (32, [a, b, c, d]) => {
            let mut bytes = [0u8; 16];
            for (chunk, w) in bytes.chunks_mut(4).zip([a, b, c, d]) {
                chunk.copy_from_slice(&w.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return Err(format!("bad address length in {s:?}")),
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1B59 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 81234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1B59 0100007F:9C40 08 00000000:00000001 00:00000000 00000000  1000        0 81240 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:9C41 0100007F:1B59 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1B5A 00000000000000000000000001000000:A000 08 00000000:00000000 00:00000000 00000000     0        0 5555 1 0000000000000000 20 4 0 10 -1
";

    #[test]
    fn parses_v4_and_v6_rows() {
        let mut out = Vec::new();
        assert!(parse("tcp", TCP.as_bytes(), &mut out).is_ok());
        assert!(parse("tcp6", TCP6.as_bytes(), &mut out).is_ok());
        assert_eq!(out.len(), 4);
        assert_eq!(out[0].state(), TcpState::Listen);
        assert_eq!(out[0].local().to_string(), "127.0.0.1:7001");
        assert_eq!(out[0].recv_q(), 3);
        assert_eq!(out[1].state(), TcpState::CloseWait);
        assert_eq!(
            (out[1].uid(), out[1].inode(), out[1].recv_q()),
            (1000, 81240, 1)
        );
        assert_eq!(out[2].state(), TcpState::TimeWait);
        assert_eq!(out[2].timer_ms(), Some(60_000));
        assert_eq!(out[3].local().to_string(), "[::1]:7002");
        assert_eq!(out[3].remote().port(), 0xA000);
    }

    #[test]
    fn bad_rows_name_file_and_line() {
        let mut out = Vec::new();
        let bad = "header\n   0: 0100007F:1B59 zz 0A\n";
        let e = parse("/proc/net/tcp", bad.as_bytes(), &mut out).err();
        assert_eq!(
            e.map(|e| e.to_string()),
            Some("/proc/net/tcp line 2: expected at least 10 fields, found 4".to_string())
        );
        let bad = "header\n 0: 0100007F:1B59 0100007F:XXXX 01 0:0 00:0 0 0 0 1\n";
        assert!(parse("t", bad.as_bytes(), &mut out).is_err());
    }
}

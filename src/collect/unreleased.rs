//! TCP sockets a process still holds after they left every TCP table.
//!
//! A socket whose connection ended by a reset (the application wrote after the
//! peer closed and got an RST back) or by a timeout (keep-alive or the
//! retransmission timer gave up) moves to CLOSE and is unhashed: sock_diag,
//! `/proc/net/tcp` and `ss` stop showing it, yet the fd, and the socket's
//! memory, stay until the application calls `close()`. The only trace is the
//! fd itself: its inode is in no dump, and its `system.sockprotoname`
//! extended attribute still reads `TCP` or `TCPv6`.
//!
//! The attribute costs one `getxattr` per fd, so it is read only for socket
//! fds whose inode the dump did not have (UNIX, UDP, netlink sockets, and
//! the leaked ones), and only for processes in the namespace being read (one
//! `stat` of `/proc/PID/ns/net` per process with such fds): another
//! namespace's live TCP sockets are not in this namespace's dump either.
//! A connection opened while the dump ran can count once: the diagnosis
//! grades on a threshold, and a sampled run tells a leak by its growth.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Reads which unmatched socket fds of a process are TCP.
pub struct Probe {
    proc_root: PathBuf,
    /// Inode of the network namespace being read; `None`: unknown, nothing counted.
    netns: Option<u64>,
}

impl Probe {
    /// A probe for the namespace of this thread.
    pub fn new(proc_root: &Path) -> Probe {
        Probe {
            proc_root: proc_root.to_path_buf(),
            netns: netns_inode(&proc_root.join("thread-self/ns/net")),
        }
    }

    /// How many of `unmatched` (fd, inode) sockets of `pid`, none of them in
    /// the dump, are TCP sockets: closed by the kernel, not by the process.
    pub fn closed_tcp_fds(&self, pid: u32, unmatched: &[(u32, u64)]) -> u32 {
        if unmatched.is_empty() {
            return 0;
        }
        let dir = self.proc_root.join(pid.to_string());
        if self.netns.is_none() || netns_inode(&dir.join("ns/net")) != self.netns {
            return 0;
        }
        let fd_dir = dir.join("fd");
        let mut n = 0;
        let mut value = [0u8; 16];
        for &(fd, inode) in unmatched {
            let path = fd_dir.join(fd.to_string());
            let Ok(len) = rustix::fs::getxattr(&path, "system.sockprotoname", &mut value[..])
            else {
                continue; // closed since the scan, or not a socket any more
            };
            // The fd may have been closed and reused by a new socket since the scan.
            let same = std::fs::read_link(&path).is_ok_and(|l| {
                super::procfs::socket_inode(l.as_os_str().as_encoded_bytes()) == Some(inode)
            });
            if same && is_tcp(value.get(..len).unwrap_or_default()) {
                n += 1;
            }
        }
        n
    }
}

fn netns_inode(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// `TCP` or `TCPv6`, as sockfs names the protocol (NUL-terminated).
fn is_tcp(name: &[u8]) -> bool {
    let name = name.strip_suffix(b"\0").unwrap_or(name);
    name == b"TCP" || name == b"TCPv6"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tcp_protocol_names_count() {
        assert!(is_tcp(b"TCP\0"));
        assert!(is_tcp(b"TCPv6\0"));
        assert!(is_tcp(b"TCP"));
        assert!(!is_tcp(b"UNIX-STREAM\0"));
        assert!(!is_tcp(b"UDP\0"));
        assert!(!is_tcp(b"MPTCP\0"));
        assert!(!is_tcp(b"NETLINK\0"));
    }

    /// This process's own sockets, all taken as missing from the dump: the
    /// TCP one counts, the UDP and UNIX ones do not.
    #[test]
    fn counts_the_tcp_sockets_among_unmatched_fds() -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let (unix, _) = std::os::unix::net::UnixStream::pair()?;
        let probe = Probe::new(Path::new("/proc"));
        let pid = std::process::id();
        let entry = |fd: i32| -> std::io::Result<(u32, u64)> {
            let link = std::fs::read_link(format!("/proc/self/fd/{fd}"))?;
            let inode = super::super::procfs::socket_inode(link.as_os_str().as_encoded_bytes())
                .unwrap_or(0);
            Ok((u32::try_from(fd).unwrap_or(0), inode))
        };
        let fds = [
            entry(tcp.as_raw_fd())?,
            entry(udp.as_raw_fd())?,
            entry(unix.as_raw_fd())?,
        ];
        assert_eq!(probe.closed_tcp_fds(pid, &fds), 1);
        // A stale inode (the fd was reused since the scan) does not count.
        assert_eq!(probe.closed_tcp_fds(pid, &[(fds[0].0, 1)]), 0);
        assert_eq!(probe.closed_tcp_fds(pid, &[]), 0);
        Ok(())
    }
}

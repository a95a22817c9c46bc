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
//!
//! Where the fd iterator can read the sockets themselves
//! ([`super::fd_iter::FdIter::closed_sockets`]), [`groups`] sums up what the
//! kernel still holds of them, so that the diagnosis can tell a connect that
//! never got established from a connection reset while idle or after a write.

use super::fd_iter::{ClosedSocket, FdIter};
use crate::snapshot::ClosedGroup;
use rustc_hash::{FxHashMap, FxHashSet};
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
    /// the dump, are TCP sockets the kernel closed, and what it still holds of
    /// them, grouped. With the fd iterator the sockets themselves say it:
    /// only those in state CLOSE count (a connection accepted or opened
    /// since the dump is in the process's table, not in the dump, and not
    /// closed). Without it, or when it fails, every unmatched TCP fd counts
    /// and nothing is known of how they ended.
    pub fn closed(
        &self,
        pid: u32,
        unmatched: &[(u32, u64)],
        iterator: Option<&FdIter>,
    ) -> (u32, Vec<ClosedGroup>) {
        let counted = self.closed_tcp_fds(pid, unmatched);
        let Some(iterator) = iterator.filter(|_| counted > 0) else {
            return (counted, Vec::new());
        };
        match iterator.closed_sockets(pid) {
            Ok(closed) => {
                let groups = groups(&closed, unmatched);
                (groups.iter().map(|g| g.count).sum(), groups)
            }
            Err(e) => {
                crate::timings::note(&format!("closed sockets of pid {pid} not read: {e}"));
                (counted, Vec::new())
            }
        }
    }

    /// How many of `unmatched` (fd, inode) sockets of `pid`, none of them in
    /// the dump, are TCP sockets: closed by the kernel, not by the process.
    fn closed_tcp_fds(&self, pid: u32, unmatched: &[(u32, u64)]) -> u32 {
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

/// Groups a process's closed TCP sockets that are among `unmatched` (fd,
/// inode): at most [`MAX_GROUPS`] groups, the largest; the rest are summed
/// by how they ended, with no peer.
pub fn groups(closed: &[ClosedSocket], unmatched: &[(u32, u64)]) -> Vec<ClosedGroup> {
    let wanted: FxHashSet<(u32, u64)> = unmatched.iter().copied().collect();
    let mut by_key: FxHashMap<Key, (u32, Option<u16>)> = FxHashMap::default();
    for s in closed.iter().filter(|s| wanted.contains(&(s.fd, s.inode))) {
        let key = (s.peer, s.established, s.unacked, s.peer_fin, s.error);
        let port = (s.peer_port != 0).then_some(s.peer_port);
        let (n, shared) = by_key.entry(key).or_insert((0, port));
        *n += 1;
        if *shared != port {
            *shared = None;
        }
    }
    let mut groups: Vec<ClosedGroup> = by_key
        .into_iter()
        .map(
            |((peer, established, unacked, peer_fin, error), (count, peer_port))| ClosedGroup {
                count,
                peer,
                peer_port,
                established,
                unacked,
                peer_fin,
                error: (error != 0).then(|| errno_name(error)),
            },
        )
        .collect();
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.peer.cmp(&b.peer)));
    if groups.len() > MAX_GROUPS {
        let rest = groups.split_off(MAX_GROUPS - 1);
        let mut merged: Vec<ClosedGroup> = Vec::new();
        for g in rest {
            let same = |m: &&mut ClosedGroup| {
                (m.established, m.unacked, m.peer_fin, &m.error)
                    == (g.established, g.unacked, g.peer_fin, &g.error)
            };
            match merged.iter_mut().find(|m| same(m)) {
                Some(m) => m.count += g.count,
                None => merged.push(ClosedGroup {
                    peer: None,
                    peer_port: None,
                    ..g
                }),
            }
        }
        groups.extend(merged);
    }
    groups
}

/// (peer, established, unacked, peer_fin, error): what makes sockets one group.
type Key = (Option<std::net::IpAddr>, bool, bool, bool, i32);

/// Groups a process keeps at most: one per peer and ending on a server
/// with thousands of clients would make the snapshot as large as the leak.
pub const MAX_GROUPS: usize = 16;

/// The symbolic name of the errors a TCP socket ends with.
fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::EPIPE => "EPIPE",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EHOSTDOWN => "EHOSTDOWN",
        libc::ENETDOWN => "ENETDOWN",
        libc::EPROTO => "EPROTO",
        _ => return format!("errno {errno}"),
    };
    name.to_string()
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

#[cfg(test)]
mod group_tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn closed(fd: u32, host: u8, port: u16, established: bool) -> ClosedSocket {
        ClosedSocket {
            fd,
            inode: u64::from(fd) + 1000,
            peer: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, host))),
            peer_port: port,
            established,
            unacked: !established,
            peer_fin: false,
            error: 0,
        }
    }

    fn unmatched(sockets: &[ClosedSocket]) -> Vec<(u32, u64)> {
        sockets.iter().map(|s| (s.fd, s.inode)).collect()
    }

    #[test]
    fn groups_keep_a_shared_port_and_only_the_unmatched_sockets() {
        let sockets = [
            closed(3, 9, 5432, false),
            closed(4, 9, 5432, false),
            closed(5, 7, 40001, true),
            closed(6, 7, 40002, true),
            closed(7, 8, 80, true),
        ];
        // fd 7 is in the dump after all (reused since the scan): not counted.
        let g = groups(&sockets, &unmatched(&sockets[..4]));
        assert_eq!(g.len(), 2, "{g:#?}");
        assert_eq!(
            (g[0].count, g[0].peer_port),
            (2, None),
            "ports differ: {g:#?}"
        );
        assert_eq!((g[1].count, g[1].peer_port), (2, Some(5432)), "{g:#?}");
    }

    #[test]
    fn more_peers_than_kept_are_summed_by_how_they_ended() {
        let sockets: Vec<ClosedSocket> = (0..40u32)
            .map(|i| closed(i, u8::try_from(i).unwrap_or(0), 443, i % 2 == 0))
            .collect();
        let g = groups(&sockets, &unmatched(&sockets));
        assert!(g.len() <= MAX_GROUPS + 1, "{g:#?}");
        assert_eq!(g.iter().map(|g| g.count).sum::<u32>(), 40);
        assert!(g.iter().any(|g| g.peer.is_none() && g.count > 1));
    }
}

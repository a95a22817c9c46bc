//! The joins every rule needs, built once per snapshot: socket inode → owning
//! process, and local port → listening sockets.

use crate::snapshot::{Process, Snapshot, Socket};
use crate::tcp::TcpState;
use rustc_hash::FxHashMap;
use std::net::SocketAddr;

pub struct Index<'a> {
    owner_by_inode: FxHashMap<u64, &'a Process>,
    listeners_by_port: FxHashMap<u16, Vec<&'a Socket>>,
}

impl<'a> Index<'a> {
    pub fn new(snapshot: &'a Snapshot) -> Index<'a> {
        let mut owner_by_inode = FxHashMap::default();
        // Processes are sorted by pid: a socket shared after fork() goes to the lowest pid.
        for p in &snapshot.processes {
            for &inode in &p.socket_inodes {
                owner_by_inode.entry(inode).or_insert(p);
            }
        }
        let mut listeners_by_port: FxHashMap<u16, Vec<&Socket>> = FxHashMap::default();
        for s in snapshot
            .sockets
            .iter()
            .filter(|s| s.state == TcpState::Listen)
        {
            listeners_by_port.entry(s.local.port()).or_default().push(s);
        }
        Index {
            owner_by_inode,
            listeners_by_port,
        }
    }

    /// The process holding the socket with this inode (0: none can).
    pub fn owner(&self, inode: u64) -> Option<&'a Process> {
        if inode == 0 {
            return None;
        }
        self.owner_by_inode.get(&inode).copied()
    }

    /// The listening socket a connection with this local address was accepted
    /// from: same port, and the same address or a wildcard one.
    pub fn listener_for(&self, local: &SocketAddr) -> Option<&'a Socket> {
        let candidates = self.listeners_by_port.get(&local.port())?;
        candidates
            .iter()
            .find(|l| l.local.ip() == local.ip())
            .or_else(|| {
                candidates.iter().find(|l| {
                    l.local.ip().is_unspecified() && (l.local.is_ipv6() || local.is_ipv4())
                })
            })
            .copied()
    }
}

//! Every network namespace for about the price of one (`--all-netns`).
//!
//! A sock_diag dump of one namespace walks the kernel's table of established
//! sockets, which every namespace shares, and skips the sockets of all the
//! others: on a node of a hundred pods, reading each pod's five sockets
//! costs a walk of the whole host, a hundred times over. Yet most of a pod's
//! sockets are held by its processes, and the fd iterator already reads
//! every process's fd table: it can read, for each TCP socket there, the
//! namespace it lives in and what sock_diag finds it by. A namespace is
//! then read by exact requests, one hash lookup each ([`super::sock_lookup`]),
//! and the kernel fills each answer as a dump would.
//!
//! Only where that is the whole namespace. Sockets no process holds
//! (TIME-WAIT, orphans the kernel is still closing, connections not yet
//! accepted, handshakes in a listener's queue) are in no fd table; the
//! namespace's `sockstat` counts them, and a namespace whose count of
//! sockets in its tables (`inuse`) is not exactly the sockets its holders
//! hold, that has TIME-WAIT sockets, or a listener with handshakes under
//! way, is dumped, as is one whose lookups do not all find their socket
//! (it changed meanwhile). A namespace holding many sockets is dumped too:
//! past a share of the host's table, its lookups would cost more than the
//! walk. A namespace with nothing in its tables and no TIME-WAIT needs
//! neither. The report of a namespace is the same either way; only the
//! cost differs.

use super::fd_iter::{FdIter, HeldSocket};
use super::owners::{FdTables, HostTables, scan_host_fd_tables};
use super::sock_lookup::{Exact, lookup};
use crate::snapshot::{Socket, Sockstat};
use crate::tcp::TcpState;
use rustc_hash::{FxHashMap, FxHashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// Lookups a namespace may take at least before a dump is cheaper, and the
/// share of the host's sockets past which it is (a lookup costs a few
/// times what the walk spends on one socket of another namespace).
const LOOKUPS_AT_LEAST: u64 = 1024;
const LOOKUPS_SHARE: u64 = 8;
/// Fake peer ports tried, per listener of an `SO_REUSEPORT` group, to have
/// the kernel's choice among the group land on each of them.
const TRIES_PER_LISTENER: u16 = 32;

/// What one walk of every process found, for every namespace to take its share.
pub struct HostScan<'a> {
    tables: HostTables<'a>,
    /// The TCP sockets the processes read hold, by the namespace they live in.
    held: FxHashMap<u64, Vec<HeldSocket>>,
    /// Whether the fd iterator read held sockets at all, and the namespaces
    /// whose processes it left out: they hold too many sockets.
    iterated: bool,
    too_many: FxHashSet<u64>,
}

impl<'a> HostScan<'a> {
    /// Reads every process's fd table once and, with the iterator, the TCP
    /// sockets held in the namespaces small enough to be read by lookups.
    pub fn new(proc_root: &Path, iterator: Option<&'a FdIter>) -> HostScan<'a> {
        let tables = scan_host_fd_tables(proc_root, iterator);
        let (held, too_many) =
            iterator.map_or_else(Default::default, |it| held(proc_root, &tables, it));
        HostScan {
            tables,
            held,
            iterated: iterator.is_some(),
            too_many,
        }
    }

    /// Namespace `netns`'s fd tables.
    pub fn tables(&self, netns: Option<u64>) -> FdTables<'a> {
        self.tables.take(netns)
    }

    /// Namespace `netns`'s sockets, read by lookups, when the held sockets
    /// are all it has (`sockstat` is its own, which [`must_dump`] let
    /// through); else why it must be dumped.
    pub fn sockets(
        &self,
        netns: Option<u64>,
        sockstat: Option<&Sockstat>,
    ) -> Result<Vec<Socket>, &'static str> {
        let stat = sockstat.ok_or("no sockstat")?;
        let held = netns
            .and_then(|ns| self.held.get(&ns))
            .map_or(&[][..], Vec::as_slice);
        if held
            .iter()
            .any(|s| s.state == TcpState::Listen && s.handshakes > 0)
        {
            return Err("handshakes under way");
        }
        if stat.inuse + stat.inuse6 != held.len() as u64 {
            let too_many = netns.is_some_and(|ns| self.too_many.contains(&ns));
            return Err(match (self.iterated, too_many) {
                (false, _) => "no fd iterator to read its sockets",
                (true, true) => "more sockets than lookups pay for",
                (true, false) => "sockets no process holds",
            });
        }
        by_lookups(held).ok_or("a lookup did not find its socket")
    }
}

/// Why a namespace must be dumped whatever the host scan finds, by its
/// sockstat alone: TIME-WAIT sockets (no process holds them), or more
/// sockets than lookups pay for.
pub fn must_dump(sockstat: Option<&Sockstat>) -> Result<(), &'static str> {
    let stat = sockstat.ok_or("no sockstat")?;
    if stat.tw != 0 {
        return Err("TIME-WAIT sockets");
    }
    if stat.inuse + stat.inuse6 > lookup_limit(stat.alloc) {
        return Err("more sockets than lookups pay for");
    }
    Ok(())
}

/// The most sockets a namespace is read by lookups with, on a host of
/// `alloc` TCP sockets.
fn lookup_limit(alloc: u64) -> u64 {
    LOOKUPS_AT_LEAST.max(alloc / LOOKUPS_SHARE)
}

/// The held TCP sockets of the processes of every namespace whose tables
/// hold few enough sockets, by the namespace each socket lives in, each
/// once; and the namespaces left out.
fn held(
    proc_root: &Path,
    tables: &HostTables,
    it: &FdIter,
) -> (FxHashMap<u64, Vec<HeldSocket>>, FxHashSet<u64>) {
    let limit = lookup_limit(super::kernel::sockstat(proc_root).map_or(0, |s| s.alloc));
    let mut too_many = FxHashSet::default();
    let mut pids = Vec::new();
    for (ns, of_ns) in tables.sockets_by_netns() {
        if of_ns.iter().map(|&(_, n)| n as u64).sum::<u64>() <= limit {
            pids.extend(of_ns.into_iter().map(|(pid, _)| pid));
        } else {
            too_many.insert(ns);
        }
    }
    let mut by_netns: FxHashMap<u64, Vec<HeldSocket>> = FxHashMap::default();
    let mut seen = FxHashSet::default();
    for pid in pids {
        // A process that could not be read leaves its sockets uncounted: the
        // namespaces they live in come out short of sockstat, and are dumped.
        for s in it.held_sockets(pid).unwrap_or_default() {
            if seen.insert(s.inode) {
                by_netns.entry(s.netns).or_default().push(s);
            }
        }
    }
    (by_netns, too_many)
}

/// The sockets `held` names, each found by an exact request (listeners
/// first, as a dump gives them); `None` when any of them is not found as it
/// was read.
fn by_lookups(held: &[HeldSocket]) -> Option<Vec<Socket>> {
    let (listeners, others): (Vec<&HeldSocket>, Vec<&HeldSocket>) =
        held.iter().partition(|s| s.state == TcpState::Listen);
    let mut sockets = listening(&listeners)?;
    let requests: Vec<Exact> = others
        .iter()
        .map(|s| exact(s, s.remote, s.cookie))
        .collect();
    for (answer, s) in lookup(&requests).ok()?.into_iter().zip(&others) {
        sockets.push(answer.ok().filter(|a| a.inode() == s.inode)?);
    }
    Some(sockets)
}

/// The listeners, found by asking for their address with a peer of port 0:
/// the kernel answers with the listener a connection from there would
/// reach. Listeners sharing an address (`SO_REUSEPORT`) are found by asking
/// again with other peer ports, each of which the kernel hashes to one of
/// them, until each was answered.
fn listening(listeners: &[&HeldSocket]) -> Option<Vec<Socket>> {
    let mut groups: FxHashMap<(u8, SocketAddr, u32), Vec<&HeldSocket>> = FxHashMap::default();
    for s in listeners {
        groups
            .entry((s.family, s.local, s.bound_dev_if))
            .or_default()
            .push(s);
    }
    let mut found: FxHashMap<u64, Socket> = FxHashMap::default();
    let mut port = 0u16;
    let most = groups.values().map(Vec::len).max().unwrap_or(0);
    let last = u16::try_from(most)
        .unwrap_or(u16::MAX)
        .saturating_mul(TRIES_PER_LISTENER);
    while found.len() < listeners.len() {
        if port > last {
            return None;
        }
        let waiting: Vec<&Vec<&HeldSocket>> = groups
            .values()
            .filter(|g| g.iter().any(|s| !found.contains_key(&s.inode)))
            .collect();
        let requests: Vec<Exact> = waiting
            .iter()
            .map(|g| {
                // One listener at an address: its cookie makes sure it answers.
                let cookie = if g.len() == 1 { g[0].cookie } else { 0 };
                exact(
                    g[0],
                    SocketAddr::new(unspecified(g[0].local.ip()), port),
                    cookie,
                )
            })
            .collect();
        for (answer, group) in lookup(&requests).ok()?.into_iter().zip(waiting) {
            let socket = answer.ok()?;
            let inode = socket.inode();
            if group.iter().any(|s| s.inode == inode) {
                found.entry(inode).or_insert(socket);
            }
        }
        port += 1;
    }
    Some(
        listeners
            .iter()
            .filter_map(|s| found.remove(&s.inode))
            .collect(),
    )
}

fn exact(s: &HeldSocket, remote: SocketAddr, cookie: u64) -> Exact {
    Exact {
        family: s.family,
        local: s.local,
        remote,
        bound_dev_if: s.bound_dev_if,
        cookie,
    }
}

fn unspecified(like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

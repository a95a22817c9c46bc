//! The joins every rule needs, built once per snapshot: socket → the process
//! that answers for it, inode → socket, and local port → listening sockets.
//!
//! A socket may have several holders: fds inherited across fork(), or a
//! listening socket passed to workers (socket activation). Only those few
//! sockets keep their whole list of holders; a shared listener is answered
//! for by the holder that accepts from it (see [`super::listener_holder`]).
//! Addresses are compared canonically: a dual-stack socket reports an IPv4
//! peer as `::ffff:a.b.c.d`, its IPv4 end as `a.b.c.d`.
//!
//! A million sockets make it 4 bytes a socket, no hash map of them: the
//! process that answers for each socket, by the socket's place in the table.
//! Rules ask by place (they walk the table with its places, and the index
//! hands out listeners as [`Placed`]); the only sockets looked up by inode
//! are those threads wait on, and only those are kept by inode.

use crate::snapshot::{Process, Snapshot, Socket, Task};
use crate::tcp::TcpState;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// One address, however the kernel spelt it (IPv4-mapped IPv6 or IPv4).
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// A place in a table as the index keeps it: a table holds fewer than 2^32
/// sockets or processes (a snapshot file at most some 3.5 million sockets).
fn place(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// A socket held by more than one process.
struct Shared<'a> {
    /// The socket (the last of the table with its inode).
    socket: u32,
    /// Whether the table has other sockets with its inode (an edited file:
    /// a kernel's table never repeats one).
    repeated: bool,
    /// Every holder, by pid; a process holding it twice (dup()) twice.
    holders: Vec<&'a Process>,
}

/// A socket of the snapshot with its place in the table: what the index
/// answers questions about. Reads as the socket it is.
#[derive(Debug, Clone, Copy)]
pub struct Placed<'a> {
    pub at: usize,
    pub socket: &'a Socket,
}

impl std::ops::Deref for Placed<'_> {
    type Target = Socket;

    fn deref(&self) -> &Socket {
        self.socket
    }
}

pub struct Index<'a> {
    sockets: &'a [Socket],
    processes: &'a [Process],
    /// Sockets per state, claimed or not, indexed by `TcpState as usize`.
    per_state: [u64; TcpState::ALL.len()],
    /// The sockets each process holds, per state (a socket shared after
    /// fork() counts for every holder).
    per_state_of_pid: FxHashMap<u32, [u64; TcpState::ALL.len()]>,
    process_by_pid: FxHashMap<u32, &'a Process>,
    /// Per socket, by place: 1 + the place in `processes` of the process
    /// that answers for it; 0: none does.
    owners: Vec<u32>,
    /// How many inodes of the snapshot's sockets some process holds.
    owned: u64,
    /// The places of the sockets threads wait on, by inode.
    thread_sockets: FxHashMap<u64, u32>,
    /// The places of the listening sockets, by local port.
    listeners_by_port: FxHashMap<u16, Vec<u32>>,
    /// The sockets held by more than one process, by inode.
    shared: FxHashMap<u64, Shared<'a>>,
}

/// A socket with an inode, as the join sorts them: its state comes along, so
/// that counting a holder's states reads no socket out of the table's order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Keyed {
    inode: u64,
    place: u32,
    state: TcpState,
}

/// The join of the processes' inodes with the sockets', as it is built.
struct Join<'a> {
    owners: Vec<u32>,
    owned: u64,
    per_state_of_pid: FxHashMap<u32, [u64; TcpState::ALL.len()]>,
    shared: FxHashMap<u64, Shared<'a>>,
}

/// Where `inode` is, or would go, in `sorted`: the first place whose inode
/// is not below it, searched from the front in growing steps, so that the
/// next of a process's sorted inodes is found in a few.
fn seek(sorted: &[Keyed], inode: u64) -> usize {
    let (mut lo, mut hi) = (0, 1);
    while hi <= sorted.len() && sorted[hi - 1].inode < inode {
        lo = hi;
        hi *= 2;
    }
    let hi = hi.min(sorted.len());
    lo + sorted[lo..hi].partition_point(|k| k.inode < inode)
}

impl<'a> Join<'a> {
    /// Adds the sockets process `p` (at place `at`) holds. Processes come
    /// sorted by pid: a socket shared after fork() goes to the lowest pid,
    /// or to the parent of that one.
    fn add(&mut self, snapshot: &'a Snapshot, keyed: &[Keyed], at: usize, p: &'a Process) {
        let me = place(at) + 1;
        let mut inodes = p.socket_inodes.clone();
        inodes.sort_unstable();
        let mut rest = keyed;
        let mut mix = [0; TcpState::ALL.len()];
        for inode in inodes {
            rest = &rest[seek(rest, inode)..];
            // Every socket with the inode (one, in a kernel's table).
            let same = &rest[..rest.iter().take_while(|k| k.inode == inode).count()];
            let Some(&Keyed {
                place: last, state, ..
            }) = same.last()
            else {
                continue;
            };
            mix[state as usize] += 1;
            let answers = match self.owners[last as usize] {
                0 => {
                    self.owned += 1;
                    true
                }
                first => {
                    let first = &snapshot.processes[first as usize - 1];
                    self.shared
                        .entry(inode)
                        .or_insert_with(|| Shared {
                            socket: last,
                            repeated: same.len() > 1,
                            holders: vec![first],
                        })
                        .holders
                        .push(p);
                    // Inherited across fork(): the parent answers, even
                    // when pids wrapped and its child has the lower one.
                    first.ppid == Some(p.pid)
                }
            };
            if answers {
                for k in same {
                    self.owners[k.place as usize] = me;
                }
            }
        }
        self.per_state_of_pid.insert(p.pid, mix);
    }
}

/// The places of the sockets the processes' threads wait on, by inode (the
/// last of the table with it), from the table's sorted inodes.
fn thread_sockets(snapshot: &Snapshot, keyed: &[Keyed]) -> FxHashMap<u64, u32> {
    let waited_on = snapshot
        .processes
        .iter()
        .flat_map(|p| &p.tasks)
        .filter_map(|t| t.inode);
    waited_on
        .filter_map(|inode| {
            let after = keyed.partition_point(|k| k.inode <= inode);
            let last = keyed.get(after.checked_sub(1)?)?;
            (last.inode == inode).then_some((inode, last.place))
        })
        .collect()
}

impl<'a> Index<'a> {
    /// One pass over the sockets and a merge of each process's inodes with
    /// theirs: every per-socket join the rules and the report need, so that
    /// none of them walks a million sockets through a lookup again.
    pub fn new(snapshot: &'a Snapshot) -> Index<'a> {
        let sockets = snapshot.sockets.as_slice();
        let mut keyed: Vec<Keyed> = sockets
            .iter()
            .enumerate()
            .filter(|(_, s)| s.inode() != 0)
            .map(|(i, s)| Keyed {
                inode: s.inode(),
                place: place(i),
                state: s.state(),
            })
            .collect();
        keyed.sort_unstable();
        let mut join = Join {
            owners: vec![0; sockets.len()],
            owned: 0,
            per_state_of_pid: FxHashMap::default(),
            shared: FxHashMap::default(),
        };
        for (at, p) in snapshot.processes.iter().enumerate() {
            join.add(snapshot, &keyed, at, p);
        }
        let thread_sockets = thread_sockets(snapshot, &keyed);
        drop(keyed);
        let mut listeners_by_port: FxHashMap<u16, Vec<u32>> = FxHashMap::default();
        let mut per_state = [0; TcpState::ALL.len()];
        for (i, s) in sockets.iter().enumerate() {
            per_state[s.state() as usize] += 1;
            if s.state() == TcpState::Listen {
                listeners_by_port
                    .entry(s.local().port())
                    .or_default()
                    .push(place(i));
            }
        }
        let mut index = Index {
            sockets,
            processes: &snapshot.processes,
            per_state,
            per_state_of_pid: join.per_state_of_pid,
            process_by_pid: snapshot.processes.iter().map(|p| (p.pid, p)).collect(),
            owners: join.owners,
            owned: join.owned,
            thread_sockets,
            listeners_by_port,
            shared: join.shared,
        };
        super::listener_holder::assign(&mut index);
        index
    }

    /// The socket at place `at` of the table.
    fn placed(&self, at: u32) -> Option<Placed<'a>> {
        let at = at as usize;
        Some(Placed {
            at,
            socket: self.sockets.get(at)?,
        })
    }

    /// The snapshot's sockets.
    pub fn sockets(&self) -> &'a [Socket] {
        self.sockets
    }

    /// Every process holding the socket with this inode, lowest pid first,
    /// when there are several.
    pub fn shared_holders(&self, inode: u64) -> Option<&[&'a Process]> {
        self.shared.get(&inode).map(|s| s.holders.as_slice())
    }

    /// The sockets held by more than one process, with every holder.
    pub fn shared(&self) -> impl Iterator<Item = (Placed<'a>, &[&'a Process])> + '_ {
        self.shared
            .values()
            .filter_map(|s| Some((self.placed(s.socket)?, s.holders.as_slice())))
    }

    /// Makes the process with pid `pid` answer for the shared socket `inode`.
    pub(super) fn answer_for(&mut self, inode: u64, pid: u32) {
        let Some(at) = self.processes.iter().position(|q| q.pid == pid) else {
            return;
        };
        let Some(&Shared {
            socket, repeated, ..
        }) = self.shared.get(&inode)
        else {
            return;
        };
        let me = place(at) + 1;
        self.owners[socket as usize] = me;
        if repeated {
            for (i, s) in self.sockets.iter().enumerate() {
                if s.inode() == inode {
                    self.owners[i] = me;
                }
            }
        }
    }

    /// The states of the sockets process `pid` holds, the empty ones left out.
    pub fn states_of(&self, pid: u32) -> BTreeMap<TcpState, u64> {
        let Some(mix) = self.per_state_of_pid.get(&pid) else {
            return BTreeMap::new();
        };
        TcpState::ALL
            .into_iter()
            .map(|st| (st, mix[st as usize]))
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    /// How many sockets of the snapshot some process holds.
    pub fn owned(&self) -> u64 {
        self.owned
    }

    /// The process that answers for the socket at place `at` (none for inode 0).
    pub fn owner(&self, at: usize) -> Option<&'a Process> {
        let owner = *self.owners.get(at)?;
        self.processes.get(owner.checked_sub(1)? as usize)
    }

    /// How many sockets of the snapshot are in `state`.
    pub fn count(&self, state: TcpState) -> u64 {
        self.per_state[state as usize]
    }

    /// The process with this pid, if it holds a TCP socket.
    pub fn process(&self, pid: u32) -> Option<&'a Process> {
        self.process_by_pid.get(&pid).copied()
    }

    /// The socket thread `t` waits on, when it waits on one of the table's.
    pub fn thread_socket(&self, t: &Task) -> Option<Placed<'a>> {
        self.placed(*self.thread_sockets.get(&t.inode?)?)
    }

    /// Who answers for the socket at place `at`: its holder, or for a
    /// connection not yet accepted (or a server-side TIME_WAIT), the owner
    /// of its listener.
    pub fn responsible(&self, at: usize) -> Option<&'a Process> {
        self.owner(at)
            .or_else(|| self.listener_of(at).and_then(|l| self.owner(l.at)))
    }

    /// The listening socket bound to exactly this address (either spelling
    /// of an IPv4 address).
    pub fn listener_at(&self, addr: &SocketAddr) -> Option<Placed<'a>> {
        self.listeners_at(addr).next()
    }

    /// The listening sockets on this port.
    fn listeners_on(&self, port: u16) -> impl Iterator<Item = Placed<'a>> + '_ {
        self.listeners_by_port
            .get(&port)
            .map_or(&[][..], |v| v.as_slice())
            .iter()
            .filter_map(|&at| self.placed(at))
    }

    /// Every listening socket bound to exactly this address: several with
    /// `SO_REUSEPORT`, each with its own queue and process.
    pub fn listeners_at(&self, addr: &SocketAddr) -> impl Iterator<Item = Placed<'a>> + '_ {
        let ip = addr.ip();
        self.listeners_on(addr.port())
            .filter(move |l| same_ip(l.local().ip(), ip))
    }

    /// The listening socket a connection with this local address was accepted
    /// from: same port, and the same address or a wildcard one.
    pub fn listener_for(&self, local: &SocketAddr) -> Option<Placed<'a>> {
        self.listeners_matching(local).next()
    }

    /// The listening socket the connection at place `at` was accepted from.
    /// Several listeners share an address with `SO_REUSEPORT`, each with its
    /// own process: the one its holder holds, when there is one.
    pub fn listener_of(&self, at: usize) -> Option<Placed<'a>> {
        let s = self.sockets.get(at)?;
        let mut matching = self.listeners_matching(&s.local());
        let first = matching.next()?;
        let mut same = matching.filter(|l| l.local() == first.local()).peekable();
        if same.peek().is_none() {
            return Some(first);
        }
        let Some(holder) = self.owner(at) else {
            return Some(first);
        };
        std::iter::once(first)
            .chain(same)
            .find(|l| self.holds(holder.pid, *l))
            .or(Some(first))
    }

    /// Whether process `pid` holds socket `s`.
    fn holds(&self, pid: u32, s: Placed) -> bool {
        match self.shared_holders(s.inode()) {
            Some(all) => all.iter().any(|p| p.pid == pid),
            None => self.owner(s.at).is_some_and(|p| p.pid == pid),
        }
    }

    /// The listeners a connection with this local address may come from, best first:
    /// those bound to its address, then the wildcard ones.
    fn listeners_matching(&self, local: &SocketAddr) -> impl Iterator<Item = Placed<'a>> + '_ {
        let ip = local.ip().to_canonical();
        let exact = self
            .listeners_on(local.port())
            .filter(move |l| l.local().ip().to_canonical() == ip);
        let wildcard = self.listeners_on(local.port()).filter(move |l| {
            l.local().ip().is_unspecified() && (l.local().is_ipv6() || ip.is_ipv4())
        });
        exact.chain(wildcard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{SocketParts, Task, Timer};

    fn socket(state: TcpState, local: &str, remote: &str, inode: u32) -> Socket {
        Socket::from(SocketParts {
            state,
            local: local.parse().unwrap_or_else(|_| unreachable!()),
            remote: remote.parse().unwrap_or_else(|_| unreachable!()),
            inode,
            uid: 0,
            cookie: None,
            recv_q: 0,
            send_q: 0,
            timer: Timer::None,
            timer_ms: None,
            tcp_info: None,
            cgroup_id: None,
        })
    }

    fn process(pid: u32, socket_inodes: Vec<u64>) -> Process {
        Process {
            pid,
            ppid: Some(1),
            comm: format!("p{pid}"),
            cmdline: String::new(),
            uid: None,
            threads: None,
            fds: 0,
            fd_soft_limit: None,
            fd_hard_limit: None,
            socket_inodes,
            tasks: Vec::new(),
            workload: None,
            runtime: None,
            closed_tcp_fds: 0,
            closed_tcp: Vec::new(),
            libraries: Vec::new(),
        }
    }

    /// The leak fixture's metadata with these sockets and processes.
    fn snapshot(sockets: Vec<Socket>, processes: Vec<Process>) -> Snapshot {
        let text = include_bytes!("../../tests/fixtures/leak.json");
        let mut s = Snapshot::from_json(text).unwrap_or_else(|_| unreachable!());
        s.sockets = sockets;
        s.processes = processes;
        s
    }

    /// The old join, through maps of inodes: who answers for each inode
    /// (lowest pid, or its parent), the holders of the shared ones, and
    /// each process's states.
    fn joined_by_maps(snap: &Snapshot) -> (BTreeMap<u64, u32>, BTreeMap<u64, Vec<u32>>) {
        let by_inode: BTreeMap<u64, &Socket> =
            snap.sockets.iter().map(|s| (s.inode(), s)).collect();
        let mut owner: BTreeMap<u64, &Process> = BTreeMap::new();
        let mut shared: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
        for p in &snap.processes {
            for i in p.socket_inodes.iter().filter(|i| by_inode.contains_key(i)) {
                match owner.get(i).copied() {
                    None => {
                        owner.insert(*i, p);
                    }
                    Some(first) => {
                        shared
                            .entry(*i)
                            .or_insert_with(|| vec![first.pid])
                            .push(p.pid);
                        if first.ppid == Some(p.pid) {
                            owner.insert(*i, p);
                        }
                    }
                }
            }
        }
        (owner.into_iter().map(|(i, p)| (i, p.pid)).collect(), shared)
    }

    /// Sockets held by one process, by several (some twice), by none, and
    /// inodes of no socket; parents that fork after their children.
    #[test]
    fn the_join_agrees_with_maps_of_inodes() {
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % n
        };
        let sockets: Vec<Socket> = (0..400)
            .map(|i| {
                let inode = if next(10) == 0 {
                    0
                } else {
                    1000 + next(5000) * 7 + i
                };
                let state = [TcpState::Established, TcpState::CloseWait][i as usize % 2];
                socket(state, "10.0.0.1:80", "10.0.0.2:5000", inode as u32)
            })
            .collect();
        let processes: Vec<Process> = (1..40)
            .map(|pid| {
                let mut held: Vec<u64> = (0..next(30))
                    .map(|_| match next(8) {
                        0 => 3 + next(100),
                        _ => sockets[next(400) as usize].inode(),
                    })
                    .filter(|&i| i != 0)
                    .collect();
                if let Some(&again) = held.first().filter(|_| next(4) == 0) {
                    held.push(again);
                }
                let mut p = process(pid as u32 * 10, held);
                p.ppid = Some(next(40) as u32 * 10);
                p
            })
            .collect();
        let snap = snapshot(sockets, processes);
        let index = Index::new(&snap);
        let (owner, shared) = joined_by_maps(&snap);
        for (at, s) in snap.sockets.iter().enumerate() {
            let want = owner.get(&s.inode()).copied().filter(|_| s.inode() != 0);
            assert_eq!(index.owner(at).map(|p| p.pid), want, "{s:?}");
            let holders = index
                .shared_holders(s.inode())
                .map(|ps| ps.iter().map(|p| p.pid).collect::<Vec<_>>());
            assert_eq!(holders.as_ref(), shared.get(&s.inode()));
        }
        assert_eq!(index.owned(), owner.len() as u64);
        assert!(!shared.is_empty() && shared.values().any(|h| h.len() > 2));
        for p in &snap.processes {
            let held = p.socket_inodes.iter().filter(|i| owner.contains_key(i));
            let total: u64 = index.states_of(p.pid).values().sum();
            assert_eq!(total, held.count() as u64);
        }
    }

    /// A thread waiting on a socket: its syscall on an fd of that inode.
    fn waiting_on(tid: u32, inode: u64) -> Task {
        Task {
            tid,
            comm: "worker".to_string(),
            state: "S".to_string(),
            wchan: None,
            syscall: Some("recvfrom".to_string()),
            fd: Some(3),
            inode: Some(inode),
        }
    }

    #[test]
    fn a_socket_is_found_by_its_place_and_a_thread_by_its_inode() {
        let mut holder = process(5, vec![9]);
        holder.tasks = vec![waiting_on(6, 9), waiting_on(7, 8)];
        let snap = snapshot(
            vec![
                socket(TcpState::Established, "10.0.0.1:80", "10.0.0.2:1", 0),
                socket(TcpState::Established, "10.0.0.1:80", "10.0.0.2:2", 9),
            ],
            vec![holder],
        );
        let index = Index::new(&snap);
        assert_eq!(index.owner(1).map(|p| p.pid), Some(5));
        let tasks = &snap.processes[0].tasks;
        let found = index.thread_socket(&tasks[0]).map(|s| (s.at, s.remote()));
        assert_eq!(found, Some((1, snap.sockets[1].remote())));
        assert!(index.thread_socket(&tasks[1]).is_none());
        assert!(index.owner(0).is_none());
        assert!(index.owner(2).is_none(), "past the table");
    }

    /// An edited file may repeat an inode: its sockets answer as one.
    #[test]
    fn a_repeated_inode_is_one_socket() {
        let listen = || socket(TcpState::Listen, "0.0.0.0:80", "0.0.0.0:0", 1);
        let snap = snapshot(
            vec![listen(), listen()],
            vec![process(1, vec![1]), process(30, vec![1])],
        );
        let index = Index::new(&snap);
        let owners: Vec<_> = (0..snap.sockets.len())
            .map(|at| index.owner(at).map(|p| p.pid))
            .collect();
        assert_eq!(owners, [Some(30), Some(30)]);
        assert_eq!(index.owned(), 1);
        assert_eq!(index.shared().count(), 1);
    }

    #[test]
    fn seeking_finds_what_a_binary_search_finds() {
        let sorted: Vec<Keyed> = [1, 1, 3, 4, 4, 4, 9, 12, 12, 40]
            .into_iter()
            .map(|inode| Keyed {
                inode,
                place: 0,
                state: TcpState::Listen,
            })
            .collect();
        for inode in 0..45 {
            let want = sorted.partition_point(|k| k.inode < inode);
            assert_eq!(seek(&sorted, inode), want, "{inode}");
            assert_eq!(seek(&sorted[..0], inode), 0);
        }
    }

    /// After the pids wrapped, the child of a fork has the lower pid: the
    /// parent still answers for the sockets the child inherited.
    #[test]
    fn an_inherited_socket_is_the_parents_even_after_pids_wrapped() {
        let mut child = process(395, vec![7]);
        child.ppid = Some(32766);
        let snap = snapshot(
            vec![socket(
                TcpState::CloseWait,
                "10.0.0.1:80",
                "10.0.0.2:5000",
                7,
            )],
            vec![child, process(32766, vec![7])],
        );
        let index = Index::new(&snap);
        assert_eq!(index.owner(0).map(|p| p.pid), Some(32766));
        let holders: Vec<u32> = index
            .shared_holders(7)
            .unwrap_or_default()
            .iter()
            .map(|p| p.pid)
            .collect();
        assert_eq!(holders, [395, 32766]);
    }

    #[test]
    fn dual_stack_addresses_find_their_listener() {
        let snap = snapshot(
            vec![
                socket(TcpState::Listen, "[::ffff:127.0.0.1]:80", "[::]:0", 1),
                socket(TcpState::Listen, "[::]:81", "[::]:0", 2),
            ],
            vec![],
        );
        let index = Index::new(&snap);
        let v4 = |s: &str| s.parse::<SocketAddr>().unwrap_or_else(|_| unreachable!());
        assert_eq!(
            index.listener_for(&v4("127.0.0.1:80")).map(|l| l.inode()),
            Some(1)
        );
        assert_eq!(
            index.listener_at(&v4("127.0.0.1:80")).map(|l| l.inode()),
            Some(1)
        );
        assert_eq!(
            index
                .listener_for(&v4("[::ffff:10.0.0.1]:81"))
                .map(|l| l.inode()),
            Some(2)
        );
        assert_eq!(
            index.listener_for(&v4("10.0.0.1:81")).map(|l| l.inode()),
            Some(2)
        );
    }

    #[test]
    fn reuseport_connections_belong_to_their_holders_listener() {
        let snap = snapshot(
            vec![
                socket(TcpState::Listen, "0.0.0.0:80", "0.0.0.0:0", 1),
                socket(TcpState::Listen, "0.0.0.0:80", "0.0.0.0:0", 2),
                socket(TcpState::CloseWait, "10.0.0.1:80", "10.0.0.2:5000", 3),
                socket(TcpState::CloseWait, "10.0.0.1:80", "10.0.0.2:5001", 0),
            ],
            vec![process(10, vec![1]), process(20, vec![2, 3])],
        );
        let index = Index::new(&snap);
        assert_eq!(index.listener_of(2).map(|l| l.inode()), Some(2));
        assert_eq!(index.responsible(2).map(|p| p.pid), Some(20));
        // Not accepted yet: which queue it is in, the kernel does not say.
        assert_eq!(index.listener_of(3).map(|l| l.inode()), Some(1));
        assert_eq!(index.listeners_at(&snap.sockets[0].local()).count(), 2);
    }

    #[test]
    fn a_shared_listener_is_answered_for_by_the_holder_that_accepts() {
        let listen = || socket(TcpState::Listen, "0.0.0.0:80", "0.0.0.0:0", 1);
        let accepted = socket(TcpState::Established, "10.0.0.1:80", "10.0.0.2:5000", 2);
        // pid 1 passed the socket to 30 and 40; 40 holds a connection accepted from it.
        let snap = snapshot(
            vec![listen(), accepted],
            vec![
                process(1, vec![1]),
                process(30, vec![1]),
                process(40, vec![1, 2]),
            ],
        );
        let index = Index::new(&snap);
        assert_eq!(index.owner(0).map(|p| p.pid), Some(40));
        let pids: Option<Vec<u32>> = index
            .shared_holders(1)
            .map(|ps| ps.iter().map(|p| p.pid).collect());
        assert_eq!(pids, Some(vec![1, 30, 40]));
        assert!(index.shared_holders(2).is_none());
        // A thread waiting on the socket beats connections accepted earlier.
        let mut waiting = process(30, vec![1]);
        waiting.tasks.push(Task {
            syscall: Some("accept4".to_string()),
            ..waiting_on(31, 1)
        });
        let snap = snapshot(
            vec![
                listen(),
                socket(TcpState::Established, "10.0.0.1:80", "10.0.0.2:5000", 2),
            ],
            vec![process(1, vec![1]), waiting, process(40, vec![1, 2])],
        );
        assert_eq!(Index::new(&snap).owner(0).map(|p| p.pid), Some(30));
        // Nobody accepts: still not the lowest pid.
        let snap = snapshot(
            vec![listen()],
            vec![process(1, vec![1]), process(30, vec![1])],
        );
        assert_eq!(Index::new(&snap).owner(0).map(|p| p.pid), Some(30));
    }
}

//! The joins every rule needs, built once per snapshot: socket inode → owning
//! process, and local port → listening sockets.
//!
//! A socket may have several holders: fds inherited across fork(), or a
//! listening socket passed to workers (socket activation). Only those few
//! sockets keep their whole list of holders; a shared listener is answered
//! for by the holder that accepts from it (see [`super::listener_holder`]).
//! Addresses are compared canonically: a dual-stack socket reports an IPv4
//! peer as `::ffff:a.b.c.d`, its IPv4 end as `a.b.c.d`.

use crate::snapshot::{Process, Snapshot, Socket};
use crate::tcp::TcpState;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, SocketAddr};

/// One address, however the kernel spelt it (IPv4-mapped IPv6 or IPv4).
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

pub struct Index<'a> {
    /// Sockets per state, claimed or not, indexed by `TcpState as usize`.
    per_state: [u64; TcpState::ALL.len()],
    /// The sockets each process holds, per state (a socket shared after
    /// fork() counts for every holder).
    per_state_of_pid: FxHashMap<u32, [u64; TcpState::ALL.len()]>,
    process_by_pid: FxHashMap<u32, &'a Process>,
    /// Only inodes of the snapshot's sockets: its length is how many are owned.
    owner_by_inode: FxHashMap<u64, &'a Process>,
    socket_by_inode: FxHashMap<u64, &'a Socket>,
    listeners_by_port: FxHashMap<u16, Vec<&'a Socket>>,
    /// Every holder, by pid, of the sockets held by more than one process.
    shared: FxHashMap<u64, Vec<&'a Process>>,
}

impl<'a> Index<'a> {
    /// One pass over the sockets and one over the processes' inodes: every
    /// per-socket join the rules and the report need, so that none of them
    /// walks a million sockets through a hash map again.
    pub fn new(snapshot: &'a Snapshot) -> Index<'a> {
        let socket_by_inode: FxHashMap<u64, &Socket> = snapshot
            .sockets
            .iter()
            .filter(|s| s.inode() != 0)
            .map(|s| (s.inode(), s))
            .collect();
        let mut owner_by_inode = FxHashMap::default();
        owner_by_inode.reserve(socket_by_inode.len());
        let mut per_state_of_pid = FxHashMap::default();
        let mut shared: FxHashMap<u64, Vec<&Process>> = FxHashMap::default();
        // Processes are sorted by pid: a socket shared after fork() goes to the
        // lowest pid, or to the parent of that one.
        for p in &snapshot.processes {
            let mut mix = [0; TcpState::ALL.len()];
            for inode in &p.socket_inodes {
                let Some(s) = socket_by_inode.get(inode) else {
                    continue;
                };
                mix[s.state() as usize] += 1;
                match owner_by_inode.entry(*inode) {
                    Entry::Vacant(e) => {
                        e.insert(p);
                    }
                    Entry::Occupied(mut e) => {
                        shared
                            .entry(*inode)
                            .or_insert_with(|| vec![*e.get()])
                            .push(p);
                        // Inherited across fork(): the parent answers, even
                        // when pids wrapped and its child has the lower one.
                        if e.get().ppid == Some(p.pid) {
                            e.insert(p);
                        }
                    }
                }
            }
            per_state_of_pid.insert(p.pid, mix);
        }
        let mut listeners_by_port: FxHashMap<u16, Vec<&Socket>> = FxHashMap::default();
        for s in snapshot
            .sockets
            .iter()
            .filter(|s| s.state() == TcpState::Listen)
        {
            listeners_by_port
                .entry(s.local().port())
                .or_default()
                .push(s);
        }
        let mut per_state = [0; TcpState::ALL.len()];
        for s in &snapshot.sockets {
            per_state[s.state() as usize] += 1;
        }
        let mut index = Index {
            per_state,
            per_state_of_pid,
            process_by_pid: snapshot.processes.iter().map(|p| (p.pid, p)).collect(),
            owner_by_inode,
            socket_by_inode,
            listeners_by_port,
            shared,
        };
        super::listener_holder::assign(&mut index);
        index
    }

    /// Every process holding the socket with this inode, lowest pid first,
    /// when there are several.
    pub fn shared_holders(&self, inode: u64) -> Option<&[&'a Process]> {
        self.shared.get(&inode).map(Vec::as_slice)
    }

    /// The sockets held by more than one process, with every holder.
    pub fn shared(&self) -> impl Iterator<Item = (u64, &[&'a Process])> + '_ {
        self.shared.iter().map(|(i, ps)| (*i, ps.as_slice()))
    }

    /// Makes `p` the process that answers for the socket `inode`.
    pub(super) fn answer_for(&mut self, inode: u64, p: &'a Process) {
        self.owner_by_inode.insert(inode, p);
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
        self.owner_by_inode.len() as u64
    }

    /// The process holding the socket with this inode (0: none can).
    pub fn owner(&self, inode: u64) -> Option<&'a Process> {
        if inode == 0 {
            return None;
        }
        self.owner_by_inode.get(&inode).copied()
    }

    /// How many sockets of the snapshot are in `state`.
    pub fn count(&self, state: TcpState) -> u64 {
        self.per_state[state as usize]
    }

    /// The process with this pid, if it holds a TCP socket.
    pub fn process(&self, pid: u32) -> Option<&'a Process> {
        self.process_by_pid.get(&pid).copied()
    }

    /// The socket with this inode.
    pub fn socket(&self, inode: u64) -> Option<&'a Socket> {
        self.socket_by_inode.get(&inode).copied()
    }

    /// Who answers for a socket: its holder, or for a connection not yet
    /// accepted (or a server-side TIME_WAIT), the owner of its listener.
    pub fn responsible(&self, s: &Socket) -> Option<&'a Process> {
        self.owner(s.inode())
            .or_else(|| self.listener_of(s).and_then(|l| self.owner(l.inode())))
    }

    /// The listening socket bound to exactly this address (either spelling
    /// of an IPv4 address).
    pub fn listener_at(&self, addr: &SocketAddr) -> Option<&'a Socket> {
        self.listeners_at(addr).next()
    }

    /// Every listening socket bound to exactly this address: several with
    /// `SO_REUSEPORT`, each with its own queue and process.
    pub fn listeners_at(&self, addr: &SocketAddr) -> impl Iterator<Item = &'a Socket> + '_ {
        let ip = addr.ip();
        self.listeners_by_port
            .get(&addr.port())
            .map_or(&[][..], |v| v.as_slice())
            .iter()
            .filter(move |l| same_ip(l.local().ip(), ip))
            .copied()
    }

    /// The listening socket a connection with this local address was accepted
    /// from: same port, and the same address or a wildcard one.
    pub fn listener_for(&self, local: &SocketAddr) -> Option<&'a Socket> {
        self.listeners_matching(local).next()
    }

    /// The listening socket connection `s` was accepted from. Several
    /// listeners share an address with `SO_REUSEPORT`, each with its own
    /// process: the one its holder holds, when there is one.
    pub fn listener_of(&self, s: &Socket) -> Option<&'a Socket> {
        let mut matching = self.listeners_matching(&s.local());
        let first = matching.next()?;
        let mut same = matching.filter(|l| l.local() == first.local()).peekable();
        if same.peek().is_none() {
            return Some(first);
        }
        let Some(holder) = self.owner(s.inode()) else {
            return Some(first);
        };
        std::iter::once(first)
            .chain(same)
            .find(|l| self.holds(holder.pid, l.inode()))
            .or(Some(first))
    }

    /// Whether process `pid` holds the socket with this inode.
    fn holds(&self, pid: u32, inode: u64) -> bool {
        match self.shared.get(&inode) {
            Some(all) => all.iter().any(|p| p.pid == pid),
            None => self.owner(inode).is_some_and(|p| p.pid == pid),
        }
    }

    /// The listeners a connection with this local address may come from, best first:
    /// those bound to its address, then the wildcard ones.
    fn listeners_matching(&self, local: &SocketAddr) -> impl Iterator<Item = &'a Socket> + '_ {
        let candidates = self
            .listeners_by_port
            .get(&local.port())
            .map_or(&[][..], |v| v.as_slice());
        let ip = local.ip().to_canonical();
        let exact = candidates
            .iter()
            .filter(move |l| l.local().ip().to_canonical() == ip);
        let wildcard = candidates.iter().filter(move |l| {
            l.local().ip().is_unspecified() && (l.local().is_ipv6() || ip.is_ipv4())
        });
        exact.chain(wildcard).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{SocketParts, Task, Timer};

    fn socket(state: TcpState, local: &str, remote: &str, inode: u64) -> Socket {
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
        assert_eq!(index.owner(7).map(|p| p.pid), Some(32766));
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
        assert_eq!(
            index.listener_of(&snap.sockets[2]).map(|l| l.inode()),
            Some(2)
        );
        assert_eq!(index.responsible(&snap.sockets[2]).map(|p| p.pid), Some(20));
        // Not accepted yet: which queue it is in, the kernel does not say.
        assert_eq!(
            index.listener_of(&snap.sockets[3]).map(|l| l.inode()),
            Some(1)
        );
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
        assert_eq!(index.owner(1).map(|p| p.pid), Some(40));
        let pids: Option<Vec<u32>> = index
            .shared_holders(1)
            .map(|ps| ps.iter().map(|p| p.pid).collect());
        assert_eq!(pids, Some(vec![1, 30, 40]));
        assert!(index.shared_holders(2).is_none());
        // A thread waiting on the socket beats connections accepted earlier.
        let mut waiting = process(30, vec![1]);
        waiting.tasks.push(Task {
            tid: 31,
            comm: "acceptor".to_string(),
            state: "S".to_string(),
            wchan: None,
            syscall: Some("accept4".to_string()),
            fd: Some(3),
            inode: Some(1),
        });
        let snap = snapshot(
            vec![
                listen(),
                socket(TcpState::Established, "10.0.0.1:80", "10.0.0.2:5000", 2),
            ],
            vec![process(1, vec![1]), waiting, process(40, vec![1, 2])],
        );
        assert_eq!(Index::new(&snap).owner(1).map(|p| p.pid), Some(30));
        // Nobody accepts: still not the lowest pid.
        let snap = snapshot(
            vec![listen()],
            vec![process(1, vec![1]), process(30, vec![1])],
        );
        assert_eq!(Index::new(&snap).owner(1).map(|p| p.pid), Some(30));
    }
}

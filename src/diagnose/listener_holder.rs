//! Who answers for a listening socket that several processes hold.
//!
//! With socket activation (systemd, or a supervisor that opens the socket and
//! passes it to its workers) one listening socket sits in several fd tables,
//! and the lowest pid is the supervisor, often pid 1, which never accepts.
//! The one to blame for a full queue or for connections it never closes is
//! the holder that accepts: the one with a thread waiting on the socket
//! (when its threads were read), else the one holding most connections
//! accepted from it. Failing both, any holder but the lowest pid. The other
//! holders stay listed in the evidence (see `holders`).

use super::{Index, Placed};
use crate::snapshot::Process;
use crate::tcp::TcpState;
use rustc_hash::{FxHashMap, FxHashSet};
use std::net::SocketAddr;

/// Makes the accepting holder answer for each shared listening socket.
pub fn assign(index: &mut Index) {
    let listeners: Vec<_> = index
        .shared()
        .filter(|(s, _)| s.state() == TcpState::Listen)
        .collect();
    if listeners.is_empty() {
        return;
    }
    let accepted = accepted(index, &listeners);
    let choices: Vec<_> = listeners
        .iter()
        .filter_map(|&(l, holders)| Some((l.inode(), acceptor(l, holders, &accepted)?.pid)))
        .collect();
    for (inode, pid) in choices {
        index.answer_for(inode, pid);
    }
}

/// How many connections accepted from each shared listening address each
/// process holds (one held twice, twice), in one pass over the sockets, not
/// a lookup per inode of every holder. A kernel's table never repeats an
/// inode; should an edited file, each socket with it counts.
fn accepted(
    index: &Index,
    listeners: &[(Placed, &[&Process])],
) -> FxHashMap<(SocketAddr, u32), usize> {
    let addresses: FxHashSet<SocketAddr> = listeners.iter().map(|(l, _)| l.local()).collect();
    let mut accepted = FxHashMap::default();
    for (at, s) in index.sockets().iter().enumerate() {
        if s.inode() == 0 || s.state() == TcpState::Listen {
            continue;
        }
        let Some(from) = index
            .listener_for(&s.local())
            .map(|l| l.local())
            .filter(|a| addresses.contains(a))
        else {
            continue;
        };
        let mut count = |p: &Process| *accepted.entry((from, p.pid)).or_default() += 1;
        match index.shared_holders(s.inode()) {
            Some(all) => all.iter().for_each(|p| count(p)),
            None => index.owner(at).into_iter().for_each(count),
        }
    }
    accepted
}

/// The holder of `listener` that accepts from it.
fn acceptor<'a>(
    listener: Placed,
    holders: &[&'a Process],
    accepted: &FxHashMap<(SocketAddr, u32), usize>,
) -> Option<&'a Process> {
    let inode = listener.inode();
    let waits = |p: &Process| p.tasks.iter().any(|t| t.inode == Some(inode));
    let accepted = |p: &Process| {
        accepted
            .get(&(listener.local(), p.pid))
            .copied()
            .unwrap_or(0)
    };
    holders
        .iter()
        .copied()
        .filter(|p| waits(p))
        .min_by_key(|p| p.pid)
        .or_else(|| {
            holders
                .iter()
                .copied()
                .map(|p| (accepted(p), p))
                .filter(|(n, _)| *n > 0)
                // Most accepted first; among equals, the lowest pid.
                .max_by(|(a, p), (b, q)| a.cmp(b).then(q.pid.cmp(&p.pid)))
                .map(|(_, p)| p)
        })
        .or_else(|| holders.get(1).copied())
}

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

use super::Index;
use crate::snapshot::Process;
use crate::tcp::TcpState;

/// Makes the accepting holder answer for each shared listening socket.
pub fn assign(index: &mut Index) {
    let choices: Vec<_> = index
        .shared()
        .filter(|(inode, _)| {
            index
                .socket(*inode)
                .is_some_and(|s| s.state() == TcpState::Listen)
        })
        .filter_map(|(inode, holders)| Some((inode, acceptor(index, inode, holders)?)))
        .collect();
    for (inode, p) in choices {
        index.answer_for(inode, p);
    }
}

/// The holder of listener `inode` that accepts from it.
fn acceptor<'a>(index: &Index<'a>, inode: u64, holders: &[&'a Process]) -> Option<&'a Process> {
    let listener = index.socket(inode)?;
    let waits = |p: &Process| p.tasks.iter().any(|t| t.inode == Some(inode));
    let accepted = |p: &Process| {
        p.socket_inodes
            .iter()
            .filter_map(|i| index.socket(*i))
            .filter(|s| s.state() != TcpState::Listen)
            .filter(|s| {
                index
                    .listener_for(&s.local())
                    .is_some_and(|l| l.local() == listener.local())
            })
            .count()
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

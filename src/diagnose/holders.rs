//! Every holder of a finding's sockets, not only the one it names.
//!
//! A socket held by several processes is an fd inherited across fork()
//! without close-on-exec, or a listening socket passed to workers. The
//! finding names one holder; the evidence lists the others, since the process
//! that should close may be any of them. A leak whose sockets all have
//! another holder calls for close-on-exec rather than for a close() on EOF:
//! the parent may well close its copy, and the child's copy keeps the
//! connection open.

use super::{ConnSide, Finding, Index, close_wait, rollup, who};
use crate::snapshot::{Process, Snapshot, endpoint};
use crate::tcp::TcpState;
use std::collections::BTreeMap;

/// Holders listed by name in one evidence line; the rest are counted.
const MAX_LISTED: usize = 8;

const CLOEXEC: &str = "Every one of these sockets is also open in another process: fds \
    inherited across fork() or exec(). Create sockets close-on-exec (SOCK_CLOEXEC, O_CLOEXEC, \
    or fcntl FD_CLOEXEC; Python's default since 3.4; subprocess(close_fds=True)) and close \
    them in the child after fork(), then fix the close() on EOF: a socket is released only \
    when its last holder closes it.";

/// Adds the other holders of each finding's sockets, and of the listener of a
/// server-side finding, to its evidence.
pub fn annotate(snapshot: &Snapshot, index: &Index, findings: &mut [Finding]) {
    if index.shared().next().is_none() {
        return;
    }
    for f in findings.iter_mut().filter(|f| f.pid.is_some()) {
        let listener = match (f.side, f.local) {
            (Some(ConnSide::Server), Some(local)) => index.listener_at(&local),
            _ => None,
        };
        if let Some(l) = listener {
            let holders = index.shared_holders(l.inode()).unwrap_or_default();
            let others: Vec<&Process> = others_than(f, holders).collect();
            if !others.is_empty() {
                f.evidence.push(format!(
                    "listener {} is also held by {} (one socket, several fd tables: passed on \
                     or inherited); {} answers for it as the holder that accepts",
                    endpoint(&l.local()),
                    list(&others),
                    who(index.owner(l.at))
                ));
            }
        }
        let mut others = BTreeMap::new();
        let (mut held, mut shared) = (0, 0);
        for s in f.sockets.iter().filter_map(|&i| snapshot.sockets.get(i)) {
            if s.inode() == 0 || s.state() == TcpState::Listen {
                continue;
            }
            held += 1;
            if let Some(holders) = index.shared_holders(s.inode()) {
                shared += 1;
                others.extend(others_than(f, holders).map(|p| (p.pid, p)));
            }
        }
        let others: Vec<&Process> = others.into_values().collect();
        if others.is_empty() {
            continue;
        }
        f.evidence.push(format!(
            "{shared} of its {held} sockets are also held by {}: fds shared after fork() or \
             passed on; a connection closes only when every holder has closed it",
            list(&others)
        ));
        let leak = f.kind == close_wait::RULE.kind || f.kind == rollup::RULE.kind;
        if leak && f.state == Some(TcpState::CloseWait) && shared == held {
            f.suggestion = CLOEXEC.to_string();
        }
    }
}

/// The processes among `holders` the finding does not name.
fn others_than<'a, 'b>(
    f: &'b Finding,
    holders: &'b [&'a Process],
) -> impl Iterator<Item = &'a Process> + 'b {
    holders
        .iter()
        .copied()
        .filter(move |p| Some(p.pid) != f.pid)
}

/// "pid 1 (a), pid 2 (b)", the first few named and the rest counted.
fn list(ps: &[&Process]) -> String {
    let mut listed: Vec<String> = ps.iter().take(MAX_LISTED).map(|p| who(Some(p))).collect();
    if ps.len() > MAX_LISTED {
        listed.push(format!("{} more", ps.len() - MAX_LISTED));
    }
    listed.join(", ")
}

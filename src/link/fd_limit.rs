//! Links around a process's fd limit: a leak of closed sockets fills the fd
//! table (the leak is the cause, `EMFILE` the symptom), and a process at its
//! limit cannot `accept()`, so its listeners' queues fill although a thread
//! may well be ready to accept.

use super::{Context, Explained, Link};
use crate::diagnose::{Cause, CloseWaitCause, FdCause, Finding, kind};
use crate::snapshot::Process;

/// closed_not_released → fd_exhaustion: the TCP sockets the kernel closed and the process never
/// did fill its fd table
pub const LEAK_FILLS_FDS: Link = Link {
    name: "leak_fills_fd_table",
    run: leak_fills_fds,
};

/// fd_exhaustion → accept_queue_full (and the connections queued there whose clients gave up):
/// at its limit the process's accept() fails with EMFILE
pub const STOPS_ACCEPTING: Link = Link {
    name: "fd_limit_stops_accepting",
    run: stops_accepting,
};

/// Within this many fds of the soft limit, `accept()` fails with `EMFILE`
/// (a closing fd may free a slot for a moment).
const AT_LIMIT: u64 = 2;

fn leak_fills_fds(cx: &Context) -> Vec<Explained> {
    let mut out = Vec::new();
    for (effect, f) in cx.of_kind(kind::FD_EXHAUSTION) {
        if f.cause != Some(Cause::Fd(FdCause::ClosedNotReleased)) {
            continue;
        }
        let cause = cx
            .of_kind(kind::CLOSED_NOT_RELEASED)
            .find(|(_, c)| c.pid == f.pid);
        if let Some((cause, c)) = cause {
            out.push(Explained {
                cause,
                effect,
                why: format!(
                    "caused by {}: {} TCP sockets the kernel already closed fill the fd table",
                    c.id, c.count
                ),
                suggestion: None,
            });
        }
    }
    out
}

/// The process of a finding, when it is at its fd limit.
fn at_limit<'a>(cx: &Context<'a>, f: &Finding) -> Option<(&'a Process, u64)> {
    let p = cx.index.process(f.pid?)?;
    let limit = p.fd_soft_limit?;
    (u64::from(p.fds) + AT_LIMIT >= limit).then_some((p, limit))
}

fn stops_accepting(cx: &Context) -> Vec<Explained> {
    let mut out = Vec::new();
    for (cause, c) in cx.of_kind(kind::FD_EXHAUSTION) {
        let Some((p, limit)) = at_limit(cx, c) else {
            continue;
        };
        let queued = cx.findings.iter().enumerate().filter(|(_, f)| {
            f.pid == Some(p.pid)
                && (f.kind == kind::ACCEPT_QUEUE_FULL
                    || f.cause == Some(Cause::CloseWait(CloseWaitCause::NeverAccepted)))
        });
        for (effect, _) in queued {
            out.push(Explained {
                cause,
                effect,
                why: format!(
                    "caused by {}: pid {} is at its open-file limit ({} fds of {limit}), so \
                     accept() fails with EMFILE and the queue is not drained, whatever its \
                     threads do",
                    c.id, p.pid, p.fds
                ),
                // The root says what fills the table, and so whether a higher
                // limit is the fix (real load) or only buys time (a leak).
                suggestion: Some(format!(
                    "Follows from {}: once pid {} has fds to spare, the listener accepts \
                     again. {}",
                    c.id, p.pid, c.suggestion
                )),
            });
        }
    }
    out
}

//! Links around a listener on this host: a worker pool that is all busy
//! stops its acceptor; a full accept queue, or a SYN queue a flood filled,
//! drops the handshakes of local clients, whose connects then go
//! unanswered; the connections queued on a stuck listener whose clients
//! gave up are its CLOSE-WAIT.

use super::{Context, Explained, Link};
use crate::diagnose::{Cause, CloseWaitCause, Finding, Severity, SynBacklogCause, canonical, kind};
use crate::snapshot::{Socket, endpoint};
use std::net::SocketAddr;

/// worker_pool_exhausted → accept_queue_full on its listener: with every worker busy, the
/// acceptor waits for one and the queue fills
pub const POOL_STOPS_ACCEPTING: Link = Link {
    name: "pool_stops_accepting",
    run: pool_stops_accepting,
};

/// accept_queue_full → connect_unanswered of local clients toward that listener, and the queued
/// connections whose clients gave up (close_wait_leak never_accepted)
pub const FULL_QUEUE: Link = Link {
    name: "full_queue_drops_connects",
    run: full_queue,
};

/// syn_backlog that drops handshakes (syn_queue_full) → connect_unanswered of local clients
/// toward the flooded listener: the full SYN queue drops their handshakes too
pub const SYN_FLOOD: Link = Link {
    name: "syn_flood_drops_connects",
    run: syn_flood,
};

/// The listener (its canonical address) a local client's connection attempt is toward.
fn toward(cx: &Context, s: &Socket) -> Option<SocketAddr> {
    if !crate::diagnose::is_local_destination(s) {
        return None;
    }
    let l = cx.index.listener_for(&s.remote())?;
    Some(canonical(l.local()))
}

/// Whether every socket of `f` is a local client's attempt toward `listener`.
fn all_toward(cx: &Context, f: &Finding, listener: SocketAddr) -> bool {
    let mut any = false;
    let all = cx.sockets(f).all(|s| {
        any = true;
        toward(cx, s) == Some(listener)
    });
    any && all
}

/// A pool at warning level explains its listener's full queue; a few unread
/// requests (INFO) beside a listener that stopped accepting are the same
/// stuck process seen from the other side, and follow from the queue.
fn pool_stops_accepting(cx: &Context) -> Vec<Explained> {
    let mut out = Vec::new();
    for (pool, p) in cx.of_kind(kind::WORKER_POOL_EXHAUSTED) {
        for (queue, q) in cx.of_kind(kind::ACCEPT_QUEUE_FULL) {
            if q.pid != p.pid || q.local != p.local {
                continue;
            }
            out.push(if p.severity >= Severity::Warning {
                Explained {
                    cause: pool,
                    effect: queue,
                    why: format!(
                        "caused by {}: every worker is busy, so the connections it accepts wait \
                         for one and the queue behind them fills",
                        p.id
                    ),
                    suggestion: Some(format!("Follows from {}: {}", p.id, p.suggestion)),
                }
            } else {
                Explained {
                    cause: queue,
                    effect: pool,
                    why: format!(
                        "part of {}: the process that stopped accepting does not read what it \
                         accepted either",
                        q.id
                    ),
                    suggestion: Some(format!("Follows from {}: {}", q.id, q.suggestion)),
                }
            });
        }
    }
    out
}

fn full_queue(cx: &Context) -> Vec<Explained> {
    let mut out = Vec::new();
    for (cause, c) in cx.of_kind(kind::ACCEPT_QUEUE_FULL) {
        let Some(listener) = c.local else { continue };
        let at = endpoint(&listener);
        for (effect, f) in cx.of_kind(kind::CONNECT_UNANSWERED) {
            if all_toward(cx, f, listener) {
                out.push(Explained {
                    cause,
                    effect,
                    why: format!(
                        "caused by {}: these attempts are toward listener {at} on this host, \
                         whose accept queue drops their handshakes",
                        c.id
                    ),
                    suggestion: Some(format!(
                        "Follows from {}: the listener {at} on this host stopped accepting; fix \
                         that and these connects complete. No route or firewall is involved. \
                         Give the client a connect timeout of seconds so that callers fail fast.",
                        c.id
                    )),
                });
            }
        }
        let gave_up = Cause::CloseWait(CloseWaitCause::NeverAccepted);
        for (effect, f) in cx.of_kind(kind::CLOSE_WAIT_LEAK) {
            if f.cause == Some(gave_up) && f.local == Some(listener) {
                out.push(Explained {
                    cause,
                    effect,
                    why: format!(
                        "caused by {}: they wait in the queue of listener {at}, which is not \
                         being drained",
                        c.id
                    ),
                    suggestion: Some(format!("Follows from {}: {}", c.id, c.suggestion)),
                });
            }
        }
    }
    out
}

fn syn_flood(cx: &Context) -> Vec<Explained> {
    let mut out = Vec::new();
    for (cause, c) in cx.of_kind(kind::SYN_BACKLOG) {
        // Only a queue that drops handshakes explains connects that fail; one
        // that SYN cookies absorb lets them complete.
        let dropping = c.cause == Some(Cause::SynBacklog(SynBacklogCause::SynQueueFull));
        let Some(listener) = c.local.filter(|_| dropping) else {
            continue;
        };
        let at = endpoint(&listener);
        for (effect, f) in cx.of_kind(kind::CONNECT_UNANSWERED) {
            if all_toward(cx, f, listener) {
                out.push(Explained {
                    cause,
                    effect,
                    why: format!(
                        "caused by {}: listener {at} on this host is flooded with half-open \
                         handshakes, and its full SYN queue drops these legitimate ones too",
                        c.id
                    ),
                    suggestion: Some(format!(
                        "Follows from {}: stop the flood (filter its sources upstream), and turn on \
                         (or keep) net.ipv4.tcp_syncookies=1 so that legitimate handshakes \
                         still complete.",
                        c.id
                    )),
                });
            }
        }
    }
    out
}

//! `event_loop_not_reading`: an event-loop server (Go, Node, nginx, Netty,
//! asyncio) that leaves accepted requests unread.
//!
//! Such servers park a few threads in `epoll_wait` (or `futex`) whatever their
//! load, so their threads say nothing of a pool: `worker_pool_exhausted`
//! would blame workers that do not exist. The same socket evidence (requests
//! unread long enough, see `worker_pool`) means here that the loop does not
//! read these connections: a handler blocks it, or never resumes.

use super::idioms::{Need, suggest};
use super::worker_pool::{MAX_POOLS_SHOWN, serves_by_event_loop, unread_evidence, unread_groups};
use super::{Context, Finding, Rule, Severity, pools};

pub const RULE: Rule = Rule {
    kind: "event_loop_not_reading",
    unit: super::Unit::Connections,
    title: "an event-loop server does not read accepted requests",
    about: "An event-loop server (Go, Node, nginx, Netty, asyncio; told by its runtime or by \
            threads parked in epoll_wait) holds accepted connections whose requests stay unread: \
            the event loop does not read these connections, because a handler blocks the loop \
            or never resumes (a paused socket, an await that never completes). Profile the \
            process the runtime's way and put deadlines on handlers.",
    run: find,
};

pub fn find(cx: &Context) -> Vec<Finding> {
    let t = cx.thresholds;
    unread_groups(cx)
        .into_iter()
        .filter_map(|((pid, listener), sockets)| {
            let owner = cx.index.process(pid)?;
            let pools = pools::pools(cx.index, owner);
            if !serves_by_event_loop(owner, &pools) {
                return None;
            }
            let mut evidence = unread_evidence(cx, owner, listener, &sockets);
            evidence.extend(pools.iter().take(MAX_POOLS_SHOWN).map(pools::evidence));
            evidence.push(
                "the event loop does not read these connections (a handler blocks or never \
                 resumes)"
                    .to_string(),
            );
            let count = sockets.len() as u64;
            Some(
                Finding {
                    severity: Severity::grade(count, t.unread_warn, t.unread_crit),
                    count,
                    local: Some(listener),
                    evidence,
                    suggestion: suggest(
                        "The event loop does not read these connections: a handler blocks it \
                         (synchronous I/O, a long computation, a lock) or waits for something \
                         that never resumes. Find the handler in a profile of the process and \
                         give handlers deadlines.",
                        Some(owner),
                        Need::EventLoop,
                    ),
                    side: Some(super::ConnSide::Server),
                    sockets,
                    ..Finding::of(&RULE, None)
                }
                .owned_by(Some(owner)),
            )
        })
        .collect()
}

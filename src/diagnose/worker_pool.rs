//! `worker_pool_exhausted`: a fixed pool whose workers are all busy or
//! blocked, so connections the kernel accepted (and the accept loop handed
//! over) are never read.
//!
//! The socket table shows it as request bytes waiting unread in the server's
//! own fd table: ESTABLISHED with Recv-Q > 0 for a while, or CLOSE_WAIT with
//! Recv-Q > 1 (the request plus the FIN of a client that gave up). The owner's
//! threads say why: which system call each is blocked in, and on which socket.
//! The finding stands on the socket evidence alone, whatever the workers block
//! on; the threads only explain it.

use super::{Context, Finding, Rule, Severity, canonical, who};
use crate::snapshot::{Process, Socket, Task, endpoint};
use crate::tcp::TcpState;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;

pub const RULE: Rule = Rule {
    kind: "worker_pool_exhausted",
    title: "a server's workers are all blocked; accepted requests go unread",
    about: "A server's workers are all busy or blocked, so accepted connections are never \
            read: request bytes wait in Recv-Q of ESTABLISHED sockets, or of CLOSE-WAIT ones once \
            the client gave up. The owner's threads show what the workers block on (a read from \
            an idle client, a lock, a slow dependency). Add read timeouts, size the pool for \
            slow clients, and fix what the blocked threads wait on.",
    run: find,
};

const READS: [&str; 4] = ["read", "recvfrom", "recvmsg", "recv"];

/// What the owner's threads say about why nobody reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerPoolCause {
    /// At least half the threads block reading sockets.
    WorkersBlockedOnReads,
    WorkersBlockedElsewhere,
    /// The threads could not be read.
    WorkersUnknown,
}

impl WorkerPoolCause {
    fn suggestion(self) -> &'static str {
        match self {
            WorkerPoolCause::WorkersBlockedOnReads => {
                "The workers sit in blocking reads on connections whose clients send nothing, so \
                 new requests wait behind them. Give reads a timeout (SO_RCVTIMEO, a read \
                 deadline), size the pool for slow or idle clients, or move to non-blocking I/O."
            }
            WorkerPoolCause::WorkersBlockedElsewhere => {
                "The workers are blocked on something other than their clients (a lock, a slow \
                 dependency, a sleep). Take a thread dump (jstack, py-spy dump, gdb -p) to see \
                 what they wait on; put timeouts on that dependency; size the pool."
            }
            WorkerPoolCause::WorkersUnknown => {
                "Nobody reads these requests: take a thread dump of the server to see what its \
                 workers do, and add read timeouts and a bounded pool."
            }
        }
    }
}

/// A request waiting unread in an accepted connection; an ESTABLISHED one
/// only once nothing arrived for `min_age_ms`.
fn unread_request(s: &Socket, min_age_ms: u64) -> bool {
    s.has_unread_request()
        && (s.state != TcpState::Established
            || s.tcp_info
                .and_then(|t| t.last_data_recv_ms)
                .is_some_and(|ms| u64::from(ms) >= min_age_ms))
}

pub fn find(cx: &Context) -> Vec<Finding> {
    let min_age_ms = cx.thresholds.close_wait_min_age.saturating_mul(1000);
    // (pid, listener) → unread sockets
    let mut groups: BTreeMap<(u32, SocketAddr), Vec<usize>> = BTreeMap::new();
    for (i, s) in cx.sockets() {
        if s.inode == 0 || !unread_request(s, min_age_ms) {
            continue;
        }
        let (Some(owner), Some(listener)) =
            (cx.index.owner(s.inode), cx.index.listener_for(&s.local))
        else {
            continue;
        };
        groups
            .entry((owner.pid, canonical(listener.local)))
            .or_default()
            .push(i);
    }
    groups
        .into_iter()
        .filter_map(|((pid, listener), sockets)| {
            let owner = cx.index.process(pid)?;
            Some(finding(cx, owner, listener, sockets))
        })
        .collect()
}

fn finding(cx: &Context, owner: &Process, listener: SocketAddr, sockets: Vec<usize>) -> Finding {
    let t = cx.thresholds;
    let count = sockets.len() as u64;
    let (mut closed, mut bytes) = (0, 0u64);
    for &i in &sockets {
        let s = &cx.snapshot.sockets[i];
        closed += u64::from(s.state == TcpState::CloseWait);
        bytes += u64::from(s.recv_q);
    }
    let mut evidence = vec![
        format!(
            "{count} connections accepted on {} by {} hold {bytes} request bytes nobody read",
            endpoint(&listener),
            who(Some(owner))
        ),
        format!(
            "{closed} of them in CLOSE-WAIT with Recv-Q > 1: the client sent its request, waited, \
             gave up and closed; {} still ESTABLISHED with data waiting",
            count - closed
        ),
    ];
    let (threads, blocked_reads) = thread_evidence(cx, owner, &mut evidence);
    let cause = if threads > 0 && blocked_reads * 2 >= threads {
        WorkerPoolCause::WorkersBlockedOnReads
    } else if threads > 0 {
        WorkerPoolCause::WorkersBlockedElsewhere
    } else {
        WorkerPoolCause::WorkersUnknown
    };
    Finding {
        severity: Severity::grade(count, t.unread_warn, t.unread_crit),
        count,
        local: Some(listener),
        evidence,
        suggestion: cause.suggestion().to_string(),
        side: Some(super::ConnSide::Server),
        cause: Some(cause.into()),
        sockets,
        ..Finding::of(&RULE, None)
    }
    .owned_by(Some(owner))
}

/// Adds what the owner's threads block on; returns (threads, threads blocked reading sockets).
fn thread_evidence(cx: &Context, owner: &Process, evidence: &mut Vec<String>) -> (u64, u64) {
    let tasks = &owner.tasks;
    if tasks.is_empty() {
        evidence.push("its threads could not be read (needs root or CAP_SYS_PTRACE)".to_string());
        return (0, 0);
    }
    let total = tasks.len() as u64;
    let mut by_call: BTreeMap<String, Vec<&Task>> = BTreeMap::new();
    for t in tasks {
        let call = t.syscall.clone().unwrap_or_else(|| match t.state.as_str() {
            "R" => "running".to_string(),
            _ => "no system call".to_string(),
        });
        by_call.entry(call).or_default().push(t);
    }
    let mut reads = 0;
    for (call, ts) in &by_call {
        let on_sockets: Vec<&Socket> = ts
            .iter()
            .filter_map(|t| cx.index.socket(t.inode?))
            .collect();
        let line = if READS.contains(&call.as_str()) && !on_sockets.is_empty() {
            reads += on_sockets.len() as u64;
            let idle = on_sockets.iter().filter(|s| s.recv_q == 0).count();
            let peers: Vec<String> = on_sockets
                .iter()
                .take(3)
                .map(|s| endpoint(&s.remote))
                .collect();
            let longest = on_sockets
                .iter()
                .filter_map(|s| s.tcp_info?.last_data_recv_ms)
                .max()
                .map(|ms| {
                    format!(
                        ", silent for up to {}",
                        super::human_duration(u64::from(ms) / 1000)
                    )
                })
                .unwrap_or_default();
            format!(
                "{} of {total} threads blocked in {call}() on {} connections ({idle} idle{longest}) \
                 from {}{}",
                ts.len(),
                on_sockets[0].state,
                peers.join(", "),
                if on_sockets.len() > 3 { ", ..." } else { "" }
            )
        } else {
            let wchan = ts.iter().find_map(|t| t.wchan.clone());
            format!(
                "{} of {total} threads in {call}(){}",
                ts.len(),
                wchan.map(|w| format!(" (kernel: {w})")).unwrap_or_default()
            )
        };
        evidence.push(line);
    }
    (total, reads)
}

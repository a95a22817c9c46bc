//! `blocked_send`: open connections whose sent data does not move, because
//! the peer does not read or because the peer (or the path) is gone.
//!
//! Send-Q > 0 that has not moved for a while is a writer stuck: a thread in
//! write()/sendto() or a buffer growing in an event loop. The timer tells
//! which fix applies (`send_stall`): window probes answered mean the peer is
//! alive and not reading (fix the reader, named when it runs here);
//! retransmissions with backoff mean it or the path is gone (look at the
//! network). Short stalls are normal backpressure, so a socket counts once no
//! data has moved (not reading) or nothing was heard (gone) for
//! `--send-stall-secs`.

use super::cause::cause_enum;
use super::peers::{self, Ends, PeerKey};
use super::send_stall::{self, Stall};
use super::{Context, Finding, Rule, Severity, human_duration, plural, who};
use crate::snapshot::{Process, Socket, Task};
use crate::tcp::TcpState;
use std::collections::BTreeMap;

pub const RULE: Rule = Rule {
    kind: "blocked_send",
    unit: super::Unit::Connections,
    title: "data sent on open connections does not move (peer not reading, or gone)",
    about: "ESTABLISHED connections with data waiting in Send-Q that has not moved for \
            --send-stall-secs. With the zero-window probe timer and the probes answered, the \
            peer is alive and does not read (peer_not_reading): fix the reader, named when it \
            runs on this host; the local writers block in write()/sendto(). With \
            retransmissions and backoff the peer or the path is gone (peer_gone): a dead host, \
            a firewall or conntrack that forgot the flow. Give writers a send timeout \
            (SO_SNDTIMEO, TCP_USER_TIMEOUT).",
    run: find,
};

cause_enum! {
/// Which of the two stalls the connections show.
#[derive(PartialOrd, Ord)]
pub enum BlockedSendCause {
    PeerNotReading = "peer_not_reading": "Data waits in Send-Q while the peer's receive window \
        is closed and it answers the zero-window probes: the peer is alive and does not read. \
        Fix the reader, or bound the writer with a send timeout.",
    PeerGone = "peer_gone": "Data waits in Send-Q and its retransmissions go unanswered: the \
        peer is gone (crashed, unplugged, firewalled), and the connection lasts until \
        net.ipv4.tcp_retries2 gives up (about 15 minutes). Fix: TCP_USER_TIMEOUT or \
        keep-alive, so that a dead peer is noticed sooner.",
}
}

impl BlockedSendCause {
    fn of(stall: Stall) -> BlockedSendCause {
        match stall {
            Stall::PeerNotReading => BlockedSendCause::PeerNotReading,
            Stall::PeerGone => BlockedSendCause::PeerGone,
        }
    }

    fn suggestion(self) -> &'static str {
        match self {
            BlockedSendCause::PeerNotReading => {
                "The peer is alive and does not read: fix the reader (a blocked or slow consumer, \
                 a handler that stopped reading). Give the writers here a send timeout \
                 (SO_SNDTIMEO, TCP_USER_TIMEOUT) or a bounded buffer so that one slow peer does \
                 not hold a thread forever."
            }
            BlockedSendCause::PeerGone => {
                "Nothing answers: check that the peer is up and the path to it (firewalls, \
                 conntrack or NAT timeouts that forgot an idle flow, routes). Set \
                 TCP_USER_TIMEOUT so that such connections fail in seconds, and keep-alive so \
                 that idle ones are probed."
            }
        }
    }
}

#[derive(Default)]
struct Group {
    sockets: Vec<usize>,
    bytes: u64,
    oldest_ms: u32,
    backoff: u8,
}

/// How long the stall has lasted: no data moved to a peer that does not
/// read, or nothing heard from a peer that is gone.
fn stalled_ms(s: &Socket, stall: Stall) -> Option<u32> {
    let t = s.tcp_info()?;
    match stall {
        Stall::PeerNotReading => t.last_data_sent_ms,
        Stall::PeerGone => t.last_ack_recv_ms,
    }
}

pub fn find(cx: &Context) -> Vec<Finding> {
    let min_ms = cx.thresholds.send_stall_secs.saturating_mul(1000);
    let stalled: Vec<(usize, Stall, u32)> = cx
        .in_state(TcpState::Established)
        .filter(|(_, s)| s.send_q() > 0)
        .filter_map(|(i, s)| {
            let stall = send_stall::of(s)?;
            let ms = stalled_ms(s, stall).filter(|&ms| u64::from(ms) >= min_ms)?;
            Some((i, stall, ms))
        })
        .collect();
    let indexes: Vec<usize> = stalled.iter().map(|&(i, ..)| i).collect();
    let ends = Ends::find(cx, &indexes);
    type Key = (Option<u32>, PeerKey, BlockedSendCause);
    let mut groups: BTreeMap<Key, Group> = BTreeMap::new();
    for (i, stall, ms) in stalled {
        let s = &cx.snapshot.sockets[i];
        let owner = cx.index.owner(i).map(|p| p.pid);
        let key = (owner, ends.key(i, s), BlockedSendCause::of(stall));
        let g = groups.entry(key).or_default();
        g.sockets.push(i);
        g.bytes += u64::from(s.send_q());
        g.oldest_ms = g.oldest_ms.max(ms);
        g.backoff = g.backoff.max(s.tcp_info().map_or(0, |t| t.backoff));
    }
    groups
        .into_iter()
        .map(|((pid, _, cause), g)| finding(cx, &ends, pid, cause, g))
        .collect()
}

fn finding(
    cx: &Context,
    ends: &Ends,
    pid: Option<u32>,
    cause: BlockedSendCause,
    g: Group,
) -> Finding {
    let owner = pid.and_then(|pid| cx.index.process(pid));
    let count = g.sockets.len() as u64;
    let socks: Vec<&Socket> = g.sockets.iter().map(|&i| &cx.snapshot.sockets[i]).collect();
    let age = human_duration(u64::from(g.oldest_ms) / 1000);
    let peers = peers::list(cx, ends, &g.sockets);
    let (remote, endpoints) = peers::endpoints(cx, &g.sockets);
    let mut evidence = vec![format!(
        "{} has {} toward {} with {} bytes in Send-Q that do not move",
        who(owner),
        plural(count, "ESTABLISHED connection"),
        peers::describe(&peers),
        g.bytes
    )];
    evidence.push(match cause {
        BlockedSendCause::PeerNotReading => format!(
            "the peer's receive window is closed and it answers every zero-window probe: it is \
             alive and does not read; no data moved for {age} (probe backoff {}); endpoints \
             {endpoints}",
            g.backoff
        ),
        BlockedSendCause::PeerGone => format!(
            "retransmitting unanswered with backoff (up to {}); nothing heard from the peer for \
             {age}: the peer or the path is gone; endpoints {endpoints}",
            g.backoff
        ),
    });
    if let Some(line) = owner.and_then(|p| writers(p, &socks)) {
        evidence.push(line);
    }
    let t = cx.thresholds;
    Finding {
        severity: if count >= t.send_stall_warn {
            Severity::Warning
        } else {
            Severity::Info
        },
        count,
        remote,
        evidence,
        suggestion: cause.suggestion().to_string(),
        oldest_s: Some(u64::from(g.oldest_ms) / 1000),
        cause: Some(cause.into()),
        peers,
        sockets: g.sockets,
        ..Finding::of(&RULE, Some(TcpState::Established))
    }
    .owned_by(owner)
}

/// The owner's threads blocked writing to these connections, when its
/// threads were read.
fn writers(owner: &Process, socks: &[&Socket]) -> Option<String> {
    const SENDS: &[&str] = &["write", "writev", "sendto", "sendmsg", "send"];
    let blocked: Vec<&Task> = owner
        .tasks
        .iter()
        .filter(|t| t.syscall.as_deref().is_some_and(|c| SENDS.contains(&c)))
        .filter(|t| {
            t.inode
                .is_some_and(|i| socks.iter().any(|s| s.inode() == i))
        })
        .collect();
    if blocked.is_empty() {
        return None;
    }
    let shown: Vec<String> = blocked
        .iter()
        .take(3)
        .map(|t| {
            format!(
                "tid {} ({}) in {}()",
                t.tid,
                t.comm,
                t.syscall.as_deref().unwrap_or_default()
            )
        })
        .collect();
    Some(format!(
        "{} of pid {} blocked sending on them: {}{}",
        plural(blocked.len() as u64, "thread"),
        owner.pid,
        shown.join(", "),
        if blocked.len() > 3 { ", ..." } else { "" }
    ))
}

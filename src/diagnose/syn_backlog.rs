//! `syn_backlog`: half-open connections piling up on a listener.
//!
//! A SYN-RECEIVED entry is a handshake this host answered (SYN-ACK) whose
//! final ACK never came: a SYN flood, or clients whose replies are lost on the
//! way back. The severity comes from the effect, not the count:
//!
//! - The SYN queue's effective cap is the listener's backlog and, with SYN
//!   cookies off, `tcp_max_syn_backlog` less the quarter the kernel keeps for
//!   peers already proven alive. At that cap, and with cookies off, every new
//!   handshake from an unproven peer (a legitimate client among them) is
//!   dropped (`ListenDrops`, `TCPReqQFullDrop`): legitimate work fails, the
//!   finding is critical.
//! - With cookies on, past the backlog the kernel answers with SYN cookies
//!   and handshakes still complete: the defence absorbs the flood. That is
//!   a warning, never critical.
//! - Evidence quotes the counters that moved (over the window, or since the
//!   namespace began counting), never the ones at zero.

use super::Placed;
use super::cause::cause_enum;
use super::{Context, Finding, Rule, Severity, canonical, plural, who};
use crate::snapshot::{Kernel, endpoint};
use crate::tcp::TcpState;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

pub const RULE: Rule = Rule {
    kind: "syn_backlog",
    unit: super::Unit::Connections,
    title: "half-open handshakes (SYN-RECEIVED) pile up on a listener",
    about: "SYN-RECEIVED entries piling up on a listener: handshakes whose final ACK never \
            arrives, from a SYN flood or from clients whose replies are lost on the way back. \
            The SYN queue holds at most the listener's backlog and, with tcp_syncookies=0, \
            three quarters of tcp_max_syn_backlog for peers not yet proven alive. At that cap \
            with cookies off, new handshakes are dropped (ListenDrops, TCPReqQFullDrop): \
            legitimate connects fail, critical. With cookies on, past the backlog SYN cookies \
            answer (SyncookiesSent) and handshakes complete: a warning, absorbed. Keep \
            tcp_syncookies=1, look at the sources, filter them upstream, check the return path.",
    run: find,
};

cause_enum! {
/// What happens to new handshakes on the flooded listener: the effect the
/// severity comes from.
pub enum SynBacklogCause {
    /// Dropped: the SYN queue is at its cap with cookies off, or dropped some.
    SynQueueFull = "syn_queue_full": "Half-open handshakes fill the SYN queue and new ones are \
        dropped (ListenDrops beyond the accept queues' overflows, TCPReqQFullDrop), legitimate \
        clients among them: with tcp_syncookies=0 the queue takes at most the backlog and three \
        quarters of tcp_max_syn_backlog from unproven peers. Fix: turn SYN cookies on, then \
        filter the flood's sources upstream.",
    /// Absorbed: past the backlog SYN cookies answer, and handshakes complete.
    AbsorbedBySynCookies = "absorbed_by_syn_cookies": "A SYN flood (or lost replies) past the \
        listener's backlog, answered with SYN cookies: legitimate handshakes still complete, \
        without TCP options such as window scaling. Not critical while the cookies hold. Fix: \
        look at the sources and filter them upstream; keep tcp_syncookies=1.",
    /// Filling: nothing dropped yet.
    SynQueueFilling = "syn_queue_filling": "Half-open handshakes pile up on a listener, none \
        dropped yet: a flood building up, or clients whose final ACK is lost on the way. Fix: \
        look at the sources and the return path; keep tcp_syncookies=1.",
}
}

/// The counters a SYN queue's overflow moves, and what each says.
/// `ListenDrops` also counts every accept-queue overflow of every listener
/// (`ListenOverflows`), so only what it counts beyond those is the SYN
/// queue's; `ListenOverflows` is quoted beside it to say so.
const DROPS: &[&str] = &["ListenDrops", "TCPReqQFullDrop", "ListenOverflows"];
const COOKIES: &[&str] = &["SyncookiesSent", "TCPReqQFullDoCookies"];

/// What the kernel does with a handshake past the SYN queue's cap.
struct Queue {
    /// The listener's backlog (its Send-Q), when known; with SO_REUSEPORT,
    /// the sum of the listeners' backlogs.
    backlog: Option<u64>,
    /// How many listeners share the address, each with a queue of its own.
    listeners: usize,
    /// `tcp_syncookies`: 0 off, 1 past the backlog, 2 always.
    cookies: Option<u32>,
    /// How many half-open handshakes from unproven peers the queue takes.
    cap: Option<u64>,
}

impl Queue {
    /// The queue of the listeners at one address, from their backlogs (one
    /// each; several with SO_REUSEPORT, each with a SYN queue of its own).
    fn of(k: &Kernel, backlogs: &[u64]) -> Queue {
        let cookies = k.sysctls.tcp_syncookies;
        // Without cookies, the last quarter of tcp_max_syn_backlog is kept for proven peers.
        let unproven = k
            .sysctls
            .tcp_max_syn_backlog
            .filter(|_| cookies == Some(0))
            .map(|m| u64::from(m) - u64::from(m) / 4 + 1);
        let cap = match (backlogs, unproven) {
            ([], u) => u,
            (b, Some(u)) => Some(b.iter().map(|&b| b.min(u)).sum()),
            (b, None) => Some(b.iter().sum()),
        };
        Queue {
            backlog: (!backlogs.is_empty()).then(|| backlogs.iter().sum()),
            listeners: backlogs.len(),
            cookies,
            cap,
        }
    }

    fn cookies_on(&self) -> bool {
        self.cookies.is_some_and(|c| c > 0)
    }
}

pub fn find(cx: &Context) -> Vec<Finding> {
    let mut per_listener: BTreeMap<SocketAddr, Vec<usize>> = BTreeMap::new();
    for (i, s) in cx.sockets() {
        if matches!(s.state(), TcpState::SynRecv | TcpState::NewSynRecv) {
            let key = canonical(
                cx.index
                    .listener_for(&s.local())
                    .map_or(s.local(), |l| l.local()),
            );
            per_listener.entry(key).or_default().push(i);
        }
    }
    // Fewer half-open connections than this are routine at any real load.
    let min = cx.thresholds.syn_backlog_min;
    let moved = moved_counters(cx);
    per_listener
        .into_iter()
        .filter(|(_, v)| v.len() as u64 >= min)
        .map(|(local, sockets)| finding(cx, local, sockets, &moved))
        .collect()
}

/// The SYN-queue counters that moved: by how much over the sampled window
/// (`true`), or their value since the namespace began counting (`false`).
fn moved_counters(cx: &Context) -> Vec<(&'static str, i64, bool)> {
    DROPS
        .iter()
        .chain(COOKIES)
        .filter_map(|&n| {
            if cx.window.is_empty() {
                let v = cx.snapshot.kernel.counter("TcpExt", n)?;
                (v > 0).then_some((n, v, false))
            } else {
                let d = cx.window.counter_delta(cx.snapshot, "TcpExt", n)?;
                (d > 0).then_some((n, d, true))
            }
        })
        .collect()
}

fn finding(
    cx: &Context,
    local: SocketAddr,
    sockets: Vec<usize>,
    moved: &[(&'static str, i64, bool)],
) -> Finding {
    let count = sockets.len() as u64;
    let listeners: Vec<Placed> = cx.index.listeners_at(&local).collect();
    let backlogs: Vec<u64> = listeners
        .iter()
        .filter_map(|l| cx.snapshot.backlog(l))
        .map(u64::from)
        .filter(|&b| b > 0)
        .collect();
    let q = Queue::of(&cx.snapshot.kernel, &backlogs);
    let at_cap = q.cap.is_some_and(|c| count >= c);
    // Counters tell what happens now only over a window; since the
    // namespace began counting, they are context.
    let now = |names: &[&str]| moved.iter().any(|(n, _, w)| *w && names.contains(n));
    let (dropping, cookies) = (syn_queue_drops(moved) > 0, now(COOKIES));
    let (severity, cause, effect) = effect(
        &q,
        count,
        at_cap,
        dropping,
        cookies,
        cx.thresholds.syn_backlog_min,
    );
    let sources: BTreeSet<_> = sockets
        .iter()
        .map(|&i| cx.snapshot.sockets[i].remote().ip())
        .collect();
    let mut evidence = vec![format!(
        "{} (SYN-RECEIVED) on {} from {}{}",
        plural(count, "half-open connection"),
        endpoint(&local),
        plural(sources.len() as u64, "source address"),
        q.cap
            .map(|c| format!("; the SYN queue takes {c} from unproven peers"))
            .unwrap_or_default()
    )];
    evidence.push(queue_line(&q, &cx.snapshot.kernel));
    evidence.push(effect);
    if let Some(line) = counters_line(cx, moved) {
        evidence.push(line);
    }
    if listeners.len() > 1 {
        let holders: Vec<String> = listeners
            .iter()
            .map(|l| who(cx.index.owner(l.at)))
            .collect();
        evidence.push(format!(
            "{} listeners share this address (SO_REUSEPORT): {}; the kernel does not say whose \
             queue these handshakes wait in",
            listeners.len(),
            holders.join(", ")
        ));
    }
    Finding {
        severity,
        count,
        local: Some(local),
        evidence,
        suggestion: suggestion(&q).to_string(),
        side: Some(super::ConnSide::Server),
        cause: Some(cause.into()),
        sockets,
        ..Finding::of(&RULE, Some(TcpState::SynRecv))
    }
    // With several listeners, no one of them can be named.
    .owned_by(match listeners[..] {
        [l] => cx.index.owner(l.at),
        _ => None,
    })
}

/// Handshakes the SYN queue dropped over the sampled window: those
/// `TCPReqQFullDrop` counts, or `ListenDrops` beyond the accept queues'
/// overflows (`ListenOverflows`), which it counts too.
fn syn_queue_drops(moved: &[(&'static str, i64, bool)]) -> i64 {
    let grew = |name: &str| {
        moved
            .iter()
            .find(|(n, _, windowed)| *windowed && *n == name)
            .map_or(0, |&(_, v, _)| v)
    };
    grew("TCPReqQFullDrop").max(grew("ListenDrops") - grew("ListenOverflows"))
}

/// The severity, from what happens to new handshakes, and the line that says it.
fn effect(
    q: &Queue,
    count: u64,
    at_cap: bool,
    dropping: bool,
    cookies: bool,
    min: u64,
) -> (Severity, SynBacklogCause, String) {
    if q.cookies_on() && (at_cap || cookies) {
        return (
            Severity::Warning,
            SynBacklogCause::AbsorbedBySynCookies,
            "absorbed: past the backlog SYN cookies answer, so legitimate handshakes still \
             complete (without TCP options such as window scaling); not critical while the \
             cookies hold"
                .to_string(),
        );
    }
    if !q.cookies_on() && at_cap {
        return (
            Severity::Critical,
            SynBacklogCause::SynQueueFull,
            "the SYN queue is at its cap with SYN cookies off: every new handshake from a peer \
             not yet proven alive is dropped, legitimate clients among them"
                .to_string(),
        );
    }
    if dropping {
        return (
            Severity::Warning,
            SynBacklogCause::SynQueueFull,
            "handshakes were dropped: the SYN queue overflowed".to_string(),
        );
    }
    let half = q
        .cap
        .map_or(count >= min.saturating_mul(4), |c| count * 2 >= c);
    let severity = if half {
        Severity::Warning
    } else {
        Severity::Info
    };
    (
        severity,
        SynBacklogCause::SynQueueFilling,
        "no handshake dropped yet: the SYN queue has room".to_string(),
    )
}

fn queue_line(q: &Queue, k: &Kernel) -> String {
    let cookies = match q.cookies {
        Some(0) => "net.ipv4.tcp_syncookies = 0: past the cap, SYNs are dropped".to_string(),
        Some(n) => format!("net.ipv4.tcp_syncookies = {n}: past the backlog, SYN cookies answer"),
        None => "tcp_syncookies unknown".to_string(),
    };
    let parts = [
        q.backlog.map(|b| match q.listeners {
            1 => format!("listener backlog {b}"),
            n => format!("backlogs of its {n} listeners {b} in all"),
        }),
        k.sysctls
            .tcp_max_syn_backlog
            .map(|m| format!("net.ipv4.tcp_max_syn_backlog = {m}")),
        Some(cookies),
    ];
    parts.into_iter().flatten().collect::<Vec<_>>().join("; ")
}

/// The counters that moved, and since when.
fn counters_line(cx: &Context, moved: &[(&'static str, i64, bool)]) -> Option<String> {
    if moved.is_empty() {
        return None;
    }
    let windowed = moved.iter().any(|&(.., w)| w);
    let shown: Vec<String> = moved
        .iter()
        .map(|(n, v, w)| {
            if *w {
                format!("{n} grew by {v}")
            } else {
                format!("{n} {v}")
            }
        })
        .collect();
    Some(if windowed {
        format!("{} during the sampled window", shown.join(", "))
    } else {
        format!(
            "{}: the namespace's counts for every listener, {}",
            shown.join(", "),
            cx.snapshot.meta.netns.counted_since()
        )
    })
}

fn suggestion(q: &Queue) -> &'static str {
    if q.cookies_on() {
        "Look at where the SYNs come from (few sources: a flood or a broken client; many: lost \
         replies or an overloaded path) and filter floods upstream; keep tcp_syncookies=1."
    } else {
        "Turn SYN cookies on (sysctl net.ipv4.tcp_syncookies=1) so that legitimate handshakes \
         complete during the flood, then look at where the SYNs come from and filter them \
         upstream."
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reuseport_listener_has_a_queue_of_its_own() {
        let mut k = Kernel::default();
        k.sysctls.tcp_syncookies = Some(0);
        k.sysctls.tcp_max_syn_backlog = Some(128);
        // 97 from unproven peers per queue, capped by each backlog.
        assert_eq!(Queue::of(&k, &[511]).cap, Some(97));
        assert_eq!(Queue::of(&k, &[511, 511]).cap, Some(194));
        assert_eq!(Queue::of(&k, &[511, 64]).cap, Some(161));
        assert_eq!(Queue::of(&k, &[]).cap, Some(97));
    }

    #[test]
    fn accept_queue_overflows_are_no_syn_queue_drops() {
        // Another listener's full accept queue: ListenDrops moves with ListenOverflows.
        let overflow = [("ListenDrops", 8, true), ("ListenOverflows", 8, true)];
        assert_eq!(syn_queue_drops(&overflow), 0);
        // Drops beyond the overflows, or counted as such, are the SYN queue's.
        let mixed = [("ListenDrops", 20, true), ("ListenOverflows", 8, true)];
        assert_eq!(syn_queue_drops(&mixed), 12);
        assert_eq!(syn_queue_drops(&[("TCPReqQFullDrop", 3, true)]), 3);
        // Counts since the namespace began are context, not what happens now.
        assert_eq!(syn_queue_drops(&[("ListenDrops", 9, false)]), 0);
    }
}

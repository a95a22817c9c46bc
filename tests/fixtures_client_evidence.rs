//! Client-side evidence on snapshots saved from the real patterns of
//! `client_evidence_live.rs` (`connleak --save`), edited for what is slow to
//! build for real: hours-old pools, fd pressure, growth over a window, and a
//! peer that vanished instead of one that does not read. No root needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::load;
use connleak::diagnose::{
    BlockedSendCause, CloseWaitCause, ConnSide, Finding, Index, Severity, Thresholds, Window,
    diagnose, diagnose_indexed,
};
use connleak::snapshot::{Snapshot, Timer};
use connleak::tcp::TcpState;

fn only<'a>(findings: &'a [Finding], kind: &str) -> &'a Finding {
    let f: Vec<&Finding> = findings.iter().filter(|f| f.kind == kind).collect();
    assert_eq!(f.len(), 1, "one {kind} expected: {findings:#?}");
    f[0]
}

fn close_wait(s: &mut Snapshot) -> impl Iterator<Item = &mut connleak::snapshot::Socket> {
    s.sockets
        .iter_mut()
        .filter(|x| x.state() == TcpState::CloseWait)
}

/// Two hours since nginx closed them.
fn hours_old(s: &mut Snapshot) {
    for sock in close_wait(s) {
        sock.edit(|sock| {
            if let Some(t) = sock.tcp_info.as_mut() {
                t.last_ack_recv_ms = Some(7_200_000);
            }
        });
    }
}

#[test]
fn tls_pool_is_a_stale_pool_whose_bytes_are_the_close_notify() {
    let s = load("tls-pool.json");
    let found = diagnose(&s, Thresholds::default());
    let f = only(&found, "close_wait_leak");
    assert_eq!(f.side, Some(ConnSide::Client));
    assert_eq!(f.cause, Some(CloseWaitCause::UnreadAfterPeerClose.into()));
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.count, 10);
    assert!(
        f.evidence
            .iter()
            .any(|e| e.starts_with("10 with Recv-Q > 1: 31 bytes") && e.contains("close_notify")),
        "{f:#?}"
    );
    assert!(!f.suggestion.contains("thread dump"));
    // Any Recv-Q above 1 on the client side is unread since the peer closed, whatever its size.
    let mut odd = s.clone();
    for sock in close_wait(&mut odd) {
        sock.edit(|sock| sock.recv_q = 400);
    }
    let found = diagnose(&odd, Thresholds::default());
    let f = only(&found, "close_wait_leak");
    assert_eq!(f.cause, Some(CloseWaitCause::UnreadAfterPeerClose.into()));
    assert!(f.evidence.iter().any(|e| e.contains("399 bytes")), "{f:#?}");
    assert!(!f.evidence.iter().any(|e| e.contains("close_notify")));
}

#[test]
fn a_flat_stale_pool_is_not_critical_by_age_alone() {
    let mut s = load("tls-pool.json");
    hours_old(&mut s);
    let t = Thresholds::default();
    let found = diagnose(&s, t);
    let f = only(&found, "close_wait_leak");
    assert_eq!(f.severity, Severity::Warning);
    assert!(
        f.evidence
            .iter()
            .any(|e| e.starts_with("not critical by age alone")),
        "{f:#?}"
    );
    // Far beyond a pool: critical by count.
    let by_count = Thresholds {
        close_wait_crit: 10,
        ..t
    };
    assert_eq!(
        only(&diagnose(&s, by_count), "close_wait_leak").severity,
        Severity::Critical
    );
    // Pressing on the fd limit (other fds fill most of it, so fd_exhaustion
    // leaves the pool to this rule): critical.
    let mut pressed = s.clone();
    let pid = f.pid.unwrap();
    for p in pressed.processes.iter_mut().filter(|p| p.pid == pid) {
        (p.fds, p.fd_soft_limit) = (100, Some(110));
    }
    let found = diagnose(&pressed, t);
    let f = only(&found, "close_wait_leak");
    assert_eq!(f.severity, Severity::Critical, "{found:#?}");
    assert!(
        f.evidence
            .iter()
            .any(|e| e.ends_with("pressing on the fd limit, critical"))
    );
    // The same age on a client that read EOF and never closed: a leak, critical by age.
    let mut leak = s.clone();
    for sock in close_wait(&mut leak) {
        sock.edit(|sock| sock.recv_q = 0);
    }
    let f = diagnose(&leak, t);
    let f = only(&f, "close_wait_leak");
    assert_eq!(f.cause, Some(CloseWaitCause::NeverClosedAfterEof.into()));
    assert_eq!(f.severity, Severity::Critical);
}

/// Growth over a sampled window makes the stale pool critical.
#[test]
fn a_growing_stale_pool_is_critical() {
    let now = load("tls-pool.json");
    let mut before = now.clone();
    before.meta.taken_at_ms -= 2000;
    let mut dropped = 0;
    before.sockets.retain(|x| {
        let drop = x.state() == TcpState::CloseWait && dropped < 5;
        dropped += usize::from(drop);
        !drop
    });
    let t = Thresholds::default();
    let mut window = Window::keeping(2);
    let earlier = diagnose(&before, t);
    window.record(&before, &earlier, std::iter::empty());
    let found = diagnose_indexed(&now, &Index::new(&now), t, &window);
    let f = only(&found, "close_wait_leak");
    assert_eq!(f.severity, Severity::Critical, "{f:#?}");
    assert!(f.trend.as_ref().is_some_and(|tr| tr.growing));
}

fn stalled(s: &Snapshot) -> Finding {
    let t = Thresholds {
        stalled_close_warn: 5,
        ..Thresholds::default()
    };
    only(&diagnose(s, t), "stalled_close").clone()
}

fn fin_wait1(s: &mut Snapshot) -> impl Iterator<Item = &mut connleak::snapshot::Socket> {
    s.sockets
        .iter_mut()
        .filter(|x| x.state() == TcpState::FinWait1)
}

#[test]
fn zero_window_is_a_peer_not_reading_and_retransmission_a_peer_gone() {
    let s = load("zero-window.json");
    assert!(
        diagnose(&s, Thresholds::default())
            .iter()
            .all(|f| f.kind != "stalled_close")
    );
    let f = stalled(&s);
    assert_eq!(f.state, Some(TcpState::FinWait1));
    assert!(f.evidence[1].starts_with("6 with the peer's receive window closed"));
    assert!(f.evidence[1].contains("127.0.0.1:7100 held by pid"));
    assert!(f.suggestion.contains("alive and do not read"));
    // The same sockets retransmitting into silence: the peer or the path is gone.
    let mut gone = s.clone();
    for sock in fin_wait1(&mut gone) {
        sock.edit(|sock| {
            sock.timer = Timer::Retransmit;
            let t = sock.tcp_info.as_mut().unwrap();
            (t.retransmits, t.backoff) = (5, 5);
        });
    }
    let f = stalled(&gone);
    assert!(
        f.evidence[1].starts_with("6 retransmitting unanswered with backoff (up to 5)"),
        "{f:#?}"
    );
    assert!(!f.evidence.iter().any(|e| e.contains("not reading")));
    assert!(f.suggestion.contains("firewall"));
    // Window probes nobody answers: gone as well.
    let mut unanswered = s.clone();
    for sock in fin_wait1(&mut unanswered) {
        sock.edit(|sock| sock.tcp_info.as_mut().unwrap().probes = 4);
    }
    assert!(stalled(&unanswered).evidence[1].starts_with("6 retransmitting unanswered"));
}

/// A connection stuck sending is not idle; the same one with no timer is.
#[test]
fn idle_rule_skips_sockets_with_a_timer() {
    let mut s = load("zero-window.json");
    for sock in fin_wait1(&mut s) {
        sock.edit(|sock| {
            sock.state = TcpState::Established;
            let t = sock.tcp_info.as_mut().unwrap();
            (t.last_data_recv_ms, t.last_data_sent_ms) = (Some(7_200_000), Some(7_200_000));
        });
    }
    let idle = |s: &Snapshot| {
        diagnose(s, Thresholds::default())
            .iter()
            .filter(|f| f.kind == "no_keepalive_idle")
            .count()
    };
    assert_eq!(idle(&s), 0);
    for sock in s
        .sockets
        .iter_mut()
        .filter(|x| x.timer() == Timer::ZeroWindowProbe)
    {
        sock.edit(|sock| sock.timer = Timer::None);
    }
    assert_eq!(idle(&s), 1);
}

/// Open connections with a standing Send-Q: a closed window answered is a
/// peer not reading, retransmissions a peer gone; a short stall is nothing.
#[test]
fn blocked_send_tells_not_reading_from_gone() {
    let mut s = load("zero-window.json");
    for sock in fin_wait1(&mut s) {
        sock.edit(|sock| {
            sock.state = TcpState::Established;
            sock.tcp_info.as_mut().unwrap().last_data_sent_ms = Some(60_000);
        });
    }
    let f = only(&diagnose(&s, Thresholds::default()), "blocked_send").clone();
    assert_eq!(f.cause, Some(BlockedSendCause::PeerNotReading.into()));
    assert_eq!((f.count, f.severity), (6, Severity::Warning));
    assert!(f.evidence[0].contains("toward pid "), "{f:#?}");
    assert!(f.evidence[1].contains("127.0.0.1:7100 (6)"), "{f:#?}");
    assert_eq!(f.peers.len(), 1, "one peer process: {f:#?}");
    let mut gone = s.clone();
    for sock in gone
        .sockets
        .iter_mut()
        .filter(|x| x.timer() == Timer::ZeroWindowProbe)
    {
        sock.edit(|sock| {
            sock.timer = Timer::Retransmit;
            let t = sock.tcp_info.as_mut().unwrap();
            (t.retransmits, t.last_ack_recv_ms) = (6, Some(90_000));
        });
    }
    let f = only(&diagnose(&gone, Thresholds::default()), "blocked_send").clone();
    assert_eq!(f.cause, Some(BlockedSendCause::PeerGone.into()));
    assert_eq!(f.oldest_s, Some(90));
    // Ten seconds of a closed window is backpressure under the default 30 s.
    for sock in stuck_on_window(&mut s) {
        sock.edit(|sock| sock.tcp_info.as_mut().unwrap().last_data_sent_ms = Some(10_000));
    }
    assert!(
        diagnose(&s, Thresholds::default())
            .iter()
            .all(|f| f.kind != "blocked_send")
    );
}

fn stuck_on_window(s: &mut Snapshot) -> impl Iterator<Item = &mut connleak::snapshot::Socket> {
    s.sockets
        .iter_mut()
        .filter(|x| x.timer() == Timer::ZeroWindowProbe)
}

/// Attempts toward a destination that drops SYNs; the same attempts still in
/// their first round trip (no SYN retransmitted yet) are no finding, and
/// fewer than --syn-sent-warn are none either.
#[test]
fn connect_unanswered_needs_retransmitted_syns() {
    let s = load("syn-sent.json");
    let found = diagnose(&s, Thresholds::default());
    let f = only(&found, "connect_unanswered");
    assert_eq!((f.count, f.severity), (8, Severity::Warning));
    assert_eq!(f.remote, Some("10.99.0.2:5432".parse().unwrap()));
    assert_eq!(f.side, Some(ConnSide::Client));
    let crit = Thresholds {
        syn_sent_crit: 8,
        ..Thresholds::default()
    };
    assert_eq!(
        only(&diagnose(&s, crit), "connect_unanswered").severity,
        Severity::Critical
    );
    let mut fresh = s.clone();
    for sock in &mut fresh.sockets {
        sock.edit(|sock| sock.tcp_info.as_mut().unwrap().retransmits = 0);
    }
    assert!(diagnose(&fresh, Thresholds::default()).is_empty());
    let few = Thresholds {
        syn_sent_warn: 9,
        syn_sent_crit: 100,
        ..Thresholds::default()
    };
    assert!(diagnose(&s, few).is_empty());
}

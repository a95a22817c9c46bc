//! `closed_not_released` on saved snapshots: leaked CLOSE-WAIT sockets that
//! went on to CLOSE (reset or timeout) leave the socket table and only the
//! fd count and `closed_tcp_fds` remain. No root needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::load;
use connleak::diagnose::{
    FdCause, Finding, Severity, Thresholds, UnreleasedCause, Window, diagnose,
};
use connleak::report::Report;
use connleak::snapshot::Snapshot;
use connleak::tcp::TcpState;

fn of_kind<'a>(findings: &'a [Finding], kind: &str) -> Vec<&'a Finding> {
    findings.iter().filter(|f| f.kind == kind).collect()
}

/// `fd-limit.json` after its 240 CLOSE-WAIT sockets were reset: they are
/// gone from the table and counted on the process instead.
fn reset_fd_limit() -> Snapshot {
    let mut s = load("fd-limit.json");
    let gone: Vec<u64> = s
        .sockets
        .iter()
        .filter(|x| x.state() == TcpState::CloseWait)
        .map(|x| x.inode())
        .collect();
    s.sockets.retain(|x| x.state() != TcpState::CloseWait);
    let p = &mut s.processes[0];
    p.socket_inodes.retain(|i| !gone.contains(i));
    p.closed_tcp_fds = u32::try_from(gone.len()).unwrap();
    s
}

#[test]
fn closed_sockets_near_the_fd_limit_are_critical_and_explain_emfile() {
    let s = reset_fd_limit();
    let all = diagnose(&s, Thresholds::default());
    let pid = s.processes[0].pid;
    let closed = of_kind(&all, "closed_not_released");
    assert_eq!(closed.len(), 1, "{all:#?}");
    assert_eq!((closed[0].pid, closed[0].count), (Some(pid), 240));
    // 240 of a soft limit of 256: on its way to EMFILE from this leak alone.
    assert_eq!(closed[0].severity, Severity::Critical);
    assert!(closed[0].evidence.iter().any(|e| e.contains("93% of it")));
    assert!(closed[0].state.is_none() && closed[0].local.is_none());
    let fd = of_kind(&all, "fd_exhaustion");
    assert_eq!(fd.len(), 1, "{all:#?}");
    assert_eq!(fd[0].cause, Some(FdCause::ClosedNotReleased.into()));
    assert!(
        fd[0]
            .evidence
            .iter()
            .any(|e| e.contains("240 TCP sockets in no table (closed_not_released)")),
        "{:#?}",
        fd[0].evidence
    );
    assert!(
        fd[0]
            .evidence
            .iter()
            .any(|e| e.starts_with("240 of them are TCP sockets"))
    );
    assert!(fd[0].suggestion.contains("closed_not_released"));
    // The JSON carries the count on the process.
    let r = serde_json::to_value(Report::build(&s, Thresholds::default())).unwrap();
    assert_eq!(r["processes"][0]["closed_tcp_fds"], 240);
}

#[test]
fn a_few_closed_sockets_warn_from_the_threshold() {
    let mut s = load("leak.json");
    s.processes[0].closed_tcp_fds = 9;
    let graded = |s: &Snapshot| {
        let all = diagnose(s, Thresholds::default());
        of_kind(&all, "closed_not_released")
            .first()
            .map(|f| f.severity)
    };
    assert_eq!(graded(&s), Some(Severity::Info));
    s.processes[0].closed_tcp_fds = 10;
    assert_eq!(graded(&s), Some(Severity::Warning));
    // The CLOSE-WAIT leak it comes from is named.
    let all = diagnose(&s, Thresholds::default());
    let f = of_kind(&all, "closed_not_released")[0];
    assert!(
        f.evidence
            .iter()
            .any(|e| e.contains("40 CLOSE-WAIT sockets"))
    );
}

/// No process with such sockets, no finding, and the JSON has no new field.
#[test]
fn no_closed_sockets_no_finding() {
    for name in ["leak.json", "fd-limit.json", "pool.json", "backlog.json"] {
        let s = load(name);
        assert!(of_kind(&diagnose(&s, Thresholds::default()), "closed_not_released").is_empty());
        let r = serde_json::to_value(Report::build(&s, Thresholds::default())).unwrap();
        assert!(r["processes"][0].get("closed_tcp_fds").is_none(), "{name}");
    }
}

/// Over a sampled window the count per process gets its trend, and steady
/// growth raises the severity.
#[test]
fn growth_over_a_window_raises_it() {
    let mut s = load("leak.json");
    let mut window = Window::keeping(3);
    for (i, n) in [10u32, 20, 30].into_iter().enumerate() {
        s.meta.taken_at_ms += 1000 * i as u64;
        s.processes[0].closed_tcp_fds = n;
        let r = Report::build_in(&s, Thresholds::default(), &window);
        if i == 2 {
            let f = of_kind(&r.findings, "closed_not_released")[0];
            let trend = f.trend.as_ref().unwrap();
            assert_eq!(trend.counts, [10, 20, 30]);
            assert!(trend.growing);
            assert_eq!(f.severity, Severity::Critical);
        }
        r.record(&s, &mut window);
    }
}

/// A snapshot saved before the field existed still loads (the field defaults to 0).
#[test]
fn old_snapshots_load() {
    let s = load("leak.json");
    assert_eq!(s.processes[0].closed_tcp_fds, 0);
    assert!(s.kernel.sockstat.is_none());
}

/// Two clients that kept their sockets after connect() failed, saved from
/// a real run (`tests/unreleased_live.rs` builds it): one toward a host
/// whose answers never came back, one toward a local port that refused.
#[test]
fn failed_connects_are_told_with_their_destinations() {
    let s = load("failed-connects.json");
    let all = diagnose(&s, Thresholds::default());
    let closed = of_kind(&all, "closed_not_released");
    assert_eq!(closed.len(), 2, "{all:#?}");
    for f in &closed {
        assert_eq!(
            f.cause,
            Some(UnreleasedCause::ConnectFailed.into()),
            "{f:#?}"
        );
        assert!(f.suggestion.contains("connect() fails"), "{f:#?}");
        assert!(
            !f.evidence
                .iter()
                .any(|e| e.contains("a write after the peer")),
            "{f:#?}"
        );
    }
    let timed_out = closed
        .iter()
        .find(|f| f.count == 6)
        .expect("the 6 timed out");
    assert_eq!(timed_out.peers.len(), 1);
    assert_eq!(timed_out.peers[0].host.to_string(), "10.64.0.2");
    assert_eq!(timed_out.peers[0].connections, 6);
    assert!(
        timed_out
            .evidence
            .iter()
            .any(|e| e.contains("10.64.0.2:5432 (3, ETIMEDOUT unread)")),
        "{:#?}",
        timed_out.evidence
    );
    let refused = closed.iter().find(|f| f.count == 4).expect("the 4 refused");
    assert!(
        refused
            .evidence
            .iter()
            .any(|e| e.contains("127.0.0.1:7398 (2, ECONNREFUSED unread)")),
        "{:#?}",
        refused.evidence
    );
}

/// The same snapshot as a host without the BPF socket iterator reads it:
/// the sockets are counted, how they ended is not known, and the finding
/// says so instead of guessing a cause.
#[test]
fn without_the_sockets_themselves_no_cause_is_guessed() {
    let mut s = load("failed-connects.json");
    for p in &mut s.processes {
        p.closed_tcp.clear();
    }
    let all = diagnose(&s, Thresholds::default());
    let closed = of_kind(&all, "closed_not_released");
    assert_eq!(closed.len(), 2, "{all:#?}");
    for f in &closed {
        assert_eq!(f.cause, None, "{f:#?}");
        assert!(f.peers.is_empty());
        assert!(
            f.evidence
                .iter()
                .any(|e| e.contains("was not read") && e.contains("a connect() that failed")),
            "{:#?}",
            f.evidence
        );
    }
}

//! The close_wait_leak rule and the renderers on snapshots saved from real
//! leaks (`connleak --save`), run without root. Edge cases that are slow to
//! build for real (hours-old sockets, huge counts, hostile names) are made by
//! editing a real snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{listener_pid, load};
use connleak::diagnose::{CloseWaitCause, ConnSide, Severity, Thresholds, diagnose};
use connleak::render::table::{Style, write};
use connleak::report::{Report, Status};
use connleak::snapshot::Snapshot;
use connleak::tcp::TcpState;

fn table(report: &Report) -> String {
    let mut out = Vec::new();
    write(
        &mut out,
        report,
        Style {
            color: false,
            width: 80,
            live: false,
        },
    )
    .unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn leak_fixture_is_a_server_that_never_closes() {
    let s = load("leak.json");
    let f = diagnose(&s, Thresholds::default());
    assert_eq!(f.len(), 1);
    let f = &f[0];
    assert_eq!(f.kind, "close_wait_leak");
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.pid, Some(listener_pid(&s, 7001)));
    assert_eq!(f.count, 40);
    assert_eq!(f.side, Some(ConnSide::Server));
    assert_eq!(f.local, Some("127.0.0.1:7001".parse().unwrap()));
    assert_eq!(f.cause, Some(CloseWaitCause::NeverClosedAfterEof.into()));
    assert!(f.evidence.iter().any(|e| e.starts_with("40 with Recv-Q 0")));
}

#[test]
fn severity_follows_count_and_age() {
    let mut s = load("leak.json");
    let t = Thresholds::default();
    let crit_by_count = Thresholds {
        close_wait_crit: 40,
        ..t
    };
    assert_eq!(diagnose(&s, crit_by_count)[0].severity, Severity::Critical);
    let info = Thresholds {
        close_wait_warn: 41,
        ..t
    };
    assert_eq!(diagnose(&s, info)[0].severity, Severity::Info);
    assert_eq!(Report::build(&s, info).status, Status::Ok);
    // All younger than the minimum age: still being closed, nothing to say.
    let young = Thresholds {
        close_wait_min_age: 3600,
        ..t
    };
    assert!(diagnose(&s, young).is_empty());
    // Two hours stuck: critical although the count is modest.
    for sock in s
        .sockets
        .iter_mut()
        .filter(|x| x.state() == TcpState::CloseWait)
    {
        sock.edit(|sock| {
            if let Some(info) = sock.tcp_info.as_mut() {
                info.last_ack_recv_ms = Some(7_200_000);
            }
        });
    }
    let f = diagnose(&s, t);
    assert_eq!(f[0].severity, Severity::Critical);
    assert_eq!(f[0].oldest_s, Some(7200));
}

#[test]
fn unowned_close_wait_is_still_reported() {
    let mut s = load("leak.json");
    s.processes.clear();
    s.unreadable.processes_denied = 1;
    let f = diagnose(&s, Thresholds::default());
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].pid, None);
    assert_eq!(f[0].count, 40);
    assert!(table(&Report::build(&s, Thresholds::default())).contains("permission denied"));
}

#[test]
fn hostile_process_names_never_reach_the_terminal_raw() {
    let mut s = load("leak.json");
    s.processes[0].comm = "\x1b]0;owned\x07\x1b[2J\nfake line".to_string();
    let report = Report::build(&s, Thresholds::default());
    let text = table(&report);
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text}");
    assert!(
        text.contains("\\e]0;owned\\x07\\e[2J\\nfake line"),
        "{text}"
    );
    // JSON keeps the name intact, escaped by JSON's own rules.
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\\u001b]0;owned\\u0007\\u001b[2J\\nfake line"));
}

#[test]
fn save_format_round_trips() {
    let s = load("pool.json");
    let text = serde_json::to_vec(&s).unwrap();
    assert_eq!(Snapshot::from_json(&text).unwrap(), s);
}

//! Accept queues with real sockets: connections whose clients gave up before
//! `accept()` are told as queued, not held (`never_accepted`), and
//! `--source proc` never invents a backlog. Needs root (skips visibly).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Lab, findings};
use serde_json::Value;

/// Two connections accepted and held, nine queued and given up on: each
/// socket told once, the queued ones never as "holds".
#[test]
fn queued_connections_are_not_held() {
    let Some(mut lab) = Lab::new("never-accepted") else {
        return;
    };
    let server = lab.spawn(
        "backlog_server",
        &["--port", "7003", "--n", "64", "--churn", "2"],
    );
    lab.spawn(
        "clients",
        &[
            "--port", "7003", "--n", "11", "--kind", "close", "--wait", "0.3",
        ],
    );
    // accept_queue_full stays info (queue not full, fewer given up than 20),
    // so the CLOSE_WAIT sockets are close_wait_leak's to tell.
    let report = lab.report(&[
        "--unread-warn",
        "20",
        "--close-wait-warn",
        "5",
        "--close-wait-min-age",
        "0",
    ]);
    let f = findings(&report, "close_wait_leak");
    assert_eq!(f.len(), 1, "{report:#}");
    let queued = f[0];
    assert_eq!(queued["cause"], "never_accepted");
    assert_eq!(queued["pid"], server["pid"]);
    assert_eq!(queued["count"], 9);
    assert_eq!(queued["severity"], "warning");
    assert_eq!(queued["local"], "127.0.0.1:7003");
    let first = queued["evidence"][0].as_str().unwrap();
    assert!(
        first.contains("9 CLOSE_WAIT connections queued, not held"),
        "{first}"
    );
    // The two accepted ones are told once, by the more specific worker pool
    // finding (their requests were never read), not again as a leak.
    let held = findings(&report, "worker_pool_exhausted");
    assert_eq!(held.len(), 1, "{report:#}");
    assert_eq!(held[0]["count"], 2);
    let all = report["findings"].to_string();
    assert!(!all.contains("holds 11"), "{all}");
}

/// `/proc/net/tcp` shows no backlog for a listener: "backlog unknown", never
/// "a backlog of 0"; sock_diag still gives it.
#[test]
fn proc_source_says_backlog_unknown() {
    let Some(mut lab) = Lab::new("proc-backlog") else {
        return;
    };
    lab.spawn(
        "backlog_server",
        &["--port", "7003", "--n", "8", "--churn", "2"],
    );
    lab.spawn(
        "clients",
        &[
            "--port", "7003", "--n", "11", "--kind", "close", "--wait", "0.3",
        ],
    );
    let evidence = |report: &Value| -> String {
        let f = findings(report, "accept_queue_full");
        assert_eq!(f.len(), 1, "{report:#}");
        f[0]["evidence"][0].as_str().unwrap().to_string()
    };
    let proc = lab.report(&["--source", "proc"]);
    assert_eq!(proc["source"], "proc_net");
    let line = evidence(&proc);
    assert!(line.contains("accept queue 9 (backlog unknown"), "{line}");
    assert!(!line.contains("backlog of 0"), "{line}");
    let netlink = lab.report(&["--source", "netlink"]);
    let line = evidence(&netlink);
    assert!(line.contains("accept queue 9 of a backlog of 8"), "{line}");
}

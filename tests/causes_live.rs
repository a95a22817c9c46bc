//! The cause catalogue on real sockets: each pattern built in its own network
//! namespace must be diagnosed with the right kind and owner (or endpoint),
//! and with nothing else at warning level. Needs root (skips visibly otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Lab, the_warning, warnings};
use std::time::Duration;

/// Four workers blocked reading idle clients; later requests are never read.
#[test]
fn fixed_pool_blocked_on_idle_clients() {
    let Some(mut lab) = Lab::new("pool") else {
        return;
    };
    let server = lab.spawn("pool_server", &["--port", "7002", "--n", "4"]);
    lab.spawn("clients", &["--port", "7002", "--n", "4", "--kind", "idle"]);
    std::thread::sleep(Duration::from_millis(300));
    lab.spawn(
        "clients",
        &[
            "--port", "7002", "--n", "12", "--kind", "close", "--wait", "0.3",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let report = lab.report(&[]);
    let f = the_warning(&report, "worker_pool_exhausted");
    assert_eq!(f["pid"], server["pid"]);
    assert_eq!(f["local"], "127.0.0.1:7002");
    assert_eq!(f["count"], 12);
    assert_eq!(f["cause"], "workers_blocked_on_reads");
    let evidence = f["evidence"].to_string();
    assert!(
        evidence.contains("4 of 5 threads blocked in recvfrom()"),
        "{evidence}"
    );
}

/// Workers stuck on a lock, not on their clients: the same finding, another cause.
#[test]
fn fixed_pool_blocked_on_a_lock() {
    let Some(mut lab) = Lab::new("pool-lock") else {
        return;
    };
    let server = lab.spawn(
        "pool_server",
        &["--port", "7002", "--n", "4", "--kind", "lock"],
    );
    lab.spawn(
        "clients",
        &[
            "--port", "7002", "--n", "10", "--kind", "close", "--wait", "0.3",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let report = lab.report(&[]);
    let f = the_warning(&report, "worker_pool_exhausted");
    assert_eq!(f["pid"], server["pid"]);
    assert_eq!(f["count"], 10);
    assert_eq!(f["cause"], "workers_blocked_elsewhere");
    assert!(
        f["evidence"]
            .to_string()
            .contains("4 of 5 threads in futex()"),
        "{f:#}"
    );
}

/// A listener with backlog 8 that accepted two connections and stopped.
#[test]
fn listener_that_stopped_accepting() {
    let Some(mut lab) = Lab::new("backlog") else {
        return;
    };
    let server = lab.spawn(
        "backlog_server",
        &["--port", "7003", "--n", "8", "--churn", "2"],
    );
    // Two accepted, then backlog + 1 queued: every connect completes.
    lab.spawn(
        "clients",
        &[
            "--port", "7003", "--n", "11", "--kind", "close", "--wait", "0.3",
        ],
    );
    let report = lab.report(&[]);
    let f = the_warning(&report, "accept_queue_full");
    assert_eq!(f["pid"], server["pid"]);
    assert_eq!(f["local"], "127.0.0.1:7003");
    assert!(
        f["evidence"][0]
            .as_str()
            .unwrap()
            .contains("accept queue 9 of a backlog of 8")
    );
}

/// Short connections to one destination with the port range narrowed to 500.
#[test]
fn client_time_wait_eats_the_port_range() {
    let Some(mut lab) = Lab::new("tw-client") else {
        return;
    };
    lab.exec(&["sysctl", "-qw", "net.ipv4.ip_local_port_range=50000 50499"]);
    lab.spawn("echo_server", &["--port", "7004"]);
    let client = lab.spawn("churn", &["--port", "7004", "--n", "420", "--wait", "0"]);
    let report = lab.report(&[]);
    let f = the_warning(&report, "ephemeral_port_exhaustion");
    assert_eq!(f["remote"], "127.0.0.1:7004");
    // The headline names the client, as JSON and check do.
    assert_eq!(f["pid"], client["pid"]);
    let head = f["evidence"][0].as_str().unwrap();
    assert!(head.contains(&format!("pid {}", client["pid"])), "{head}");
    assert!(f["count"].as_u64().unwrap() >= 420);
    // tcp_tw_reuse=2 (the default) lets loopback reuse TIME_WAIT: critical lowered to warning.
    assert_eq!(f["severity"], "warning");
    assert!(f["evidence"].to_string().contains("tcp_tw_reuse"));
    // The same volume spread over many destinations is no warning.
    let spread = lab.report(&["--ports-warn", "100", "--ports-crit", "100"]);
    assert!(warnings(&spread).is_empty(), "{spread:#}");
}

/// A server that closes first leaves TIME_WAIT on its own port: info, owned by it.
#[test]
fn server_closing_first_is_noted() {
    let Some(mut lab) = Lab::new("tw-server") else {
        return;
    };
    let server = lab.spawn("http10_server", &["--port", "7005"]);
    lab.spawn(
        "churn",
        &[
            "--port", "7005", "--n", "40", "--wait", "0", "--kind", "eof",
        ],
    );
    let report = lab.report(&[]);
    assert_eq!(report["status"], "ok", "{report:#}");
    let f = common::findings(&report, "server_active_close");
    assert_eq!(f.len(), 1, "{report:#}");
    assert_eq!(f[0]["pid"], server["pid"]);
    assert_eq!(f[0]["local"], "127.0.0.1:7005");
    assert!(f[0]["count"].as_u64().unwrap() >= 40);
}

/// Clients that half-close and a server that never closes: both named.
#[test]
fn half_closed_connections_pair_up() {
    let Some(mut lab) = Lab::new("halfclose") else {
        return;
    };
    let server = lab.spawn("leak_server", &["--port", "7006"]);
    let clients = lab.spawn(
        "clients",
        &["--port", "7006", "--n", "12", "--kind", "halfclose"],
    );
    std::thread::sleep(Duration::from_millis(200));
    let report = lab.report(&[]);
    let f = the_warning(&report, "half_closed_peer");
    assert_eq!(f["pid"], server["pid"]);
    assert_eq!(f["peer_pid"], clients["pid"]);
    assert_eq!(f["count"], 12);
    assert_eq!(f["local"], "127.0.0.1:7006");
}

/// A leaking server with RLIMIT_NOFILE 64 fills its fd table with CLOSE_WAIT.
#[test]
fn leak_that_fills_the_fd_table() {
    let Some(mut lab) = Lab::new("fd-limit") else {
        return;
    };
    let server = lab.spawn("leak_server", &["--port", "7007", "--nofile", "64"]);
    lab.spawn(
        "clients",
        &["--port", "7007", "--n", "57", "--kind", "close"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let report = lab.report(&[]);
    let f = the_warning(&report, "fd_exhaustion");
    assert_eq!(f["pid"], server["pid"]);
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["cause"], "close_wait_leak");
    assert!(f["evidence"].to_string().contains("EMFILE"));
}

/// TIME_WAIT grows during a service's first minute and then levels off: a
/// sampled run during that warm-up projects where it levels off and judges
/// that against the limit, instead of calling the growth a leak.
#[test]
fn time_wait_warm_up_is_not_a_leak() {
    let Some(mut lab) = Lab::new("tw-warmup") else {
        return;
    };
    let server = lab.spawn("http10_server", &["--port", "7015"]);
    lab.spawn(
        "churn",
        &[
            "--port", "7015", "--n", "0", "--wait", "0.02", "--kind", "eof",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let report = lab.report(&["--samples", "3", "--interval", "1"]);
    let f = common::findings(&report, "server_active_close");
    assert_eq!(f.len(), 1, "{report:#}");
    assert_eq!(f[0]["pid"], server["pid"]);
    assert_eq!(f[0]["trend"]["growing"], true, "{:#}", f[0]);
    assert_eq!(f[0]["severity"], "info", "{:#}", f[0]);
    let evidence = f[0]["evidence"].to_string();
    assert!(evidence.contains("levels off near"), "{evidence}");
    assert!(evidence.contains("not a leak"), "{evidence}");
    assert!(!evidence.contains("a leak, not a burst"), "{evidence}");
    // Seen in every sample of a 2 s window is not stuck for a 60 s timer.
    assert!(!evidence.contains("stuck for at least"), "{evidence}");
    assert_eq!(report["status"], "ok", "{report:#}");
}

//! `closed_not_released` with real sockets: connections reset by the peer
//! after the server wrote its reply, whose sockets the server never closes,
//! leave every TCP table but stay in the server's fd table. Needs root (skips
//! visibly otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Lab, findings, process};
use serde_json::Value;

/// The server holds 12 sockets the peer reset, and nothing else TCP: no
/// table shows them, the fd scan and the protocol name do.
#[test]
fn reset_sockets_never_closed_are_found() {
    let Some(mut lab) = Lab::new("unreleased") else {
        return;
    };
    let server = lab.spawn(
        "reset_server",
        &["--port", "7001", "--n", "12", "--kind", "leak"],
    );
    let report = lab.report(&[]);
    let f = findings(&report, "closed_not_released");
    assert_eq!(f.len(), 1, "one closed_not_released finding: {report:#}");
    let f = f[0];
    assert_eq!(f["pid"], server["pid"]);
    assert_eq!(f["count"], 12);
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["local"], Value::Null);
    // The reply was written after the client had closed: the kernel still
    // holds that it went unacknowledged and ended in a reset.
    assert_eq!(f["cause"], "reset_after_write", "{f:#}");
    assert!(
        f["evidence"]
            .to_string()
            .contains("ended with data they sent unacknowledged: 12")
    );
    assert!(
        f["evidence"][0]
            .as_str()
            .unwrap()
            .contains("12 TCP sockets that are in no TCP table"),
        "{f:#}"
    );
    // None of them is in the socket table: the server holds no TCP socket there.
    let p = process(&report, &server["pid"]);
    assert_eq!(p["closed_tcp_fds"], 12);
    assert_eq!(p["states"], serde_json::json!({}));
    assert!(
        report["summary"]["states"]["CLOSE_WAIT"].is_null(),
        "{report:#}"
    );

    // The table shows the column, `check` the finding, Prometheus the series.
    let table = lab.connleak_output(&["--color", "never"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("UNRELEASED"), "{text}");
    let check = lab.connleak_output(&["check"]);
    let line = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{line}");
    assert!(line.contains("closed_not_released"), "{line}");
    let prom = lab.connleak_output(&["--prometheus"]);
    let prom = String::from_utf8_lossy(&prom.stdout);
    let series = format!(
        "connleak_process_closed_tcp_fds{{pid=\"{}\",comm=\"python3\"}} 12",
        server["pid"]
    );
    assert!(prom.contains(&series), "{prom}");

    // Below the threshold it is noted, not a warning.
    let quiet = lab.report(&["--unreleased-warn", "13"]);
    let f = findings(&quiet, "closed_not_released");
    assert_eq!(f[0]["severity"], "info");
}

/// The same traffic against a server that closes its reset sockets: nothing
/// to report.
#[test]
fn reset_sockets_closed_properly_are_no_finding() {
    let Some(mut lab) = Lab::new("unreleased-ok") else {
        return;
    };
    lab.spawn(
        "reset_server",
        &["--port", "7001", "--n", "12", "--kind", "close"],
    );
    let report = lab.report(&[]);
    assert!(
        findings(&report, "closed_not_released").is_empty(),
        "{report:#}"
    );
    assert!(
        report["processes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p.get("closed_tcp_fds").is_none()),
        "{report:#}"
    );
    assert_eq!(report["status"], "ok", "{report:#}");
}

/// A client that keeps its sockets after connect() fails: toward a host
/// whose answers never come back (timed out) and toward a local port where
/// nothing listens (refused). Each is told as failed connects, with its
/// destination, never as resets after a write.
#[test]
fn failed_connects_kept_are_told_as_failed_connects() {
    let (Some(mut lab), Some(peer)) = (Lab::new("unrel-connect"), Lab::new("unrel-connect-p"))
    else {
        return;
    };
    lab.wire(&peer, 64);
    // Two SYNs, then the kernel gives up: ETIMEDOUT within about 3 s.
    lab.exec(&["sysctl", "-qw", "net.ipv4.tcp_syn_retries=1"]);
    peer.go_silent_toward("10.64.0.1");
    let timed_out = failed_connects(&mut lab, "10.64.0.2", "5432", "6", "keep");
    let refused = failed_connects(&mut lab, "127.0.0.1", "7398", "4", "keep");
    let report = lab.report(&[]);
    let of = |pid: &Value| {
        findings(&report, "closed_not_released")
            .into_iter()
            .find(|f| &f["pid"] == pid)
            .unwrap_or_else(|| panic!("no closed_not_released for {pid}: {report:#}"))
    };
    let f = of(&timed_out["pid"]);
    assert_eq!(f["count"], 6, "{f:#}");
    assert_eq!(f["cause"], "connect_failed", "{f:#}");
    assert_eq!(f["peers"][0]["host"], "10.64.0.2", "{f:#}");
    assert_eq!(f["peers"][0]["connections"], 6, "{f:#}");
    let text = f["evidence"].to_string();
    assert!(
        text.contains("connects that never got established: 6"),
        "{text}"
    );
    // The non-blocking ones keep their port and their pending error; a
    // failed blocking connect() made the kernel forget the port.
    assert!(
        text.contains("10.64.0.2:5432 (3, ETIMEDOUT unread)"),
        "{text}"
    );
    assert!(
        text.contains("10.64.0.2 (3, port no longer known)"),
        "{text}"
    );
    assert!(!text.contains("a write after the peer"), "{text}");
    assert!(
        f["suggestion"]
            .as_str()
            .unwrap()
            .contains("connect() fails")
    );

    let f = of(&refused["pid"]);
    assert_eq!(f["cause"], "connect_failed", "{f:#}");
    let text = f["evidence"].to_string();
    assert!(
        text.contains("127.0.0.1:7398 (2, ECONNREFUSED unread)"),
        "{text}"
    );
}

/// The same failed connects from a client that closes each socket after
/// the error: nothing to report.
#[test]
fn failed_connects_closed_are_no_finding() {
    let Some(mut lab) = Lab::new("unrel-connect-ok") else {
        return;
    };
    failed_connects(&mut lab, "127.0.0.1", "7398", "6", "close");
    let report = lab.report(&[]);
    assert!(
        findings(&report, "closed_not_released").is_empty(),
        "{report:#}"
    );
}

/// A client of `failed_connects` toward `host:port` (`tests/scenarios/incident_roles.py`).
fn failed_connects(lab: &mut Lab, host: &str, port: &str, n: &str, kind: &str) -> Value {
    let args = ["--host", host, "--port", port, "--n", n, "--kind", kind];
    lab.spawn("failed_connects", &args)
}

/// A client that half-closes, reads the answer to EOF and never calls
/// close(): its connections end in order both ways (the peer's FIN came,
/// TIME-WAIT took over) and only close() is missing; never told as a reset.
#[test]
fn sockets_shut_down_and_never_closed_are_told_as_ended_in_order() {
    let Some(mut lab) = Lab::new("unrel-shutdown") else {
        return;
    };
    lab.spawn("echo_server", &["--port", "7397"]);
    let client = lab.spawn("shutdown_keeper", &["--port", "7397", "--n", "5"]);
    let report = lab.report(&[]);
    let f = findings(&report, "closed_not_released");
    let f = f
        .iter()
        .find(|f| f["pid"] == client["pid"])
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(f["count"], 5, "{f:#}");
    assert_eq!(f["cause"], "closed_in_order", "{f:#}");
    let text = f["evidence"].to_string();
    assert!(text.contains("closed in order both ways: 5"), "{text}");
    assert!(!text.contains("reset them"), "{text}");
    assert!(
        f["suggestion"]
            .as_str()
            .unwrap()
            .contains("close() after shutdown()")
    );
}

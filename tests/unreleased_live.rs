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

//! CLOSE_WAIT patterns built with real sockets in a private network namespace,
//! diagnosed by the real binary. Needs root (skips visibly otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Lab, findings, warnings};
use serde_json::Value;
use std::time::Duration;

fn only_close_wait(report: &Value) -> &Value {
    let f = findings(report, "close_wait_leak");
    assert_eq!(
        f.len(),
        1,
        "one close_wait_leak finding expected: {report:#}"
    );
    f[0]
}

/// The classic leak: the server reads to EOF and never calls close().
#[test]
fn server_that_never_closes_after_eof() {
    let Some(mut lab) = Lab::new("never-closes") else {
        return;
    };
    let server = lab.spawn("leak_server", &["--port", "7001"]);
    lab.spawn(
        "clients",
        &["--port", "7001", "--n", "25", "--kind", "close"],
    );
    // Past the default 2 s below which a CLOSE_WAIT socket may still be closing.
    std::thread::sleep(Duration::from_millis(2600));
    let report = lab.report(&[]);
    let f = only_close_wait(&report);
    assert_eq!(f["pid"], server["pid"]);
    assert_eq!(f["comm"], "python3");
    assert_eq!(f["count"], 25);
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["side"], "server");
    assert_eq!(f["local"], "127.0.0.1:7001");
    assert_eq!(f["remote"], Value::Null);
    assert_eq!(f["cause"], "never_closed_after_eof");
    assert!(f["oldest_s"].as_u64().is_some_and(|s| s >= 2), "{f:#}");
    assert_eq!(report["status"], "warning");
    assert_eq!(report["summary"]["states"]["CLOSE_WAIT"], 25);
    assert_eq!(report["summary"]["states"]["FIN_WAIT2"], 25);
    let proc = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == server["pid"])
        .expect("the server is listed");
    assert_eq!(proc["states"]["CLOSE_WAIT"], 25);
    assert_eq!(proc["states"]["LISTEN"], 1);
    assert!(proc["fds"].as_u64().unwrap() >= 26);
}

#[test]
fn server_that_never_closes_over_ipv6() {
    let Some(mut lab) = Lab::new("never-closes-v6") else {
        return;
    };
    let server = lab.spawn("leak_server", &["--host", "::1", "--port", "7001"]);
    lab.spawn("clients", &["--host", "::1", "--port", "7001", "--n", "12"]);
    let report = lab.report(&["--close-wait-min-age", "0"]);
    let f = only_close_wait(&report);
    assert_eq!(f["pid"], server["pid"]);
    assert_eq!(f["count"], 12);
    assert_eq!(f["local"], "[::1]:7001");
    assert_eq!(f["cause"], "never_closed_after_eof");
    assert_eq!(f["severity"], "warning");
}

/// A client pool whose connections the server closed: the client never reads
/// them again, so each holds the server's FIN unread (Recv-Q 1).
#[test]
fn client_pool_closed_by_the_server() {
    let Some(mut lab) = Lab::new("pool-closed") else {
        return;
    };
    lab.spawn("closing_server", &["--port", "7002", "--wait", "0.1"]);
    let pool = lab.spawn("idle_pool", &["--port", "7002", "--n", "15"]);
    std::thread::sleep(Duration::from_millis(500));
    let report = lab.report(&["--close-wait-min-age", "0"]);
    let f = only_close_wait(&report);
    assert_eq!(f["pid"], pool["pid"]);
    assert_eq!(f["count"], 15);
    assert_eq!(f["side"], "client");
    assert_eq!(f["remote"], "127.0.0.1:7002");
    assert_eq!(f["local"], Value::Null);
    assert_eq!(f["cause"], "unread_after_peer_close");
    assert_eq!(f["severity"], "warning");
}

/// Long-lived echo connections and short ones closed properly: nothing to report.
#[test]
fn healthy_echo_service_is_ok() {
    let Some(mut lab) = Lab::new("healthy") else {
        return;
    };
    lab.spawn("echo_server", &["--port", "7008"]);
    lab.spawn(
        "healthy_clients",
        &["--port", "7008", "--n", "20", "--churn", "30"],
    );
    let report = lab.report(&[]);
    assert_eq!(report["status"], "ok", "{report:#}");
    assert!(warnings(&report).is_empty(), "{report:#}");
    assert!(report["summary"]["states"]["ESTABLISHED"].as_u64().unwrap() >= 40);
    assert_eq!(report["summary"]["states"]["TIME_WAIT"], 30);
}

/// A snapshot saved during the incident gives the same diagnosis anywhere later.
#[test]
fn save_then_from_gives_the_same_findings() {
    let Some(mut lab) = Lab::new("save-from") else {
        return;
    };
    lab.spawn("leak_server", &["--port", "7001"]);
    lab.spawn("clients", &["--port", "7001", "--n", "11"]);
    let file = lab.path("snap.json");
    let live = lab.report(&[
        "--close-wait-min-age",
        "0",
        "--save",
        file.to_str().unwrap(),
    ]);
    // Outside the namespace, from the file alone.
    let out = std::process::Command::new(common::CONNLEAK)
        .args(["--json", "--close-wait-min-age", "0", "--from"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replay: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(live["findings"], replay["findings"]);
    assert_eq!(live["summary"], replay["summary"]);
    assert_eq!(live["processes"], replay["processes"]);
    assert_eq!(live["taken_at"], replay["taken_at"]);
    assert_eq!(only_close_wait(&replay)["count"], 11);
}

/// The /proc/net/tcp fallback finds the same leak, without ages.
#[test]
fn proc_net_fallback_finds_the_leak() {
    let Some(mut lab) = Lab::new("proc-net") else {
        return;
    };
    let server = lab.spawn("leak_server", &["--port", "7001"]);
    lab.spawn("clients", &["--port", "7001", "--n", "10"]);
    let report = lab.report(&["--source", "proc"]);
    assert_eq!(report["source"], "proc_net");
    let f = only_close_wait(&report);
    assert_eq!(f["pid"], server["pid"]);
    assert_eq!(f["count"], 10);
    assert_eq!(f["oldest_s"], Value::Null);
    assert!(f["evidence"].to_string().contains("age unknown"));
}

/// The human report leads with the finding and names the process.
#[test]
fn human_report_leads_with_the_finding() {
    let Some(mut lab) = Lab::new("human") else {
        return;
    };
    let server = lab.spawn("leak_server", &["--port", "7001"]);
    lab.spawn("clients", &["--port", "7001", "--n", "10"]);
    let out = lab.connleak_output(&["--close-wait-min-age", "0"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let first_finding = text
        .lines()
        .find(|l| l.contains("close_wait_leak"))
        .unwrap();
    assert!(
        first_finding.starts_with("WARNING close_wait_leak: pid "),
        "{text}"
    );
    assert!(
        text.contains(&format!("pid {} (python3)", server["pid"])),
        "{text}"
    );
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no colour when NO_COLOR is set: {text}"
    );
}

/// Without privileges the socket table is still complete; owners of other
/// users' processes are unknown, counted, and the exit code is unchanged.
#[test]
fn unprivileged_run_counts_what_it_cannot_see() {
    let Some(mut lab) = Lab::new("unprivileged") else {
        return;
    };
    lab.spawn("leak_server", &["--port", "7001"]);
    lab.spawn("clients", &["--port", "7001", "--n", "10"]);
    let out = lab.connleak_unprivileged(&["--json", "--close-wait-min-age", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["states"]["CLOSE_WAIT"], 10);
    assert!(report["unreadable"]["processes_denied"].as_u64().unwrap() > 0);
    let f = only_close_wait(&report);
    assert_eq!(f["pid"], Value::Null);
    assert_eq!(f["count"], 10);
}

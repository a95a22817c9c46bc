//! Sockets with several holders, listeners several processes share, dual-stack
//! addresses and leaks spread thin over many processes or endpoints, built
//! with real sockets in a private network namespace. Needs root (skips
//! visibly otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Lab, findings, warnings};
use serde_json::Value;

fn evidence(f: &Value) -> String {
    f["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

fn only<'a>(report: &'a Value, kind: &str) -> &'a Value {
    let f = findings(report, kind);
    assert_eq!(f.len(), 1, "one {kind} finding expected: {report:#}");
    f[0]
}

/// Two processes listen on one port with SO_REUSEPORT, each with its own
/// queue; one never accepts. Its queue, and only its, is full.
#[test]
fn reuseport_queue_is_reported_with_its_own_holder() {
    let Some(mut lab) = Lab::new("reuseport") else {
        return;
    };
    let stuck = lab.spawn(
        "reuseport_server",
        &["--port", "7101", "--n", "4", "--kind", "stuck"],
    );
    let busy = lab.spawn(
        "reuseport_server",
        &["--port", "7101", "--n", "4", "--kind", "echo"],
    );
    lab.spawn(
        "connect_many",
        &["--port", "7101", "--n", "40", "--wait", "0.2"],
    );
    let report = lab.report(&[]);
    let f = only(&report, "accept_queue_full");
    assert_eq!(f["pid"], stuck["pid"], "{report:#}");
    assert_eq!(f["severity"], "warning");
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["pid"] != busy["pid"]),
        "{report:#}"
    );
}

/// Socket activation's shape: the parent (the lowest pid) listens and its
/// workers accept from the same socket, leak, then stop accepting while the
/// queue fills. The workers answer; the parent is listed, never named.
#[test]
fn shared_listener_is_blamed_on_the_workers_that_accept() {
    let Some(mut lab) = Lab::new("activation") else {
        return;
    };
    let server = lab.spawn(
        "prefork_server",
        &[
            "--port",
            "7102",
            "--workers",
            "2",
            "--n",
            "3",
            "--churn",
            "6",
            "--backlog",
            "2",
            "--kind",
            "leak",
        ],
    );
    lab.spawn(
        "connect_many",
        &["--port", "7102", "--n", "3", "--wait", "5"],
    );
    let report = lab.report(&["--close-wait-min-age", "0"]);
    let parent = server["pid"].as_u64().unwrap();
    let workers = server["workers"].as_array().unwrap();
    let f = only(&report, "accept_queue_full");
    assert_eq!(f["severity"], "warning", "{report:#}");
    assert!(workers.contains(&f["pid"]), "{report:#}");
    assert!(
        evidence(f).contains(&format!("pid {parent} (python3)")),
        "{report:#}"
    );
    let all = report["findings"].as_array().unwrap();
    assert!(all.iter().all(|f| f["pid"] != parent), "{report:#}");
    let leaks = findings(&report, "close_wait_leak");
    assert_eq!(leaks.len(), 2, "{report:#}");
    assert!(leaks.iter().all(|f| workers.contains(&f["pid"])));
}

/// A dual-stack listener (`::`, IPV6_V6ONLY off) sees IPv4 clients as
/// `::ffff:127.0.0.1`, the clients see `127.0.0.1`: one connection, one group.
#[test]
fn dual_stack_server_with_ipv4_clients_is_one_finding() {
    let Some(mut lab) = Lab::new("dual-stack") else {
        return;
    };
    let server = lab.spawn("leak_server", &["--host", "::", "--port", "7103"]);
    lab.spawn("clients", &["--port", "7103", "--n", "12"]);
    let report = lab.report(&["--close-wait-min-age", "0"]);
    let all = report["findings"].as_array().unwrap();
    assert_eq!(all.len(), 1, "{report:#}");
    let f = &all[0];
    assert_eq!(f["kind"], "close_wait_leak");
    assert_eq!(f["pid"], server["pid"]);
    assert_eq!(f["count"], 12);
    assert_eq!(f["side"], "server");
    assert_eq!(f["local"], "[::]:7103");
}

/// Half-closing IPv4 clients of a dual-stack server pair up with its
/// CLOSE_WAIT ends although the two ends spell the address differently.
#[test]
fn dual_stack_half_close_pairs_up() {
    let Some(mut lab) = Lab::new("dual-stack-half") else {
        return;
    };
    let server = lab.spawn("leak_server", &["--host", "::", "--port", "7107"]);
    let clients = lab.spawn(
        "clients",
        &["--port", "7107", "--n", "12", "--kind", "halfclose"],
    );
    let report = lab.report(&["--close-wait-min-age", "0"]);
    let f = only(&report, "half_closed_peer");
    assert_eq!(f["pid"], server["pid"]);
    assert_eq!(f["peer_pid"], clients["pid"]);
    assert_eq!(f["count"], 12);
    assert!(
        findings(&report, "close_wait_leak").is_empty(),
        "{report:#}"
    );
}

/// A parent leaks sockets, then starts a child that inherits them: both hold
/// every one, and close-on-exec is what to fix.
#[test]
fn inherited_fds_list_every_holder() {
    let Some(mut lab) = Lab::new("inherited") else {
        return;
    };
    let server = lab.spawn("inherit_leak", &["--port", "7104", "--n", "12"]);
    let report = lab.report(&["--close-wait-min-age", "0"]);
    let f = only(&report, "close_wait_leak");
    assert_eq!(f["pid"], server["pid"]);
    assert_eq!(f["count"], 12);
    let child = server["child"].as_u64().unwrap();
    assert!(
        evidence(f).contains(&format!(
            "12 of its 12 sockets are also held by pid {child} (sleep)"
        )),
        "{report:#}"
    );
    assert!(
        f["suggestion"].as_str().unwrap().contains("SOCK_CLOEXEC"),
        "{report:#}"
    );
}

/// Ten prefork workers leak three sockets each: under every per-process
/// threshold, one warning for the listener, named after the parent.
#[test]
fn prefork_workers_leaking_a_few_each_roll_up() {
    let Some(mut lab) = Lab::new("prefork-rollup") else {
        return;
    };
    let server = lab.spawn(
        "prefork_server",
        &[
            "--port",
            "7105",
            "--workers",
            "10",
            "--n",
            "3",
            "--churn",
            "30",
            "--kind",
            "leak",
        ],
    );
    let report = lab.report(&["--close-wait-min-age", "0"]);
    let parent = server["pid"].as_u64().unwrap();
    let f = only(&report, "close_wait_rollup");
    assert_eq!(f["severity"], "warning", "{report:#}");
    assert_eq!(f["pid"], parent);
    assert_eq!(f["count"], 30);
    assert_eq!(f["side"], "server");
    assert_eq!(f["local"], "127.0.0.1:7105");
    assert!(
        evidence(f).contains(&format!(
            "10 workers of python3 (parent pid {parent}), 3 each"
        )),
        "{report:#}"
    );
    assert_eq!(warnings(&report).len(), 1, "{report:#}");
}

/// A client leaking three connections toward each of ten servers: one
/// roll-up for the process.
#[test]
fn client_leaking_toward_many_endpoints_rolls_up() {
    let Some(mut lab) = Lab::new("client-rollup") else {
        return;
    };
    lab.spawn(
        "closing_servers",
        &["--port", "7110", "--count", "10", "--wait", "0.1"],
    );
    let pool = lab.spawn(
        "spread_pool",
        &["--port", "7110", "--count", "10", "--n", "3"],
    );
    let report = lab.report(&["--close-wait-min-age", "0"]);
    let f = only(&report, "close_wait_rollup");
    assert_eq!(f["severity"], "warning", "{report:#}");
    assert_eq!(f["pid"], pool["pid"]);
    assert_eq!(f["count"], 30);
    assert_eq!(f["side"], "client");
    assert!(
        evidence(f).contains("across 10 endpoints, 3 each"),
        "{report:#}"
    );
    assert_eq!(warnings(&report).len(), 1, "{report:#}");
}

/// A healthy prefork server under steady short requests: its workers each
/// hold a couple of live connections, and nothing is wrong.
#[test]
fn healthy_prefork_server_is_ok() {
    let Some(mut lab) = Lab::new("prefork-healthy") else {
        return;
    };
    lab.spawn(
        "prefork_server",
        &["--port", "7106", "--workers", "10", "--kind", "echo"],
    );
    lab.spawn(
        "healthy_clients",
        &["--port", "7106", "--n", "20", "--churn", "30"],
    );
    let report = lab.report(&[]);
    assert!(warnings(&report).is_empty(), "{report:#}");
    assert_eq!(report["status"], "ok", "{report:#}");
}

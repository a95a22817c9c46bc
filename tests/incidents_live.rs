//! Incidents, built with real sockets: patterns that come together read as
//! one root cause with its consequences under it (`caused_by`), grouped by
//! the peer that matters, with a severity from the effect. Each test makes
//! its incident in private network namespaces (two, wired by a veth pair,
//! where a peer host is needed); needs root (skips visibly otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Lab, findings, report_when, say};
use serde_json::Value;
use std::time::Duration;

/// The one finding of `kind` in the report.
fn one<'a>(r: &'a Value, kind: &str) -> &'a Value {
    let all = findings(r, kind);
    assert_eq!(all.len(), 1, "one {kind} finding expected: {r:#}");
    all[0]
}

fn has(r: &Value, kind: &str) -> bool {
    !findings(r, kind).is_empty()
}

/// Asserts that `effect` is explained by `cause`.
fn caused_by(effect: &Value, cause: &Value) {
    assert!(cause["id"].is_string(), "{cause:#}");
    assert_eq!(
        effect["caused_by"], cause["id"],
        "{effect:#}\nnot caused by\n{cause:#}"
    );
}

/// The roots of a report: findings nothing explains.
fn roots(r: &Value) -> Vec<&Value> {
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["caused_by"].is_null())
        .collect()
}

fn text(v: &Value) -> String {
    v.to_string()
}

/// A server at its fd limit (EMFILE) stops accepting, its small accept
/// queue fills, local clients' connects go unanswered: one incident, the
/// fd limit first, the rest under it, and never a word of firewalls.
#[test]
fn fd_limit_stops_accepting_and_local_connects_hang() {
    let Some(mut lab) = Lab::new("inc-fd") else {
        return;
    };
    let server = lab.spawn(
        "leak_server",
        &["--port", "7101", "--nofile", "40", "--backlog", "5"],
    );
    lab.spawn(
        "connect_many",
        &["--port", "7101", "--n", "50", "--wait", "0.3"],
    );
    lab.spawn("syn_burst", &["--port", "7101", "--n", "8"]);
    let r = report_when(&lab, &[], |r| has(r, "connect_unanswered"));
    let fd = one(&r, "fd_exhaustion");
    assert_eq!(fd["pid"], server["pid"]);
    assert_eq!(fd["severity"], "critical");
    assert!(fd["caused_by"].is_null(), "{fd:#}");
    let queue = one(&r, "accept_queue_full");
    caused_by(queue, fd);
    assert!(text(queue).contains("EMFILE"), "{queue:#}");
    let connects = one(&r, "connect_unanswered");
    caused_by(connects, queue);
    let advice = connects["suggestion"].as_str().unwrap();
    assert!(
        !advice.contains("firewalls,") && !advice.contains("security groups"),
        "{connects:#}"
    );
    assert_eq!(connects["peers"][0]["pid"], server["pid"], "{connects:#}");
    assert_eq!(roots(&r).len(), 1, "one incident: {r:#}");
    assert_eq!(r["findings"][0]["id"], fd["id"], "the root comes first");

    let check = lab.connleak_output(&["check"]);
    let line = String::from_utf8_lossy(&check.stdout);
    assert!(
        line.starts_with("CONNLEAK CRITICAL - 1 problem: fd_exhaustion ")
            && line.contains("causing accept_queue_full, connect_unanswered"),
        "{line}"
    );
    let human = lab.connleak_output(&[]);
    let human = String::from_utf8_lossy(&human.stdout);
    let at = |s: &str| human.find(s).unwrap_or_else(|| panic!("{s} in\n{human}"));
    assert!(at("CRITICAL fd_exhaustion") < at("↳ "), "{human}");
}

/// A local listener (backlog 5) that never accepts, and local clients whose
/// connects hang: the connects are the listener's doing, not the network's.
#[test]
fn full_local_queue_explains_hanging_connects() {
    let Some(mut lab) = Lab::new("inc-queue") else {
        return;
    };
    let server = lab.spawn("backlog_server", &["--port", "7102", "--n", "5"]);
    lab.spawn(
        "connect_many",
        &["--port", "7102", "--n", "6", "--wait", "1"],
    );
    lab.spawn("syn_burst", &["--port", "7102", "--n", "8"]);
    let r = report_when(&lab, &[], |r| has(r, "connect_unanswered"));
    let queue = one(&r, "accept_queue_full");
    assert_eq!(queue["pid"], server["pid"]);
    assert!(queue["caused_by"].is_null(), "{queue:#}");
    let connects = one(&r, "connect_unanswered");
    caused_by(connects, queue);
    for word in ["firewalls,", "security groups", "routes"] {
        assert!(
            !connects["suggestion"].as_str().unwrap().contains(word),
            "{connects:#}"
        );
    }
    assert_eq!(roots(&r).len(), 1, "{r:#}");
}

/// One server writing to six connections of one client process that never
/// reads: one warning toward that peer process, not six infos per port.
#[test]
fn connections_toward_one_peer_process_are_one_finding() {
    let Some(mut lab) = Lab::new("inc-peer") else {
        return;
    };
    let server = lab.spawn("write_server", &["--port", "7103"]);
    let client = lab.spawn("idle_pool", &["--port", "7103", "--n", "6"]);
    let args = ["--send-stall-secs", "1"];
    let r = report_when(&lab, &args, |r| {
        // Each connection counts once its window has stood closed a second.
        findings(r, "blocked_send")
            .iter()
            .any(|f| f["pid"] == server["pid"] && f["count"] == 6)
    });
    let sends: Vec<&Value> = findings(&r, "blocked_send")
        .into_iter()
        .filter(|f| f["pid"] == server["pid"])
        .collect();
    assert_eq!(sends.len(), 1, "one finding toward the peer: {r:#}");
    let f = sends[0];
    assert_eq!(f["count"], 6, "{f:#}");
    assert_eq!(f["severity"], "warning", "{f:#}");
    assert_eq!(f["cause"], "peer_not_reading");
    assert_eq!(f["peers"].as_array().unwrap().len(), 1, "{f:#}");
    assert_eq!(f["peers"][0]["pid"], client["pid"]);
    assert_eq!(f["peers"][0]["connections"], 6);
}

/// A peer host that died with data in flight toward it, idle connections
/// without keep-alive toward it, and new connects toward it: one finding
/// for all its connections, and the rest explained by it.
#[test]
fn a_dead_peer_host_is_one_incident() {
    let (Some(mut lab), Some(mut peer)) = (Lab::new("inc-dead"), Lab::new("inc-dead-peer")) else {
        return;
    };
    lab.wire(&peer, 61);
    let server = lab.spawn("write_server", &["--host", "10.61.0.1", "--port", "7104"]);
    peer.spawn("echo_server", &["--host", "10.61.0.2", "--port", "7105"]);
    peer.spawn(
        "idle_pool",
        &["--host", "10.61.0.1", "--port", "7104", "--n", "12"],
    );
    let idle = lab.spawn(
        "idle_pool",
        &["--host", "10.61.0.2", "--port", "7105", "--n", "4"],
    );
    // Let the writers fill the peer's window, then the peer host dies.
    std::thread::sleep(Duration::from_millis(1500));
    peer.go_silent_toward("10.61.0.1");
    let connecting = lab.spawn(
        "syn_burst",
        &["--host", "10.61.0.2", "--port", "7106", "--n", "6"],
    );
    let args = ["--send-stall-secs", "1", "--idle", "1"];
    let r = report_when(&lab, &args, |r| {
        // Every connection's probes go unanswered, some sooner than others.
        has(r, "connect_unanswered")
            && has(r, "no_keepalive_idle")
            && findings(r, "blocked_send")
                .iter()
                .any(|f| f["cause"] == "peer_gone" && f["count"] == 12)
    });
    let gone = one(&r, "blocked_send");
    assert_eq!(gone["pid"], server["pid"]);
    assert_eq!(gone["cause"], "peer_gone", "{gone:#}");
    assert_eq!(gone["count"], 12, "one finding for the host's connections");
    assert_eq!(gone["peers"][0]["host"], "10.61.0.2");
    assert!(gone["caused_by"].is_null());
    let connects = one(&r, "connect_unanswered");
    assert_eq!(connects["pid"], connecting["pid"]);
    caused_by(connects, gone);
    let silent = one(&r, "no_keepalive_idle");
    assert_eq!(silent["pid"], idle["pid"]);
    caused_by(silent, gone);
    assert_eq!(roots(&r).len(), 1, "{r:#}");
}

/// A SYN flood from spoofed sources on a listener, with SYN cookies off
/// and tcp_max_syn_backlog 128: the SYN queue stops at 97, legitimate
/// connects fail; critical, quoting the drops, and the local client's
/// unanswered connects are caused by it.
#[test]
fn a_syn_flood_without_cookies_drops_legitimate_connects() {
    let Some((lab, _peer)) = flooded("inc-flood", 62, "0") else {
        return;
    };
    let r = report_when(&lab, &[], |r| has(r, "connect_unanswered"));
    let flood = one(&r, "syn_backlog");
    assert_eq!(flood["severity"], "critical", "{flood:#}");
    assert!(text(flood).contains("ListenDrops"), "{flood:#}");
    assert!(!text(flood).contains("TCPReqQFullDoCookies 0"), "{flood:#}");
    let connects = one(&r, "connect_unanswered");
    caused_by(connects, flood);
    assert!(
        connects["suggestion"]
            .as_str()
            .unwrap()
            .contains("syncookies")
    );
}

/// The same flood absorbed by SYN cookies: a warning, not critical, and
/// the legitimate connects complete.
#[test]
fn a_syn_flood_absorbed_by_cookies_is_not_critical() {
    let Some((lab, _peer)) = flooded("inc-cookies", 63, "1") else {
        return;
    };
    std::thread::sleep(Duration::from_millis(1500));
    let r = lab.report(&[]);
    let flood = one(&r, "syn_backlog");
    assert_eq!(flood["severity"], "warning", "{flood:#}");
    assert!(text(flood).contains("absorbed"), "{flood:#}");
    assert!(!has(&r, "connect_unanswered"), "{r:#}");
}

/// A listener (backlog 128, never accepting) in one namespace, flooded from a peer
/// namespace by SYNs from spoofed sources whose SYN-ACKs go nowhere, with
/// `tcp_syncookies` as given; then a legitimate local client connects.
fn flooded(name: &str, n: u8, cookies: &str) -> Option<(Lab, Lab)> {
    let mut lab = Lab::new(name)?;
    let mut peer = Lab::new(&format!("{name}-peer"))?;
    lab.wire(&peer, n);
    let server = format!("10.{n}.0.1");
    let via = format!("10.{n}.0.2");
    lab.exec(&["ip", "route", "add", "10.99.0.0/16", "via", &via]);
    lab.exec(&[
        "sysctl",
        "-qw",
        &format!("net.ipv4.tcp_syncookies={cookies}"),
    ]);
    lab.exec(&["sysctl", "-qw", "net.ipv4.tcp_max_syn_backlog=128"]);
    peer.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
    lab.spawn(
        "backlog_server",
        &["--host", &server, "--port", "7107", "--n", "128"],
    );
    peer.spawn(
        "syn_flood",
        &[
            "--host", &server, "--port", "7107", "--n", "3000", "--label", "10.99",
        ],
    );
    lab.spawn(
        "syn_burst",
        &["--host", &server, "--port", "7107", "--n", "6"],
    );
    say(&format!("{name}: flooded with tcp_syncookies={cookies}"));
    Some((lab, peer))
}

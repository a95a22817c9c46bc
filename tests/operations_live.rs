//! connleak as other programs use it: the cron/Nagios check, the Prometheus
//! textfile, atomic output, namespaces diagnosed from outside, configuration
//! and filters. Real sockets in private namespaces; needs root (skips
//! visibly otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{CONNLEAK, Lab};
use serde_json::Value;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A namespace with a server that never closes 25 connections, aged past 2 s.
fn leaking(test: &str) -> Option<(Lab, Value)> {
    let mut lab = Lab::new(test)?;
    let server = lab.spawn("leak_server", &["--port", "7001"]);
    lab.spawn("clients", &["--port", "7001", "--n", "25"]);
    std::thread::sleep(Duration::from_millis(2500));
    Some((lab, server))
}

/// Runs connleak from outside any test namespace.
fn outside(args: &[&str]) -> Output {
    Command::new(CONNLEAK)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn check_exit_codes_and_one_line() {
    let Some((lab, server)) = leaking("check") else {
        return;
    };
    let out = lab.connleak_output(&["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("CONNLEAK WARNING - 1 problem: close_wait_leak pid "),
        "{text}"
    );
    assert!(
        text.contains(&format!("pid {} (python3) 25 CLOSE_WAIT", server["pid"])),
        "{text}"
    );
    assert!(
        text.contains("| close_wait=25 close_wait_worst_group=25;10;200 "),
        "{text}"
    );
    // Verbose adds the evidence; a stricter threshold makes it critical.
    let verbose = stdout(&lab.connleak_output(&["check", "-v"]));
    assert!(
        verbose.lines().count() > 1 && verbose.contains("Recv-Q 0"),
        "{verbose}"
    );
    let crit = lab.connleak_output(&["check", "--close-wait-crit", "20"]);
    assert_eq!(crit.status.code(), Some(2));
    // A healthy namespace is OK and says little.
    let healthy = Lab::new("check-ok").unwrap();
    let ok = healthy.connleak_output(&["check"]);
    assert_eq!(ok.status.code(), Some(0));
    assert!(
        stdout(&ok).starts_with("CONNLEAK OK - no leak found"),
        "{}",
        stdout(&ok)
    );
}

#[test]
fn configuration_file_sets_thresholds_and_flags_win() {
    let Some((lab, _)) = leaking("config") else {
        return;
    };
    let config = lab.path("connleak.toml");
    std::fs::write(&config, "close_wait_warn = 50\nclose_wait_crit = 100\n").unwrap();
    let c = config.to_str().unwrap();
    assert_eq!(
        lab.connleak_output(&["check", "--config", c]).status.code(),
        Some(0)
    );
    let flag = lab.connleak_output(&["check", "--config", c, "--close-wait-warn", "5"]);
    assert_eq!(flag.status.code(), Some(1));
    std::fs::write(&config, "close_wait_wran = 5\n").unwrap();
    let bad = lab.connleak_output(&["check", "--config", c]);
    assert_eq!(bad.status.code(), Some(3));
    assert!(
        stdout(&bad).starts_with("CONNLEAK UNKNOWN - configuration "),
        "{}",
        stdout(&bad)
    );
}

#[test]
fn prometheus_output_parses_and_lands_atomically() {
    let Some((lab, server)) = leaking("prometheus") else {
        return;
    };
    let file = lab.path("connleak.prom");
    let f = file.to_str().unwrap();
    let out = lab.connleak_output(&["--prometheus", "--output", f]);
    assert!(out.status.success() && out.stdout.is_empty());
    let Some(samples) = common::prometheus_samples(&file) else {
        return;
    };
    let pid = server["pid"].to_string();
    let close_wait = [("state", "CLOSE_WAIT")];
    assert_eq!(
        common::sample(&samples, "connleak_sockets", &close_wait),
        Some(25.0)
    );
    let held = [
        ("pid", pid.as_str()),
        ("comm", "python3"),
        ("state", "CLOSE_WAIT"),
    ];
    assert_eq!(
        common::sample(&samples, "connleak_process_sockets", &held),
        Some(25.0)
    );
    let finding = [("kind", "close_wait_leak"), ("severity", "warning")];
    assert_eq!(
        common::sample(&samples, "connleak_findings", &finding),
        Some(1.0)
    );

    // While connleak rewrites the file again and again, a reader only ever sees whole files.
    let writer = {
        let ns = lab.ns.clone();
        let f = f.to_string();
        std::thread::spawn(move || {
            for _ in 0..15 {
                let st = Command::new("ip")
                    .args([
                        "netns",
                        "exec",
                        &ns,
                        CONNLEAK,
                        "--prometheus",
                        "--output",
                        &f,
                    ])
                    .status()
                    .unwrap();
                assert!(st.success());
            }
        })
    };
    let start = Instant::now();
    let mut reads = 0;
    while !writer.is_finished() && start.elapsed() < Duration::from_secs(60) {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.ends_with("\n") && text.contains("connleak_collection_duration_seconds"),
            "torn read"
        );
        reads += 1;
    }
    writer.join().unwrap();
    assert!(reads > 0);
    let leftovers = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp.")
        })
        .count();
    assert_eq!(leftovers, 0, "temporary files left behind");
}

#[test]
fn netns_by_name_from_outside() {
    let Some((lab, server)) = leaking("outside") else {
        return;
    };
    let out = outside(&["--netns", &lab.ns, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["netns"]["name"], lab.ns.as_str());
    let f = &r["findings"][0];
    assert_eq!(
        (f["kind"].as_str(), &f["pid"]),
        (Some("close_wait_leak"), &server["pid"])
    );
    // Through a process in it, as for a container.
    let pid = server["pid"].to_string();
    let by_pid: Value =
        serde_json::from_slice(&outside(&["--netns-pid", &pid, "--json"]).stdout).unwrap();
    assert_eq!(by_pid["findings"][0]["count"], 25);
    // One label for the namespace, its name, in the check line as in the report.
    let line = stdout(&outside(&["check", "--netns-pid", &pid]));
    assert!(
        line.contains(&format!(" in netns {}", lab.ns)) && !line.contains("pid:"),
        "{line}"
    );
    // Every namespace, each labelled; ours among them with its leak.
    let all: Value = serde_json::from_slice(&outside(&["--all-netns", "--json"]).stdout).unwrap();
    let ours = all["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["netns"]["name"] == lab.ns.as_str())
        .expect("our namespace is listed");
    assert_eq!(ours["status"], "warning");
    assert!(["warning", "critical"].contains(&all["status"].as_str().unwrap()));
    // Without the privilege to enter it, a clear error.
    let denied = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            CONNLEAK,
            "--netns",
            &lab.ns,
        ])
        .output()
        .unwrap();
    assert_eq!(denied.status.code(), Some(2));
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(err.contains("needs root or CAP_SYS_ADMIN"), "{err}");
    let missing = outside(&["--netns", "connleak-no-such-namespace"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("/run/netns/connleak-no-such-namespace")
    );
}

#[test]
fn filters_narrow_the_report() {
    let Some((lab, server)) = leaking("filters") else {
        return;
    };
    let pid = server["pid"].to_string();
    let r = lab.report(&["--pid", &pid, "--state", "close-wait", "--port", "7001"]);
    assert_eq!(r["findings"].as_array().unwrap().len(), 1);
    assert_eq!(r["processes"].as_array().unwrap().len(), 1);
    let other = lab.report(&["--port", "9999"]);
    assert!(other["findings"].as_array().unwrap().is_empty());
    // A filter narrows what is shown, never what is judged.
    assert_eq!(other["status"], "warning");
    assert_eq!(other["filtered"]["findings"], 1);
    assert_eq!(other["filtered"]["worst"], "warning");
    assert_eq!(other["filtered"]["filter"], "--port 9999");
    assert_eq!(
        other["summary"]["states"]["CLOSE_WAIT"], 25,
        "the summary stays whole"
    );
}

/// A leak that grows during the window is told from one that stands still.
#[test]
fn growing_leak_is_told_from_a_static_one() {
    let Some(mut lab) = Lab::new("trend") else {
        return;
    };
    let growing = lab.spawn("leak_server", &["--port", "7001"]);
    let still = lab.spawn("leak_server", &["--port", "7002"]);
    lab.spawn("clients", &["--port", "7002", "--n", "15"]);
    lab.spawn(
        "churn",
        &[
            "--port", "7001", "--n", "0", "--wait", "0.1", "--kind", "send",
        ],
    );
    let args = [
        "--samples",
        "3",
        "--interval",
        "1",
        "--close-wait-min-age",
        "0",
    ];
    let r = lab.report(&args);
    let find = |pid: &Value| {
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == "close_wait_leak" && &f["pid"] == pid)
            .unwrap_or_else(|| panic!("no finding for {pid}: {r:#}"))
            .clone()
    };
    let g = find(&growing["pid"]);
    assert!(g["growth_per_s"].as_f64().unwrap() > 1.0, "{g:#}");
    assert_eq!(g["trend"]["growing"], true, "{g:#}");
    assert_eq!(g["trend"]["counts"].as_array().unwrap().len(), 3);
    let s = find(&still["pid"]);
    assert_eq!(s["growth_per_s"].as_f64(), Some(0.0), "{s:#}");
    assert_eq!(s["trend"]["growing"], false);
    assert_eq!(s["trend"]["present_throughout"], 15);
    assert!(s["evidence"].to_string().contains("flat over"));
    assert_eq!(r["trend"]["samples"], 3);
    assert!(r["trend"]["counter_deltas"]["ListenOverflows"].is_i64());
}

/// A filter never turns a problem into OK: fd_exhaustion on a pile of
/// CLOSE_WAIT sockets belongs to `--state CLOSE_WAIT` and to the listener's
/// port, and what a filter leaves out is said, in check's line too.
#[test]
fn filters_never_hide_a_problem() {
    let Some(mut lab) = Lab::new("filterhide") else {
        return;
    };
    lab.spawn("leak_server", &["--port", "7007", "--nofile", "64"]);
    lab.spawn(
        "clients",
        &["--port", "7007", "--n", "57", "--kind", "close"],
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    for filter in [["--state", "CLOSE_WAIT"], ["--port", "7007"]] {
        let r = lab.report(&filter);
        let kinds: Vec<_> = r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap().to_string())
            .collect();
        assert!(
            kinds.contains(&"fd_exhaustion".to_string()),
            "{filter:?}: {r:#}"
        );
        assert_eq!(r["status"], "critical");
    }
    let check = lab.connleak_output(&["check", "--port", "9999"]);
    let line = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(2), "{line}");
    assert!(line.starts_with("CONNLEAK CRITICAL - "), "{line}");
    assert!(
        line.contains("outside --port 9999 (worst CRITICAL)"),
        "{line}"
    );
    let table = lab.connleak_output(&["--pid", "1"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("No process matches --pid 1."), "{text}");
    assert!(!text.contains("No process we could read"), "{text}");
}

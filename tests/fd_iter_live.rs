//! The owner scan's two ways of reading fd tables agree: the BPF task-file
//! iterator (the default where the kernel and privileges allow) finds the
//! same owners, fd counts and per-state socket counts as the `/proc/PID/fd`
//! scan (`--fd-scan proc`), and a host that allows the iterator does use it
//! rather than falling back without a word. Real sockets in a private
//! namespace; needs root (skips visibly otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Lab, say};
use serde_json::Value;
use std::time::Duration;

/// (pid, fds, states) of every process, as a report lists them.
fn owners(report: &Value) -> Vec<(u64, u64, Value)> {
    report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["pid"].as_u64().unwrap(),
                p["fds"].as_u64().unwrap(),
                p["states"].clone(),
            )
        })
        .collect()
}

#[test]
fn the_iterator_and_the_proc_scan_find_the_same_owners() {
    let Some(mut lab) = Lab::new("fd-iter") else {
        return;
    };
    lab.spawn("leak_server", &["--port", "7001"]);
    lab.spawn("clients", &["--port", "7001", "--n", "20"]);
    lab.spawn("holder", &["--port", "7002", "--n", "300"]);
    std::thread::sleep(Duration::from_millis(500));

    let by_proc = lab.report(&["--fd-scan", "proc"]);
    let by_default = lab.report(&[]);
    assert_eq!(owners(&by_default), owners(&by_proc));
    assert_eq!(by_default["summary"], by_proc["summary"]);
    assert!(owners(&by_default).len() >= 2, "{by_default}");

    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        say("SKIP the iterator is used: this kernel has no BTF");
        return;
    }
    let out = lab.connleak_output_env(&["--json"], ("CONNLEAK_TIMINGS", "1"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("fd tables read by a BPF task-file iterator"),
        "{stderr}"
    );
}

/// A sampled run loads the iterator (its BTF parsed, its program verified)
/// once, not at every sample: `watch` and `serve` refresh for as long as they run.
#[test]
fn the_iterator_is_loaded_once_per_process() {
    let Some(mut lab) = Lab::new("fd-iter-once") else {
        return;
    };
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        say("SKIP the iterator is loaded once: this kernel has no BTF");
        return;
    }
    lab.spawn("leak_server", &["--port", "7001"]);
    lab.spawn("clients", &["--port", "7001", "--n", "5"]);
    let args = ["--json", "--samples", "4", "--interval", "0.1"];
    let out = lab.connleak_output_env(&args, ("CONNLEAK_TIMINGS", "1"));
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let loads = stderr.matches("timing fd iterator load").count();
    let scans = stderr.matches("timing fd scan").count();
    assert_eq!((loads, scans), (1, 4), "{stderr}");
}

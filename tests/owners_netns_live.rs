//! Owners belong to the namespace being diagnosed: a process of another
//! network namespace is never listed as an owner, and its fd table is not
//! even read (socket inodes are shared by every namespace and wrap, so a
//! host-wide fd scan could match a socket of the wrong one). Real sockets
//! in two private namespaces; needs root (skips visibly otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{CONNLEAK, Lab, say};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

fn pids(report: &Value) -> Vec<u64> {
    report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap())
        .collect()
}

fn json(args: &[&str]) -> Value {
    let out = Command::new(CONNLEAK).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "connleak {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_process_of_another_namespace_is_never_an_owner_here() {
    let Some(mut here) = Lab::new("owners-here") else {
        return;
    };
    let Some(mut there) = Lab::new("owners-there") else {
        return;
    };
    let server = here.spawn("leak_server", &["--port", "7001"]);
    here.spawn("clients", &["--port", "7001", "--n", "5"]);
    // Same port, many more fds, in the other namespace.
    let holder = there.spawn("holder", &["--port", "7001", "--n", "300"]);
    std::thread::sleep(Duration::from_millis(500));
    let server = server["pid"].as_u64().unwrap();
    let holder = holder["pid"].as_u64().unwrap();

    let r = json(&["--netns", &here.ns, "--json"]);
    let listed = pids(&r);
    assert!(listed.contains(&server), "{listed:?}");
    assert!(!listed.contains(&holder), "{listed:?}");

    // With every namespace, each process lands in its own.
    let all = json(&["--all-netns", "--json"]);
    let of = |ns: &str| -> Vec<u64> {
        let r = all["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["netns"]["name"] == ns)
            .unwrap_or_else(|| panic!("namespace {ns} listed"));
        pids(r)
    };
    let (in_here, in_there) = (of(&here.ns), of(&there.ns));
    assert!(
        in_here.contains(&server) && !in_here.contains(&holder),
        "{in_here:?}"
    );
    assert!(
        in_there.contains(&holder) && !in_there.contains(&server),
        "{in_there:?}"
    );
}

#[test]
fn the_fd_table_of_another_namespace_is_not_read() {
    let Some(mut here) = Lab::new("unscanned-here") else {
        return;
    };
    let Some(mut there) = Lab::new("unscanned-there") else {
        return;
    };
    let have_strace = Command::new("strace").arg("-V").output().is_ok();
    if !have_strace {
        say("SKIP the_fd_table_of_another_namespace_is_not_read: needs strace");
        return;
    }
    let server = here.spawn("leak_server", &["--port", "7001"]);
    let holder = there.spawn("holder", &["--port", "7001", "--n", "50"]);
    let trace = here.path("trace");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=openat", "-o"])
        .arg(&trace)
        .args([CONNLEAK, "--netns", &here.ns, "--json", "--fd-scan", "proc"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let trace = std::fs::read_to_string(trace).unwrap();
    let opened = |pid: &Value| trace.contains(&format!("\"{pid}/fd\""));
    assert!(
        opened(&server["pid"]),
        "the scan reads this namespace's fds"
    );
    assert!(
        !opened(&holder["pid"]),
        "the other namespace's fds are not read"
    );
}

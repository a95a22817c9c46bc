//! A process whose fd table is denied, even to root, is counted as denied,
//! and its sockets are never told as held by no process. Real sockets in a
//! private namespace; needs root and setpriv (skips visibly otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{CONNLEAK, Lab, say};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

/// A process whose fd table is denied, even to root (here: root without
/// CAP_SYS_PTRACE and a listener of another user; elsewhere a security module
/// or a user namespace), is counted as denied, and its listener is told as
/// held by a process not seen, never as closed or not yet accepted.
#[test]
fn a_denied_fd_table_is_counted_and_said() {
    let Some(mut lab) = Lab::new("denied") else {
        return;
    };
    if !lab.try_exec(&["setpriv", "--version"]) {
        say("SKIP a_denied_fd_table_is_counted_and_said: needs setpriv");
        return;
    }
    // Listens as root, then becomes nobody (python3 may be out of nobody's reach).
    lab.start_program(
        "nobody",
        &[
            "python3",
            "-c",
            "import os, socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', 7300))\n\
             s.listen()\nos.setgid(65534)\nos.setuid(65534)\ntime.sleep(120)",
        ],
    );
    let without_ptrace = |args: &[&str]| {
        let mut all = vec![
            "setpriv",
            "--inh-caps=-sys_ptrace",
            "--bounding-set=-sys_ptrace",
            CONNLEAK,
            "--fd-scan",
            "proc",
        ];
        all.extend_from_slice(args);
        Command::new("ip")
            .args(["netns", "exec", &lab.ns])
            .args(&all)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let report = loop {
        let out = without_ptrace(&["--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        if r["summary"]["states"]["LISTEN"] == 1 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        report["unreadable"]["processes_denied"].as_u64() >= Some(1),
        "{report}"
    );
    assert_eq!(report["summary"]["held_unseen"], 1, "{report}");
    let text = String::from_utf8(without_ptrace(&[]).stdout).unwrap();
    assert!(text.contains("1 held by processes not seen"), "{text}");
    assert!(!text.contains("not yet accepted"), "{text}");
}

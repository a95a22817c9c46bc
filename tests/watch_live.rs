//! `connleak watch` in a real terminal (tmux): it starts, shows the leak,
//! refreshes, quits on `q`, and leaves the terminal as it found it. Needs root
//! and tmux (skips visibly otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{CONNLEAK, Lab, say};
use std::process::Command;
use std::time::{Duration, Instant};

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits up to 30 s for `ready` to hold.
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn watch_starts_refreshes_and_quits_cleanly() {
    if Command::new("tmux").arg("-V").output().is_err() {
        say("SKIP watch_starts_refreshes_and_quits_cleanly: needs tmux");
        return;
    }
    let Some(mut lab) = Lab::new("watch") else {
        return;
    };
    lab.spawn("leak_server", &["--port", "7001"]);
    lab.spawn("clients", &["--port", "7001", "--n", "12"]);
    let dir = lab.path("");
    let d = dir.to_str().unwrap();
    let script = format!(
        "stty -g > {d}/before; ip netns exec {ns} {CONNLEAK} watch --interval 1 \
         --close-wait-min-age 0; echo $? > {d}/rc; stty -g > {d}/after; sleep 60",
        ns = lab.ns
    );
    let session = format!("connleak-{}", lab.ns);
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "100",
        "-y",
        "40",
        &script,
    ]);
    let screen = || tmux(&["capture-pane", "-p", "-t", &session]);
    wait_for("the first screen", || screen().contains("close_wait_leak"));
    wait_for("a refresh", || screen().contains("refresh #2"));
    let shown = screen();
    assert!(shown.contains("12 CLOSE_WAIT"), "{shown}");
    tmux(&["send-keys", "-t", &session, "q"]);
    wait_for("the exit", || dir.join("after").exists());
    let rc = std::fs::read_to_string(dir.join("rc")).unwrap();
    let before = std::fs::read_to_string(dir.join("before")).unwrap();
    let after = std::fs::read_to_string(dir.join("after")).unwrap();
    tmux(&["kill-session", "-t", &session]);
    assert_eq!(rc.trim(), "0");
    assert_eq!(before, after, "terminal settings restored");
}

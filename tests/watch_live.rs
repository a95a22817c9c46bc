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

/// Whether tmux is there; a SKIP line when not.
fn have_tmux(test: &str) -> bool {
    let there = Command::new("tmux").arg("-V").output().is_ok();
    if !there {
        say(&format!("SKIP {test}: needs tmux"));
    }
    there
}

/// Starts `script` in a detached tmux session named `session`, of `cols` x 40.
fn new_session(session: &str, cols: u16, script: &str) {
    tmux(&[
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        &cols.to_string(),
        "-y",
        "40",
        script,
    ]);
}

/// Starts `script` in a detached tmux session of `cols` x 40; returns its name.
fn start(lab: &Lab, cols: u16, script: &str) -> String {
    let session = format!("connleak-{}", lab.ns);
    new_session(&session, cols, script);
    session
}

#[test]
fn watch_starts_refreshes_and_quits_cleanly() {
    if !have_tmux("watch_starts_refreshes_and_quits_cleanly") {
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
    let session = start(&lab, 100, &script);
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

/// A leak that grows while the view is open shows its growth, its sparkline
/// and the process's trend within three refreshes; the footer says when the
/// last collection was.
#[test]
fn watch_shows_a_growing_leak_growing() {
    if !have_tmux("watch_shows_a_growing_leak_growing") {
        return;
    }
    let Some(mut lab) = Lab::new("watchgrow") else {
        return;
    };
    lab.spawn("leak_server", &["--port", "7001"]);
    lab.spawn(
        "churn",
        &[
            "--port", "7001", "--n", "0", "--wait", "0.1", "--kind", "send",
        ],
    );
    let script = format!(
        "ip netns exec {ns} {CONNLEAK} watch --interval 1 --close-wait-min-age 0; sleep 60",
        ns = lab.ns
    );
    let session = start(&lab, 120, &script);
    let screen = || tmux(&["capture-pane", "-p", "-t", &session]);
    let grown = |s: &str| s.contains("trend: ") && s.contains("/min over the last");
    wait_for("a trend line", || grown(&screen()));
    let shown = screen();
    tmux(&["send-keys", "-t", &session, "q"]);
    tmux(&["kill-session", "-t", &session]);
    let refresh: u32 = shown
        .split("refresh #")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        refresh <= 3,
        "growth shown only at refresh #{refresh}:\n{shown}"
    );
    let line = shown
        .lines()
        .find(|l| l.contains("trend: "))
        .unwrap_or_default();
    assert!(
        line.chars().any(|c| ('▁'..='█').contains(&c)) && line.contains('+'),
        "a sparkline and a positive rate: {line}\n{shown}"
    );
    assert!(shown.contains("SOCKETS TREND"), "{shown}");
    assert!(shown.contains("collected 20"), "footer: {shown}");
}

/// `watch --trace`: a leak born while the view is open shows the call site
/// of its sockets (a C server built in the test, accepting at `accept_client`).
#[test]
fn watch_trace_shows_where_the_leaking_sockets_were_born() {
    if !have_tmux("watch_trace_shows_where_the_leaking_sockets_were_born") {
        return;
    }
    let Some(mut lab) = Lab::new("watchtrace") else {
        return;
    };
    if !common::have("gcc", &["--version"]) {
        say("SKIP watchtrace: needs gcc");
        return;
    }
    let births = &common::c_program("births");
    lab.spawn_program("server", &[births], &["server", "7001", "keep"]);
    let script = format!(
        "ip netns exec {ns} {CONNLEAK} watch --trace --interval 1 --close-wait-min-age 0; \
         sleep 60",
        ns = lab.ns
    );
    let session = start(&lab, 200, &script);
    let screen = || tmux(&["capture-pane", "-p", "-t", &session]);
    wait_for("the first screen", || screen().contains("refresh #"));
    lab.spawn_program("clients", &[births], &["client", "7001", "10", "close"]);
    wait_for("a call site", || screen().contains("accept_client"));
    let shown = screen();
    tmux(&["send-keys", "-t", &session, "q"]);
    tmux(&["kill-session", "-t", &session]);
    let line = shown
        .lines()
        .find(|l| l.contains("born 10 at "))
        .unwrap_or_default();
    // From the caller of glibc's accept() on: the wrapper is left out of the line.
    assert!(line.contains("born 10 at accept_client ("), "{shown}");
}

const NARROW_FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fd-limit.json");

/// In a 60-column pane the report and the live view keep every line within
/// the pane, numbers and headers whole, and the title on screen. Needs tmux
/// only: it reads a saved snapshot.
#[test]
fn sixty_columns_split_no_number() {
    if !have_tmux("sixty_columns_split_no_number") {
        return;
    }
    sixty_columns("narrow", |_| std::path::PathBuf::from(NARROW_FIXTURE));
}

/// The same with every process in a pod of a long name: the WORKLOAD column
/// is cut or goes, never a count.
#[test]
fn sixty_columns_with_workloads_split_no_number() {
    if !have_tmux("sixty_columns_with_workloads_split_no_number") {
        return;
    }
    sixty_columns("narrow-wl", |dir| {
        let mut snapshot: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(NARROW_FIXTURE).unwrap()).unwrap();
        for p in snapshot["processes"].as_array_mut().unwrap() {
            p["workload"] = serde_json::json!({
                "kind": "containerd", "name": "kube-system/coredns-5d78c9869d-abcde",
                "container_id": null, "pod": "coredns-5d78c9869d-abcde",
                "namespace": "kube-system", "container": "coredns",
                "cgroup": "/kubepods/burstable/pod1/x"});
        }
        let path = dir.join("snapshot.json");
        std::fs::write(&path, serde_json::to_vec(&snapshot).unwrap()).unwrap();
        path
    });
}

/// Runs the report and the live view of the snapshot `fixture` writes into
/// a directory, in a 60-column pane, and checks them.
fn sixty_columns(name: &str, fixture: impl Fn(&std::path::Path) -> std::path::PathBuf) {
    let session = format!("connleak-{name}-{}", std::process::id());
    let dir = std::env::temp_dir().join(&session);
    std::fs::create_dir_all(&dir).unwrap();
    let fixture = fixture(&dir);
    let fixture = fixture.display();
    let report = dir.join("report");
    let script = format!(
        "COLUMNS=60 {CONNLEAK} --from {fixture} --config /dev/null > {r}; \
         {CONNLEAK} watch --from {fixture} --config /dev/null --interval 1; sleep 60",
        r = report.display()
    );
    new_session(&session, 60, &script);
    let screen = || tmux(&["capture-pane", "-p", "-t", &session]);
    wait_for("the live view", || screen().contains("refresh #2"));
    let live = screen();
    tmux(&["send-keys", "-t", &session, "q"]);
    tmux(&["kill-session", "-t", &session]);
    let plain = std::fs::read_to_string(&report).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    for (what, text) in [("report", &plain), ("watch", &live)] {
        for line in text.lines() {
            assert!(line.chars().count() <= 60, "{what}: too wide: {line:?}");
        }
        let header = text
            .lines()
            .find(|l| l.trim_start().starts_with("PID"))
            .unwrap_or_else(|| panic!("{what}: no process table:\n{text}"));
        for word in ["PID", "PROCESS", "CLOSE_WAIT", "FDS"] {
            assert!(
                header.split_whitespace().any(|w| w == word),
                "{what}: {header}"
            );
        }
        let row = text
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("PID"))
            .nth(2)
            .unwrap();
        let pid = row.split_whitespace().next().unwrap();
        assert!(
            pid.len() >= 3 && pid.chars().all(|c| c.is_ascii_digit()),
            "{what}: the pid is whole: {row}"
        );
    }
    assert!(live.starts_with("connleak watch - refresh #"), "{live}");
}

/// Regression: any key forced a collection (12 key presses in 2 s gave 13
/// refreshes, and per-minute rates over 2 s). Now a key that means nothing
/// is ignored, and `r` refreshes now, as the title says. Needs tmux only: it
/// reads a saved snapshot.
#[test]
fn only_r_refreshes_before_the_interval() {
    if !have_tmux("only_r_refreshes_before_the_interval") {
        return;
    }
    let session = format!("connleak-keys-{}", std::process::id());
    let script = format!(
        "{CONNLEAK} watch --from {NARROW_FIXTURE} --config /dev/null --interval 600; sleep 60"
    );
    new_session(&session, 100, &script);
    let screen = || tmux(&["capture-pane", "-p", "-t", &session]);
    wait_for("the first screen", || screen().contains("refresh #1"));
    assert!(screen().contains("r refreshes now"), "{}", screen());
    tmux(&["send-keys", "-t", &session, "xxxxxx x+12"]);
    std::thread::sleep(Duration::from_millis(1500));
    let after_keys = screen();
    tmux(&["send-keys", "-t", &session, "r"]);
    let refreshed = std::panic::catch_unwind(|| wait_for("r", || screen().contains("refresh #2")));
    tmux(&["send-keys", "-t", &session, "q"]);
    tmux(&["kill-session", "-t", &session]);
    assert!(
        after_keys.contains("refresh #1"),
        "keys other than r refreshed:\n{after_keys}"
    );
    assert!(refreshed.is_ok(), "r did not refresh");
}

//! connleak on a host in trouble: processes and connections churning under
//! the scan, hostile process names, no privileges, and the promise that a
//! run changes nothing. Real processes and sockets in private namespaces;
//! needs root (skips visibly otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{CONNLEAK, Lab};
use connleak::collect::procfs::lossless_text;
use connleak::render::text::escape;
use connleak::snapshot::Snapshot;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Hundreds of processes a second that connect, exit, close or exec, a
/// process opening and closing fds, and a client churning short
/// connections, while connleak runs again and again: every run succeeds,
/// counts each socket once, and counts the processes that vanished under it.
#[test]
fn churn_never_breaks_a_run() {
    let Some(mut lab) = Lab::new("churn") else {
        return;
    };
    lab.spawn("echo_server", &["--port", "7009"]);
    lab.spawn("spawner", &["--port", "7009", "--n", "300"]);
    lab.spawn("flapper", &["--port", "7009", "--n", "50"]);
    lab.spawn("churn", &["--port", "7009", "--n", "0", "--wait", "0.002"]);
    std::thread::sleep(Duration::from_millis(500));
    let saved = lab.path("churn.json");
    let (mut runs, mut vanished, mut most) = (0, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(90);
    while runs < 15 || (vanished == 0 && Instant::now() < deadline) {
        let out = lab.connleak_output(&["--json", "--save", saved.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "run {runs} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let snapshot = Snapshot::load(&saved).unwrap();
        each_socket_once(&snapshot, &report);
        vanished += report["unreadable"]["processes_vanished"].as_u64().unwrap();
        most = most.max(snapshot.sockets.len());
        runs += 1;
    }
    assert!(
        vanished > 0,
        "{runs} runs under churn and no process ever vanished mid-scan: not counted?"
    );
    assert!(most > 20, "the churn made only {most} sockets");
}

/// The snapshot holds each socket once, and the report counts what the snapshot holds.
fn each_socket_once(snapshot: &Snapshot, report: &Value) {
    let n = snapshot.sockets.len();
    let cookies: HashSet<u64> = snapshot
        .sockets
        .iter()
        .map(|s| {
            s.cookie()
                .expect("sock_diag gives every socket a cookie")
                .get()
        })
        .collect();
    assert_eq!(cookies.len(), n, "a socket appears twice");
    let inodes: Vec<u64> = snapshot
        .sockets
        .iter()
        .map(|s| s.inode())
        .filter(|&i| i != 0)
        .collect();
    let distinct: HashSet<&u64> = inodes.iter().collect();
    assert_eq!(distinct.len(), inodes.len(), "an inode appears twice");
    assert_eq!(report["summary"]["sockets"], n);
    let by_state: u64 = report["summary"]["states"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_state, n as u64);
    let pids: Vec<&Value> = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["pid"])
        .collect();
    let distinct: HashSet<String> = pids.iter().map(|p| p.to_string()).collect();
    assert_eq!(distinct.len(), pids.len(), "a process appears twice");
}

/// What /proc shows of the hostile server, as the ready file gives it in hex.
fn shown(ready: &Value, key: &str) -> Vec<u8> {
    let hex = ready[key]
        .as_str()
        .expect("hostile names in the ready file");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// A leaking server that named itself with terminal escapes, a newline,
/// quotes, backslashes, invalid UTF-8 and a 4 KiB argument: the table and
/// `check` show it escaped, the JSON and Prometheus carry it intact.
#[test]
fn hostile_process_names_are_escaped_and_intact() {
    let Some(mut lab) = Lab::new("hostile") else {
        return;
    };
    let server = lab.spawn("leak_server", &["--port", "7001", "--hostile"]);
    lab.spawn("clients", &["--port", "7001", "--n", "10"]);
    let pid = server["pid"].as_u64().unwrap();
    let comm_bytes = shown(&server, "comm_hex");
    let comm = lossless_text(comm_bytes.strip_suffix(b"\n").unwrap());
    let cmdline_bytes = shown(&server, "cmdline_hex");
    let args: Vec<&[u8]> = cmdline_bytes
        .strip_suffix(b"\0")
        .unwrap()
        .split(|&b| b == 0)
        .collect();
    let cmdline = lossless_text(&args.join(&b' '));
    assert!(comm.contains('\x1b') && comm.contains('\n') && comm.contains("\\xff"));
    assert!(cmdline.len() > 4096 && cmdline.contains('\x07'));

    let report = lab.report(&["--close-wait-min-age", "0"]);
    let process = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
        .expect("the hostile server is in the report");
    assert_eq!(process["comm"], comm.as_str());
    assert_eq!(process["cmdline"], cmdline.as_str());
    let leak = common::findings(&report, "close_wait_leak");
    assert_eq!(leak[0]["comm"], comm.as_str());

    let table = lab.connleak_output(&["--close-wait-min-age", "0"]);
    let check = lab.connleak_output(&["check", "-v", "--close-wait-min-age", "0"]);
    for (what, out) in [("table", &table), ("check", &check)] {
        let text = String::from_utf8(out.stdout.clone()).expect("output is UTF-8");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{what} passes a control character: {text:?}"
        );
        assert!(text.contains(escape(&comm).as_ref()), "{what}: {text}");
        assert!(
            !text.lines().any(|l| l.starts_with("\"q")),
            "{what}: the name's newline broke a line: {text}"
        );
    }
    assert_eq!(check.status.code(), Some(1));

    let prom = lab.path("hostile.prom");
    let out = lab.connleak_output(&["--prometheus", "--output", prom.to_str().unwrap()]);
    assert!(out.status.success());
    // `cat` of the file must not move the terminal: no raw ESC, BEL or other control byte.
    let bytes = std::fs::read(&prom).unwrap();
    assert!(
        !bytes.iter().any(|&b| b < 0x20 && b != b'\n'),
        "raw control bytes in the .prom file"
    );
    let Some(samples) = common::prometheus_samples(&prom) else {
        return;
    };
    // The parser keeps each control character (the newline aside) as visible text: `\x1b`.
    let comm_label: String = comm
        .chars()
        .map(|c| match c {
            c if c.is_control() && c != '\n' => format!("\\x{:02x}", c as u32),
            c => c.to_string(),
        })
        .collect();
    let pid = pid.to_string();
    let labels = [
        ("pid", pid.as_str()),
        ("comm", comm_label.as_str()),
        ("state", "CLOSE_WAIT"),
    ];
    assert_eq!(
        common::sample(&samples, "connleak_process_sockets", &labels),
        Some(10.0),
        "the comm label does not round-trip: {samples:?}"
    );
}

/// Runs connleak in the namespace as `nobody`.
fn as_nobody(lab: &Lab, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", &lab.ns, "setpriv"])
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(CONNLEAK)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Unprivileged, `check` still sees the whole socket table and so still
/// judges (WARNING, not UNKNOWN); the report says once what it could not see.
#[test]
fn unprivileged_check_judges_and_says_what_it_missed() {
    let Some(mut lab) = Lab::new("nobody-check") else {
        return;
    };
    lab.spawn("leak_server", &["--port", "7001"]);
    lab.spawn("clients", &["--port", "7001", "--n", "10"]);
    let check = as_nobody(&lab, &["check", "--close-wait-min-age", "0"]);
    let line = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{line}");
    assert!(line.starts_with("CONNLEAK WARNING"), "{line}");
    assert!(
        line.contains("owners of") && line.contains("unknown"),
        "{line}"
    );

    let table = as_nobody(&lab, &["--close-wait-min-age", "0"]);
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert_eq!(text.matches("permission denied").count(), 1, "{text}");

    // Nothing collected at all (a namespace it may not enter): UNKNOWN.
    let entering = as_nobody(&lab, &["check", "--netns", &lab.ns]);
    assert_eq!(entering.status.code(), Some(3));
}

/// Everything the kernel shows of the namespace that a run could change:
/// its sysctls, its processes (pid, state, pending signals) and its sockets.
fn system_state(lab: &Lab) -> BTreeMap<String, String> {
    let run = |cmd: &[&str]| {
        let out = Command::new("ip")
            .args(["netns", "exec", &lab.ns])
            .args(cmd)
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut state = BTreeMap::new();
    for line in run(&["sysctl", "-a"]).lines() {
        if let Some((key, value)) = line.split_once(" = ") {
            // Counters the kernel moves by itself are not settings.
            let moving = [
                "random",
                "ns_last_pid",
                "-nr",
                "_nr",
                // Terminals other tests open (tmux) move the global pty count.
                ".nr",
                "dentry-state",
                "state",
            ];
            if !moving.iter().any(|m| key.contains(m)) {
                state.insert(format!("sysctl {key}"), value.to_string());
            }
        }
    }
    let mut sockets: Vec<&str> = Vec::new();
    let ss = run(&["ss", "-Htan"]);
    sockets.extend(ss.lines());
    sockets.sort_unstable();
    state.insert("sockets".into(), sockets.join("\n"));
    let pids = Command::new("ip")
        .args(["netns", "pids", &lab.ns])
        .output()
        .unwrap();
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let keep: Vec<&str> = status
            .lines()
            .filter(|l| {
                ["State", "SigPnd", "ShdPnd"]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
            .collect();
        state.insert(format!("pid {pid}"), keep.join(" "));
    }
    state
}

/// Every mode of connleak, run in and on the namespace, leaves its sysctls,
/// processes and sockets as they were.
#[test]
fn a_run_changes_nothing() {
    let Some(mut lab) = Lab::new("readonly") else {
        return;
    };
    lab.spawn("leak_server", &["--port", "7001"]);
    lab.spawn(
        "clients",
        &["--port", "7001", "--n", "10", "--kind", "halfclose"],
    );
    lab.spawn("pool_server", &["--port", "7002", "--n", "2"]);
    lab.spawn("idle_pool", &["--port", "7002", "--n", "4"]);
    std::thread::sleep(Duration::from_millis(300));
    let before = system_state(&lab);
    let prom = lab.path("readonly.prom");
    let snap = lab.path("readonly.json");
    let modes: [&[&str]; 6] = [
        &[],
        &["--json", "--save", snap.to_str().unwrap()],
        &["--prometheus", "--output", prom.to_str().unwrap()],
        &["check", "-v"],
        &["--samples", "2", "--interval", "0.2", "--source", "proc"],
        &["--all-netns", "--json"],
    ];
    for args in modes {
        let out = lab.connleak_output(args);
        let printed = !out.stdout.is_empty() || args.contains(&"--output");
        assert!(
            matches!(out.status.code(), Some(0..=2)) && printed,
            "connleak {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let after = system_state(&lab);
    let changed: Vec<String> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: {v:?} -> {:?}", after.get(k)))
        .collect();
    assert!(changed.is_empty(), "a run changed the system: {changed:#?}");
    assert_eq!(before.len(), after.len());
    assert!(
        before
            .keys()
            .any(|k| k.starts_with("sysctl net.ipv4.tcp_fin_timeout"))
    );
}

#[test]
fn read_only_promise_is_documented() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let man = std::fs::read_to_string(format!("{root}/man/connleak.1")).unwrap();
    for (what, text) in [("README", readme), ("man page", man)] {
        assert!(
            text.contains("never changes the system"),
            "the {what} does not state that connleak is read-only"
        );
    }
}

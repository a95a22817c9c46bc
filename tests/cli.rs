//! The binary's contract with its caller: exit codes, one-line errors, explain.
//! No root needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{CONNLEAK, fixture};
use std::process::{Command, Output};

/// Runs connleak with `RUST_BACKTRACE=1`, as a developer's shell often sets
/// it: errors must stay one line all the same.
fn run(args: &[&str]) -> Output {
    Command::new(CONNLEAK)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("CONNLEAK_BACKTRACE")
        .output()
        .unwrap()
}

/// Writes `content` to a temporary file and runs `connleak --from` on it.
fn from_bytes(name: &str, content: &[u8]) -> Output {
    let path = std::env::temp_dir().join(format!("connleak-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    let out = run(&["--from", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    out
}

fn assert_one_line_error(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("connleak: error: "), "{err}");
    assert!(err.contains(needle), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_snapshots_get_one_line_and_exit_2() {
    assert_one_line_error(
        &run(&["--from", "/nonexistent/snap.json"]),
        "cannot read snapshot",
    );
    let good = std::fs::read(fixture("leak.json")).unwrap();
    let truncated = from_bytes("truncated", &good[..good.len() / 2]);
    assert_one_line_error(&truncated, "is not a connleak snapshot: EOF while parsing");
    let wrong_version = from_bytes("version", br#"{"snapshot_version": 99}"#);
    assert_one_line_error(
        &wrong_version,
        "has format version 99; this connleak reads version 1",
    );
    let wrong_type = String::from_utf8(good.clone()).unwrap().replacen(
        "\"recv_q\": 0",
        "\"recv_q\": \"zero\"",
        1,
    );
    assert_one_line_error(
        &from_bytes("type", wrong_type.as_bytes()),
        "expected u32 at line",
    );
    let deep = format!(
        r#"{{"snapshot_version": 1, "meta": {}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_one_line_error(
        &from_bytes("deep", deep.as_bytes()),
        "is not a connleak snapshot",
    );
    assert_one_line_error(&from_bytes("empty", b""), "is not a connleak snapshot");
    // Huge: a sparse file over the limit, and a device that never ends.
    let huge = std::env::temp_dir().join(format!("connleak-cli-{}-huge", std::process::id()));
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    let out = run(&["--from", huge.to_str().unwrap()]);
    std::fs::remove_file(&huge).unwrap();
    assert_one_line_error(&out, "larger than the 1073741824-byte limit");
    assert_one_line_error(
        &run(&["--from", "/dev/zero"]),
        "/dev/zero is not a connleak snapshot: it starts with byte 0x00, not '{'",
    );
    assert_one_line_error(
        &run(&["--from", "/"]),
        "cannot read snapshot /: Is a directory",
    );
}

/// Errors name what failed and what to do about it.
#[test]
fn errors_say_what_to_do() {
    assert_one_line_error(
        &run(&["--netns", "connleak-test-no-such-namespace"]),
        "/run/netns/connleak-test-no-such-namespace: No such file or directory (os error 2) \
         (no such namespace: `ip netns list` names them)",
    );
    let gone = run(&["check", "--netns-pid", "4000000000"]);
    assert_eq!(gone.status.code(), Some(3));
    let line = String::from_utf8(gone.stdout).unwrap();
    assert!(
        line.starts_with("CONNLEAK UNKNOWN - ")
            && line.contains("/proc/4000000000/ns/net")
            && line.contains("no such process"),
        "{line}"
    );
    let config = std::env::temp_dir().join(format!("connleak-cli-{}.toml", std::process::id()));
    std::fs::write(&config, "close_wait_warn = \"many\"\n").unwrap();
    let bad = run(&[
        "--from",
        &fixture("leak.json"),
        "--config",
        config.to_str().unwrap(),
    ]);
    std::fs::remove_file(&config).unwrap();
    // One short line: the file, the line, the key and what it accepts; no list of keys.
    assert_one_line_error(
        &bad,
        &format!(
            "configuration {} line 1: close_wait_warn must be a whole number, 0 or more, not a \
             string",
            config.display()
        ),
    );
    assert!(
        bad.stderr.len() < 200,
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert_one_line_error(
        &run(&[
            "--from",
            &fixture("leak.json"),
            "--output",
            "/nonexistent/dir/out.txt",
        ]),
        "writing /nonexistent/dir/out.txt: No such file or directory",
    );
}

/// `trace` of a saved snapshot: the diagnosis at once, and one line saying
/// that it has no call sites.
#[test]
fn trace_from_a_fixture_says_it_was_not_traced() {
    let out = run(&["trace", "--from", &fixture("leak.json"), "--json"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err,
        "connleak: note: no call sites: a saved snapshot (--from) was not traced\n"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "warning");
    assert!(report.get("trace").is_none());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("call_sites"));
}

#[test]
fn from_a_fixture_needs_no_root() {
    let out = run(&["--from", &fixture("leak.json"), "--json"]);
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["status"], "warning");
    assert_eq!(report["netns"]["name"], "fx-leak");
    assert_eq!(report["taken_at"], "2026-11-25T04:15:00.895Z");
    // One sample is no window: no trend, no growth, no "flat over 0 s" evidence.
    let f = &report["findings"][0];
    assert!(
        f.get("growth_per_s").is_none() && f.get("trend").is_none(),
        "{f:#}"
    );
    assert!(report.get("trend").is_none());
    assert!(!f["evidence"].to_string().contains(" over 0 s"), "{f:#}");
}

#[test]
fn explain_tells_the_state_machine() {
    let out = run(&["explain", "close-wait"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("CLOSE_WAIT (RFC 9293: CLOSE-WAIT)"),
        "{text}"
    );
    assert!(text.contains("only the application's close()"), "{text}");
    let tw = String::from_utf8(run(&["explain", "TIME_WAIT"]).stdout).unwrap();
    assert!(tw.contains("fixed 60 s"), "{tw}");
    let all = String::from_utf8(run(&["explain"]).stdout).unwrap();
    assert!(
        all.contains("CLOSE_WAIT") && all.contains("worker_pool_exhausted"),
        "{all}"
    );
    let kind = String::from_utf8(run(&["explain", "accept_queue_full"]).stdout).unwrap();
    assert!(kind.starts_with("accept_queue_full: "), "{kind}");
    let bad = run(&["explain", "LEAKING"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("unknown state, finding kind or cause") && err.contains("close_wait_leak"),
        "{err}"
    );
}

/// `explain` knows every cause the JSON can name, from the rules' own enums.
#[test]
fn explain_answers_for_every_cause() {
    for cause in connleak::diagnose::Cause::all() {
        let out = run(&["explain", cause.name()]);
        assert!(out.status.success(), "{}", cause.name());
        let text = String::from_utf8(out.stdout).unwrap();
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(cause.about()), "{}: {text}", cause.name());
        assert!(
            flat.contains(&format!("cause of {}", cause.kind())),
            "{text}"
        );
    }
}

/// Each subcommand's help lists what it accepts and nothing it refuses.
#[test]
fn help_lists_only_what_each_subcommand_accepts() {
    let help = |sub: &str| String::from_utf8(run(&[sub, "--help"]).stdout).unwrap();
    let flags = |text: &str| -> Vec<String> {
        // The flag that opens each option's entry, not the ones its text mentions.
        text.lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with('-'))
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")))
            .map(|w| w.trim_end_matches(',').to_string())
            .collect()
    };
    for (sub, absent, present) in [
        (
            "check",
            &["--json", "--prometheus", "--color"][..],
            &["--output", "--save", "--fd-warn"][..],
        ),
        (
            "watch",
            &["--json", "--prometheus", "--output", "--save", "--samples"],
            &["--interval", "--color", "--fd-warn"],
        ),
        (
            "explain",
            &["--close-wait-warn", "--port", "--json", "--from"],
            &["--output"],
        ),
        (
            "completions",
            &["--close-wait-warn", "--idle", "--json"],
            &["--output"],
        ),
    ] {
        let listed = flags(&help(sub));
        for flag in absent {
            assert!(
                !listed.iter().any(|f| f == flag),
                "{sub} --help lists {flag}"
            );
        }
        for flag in present {
            assert!(
                listed.iter().any(|f| f == flag),
                "{sub} --help lacks {flag}"
            );
        }
    }
}

#[test]
fn check_says_unknown_when_it_cannot_collect() {
    let out = run(&["check", "--from", "/nonexistent/snap.json"]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("CONNLEAK UNKNOWN - cannot read snapshot"),
        "{text}"
    );
    let ok = run(&["check", "--from", &fixture("leak.json")]);
    assert_eq!(ok.status.code(), Some(1));
}

/// After `explain`, the states, kinds and causes; after `--state`, the states.
#[test]
fn completions_offer_topics_and_states() {
    let bash = String::from_utf8(run(&["completions", "bash"]).stdout).unwrap();
    let explain = bash
        .split("connleak__subcmd__explain)")
        .nth(1)
        .and_then(|s| s.lines().find(|l| l.trim_start().starts_with("opts=")))
        .unwrap_or_default();
    for topic in [
        "CLOSE_WAIT",
        "close_wait_leak",
        "never_closed_after_eof",
        "peer_gone",
    ] {
        assert!(explain.contains(topic), "{explain}");
    }
    assert!(!explain.contains("--close-wait-warn"), "{explain}");
    let state = bash
        .split("--state)")
        .nth(1)
        .and_then(|s| s.lines().nth(1))
        .unwrap_or_default();
    assert!(state.contains("compgen -W \"ESTABLISHED"), "{state}");
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("connleak") && text.contains("close-wait-warn"),
            "{shell}"
        );
    }
}

/// Timings name the fd scan that ran, also when it was asked for by name.
#[test]
fn timings_say_which_fd_scan_ran() {
    let out = Command::new(CONNLEAK)
        .args(["--fd-scan", "proc", "--json"])
        .env("CONNLEAK_TIMINGS", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("connleak: note fd tables read from /proc: --fd-scan proc"),
        "{err}"
    );
}

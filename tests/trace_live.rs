//! `connleak trace` on real programs built in the test (C with gcc, Go with
//! Debian's golang-go), in a private network namespace: the leaking
//! finding's top call site names the function that made its sockets, a twin
//! that closes its sockets raises nothing, sockets born before the trace
//! have no call site, and a run without privileges diagnoses as usual and
//! says why it has no call sites. Needs root (skips visibly otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{CONNLEAK, Lab, c_program, findings, have, say};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn c_lab(test: &str) -> Option<Lab> {
    let lab = Lab::new(test)?;
    if have("gcc", &["--version"]) {
        Some(lab)
    } else {
        say(&format!("SKIP {test}: needs gcc"));
        None
    }
}

/// A lab whose server on `port` already holds `n` CLOSE-WAIT sockets, all
/// born before any trace starts; and what the server wrote when ready.
fn leaked_before(test: &str, port: &str, n: &str) -> Option<(Lab, Value)> {
    let mut lab = c_lab(test)?;
    let births = &c_program("births");
    let server = lab.spawn_program("server", &[births], &["server", port, "keep"]);
    lab.spawn_program("client", &[births], &["client", port, n, "close"]);
    Some((lab, server))
}

/// `connleak trace --duration SECS --json ARGS` started in the lab's
/// namespace; [`finish`] waits for its report. It attaches at once: the
/// caller leaves it a moment before making sockets.
fn trace(lab: &Lab, secs: &str, args: &[&str]) -> Child {
    let child = Command::new("ip")
        .args(["netns", "exec", &lab.ns, CONNLEAK, "trace", "--json"])
        .args(["--duration", secs, "--close-wait-min-age", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start connleak trace");
    std::thread::sleep(Duration::from_millis(700));
    child
}

/// The report of a trace, asserting it ran and said nothing on stderr.
fn finish(child: Child) -> Value {
    let out = child.wait_with_output().expect("connleak trace ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "connleak trace failed: {stderr}");
    assert!(stderr.is_empty(), "nothing on stderr expected: {stderr}");
    serde_json::from_slice(&out.stdout).expect("connleak trace --json prints JSON")
}

/// The close_wait_leak finding of process `pid`.
fn leak_of<'a>(report: &'a Value, pid: &Value) -> &'a Value {
    findings(report, "close_wait_leak")
        .into_iter()
        .find(|f| &f["pid"] == pid)
        .unwrap_or_else(|| panic!("a close_wait_leak of pid {pid} expected: {report:#}"))
}

/// The functions of a call site's frames, innermost first.
fn functions(site: &Value) -> Vec<&str> {
    site["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["function"].as_str().unwrap())
        .collect()
}

/// A trace that could not start: it exited 0 with the diagnosis as usual
/// (the leak found, no call sites, no trace), and stderr is one line that
/// says `why`.
fn untraced(out: &Output, why: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("connleak: note: no call sites: "),
        "{stderr}"
    );
    assert!(stderr.contains(why), "{stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(!findings(&r, "close_wait_leak").is_empty(), "{r:#}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("call_sites"));
    assert!(r.get("trace").is_none());
}

/// Where `function` is in the call site: the caller of the libc wrapper
/// (frame 1), or the innermost frame itself.
fn called_from(site: &Value, function: &str) -> usize {
    let names = functions(site);
    let at = names.iter().position(|n| *n == function);
    assert!(
        at.is_some_and(|i| i <= 1),
        "{function} innermost: {names:?}"
    );
    at.unwrap()
}

/// A server that accepts and never closes, in a thread of its own: its
/// leak is traced to `accept_client` (the caller of glibc's `accept`, which
/// keeps no frame pointer, put back from the slot its unwind table gives),
/// with all 20 sockets born there and none closed. Its twin, which closes
/// what it accepts, has no leak.
#[test]
fn a_server_that_never_closes_is_traced_to_accept_client() {
    let Some(mut lab) = c_lab("trace-accept") else {
        return;
    };
    let births = &c_program("births");
    let leaky = lab.spawn_program("leaky", &[births], &["server", "7301", "keep"]);
    let tidy = lab.spawn_program("tidy", &[births], &["server", "7302", "hangup"]);
    let tracing = trace(&lab, "2.5", &[]);
    lab.spawn_program("to-leaky", &[births], &["client", "7301", "20", "close"]);
    lab.spawn_program("to-tidy", &[births], &["client", "7302", "20", "close"]);
    let r = finish(tracing);
    let f = leak_of(&r, &leaky["pid"]);
    assert_eq!(f["count"], 20);
    let top = &f["call_sites"][0];
    assert_eq!(top["count"], 20, "{f:#}");
    let at = called_from(top, "accept_client");
    assert!(functions(top).contains(&"serve_forever"));
    let frame = &top["frames"][at];
    assert!(frame["file"].as_str().unwrap().ends_with("births.c"));
    assert!(frame["line"].as_u64().is_some() && frame["module"].as_str().is_some());
    assert_eq!(
        (&top["born"], &top["closed"], &top["open"]),
        (&20.into(), &0.into(), &20.into())
    );
    assert_eq!(top["thread"], "acceptor");
    let leaks = findings(&r, "close_wait_leak");
    assert!(
        leaks.iter().all(|f| f["pid"] != tidy["pid"]),
        "the server that closes has no leak: {r:#}"
    );
    assert!(
        r["trace"]["births"].as_u64().unwrap() >= 80,
        "{:#}",
        r["trace"]
    );
    assert_eq!(r["trace"]["lost"], 0);
}

/// A client that connects and never closes what the server hangs up: its
/// CLOSE-WAIT is traced to `open_backend`, under `fetch_quotes`.
#[test]
fn a_client_that_never_closes_is_traced_to_its_connect() {
    let Some(mut lab) = c_lab("trace-connect") else {
        return;
    };
    let births = &c_program("births");
    lab.spawn_program("server", &[births], &["server", "7303", "hangup"]);
    let tracing = trace(&lab, "2", &[]);
    let client = lab.spawn_program("client", &[births], &["client", "7303", "12", "keep"]);
    let r = finish(tracing);
    let f = leak_of(&r, &client["pid"]);
    let top = &f["call_sites"][0];
    assert_eq!(top["count"], 12, "{f:#}");
    called_from(top, "open_backend");
    assert!(functions(top).contains(&"fetch_quotes"));
    assert_eq!(top["closed"], 0);
}

/// Sockets that were there when the trace started: no call site, and the
/// evidence says how many were born before it.
#[test]
fn sockets_born_before_the_trace_have_no_call_site() {
    let Some((lab, server)) = leaked_before("trace-before", "7304", "6") else {
        return;
    };
    std::thread::sleep(Duration::from_millis(300));
    let r = finish(trace(&lab, "0.5", &[]));
    let f = leak_of(&r, &server["pid"]);
    assert!(f.get("call_sites").is_none(), "{f:#}");
    let evidence = f["evidence"].to_string();
    assert!(
        evidence.contains("6 of 6 born before tracing started"),
        "{evidence}"
    );
}

/// Without privileges: exit 0, the diagnosis as usual, no call sites, and
/// one line on stderr saying what is missing.
#[test]
fn an_unprivileged_trace_diagnoses_and_says_why_it_has_no_call_sites() {
    let Some((lab, _)) = leaked_before("trace-unprivileged", "7305", "4") else {
        return;
    };
    let out = lab.connleak_unprivileged(&[
        "trace",
        "--json",
        "--duration",
        "0.3",
        "--close-wait-min-age",
        "0",
    ]);
    untraced(&out, "CAP_BPF and CAP_PERFMON");
}

/// A Go net/http client that never closes its response bodies: its leak is
/// traced through Go's own syscall path to net/http's dialer (Go binaries
/// carry their symbol table).
#[test]
fn a_go_client_leaking_response_bodies_is_traced_to_net_http() {
    let Some(mut lab) = Lab::new("trace-go") else {
        return;
    };
    if !have("go", &["version"]) {
        say("SKIP trace-go: needs go (golang-go)");
        return;
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/go/body_leak.go");
    let program = common::go_build("body_leak", &source);
    let bin = program.to_str().unwrap();
    lab.spawn_program("server", &[bin], &["server", "7306"]);
    let tracing = trace(&lab, "3", &[]);
    let url = "http://127.0.0.1:7306/";
    let client = lab.spawn_program("leak", &[bin], &["leak", url, "10"]);
    let r = finish(tracing);
    let f = leak_of(&r, &client["pid"]);
    let top = &f["call_sites"][0];
    assert_eq!(top["count"], 10, "{f:#}");
    let names = functions(top);
    assert!(
        names.iter().any(|n| n.starts_with("net/http.")),
        "a net/http frame: {names:?}"
    );
    assert!(names.iter().any(|n| n.starts_with("net.")), "{names:?}");
}

/// A Node client that never closes its connections: its call site reaches
/// through libuv and V8 into JavaScript, named from the perf map Node writes
/// with `--perf-basic-prof` (its `net` module's `internalConnect`, from
/// which the connect() is made on the next tick).
#[test]
fn a_node_client_is_traced_into_its_javascript() {
    let Some(mut lab) = c_lab("trace-node") else {
        return;
    };
    if !have("node", &["--version"]) {
        say("SKIP trace-node: needs node (nodejs)");
        return;
    }
    let births = &c_program("births");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/node/connect_client.js");
    lab.spawn_program("server", &[births], &["server", "7307", "hangup"]);
    let tracing = trace(&lab, "2.5", &[]);
    // In the lab's directory: --perf-basic-prof also writes V8's log where it runs.
    let dir = lab.path("");
    let node = [
        "sh",
        "-c",
        "cd \"$0\" && exec node --perf-basic-prof --interpreted-frames-native-stack \"$@\"",
        dir.to_str().unwrap(),
        script.to_str().unwrap(),
    ];
    let client = lab.spawn_program("node", &node, &["7307", "8"]);
    let perf_map = format!("/tmp/perf-{}.map", client["pid"]);
    let r = finish(tracing);
    let f = leak_of(&r, &client["pid"]);
    // V8 may have compiled the function between two connections: two stacks.
    let sites = f["call_sites"].as_array().unwrap();
    let counted: u64 = sites.iter().map(|s| s["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 8, "{f:#}");
    let top = &sites[0];
    let names = functions(top);
    assert!(names.contains(&"uv__tcp_connect"), "{names:?}");
    let js = top["frames"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"].as_str().unwrap().contains("internalConnect"))
        .unwrap_or_else(|| panic!("a JavaScript frame: {names:?}"));
    // JIT code: named from the perf map, in no file.
    assert!(
        js["function"].as_str().unwrap().starts_with("JS:"),
        "{js:#}"
    );
    assert_eq!(js["module"], Value::Null, "{js:#}");
    drop(lab);
    let _ = std::fs::remove_file(perf_map);
}

/// Where bpf() does not exist (a seccomp filter makes it fail with ENOSYS,
/// as on a kernel built without BPF): exit 0, the diagnosis as usual, and
/// one line on stderr saying that this kernel cannot trace births.
#[test]
fn a_trace_where_bpf_does_not_exist_diagnoses_and_says_why() {
    let Some((lab, _)) = leaked_before("trace-no-bpf", "7308", "3") else {
        return;
    };
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns,
            &c_program("no_bpf"),
            CONNLEAK,
            "trace",
        ])
        .args(["--json", "--duration", "0.3", "--close-wait-min-age", "0"])
        .output()
        .expect("run connleak trace without bpf()");
    untraced(
        &out,
        "cannot trace socket births: creating the births map: Function not implemented",
    );
}

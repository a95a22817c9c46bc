//! The cause catalogue on real runtimes: a JVM server on a fixed thread pool
//! and a Node server, each in its own network namespace, diagnosed with the
//! pool, the dependency and the runtime named, and the runtime's idioms in
//! the suggestion; plus the patterns that must not raise an alarm (free
//! workers behind idle keep-alive clients, requests unread for a moment).
//! Needs root (skips visibly otherwise), and java/javac or node (skips
//! visibly without them). The Java sources are compiled once per run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Lab, findings, process, say, warnings};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The compiled classes, once per test binary (reused by a later run with
/// the same sources, see `common::javac_once`). `None` without a JDK.
fn java_classes() -> Option<&'static Path> {
    static CLASSES: OnceLock<Option<PathBuf>> = OnceLock::new();
    CLASSES
        .get_or_init(|| {
            if !have("javac") || !have("java") {
                return None;
            }
            let dir = scenarios().join("java");
            let mut sources: Vec<PathBuf> = std::fs::read_dir(&dir)
                .expect("tests/scenarios/java")
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "java"))
                .collect();
            sources.sort();
            Some(common::javac_once("java", &sources, None))
        })
        .as_deref()
}

/// A lab and the classes, or `None` with a SKIP line.
fn java_lab(test: &str) -> Option<(Lab, &'static Path)> {
    let lab = Lab::new(test)?;
    match java_classes() {
        Some(classes) => Some((lab, classes)),
        None => {
            say(&format!(
                "SKIP {test}: needs java and javac (default-jdk-headless)"
            ));
            None
        }
    }
}

/// Starts `PoolServer PORT THREADS MODE [DEP]` on the JVM.
fn pool_server(lab: &mut Lab, classes: &Path, args: &[&str]) -> Value {
    lab.spawn_java("java", &classes.display().to_string(), "PoolServer", args)
}

fn the_finding<'a>(report: &'a Value, kind: &str) -> &'a Value {
    let found = findings(report, kind);
    assert_eq!(found.len(), 1, "one {kind} expected: {report:#}");
    found[0]
}

/// Four pool-1-thread workers held by idle clients; later requests unread.
/// The workers block in `call` (`mode` PoolServer's).
fn jvm_pool_exhausted_by_idle_clients(test: &str, mode: &str, call: &str) {
    let Some((mut lab, classes)) = java_lab(test) else {
        return;
    };
    let server = pool_server(&mut lab, classes, &["8080", "4", mode]);
    lab.spawn("clients", &["--port", "8080", "--n", "4", "--kind", "idle"]);
    std::thread::sleep(Duration::from_millis(300));
    lab.spawn(
        "clients",
        &[
            "--port", "8080", "--n", "12", "--kind", "close", "--wait", "0.3",
        ],
    );
    let report = lab.report(&[]);
    assert_eq!(process(&report, &server["pid"])["runtime"], "jvm");
    let f = the_finding(&report, "worker_pool_exhausted");
    assert_eq!(f["pid"], server["pid"]);
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["local"], "[::]:8080");
    assert_eq!(f["count"], 12);
    assert_eq!(f["cause"], "workers_blocked_on_reads");
    let evidence = f["evidence"].to_string();
    assert!(
        evidence.contains(&format!(
            "pool `pool-1-thread`: 4 of 4 threads blocked in {call}() on accepted clients (4 idle"
        )),
        "{evidence}"
    );
    assert!(evidence.contains("runtime: jvm"), "{evidence}");
    let suggestion = f["suggestion"].as_str().unwrap();
    assert!(suggestion.contains("setSoTimeout"), "{suggestion}");
    let pid = server["pid"].to_string();
    assert!(
        suggestion.contains(&format!("jcmd {pid} Thread.print")),
        "{suggestion}"
    );
    assert!(findings(&report, "event_loop_not_reading").is_empty());
}

#[test]
fn jvm_fixed_pool_exhausted_by_idle_clients() {
    jvm_pool_exhausted_by_idle_clients("jvm-pool", "read", "read");
}

/// With a read timeout the workers block in poll(): the fd is read from the
/// pollfd array and the pool is diagnosed the same.
#[test]
fn jvm_pool_with_read_timeouts_blocks_in_poll() {
    jvm_pool_exhausted_by_idle_clients("jvm-poll", "timeout", "poll");
}

/// Workers that wait on a dependency which accepts and never answers: the
/// dependency is named, and the fix is toward it, not a client read timeout.
#[test]
fn jvm_workers_blocked_on_a_silent_dependency() {
    let Some((mut lab, classes)) = java_lab("jvm-dep") else {
        return;
    };
    lab.spawn(
        "backlog_server",
        &["--port", "5432", "--n", "64", "--churn", "8"],
    );
    let server = pool_server(&mut lab, classes, &["8081", "4", "dependency", "5432"]);
    lab.spawn("clients", &["--port", "8081", "--n", "4", "--kind", "send"]);
    std::thread::sleep(Duration::from_millis(500));
    lab.spawn(
        "clients",
        &[
            "--port", "8081", "--n", "10", "--kind", "close", "--wait", "0.3",
        ],
    );
    let report = lab.report(&[]);
    let f = the_finding(&report, "worker_pool_exhausted");
    assert_eq!(f["pid"], server["pid"]);
    assert_eq!(f["count"], 10);
    assert_eq!(f["cause"], "workers_blocked_on_dependency");
    let evidence = f["evidence"].to_string();
    assert!(
        evidence.contains("pool `pool-1-thread`: 4 of 4 threads blocked in")
            && evidence.contains("waiting on 127.0.0.1:5432 (an outgoing dependency)"),
        "{evidence}"
    );
    let suggestion = f["suggestion"].as_str().unwrap();
    assert!(
        suggestion.contains("The workers wait on 127.0.0.1:5432")
            && suggestion.contains("bulkhead")
            && suggestion.contains("On the JVM"),
        "{suggestion}"
    );
}

/// Many idle keep-alive clients on a pool with free workers, and clients
/// served now and then: no warning.
#[test]
fn jvm_idle_keepalive_clients_with_free_workers_are_fine() {
    let Some((mut lab, classes)) = java_lab("jvm-healthy") else {
        return;
    };
    let server = pool_server(&mut lab, classes, &["8082", "32", "read"]);
    lab.spawn(
        "clients",
        &["--port", "8082", "--n", "20", "--kind", "idle"],
    );
    lab.spawn(
        "healthy_clients",
        &["--port", "8082", "--n", "4", "--churn", "20"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let report = lab.report(&[]);
    assert_eq!(process(&report, &server["pid"])["runtime"], "jvm");
    assert!(warnings(&report).is_empty(), "{report:#}");
}

/// A pool whose accept loop waits for a free worker: the accept queue fills,
/// and its finding says what the workers do and that nobody accepts.
#[test]
fn jvm_full_accept_queue_shows_its_workers() {
    let Some((mut lab, classes)) = java_lab("jvm-backlog") else {
        return;
    };
    let server = pool_server(&mut lab, classes, &["8083", "4", "bounded"]);
    lab.spawn("clients", &["--port", "8083", "--n", "4", "--kind", "idle"]);
    std::thread::sleep(Duration::from_millis(300));
    lab.spawn(
        "clients",
        &[
            "--port", "8083", "--n", "9", "--kind", "close", "--wait", "0.3",
        ],
    );
    let report = lab.report(&[]);
    let f = the_finding(&report, "accept_queue_full");
    assert_eq!(f["pid"], server["pid"]);
    let evidence = f["evidence"].to_string();
    assert!(
        evidence.contains(
            "accept queue 9 of 8; 4 of 4 worker threads (pool `pool-1-thread`) blocked in"
        ) && evidence.contains("on clients, 4 of them idle; no thread in accept()"),
        "{evidence}"
    );
}

/// Requests unread for a moment behind a busy pool are backpressure: no
/// worker-pool finding until they stay unread for --unread-min-age.
#[test]
fn requests_unread_for_a_moment_are_not_an_exhausted_pool() {
    let Some(mut lab) = Lab::new("backpressure") else {
        return;
    };
    lab.spawn("pool_server", &["--port", "7010", "--n", "4"]);
    lab.spawn("clients", &["--port", "7010", "--n", "4", "--kind", "idle"]);
    std::thread::sleep(Duration::from_millis(300));
    lab.spawn("clients", &["--port", "7010", "--n", "8", "--kind", "send"]);
    let report = lab.report(&[]);
    assert!(
        findings(&report, "worker_pool_exhausted").is_empty(),
        "{report:#}"
    );
    // The same sockets, with no minimum age: the pool is reported.
    let report = lab.report(&["--unread-min-age", "0"]);
    assert_eq!(the_finding(&report, "worker_pool_exhausted")["count"], 8);
}

fn node_lab(test: &str) -> Option<Lab> {
    let lab = Lab::new(test)?;
    if have("node") {
        Some(lab)
    } else {
        say(&format!("SKIP {test}: needs node (nodejs)"));
        None
    }
}

fn node_server(lab: &mut Lab, port: &str, mode: &str) -> Value {
    let script = scenarios().join("node/half_open_server.js");
    let script = script.display().to_string();
    lab.spawn_program("node", &["node", &script], &[port, mode])
}

/// allowHalfOpen and no socket.end(): a CLOSE_WAIT leak on Node, with Node's
/// idiom, and never a worker pool.
#[test]
fn node_half_open_server_leaks_close_wait() {
    let Some(mut lab) = node_lab("node-leak") else {
        return;
    };
    let server = node_server(&mut lab, "7020", "leak");
    lab.spawn(
        "clients",
        &[
            "--port", "7020", "--n", "12", "--kind", "close", "--wait", "0.3",
        ],
    );
    std::thread::sleep(Duration::from_millis(200));
    let report = lab.report(&["--close-wait-min-age", "0"]);
    assert_eq!(process(&report, &server["pid"])["runtime"], "node");
    let f = the_finding(&report, "close_wait_leak");
    assert_eq!(f["pid"], server["pid"]);
    assert_eq!(f["count"], 12);
    assert_eq!(f["cause"], "never_closed_after_eof");
    let suggestion = f["suggestion"].as_str().unwrap();
    assert!(
        suggestion.contains("In Node") && suggestion.contains("allowHalfOpen"),
        "{suggestion}"
    );
    assert!(
        findings(&report, "worker_pool_exhausted").is_empty(),
        "{report:#}"
    );
}

/// A Node server that stops reading its sockets: the event loop does not
/// read them; a few threads in epoll_wait are no worker pool.
#[test]
fn node_event_loop_that_does_not_read() {
    let Some(mut lab) = node_lab("node-paused") else {
        return;
    };
    let server = node_server(&mut lab, "7021", "pause");
    lab.spawn(
        "clients",
        &[
            "--port", "7021", "--n", "8", "--kind", "close", "--wait", "0.3",
        ],
    );
    std::thread::sleep(Duration::from_millis(200));
    let report = lab.report(&[]);
    assert!(
        findings(&report, "worker_pool_exhausted").is_empty(),
        "{report:#}"
    );
    let f = the_finding(&report, "event_loop_not_reading");
    assert_eq!(f["pid"], server["pid"]);
    assert_eq!(f["count"], 8);
    assert!(
        f["evidence"]
            .to_string()
            .contains("the event loop does not read these connections"),
        "{f:#}"
    );
    assert!(
        f["suggestion"].as_str().unwrap().contains("In Node"),
        "{f:#}"
    );
}

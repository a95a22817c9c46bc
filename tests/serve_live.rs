//! `connleak serve` as Prometheus and an operator meet it: a real leak in a
//! private namespace read through `/metrics` (by the reference parser, and
//! `promtool check metrics`), `/report` and `/healthz`; scrapes answered
//! while dozens of idle, trickling and hostile connections are open; a
//! collection that fails counted and survived; SIGTERM and SIGINT obeyed.
//! The agent runs in the host's namespace with `--netns LAB` and listens on
//! a port of 127.0.0.1 the kernel picks. Needs root (skips visibly otherwise),
//! but for the tests of the command line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{CONNLEAK, Lab, say};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `connleak serve`, killed when dropped.
struct Agent {
    child: Child,
    addr: SocketAddr,
    stderr: BufReader<std::process::ChildStderr>,
}

impl Agent {
    /// Starts `connleak serve --listen 127.0.0.1:0 ARGS` and reads the
    /// address it bound from its first line.
    fn start(args: &[&str]) -> Agent {
        let mut child = Command::new(CONNLEAK)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start connleak serve");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in its first line: {line:?}"));
        Agent {
            child,
            addr,
            stderr,
        }
    }

    /// `GET path`: the status and the body.
    fn get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = exchange(
            self.addr,
            format!("GET {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        (status, body)
    }

    /// Waits (up to a minute) until `GET path` says what `done` looks for.
    fn wait_for(&self, path: &str, what: &str, done: impl Fn(u16, &str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.get(path);
            if done(status, &body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {path} still says {status} {body}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `signal` and waits for the exit status (a minute at most: a
    /// hang detector, not a measure of speed).
    fn stop(&mut self, signal: i32) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid, which it has not reaped.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after signal {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `request` to a new connection to `addr` and reads the response
/// to its end: status, head and body.
fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// A namespace whose server never closes the connections its clients
/// close, a few more every tenth of a second: a CLOSE_WAIT leak that grows.
fn growing_leak(test: &str) -> Option<Lab> {
    let mut lab = Lab::new(test)?;
    lab.spawn("leak_server", &["--port", "7001"]);
    lab.spawn(
        "churn",
        &[
            "--port", "7001", "--n", "0", "--wait", "0.1", "--kind", "send",
        ],
    );
    Some(lab)
}

/// The Prometheus exposition as the reference parser reads it, after
/// `promtool check metrics` (when promtool is installed) passed it.
fn parsed(lab: &Lab, text: &str) -> Option<Vec<Value>> {
    let file = lab.path("metrics.prom");
    std::fs::write(&file, text).unwrap();
    match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => say("SKIP promtool check metrics: no promtool (the CI script installs it)"),
    }
    common::prometheus_samples(&file)
}

#[test]
fn serves_a_growing_leak_with_its_trend() {
    let Some(lab) = growing_leak("serve-leak") else {
        return;
    };
    let agent = Agent::start(&[
        "--netns",
        &lab.ns,
        "--interval",
        "0.5",
        "--close-wait-min-age",
        "0",
    ]);
    agent.wait_for("/healthz", "a first collection", |s, _| s == 200);
    // The trend is the agent's own: its window fills with its refreshes.
    let report = agent.wait_for("/report", "a growing finding", |s, body| {
        let r: Value = serde_json::from_str(body).unwrap_or_default();
        s == 200
            && common::findings(&r, "close_wait_leak")
                .first()
                .is_some_and(|f| f["trend"]["growing"] == true)
    });
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["schema_version"], 1);
    assert!(
        report["trend"]["samples"].as_u64().unwrap() >= 2,
        "{report:#}"
    );
    let leak = common::findings(&report, "close_wait_leak")[0];
    assert!(leak["growth_per_s"].as_f64().unwrap() > 0.0, "{leak:#}");
    // A leak that grew at every sample is raised a step.
    assert_ne!(leak["severity"], "info", "{leak:#}");

    let (status, metrics) = agent.get("/metrics");
    assert_eq!(status, 200);
    let Some(samples) = parsed(&lab, &metrics) else {
        return;
    };
    let ns = lab.ns.as_str();
    let close_wait = common::sample(
        &samples,
        "connleak_sockets",
        &[("netns", ns), ("state", "CLOSE_WAIT")],
    );
    assert!(close_wait.unwrap() > 0.0, "{metrics}");
    let leaks = [("netns", ns), ("kind", "close_wait_leak")];
    assert_eq!(
        common::sample(&samples, "connleak_findings", &leaks),
        Some(1.0)
    );
    assert_eq!(
        common::sample(&samples, "connleak_up", &[("netns", ns)]),
        Some(1.0)
    );
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(
        common::sample(&samples, "connleak_build_info", &version),
        Some(1.0)
    );
    assert_eq!(
        common::sample(&samples, "connleak_collection_errors_total", &[]),
        Some(0.0)
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last = common::sample(&samples, "connleak_last_collection_timestamp_seconds", &[]);
    assert!(last.is_some_and(|t| (now - t).abs() < 600.0), "{last:?}");
}

/// Dozens of connections that send nothing, that send a request a byte at
/// a time, that send a head too large or garbage: a scrape still answers
/// within a second, the large head gets 431 and the garbage 400, and the
/// clients that never finish a head are cut.
#[test]
fn hostile_clients_never_block_a_scrape() {
    let Some(lab) = Lab::new("serve-hostile") else {
        return;
    };
    let agent = Agent::start(&["--netns", &lab.ns, "--interval", "1"]);
    agent.wait_for("/healthz", "a first collection", |s, _| s == 200);
    let idle: Vec<TcpStream> = (0..24)
        .map(|_| TcpStream::connect(agent.addr).unwrap())
        .collect();
    let trickling: Vec<TcpStream> = (0..24)
        .map(|_| TcpStream::connect(agent.addr).unwrap())
        .collect();
    let addr = agent.addr;
    let big = std::thread::spawn(move || {
        let head = format!(
            "GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n",
            "a".repeat(64 * 1024)
        );
        exchange(addr, head.as_bytes())
    });
    let garbage = exchange(
        agent.addr,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n",
    );
    assert_eq!(garbage.0, 400, "{garbage:?}");
    // A head that never ends: a header whose value goes on, a byte at a time.
    let head = format!(
        "GET /metrics HTTP/1.1\r\nHost: agent\r\nX-Slow: {}",
        "a".repeat(40)
    );
    for (i, &byte) in head.as_bytes().iter().enumerate() {
        for mut s in &trickling {
            let _ = s.write_all(&[byte]);
        }
        if i % 8 == 0 {
            let asked = Instant::now();
            let (status, body) = agent.get("/metrics");
            let took = asked.elapsed();
            assert_eq!(status, 200);
            assert!(body.contains("connleak_build_info"), "{body}");
            assert!(took < Duration::from_secs(1), "a scrape took {took:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, head, _) = big.join().unwrap();
    assert_eq!(status, 431, "{head}");
    // Heads that never end are cut (the header read timeout): every idle
    // and trickling connection reads its end.
    for mut s in idle.into_iter().chain(trickling) {
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut rest = Vec::new();
        assert!(
            s.read_to_end(&mut rest).is_ok(),
            "a head that never ends is cut"
        );
    }
    assert_eq!(agent.get("/healthz").0, 200);
}

/// A namespace that vanishes makes collections fail: each is counted and
/// said in one line, the agent keeps serving (503 on /healthz, connleak_up 0
/// on /metrics, the last report kept), and recovers when it is back.
#[test]
fn a_failed_collection_is_counted_and_the_next_proceeds() {
    let Some(lab) = Lab::new("serve-vanish") else {
        return;
    };
    let mut agent = Agent::start(&["--netns", &lab.ns, "--interval", "0.2"]);
    agent.wait_for("/healthz", "a first collection", |s, _| s == 200);
    lab_netns(&["del", &lab.ns]);
    let failing = agent.wait_for("/healthz", "a failed collection", |s, _| s == 503);
    assert!(
        failing.starts_with("the last collection failed: "),
        "{failing}"
    );
    let metrics = agent.wait_for("/metrics", "connleak_up 0", |_, body| {
        body.contains("\nconnleak_up 0\n")
    });
    let errors: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("connleak_collection_errors_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(errors >= 1.0, "{metrics}");
    assert_eq!(agent.get("/report").0, 200, "the last report is kept");
    lab_netns(&["add", &lab.ns]);
    agent.wait_for("/healthz", "a collection after the failures", |s, _| {
        s == 200
    });
    assert!(agent.stop(libc::SIGTERM).success());
    let mut said = String::new();
    agent.stderr.read_to_string(&mut said).unwrap();
    let failed: Vec<&str> = said
        .lines()
        .filter(|l| l.starts_with("connleak: collection failed: "))
        .collect();
    assert!(!failed.is_empty(), "{said}");
    assert!(failed.iter().all(|l| l.contains(&lab.ns)), "{said}");
}

fn lab_netns(args: &[&str]) {
    let st = Command::new("ip").arg("netns").args(args).status().unwrap();
    assert!(st.success(), "ip netns {args:?}");
}

/// SIGTERM (a service manager, a pod's end) and SIGINT (Ctrl-C) end it
/// cleanly (status 0), also while scrapes are open.
#[test]
fn sigterm_and_sigint_end_it() {
    let Some(lab) = Lab::new("serve-signal") else {
        return;
    };
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut agent = Agent::start(&["--netns", &lab.ns, "--interval", "0.2"]);
        agent.wait_for("/healthz", "a first collection", |s, _| s == 200);
        let _open = TcpStream::connect(agent.addr).unwrap();
        let asked = Instant::now();
        let status = agent.stop(signal);
        assert!(status.success(), "signal {signal}: {status}");
        if asked.elapsed() > Duration::from_secs(1) {
            say(&format!(
                "note: serve took {:?} to end on signal {signal}",
                asked.elapsed()
            ));
        }
    }
}

/// Without root: the listen address is required, a flag that serve does
/// not take (it serves every format) is refused, and an address it cannot bind ends it with status 2
/// and one line.
#[test]
fn serve_refuses_what_it_cannot_do() {
    let run = |args: &[&str]| Command::new(CONNLEAK).args(args).output().unwrap();
    let missing = run(&["serve"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--listen"));
    let json = run(&["serve", "--listen", "127.0.0.1:0", "--json"]);
    assert_eq!(json.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&json.stderr).contains("unexpected argument '--json'"));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let busy = run(&["serve", "--listen", &addr, "--from", "x"]);
    assert_eq!(busy.status.code(), Some(2));
    let busy = run(&["serve", "--listen", &addr]);
    assert_eq!(busy.status.code(), Some(2));
    let said = String::from_utf8_lossy(&busy.stderr);
    assert!(
        said.starts_with(&format!("connleak: error: cannot listen on {addr}: ")),
        "{said}"
    );
    assert_eq!(said.lines().count(), 1, "{said}");
}

//! Client-side evidence with the real thing, each in its own network
//! namespace: nginx with TLS closing the idle keep-alive connections of a
//! real client pool, nginx as a healthy reverse proxy, a receiver that never
//! reads (a real zero window), and connection attempts toward a destination
//! that drops every SYN. Needs root, nginx and openssl (skips visibly).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Lab, findings, say, warnings};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `program -V`/`version` runs; prints a SKIP line when not.
fn have(test: &str, program: &str, arg: &str) -> bool {
    let ok = Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        say(&format!(
            "SKIP {test}: needs {program} (apt-get install nginx-light openssl; .ci/run does)"
        ));
    }
    ok
}

/// Reports until `done` holds for one, or panics after a minute with the last.
fn report_until(lab: &Lab, args: &[&str], done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let report = lab.report(args);
        if done(&report) {
            return report;
        }
        assert!(Instant::now() < deadline, "never came: {report:#}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Writes nginx's configuration (with `http` inside the http block) into the
/// lab's directory and starts nginx in the namespace, as root, in the foreground.
fn start_nginx(lab: &mut Lab, http: &str) {
    let dir = lab.path("nginx");
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process on;\nuser root;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n\
         access_log off;\nclient_body_temp_path {d}/tmp;\nproxy_temp_path {d}/tmp;\n\
         fastcgi_temp_path {d}/tmp;\nuwsgi_temp_path {d}/tmp;\nscgi_temp_path {d}/tmp;\n{http}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let (conf, prefix, log) = (
        path.display().to_string(),
        d.to_string(),
        format!("{d}/error.log"),
    );
    lab.start_program("nginx", &["nginx", "-e", &log, "-p", &prefix, "-c", &conf]);
}

/// nginx with TLS closes idle keep-alive connections after 2 s; the client's
/// pool of 10 never reads them again. Each holds the server's TLS
/// close_notify alert and its FIN unread: a stale pool, not requests nobody
/// read, and a warning however old, not a critical.
#[test]
fn tls_pool_closed_by_nginx_is_a_stale_pool() {
    let test = "tls-stale-pool";
    if !have(test, "nginx", "-v") || !have(test, "openssl", "version") {
        return;
    }
    let Some(mut lab) = Lab::new(test) else {
        return;
    };
    let (key, cert) = (lab.path("key.pem"), lab.path("cert.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success(), "openssl req failed");
    start_nginx(
        &mut lab,
        &format!(
            "keepalive_timeout 2s;\nserver {{\nlisten 127.0.0.1:8443 ssl;\n\
             ssl_certificate {};\nssl_certificate_key {};\n\
             location / {{ return 200 \"ok\\n\"; }}\n}}",
            cert.display(),
            key.display()
        ),
    );
    let pool = lab.spawn("tls_pool", &["--port", "8443", "--n", "10"]);
    let stale = |r: &Value| {
        findings(r, "close_wait_leak")
            .first()
            .is_some_and(|f| f["count"] == 10)
    };
    // As if the pool had been stale for hours: age alone must not make it critical.
    let report = report_until(
        &lab,
        &["--close-wait-min-age", "0", "--close-wait-crit-age", "0"],
        stale,
    );
    let all = findings(&report, "close_wait_leak");
    assert_eq!(all.len(), 1, "{report:#}");
    let f = all[0];
    assert_eq!(f["pid"], pool["pid"], "{f:#}");
    assert_eq!(f["side"], "client");
    assert_eq!(f["remote"], "127.0.0.1:8443");
    assert_eq!(f["cause"], "unread_after_peer_close", "{f:#}");
    assert_eq!(f["severity"], "warning", "{f:#}");
    let evidence = f["evidence"].to_string();
    assert!(evidence.contains("close_notify"), "{evidence}");
    assert!(evidence.contains("never a request"), "{evidence}");
    assert!(evidence.contains("not critical by age alone"), "{evidence}");
    assert!(!evidence.contains("request data never read"), "{evidence}");
    let suggestion = f["suggestion"].as_str().unwrap();
    assert!(suggestion.contains("idle timeout"), "{suggestion}");
    assert!(!suggestion.contains("thread dump"), "{suggestion}");
    assert!(findings(&report, "worker_pool_exhausted").is_empty());
    // The kernel's numbers behind it: Recv-Q above 1 on every socket.
    let snap = lab.path("tls.json");
    lab.report(&["--save", snap.to_str().unwrap()]);
    let s = connleak::snapshot::Snapshot::load(&snap).unwrap();
    let cw: Vec<_> = s
        .sockets
        .iter()
        .filter(|x| x.state() == connleak::tcp::TcpState::CloseWait)
        .collect();
    assert_eq!(cw.len(), 10);
    assert!(cw.iter().all(|x| (24..=32).contains(&x.recv_q())), "{cw:?}");
}

/// nginx with upstream keep-alive in front of a threaded backend, under a
/// steady request loop: busy, and nothing to warn about.
#[test]
fn busy_reverse_proxy_is_ok() {
    let test = "busy-proxy";
    if !have(test, "nginx", "-v") {
        return;
    }
    let Some(mut lab) = Lab::new(test) else {
        return;
    };
    lab.spawn("http_backend", &["--port", "9001"]);
    start_nginx(
        &mut lab,
        "upstream backend {\nserver 127.0.0.1:9001;\nkeepalive 8;\n}\nserver {\n\
         listen 127.0.0.1:8080;\nlocation / {\nproxy_pass http://backend;\n\
         proxy_http_version 1.1;\nproxy_set_header Connection \"\";\n}\n}",
    );
    lab.spawn(
        "request_loop",
        &["--port", "8080", "--n", "50", "--wait", "30"],
    );
    let report = lab.report(&["--samples", "3", "--interval", "1"]);
    assert_eq!(report["status"], "ok", "{report:#}");
    assert!(warnings(&report).is_empty(), "{report:#}");
    assert!(
        report["summary"]["states"]["ESTABLISHED"].as_u64().unwrap() >= 4,
        "{report:#}"
    );
}

/// A receiver that never reads closes its window; the sender's FINs wait
/// behind unsent data in FIN-WAIT-1, and the kernel probes the window, which
/// the live receiver answers: the peer is alive and does not read, not gone.
#[test]
fn zero_window_fin_wait1_names_the_peer_not_reading() {
    let Some(mut lab) = Lab::new("zero-window") else {
        return;
    };
    let sink = lab.spawn("unread_sink", &["--port", "7100"]);
    let filler = lab.spawn("window_filler", &["--port", "7100", "--n", "6"]);
    let stalled = |r: &Value| {
        findings(r, "stalled_close").first().is_some_and(|f| {
            f["evidence"][1]
                .as_str()
                .is_some_and(|e| e.starts_with("6 with the peer's receive window closed"))
        })
    };
    let report = report_until(&lab, &["--stalled-close-warn", "5"], stalled);
    let f = findings(&report, "stalled_close")[0];
    assert_eq!(f["state"], "FIN_WAIT1", "{f:#}");
    assert_eq!(f["count"], 6);
    let evidence = f["evidence"].to_string();
    assert!(!evidence.contains("retransmitting"), "{evidence}");
    assert!(
        evidence.contains(&format!("127.0.0.1:7100 held by pid {}", sink["pid"])),
        "{evidence}"
    );
    assert!(
        f["suggestion"]
            .as_str()
            .unwrap()
            .contains("alive and do not read")
    );
    assert_ne!(sink["pid"], filler["pid"]);
    // Stuck sending, not idle: no keep-alive finding even with --idle 0.
    let report = lab.report(&["--idle", "0"]);
    for f in findings(&report, "no_keepalive_idle") {
        assert_ne!(f["pid"], filler["pid"], "{f:#}");
    }
}

/// Connection attempts toward an address routed into a device nobody reads
/// (a TUN device: every SYN vanishes): a dependency that does not answer.
#[test]
fn syn_sent_toward_a_silent_destination() {
    let Some(mut lab) = Lab::new("syn-sent") else {
        return;
    };
    let tun = lab.try_exec(&["ip", "tuntap", "add", "dev", "cltun0", "mode", "tun"])
        && lab.try_exec(&["ip", "addr", "add", "10.99.0.1/24", "dev", "cltun0"])
        && lab.try_exec(&["ip", "link", "set", "cltun0", "up"]);
    if !tun {
        say("SKIP syn-sent: no TUN device in the namespace (/dev/net/tun) to drop SYNs into");
        return;
    }
    let client = lab.spawn(
        "syn_burst",
        &["--host", "10.99.0.2", "--port", "5432", "--n", "8"],
    );
    let report = report_until(&lab, &[], |r| {
        findings(r, "connect_unanswered")
            .first()
            .is_some_and(|f| f["count"] == 8)
    });
    let f = findings(&report, "connect_unanswered")[0];
    assert_eq!(f["pid"], client["pid"]);
    assert_eq!(f["remote"], "10.99.0.2:5432");
    assert_eq!(f["state"], "SYN_SENT");
    assert_eq!(f["side"], "client");
    assert_eq!(f["severity"], "warning");
    assert!(
        f["evidence"][0]
            .as_str()
            .unwrap()
            .contains("8 of them retransmitting their SYN"),
        "{f:#}"
    );
    assert!(f["suggestion"].as_str().unwrap().contains("10.99.0.2:5432"));
}

/// Writers blocked on a peer that never reads: the open connections' Send-Q
/// stands still behind a closed window; the peer and the blocked threads are named.
#[test]
fn blocked_writers_name_the_peer_not_reading() {
    let Some(mut lab) = Lab::new("blocked-send") else {
        return;
    };
    let sink = lab.spawn("unread_sink", &["--port", "7101"]);
    let writers = lab.spawn("blocked_writers", &["--port", "7101", "--n", "5"]);
    let args = ["--send-stall-secs", "1"];
    let report = report_until(&lab, &args, |r| {
        findings(r, "blocked_send").first().is_some_and(|f| {
            f["count"] == 5
                && f["evidence"]
                    .to_string()
                    .contains("blocked sending on them")
        })
    });
    let f = findings(&report, "blocked_send")[0];
    assert_eq!(f["pid"], writers["pid"]);
    assert_eq!(f["cause"], "peer_not_reading");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["remote"], "127.0.0.1:7101");
    let evidence = f["evidence"].to_string();
    // The peer is the local process at the other end, named once with its count.
    assert_eq!(f["peers"][0]["pid"], sink["pid"], "{f:#}");
    assert_eq!(f["peers"][0]["connections"], 5, "{f:#}");
    assert!(
        evidence.contains(&format!(
            "toward pid {} (python3) at 127.0.0.1",
            sink["pid"]
        )),
        "{evidence}"
    );
    assert!(evidence.contains("5 threads of pid"), "{evidence}");
    assert!(
        evidence.contains("in sendto()") || evidence.contains("in write()"),
        "{evidence}"
    );
    // A stall shorter than --send-stall-secs is backpressure, not a finding.
    let report = lab.report(&["--send-stall-secs", "3600"]);
    assert!(findings(&report, "blocked_send").is_empty(), "{report:#}");
}

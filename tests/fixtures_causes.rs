//! The cause catalogue on snapshots saved from real patterns, and on edge
//! cases too slow or too disruptive to build for real (a SYN flood, orphan
//! pressure, LAST_ACK build-up, kernel limits), made by editing real
//! snapshots. No root needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{listener_pid, load};
use connleak::diagnose::{
    FdCause, Finding, Index, Severity, Thresholds, Window, WorkerPoolCause, diagnose,
    diagnose_indexed,
};
use connleak::report::{Report, Status};
use connleak::snapshot::{Runtime, Snapshot, Socket};
use connleak::tcp::TcpState;
use std::net::SocketAddr;

fn warnings(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.severity >= Severity::Warning)
        .collect()
}

/// The only warning-or-worse finding, which must be of `kind`.
fn the_warning(s: &Snapshot, t: Thresholds, kind: &str) -> Finding {
    let all = diagnose(s, t);
    let w = warnings(&all);
    assert_eq!(w.len(), 1, "one warning expected: {all:#?}");
    assert_eq!(w[0].kind, kind, "{all:#?}");
    w[0].clone()
}

/// `n` copies of a template socket in `state`, each from its own remote port.
fn add_sockets(s: &mut Snapshot, template: &Socket, state: TcpState, n: u16) {
    for i in 0..n {
        let mut x = template.clone();
        x.edit(|x| {
            x.state = state;
            x.inode = 0;
            x.cookie = None;
            x.remote = SocketAddr::new(
                format!("10.0.{}.{}", i / 250, i % 250 + 1).parse().unwrap(),
                40000 + i,
            );
        });
        s.sockets.push(x);
    }
}

#[test]
fn worker_pool_names_the_blocked_threads() {
    let s = load("pool.json");
    let f = the_warning(&s, Thresholds::default(), "worker_pool_exhausted");
    assert_eq!(f.pid, Some(listener_pid(&s, 7002)));
    assert_eq!(f.count, 30);
    assert_eq!(f.cause, Some(WorkerPoolCause::WorkersBlockedOnReads.into()));
    assert!(f.evidence.iter().any(|e| e.starts_with(
        "pool `python`: 4 of 5 threads blocked in recvfrom() on \
                                    accepted clients"
    )));
    // A JVM's housekeeping threads (GC, compilers) do not dilute the pool's ratio.
    let mut jvm = s.clone();
    if let Some(p) = jvm.processes.iter_mut().find(|p| !p.tasks.is_empty()) {
        let parked = p.tasks[0].clone();
        for (i, name) in [
            "GC Thread#0",
            "C2 CompilerThre",
            "VM Thread",
            "Signal Dispatch",
        ]
        .into_iter()
        .cycle()
        .take(20)
        .enumerate()
        {
            let mut t = parked.clone();
            t.tid = 90000 + i as u32;
            t.comm = name.to_string();
            t.syscall = Some("futex".to_string());
            t.fd = None;
            t.inode = None;
            p.tasks.push(t);
        }
    }
    let f = the_warning(&jvm, Thresholds::default(), "worker_pool_exhausted");
    assert_eq!(f.cause, Some(WorkerPoolCause::WorkersBlockedOnReads.into()));
    // The same sockets held by a Go process: an event loop, never a worker pool.
    let mut go = s.clone();
    go.processes
        .iter_mut()
        .for_each(|p| p.runtime = Some(Runtime::Go));
    let f = the_warning(&go, Thresholds::default(), "event_loop_not_reading");
    assert_eq!(f.count, 30);
    assert!(
        f.suggestion.contains("never send kill -QUIT"),
        "{}",
        f.suggestion
    );
    // Without thread data (no privilege) the sockets alone still make the finding.
    let mut bare = s.clone();
    bare.processes.iter_mut().for_each(|p| p.tasks.clear());
    let f = the_warning(&bare, Thresholds::default(), "worker_pool_exhausted");
    assert_eq!(f.cause, Some(WorkerPoolCause::WorkersUnknown.into()));
}

/// Requests unread on ESTABLISHED connections with fresh data are
/// backpressure; unread in every sample over 15 s they are a stuck pool.
#[test]
fn worker_pool_needs_requests_unread_for_a_while() {
    let mut now = load("pool.json");
    for s in now.sockets.iter_mut().filter(|s| s.recv_q() > 1) {
        s.edit(|s| {
            s.state = TcpState::Established;
            if let Some(t) = s.tcp_info.as_mut() {
                t.last_data_recv_ms = Some(1000);
            }
        });
    }
    let single = diagnose(&now, Thresholds::default());
    assert!(
        single.iter().all(|f| f.kind != "worker_pool_exhausted"),
        "{single:#?}"
    );
    let mut before = now.clone();
    before.meta.taken_at_ms -= 15_000;
    let mut window = Window::keeping(2);
    window.record(&before, &[], std::iter::empty());
    let found = diagnose_indexed(&now, &Index::new(&now), Thresholds::default(), &window);
    let pool: Vec<&Finding> = found
        .iter()
        .filter(|f| f.kind == "worker_pool_exhausted")
        .collect();
    assert_eq!(pool.len(), 1, "{found:#?}");
    assert_eq!(pool[0].count, 30);
}

#[test]
fn accept_queue_full_claims_the_unaccepted() {
    let s = load("backlog.json");
    let f = the_warning(&s, Thresholds::default(), "accept_queue_full");
    assert_eq!(f.pid, Some(listener_pid(&s, 7003)));
    assert_eq!(f.local, Some("127.0.0.1:7003".parse().unwrap()));
    assert!(f.evidence[0].contains("accept queue 9 of a backlog of 8"));
    // The never-accepted CLOSE_WAIT sockets are not counted again as a leak.
    let all = diagnose(&s, Thresholds::default());
    let leak: u64 = all
        .iter()
        .filter(|f| f.kind == "close_wait_leak")
        .map(|f| f.count)
        .sum();
    assert!(leak <= 2, "{all:#?}");
}

#[test]
fn half_close_names_both_processes() {
    let s = load("finwait2.json");
    let f = the_warning(&s, Thresholds::default(), "half_closed_peer");
    let server = listener_pid(&s, 7006);
    assert_eq!(f.pid, Some(server));
    assert!(f.peer_pid.is_some() && f.peer_pid != Some(server));
    assert_eq!(f.count, 10);
}

#[test]
fn fd_exhaustion_names_the_leak_as_cause() {
    let s = load("fd-limit.json");
    let f = the_warning(&s, Thresholds::default(), "fd_exhaustion");
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.pid, Some(listener_pid(&s, 7007)));
    assert_eq!(f.cause, Some(FdCause::CloseWaitLeak.into()));
    assert!(f.evidence.iter().any(|e| e.contains("EMFILE")));
}

#[test]
fn server_time_wait_is_info_until_the_bucket_limit() {
    let mut s = load("tw-server.json");
    let all = diagnose(&s, Thresholds::default());
    assert!(warnings(&all).is_empty(), "{all:#?}");
    let f = all
        .iter()
        .find(|f| f.kind == "server_active_close")
        .unwrap();
    assert_eq!(f.pid, Some(listener_pid(&s, 7005)));
    assert_eq!(Report::build(&s, Thresholds::default()).status, Status::Ok);
    // Near tcp_max_tw_buckets: a warning, said once (not again as time_wait_overflow).
    let tw = s
        .sockets
        .iter()
        .filter(|x| x.state() == TcpState::TimeWait)
        .count() as u64;
    s.kernel.sysctls.tcp_max_tw_buckets = Some(tw + tw / 10);
    the_warning(&s, Thresholds::default(), "server_active_close");
}

#[test]
fn client_time_wait_against_the_port_range() {
    let mut s = load("tw-client.json");
    let used = s
        .sockets
        .iter()
        .filter(|x| x.remote().port() == 7004)
        .count() as u16;
    s.kernel.sysctls.ip_local_port_range = Some((50000, 50000 + used + used / 10));
    s.kernel.sysctls.tcp_tw_reuse = Some(0);
    let f = the_warning(&s, Thresholds::default(), "ephemeral_port_exhaustion");
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.remote, Some("127.0.0.1:7004".parse().unwrap()));
    // tcp_tw_reuse=2 covers loopback: one step lower.
    s.kernel.sysctls.tcp_tw_reuse = Some(2);
    let f = the_warning(&s, Thresholds::default(), "ephemeral_port_exhaustion");
    assert_eq!(f.severity, Severity::Warning);
    // The full default range: nothing to say.
    s.kernel.sysctls.ip_local_port_range = Some((32768, 60999));
    assert!(warnings(&diagnose(&s, Thresholds::default())).is_empty());
    // ... unless the TIME_WAIT sockets near tcp_max_tw_buckets.
    let tw = s
        .sockets
        .iter()
        .filter(|x| x.state() == TcpState::TimeWait)
        .count() as u64;
    s.kernel.sysctls.tcp_max_tw_buckets = Some(tw + tw / 20);
    let f = the_warning(&s, Thresholds::default(), "time_wait_overflow");
    assert_eq!(f.count, tw);
}

#[test]
fn syn_flood_on_a_listener() {
    let mut s = load("leak.json");
    let listener = s
        .sockets
        .iter()
        .find(|x| x.state() == TcpState::Listen)
        .unwrap()
        .clone();
    s.sockets
        .iter_mut()
        .filter(|x| x.state() == TcpState::Listen)
        .for_each(|l| l.edit(|l| l.send_q = 128));
    add_sockets(&mut s, &listener, TcpState::SynRecv, 200);
    s.kernel
        .counters
        .entry("TcpExt".into())
        .or_default()
        .insert("TCPReqQFullDrop".into(), 17);
    let all = diagnose(&s, Thresholds::default());
    let f = all.iter().find(|f| f.kind == "syn_backlog").unwrap();
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.count, 200);
    assert_eq!(f.pid, Some(listener_pid(&s, 7001)));
    assert!(f.evidence.iter().any(|e| e.contains("TCPReqQFullDrop 17")));
}

#[test]
fn last_ack_build_up_and_orphan_pressure() {
    let mut s = load("leak.json");
    let template = s
        .sockets
        .iter()
        .find(|x| x.state() == TcpState::CloseWait)
        .unwrap()
        .clone();
    add_sockets(&mut s, &template, TcpState::LastAck, 60);
    let all = diagnose(&s, Thresholds::default());
    let f = all.iter().find(|f| f.kind == "stalled_close").unwrap();
    assert_eq!((f.severity, f.count), (Severity::Warning, 60));
    assert_eq!(f.state, Some(TcpState::LastAck));
    assert!(all.iter().all(|f| f.kind != "orphan_pressure"));
    // 60 orphaned LAST_ACK (the 40 orphaned FIN_WAIT2 are timewait sockets,
    // tcp_fin_timeout 60) against a quarter of a limit of 110.
    s.kernel.sysctls.tcp_max_orphans = Some(110);
    let all = diagnose(&s, Thresholds::default());
    let f = all.iter().find(|f| f.kind == "orphan_pressure").unwrap();
    assert_eq!((f.severity, f.count), (Severity::Warning, 60));
}

#[test]
fn long_idle_connections_without_keepalive_are_noted() {
    let s = load("pool.json");
    let t = Thresholds {
        idle: 10,
        ..Thresholds::default()
    };
    let all = diagnose(&s, t);
    let f = all.iter().find(|f| f.kind == "no_keepalive_idle").unwrap();
    assert_eq!(f.severity, Severity::Info);
    assert!(f.count >= 4);
    assert!(
        diagnose(&s, Thresholds::default())
            .iter()
            .all(|f| f.kind != "no_keepalive_idle")
    );
}

#[test]
fn every_kind_and_link_is_documented() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for rule in connleak::diagnose::RULES {
        assert!(
            readme.contains(&format!("### `{}`", rule.kind)),
            "README lacks {}",
            rule.kind
        );
    }
    for link in connleak::link::LINKS {
        assert!(
            readme.contains(&format!("| `{}` |", link.name)),
            "README's Incidents lack {}",
            link.name
        );
    }
}

/// Forty leaked sockets spread over five workers that an init started (ppid
/// 1): one roll-up warning on the server, never on pid 1, and the workers'
/// INFO findings, which would tell the same sockets again, left out.
#[test]
fn a_roll_up_never_blames_init_nor_tells_a_socket_twice() {
    let mut s = load("leak.json");
    let server = listener_pid(&s, 7001);
    let at = s.processes.iter().position(|p| p.pid == server).unwrap();
    let holder = s.processes.remove(at);
    let listener = s
        .sockets
        .iter()
        .find(|x| x.state() == TcpState::Listen)
        .unwrap()
        .inode();
    let leaked: Vec<u64> = holder
        .socket_inodes
        .iter()
        .copied()
        .filter(|&i| i != listener)
        .collect();
    for (k, chunk) in leaked.chunks(8).enumerate() {
        let mut worker = holder.clone();
        worker.pid = 2000 + k as u32;
        worker.ppid = Some(1);
        worker.socket_inodes = chunk.to_vec();
        if k == 0 {
            worker.socket_inodes.push(listener);
        }
        s.processes.push(worker);
    }
    let mut init = holder.clone();
    init.pid = 1;
    init.ppid = Some(0);
    init.comm = "systemd".to_string();
    init.socket_inodes = Vec::new();
    s.processes.push(init);
    s.processes.sort_by_key(|p| p.pid);
    let all = diagnose(&s, Thresholds::default());
    let f = the_warning(&s, Thresholds::default(), "close_wait_rollup");
    assert_eq!(f.count, 40);
    assert_ne!(f.pid, Some(1), "{f:#?}");
    assert_eq!(f.pid, Some(2000), "the listener's holder: {f:#?}");
    assert!(
        all.iter().all(|x| x.kind != "close_wait_leak"),
        "the same sockets told twice: {all:#?}"
    );
}

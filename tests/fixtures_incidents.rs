//! Incidents on saved snapshots of real ones (built as `incidents_live.rs`
//! builds them): each link of the link stage joins the findings it should,
//! and its twin, where the cause is absent, leaves them apart. Also the
//! report's story: sampled counts that agree with "present throughout", a
//! queue called full only past its backlog, and filters that keep an
//! incident whole. No root needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::load;
use connleak::diagnose::{Finding, Severity, SynBacklogCause, Thresholds, Window};
use connleak::filter::Filter;
use connleak::render::{self, Format};
use connleak::report::{Labelled, Report};
use connleak::snapshot::{Snapshot, Timer};
use connleak::tcp::TcpState;

fn report(s: &Snapshot, t: Thresholds) -> Report {
    Report::build(s, t)
}

fn one<'a>(r: &'a Report, kind: &str) -> &'a Finding {
    let all: Vec<&Finding> = r.findings.iter().filter(|f| f.kind == kind).collect();
    assert_eq!(all.len(), 1, "one {kind}: {:#?}", r.findings);
    all[0]
}

fn none_of(r: &Report, kind: &str) -> bool {
    r.findings.iter().all(|f| f.kind != kind)
}

fn roots(r: &Report) -> Vec<&Finding> {
    r.findings
        .iter()
        .filter(|f| f.caused_by.is_none())
        .collect()
}

fn check_line(r: &Report) -> String {
    let mut out = Vec::new();
    let format = Format::Check {
        thresholds: Thresholds::default(),
        verbose: false,
    };
    let labelled = [Labelled {
        label: None,
        report: r,
    }];
    render::write(&mut out, format, &labelled).unwrap();
    String::from_utf8(out).unwrap()
}

fn stall(secs: u64) -> Thresholds {
    Thresholds {
        send_stall_secs: secs,
        idle: 1,
        ..Thresholds::default()
    }
}

#[test]
fn the_fd_limit_explains_the_full_queue_and_the_hanging_connects() {
    let s = load("incident-fd-limit.json");
    let r = report(&s, Thresholds::default());
    let fd = one(&r, "fd_exhaustion");
    let queue = one(&r, "accept_queue_full");
    let connects = one(&r, "connect_unanswered");
    assert_eq!(fd.caused_by, None);
    assert_eq!(queue.caused_by.as_ref(), Some(&fd.id));
    assert_eq!(connects.caused_by.as_ref(), Some(&queue.id));
    assert!(queue.evidence.iter().any(|e| e.contains("EMFILE")));
    assert_eq!(r.findings[0].id, fd.id, "the root first");
    let line = check_line(&r);
    assert!(
        line.starts_with("CONNLEAK CRITICAL - 1 problem: fd_exhaustion "),
        "{line}"
    );
}

/// Twin: the same queue and connects with the process far from its limit:
/// the queue is the root, the fd table not involved.
#[test]
fn a_full_queue_far_from_the_fd_limit_is_its_own_root() {
    let mut s = load("incident-fd-limit.json");
    for p in &mut s.processes {
        p.fd_soft_limit = Some(65536);
    }
    let r = report(&s, Thresholds::default());
    assert!(none_of(&r, "fd_exhaustion"));
    let queue = one(&r, "accept_queue_full");
    assert_eq!(queue.caused_by, None);
    assert!(!queue.evidence.iter().any(|e| e.contains("EMFILE")));
    assert_eq!(
        one(&r, "connect_unanswered").caused_by.as_ref(),
        Some(&queue.id)
    );
}

/// Closed sockets that fill the fd table: the leak is the root, EMFILE its symptom.
#[test]
fn closed_sockets_explain_the_fd_limit() {
    let mut s = load("incident-fd-limit.json");
    let server = one(&report(&s, Thresholds::default()), "fd_exhaustion").pid;
    let p = s
        .processes
        .iter_mut()
        .find(|p| Some(p.pid) == server)
        .unwrap();
    p.closed_tcp_fds = p.fds;
    let r = report(&s, Thresholds::default());
    let closed = one(&r, "closed_not_released");
    let fd = one(&r, "fd_exhaustion");
    assert_eq!(closed.caused_by, None);
    assert_eq!(fd.caused_by.as_ref(), Some(&closed.id));
    assert_eq!(
        one(&r, "accept_queue_full").caused_by.as_ref(),
        Some(&fd.id)
    );
    assert_eq!(roots(&r).len(), 1, "{:#?}", r.findings);
}

#[test]
fn a_full_local_queue_explains_connects_and_no_firewall_is_blamed() {
    let s = load("incident-queue.json");
    let r = report(&s, Thresholds::default());
    let queue = one(&r, "accept_queue_full");
    let connects = one(&r, "connect_unanswered");
    assert_eq!(connects.caused_by.as_ref(), Some(&queue.id));
    assert!(!connects.suggestion.contains("security groups"));
    assert!(connects.peers[0].pid.is_some(), "{connects:#?}");
}

/// The same attempts toward a local listener whose process could not be
/// read: still this host's listener, never routes or firewalls between hosts.
#[test]
fn connects_toward_a_local_listener_of_an_unseen_process_stay_local() {
    let mut s = load("incident-queue.json");
    let listening: Vec<u64> = s
        .sockets
        .iter()
        .filter(|x| x.state() == TcpState::Listen)
        .map(|x| x.inode())
        .collect();
    s.processes
        .retain(|p| !p.socket_inodes.iter().any(|i| listening.contains(i)));
    let r = report(&s, Thresholds::default());
    let connects = one(&r, "connect_unanswered");
    assert!(
        !connects.suggestion.contains("security groups"),
        "{}",
        connects.suggestion
    );
    assert!(
        connects
            .evidence
            .iter()
            .any(|e| e.contains("an address of this host")),
        "{:#?}",
        connects.evidence
    );
}

/// Twin: the same attempts toward a remote host are the network's to answer for.
#[test]
fn connects_toward_a_remote_host_are_not_the_local_listeners() {
    let mut s = load("incident-queue.json");
    let remote: std::net::SocketAddr = "192.0.2.7:7102".parse().unwrap();
    for sock in s
        .sockets
        .iter_mut()
        .filter(|x| x.state() == TcpState::SynSent)
    {
        sock.edit(|p| p.remote = remote);
    }
    let r = report(&s, Thresholds::default());
    let connects = one(&r, "connect_unanswered");
    assert_eq!(connects.caused_by, None);
    assert!(connects.suggestion.contains("security groups"));
    assert_eq!(connects.peers[0].pid, None);
}

/// Six connections toward one client process that stopped reading: one
/// warning, its threshold applied to the group.
#[test]
fn connections_toward_one_peer_process_are_one_finding_its_threshold_applies_to() {
    let s = load("incident-peer.json");
    let r = report(&s, stall(1));
    let f = one(&r, "blocked_send");
    assert_eq!((f.count, f.severity), (6, Severity::Warning));
    assert_eq!(f.peers.len(), 1);
    assert_eq!(f.peers[0].connections, 6);
    let t = Thresholds {
        send_stall_warn: 7,
        ..stall(1)
    };
    assert_eq!(one(&report(&s, t), "blocked_send").severity, Severity::Info);
}

#[test]
fn a_dead_peer_host_explains_everything_toward_it() {
    let s = load("incident-dead-peer.json");
    let r = report(&s, stall(1));
    let gone = one(&r, "blocked_send");
    assert_eq!(gone.caused_by, None);
    assert_eq!(gone.count, 12, "one finding for the host's connections");
    for kind in ["connect_unanswered", "no_keepalive_idle"] {
        assert_eq!(one(&r, kind).caused_by.as_ref(), Some(&gone.id), "{kind}");
    }
    assert_eq!(roots(&r).len(), 1);
}

/// Twin: a peer that answers its window probes is alive: its unread
/// connections explain nothing else toward the host, and the host is never
/// called dead, so its unanswered connects (one port dropping SYNs) explain
/// no idle connection toward it either.
#[test]
fn a_peer_that_answers_is_no_dead_host() {
    let mut s = load("incident-dead-peer.json");
    for sock in s
        .sockets
        .iter_mut()
        .filter(|x| x.timer() == Timer::ZeroWindowProbe)
    {
        sock.edit(|p| {
            if let Some(t) = p.tcp_info.as_mut() {
                t.probes = 0;
            }
        });
    }
    let r = report(&s, stall(1));
    let sends = one(&r, "blocked_send");
    assert_eq!(sends.caused_by, None);
    let connects = one(&r, "connect_unanswered");
    assert_eq!(connects.caused_by, None);
    assert_eq!(one(&r, "no_keepalive_idle").caused_by, None);
}

#[test]
fn a_syn_flood_without_cookies_is_critical_and_drops_the_local_connects() {
    let s = load("incident-flood-cookies0.json");
    let r = report(&s, Thresholds::default());
    let flood = one(&r, "syn_backlog");
    assert_eq!(flood.severity, Severity::Critical);
    assert!(flood.evidence.iter().any(|e| e.contains("ListenDrops")));
    assert!(
        !flood
            .evidence
            .iter()
            .any(|e| e.contains("SyncookiesSent 0"))
    );
    assert!(flood.evidence.iter().any(|e| e.contains("takes 97")));
    assert_eq!(
        one(&r, "connect_unanswered").caused_by.as_ref(),
        Some(&flood.id)
    );
    // With room in the SYN queue (tcp_max_syn_backlog large), nothing is
    // dropped yet: a warning for a queue past half, not critical.
    let mut roomy = s.clone();
    roomy.kernel.sysctls.tcp_max_syn_backlog = Some(4096);
    let r = report(&roomy, Thresholds::default());
    let flood = one(&r, "syn_backlog").clone();
    assert_eq!(flood.severity, Severity::Warning, "{flood:#?}");
    assert_eq!(
        flood.cause,
        Some(SynBacklogCause::SynQueueFilling.into()),
        "{flood:#?}"
    );
    // A queue that drops nothing explains no failed connect.
    assert_eq!(one(&r, "connect_unanswered").caused_by, None);
}

/// Twin: the same flood with SYN cookies on: tcp_max_syn_backlog no longer
/// caps the queue, the backlog (128) has room, and past it cookies would
/// answer; it explains no local connect and stays a warning.
#[test]
fn a_syn_flood_with_cookies_on_explains_no_connect() {
    let mut s = load("incident-flood-cookies0.json");
    s.kernel.sysctls.tcp_syncookies = Some(1);
    let r = report(&s, Thresholds::default());
    let flood = one(&r, "syn_backlog");
    assert_eq!(flood.severity, Severity::Warning, "{flood:#?}");
    assert_ne!(flood.cause, Some(SynBacklogCause::SynQueueFull.into()));
    assert_eq!(one(&r, "connect_unanswered").caused_by, None);
}

#[test]
fn a_syn_flood_absorbed_by_cookies_is_a_warning() {
    let s = load("incident-flood-cookies1.json");
    let r = report(&s, Thresholds::default());
    let flood = one(&r, "syn_backlog");
    assert_eq!(flood.severity, Severity::Warning);
    assert!(flood.evidence.iter().any(|e| e.contains("absorbed")));
    assert!(none_of(&r, "connect_unanswered"));
}

/// A filter keeps an incident whole, and a run whose filter leaves every
/// problem out says so beside its status.
#[test]
fn filters_keep_incidents_whole_and_count_the_problems_outside() {
    let s = load("incident-fd-limit.json");
    let base = report(&s, Thresholds::default());
    let client = one(&base, "connect_unanswered").pid.unwrap();
    let mut r = report(&s, Thresholds::default());
    Filter {
        pids: vec![client],
        ..Filter::default()
    }
    .narrow(&mut r, &s);
    assert_eq!(r.findings.len(), 3, "the whole incident: {:#?}", r.findings);
    let mut r = report(&s, Thresholds::default());
    Filter {
        ports: vec![9],
        ..Filter::default()
    }
    .narrow(&mut r, &s);
    assert!(r.findings.is_empty());
    let mut out = Vec::new();
    render::table::write(
        &mut out,
        &r,
        render::table::Style {
            color: false,
            width: 80,
            live: false,
        },
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("connleak: CRITICAL - 1 problem outside --port 9 on"),
        "{text}"
    );
    // The check line agrees: never "no leak found" beside a CRITICAL.
    let line = check_line(&r);
    assert!(
        line.starts_with("CONNLEAK CRITICAL - no problem within the filter, 1 problem outside it"),
        "{line}"
    );
    assert!(!line.contains("no leak found"), "{line}");
}

/// Sockets that were there in every sample are counted in every sample,
/// even before a finding was made of them; "present throughout" never
/// exceeds the count.
#[test]
fn sampled_counts_agree_with_present_throughout() {
    let now = load("leak.json");
    let mut young = now.clone();
    young.meta.taken_at_ms -= 10_000;
    for sock in young
        .sockets
        .iter_mut()
        .filter(|x| x.state() == TcpState::CloseWait)
    {
        // Closed a moment ago: too young to be stuck, so no finding then.
        sock.edit(|p| {
            if let Some(t) = p.tcp_info.as_mut() {
                t.last_ack_recv_ms = Some(500);
            }
        });
    }
    let mut window = Window::keeping(2);
    let first = Report::build_in(&young, Thresholds::default(), &window);
    assert!(none_of(&first, "close_wait_leak"));
    first.record(&young, &mut window);
    let r = Report::build_in(&now, Thresholds::default(), &window);
    let f = one(&r, "close_wait_leak");
    let trend = f.trend.as_ref().unwrap();
    assert_eq!(trend.counts, [40, 40], "{trend:#?}");
    assert_eq!(trend.present_throughout, Some(40));
    assert!(!trend.growing);
}

/// Half-closed pairs (both ends local) are counted as connections over the
/// window too: when half of the pairs were there before, the earlier count
/// and "present throughout" are half, not the sockets of those pairs.
#[test]
fn pairs_are_counted_once_over_the_window() {
    let now = load("finwait2.json");
    let r = report(&now, Thresholds::default());
    let pairs = one(&r, "half_closed_peer").count;
    assert!(pairs >= 2, "{pairs}");
    let mut before = now.clone();
    before.meta.taken_at_ms -= 10_000;
    // Keep the first half of the FIN-WAIT-2 ends and their CLOSE-WAIT partners.
    let kept: Vec<(std::net::SocketAddr, std::net::SocketAddr)> = before
        .sockets
        .iter()
        .filter(|x| x.state() == TcpState::FinWait2)
        .take(usize::try_from(pairs / 2).unwrap())
        .map(|x| (x.local(), x.remote()))
        .collect();
    before.sockets.retain(|x| match x.state() {
        TcpState::FinWait2 => kept.contains(&(x.local(), x.remote())),
        TcpState::CloseWait => kept.contains(&(x.remote(), x.local())),
        _ => true,
    });
    let mut window = Window::keeping(2);
    Report::build_in(&before, Thresholds::default(), &window).record(&before, &mut window);
    let r = Report::build_in(&now, Thresholds::default(), &window);
    let trend = one(&r, "half_closed_peer").trend.clone().unwrap();
    assert_eq!(trend.counts, [pairs / 2, pairs], "{trend:#?}");
    assert_eq!(trend.present_throughout, Some(pairs / 2), "{trend:#?}");
}

/// A queue with a connection that waits a moment is an accept loop at work:
/// no finding. Only past its backlog is a queue called full.
#[test]
fn a_queue_is_full_only_past_its_backlog() {
    let s = load("incident-queue.json");
    let r = report(&s, Thresholds::default());
    let q = one(&r, "accept_queue_full");
    assert!(q.evidence.iter().any(|e| e.contains("is full (more than")));
    let mut moment = s.clone();
    let listener = moment
        .sockets
        .iter()
        .position(|x| x.state() == TcpState::Listen)
        .unwrap();
    moment.sockets[listener].edit(|p| p.recv_q = 1);
    let mut kept = 0;
    moment.sockets.retain(|x| {
        let queued = x.inode() == 0 && x.state() == TcpState::Established;
        kept += u32::from(queued);
        !queued || kept <= 1
    });
    for sock in moment.sockets.iter_mut().filter(|x| x.inode() == 0) {
        sock.edit(|p| {
            if let Some(t) = p.tcp_info.as_mut() {
                t.last_ack_recv_ms = Some(20);
            }
        });
    }
    let r = report(&moment, Thresholds::default());
    assert!(none_of(&r, "accept_queue_full"), "{:#?}", r.findings);
}

/// A Go client holding response bodies (saved from `client_runtime_live.rs`):
/// responses the application never closed, not a stale pool; the same
/// sockets in a runtime whose client does not read its idle pool are one.
#[test]
fn a_runtime_that_reads_its_pool_holds_responses_not_a_stale_pool() {
    use connleak::diagnose::CloseWaitCause;
    use connleak::snapshot::Runtime;
    let s = load("go-body-leak.json");
    let r = report(&s, Thresholds::default());
    let f = one(&r, "close_wait_leak");
    assert_eq!(f.cause, Some(CloseWaitCause::ResponseNotClosed.into()));
    assert!(f.suggestion.contains("resp.Body.Close()"));
    let mut python = s.clone();
    for p in &mut python.processes {
        p.runtime = Some(Runtime::Python);
    }
    let r = report(&python, Thresholds::default());
    let f = one(&r, "close_wait_leak");
    assert_eq!(f.cause, Some(CloseWaitCause::UnreadAfterPeerClose.into()));
    assert!(
        f.evidence
            .iter()
            .any(|e| e.contains("or the server's goodbye"))
    );
}

/// The same Go process, its connections toward PostgreSQL's port instead:
/// they belong to a driver's pool (database/sql, pgx), which reads nothing
/// while idle, so CLOSE-WAIT there is a stale pool, not a response body.
#[test]
fn a_go_processs_database_connections_are_a_stale_pool_not_responses() {
    use connleak::diagnose::CloseWaitCause;
    let mut s = load("go-body-leak.json");
    for sock in &mut s.sockets {
        if sock.state() == TcpState::CloseWait {
            sock.edit(|p| p.remote.set_port(5432));
        }
    }
    let r = report(&s, Thresholds::default());
    let f = one(&r, "close_wait_leak");
    assert_eq!(
        f.cause,
        Some(CloseWaitCause::UnreadAfterPeerClose.into()),
        "{f:#?}"
    );
    assert!(
        !f.suggestion.contains("resp.Body.Close()"),
        "{}",
        f.suggestion
    );
    assert!(
        f.suggestion.contains("SetConnMaxIdleTime"),
        "{}",
        f.suggestion
    );
    assert!(
        !f.evidence
            .iter()
            .any(|e| e.contains("reads its idle pooled connections")),
        "{:#?}",
        f.evidence
    );
}

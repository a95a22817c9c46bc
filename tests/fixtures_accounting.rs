//! The kernel's own accounting on saved snapshots: orphaned FIN-WAIT-2
//! timewait sockets count toward tcp_max_tw_buckets, the orphan count is the
//! host's and the kernel acts at a quarter of tcp_max_orphans under memory
//! pressure, and since-boot counters warn only when they move during a
//! sampled window. No root needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::load;
use connleak::diagnose::{Finding, Severity, Thresholds, Window, diagnose};
use connleak::report::Report;
use connleak::snapshot::{Snapshot, Sockstat, Timer};
use connleak::tcp::TcpState;

fn kind<'a>(all: &'a [Finding], kind: &str) -> Option<&'a Finding> {
    all.iter().find(|f| f.kind == kind)
}

/// `leak.json`'s 40 FIN_WAIT2 are orphans on the TIME-WAIT timer
/// (tcp_fin_timeout 60): timewait sockets, counted toward tcp_max_tw_buckets.
#[test]
fn orphaned_fin_wait2_counts_toward_the_timewait_buckets() {
    let mut s = load("leak.json");
    let fw2: Vec<_> = s
        .sockets
        .iter()
        .filter(|x| x.state() == TcpState::FinWait2)
        .collect();
    assert!(
        fw2.iter()
            .all(|x| x.inode() == 0 && x.timer() == Timer::TimeWait)
    );
    s.kernel.sysctls.tcp_max_tw_buckets = Some(45);
    s.kernel.sysctls.tcp_max_orphans = Some(64);
    let all = diagnose(&s, Thresholds::default());
    let f = kind(&all, "time_wait_overflow").expect("40 of 45 buckets");
    assert_eq!((f.severity, f.count), (Severity::Warning, 40));
    assert!(
        f.evidence
            .iter()
            .any(|e| e.starts_with("40 of them are orphaned FIN-WAIT-2 sockets")),
        "{:#?}",
        f.evidence
    );
    // Not orphans: 40 of a quarter of 64 would have been a warning.
    assert!(kind(&all, "orphan_pressure").is_none(), "{all:#?}");
}

/// The host-wide count from sockstat, against a quarter of the limit.
#[test]
fn orphans_are_counted_host_wide_and_warned_at_a_quarter_of_the_limit() {
    let mut s = load("leak.json");
    s.kernel.sysctls.tcp_max_orphans = Some(1024);
    let with_orphans = |s: &mut Snapshot, orphan| {
        s.kernel.sockstat = Some(Sockstat {
            orphan,
            ..Sockstat::default()
        });
        diagnose(s, Thresholds::default())
    };
    // 220 of 1024 is 21%: far from 80% of the limit, but 85% of its quarter.
    let all = with_orphans(&mut s, 220);
    let f = kind(&all, "orphan_pressure").expect("near the pressure limit");
    assert_eq!((f.severity, f.count), (Severity::Warning, 220));
    assert!(
        f.evidence[0].contains("resets orphans from 256"),
        "{:#?}",
        f.evidence
    );
    assert!(f.evidence[0].contains("every namespace"));
    let all = with_orphans(&mut s, 150);
    assert!(kind(&all, "orphan_pressure").is_none());
}

/// Since boot is context; growth during a window is a warning.
#[test]
fn since_boot_counters_warn_only_when_they_move() {
    let mut s = load("leak.json");
    s.kernel.sysctls.tcp_max_orphans = Some(1 << 20);
    let set = |s: &mut Snapshot, tw: i64, mem: i64| {
        let ext = s.kernel.counters.entry("TcpExt".into()).or_default();
        ext.insert("TCPTimeWaitOverflow".into(), tw);
        ext.insert("TCPAbortOnMemory".into(), mem);
    };
    set(&mut s, 500, 70);
    let single = diagnose(&s, Thresholds::default());
    assert!(kind(&single, "time_wait_overflow").is_none(), "{single:#?}");
    assert!(kind(&single, "orphan_pressure").is_none(), "{single:#?}");

    // Flat over a window: still nothing.
    let mut window = Window::keeping(2);
    Report::build_in(&s, Thresholds::default(), &window).record(&s, &mut window);
    s.meta.taken_at_ms += 2000;
    let flat = Report::build_in(&s, Thresholds::default(), &window);
    assert!(kind(&flat.findings, "time_wait_overflow").is_none());
    assert!(kind(&flat.findings, "orphan_pressure").is_none());

    // Moving during the window: warnings that say by how much.
    let mut window = Window::keeping(2);
    Report::build_in(&s, Thresholds::default(), &window).record(&s, &mut window);
    s.meta.taken_at_ms += 2000;
    set(&mut s, 510, 73);
    let moved = Report::build_in(&s, Thresholds::default(), &window);
    let tw = kind(&moved.findings, "time_wait_overflow").expect("overflow now");
    assert!(tw.severity >= Severity::Warning);
    assert!(
        tw.evidence
            .iter()
            .any(|e| e.starts_with("TCPTimeWaitOverflow grew by 10 during the sampled window"))
    );
    let orphans = kind(&moved.findings, "orphan_pressure").expect("aborts now");
    assert!(
        orphans
            .evidence
            .iter()
            .any(|e| e.starts_with("TCPAbortOnMemory grew by 3"))
    );
}

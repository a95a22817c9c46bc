//! Trend over a sample window (`--interval SECS --samples N`): a leak is told
//! from a busy but healthy server by its growth. Each finding of the last
//! sample gets its count in every sample, the growth per second, and whether
//! it grew at every step; a steady growth raises its severity one step. The
//! socket cookie follows individual sockets across samples, so a socket seen
//! in every sample is known to be stuck for the whole window even without
//! tcp_info. The kernel counters' deltas over the window are reported too.

use crate::diagnose::{Finding, Severity};
use crate::report::Report;
use crate::snapshot::{Snapshot, WATCHED_COUNTERS};
use rustc_hash::FxHashSet;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The window, in the JSON report as `trend`.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub samples: usize,
    pub seconds: f64,
    /// How much each counter grew over the window (absent: not readable).
    pub counter_deltas: BTreeMap<String, i64>,
}

/// How a finding's count moved over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingTrend {
    /// Its count in each sample, oldest first (0 where it was not found).
    pub counts: Vec<u64>,
    /// Whether every sample counted more than the one before.
    pub growing: bool,
    /// Sockets of the last sample present in every sample (by cookie).
    pub present_throughout: Option<u64>,
}

/// What makes a finding the same one in another sample: kind, owner, endpoints.
type Key = (
    &'static str,
    Option<u32>,
    Option<SocketAddr>,
    Option<SocketAddr>,
);

fn key(f: &Finding) -> Key {
    (f.kind, f.pid, f.local, f.remote)
}

/// Adds the trend of `reports` (one per sample of `snapshots`, oldest first) to
/// the last one. A single sample has no window: its report is returned as is.
pub fn apply(snapshots: &[Snapshot], reports: Vec<Report>) -> Option<Report> {
    let mut reports = reports;
    let mut last = reports.pop()?;
    if reports.is_empty() {
        return Some(last);
    }
    let (first_snap, last_snap) = (snapshots.first()?, snapshots.last()?);
    let seconds = last_snap
        .meta
        .taken_at_ms
        .saturating_sub(first_snap.meta.taken_at_ms) as f64
        / 1000.0;
    let first_cookies: FxHashSet<u64> = first_snap
        .sockets
        .iter()
        .filter_map(|s| s.cookie.map(|c| c.get()))
        .collect();
    for f in &mut last.findings {
        let k = key(f);
        let mut counts: Vec<u64> = reports
            .iter()
            .map(|r| {
                r.findings
                    .iter()
                    .filter(|x| key(x) == k)
                    .map(|x| x.count)
                    .sum()
            })
            .collect();
        counts.push(f.count);
        let growing = counts.len() > 1 && counts.windows(2).all(|w| w[1] > w[0]);
        let growth = (counts[counts.len() - 1] as f64 - counts[0] as f64) / seconds.max(0.001);
        let present = (!f.sockets.is_empty()).then(|| {
            f.sockets
                .iter()
                .filter_map(|&i| last_snap.sockets.get(i)?.cookie)
                .filter(|c| first_cookies.contains(&c.get()))
                .count() as u64
        });
        let shown: Vec<String> = counts.iter().map(u64::to_string).collect();
        f.evidence.push(if growing {
            format!(
                "grew at every sample over {seconds:.0} s ({}): {growth:.1} per second; a leak, \
                 not a burst",
                shown.join(" → ")
            )
        } else if counts.iter().all(|&c| c == counts[0]) {
            format!(
                "flat over {seconds:.0} s ({}): not growing now",
                shown.join(" → ")
            )
        } else {
            format!("varied over {seconds:.0} s ({})", shown.join(" → "))
        });
        if let Some(p) = present.filter(|&p| p > 0) {
            f.evidence.push(format!(
                "{p} of these sockets were there in every sample: stuck for at least {seconds:.0} s"
            ));
        }
        if growing {
            f.severity = match f.severity {
                Severity::Info => Severity::Warning,
                _ => Severity::Critical,
            };
        }
        f.growth_per_s = Some((growth * 100.0).round() / 100.0);
        f.trend = Some(FindingTrend {
            counts,
            growing,
            present_throughout: present,
        });
    }
    let counter_deltas = WATCHED_COUNTERS
        .iter()
        .filter_map(|(g, n)| {
            let d = last_snap.kernel.counter(g, n)? - first_snap.kernel.counter(g, n)?;
            Some((n.to_string(), d))
        })
        .collect();
    crate::diagnose::order(&mut last.findings);
    last.window = Some(Window {
        samples: snapshots.len(),
        seconds,
        counter_deltas,
    });
    last.refresh_status();
    Some(last)
}

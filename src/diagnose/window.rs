//! The sample window: what earlier samples of the same namespace said, so
//! that a leak is told from a busy but healthy server by its growth.
//!
//! Like a monitor's model that is made from the current sample and the
//! previous one, the diagnosis of a sample reads the window of the samples
//! before it: each finding gets its count in every sample, its growth per
//! second and whether it grew at every step, and steady growth raises its
//! severity one step. A sampled run (`--samples N`) and `watch` feed the same
//! window, one sample at a time.
//!
//! The window keeps per-sample summaries (finding counts, per-process socket
//! counts, the watched kernel counters) and one map of socket cookie → when
//! that socket was first seen, never whole snapshots: its memory is that of
//! the sockets alive now, however many samples it spans.

use super::{Ceiling, Finding, percent};
use crate::snapshot::{Snapshot, WATCHED_COUNTERS};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

/// How a finding's (or a process's) count moved over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    /// Its count in each sample, oldest first (0 where it was not found).
    pub counts: Vec<u64>,
    /// Whether every sample counted more than the one before.
    pub growing: bool,
    /// Sockets of the last sample present in every sample (by cookie);
    /// `null` for a process's trend.
    pub present_throughout: Option<u64>,
}

/// The window as the JSON report shows it (`trend`).
#[derive(Debug, Clone, Serialize)]
pub struct Span {
    pub samples: usize,
    pub seconds: f64,
    /// How much each counter grew over the window (absent: not readable).
    pub counter_deltas: BTreeMap<String, i64>,
}

/// What makes a finding the same one in another sample: its id.
type Key = String;

fn key(f: &Finding) -> Key {
    f.id.clone()
}

/// One earlier sample, summarised.
#[derive(Debug, Default)]
struct Past {
    taken_at_ms: u64,
    findings: FxHashMap<Key, u64>,
    processes: FxHashMap<u32, u64>,
    counters: Vec<Option<i64>>,
}

/// The samples before the current one, oldest first.
#[derive(Debug)]
pub struct Window {
    /// How many earlier samples to keep (at least one, for a trend).
    keep: usize,
    past: VecDeque<Past>,
    /// Socket cookie → when it was first seen, for the sockets of the latest sample.
    first_seen: FxHashMap<u64, u64>,
    /// Socket cookie → since when (the first of the samples in a row) it held
    /// request bytes unread, for the sockets of the latest sample that do.
    unread_since: FxHashMap<u64, u64>,
}

impl Default for Window {
    /// No earlier sample: a single run has no trend.
    fn default() -> Self {
        Window::keeping(usize::MAX)
    }
}

impl Window {
    /// A window that remembers up to `samples` samples, the current one included.
    pub fn keeping(samples: usize) -> Window {
        Window {
            keep: samples.saturating_sub(1).max(1),
            past: VecDeque::new(),
            first_seen: FxHashMap::default(),
            unread_since: FxHashMap::default(),
        }
    }

    /// How long `s` has held request bytes unread, by the samples up to
    /// `now_ms` (it must hold some now): `None` when no earlier sample did.
    pub fn unread_ms(&self, s: &crate::snapshot::Socket, now_ms: u64) -> Option<u64> {
        let since = self.unread_since.get(&s.cookie()?.get())?;
        Some(now_ms.saturating_sub(*since))
    }

    /// Whether there is an earlier sample to compare with.
    pub fn is_empty(&self) -> bool {
        self.past.is_empty()
    }

    fn oldest_ms(&self) -> Option<u64> {
        self.past.front().map(|p| p.taken_at_ms)
    }

    /// Seconds from the oldest sample to `now_ms`.
    fn seconds_to(&self, now_ms: u64) -> f64 {
        self.oldest_ms()
            .map_or(0.0, |old| now_ms.saturating_sub(old) as f64 / 1000.0)
    }

    /// The window up to `snapshot`, for the report; `None` with no earlier sample.
    pub fn span(&self, snapshot: &Snapshot) -> Option<Span> {
        if self.is_empty() {
            return None;
        }
        let counter_deltas = WATCHED_COUNTERS
            .iter()
            .filter_map(|(g, n)| Some((n.to_string(), self.counter_delta(snapshot, g, n)?)))
            .collect();
        Some(Span {
            samples: self.past.len() + 1,
            seconds: self.seconds_to(snapshot.meta.taken_at_ms),
            counter_deltas,
        })
    }

    /// How much a watched kernel counter grew from the oldest sample of the
    /// window to `snapshot`; `None` with no earlier sample or where unreadable.
    /// A rule reads it to tell a counter moving now from one that moved
    /// since boot.
    pub fn counter_delta(&self, snapshot: &Snapshot, group: &str, name: &str) -> Option<i64> {
        let i = WATCHED_COUNTERS
            .iter()
            .position(|&(g, n)| g == group && n == name)?;
        let old = (*self.past.front()?.counters.get(i)?)?;
        Some(snapshot.kernel.counter(group, name)? - old)
    }

    /// Adds each finding's trend to the findings of `snapshot`, the newest sample.
    pub fn apply(&self, snapshot: &Snapshot, findings: &mut [Finding]) {
        if self.is_empty() {
            return;
        }
        let seconds = self.seconds_to(snapshot.meta.taken_at_ms);
        let oldest = self.oldest_ms().unwrap_or(0);
        for f in findings {
            let k = key(f);
            // When each of the finding's sockets was first seen: an earlier
            // sample counts at least those that were already there, even
            // if no finding was made of them then (too young, below a threshold).
            let seen: Vec<u64> = f
                .sockets
                .iter()
                .filter_map(|&i| snapshot.sockets.get(i)?.cookie())
                .filter_map(|c| self.first_seen.get(&c.get()).copied())
                .collect();
            // In the finding's unit: a pair's two ends are one connection, and
            // a listener counted beside its queue is none (sockets scaled to count).
            let sockets = (f.sockets.len() as u64).max(f.count).max(1);
            let there_at = |t: u64| {
                let n = seen.iter().filter(|&&s| s <= t).count() as u64;
                (n * f.count / sockets).min(f.count)
            };
            let mut counts: Vec<u64> = self
                .past
                .iter()
                .map(|p| {
                    let found = p.findings.get(&k).copied().unwrap_or(0);
                    found.max(there_at(p.taken_at_ms))
                })
                .collect();
            counts.push(f.count);
            let (growing, growth) = movement(&counts, seconds);
            // In the finding's own unit: a pair's two ends are one connection.
            let present = (!f.sockets.is_empty()).then(|| there_at(oldest));
            let movement = describe(&counts, growing, growth, seconds);
            let runs_out = match (growing, f.ceiling) {
                (true, Some(c)) => {
                    let (line, runs_out) = level_off(&movement, f.count, growth, c);
                    f.evidence.push(line);
                    runs_out
                }
                _ => {
                    let leak = if growing { "; a leak, not a burst" } else { "" };
                    f.evidence.push(format!("{movement}{leak}"));
                    growing
                }
            };
            if let Some(p) = present.filter(|&p| p > 0) {
                // Sockets a timer ends are not stuck for being seen twice within it.
                f.evidence.push(match f.ceiling {
                    Some(c) => format!(
                        "{p} of these sockets were there in every sample, within the {} s \
                         each lasts",
                        c.timer_s
                    ),
                    None => format!(
                        "{p} of these sockets were there in every sample: stuck for at least \
                         {seconds:.0} s"
                    ),
                });
            }
            if runs_out {
                f.severity = f.severity.raised();
            }
            f.growth_per_s = Some((growth * 100.0).round() / 100.0);
            f.trend = Some(Trend {
                counts,
                growing,
                present_throughout: present,
            });
        }
    }

    /// The trend of process `pid`'s socket count, `total` now.
    pub fn process_trend(&self, pid: u32, total: u64) -> Option<Trend> {
        if self.is_empty() {
            return None;
        }
        let mut counts: Vec<u64> = self
            .past
            .iter()
            .map(|p| p.processes.get(&pid).copied().unwrap_or(0))
            .collect();
        counts.push(total);
        let growing = counts.windows(2).all(|w| w[1] > w[0]);
        Some(Trend {
            counts,
            growing,
            present_throughout: None,
        })
    }

    /// Growth per second of a count series over this window ending at `now_ms`.
    pub fn rate(&self, counts: &[u64], now_ms: u64) -> f64 {
        movement(counts, self.seconds_to(now_ms)).1
    }

    /// Remembers `snapshot` and what was found in it, as the newest sample.
    pub fn record(
        &mut self,
        snapshot: &Snapshot,
        findings: &[Finding],
        processes: impl Iterator<Item = (u32, u64)>,
    ) {
        let now = snapshot.meta.taken_at_ms;
        let mut past = Past {
            taken_at_ms: now,
            processes: processes.collect(),
            counters: WATCHED_COUNTERS
                .iter()
                .map(|(g, n)| snapshot.kernel.counter(g, n))
                .collect(),
            ..Past::default()
        };
        for f in findings {
            *past.findings.entry(key(f)).or_default() += f.count;
        }
        let first_seen = snapshot
            .sockets
            .iter()
            .filter_map(|s| s.cookie())
            .map(|c| {
                let c = c.get();
                (c, self.first_seen.get(&c).copied().unwrap_or(now))
            })
            .collect();
        self.first_seen = first_seen;
        let unread_since = snapshot
            .sockets
            .iter()
            .filter(|s| s.has_unread_request())
            .filter_map(|s| s.cookie())
            .map(|c| {
                let c = c.get();
                (c, self.unread_since.get(&c).copied().unwrap_or(now))
            })
            .collect();
        self.unread_since = unread_since;
        self.past.push_back(past);
        while self.past.len() > self.keep {
            self.past.pop_front();
        }
    }
}

/// Where a timer-bounded build-up levels off at this rate, against its
/// limit: the evidence line, and whether it runs into the limit.
fn level_off(movement: &str, count: u64, per_s: f64, c: Ceiling) -> (String, bool) {
    let steady = count.max((per_s.max(0.0) * c.timer_s as f64).ceil() as u64);
    let pct = percent(steady, c.limit);
    let runs_out = pct >= c.warn_pct;
    let verdict = if runs_out {
        "it runs into the limit: a build-up, not a burst"
    } else {
        "a warm-up or a change of load, not a leak"
    };
    let line = format!(
        "{movement}; each socket leaves after {} s, so at this rate the count levels off near \
         {steady}, {pct}% of {} ({}): {verdict}",
        c.timer_s, c.limit_name, c.limit
    );
    (line, runs_out)
}

/// Whether `counts` grew at every step, and by how much per second over `seconds`.
fn movement(counts: &[u64], seconds: f64) -> (bool, f64) {
    let growing = counts.len() > 1 && counts.windows(2).all(|w| w[1] > w[0]);
    let (first, last) = (
        counts.first().copied().unwrap_or(0),
        counts.last().copied().unwrap_or(0),
    );
    (growing, (last as f64 - first as f64) / seconds.max(0.001))
}

/// The evidence line of a finding's movement over the window.
fn describe(counts: &[u64], growing: bool, growth: f64, seconds: f64) -> String {
    let shown: Vec<String> = counts.iter().map(u64::to_string).collect();
    let shown = shown.join(" → ");
    if growing {
        format!("grew at every sample over {seconds:.0} s ({shown}): {growth:.1} per second")
    } else if counts.iter().all(|&c| Some(&c) == counts.first()) {
        format!("flat over {seconds:.0} s ({shown}): not growing now")
    } else {
        format!("varied over {seconds:.0} s ({shown})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_bounded_build_up_is_judged_where_it_levels_off() {
        let ports = Ceiling::time_wait(1000, "the usable local ports", 50);
        // 2 a second for 60 s levels off near 120 of 1000: a warm-up.
        let (line, runs_out) = level_off("grew", 40, 2.0, ports);
        assert!(!runs_out);
        assert!(line.contains("levels off near 120, 12% of the usable local ports (1000)"));
        // 20 a second levels off near 1200: past the ports there are.
        let (line, runs_out) = level_off("grew", 40, 20.0, ports);
        assert!(runs_out, "{line}");
        // Already past the projection: the count itself is judged.
        assert!(level_off("grew", 900, 0.1, ports).1);
    }
}

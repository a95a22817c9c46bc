//! A traced run: the tracer on while the pipeline samples, and each
//! finding given the call sites of its sockets born meanwhile — grouped by
//! stack and thread, the most first, each named by the symbolizer — with
//! what the trace could not see said in its evidence (sockets born before it
//! started, births it did not record).

use crate::collect::trace::{Birth, Traced, Tracer, symbols, unwind};
use crate::report::{Report, TraceSummary};
use crate::snapshot::{CallSite, Frame, Snapshot};
use rustc_hash::{FxHashMap, FxHashSet};
use std::path::PathBuf;
use std::time::Instant;

/// Call sites kept per finding, the most first.
const KEPT: usize = 10;

/// The tracer of a run, and what it needs to name what it recorded.
pub struct Trace {
    tracer: Tracer,
    proc_root: PathBuf,
    started: Instant,
    /// The inodes of the sockets of the first sample: born before the trace.
    before: Option<FxHashSet<u64>>,
}

/// What one refresh learns while naming call sites, kept for its findings
/// that share processes and stacks: each process's code mappings (its
/// `/proc/PID/maps`, read once), where a wrapper keeps its caller's return
/// address, and the frames of each stack.
#[derive(Default)]
struct Naming {
    symbols: symbols::Symbols,
    code: FxHashMap<u32, Vec<unwind::Mapping>>,
    slots: FxHashMap<(u32, u64), usize>,
    named: FxHashMap<(u32, Vec<u64>), Vec<Frame>>,
}

/// A group of a finding's sockets: one process, one thread name, one stack.
#[derive(Hash, PartialEq, Eq)]
struct Site {
    pid: u32,
    thread: String,
    stack: u32,
    ips: Vec<u64>,
}

impl Trace {
    /// Starts tracing, or says in one line why it cannot (for stderr).
    pub fn start(proc_root: PathBuf) -> Result<Trace, String> {
        match Tracer::start() {
            Ok(tracer) => Ok(Trace {
                tracer,
                proc_root,
                started: Instant::now(),
                before: None,
            }),
            Err(e) if e.is_denied() => Err(format!(
                "no call sites: {e} (tracing needs CAP_BPF and CAP_PERFMON: run as root)"
            )),
            Err(e) => Err(format!(
                "no call sites: this kernel (or sandbox) cannot trace socket births: {e}"
            )),
        }
    }

    /// Gives each finding of one refresh (its namespaces' snapshots and
    /// reports) its call sites; the first refresh also marks which sockets
    /// were there before.
    pub fn annotate(&mut self, mut namespaces: Vec<(&Snapshot, &mut Report)>) {
        if self.before.is_none() {
            self.before = Some(
                namespaces
                    .iter()
                    .flat_map(|(snapshot, _)| snapshot.sockets.iter().map(|s| s.inode()))
                    .collect(),
            );
        }
        let before = self.before.as_ref();
        let traced = self.tracer.read();
        let summary = summary(&traced, self.started.elapsed().as_secs_f64());
        // For this refresh only: the symbolizer's caches are not for another
        // thread (the agent's pipeline runs on one), and a process's
        // binaries may change between refreshes.
        let mut naming = Naming::default();
        for (snapshot, report) in &mut namespaces {
            report.trace = Some(summary);
            for f in &mut report.findings {
                let inodes: Vec<u64> = f
                    .sockets
                    .iter()
                    .filter_map(|&i| snapshot.sockets.get(i).map(|s| s.inode()))
                    .collect();
                if inodes.is_empty() {
                    continue;
                }
                let born: Vec<&Birth> =
                    inodes.iter().filter_map(|i| traced.births.get(i)).collect();
                f.evidence.extend(coverage(&inodes, before, born.len()));
                f.call_sites = self.sites(&born, &mut naming);
            }
        }
    }

    /// The call sites of `born`, the most first, at most [`KEPT`].
    fn sites(&self, born: &[&Birth], naming: &mut Naming) -> Vec<CallSite> {
        let mut groups: FxHashMap<Site, u64> = FxHashMap::default();
        for b in born {
            let Some(stack) = b.stack else { continue };
            let walked = self.tracer.stack(stack);
            let maps = naming
                .code
                .entry(b.pid)
                .or_insert_with(|| unwind::mappings(&self.proc_root, b.pid));
            let ip = walked.first().copied().unwrap_or(0);
            let slot = *naming.slots.entry((b.pid, ip)).or_insert_with(|| {
                let root = self.proc_root.join(b.pid.to_string()).join("root");
                unwind::return_slot(&root, maps, ip)
            });
            let ips = unwind::splice(&walked, &b.words, slot, maps);
            let site = Site {
                pid: b.pid,
                thread: b.thread.clone(),
                stack,
                ips,
            };
            *groups.entry(site).or_default() += 1;
        }
        let mut sites: Vec<(Site, u64)> = groups.into_iter().collect();
        sites.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.thread.cmp(&b.0.thread)));
        sites
            .into_iter()
            .take(KEPT)
            .map(|(site, count)| {
                let counts = self.tracer.counts(site.stack);
                let symbols = &naming.symbols;
                let frames = naming
                    .named
                    .entry((site.pid, site.ips.clone()))
                    .or_insert_with(|| symbols.frames(site.pid, &site.ips))
                    .clone();
                CallSite {
                    count,
                    thread: site.thread,
                    frames,
                    born: counts.born,
                    closed: counts.ended,
                    open: counts.born.saturating_sub(counts.ended),
                }
            })
            .collect()
    }
}

/// What the trace could not see of a finding's sockets, in its evidence.
fn coverage(inodes: &[u64], before: Option<&FxHashSet<u64>>, traced: usize) -> Vec<String> {
    let total = inodes.len();
    let old = inodes
        .iter()
        .filter(|i| before.is_some_and(|b| b.contains(i)))
        .count();
    let unseen = total.saturating_sub(old + traced);
    let mut lines = Vec::new();
    if old > 0 {
        lines.push(format!(
            "{old} of {total} born before tracing started: no call site"
        ));
    }
    if unseen > 0 {
        lines.push(format!(
            "{unseen} of {total} born during the trace without a recorded call site \
             (not by connect() or accept(), or not recorded)"
        ));
    }
    lines
}

/// The trace's counters as the report gives them.
fn summary(traced: &Traced, seconds: f64) -> TraceSummary {
    let t = traced.tally;
    let evicted = t
        .recorded
        .saturating_sub(t.ended)
        .saturating_sub(traced.births.len() as u64);
    TraceSummary {
        seconds: (seconds * 10.0).round() / 10.0,
        births: t.recorded + t.not_recorded,
        lost: t.no_stack + t.not_recorded + evicted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_says_what_has_no_call_site() {
        let before: FxHashSet<u64> = [1, 2, 3].into_iter().collect();
        assert_eq!(
            coverage(&[1, 2, 3, 4, 5, 6], Some(&before), 2),
            [
                "3 of 6 born before tracing started: no call site",
                "1 of 6 born during the trace without a recorded call site \
                 (not by connect() or accept(), or not recorded)"
            ]
        );
        assert!(coverage(&[4, 5], Some(&before), 2).is_empty());
    }
}

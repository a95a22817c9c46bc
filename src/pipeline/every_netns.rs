//! `--all-netns`: every network namespace collected at once, for about the
//! price of the biggest.
//!
//! One thread scans every process's fd table (and, through the fd
//! iterator, the TCP sockets they hold) while a few others go through the
//! namespaces. A namespace that must be dumped anyway (TIME-WAIT sockets,
//! or more sockets than lookups pay for, as its sockstat tells) is dumped
//! at once, beside the scan; one whose sockets may all be held is set aside
//! until the scan ends, then read by lookups (see `collect::held`). On a
//! node of pods beside one big namespace, the big one's dump and the scan
//! run side by side, and the pods cost their lookups.

use super::{PipelineError, in_namespace};
use crate::collect::parallel::on_threads;
use crate::collect::{Collected, Collector, netns};
use crate::render::text::escape;
use crate::snapshot::Snapshot;
use crate::timings;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::OnceLock;

/// Namespaces collected at once, at most.
const THREADS: usize = 4;

/// Every target's snapshot (or why it could not be taken), in their order.
pub(super) fn collect(
    collector: &Collector,
    root: &Path,
    targets: &[netns::Target],
) -> Vec<Result<Snapshot, PipelineError>> {
    let names = netns::names(root);
    let scan = OnceLock::new();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, THREADS);
    let indices: Vec<usize> = (0..targets.len()).collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            // Set even if it panicked, or the namespaces waiting for it would wait forever.
            let done = std::panic::catch_unwind(AssertUnwindSafe(|| collector.host_scan()));
            let _ = scan.set(done.ok());
        });
        let mut results: Vec<Option<Result<Snapshot, PipelineError>>> =
            targets.iter().map(|_| None).collect();
        let mut waiting = Vec::new();
        // First every namespace without waiting for the scan, then those set aside.
        let first = on_threads(threads, &indices, |&i| {
            let attempt = in_namespace(&targets[i], root, || {
                collector.collect_among(&scan, &names, None, false)
            });
            (i, attempt)
        });
        for (i, attempt) in first {
            match attempt {
                Ok(Collected::Done(snapshot, how)) => {
                    results[i] = Some(Ok(noted(*snapshot, how, &targets[i])));
                }
                Ok(Collected::Waiting(w)) => waiting.push((i, std::sync::Mutex::new(Some(w)))),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let second = on_threads(threads, &waiting, |(i, w)| {
            let resumed = w.lock().unwrap_or_else(|e| e.into_inner()).take();
            let attempt = in_namespace(&targets[*i], root, || {
                collector.collect_among(&scan, &names, resumed, true)
            });
            (*i, attempt)
        });
        for (i, attempt) in second {
            results[i] = Some(attempt.and_then(|c| match c {
                Collected::Done(snapshot, how) => Ok(noted(*snapshot, how, &targets[i])),
                Collected::Waiting(_) => Err(PipelineError::Panicked(targets[i].label())),
            }));
        }
        results
            .into_iter()
            .zip(targets)
            .map(|(r, t)| r.unwrap_or_else(|| Err(PipelineError::Panicked(t.label()))))
            .collect()
    })
}

/// `snapshot`, once `CONNLEAK_TIMINGS` was told how its sockets were read;
/// the namespace named as its report is (`ip netns` name, else the target's label).
fn noted(snapshot: Snapshot, how: Result<(), &str>, target: &netns::Target) -> Snapshot {
    let label = snapshot
        .meta
        .netns
        .name
        .clone()
        .unwrap_or_else(|| target.label());
    let name = escape(&label);
    timings::note(&match how {
        Ok(()) => format!(
            "namespace {name}: {} sockets read by exact lookups",
            snapshot.sockets.len()
        ),
        Err(why) => format!("namespace {name}: dumped ({why})"),
    });
    snapshot
}

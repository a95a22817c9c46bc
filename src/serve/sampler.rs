//! The agent's collection loop: the pipeline refreshed every interval on a
//! thread of its own, each result rendered for the routes and swapped in.
//!
//! It is the loop of a sampled run and of `watch` ([`Pipeline::refresh`]),
//! so the agent's reports carry the trend over its own window. A refresh
//! that fails (a namespace gone, a read denied, even a bug that panics) is
//! counted, said in one line on stderr and served as `connleak_up 0`; the
//! next one goes ahead at its time. Nothing of a refresh outlives it but
//! the rendered bodies and the pipeline's window, so memory stays flat.

use super::latest::{Health, Latest, Served};
use crate::pipeline::{Pipeline, Refresh};
use crate::plan::Scope;
use crate::render::{self, Format, prometheus, text::escape};
use bytes::Bytes;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

/// The agent's running tally, for its own series.
#[derive(Debug, Default)]
struct Tally {
    /// When the last collection that succeeded was taken, seconds since the epoch.
    last_collection: Option<f64>,
    errors: u64,
}

/// Refreshes every `interval` (from one start to the next; at once when a
/// refresh took longer), forever.
pub fn run(mut pipeline: Pipeline, latest: &Latest) {
    let interval = pipeline.plan().interval;
    let json = Format::Json {
        namespaces: pipeline.plan().scope == Scope::AllNetns,
    };
    let mut tally = Tally::default();
    loop {
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| pipeline.refresh()))
            .unwrap_or_else(|_| Err(crate::pipeline::PipelineError::Panicked("a refresh".into())));
        let served = match outcome {
            Ok(refresh) => served(&refresh, json, &mut tally),
            Err(e) => {
                let reason = escape(&e.to_string()).into_owned();
                crate::output::stderr_line(&format!("connleak: collection failed: {reason}"));
                tally.errors += 1;
                Served {
                    metrics: metrics(&[], &tally, true),
                    report: latest.get().report,
                    health: Health::Failing(reason),
                }
            }
        };
        latest.set(served);
        std::thread::sleep(interval.saturating_sub(started.elapsed()));
    }
}

/// The bodies of a refresh that succeeded; the namespaces it skipped
/// (`--all-netns`) are counted as errors and said.
fn served(refresh: &Refresh, json: Format, tally: &mut Tally) -> Served {
    for line in refresh.skipped_lines() {
        crate::output::stderr_line(&line);
        tally.errors += 1;
    }
    let taken = refresh
        .namespaces
        .iter()
        .map(|d| d.snapshot.meta.taken_at_ms)
        .max();
    tally.last_collection = taken.map(|ms| ms as f64 / 1000.0);
    let reports = refresh.labelled();
    let mut report = Vec::new();
    // Rendering into memory cannot fail.
    let _ = render::write(&mut report, json, &reports);
    Served {
        metrics: metrics(&reports, tally, false),
        report: Some(Bytes::from(report)),
        health: Health::Ok,
    }
}

/// `/metrics` before the first collection: the agent's own series.
pub fn starting() -> Bytes {
    metrics(&[], &Tally::default(), false)
}

fn metrics(reports: &[crate::report::Labelled], tally: &Tally, failing: bool) -> Bytes {
    let agent = prometheus::Agent {
        version: env!("CARGO_PKG_VERSION"),
        last_collection: tally.last_collection,
        errors: tally.errors,
        failing,
    };
    let mut out = Vec::new();
    let _ = prometheus::write_agent(&mut out, reports, &agent);
    Bytes::from(out)
}

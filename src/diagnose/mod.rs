//! Diagnosis: pure functions from a [`Snapshot`] to findings.
//!
//! Each cause of a connection build-up is one rule in its own module, listed in
//! [`RULES`]. A rule reads the snapshot through an [`Index`] (who owns which
//! socket, which ports listen) and returns findings that name the owner, the
//! endpoint, the kernel's evidence in numbers, what the state means in TCP's
//! close sequence, and what to do. Rules never read the system or the clock,
//! so every one is tested on saved snapshots.

mod close_wait;
mod index;

pub use index::Index;

use crate::snapshot::Snapshot;
use serde::{Deserialize, Serialize};

/// How bad a finding is. Ordered: `Info` < `Warning` < `Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// Which end of the connections a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnSide {
    /// Connections accepted on a local listening port.
    Server,
    /// Connections this host opened toward a remote endpoint.
    Client,
}

/// One diagnosed cause: the JSON contract's `findings[]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: String,
    pub severity: Severity,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub count: u64,
    pub local: Option<String>,
    pub remote: Option<String>,
    pub evidence: Vec<String>,
    pub suggestion: String,
    /// The TCP state the finding is about.
    pub state: String,
    pub side: Option<ConnSide>,
    /// The specific cause within the kind (e.g. `never_closed_after_eof`).
    pub cause: Option<String>,
    /// Age of the oldest socket in the group, seconds, when the kernel told it.
    pub oldest_s: Option<u64>,
}

/// The numbers that turn counts into severities. Every one is a flag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Stuck CLOSE_WAIT sockets in one group that make a warning.
    pub close_wait_warn: u64,
    /// ... and a critical.
    pub close_wait_crit: u64,
    /// A CLOSE_WAIT socket younger than this (seconds) is still being closed.
    pub close_wait_min_age_s: u64,
    /// A warning-sized group whose oldest socket is older than this is critical.
    pub close_wait_crit_age_s: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            close_wait_warn: 10,
            close_wait_crit: 200,
            close_wait_min_age_s: 2,
            close_wait_crit_age_s: 3600,
        }
    }
}

/// What a rule sees.
pub struct Context<'a> {
    pub snapshot: &'a Snapshot,
    pub index: Index<'a>,
    pub thresholds: Thresholds,
}

/// A rule: its finding kind and the function that finds it.
pub struct Rule {
    pub kind: &'static str,
    pub run: fn(&Context) -> Vec<Finding>,
}

/// Every rule connleak runs, in the order their findings are reported.
pub const RULES: &[Rule] = &[Rule {
    kind: close_wait::KIND,
    run: close_wait::find,
}];

/// Runs every rule; findings come worst first, then largest first.
pub fn diagnose(snapshot: &Snapshot, thresholds: Thresholds) -> Vec<Finding> {
    let cx = Context {
        snapshot,
        index: Index::new(snapshot),
        thresholds,
    };
    let mut findings: Vec<Finding> = RULES.iter().flat_map(|r| (r.run)(&cx)).collect();
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.count.cmp(&a.count))
            .then(a.pid.cmp(&b.pid))
    });
    findings
}

/// Formats a duration in seconds the way an on-call engineer reads it.
pub fn human_duration(secs: u64) -> String {
    match secs {
        0 => "under 1 s".to_string(),
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s if s < 86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_and_durations_read() {
        assert!(Severity::Critical > Severity::Warning && Severity::Warning > Severity::Info);
        assert_eq!(human_duration(0), "under 1 s");
        assert_eq!(human_duration(5), "5 s");
        assert_eq!(human_duration(125), "2 min 5 s");
        assert_eq!(human_duration(7300), "2 h 1 min");
        assert_eq!(human_duration(90000), "1 d 1 h");
    }
}

//! The link stage: findings joined into incidents.
//!
//! Each rule is right about its own pattern; on a real incident the
//! patterns come together, and a report of rules side by side tells
//! symptoms. A server at its fd limit stops accepting, so its accept queue
//! fills, so local clients' connects go unanswered: three findings, one
//! cause. An on-call engineer acts on the first finding, so the cause must
//! come first and its consequences under it.
//!
//! A [`Link`] is a pure function over the findings of one report (with the
//! snapshot they came from) that says which finding explains which, how
//! (an evidence line for the consequence), and, when the consequence's own
//! advice would send the engineer the wrong way, what to do instead. The
//! stage runs every link in [`LINKS`] order (most specific first), keeps the
//! first cause found for each finding and never a circle, sets
//! `caused_by`, gives a cause at least the severity of what it causes (the
//! severity comes from the effect), and orders the report as roots, worst
//! first, each followed by its consequences.

mod fd_limit;
mod listener;
mod peer_host;

use crate::diagnose::{Finding, Index, worst_first};
use crate::snapshot::{Snapshot, Socket};

/// One way a finding explains another.
pub struct Link {
    /// Its name, as the README's table of incidents lists it.
    pub name: &'static str,
    pub run: fn(&Context) -> Vec<Explained>,
}

/// What a link sees: the report's findings and the snapshot they came from.
pub struct Context<'a> {
    pub snapshot: &'a Snapshot,
    pub index: &'a Index<'a>,
    pub findings: &'a [Finding],
}

impl<'a> Context<'a> {
    /// The findings of one kind, with their positions.
    pub fn of_kind(&self, kind: &'static str) -> impl Iterator<Item = (usize, &'a Finding)> + '_ {
        self.findings
            .iter()
            .enumerate()
            .filter(move |(_, f)| f.kind == kind)
    }

    /// The sockets a finding counts.
    pub fn sockets(&self, f: &'a Finding) -> impl Iterator<Item = &'a Socket> + 'a {
        let all = &self.snapshot.sockets;
        f.sockets.iter().filter_map(move |&i| all.get(i))
    }
}

/// Finding `effect` follows from finding `cause` (positions in the report).
pub struct Explained {
    pub cause: usize,
    pub effect: usize,
    /// The evidence line the consequence gains: how the cause explains it.
    pub why: String,
    /// What to do instead of the consequence's own advice, when that advice
    /// points the wrong way.
    pub suggestion: Option<String>,
}

/// Every link, most specific first: a finding keeps the first cause found.
pub const LINKS: &[Link] = &[
    fd_limit::LEAK_FILLS_FDS,
    fd_limit::STOPS_ACCEPTING,
    listener::POOL_STOPS_ACCEPTING,
    listener::FULL_QUEUE,
    listener::SYN_FLOOD,
    peer_host::DEAD_PEER,
];

/// Joins `findings` (of `snapshot`) into incidents: `caused_by`, severities
/// from the effect, and the report order (each root, then what it causes).
pub fn link(snapshot: &Snapshot, index: &Index, mut findings: Vec<Finding>) -> Vec<Finding> {
    let cx = Context {
        snapshot,
        index,
        findings: &findings,
    };
    let mut parent: Vec<Option<usize>> = vec![None; findings.len()];
    let mut accepted = Vec::new();
    for link in LINKS {
        for e in (link.run)(&cx) {
            let free = parent.get(e.effect).is_some_and(Option::is_none);
            if e.cause < findings.len() && free && !reaches(&parent, e.cause, e.effect) {
                parent[e.effect] = Some(e.cause);
                accepted.push(e);
            }
        }
    }
    for e in accepted {
        let id = findings[e.cause].id.clone();
        let f = &mut findings[e.effect];
        let at = f.evidence.len().min(1);
        f.evidence.insert(at, e.why);
        if let Some(s) = e.suggestion {
            f.suggestion = s;
        }
        f.caused_by = Some(id);
    }
    raise_causes(&mut findings, &parent);
    in_incident_order(findings, &parent)
}

/// Whether following causes up from `from` reaches `to` (the new link would close a circle).
fn reaches(parent: &[Option<usize>], from: usize, to: usize) -> bool {
    let mut at = Some(from);
    let mut steps = 0;
    while let Some(i) = at {
        if i == to || steps > parent.len() {
            return true;
        }
        at = parent[i];
        steps += 1;
    }
    false
}

/// A cause is at least as severe as what it causes: the listener that stops
/// accepting is as bad as the connects that fail because of it.
fn raise_causes(findings: &mut [Finding], parent: &[Option<usize>]) {
    // Worst effect below each finding, carried up one level at a time.
    for start in 0..findings.len() {
        let (severity, kind, id) = {
            let f = &findings[start];
            (f.severity, f.kind, f.id.clone())
        };
        let mut at = parent[start];
        let mut steps = 0;
        while let Some(c) = at {
            if steps > parent.len() {
                break;
            }
            let cause = &mut findings[c];
            if cause.severity < severity {
                cause.severity = severity;
                cause.evidence.push(format!(
                    "{} because of what it causes: {kind} ({id})",
                    severity.label()
                ));
            }
            at = parent[c];
            steps += 1;
        }
    }
}

/// Roots worst first, each followed by its consequences (worst first, depth first).
fn in_incident_order(findings: Vec<Finding>, parent: &[Option<usize>]) -> Vec<Finding> {
    let n = findings.len();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut roots = Vec::new();
    for (i, p) in parent.iter().enumerate() {
        match p {
            Some(c) => children[*c].push(i),
            None => roots.push(i),
        }
    }
    let by_worst = |v: &mut Vec<usize>| v.sort_by(|&a, &b| worst_first(&findings[a], &findings[b]));
    by_worst(&mut roots);
    for c in &mut children {
        by_worst(c);
    }
    let mut order = Vec::with_capacity(n);
    let mut stack: Vec<usize> = roots.into_iter().rev().collect();
    while let Some(i) = stack.pop() {
        order.push(i);
        stack.extend(children[i].iter().rev());
    }
    let mut slots: Vec<Option<Finding>> = findings.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::{RULES, Severity};

    fn finding(id: &str, severity: Severity, count: u64) -> Finding {
        Finding {
            id: id.to_string(),
            severity,
            count,
            ..Finding::of(&RULES[0], None)
        }
    }

    #[test]
    fn roots_come_first_with_their_consequences_and_take_their_severity() {
        let mut fs = vec![
            finding("a", Severity::Warning, 50),
            finding("b", Severity::Info, 3),
            finding("c", Severity::Critical, 9),
            finding("d", Severity::Warning, 1),
        ];
        // b causes c (critical), which makes b critical; d is unrelated.
        let parent = vec![None, None, Some(1), None];
        fs[2].caused_by = Some("b".into());
        raise_causes(&mut fs, &parent);
        assert_eq!(fs[1].severity, Severity::Critical);
        let ids: Vec<String> = in_incident_order(fs, &parent)
            .into_iter()
            .map(|f| f.id)
            .collect();
        assert_eq!(ids, ["b", "c", "a", "d"]);
    }

    #[test]
    fn a_link_that_would_close_a_circle_is_refused() {
        let parent = vec![None, Some(0), Some(1)];
        assert!(reaches(&parent, 2, 0));
        assert!(!reaches(&parent, 0, 2));
    }
}

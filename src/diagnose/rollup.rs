//! `close_wait_rollup`: a leak spread thin, a few sockets per process or per
//! endpoint, under every threshold `close_wait_leak` applies to one group.
//!
//! A prefork server (gunicorn, php-fpm, apache) whose 30 workers each leak 3
//! CLOSE_WAIT sockets, or a client leaking 3 toward each of 30 pod IPs, is one
//! leak in one code path. The stuck CLOSE_WAIT sockets no warning explains yet
//! are summed per listener across its processes, then what is left per
//! process across its endpoints; each socket counts in one roll-up only.

use super::close_wait::is_stuck;
use super::{ConnSide, Context, Finding, Rule, Severity, canonical, who};
use crate::snapshot::{Process, endpoint};
use crate::tcp::TcpState;
use std::collections::BTreeMap;
use std::net::SocketAddr;

pub const RULE: Rule = Rule {
    kind: "close_wait_rollup",
    unit: super::Unit::Sockets,
    title: "a CLOSE-WAIT leak spread over many processes or endpoints",
    about: "Stuck CLOSE-WAIT sockets that no close_wait_leak warning explains, summed per \
            listener across the processes that accepted them (the workers of a prefork server: \
            pid is their common parent when they share one) and per process across the \
            endpoints it talks to (a client leaking toward many pod IPs): each process or \
            endpoint stays under --close-wait-warn, together they reach it. The evidence \
            breaks the count down; fix the code path every worker shares, as for close_wait_leak.",
    run: find,
};

/// Groups of more than this many are summarised, not listed.
const MAX_LISTED: usize = 5;

/// One stuck socket: its index and holder (its endpoint is its group's).
struct Stuck<'a> {
    index: usize,
    holder: &'a Process,
}

/// The stuck sockets of one process across endpoints.
struct Spread<'a> {
    holder: &'a Process,
    sockets: Vec<usize>,
    per_endpoint: BTreeMap<SocketAddr, usize>,
    /// Every one of them a client's (no local listener).
    all_client: bool,
}

pub fn find(cx: &Context) -> Vec<Finding> {
    // By (server side, listener or remote endpoint): a local server's address is both.
    let mut per_listener: BTreeMap<(bool, SocketAddr), Vec<Stuck>> = BTreeMap::new();
    for (index, s) in cx.in_state(TcpState::CloseWait) {
        // Connections still queued (inode 0) belong to their listener's queue, not to a process.
        let Some(holder) = cx.index.owner(index) else {
            continue;
        };
        if !is_stuck(cx, s) {
            continue;
        }
        let listener = cx.index.listener_of(index);
        let endpoint = canonical(listener.map_or(s.remote(), |l| l.local()));
        per_listener
            .entry((listener.is_some(), endpoint))
            .or_default()
            .push(Stuck { index, holder });
    }
    let warn = cx.thresholds.close_wait_warn;
    let mut out = Vec::new();
    let mut per_process: BTreeMap<u32, Spread> = BTreeMap::new();
    for ((server, at), group) in per_listener {
        if server && group.len() as u64 >= warn {
            out.push(listener_finding(cx, at, group));
            continue;
        }
        for s in group {
            let spread = per_process.entry(s.holder.pid).or_insert_with(|| Spread {
                holder: s.holder,
                sockets: Vec::new(),
                per_endpoint: BTreeMap::new(),
                all_client: true,
            });
            spread.sockets.push(s.index);
            *spread.per_endpoint.entry(at).or_default() += 1;
            spread.all_client &= !server;
        }
    }
    out.extend(
        per_process
            .into_values()
            .filter(|g| g.sockets.len() as u64 >= warn)
            .map(|g| process_finding(cx, g)),
    );
    out
}

/// "3 each" or "2 to 5 each".
fn each(counts: impl Iterator<Item = usize> + Clone) -> String {
    let (lo, hi) = (counts.clone().min(), counts.max());
    match (lo, hi) {
        (Some(lo), Some(hi)) if lo < hi => format!("{lo} to {hi} each"),
        (_, hi) => format!("{} each", hi.unwrap_or(0)),
    }
}

fn severity(cx: &Context, count: u64) -> Severity {
    Severity::grade(
        count,
        cx.thresholds.close_wait_warn,
        cx.thresholds.close_wait_crit,
    )
}

fn listener_finding(cx: &Context, at: SocketAddr, group: Vec<Stuck>) -> Finding {
    let mut per_holder: BTreeMap<u32, (&Process, usize)> = BTreeMap::new();
    for s in &group {
        per_holder.entry(s.holder.pid).or_insert((s.holder, 0)).1 += 1;
    }
    // Workers of one server, by name and parent.
    let mut kinds: BTreeMap<(&str, Option<u32>), Vec<usize>> = BTreeMap::new();
    for (p, n) in per_holder.values() {
        kinds.entry((p.comm.as_str(), p.ppid)).or_default().push(*n);
    }
    let mut parts: Vec<String> = kinds
        .iter()
        .take(MAX_LISTED)
        .map(|((comm, ppid), counts)| {
            let who = match ppid {
                Some(pp) => format!("{} workers of {comm} (parent pid {pp})", counts.len()),
                None => format!("{} processes named {comm}", counts.len()),
            };
            format!("{who}, {}", each(counts.iter().copied()))
        })
        .collect();
    if kinds.len() > MAX_LISTED {
        parts.push(format!(
            "{} more kinds of process",
            kinds.len() - MAX_LISTED
        ));
    }
    let listener = cx.index.listener_at(&at);
    let parents: Vec<Option<u32>> = per_holder.values().map(|(p, _)| p.ppid).collect();
    // The workers' common parent answers for them only when it is the
    // server itself (a prefork master holding the listener), never an init
    // or a supervisor that merely started them.
    let parent = match parents.first() {
        Some(Some(pp)) if *pp != 1 && parents.iter().all(|x| *x == Some(*pp)) => cx
            .index
            .process(*pp)
            .filter(|p| listener.is_some_and(|l| p.socket_inodes.contains(&l.inode()))),
        _ => None,
    };
    let busiest = per_holder
        .values()
        .max_by_key(|(p, n)| (*n, std::cmp::Reverse(p.pid)))
        .map(|(p, _)| *p);
    let named = parent
        .or_else(|| listener.and_then(|l| cx.index.owner(l.at)))
        .filter(|p| p.pid != 1 || per_holder.contains_key(&1))
        .or(busiest);
    let count = group.len() as u64;
    Finding {
        severity: severity(cx, count),
        count,
        local: Some(at),
        evidence: vec![
            format!(
                "{} processes hold {count} stuck CLOSE_WAIT sockets accepted on listener {}: {}",
                per_holder.len(),
                endpoint(&at),
                parts.join("; ")
            ),
            format!(
                "no process reaches --close-wait-warn {} on its own; together they do{}",
                cx.thresholds.close_wait_warn,
                parent
                    .map(|p| format!("; {} is their common parent", who(Some(p))))
                    .unwrap_or_default()
            ),
        ],
        suggestion: "Every worker leaks the same way: one code path shared by all of them \
                     reads EOF (or stops reading) and never closes. Fix it as for a \
                     CLOSE_WAIT leak (connleak explain close_wait_leak); recycling workers (max_requests) only hides it."
            .to_string(),
        side: Some(ConnSide::Server),
        sockets: group.iter().map(|s| s.index).collect(),
        ..Finding::of(&RULE, Some(TcpState::CloseWait))
    }
    .owned_by(named)
}

fn process_finding(cx: &Context, spread: Spread) -> Finding {
    let Spread {
        holder,
        sockets,
        per_endpoint,
        all_client,
    } = spread;
    let mut shown: Vec<String> = per_endpoint.keys().take(MAX_LISTED).map(endpoint).collect();
    if per_endpoint.len() > MAX_LISTED {
        shown.push(format!("{} more", per_endpoint.len() - MAX_LISTED));
    }
    let count = sockets.len() as u64;
    Finding {
        severity: severity(cx, count),
        count,
        evidence: vec![
            format!(
                "{} holds {count} stuck CLOSE_WAIT sockets across {} endpoints, {}: {}",
                who(Some(holder)),
                per_endpoint.len(),
                each(per_endpoint.values().copied()),
                shown.join(", ")
            ),
            format!(
                "no endpoint reaches --close-wait-warn {} on its own; together they do",
                cx.thresholds.close_wait_warn
            ),
        ],
        suggestion: "One leak toward many endpoints (pod IPs, shards, replicas): the peers \
                     closed and this process never did. Close on EOF, or evict idle pooled \
                     connections before the servers close them (connleak explain close_wait_leak)."
            .to_string(),
        side: all_client.then_some(ConnSide::Client),
        sockets,
        ..Finding::of(&RULE, Some(TcpState::CloseWait))
    }
    .owned_by(Some(holder))
}

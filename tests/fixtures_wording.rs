//! Evidence reads as English for a count of one: every fixture cut down to
//! one socket per state (listeners kept), diagnosed with every threshold at
//! one, gives no "1 sockets" or "from 1 source addresses". No root needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::load;
use connleak::diagnose::{Thresholds, diagnose};
use connleak::tcp::TcpState;

/// Thresholds at which a single socket makes a finding.
fn all_at_one() -> Thresholds {
    Thresholds {
        close_wait_warn: 1,
        close_wait_min_age: 0,
        unread_warn: 1,
        half_closed_warn: 1,
        server_close_min: 1,
        syn_backlog_min: 1,
        syn_sent_warn: 1,
        unread_min_age: 0,
        ports_warn: 1,
        fd_warn: 1,
        send_stall_secs: 0,
        send_stall_warn: 1,
        stalled_close_warn: 1,
        kernel_limit_warn: 1,
        unreleased_warn: 1,
        idle: 0,
        ..Thresholds::default()
    }
}

/// A count of one followed by a plural noun: `1 CLOSE_WAIT sockets`.
fn one_and_a_plural(text: &str) -> Option<String> {
    const NOUNS: &[&str] = &[
        "sockets",
        "connections",
        "addresses",
        "attempts",
        "processes",
        "threads",
        "peers",
        "listeners",
        "endpoints",
        "workers",
    ];
    let words: Vec<&str> = text.split_whitespace().collect();
    words.iter().enumerate().find_map(|(i, w)| {
        let one = w.trim_start_matches('(') == "1" && (i == 0 || words[i - 1] != "of");
        let noun = words[i + 1..]
            .iter()
            .take(3)
            .map(|n| n.trim_end_matches([',', ';', ':', ')']))
            .take_while(|n| *n != "of" && !n.starts_with(|c: char| c.is_ascii_digit()))
            .find(|n| NOUNS.contains(n));
        (one && noun.is_some()).then(|| text.to_string())
    })
}

#[test]
fn a_count_of_one_is_singular() {
    let mut bad = Vec::new();
    for entry in std::fs::read_dir(common::fixture("")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let mut s = load(&name);
        let mut seen = std::collections::HashSet::new();
        s.sockets
            .retain(|x| x.state() == TcpState::Listen || seen.insert(x.state()));
        for f in diagnose(&s, all_at_one()) {
            bad.extend(f.evidence.iter().filter_map(|e| one_and_a_plural(e)));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn the_detector_detects() {
    assert!(one_and_a_plural("pid 4 holds 1 CLOSE_WAIT sockets toward x").is_some());
    assert!(one_and_a_plural("from 1 source addresses").is_some());
    assert!(one_and_a_plural("1 of 1 threads in futex()").is_none());
    assert!(one_and_a_plural("1 CLOSE_WAIT socket toward x").is_none());
}

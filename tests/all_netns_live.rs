//! `--all-netns` reads namespaces whose sockets are all held by exact
//! lookups instead of a walk of the host's table, and dumps the others: the
//! report of each namespace is the one `--netns NAME` gives, which reads it
//! the way a single namespace always is (a dump, and a scan of its own
//! processes). Real sockets in four private namespaces: one read by
//! lookups (a CLOSE_WAIT leak, an `SO_REUSEPORT` pair of listeners, idle
//! pooled connections from another namespace, a dual-stack listener with
//! IPv6 and IPv4 clients), one whose sockets all
//! belong to a process of another namespace, and two that must be dumped
//! (TIME-WAIT sockets, connections never accepted, orphans). Needs root
//! (skips visibly otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{CONNLEAK, Lab, findings};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

/// `connleak ARGS --json` from the host, with its `CONNLEAK_TIMINGS` notes.
fn run(args: &[&str]) -> (Value, String) {
    let out = Command::new(CONNLEAK)
        .args(args)
        .arg("--json")
        .env("CONNLEAK_TIMINGS", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "connleak {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

/// A report without what differs from one run to the next: when it was
/// taken, and the ages of its sockets (in seconds, which two runs can read
/// a second apart).
fn settled(report: Value) -> Value {
    match report {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .filter(|(k, _)| {
                    !["taken_at", "duration_ms", "schema_version", "status"].contains(&k.as_str())
                })
                .map(|(k, v)| {
                    let age = k.ends_with("_s") || k.ends_with("_ms");
                    (k, if age { Value::Null } else { settled(v) })
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(settled).collect()),
        Value::String(s) if s.contains(" ago") => Value::String(
            s.chars()
                .map(|c| if c.is_ascii_digit() { '#' } else { c })
                .collect(),
        ),
        other => other,
    }
}

/// Namespace `ns`'s report in an `--all-netns` one.
fn of(all: &Value, ns: &str) -> Value {
    all["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["netns"]["name"] == ns)
        .unwrap_or_else(|| panic!("namespace {ns} listed"))
        .clone()
}

fn note<'a>(notes: &'a str, ns: &str) -> &'a str {
    notes
        .lines()
        .find(|l| l.starts_with(&format!("connleak: note namespace {ns}: ")))
        .unwrap_or_else(|| panic!("no note for {ns} in:\n{notes}"))
}

#[test]
fn every_namespace_reads_as_it_does_alone_whether_looked_up_or_dumped() {
    let Some(mut server) = Lab::new("alln-server") else {
        return;
    };
    let Some(mut clients) = Lab::new("alln-clients") else {
        return;
    };
    let Some(mut busy) = Lab::new("alln-busy") else {
        return;
    };
    let Some(mut borrowed) = Lab::new("alln-borrowed") else {
        return;
    };
    server.wire(&clients, 61);
    // In `server`, every socket is held: a CLOSE_WAIT leak (its clients,
    // gone, are in the other namespace), two SO_REUSEPORT listeners with
    // idle pooled connections, and a process that moved in from `borrowed`.
    server.spawn("leak_server", &["--host", "0.0.0.0", "--port", "7001"]);
    for _ in 0..2 {
        server.spawn(
            "reuseport_server",
            &["--host", "0.0.0.0", "--port", "7100", "--kind", "echo"],
        );
    }
    // A dual-stack listener, with an IPv6 client and an IPv4 one (whose
    // accepted socket is IPv6 with a mapped address).
    server.spawn("echo_server", &["--host", "::", "--port", "7400"]);
    server.spawn(
        "idle_pool",
        &["--host", "::1", "--port", "7400", "--n", "2"],
    );
    server.spawn(
        "idle_pool",
        &["--host", "127.0.0.1", "--port", "7400", "--n", "2"],
    );
    clients.spawn(
        "clients",
        &["--host", "10.61.0.1", "--port", "7001", "--n", "6"],
    );
    clients.spawn(
        "idle_pool",
        &["--host", "10.61.0.1", "--port", "7100", "--n", "8"],
    );
    // `borrowed`'s sockets are all held by a process now in `server`.
    borrowed.spawn(
        "netns_hopper",
        &["--port", "7300", "--n", "2", "--label", &server.ns],
    );
    // `busy` has sockets no process holds: TIME-WAIT, and connections its
    // listener never accepts.
    busy.spawn("echo_server", &["--port", "7009"]);
    busy.spawn("churn", &["--port", "7009", "--n", "20", "--wait", "0"]);
    busy.spawn("backlog_server", &["--port", "7010", "--n", "8"]);
    busy.spawn(
        "connect_many",
        &["--port", "7010", "--n", "4", "--wait", "1"],
    );
    std::thread::sleep(Duration::from_millis(300));

    let labs = [&server, &clients, &busy, &borrowed];
    // Two runs see the same sockets unless one moves between them (a timer,
    // an age crossing a second): a few tries, compared each time.
    let mut last = String::new();
    for _ in 0..3 {
        let (all, notes) = run(&["--all-netns"]);
        // Its closed clients' FIN-WAIT-2 orphans are TIME-WAIT sockets of
        // that substate, as the kernel keeps them.
        let how = [
            (&server, "read by exact lookups"),
            (&borrowed, "read by exact lookups"),
            (&busy, "dumped (TIME-WAIT sockets)"),
            (&clients, "dumped (TIME-WAIT sockets)"),
        ];
        for (lab, read) in how {
            assert!(note(&notes, &lab.ns).contains(read), "{notes}");
        }
        let mut differ = Vec::new();
        for lab in labs {
            let together = settled(of(&all, &lab.ns));
            let (alone, _) = run(&["--netns", &lab.ns]);
            let alone = settled(alone);
            if together != alone {
                differ.push(format!(
                    "{}:\n--all-netns: {together:#}\n--netns: {alone:#}",
                    lab.ns
                ));
            }
        }
        if differ.is_empty() {
            // What the lookups read is what made the diagnosis.
            let leak = of(&all, &server.ns);
            assert!(!findings(&leak, "close_wait_leak").is_empty(), "{leak:#}");
            return;
        }
        last = differ.join("\n");
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("reports differ:\n{last}");
}

//! Replays every input the fuzz targets (`fuzz/`) start from or once failed
//! on: the seeds and `fuzz/regressions/TARGET/*`, through the same entry
//! points. A panic here is a parser that broke on untrusted input again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use connleak::fuzzing;
use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&bytes));
            assert!(outcome.is_ok(), "{target} panics on {}", path.display());
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no inputs for {target}");
}

#[test]
fn snapshot_inputs() {
    replay("snapshot", fuzzing::snapshot);
}

#[test]
fn proc_text_inputs() {
    replay("proc_text", fuzzing::proc_text);
}

#[test]
fn netlink_inputs() {
    replay("netlink", fuzzing::netlink);
}

#[test]
fn btf_inputs() {
    replay("btf", fuzzing::btf);
}

//! The files under `contrib/` that users copy as they are: the Prometheus
//! alert rules must load (`promtool check rules`) and their unit test pass
//! (`promtool test rules`). promtool comes with Debian's `prometheus`
//! package; without it the test prints a visible SKIP line and passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) -> Option<std::process::Output> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/prometheus");
    match Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            common::say(
                "SKIP prometheus rules: no promtool (apt-get install prometheus; the CI script does)",
            );
            None
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    }
}

#[test]
fn alert_rules_load_and_their_unit_test_passes() {
    for args in [
        &["check", "rules", "connleak.rules.yml"][..],
        &["test", "rules", "connleak.rules.test.yml"][..],
    ] {
        let Some(out) = promtool(args) else {
            return;
        };
        assert!(
            out.status.success(),
            "promtool {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

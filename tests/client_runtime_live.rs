//! Client runtimes that read their own idle pools: in a Go program whose
//! net/http client never closes its response bodies, CLOSE-WAIT is a
//! response the application holds, and the advice is to close it, never a
//! pool setting; its twin, which closes every body, stays quiet. Real
//! programs built in the test with Debian's `golang-go`; needs root and `go`
//! (skips visibly otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Lab, findings, have, say};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// The program built from `tests/scenarios/go/body_leak.go`, once per test
/// binary; `None` without Go.
fn body_leak() -> Option<&'static Path> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let source =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/go/body_leak.go");
            have("go", &["version"]).then(|| common::go_build("body_leak", &source))
        })
        .as_deref()
}

fn go_lab(test: &str) -> Option<(Lab, &'static Path)> {
    let lab = Lab::new(test)?;
    match body_leak() {
        Some(program) => Some((lab, program)),
        None => {
            say(&format!("SKIP {test}: needs go (golang-go)"));
            None
        }
    }
}

/// 20 GETs whose bodies the Go client never closes, against a server that
/// closes idle connections after a second: one warning, told as responses
/// the application holds, with Go's advice to close the body.
#[test]
fn a_go_client_holding_response_bodies_is_told_to_close_them() {
    let Some((mut lab, program)) = go_lab("go-body") else {
        return;
    };
    let bin = program.to_str().unwrap();
    lab.spawn_program("server", &[bin], &["server", "7201"]);
    let client = lab.spawn_program("leak", &[bin], &["leak", "http://127.0.0.1:7201/", "20"]);
    let twin = lab.spawn_program("close", &[bin], &["close", "http://127.0.0.1:7201/", "20"]);
    // The server closes the idle connections after a second; CLOSE-WAIT from 2 s is stuck.
    std::thread::sleep(Duration::from_millis(3500));
    let r = lab.report(&[]);
    let f = common::the_warning(&r, "close_wait_leak");
    assert_eq!(f["pid"], client["pid"]);
    assert_eq!(f["cause"], "response_not_closed", "{f:#}");
    assert_eq!(f["count"], 20);
    let advice = f["suggestion"].as_str().unwrap();
    assert!(advice.contains("resp.Body.Close()"), "{advice}");
    assert!(!advice.contains("Make the pool's idle timeout"), "{advice}");
    let evidence = f["evidence"].to_string();
    assert!(!evidence.contains("goodbye"), "{evidence}");
    assert!(
        findings(&r, "close_wait_leak")
            .iter()
            .all(|f| f["pid"] != twin["pid"]),
        "the client that closes its bodies is quiet: {r:#}"
    );
}

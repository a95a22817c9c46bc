//! `--host-root`: a directory that holds no host is said plainly, not read
//! as a host where nothing runs. No root needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const CONNLEAK: &str = env!("CARGO_BIN_EXE_connleak");

#[test]
fn host_root_without_proc_is_an_error() {
    let dir = std::env::temp_dir().join(format!("connleak-noproc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(CONNLEAK)
        .arg("--json")
        .env("CONNLEAK_HOST_ROOT", &dir)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no proc directory"), "{err}");
}

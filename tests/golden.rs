//! Every output format of every fixture snapshot, compared byte for byte with
//! the files under `tests/golden/`. The JSON is the monitoring contract and
//! must never change by accident; the other formats change only on purpose.
//! After a deliberate change, `CONNLEAK_BLESS=1 cargo test --test golden`
//! rewrites the files, and the diff shows what changed. No root needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const CONNLEAK: &str = env!("CARGO_BIN_EXE_connleak");

const FIXTURES: &[&str] = &[
    "backlog",
    "fd-limit",
    "finwait2",
    "incident-fd-limit",
    "incident-flood-cookies0",
    "leak",
    "pool",
    "tw-client",
    "tw-server",
];

/// Output formats: the file suffix and the arguments that make it.
const FORMATS: &[(&str, &[&str])] = &[
    ("json", &["--json"]),
    ("prom", &["--prometheus"]),
    ("check.txt", &["check", "-v"]),
    ("txt", &["--color", "never"]),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn golden(name: &str, suffix: &str) -> PathBuf {
    root().join("tests/golden").join(format!("{name}.{suffix}"))
}

#[test]
fn fixtures_render_as_before() {
    let bless = std::env::var_os("CONNLEAK_BLESS").is_some();
    let mut differ = Vec::new();
    for name in FIXTURES {
        let from = root().join("tests/fixtures").join(format!("{name}.json"));
        for (suffix, args) in FORMATS {
            let out = Command::new(CONNLEAK)
                .args(*args)
                .arg("--from")
                .arg(&from)
                .arg("--config")
                .arg("/dev/null")
                .env("COLUMNS", "80")
                .env_remove("NO_COLOR")
                .output()
                .unwrap();
            let path = golden(name, suffix);
            if bless {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &out.stdout).unwrap();
                continue;
            }
            let want = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (bless to create)", path.display()));
            if out.stdout != want {
                differ.push(path.display().to_string());
            }
        }
    }
    assert!(
        differ.is_empty(),
        "output differs from the golden files (diff them; bless only a deliberate change): {differ:#?}"
    );
}

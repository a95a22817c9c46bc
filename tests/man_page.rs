//! `man/connleak.1` is generated from the CLI definition; this test fails when
//! it is stale. Regenerate with `CONNLEAK_UPDATE_MAN=1 cargo test --test man_page`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

fn render() -> String {
    let mut out = Vec::new();
    clap_mangen::Man::new(connleak::cli::command())
        .render(&mut out)
        .expect("render the man page");
    String::from_utf8(out).expect("man page is UTF-8")
}

#[test]
fn man_page_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/connleak.1");
    let fresh = render();
    if std::env::var_os("CONNLEAK_UPDATE_MAN").is_some() {
        std::fs::write(&path, &fresh).expect("write man/connleak.1");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "man/connleak.1 is stale: run CONNLEAK_UPDATE_MAN=1 cargo test --test man_page"
    );
}

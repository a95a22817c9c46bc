//! The man pages (`man/connleak.1`, and one per subcommand) are generated from
//! the CLI definition; this test fails when they are stale. Regenerate with
//! `CONNLEAK_UPDATE_MAN=1 cargo test --test man_page`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

fn render(cmd: clap::Command) -> String {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .expect("render the man page");
    String::from_utf8(out).expect("man page is UTF-8")
}

#[test]
fn man_pages_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let main = connleak::cli::command();
    let mut pages = vec![("connleak.1".to_string(), render(main.clone()))];
    for sub in main.get_subcommands() {
        let name = format!("connleak-{}", sub.get_name());
        let page = render(sub.clone().name(&*Box::leak(name.clone().into_boxed_str())));
        pages.push((format!("{name}.1"), page));
    }
    let update = std::env::var_os("CONNLEAK_UPDATE_MAN").is_some();
    for (file, fresh) in pages {
        let path = dir.join(&file);
        if update {
            std::fs::write(&path, &fresh).expect("write the man page");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "man/{file} is stale: run CONNLEAK_UPDATE_MAN=1 cargo test --test man_page"
        );
    }
}

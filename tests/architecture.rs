//! The shape of the code, checked: every module sits in a layer of
//! ARCHITECTURE.md's table and uses only its own layer and those below, no
//! two modules use each other, the binary stays a thin front end, and no
//! function outgrows a screen except the data tables. Reads the sources as
//! text; no root needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Functions that are tables of data (a match with an arm per case), not logic.
const DATA_TABLES: &[&str] = &["tcp.rs::info", "diagnose/idioms.rs::phrase"];

const MAX_FN_LINES: usize = 80;
const MAX_MAIN_LINES: usize = 200;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/`, as (path relative to `src/`, text without its tests).
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src(), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let text = match text.find("#[cfg(test)]\nmod tests") {
                Some(at) => text[..at].to_string(),
                None => text,
            };
            let rel = p.strip_prefix(src()).unwrap().display().to_string();
            (rel, text)
        })
        .collect()
}

/// The module a file belongs to at `depth` (1: `collect`, 2: `collect/owners`).
fn module(rel: &str, depth: usize) -> String {
    let parts: Vec<&str> = rel.trim_end_matches(".rs").split('/').collect();
    let parts: Vec<&str> = parts.into_iter().filter(|p| *p != "mod").collect();
    parts[..parts.len().min(depth)].join("/")
}

/// Names used after `prefix` in `text` (`crate::` → `collect`, `snapshot`,
/// ...), also those of a group (`crate::{collect, diagnose::Finding}`).
fn used_after<'a>(text: &'a str, prefix: &str) -> BTreeSet<&'a str> {
    let name = |rest: &'a str| {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        Some(&rest[..end]).filter(|n| !n.is_empty())
    };
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices(prefix) {
        let rest = &text[at + prefix.len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                // The group's top-level names: those after `{` or a `,` at depth 0.
                let mut depth = 0;
                let mut start = true;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => start = true,
                        c if c.is_whitespace() => {}
                        _ if start => {
                            names.extend(name(&group[i..]));
                            start = false;
                        }
                        _ => {}
                    }
                }
            }
            None => names.extend(name(rest)),
        }
    }
    names
}

/// ARCHITECTURE.md's layers, top first: the top-level modules of each row
/// (`collect/` → `collect`, `report.rs` → `report`).
fn layers() -> Vec<(String, Vec<String>)> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .unwrap();
    doc.lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| layer") && !l.starts_with("| ---"))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let modules = cells[2]
                .split('`')
                .skip(1)
                .step_by(2)
                .map(|f| f.trim_end_matches('/').trim_end_matches(".rs").to_string())
                .collect();
            (cells[1].to_string(), modules)
        })
        .collect()
}

#[test]
fn every_module_uses_only_its_layer_and_those_below() {
    let layers = layers();
    let row = |m: &str| layers.iter().position(|(_, ms)| ms.iter().any(|x| x == m));
    let files = sources();
    let mut up = Vec::new();
    for (rel, text) in &files {
        let from = module(rel, 1);
        if from == "lib" {
            continue;
        }
        let Some(at) = row(&from) else {
            up.push(format!(
                "{rel}: module `{from}` is in no layer of ARCHITECTURE.md"
            ));
            continue;
        };
        for to in used_after(text, "crate::") {
            if let Some(below) = row(to).filter(|&r| r < at) {
                up.push(format!(
                    "{rel} ({}) uses `{to}` of the layer above, {}",
                    layers[at].0, layers[below].0
                ));
            }
        }
    }
    assert!(up.is_empty(), "imports that point up: {up:#?}");
}

/// A cycle in `edges`, if there is one.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut c = path[at..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_two_modules_use_each_other() {
    let files = sources();
    let tops: BTreeSet<String> = files.iter().map(|(r, _)| module(r, 1)).collect();
    // Top-level modules, through `crate::NAME`.
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in &files {
        let from = module(rel, 1);
        for to in used_after(text, "crate::") {
            if to != from && tops.contains(to) {
                edges
                    .entry(from.clone())
                    .or_default()
                    .insert(to.to_string());
            }
        }
    }
    assert_eq!(cycle(&edges), None, "top-level modules in a circle");
    // Siblings inside each directory, through `super::NAME` and `crate::DIR::NAME`.
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let names: BTreeSet<String> = files.iter().map(|(r, _)| module(r, 2)).collect();
    for (rel, text) in files.iter().filter(|(r, _)| r.contains('/')) {
        let (dir, from) = (module(rel, 1), module(rel, 2));
        if from == dir {
            continue; // the directory's mod.rs: its children are its parts
        }
        let siblings = used_after(text, "super::")
            .into_iter()
            .chain(used_after(text, &format!("crate::{dir}::")));
        for to in siblings.map(|n| format!("{dir}/{n}")) {
            if to != from && names.contains(&to) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    assert_eq!(cycle(&edges), None, "sibling modules in a circle");
}

#[test]
fn the_binary_stays_thin() {
    let main = std::fs::read_to_string(src().join("main.rs")).unwrap();
    let lines = main.lines().count();
    assert!(
        lines < MAX_MAIN_LINES,
        "main.rs has {lines} lines: move logic into the library"
    );
    assert!(
        !main.contains("collect::collect"),
        "main.rs collects itself"
    );
}

#[test]
fn no_function_outgrows_a_screen() {
    let mut long = Vec::new();
    for (rel, text) in sources() {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.trim_start();
            let indent = &line[..line.len() - code.len()];
            let name = [
                "fn ",
                "pub fn ",
                "pub(crate) fn ",
                "const fn ",
                "pub const fn ",
            ]
            .iter()
            .find_map(|p| code.strip_prefix(p))
            .and_then(|rest| rest.split(['(', '<']).next());
            let Some(name) = name.filter(|_| !code.ends_with(';')) else {
                continue;
            };
            let close = format!("{indent}}}");
            let end = lines[i..].iter().position(|l| *l == close).unwrap_or(0);
            let id = format!("{rel}::{name}");
            if end + 1 > MAX_FN_LINES && !DATA_TABLES.contains(&id.as_str()) {
                long.push(format!("{id}: {} lines", end + 1));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines: {long:#?}"
    );
}

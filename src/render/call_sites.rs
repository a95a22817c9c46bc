//! A finding's call sites as the text report shows them: one line each, the
//! most first, innermost frame first from the caller of the C library's
//! wrapper (`accept_client (server.c:88) ← serve_forever ← main`), with the
//! thread's name and what the stack's sockets did in the window. The names are the traced program's: the
//! caller escapes the line.

use crate::report::TraceSummary;
use crate::snapshot::{CallSite, Frame};

/// Call sites shown under a finding, and frames shown of each.
pub const SHOWN: usize = 3;
const FRAMES: usize = 5;

/// `8 accepted at accept_client (server.c:7) ← serve_forever (server.c:9) ← main
/// (server.c:17), thread server; born 8, closed 0, open 8`.
pub fn line(site: &CallSite) -> String {
    // The C library's wrapper of the system call tells nothing: the line
    // starts at its caller (the JSON keeps every frame).
    let from = site.frames.iter().take_while(|f| in_libc(f)).count();
    let named = site
        .frames
        .get(from..)
        .filter(|f| !f.is_empty())
        .unwrap_or(&site.frames);
    let mut frames: Vec<String> = named.iter().take(FRAMES).map(frame).collect();
    if named.len() > FRAMES {
        frames.push("…".to_string());
    }
    let stack = if frames.is_empty() {
        "frames that could not be named (the process may have exited)".to_string()
    } else {
        frames.join(" ← ")
    };
    format!(
        "{} at {stack}, thread {}; born {}, closed {}, open {}",
        site.count, site.thread, site.born, site.closed, site.open
    )
}

/// The trace in one line, under the report: how long, how many births, what was lost.
pub fn summary(t: &TraceSummary) -> String {
    let lost = match t.lost {
        0 => "none lost".to_string(),
        n => format!("{n} lost (the tracer's maps were full): call sites are missing for them"),
    };
    format!(
        "Traced for {:.1} s: {} TCP sockets born by connect() or accept() on the host, {lost}.",
        t.seconds, t.births
    )
}

/// Whether the frame is in the C library (glibc's `libc.so.6`, musl's `libc.musl-*.so.1`).
fn in_libc(f: &Frame) -> bool {
    f.module
        .as_deref()
        .and_then(|m| m.rsplit('/').next())
        .is_some_and(|name| name.starts_with("libc.") || name.starts_with("libc-"))
}

/// `function (file:line)`, the file without its directory.
fn frame(f: &Frame) -> String {
    let file = f.file.as_deref().map(|p| p.rsplit('/').next().unwrap_or(p));
    match (file, f.line) {
        (Some(file), Some(line)) => format!("{} ({file}:{line})", f.function),
        (Some(file), None) => format!("{} ({file})", f.function),
        _ => f.function.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(function: &str, file: Option<&str>, line: Option<u32>) -> Frame {
        Frame {
            function: function.to_string(),
            file: file.map(str::to_string),
            line,
            module: Some("/srv/server".to_string()),
        }
    }

    #[test]
    fn a_call_site_reads_innermost_first_with_its_counts() {
        let site = CallSite {
            count: 8,
            thread: "worker-3".to_string(),
            frames: vec![
                Frame {
                    module: Some("/usr/lib/x86_64-linux-gnu/libc.so.6".to_string()),
                    ..named("__libc_accept", None, None)
                },
                named("accept_client", Some("/src/server.c"), Some(88)),
                named("serve_forever", Some("/src/server.c"), None),
                named("main", None, None),
            ],
            born: 50,
            closed: 0,
            open: 50,
        };
        assert_eq!(
            line(&site),
            "8 at accept_client (server.c:88) ← serve_forever (server.c) ← main, \
             thread worker-3; born 50, closed 0, open 50"
        );
        let gone = CallSite {
            frames: Vec::new(),
            ..site
        };
        assert!(line(&gone).starts_with("8 at frames that could not be named"));
    }

    #[test]
    fn the_summary_says_what_was_lost() {
        let t = TraceSummary {
            seconds: 30.0,
            births: 1204,
            lost: 0,
        };
        assert!(summary(&t).ends_with("on the host, none lost."));
        let full = TraceSummary { lost: 7, ..t };
        assert!(summary(&full).contains("7 lost (the tracer's maps were full)"));
    }
}

//! `connleak watch`: the pipeline refreshed in a loop and drawn on the
//! terminal. A keyboard in cbreak mode (keys arrive one at a time, unechoed;
//! Ctrl-C arrives as a key so that the terminal is always restored), the
//! alternate screen, and a wait for the next refresh that a key can end: a
//! quit key, or `r` to refresh now. Any other key is ignored: a refresh every
//! key press would make the trends' rates over moments, not the interval.
//! What does not fit the screen is cut between words, and the findings cut
//! off are counted. The guard restores everything when it drops, on every
//! way out, and never panics doing it (stdout may be gone by then).

use crate::diagnose::plural;
use crate::pipeline::Pipeline;
use crate::render::table::{self, KEYS, Style};
use crate::render::text::clip;
use crate::render::text::escape;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::termios::{LocalModes, OptionalActions, Termios, tcgetattr, tcsetattr};
use std::borrow::Cow;
use std::io::{self, IsTerminal, Read, Write};
use std::time::{Duration, Instant};

/// Refreshes until a quit key, each drawn with the trend over the last ones.
pub fn run(mut pipeline: Pipeline, color: bool) -> io::Result<()> {
    let interval = pipeline.plan().interval.max(Duration::from_millis(500));
    let screen = Screen::take()?;
    for refresh in 1u64.. {
        let (cols, rows) = rustix::termios::tcgetwinsize(io::stdout()).map_or((80, 24), |w| {
            (w.ws_col.max(40), usize::from(w.ws_row.max(5)))
        });
        let mut text = format!(
            "connleak watch - refresh #{refresh} every {:.0} s - {KEYS}\n\n",
            interval.as_secs_f64()
        )
        .into_bytes();
        let mut findings = Vec::new();
        let footer = match pipeline.refresh() {
            Ok(found) => {
                let style = Style {
                    color,
                    width: cols,
                    live: true,
                };
                let mark = |text: &Vec<u8>| findings.push(text.len());
                table::write_all_marking(&mut text, &found.labelled(), style, mark)?;
                table::footer(&found.labelled(), interval)
            }
            Err(e) => {
                writeln!(text, "connleak: error: {}", escape(&e.to_string()))?;
                table::footer(&[], interval)
            }
        };
        let lines = fit(&text, &findings, rows.saturating_sub(2), usize::from(cols));
        screen.show(&lines, &clip(&footer, usize::from(cols)), rows)?;
        if screen.wait(interval)? == Key::Quit {
            break;
        }
    }
    Ok(())
}

/// How many refreshes the live view's trends and sparklines span.
pub const WINDOW: u32 = 12;

/// Keys that end the view: q, Q, Ctrl-C, Ctrl-D.
const QUIT: &[u8] = b"qQ\x03\x04";

/// Keys that refresh now: r, R.
const REFRESH: &[u8] = b"rR";

/// What ended a wait.
#[derive(Debug, PartialEq)]
enum Key {
    Quit,
    /// The interval passed, or `r` asked.
    Refresh,
}

/// The report's lines fitted to `rows` lines of `cols` columns, each cut
/// between words. When findings are cut off, the last line says how many
/// (`finding_starts`: the byte offset in `text` where each one begins).
fn fit<'a>(
    text: &'a [u8],
    finding_starts: &[usize],
    rows: usize,
    cols: usize,
) -> Vec<Cow<'a, str>> {
    let text = std::str::from_utf8(text).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let line_of = |at: usize| text.get(..at).map_or(0, |t| t.matches('\n').count());
    // Findings that start below the first `shown` lines.
    let hidden = |shown: usize| {
        finding_starts
            .iter()
            .filter(|&&at| line_of(at) >= shown)
            .count()
    };
    if lines.len() <= rows || hidden(rows) == 0 {
        return lines.iter().take(rows).map(|l| clip(l, cols)).collect();
    }
    let shown = rows.saturating_sub(1);
    let mut fitted: Vec<Cow<str>> = lines[..shown].iter().map(|l| clip(l, cols)).collect();
    let more = format!(
        "... {} below: a taller window, or connleak without watch, shows them",
        plural(hidden(shown) as u64, "more finding")
    );
    fitted.push(Cow::Owned(clip(&more, cols).into_owned()));
    fitted
}

/// The terminal, taken over until this drops.
struct Screen {
    saved: Termios,
}

impl Screen {
    /// Takes over the terminal on stdin/stdout; an error when either is not one.
    fn take() -> io::Result<Screen> {
        if !io::stdin().is_terminal() || !io::stdout().is_terminal() {
            return Err(io::Error::other(
                "watch needs a terminal on stdin and stdout",
            ));
        }
        let stdin = io::stdin();
        let saved = tcgetattr(&stdin)?;
        let mut mode = saved.clone();
        mode.local_modes &= !(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG);
        tcsetattr(&stdin, OptionalActions::Now, &mode)?;
        // Alternate screen, cursor hidden.
        let mut out = io::stdout().lock();
        out.write_all(b"\x1b[?1049h\x1b[?25l")?;
        out.flush()?;
        Ok(Screen { saved })
    }

    /// Replaces the screen's contents with `lines` (each already fitted),
    /// with `footer` on the bottom line.
    fn show(&self, lines: &[Cow<str>], footer: &str, rows: usize) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(b"\x1b[H\x1b[2J")?;
        for line in lines {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\r\n")?;
        }
        write!(out, "\x1b[{rows};1H{footer}")?;
        out.flush()
    }

    /// Waits until `timeout` has passed or a key that means something comes.
    fn wait(&self, timeout: Duration) -> io::Result<Key> {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Key::Refresh);
            }
            let stdin = io::stdin();
            let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
            let ts = Timespec::try_from(left).unwrap_or(Timespec {
                tv_sec: 5,
                tv_nsec: 0,
            });
            match poll(&mut fds, Some(&ts)) {
                Ok(0) => return Ok(Key::Refresh),
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let mut buf = [0u8; 64];
            let n = io::stdin().lock().read(&mut buf)?;
            // End of input (the terminal went away) also ends the view.
            if n == 0 || buf[..n].iter().any(|b| QUIT.contains(b)) {
                return Ok(Key::Quit);
            }
            if buf[..n].iter().any(|b| REFRESH.contains(b)) {
                return Ok(Key::Refresh);
            }
        }
    }
}

/// Leaves the alternate screen and shows the cursor again; a write that
/// fails (the terminal is gone) is ignored, never a panic.
fn restore(out: &mut impl Write) {
    let _ = out.write_all(b"\x1b[?25h\x1b[?1049l");
    let _ = out.flush();
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore(&mut io::stdout().lock());
        let _ = tcsetattr(io::stdin(), OptionalActions::Now, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A terminal that is gone: every write fails.
    struct Gone;

    impl Write for Gone {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(libc::EIO))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(libc::EIO))
        }
    }

    /// Regression: the guard restored the terminal with `print!`, which
    /// panics when stdout fails (an abort, when already unwinding).
    #[test]
    fn restoring_a_terminal_that_is_gone_does_not_panic() {
        let mut gone = std::io::LineWriter::new(Gone);
        let _ = gone.write_all(b"a line\n");
        restore(&mut gone);
    }

    /// Regression: findings past the screen's bottom were dropped silently.
    #[test]
    fn findings_cut_off_are_counted() {
        let text = "title\n\nWARNING one\n  - a\nWARNING two\n  - b\nINFO three\n  - c\n";
        let starts: Vec<usize> = ["WARNING one", "WARNING two", "INFO three"]
            .iter()
            .filter_map(|f| text.find(f))
            .collect();
        let fitted = fit(text.as_bytes(), &starts, 5, 80);
        assert_eq!(fitted.len(), 5);
        assert_eq!(fitted[3], "  - a");
        assert!(
            fitted[4].starts_with("... 2 more findings below"),
            "{fitted:?}"
        );
        let all = fit(text.as_bytes(), &starts, 8, 80);
        assert_eq!(all.len(), 8);
        assert!(!all.iter().any(|l| l.contains("more")));
        // Only the last finding's evidence cut off: no finding is hidden.
        let evidence = fit(text.as_bytes(), &starts, 7, 80);
        assert_eq!(evidence.last().map(|l| l.as_ref()), Some("INFO three"));
        let one = fit(text.as_bytes(), &starts, 6, 80);
        assert!(one[5].starts_with("... 1 more finding below"), "{one:?}");
        let narrow = fit(text.as_bytes(), &starts, 5, 40);
        assert!(narrow[4].ends_with('…'), "{narrow:?}");
    }
}

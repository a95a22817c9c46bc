//! `connleak watch`: the pipeline refreshed in a loop and drawn on the
//! terminal. A keyboard in cbreak mode (keys arrive one at a time, unechoed;
//! Ctrl-C arrives as a key so that the terminal is always restored), the
//! alternate screen, and a wait for a key that doubles as the refresh timer.
//! The guard restores everything when it drops, on every way out.

use crate::pipeline::Pipeline;
use crate::render::table::{self, Style};
use crate::render::text::clip;
use crate::render::text::escape;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::termios::{LocalModes, OptionalActions, Termios, tcgetattr, tcsetattr};
use std::io::{self, IsTerminal, Read, Write};
use std::time::Duration;

/// Refreshes until a quit key, each drawn with the trend over the last ones.
pub fn run(mut pipeline: Pipeline, color: bool) -> io::Result<()> {
    let interval = pipeline.plan().interval.max(Duration::from_millis(500));
    let screen = Screen::take()?;
    for refresh in 1u64.. {
        let (cols, rows) = rustix::termios::tcgetwinsize(io::stdout()).map_or((80, 24), |w| {
            (w.ws_col.max(40), usize::from(w.ws_row.max(5)))
        });
        let mut text = format!(
            "connleak watch - refresh #{refresh} every {:.0} s - q or Ctrl-C quits\n\n",
            interval.as_secs_f64()
        )
        .into_bytes();
        let footer = match pipeline.refresh() {
            Ok(found) => {
                let style = Style {
                    color,
                    width: cols,
                    live: true,
                };
                table::write_all(&mut text, &found.labelled(), style)?;
                table::footer(&found.labelled(), interval)
            }
            Err(e) => {
                writeln!(text, "connleak: error: {}", escape(&e.to_string()))?;
                table::footer(&[], interval)
            }
        };
        screen.show(&String::from_utf8_lossy(&text), &footer, (cols, rows))?;
        if screen.wait_for_quit(interval)? {
            break;
        }
    }
    Ok(())
}

/// How many refreshes the live view's trends and sparklines span.
pub const WINDOW: u32 = 12;

/// Keys that end the view: q, Q, Ctrl-C, Ctrl-D.
const QUIT: &[u8] = b"qQ\x03\x04";

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
        print!("\x1b[?1049h\x1b[?25l");
        io::stdout().flush()?;
        Ok(Screen { saved })
    }

    /// Replaces the screen's contents with `text`, each line cut to the
    /// screen's width (a line the terminal wrapped would scroll the title
    /// away), with `footer` on the bottom line.
    fn show(&self, text: &str, footer: &str, (cols, rows): (u16, usize)) -> io::Result<()> {
        let cols = usize::from(cols);
        let mut out = io::stdout().lock();
        out.write_all(b"\x1b[H\x1b[2J")?;
        for line in text.lines().take(rows.saturating_sub(2)) {
            out.write_all(clip(line, cols).as_bytes())?;
            out.write_all(b"\r\n")?;
        }
        write!(out, "\x1b[{rows};1H{}", clip(footer, cols))?;
        out.flush()
    }

    /// Waits up to `timeout` for a key; true when it asks to quit.
    fn wait_for_quit(&self, timeout: Duration) -> io::Result<bool> {
        let stdin = io::stdin();
        let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
        let ts = Timespec::try_from(timeout).unwrap_or(Timespec {
            tv_sec: 5,
            tv_nsec: 0,
        });
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let mut buf = [0u8; 64];
        let n = io::stdin().lock().read(&mut buf)?;
        // End of input (the terminal went away) also ends the view.
        Ok(n == 0 || buf[..n].iter().any(|b| QUIT.contains(b)))
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        print!("\x1b[?25h\x1b[?1049l");
        let _ = io::stdout().flush();
        let _ = tcsetattr(io::stdin(), OptionalActions::Now, &self.saved);
    }
}

//! The terminal side of `connleak watch`: a keyboard in cbreak mode (keys
//! arrive one at a time, unechoed; Ctrl-C arrives as a key so that the
//! terminal is always restored), the alternate screen, and a wait for a key
//! that doubles as the refresh timer. The guard restores everything when it
//! drops, on every way out.

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::termios::{LocalModes, OptionalActions, Termios, tcgetattr, tcsetattr};
use std::io::{self, IsTerminal, Read, Write};
use std::time::Duration;

/// How many refreshes the live view's trends and sparklines span.
pub const WINDOW: u32 = 12;

/// Keys that end the view: q, Q, Ctrl-C, Ctrl-D.
const QUIT: &[u8] = b"qQ\x03\x04";

/// The terminal, taken over until this drops.
pub struct Screen {
    saved: Termios,
}

impl Screen {
    /// Takes over the terminal on stdin/stdout; an error when either is not one.
    pub fn take() -> io::Result<Screen> {
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

    /// Replaces the screen's contents with `text`, cut to fit `rows` lines
    /// with `footer` on the last one.
    pub fn show(&self, text: &str, footer: &str, rows: usize) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(b"\x1b[H\x1b[2J")?;
        let body = rows.saturating_sub(2);
        for line in text.lines().take(body) {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\r\n")?;
        }
        // The footer on the bottom line, however long the body.
        write!(out, "\x1b[{rows};1H{footer}")?;
        out.flush()
    }

    /// Waits up to `timeout` for a key; true when it asks to quit.
    pub fn wait_for_quit(&self, timeout: Duration) -> io::Result<bool> {
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

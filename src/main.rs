//! The binary: parse arguments, run, map the outcome to an exit code.

use anyhow::Context;
use clap::Parser;
use connleak::cli::{Cli, ColorChoice, Command};
use connleak::collect;
use connleak::render::{self, escape::escape, table::Style};
use connleak::report::Report;
use connleak::snapshot::Snapshot;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

/// Exit status for errors (nothing collected, bad argument, bad snapshot).
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("connleak: error: {}", escape(&one_line(&e)));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The error and its causes on one line, each said once: our errors already
/// quote their source, and the chain would repeat it.
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        if msg.contains(&cause) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&cause);
    }
    msg.replace('\n', " ")
}

/// `connleak | head` closing the pipe early is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .any(|io| io.kind() == io::ErrorKind::BrokenPipe)
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    if let Some(Command::Explain { topic }) = &cli.command {
        let topic = render::explain::topic(topic.as_deref()).map_err(anyhow::Error::msg)?;
        render::explain::write(&mut out, &topic)?;
        return Ok(out.flush()?);
    }
    let snapshot = match &cli.from {
        Some(path) => Snapshot::load(path)?,
        None => collect::collect(cli.source).context("collecting the socket table")?,
    };
    if let Some(path) = &cli.save {
        save(&snapshot, path)
            .with_context(|| format!("saving the snapshot to {}", path.display()))?;
    }
    let report = Report::build(&snapshot, cli.thresholds.thresholds());
    if cli.json {
        render::json(&mut out, &report)?;
    } else {
        let style = Style {
            color: match cli.color {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => {
                    io::stdout().is_terminal()
                        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                }
            },
            width: terminal_width().unwrap_or(80),
        };
        render::table::write(&mut out, &report, style)?;
    }
    Ok(out.flush()?)
}

/// Writes the snapshot next to its destination, then renames it into place.
fn save(snapshot: &Snapshot, path: &std::path::Path) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let file = std::fs::File::create(&tmp)?;
    let mut w = io::BufWriter::new(file);
    serde_json::to_writer(&mut w, snapshot)?;
    w.flush()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn terminal_width() -> Option<u16> {
    let stdout = io::stdout();
    if !stdout.is_terminal() {
        return None;
    }
    rustix::termios::tcgetwinsize(&stdout)
        .ok()
        .map(|w| w.ws_col)
        .filter(|&c| c >= 40)
}

//! The binary: parse arguments, run, map the outcome to an exit code.

use anyhow::{Context, bail};
use connleak::cli::{self, Cli, ColorChoice, Command};
use connleak::collect::{self, netns};
use connleak::diagnose::Thresholds;
use connleak::render::{self, escape::escape, table::Style};
use connleak::report::{Filter, Report, Status};
use connleak::snapshot::Snapshot;
use connleak::trend;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

/// Exit status for errors (nothing collected, bad argument, bad snapshot).
const EXIT_ERROR: u8 = 2;
/// `check`'s UNKNOWN: it could not tell.
const EXIT_UNKNOWN: u8 = 3;

fn main() -> ExitCode {
    let cli = cli::parse();
    let check = matches!(cli.command, Some(Command::Check { .. }));
    std::panic::set_hook(Box::new(report_panic));
    // A bug must not leave a cron job or a monitoring plugin without an answer.
    let outcome = std::panic::catch_unwind(|| run(&cli)).unwrap_or_else(|_| {
        Err(anyhow::anyhow!(
            "internal error (a bug in connleak; the line above says where)"
        ))
    });
    match outcome {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            if backtrace_asked() {
                eprintln!("{e:?}");
            }
            if check {
                println!("CONNLEAK UNKNOWN - {}", escape(&one_line(&e)));
                ExitCode::from(EXIT_UNKNOWN)
            } else {
                eprintln!("connleak: error: {}", escape(&one_line(&e)));
                ExitCode::from(EXIT_ERROR)
            }
        }
    }
}

/// A panic is one line on stderr; its backtrace only when `CONNLEAK_BACKTRACE` asks.
fn report_panic(info: &std::panic::PanicHookInfo) {
    eprintln!(
        "connleak: internal error: {}",
        escape(&info.to_string().replace('\n', " "))
    );
    if backtrace_asked() {
        eprintln!("{}", std::backtrace::Backtrace::force_capture());
    }
}

/// Set `CONNLEAK_BACKTRACE=1` for the causes and the backtrace of an error.
/// Not `RUST_BACKTRACE`: developers' shells set that for every program, and an
/// on-call engineer's error is then buried under frames.
fn backtrace_asked() -> bool {
    std::env::var_os("CONNLEAK_BACKTRACE").is_some_and(|v| !v.is_empty() && v != "0")
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

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    match &cli.command {
        Some(Command::Explain { topic }) => {
            let topic = render::explain::topic(topic.as_deref()).map_err(anyhow::Error::msg)?;
            render::explain::write(&mut out, &topic)?;
            emit(cli.output.as_deref(), &out)?;
            return Ok(ExitCode::SUCCESS);
        }
        Some(Command::Completions { shell }) => {
            clap_complete::generate(*shell, &mut cli::command(), "connleak", &mut out);
            emit(cli.output.as_deref(), &out)?;
            return Ok(ExitCode::SUCCESS);
        }
        Some(Command::Watch) => return watch(cli),
        _ => {}
    }
    let thresholds = Thresholds::from_config(cli.config.as_deref())?.overridden_by(&cli.thresholds);
    let snapshots = gather(cli)?;
    if let Some(path) = &cli.save {
        let [(_, snapshot)] = snapshots.as_slice() else {
            bail!(
                "--save writes one namespace's snapshot; use --netns NAME instead of --all-netns"
            );
        };
        let last = snapshot.last().context("no snapshot was taken")?;
        let bytes = serde_json::to_vec(last)?;
        write_atomically(path, &bytes)
            .with_context(|| format!("saving the snapshot to {}", path.display()))?;
    }
    let reports = diagnose_all(cli, &snapshots, thresholds);
    let worst = reports
        .iter()
        .map(|(_, r)| r.status)
        .max()
        .unwrap_or(Status::Ok);
    let code = if let Some(Command::Check { verbose }) = cli.command {
        let only: Vec<Report> = reports.into_iter().map(|(_, r)| r).collect();
        render::check::write(&mut out, &only, thresholds, verbose)?;
        render::check::exit_code(worst)
    } else {
        render_report(cli, &reports, worst, &mut out)?;
        0
    };
    emit(cli.output.as_deref(), &out)?;
    Ok(ExitCode::from(code))
}

/// One report per namespace: each sample diagnosed and narrowed by the
/// filters, then the trend over the samples added to the last.
fn diagnose_all(
    cli: &Cli,
    snapshots: &[(Option<String>, Vec<Snapshot>)],
    thresholds: Thresholds,
) -> Vec<(Option<String>, Report)> {
    let filter = Filter {
        pids: cli.filter.pid.clone(),
        ports: cli.filter.port.clone(),
        states: cli.filter.state.clone(),
    };
    snapshots
        .iter()
        .filter_map(|(label, samples)| {
            let per_sample = samples
                .iter()
                .map(|s| {
                    let mut r = Report::build(s, thresholds);
                    r.narrow(&filter);
                    r
                })
                .collect();
            Some((label.clone(), trend::apply(samples, per_sample)?))
        })
        .collect()
}

/// `connleak watch`: collect, diagnose, draw, wait for a key or the next refresh.
fn watch(cli: &Cli) -> anyhow::Result<ExitCode> {
    let thresholds = Thresholds::from_config(cli.config.as_deref())?.overridden_by(&cli.thresholds);
    let screen = connleak::watch::Screen::take()?;
    let interval = std::time::Duration::from_secs_f64(cli.interval.max(0.5));
    for refresh in 1u64.. {
        let (cols, rows) = rustix::termios::tcgetwinsize(io::stdout()).map_or((80, 24), |w| {
            (w.ws_col.max(40), usize::from(w.ws_row.max(5)))
        });
        let mut text = format!(
            "connleak watch - refresh #{refresh} every {:.0} s - q or Ctrl-C quits\n\n",
            interval.as_secs_f64()
        )
        .into_bytes();
        let cli_once = Cli {
            samples: 1,
            ..cli.clone()
        };
        match gather(&cli_once) {
            Ok(snapshots) => {
                let reports = diagnose_all(&cli_once, &snapshots, thresholds);
                let style = Style {
                    color: color(cli),
                    width: cols,
                };
                draw(&mut text, &reports, style)?;
            }
            Err(e) => writeln!(text, "connleak: error: {}", escape(&one_line(&e)))?,
        }
        screen.show(&String::from_utf8_lossy(&text), rows)?;
        if screen.wait_for_quit(interval)? {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Takes `--samples` snapshots, `--interval` apart.
fn sample(cli: &Cli) -> anyhow::Result<Vec<Snapshot>> {
    let mut samples = Vec::new();
    for i in 0..cli.samples {
        if i > 0 {
            std::thread::sleep(std::time::Duration::from_secs_f64(cli.interval.max(0.0)));
        }
        samples.push(
            collect::collect(cli.source, &cli.host_root).context("collecting the socket table")?,
        );
    }
    Ok(samples)
}

/// The snapshots to diagnose (one or more samples), each with the namespace
/// label its report gets (none for the current namespace or a saved snapshot).
fn gather(cli: &Cli) -> anyhow::Result<Vec<(Option<String>, Vec<Snapshot>)>> {
    if let Some(path) = &cli.from {
        return Ok(vec![(None, vec![Snapshot::load(path)?])]);
    }
    let targets = if cli.all_netns {
        netns::all()
    } else if let Some(name) = &cli.netns {
        vec![netns::Target::Named(name.clone())]
    } else if let Some(pid) = cli.netns_pid {
        vec![netns::Target::OfPid(pid)]
    } else {
        return Ok(vec![(None, sample(cli)?)]);
    };
    let mut snapshots = Vec::new();
    for target in targets {
        let label = target.label();
        // setns moves one thread: a fresh one enters, collects, and ends.
        let collected = std::thread::scope(|s| {
            s.spawn(|| -> anyhow::Result<Vec<Snapshot>> {
                netns::enter(&target)?;
                sample(cli)
            })
            .join()
        })
        .map_err(|_| anyhow::anyhow!("collection in namespace {label} panicked"))?;
        match collected {
            Ok(s) => snapshots.push((Some(label), s)),
            // With --all-netns a namespace that vanished meanwhile is skipped, said on stderr.
            Err(e) if cli.all_netns => eprintln!(
                "connleak: skipped namespace {}: {}",
                escape(&label),
                escape(&one_line(&e))
            ),
            Err(e) => return Err(e.context(format!("in network namespace {label}"))),
        }
    }
    if snapshots.is_empty() {
        bail!("no network namespace could be read");
    }
    Ok(snapshots)
}

fn render_report(
    cli: &Cli,
    reports: &[(Option<String>, Report)],
    worst: Status,
    out: &mut Vec<u8>,
) -> anyhow::Result<()> {
    if cli.prometheus {
        let labelled: Vec<(Option<String>, &Report)> =
            reports.iter().map(|(l, r)| (l.clone(), r)).collect();
        render::prometheus::write(out, &labelled)?;
    } else if cli.json {
        match reports {
            [(_, one)] if !cli.all_netns => render::json(out, one)?,
            many => render::json_all(out, worst, &many.iter().map(|(_, r)| r).collect::<Vec<_>>())?,
        }
    } else {
        let style = Style {
            color: cli.output.is_none() && color(cli),
            width: terminal_width().unwrap_or(80),
        };
        draw(out, reports, style)?;
    }
    Ok(())
}

/// The human report of each namespace, headed by its name when there are several.
fn draw(out: &mut Vec<u8>, reports: &[(Option<String>, Report)], style: Style) -> io::Result<()> {
    for (i, (label, r)) in reports.iter().enumerate() {
        if let Some(label) = label.as_deref().filter(|_| reports.len() > 1) {
            if i > 0 {
                writeln!(out)?;
            }
            writeln!(out, "=== network namespace {} ===", escape(label))?;
        }
        render::table::write(out, r, style)?;
    }
    Ok(())
}

/// Whether to colour: --color, else a terminal without NO_COLOR.
fn color(cli: &Cli) -> bool {
    match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

/// Sends the output to stdout, or atomically to FILE.
fn emit(path: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    match path {
        Some(path) => {
            write_atomically(path, bytes).with_context(|| format!("writing {}", path.display()))
        }
        None => {
            let mut stdout = io::stdout().lock();
            stdout.write_all(bytes)?;
            Ok(stdout.flush()?)
        }
    }
}

/// Writes a temporary file beside `path` and renames it into place, so that a
/// reader (node_exporter's textfile collector) never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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

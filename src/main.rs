//! The binary: parse arguments, run, map the outcome to an exit code.

use anyhow::{Context, bail};
use connleak::cli::{self, Cli, Command};
use connleak::pipeline::{Pipeline, Refresh};
use connleak::plan::Plan;
use connleak::render::{self, Format, escape::escape};
use connleak::report::worst;
use std::io::{self, Write};
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
    let plan = cli.plan()?;
    let format = cli.format(plan.thresholds);
    let mut pipeline = Pipeline::new(plan);
    let refresh = pipeline.run()?;
    say_skipped(&refresh);
    if let Some(path) = &cli.save {
        let [one] = refresh.namespaces.as_slice() else {
            bail!(
                "--save writes one namespace's snapshot; use --netns NAME instead of --all-netns"
            );
        };
        let bytes = serde_json::to_vec(&one.snapshot)?;
        write_atomically(path, &bytes)
            .with_context(|| format!("saving the snapshot to {}", path.display()))?;
    }
    let reports = refresh.labelled();
    render::write(&mut out, format, &reports)?;
    emit(cli.output.as_deref(), &out)?;
    Ok(match format {
        Format::Check { .. } => ExitCode::from(render::check::exit_code(worst(&reports))),
        _ => ExitCode::SUCCESS,
    })
}

/// With --all-netns, a namespace that vanished meanwhile is skipped, said on stderr.
fn say_skipped(refresh: &Refresh) {
    for (label, e) in &refresh.skipped {
        eprintln!(
            "connleak: skipped namespace {}: {}",
            escape(label),
            escape(&e.to_string())
        );
    }
}

/// `connleak watch`: the live view, over a window of its last refreshes.
fn watch(cli: &Cli) -> anyhow::Result<ExitCode> {
    let plan = Plan {
        samples: connleak::watch::WINDOW,
        ..cli.plan()?
    };
    connleak::watch::run(Pipeline::new(plan), cli.color())?;
    Ok(ExitCode::SUCCESS)
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

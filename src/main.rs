//! The binary: parse arguments, run, map the outcome to an exit code.

use anyhow::{Context, bail};
use connleak::cli::{self, Cli, Command};
use connleak::collect::netns;
use connleak::output::{self, emit, write_atomically};
use connleak::pipeline::Pipeline;
use connleak::plan::Plan;
use connleak::render::{self, Format, text::escape};
use connleak::report::worst;
use std::io;
use std::process::ExitCode;

/// Exit status for errors (nothing collected, bad argument, bad snapshot).
const EXIT_ERROR: u8 = 2;
/// `check`'s UNKNOWN: it could not tell.
const EXIT_UNKNOWN: u8 = 3;

/// `connleak >&-`: fd 1 looked at before Rust's runtime puts `/dev/null`
/// there, so that output nobody can see is an error, not a silent success.
#[used]
// SAFETY: an `.init_array` entry is called once by the C runtime before
// `main`, as `fn(argc, argv, envp)`; a function taking no arguments ignores
// them, and `note_closed_stdout` touches only an atomic and fd 1.
#[unsafe(link_section = ".init_array")]
static NOTE_CLOSED_STDOUT: extern "C" fn() = output::note_closed_stdout;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(report_panic));
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(usage) => return fail(&usage.into(), true),
    };
    let check = matches!(cli.command, Some(Command::Check { .. }));
    if let Some(note) = netns::left_out().filter(|_| cli.all_netns()) {
        output::stderr_line(&format!("connleak: note: {note}"));
    }
    // A bug must not leave a cron job or a monitoring plugin without an answer.
    let outcome = std::panic::catch_unwind(|| run(&cli)).unwrap_or_else(|_| {
        Err(anyhow::anyhow!(
            "internal error (a bug in connleak; the line above says where)"
        ))
    });
    match outcome {
        Ok(code) => code,
        Err(e) => fail(&e, check),
    }
}

/// The exit status and the one line for an error. `check` keeps a status it
/// decided before its output failed (`check | true`, `check > /dev/full`),
/// and says UNKNOWN otherwise; nothing here can panic on a closed stream.
fn fail(e: &anyhow::Error, check: bool) -> ExitCode {
    if backtrace_asked() {
        output::stderr_line(&format!("{e:?}"));
    }
    let message = one_line(e);
    let line = escape(&message);
    let decided = e
        .chain()
        .find_map(|c| c.downcast_ref::<output::WriteError>())
        .and_then(output::WriteError::exit_code);
    match decided {
        Some(code) if check => {
            if !is_broken_pipe(e) {
                output::stderr_line(&format!("connleak: error: {line}"));
            }
            ExitCode::from(code)
        }
        _ if check => {
            let status = format!("CONNLEAK UNKNOWN - {line}");
            if emit(None, format!("{status}\n").as_bytes()).is_err() {
                output::stderr_line(&status);
            }
            ExitCode::from(EXIT_UNKNOWN)
        }
        _ if is_broken_pipe(e) => ExitCode::SUCCESS,
        _ => {
            output::stderr_line(&format!("connleak: error: {line}"));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// A panic is one line on stderr; its backtrace only when `CONNLEAK_BACKTRACE` asks.
/// Written without `eprintln!`: a panic while panicking (stderr closed) aborts.
fn report_panic(info: &std::panic::PanicHookInfo) {
    output::stderr_line(&format!(
        "connleak: internal error: {}",
        escape(&info.to_string().replace('\n', " "))
    ));
    if backtrace_asked() {
        output::stderr_line(&std::backtrace::Backtrace::force_capture().to_string());
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
        Some(Command::Explain { topic, .. }) => {
            let topic = render::explain::topic(topic.as_deref()).map_err(anyhow::Error::msg)?;
            render::explain::write(&mut out, &topic, usize::from(cli.width()))?;
            emit(cli.output(), &out)?;
            return Ok(ExitCode::SUCCESS);
        }
        Some(Command::Completions { shell, .. }) => {
            clap_complete::generate(*shell, &mut cli::command(), "connleak", &mut out);
            emit(cli.output(), &out)?;
            return Ok(ExitCode::SUCCESS);
        }
        Some(Command::Watch { .. }) => return watch(cli),
        Some(Command::Serve { listen, .. }) => return serve(cli, *listen),
        _ => {}
    }
    let plan = cli.traced_plan()?;
    let format = cli.format(plan.thresholds);
    let mut pipeline = traced(Pipeline::new(plan), cli);
    let refresh = pipeline.run()?;
    // With --all-netns, a namespace that vanished meanwhile is skipped, said on stderr.
    refresh
        .skipped_lines()
        .for_each(|l| output::stderr_line(&l));
    if let Some(path) = cli.save() {
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
    connleak::timings::phase("render", || render::write(&mut out, format, &reports))?;
    let code = match format {
        Format::Check { .. } => render::check::exit_code(worst(&reports)),
        _ => 0,
    };
    emit(cli.output(), &out).map_err(|e| e.with_exit_code(code))?;
    Ok(ExitCode::from(code))
}

/// `connleak watch`: the live view, over a window of its last refreshes.
fn watch(cli: &Cli) -> anyhow::Result<ExitCode> {
    let plan = Plan {
        samples: connleak::watch::WINDOW,
        ..cli.plan()?
    };
    connleak::watch::run(traced(Pipeline::new(plan), cli), cli.color())?;
    Ok(ExitCode::SUCCESS)
}

/// `trace` and `watch --trace`: the tracer on, or one line on stderr saying why not.
fn traced(pipeline: Pipeline, cli: &Cli) -> Pipeline {
    let (pipeline, why) = pipeline.tracing(cli.traces());
    why.into_iter()
        .for_each(|w| output::stderr_line(&format!("connleak: note: {}", escape(&w))));
    pipeline
}

/// `connleak serve`: the agent, until SIGTERM or SIGINT.
fn serve(cli: &Cli, listen: std::net::SocketAddr) -> anyhow::Result<ExitCode> {
    let plan = Plan {
        samples: connleak::serve::WINDOW,
        ..cli.plan()?
    };
    connleak::serve::run(Pipeline::new(plan), listen)?;
    Ok(ExitCode::SUCCESS)
}

//! The command line, defined once: each subcommand flattens the groups of
//! flags it accepts, and that one definition feeds argument parsing, `--help`,
//! the man pages (`man/`, checked by a test) and the completions, so that none
//! of them can offer a flag the parser refuses.

use crate::collect::{FdScan, SourceChoice};
use crate::config::ConfigError;
use crate::diagnose::{Contradiction, Measure, Thresholds};
use crate::filter::Filter;
use crate::plan::{Plan, Scope};
use crate::render::{Format, table::Style};
use crate::tcp::TcpState;
use clap::builder::{PossibleValue, TypedValueParser};
use clap::{Parser, Subcommand, ValueEnum};
use std::ffi::{OsStr, OsString};
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};

/// Finds TCP connection leaks on this Linux host and says why they happen.
///
/// With no arguments, connleak reads every TCP socket of the current network
/// namespace from the kernel (sock_diag), finds their owning processes in
/// /proc, and prints findings first (which process, how many sockets, in which
/// TCP state, since when, the likely cause with its evidence, what to do),
/// then the evidence tables. It only reads: it never changes the system.
/// Run it as root (or with CAP_NET_ADMIN and CAP_SYS_PTRACE) to see every
/// socket's owner.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "connleak",
    version,
    max_term_width = 100,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub formats: FormatArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub diagnosis: DiagnosisArgs,

    #[command(flatten)]
    pub color: ColorArgs,
}

/// The report's formats: the report alone has them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FormatArgs {
    /// Print the report as JSON (schema_version 1; see the README for the contract).
    #[arg(long, conflicts_with = "prometheus")]
    pub json: bool,

    /// Print the report in Prometheus' text exposition format (node_exporter textfile collector).
    #[arg(long)]
    pub prometheus: bool,
}

/// Where the output goes: everything but the live view.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OutputArgs {
    /// Write the output to FILE instead of stdout: a regular file is replaced atomically (a
    /// temporary file renamed into place), a device or a read FIFO is written through, a
    /// directory is refused.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// A run that ends (the report and `check`): what it saves, how many samples it takes.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Also save the collected snapshot to FILE (JSON), to diagnose later with --from.
    #[arg(long, value_name = "FILE", conflicts_with = "from")]
    pub save: Option<PathBuf>,

    /// Take this many snapshots, --interval apart, and report each finding's growth.
    #[arg(long, value_name = "N", default_value_t = 1, conflicts_with = "from",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub samples: u32,
}

/// What to diagnose and how to judge it: the report, `check`, `watch` and `serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct DiagnosisArgs {
    /// Diagnose a snapshot saved with --save instead of the live system (no root needed).
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,

    /// Diagnose the network namespace NAME (as `ip netns list` names it) instead of this one.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["netns_pid", "all_netns", "from"])]
    pub netns: Option<String>,

    /// Diagnose the network namespace of process PID (a container's) instead of this one.
    #[arg(long, value_name = "PID", conflicts_with_all = ["all_netns", "from"])]
    pub netns_pid: Option<u32>,

    /// Diagnose every distinct network namespace on the host, each report labelled.
    #[arg(long, conflicts_with = "from")]
    pub all_netns: bool,

    /// Seconds between samples or refreshes, 0.1 to 86400 [default: 5; serve: 60].
    #[arg(long, value_name = "SECS", value_parser = interval)]
    pub interval: Option<f64>,

    /// Where to read the socket table from.
    #[arg(long, value_enum, default_value_t = SourceChoice::Auto)]
    pub source: SourceChoice,

    /// How to find which process holds which socket: `auto` reads every fd table at once
    /// with a BPF task-file iterator where the kernel (BTF, Linux 6.1+) and privileges
    /// (root) allow, and falls back to /proc; `proc` always reads /proc/PID/fd.
    #[arg(long, value_enum, default_value_t = FdScan::Auto)]
    pub fd_scan: FdScan,

    /// Read /proc, /sys and the container runtimes' metadata under DIR: the host's root
    /// mounted in a container (a Kubernetes DaemonSet).
    #[arg(
        long,
        value_name = "DIR",
        env = "CONNLEAK_HOST_ROOT",
        default_value = "/"
    )]
    pub host_root: PathBuf,

    /// Thresholds from this TOML file (keys as the threshold flags, with underscores)
    /// [default: /etc/connleak.toml, if present].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub filter: FilterArgs,

    #[command(flatten)]
    pub thresholds: ThresholdArgs,
}

/// Colour: the report and the live view, on a terminal.
#[derive(Debug, Clone, clap::Args)]
pub struct ColorArgs {
    /// When to colour the report: auto colours a terminal unless NO_COLOR is set;
    /// always and never hold whatever NO_COLOR says.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// Why the arguments make no plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Thresholds(#[from] Contradiction),
}

impl Cli {
    /// What to diagnose: the subcommand's flags, or the report's.
    fn diagnosis(&self) -> &DiagnosisArgs {
        match &self.command {
            Some(
                Command::Check { diagnosis, .. }
                | Command::Trace { diagnosis, .. }
                | Command::Watch { diagnosis, .. }
                | Command::Serve { diagnosis, .. },
            ) => diagnosis,
            _ => &self.diagnosis,
        }
    }

    /// The subcommand's run flags, or the report's (their defaults for the others).
    fn run_args(&self) -> &RunArgs {
        match &self.command {
            Some(Command::Check { run, .. }) => run,
            _ => &self.run,
        }
    }

    /// Where to write the output (`None`: stdout).
    pub fn output(&self) -> Option<&Path> {
        let args = match &self.command {
            Some(
                Command::Check { output, .. }
                | Command::Trace { output, .. }
                | Command::Explain { output, .. }
                | Command::Completions { output, .. },
            ) => output,
            _ => &self.output,
        };
        args.output.as_deref()
    }

    /// Where to save the snapshot, if asked to.
    pub fn save(&self) -> Option<&Path> {
        self.run_args().save.as_deref()
    }

    /// Whether every namespace is read.
    pub fn all_netns(&self) -> bool {
        self.diagnosis().all_netns
    }

    /// What the arguments ask the library to do, built once: thresholds from
    /// the configuration file with the flags over them, the scope, the window.
    pub fn plan(&self) -> Result<Plan, PlanError> {
        let d = self.diagnosis();
        let thresholds = d
            .thresholds
            .over(crate::config::thresholds(d.config.as_deref())?)
            .consistent()?;
        let scope = if let Some(path) = &d.from {
            Scope::Saved(path.clone())
        } else if d.all_netns {
            Scope::AllNetns
        } else if let Some(name) = &d.netns {
            Scope::Netns(name.clone())
        } else if let Some(pid) = d.netns_pid {
            Scope::NetnsOfPid(pid)
        } else {
            Scope::Here
        };
        Ok(Plan {
            scope,
            source: d.source,
            fd_scan: d.fd_scan,
            host_root: d.host_root.clone(),
            samples: self.run_args().samples,
            interval: self.interval(),
            filter: Filter {
                pids: d.filter.pid.clone(),
                ports: d.filter.port.clone(),
                states: d.filter.state.clone(),
                workloads: d.filter.workload.clone(),
            },
            thresholds,
        })
    }

    /// `--interval`, else the subcommand's default: an agent that runs for
    /// months collects once a minute, as often as Prometheus scrapes.
    fn interval(&self) -> std::time::Duration {
        let default = match self.command {
            Some(Command::Serve { .. }) => SERVE_INTERVAL,
            _ => DEFAULT_INTERVAL,
        };
        // The parser admits only finite, positive intervals; the fallback is never taken.
        std::time::Duration::try_from_secs_f64(self.diagnosis().interval.unwrap_or(default))
            .unwrap_or(std::time::Duration::from_secs(5))
    }

    /// The output format, chosen once.
    pub fn format(&self, thresholds: Thresholds) -> Format {
        if let Some(Command::Check { verbose, .. }) = self.command {
            Format::Check {
                thresholds,
                verbose,
            }
        } else if self.format_args().prometheus {
            Format::Prometheus
        } else if self.format_args().json {
            Format::Json {
                namespaces: self.all_netns(),
            }
        } else {
            Format::Table(Style {
                color: self.output().is_none() && self.color(),
                width: self.width(),
                live: false,
            })
        }
    }

    /// The subcommand's formats, or the report's.
    fn format_args(&self) -> &FormatArgs {
        match &self.command {
            Some(Command::Trace { formats, .. }) => formats,
            _ => &self.formats,
        }
    }

    /// Whether to trace the births of sockets: `trace`, `watch --trace`.
    pub fn traces(&self) -> bool {
        matches!(
            self.command,
            Some(Command::Trace { .. } | Command::Watch { trace: true, .. })
        )
    }

    /// The plan, and for `trace` of the live system its two samples
    /// `--duration` apart (a saved snapshot is read once).
    pub fn traced_plan(&self) -> Result<Plan, PlanError> {
        let plan = self.plan()?;
        Ok(match self.command {
            Some(Command::Trace { duration, .. }) if !matches!(plan.scope, Scope::Saved(_)) => {
                Plan {
                    samples: 2,
                    interval: std::time::Duration::try_from_secs_f64(duration)
                        .unwrap_or(plan.interval),
                    ..plan
                }
            }
            _ => plan,
        })
    }

    /// The width to lay text out in: the terminal on stdout, else `COLUMNS`
    /// (as `ls` reads it), else 80; never under 40.
    pub fn width(&self) -> u16 {
        let stdout = io::stdout();
        let width = if stdout.is_terminal() {
            rustix::termios::tcgetwinsize(&stdout)
                .ok()
                .map(|w| w.ws_col)
        } else {
            std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.trim().parse().ok())
        };
        width.filter(|&c| c >= 40).unwrap_or(80)
    }

    /// Whether to colour: --color, else a terminal without NO_COLOR.
    pub fn color(&self) -> bool {
        let choice = match &self.command {
            Some(Command::Watch { color, .. } | Command::Trace { color, .. }) => color.color,
            _ => self.color.color,
        };
        match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
}

/// Narrow the report (the collection and the summary stay whole).
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Filters")]
pub struct FilterArgs {
    /// Only findings and processes of this pid (repeatable).
    #[arg(long, value_name = "PID")]
    pub pid: Vec<u32>,

    /// Only findings whose local or remote endpoint has this port (repeatable).
    #[arg(long, value_name = "PORT")]
    pub port: Vec<u16>,

    /// Only findings about this TCP state, any spelling (repeatable).
    #[arg(long, value_name = "STATE", hide_possible_values = true,
          value_parser = Named::new(|s| s.parse::<TcpState>().map_err(|e| e.to_string()),
                                    || TcpState::ALL.iter().map(|s| s.name()).collect()))]
    pub state: Vec<TcpState>,

    /// Only findings and processes of workloads matching PATTERN: a glob (* and ?) on the
    /// workload's name (a systemd unit, a container's name, NAMESPACE/POD), pod, container
    /// or container id (repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub workload: Vec<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Health check for cron and Nagios/Icinga/Sensu: one line with performance data,
    /// exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for a bad argument).
    Check {
        /// Also print every finding's evidence after the status line.
        #[arg(short, long)]
        verbose: bool,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        diagnosis: DiagnosisArgs,
    },
    /// Record where TCP sockets are born for --duration seconds, then diagnose: findings
    /// name the call sites of their sockets.
    ///
    /// Records the birth of every TCP socket, at connect() and at accept(), with the user-space
    /// call stack of the thread that made it, its name and the time, in bounded kernel maps
    /// (BPF programs on the raw tracepoints sys_exit and inet_sock_set_state; they only read);
    /// samples the socket table at the start and at the end; diagnoses as usual. Each finding
    /// whose sockets were born during the trace lists their call sites, the most first, with
    /// how many sockets each made, ended and left open in the window. Frames are named from
    /// the binaries' symbols and DWARF, and JIT code from perf maps (/tmp/perf-PID.map: Node's
    /// --perf-basic-prof, Python's -X perf). Needs CAP_BPF and CAP_PERFMON (root) and a
    /// kernel with BTF; without them, one line on stderr says so and the run diagnoses without
    /// call sites.
    Trace {
        /// How long to record, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = interval)]
        duration: f64,
        #[command(flatten)]
        formats: FormatArgs,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        diagnosis: DiagnosisArgs,
        #[command(flatten)]
        color: ColorArgs,
    },
    /// A live view, refreshed every --interval seconds (findings on top); r refreshes now,
    /// q or Ctrl-C quits.
    Watch {
        /// Trace where sockets are born while it runs (as `connleak trace`): findings show
        /// the call sites of their sockets born since it started.
        #[arg(long)]
        trace: bool,
        #[command(flatten)]
        diagnosis: DiagnosisArgs,
        #[command(flatten)]
        color: ColorArgs,
    },
    /// A long-running agent for Prometheus: /metrics, /report and /healthz over HTTP.
    ///
    /// Collects every --interval seconds (60 by default) and serves the latest result: GET
    /// /metrics (Prometheus' text format: the --prometheus series and the agent's own),
    /// /report (the JSON report) and /healthz (200 once a collection succeeded, 503 before or
    /// while the last one failed). A scrape never triggers a collection. A collection that
    /// fails is counted (connleak_collection_errors_total) and said on stderr; the next one
    /// proceeds. SIGTERM or SIGINT ends it.
    Serve {
        /// Address and port to listen on, never implicit (0.0.0.0:9742 for every interface,
        /// 127.0.0.1:9742 for this host only).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        diagnosis: DiagnosisArgs,
    },
    /// Explain a TCP state (who is in it, what ends it, which timer bounds it), a finding
    /// kind or a cause.
    Explain {
        /// A state, as ss or RFC 9293 spells it (CLOSE_WAIT, close-wait, FIN-WAIT-2...), a
        /// finding kind (close_wait_leak, ...) or a cause (never_accepted, ...); none lists
        /// them all.
        #[arg(hide_possible_values = true,
              value_parser = Named::new(|t| crate::render::explain::topic(Some(t)).map(|_| t.to_string()),
                                        crate::render::explain::names))]
        topic: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Print a shell completion script (bash, zsh, fish, ...).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// A value parsed by `parse` that completes to `names`: a value accepted in
/// any spelling, offered in one.
#[derive(Clone)]
struct Named<T> {
    parse: fn(&str) -> Result<T, String>,
    names: fn() -> Vec<&'static str>,
}

impl<T> Named<T> {
    fn new(parse: fn(&str) -> Result<T, String>, names: fn() -> Vec<&'static str>) -> Self {
        Named { parse, names }
    }
}

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Named<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let text = value.to_string_lossy();
        (self.parse)(&text).map_err(|why| {
            let arg = arg.map_or_else(|| "...".to_string(), ToString::to_string);
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("invalid value '{text}' for '{arg}': {why}\n"),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new((self.names)().into_iter().map(PossibleValue::new)))
    }
}

/// The clap command, for parsing, the man pages and completions: the derived
/// definition with each threshold's default added to its help, wherever it is.
pub fn command() -> clap::Command {
    with_threshold_defaults(<Cli as clap::CommandFactory>::command().after_long_help(reference()))
}

fn with_threshold_defaults(mut cmd: clap::Command) -> clap::Command {
    for t in Thresholds::TABLE {
        if cmd.get_arguments().any(|a| a.get_id() == t.key) {
            cmd = cmd.mut_arg(t.key, |a| {
                let help = a.get_help().map(ToString::to_string).unwrap_or_default();
                a.help(format!("{help} [default: {}]", t.default))
            });
        }
    }
    let subcommands: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in subcommands {
        cmd = cmd.mut_subcommand(name, with_threshold_defaults);
    }
    cmd
}

/// Exit status, files, finding kinds and guarantees: the end of `--help` and of the man page.
fn reference() -> String {
    let kinds: Vec<String> = crate::diagnose::RULES
        .iter()
        .map(|r| format!("  {:<26} {}", r.kind, r.title))
        .collect();
    format!(
        "EXIT STATUS:\n  0  the report was produced (whatever it found)\n  2  an error: nothing \
         could be collected, or a bad argument, configuration or snapshot\n  connleak check: \
         0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (could not collect, or \
         a bad argument, threshold or configuration); its status survives a closed or full \
         stdout\n  connleak serve: 0 when SIGTERM or SIGINT ended it, 2 when it could not start \
         (the address, a bad flag or configuration); a collection that fails is counted, never \
         fatal\n\n\
         FINDING KINDS (connleak explain KIND):\n{}\n\n\
         FILES:\n  {}  thresholds, keys as the threshold flags in snake_case\n\n\
         ENVIRONMENT:\n  NO_COLOR            no colour with --color auto (the default), even on a terminal\n  \
         CONNLEAK_BACKTRACE  set to 1: an error's causes and a panic's backtrace, not one line\n  \
         CONNLEAK_HOST_ROOT  as --host-root\n  \
         CONNLEAK_TIMINGS    set to 1: one line on stderr per phase, with its wall time\n\n\
         connleak only reads: it never writes to /proc/sys, sends no signal and destroys no \
         socket.",
        kinds.join("\n"),
        crate::config::CONFIG_PATH
    )
}

/// `--interval`'s default, seconds.
const DEFAULT_INTERVAL: f64 = 5.0;

/// `--interval`'s default for `serve`, seconds.
const SERVE_INTERVAL: f64 = 60.0;

/// `--interval`'s bounds, seconds: shorter is a busy loop, longer than a day
/// is a typo (and `inf` or `1e30` cannot be slept).
const INTERVAL_RANGE: std::ops::RangeInclusive<f64> = 0.1..=86_400.0;

/// Parses `--interval`: a finite number of seconds within [`INTERVAL_RANGE`].
fn interval(arg: &str) -> Result<f64, String> {
    let secs: f64 = arg
        .trim()
        .parse()
        .map_err(|_| "not a number of seconds".to_string())?;
    if INTERVAL_RANGE.contains(&secs) {
        Ok(secs)
    } else {
        Err(format!(
            "must be between {} and {} seconds",
            INTERVAL_RANGE.start(),
            INTERVAL_RANGE.end()
        ))
    }
}

/// A command line the parser refused, for `check`: its status line must
/// say UNKNOWN (3), never clap's exit 2, which Nagios reads as CRITICAL.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CheckUsage(String);

/// Parses the process's arguments. A bad one exits with clap's message and
/// status, but for `check`, which gets [`CheckUsage`] to say UNKNOWN.
pub fn parse() -> Result<Cli, CheckUsage> {
    parse_from(std::env::args_os().collect())
}

fn parse_from(args: Vec<OsString>) -> Result<Cli, CheckUsage> {
    let mut cmd = command();
    let matches = match cmd.try_get_matches_from_mut(&args) {
        Ok(m) => m,
        Err(e) if e.use_stderr() && subcommand_named(&mut cmd, &args) == Some("check") => {
            let first = e.to_string();
            let line = first.lines().next().unwrap_or_default();
            return Err(CheckUsage(line.trim_start_matches("error: ").to_string()));
        }
        Err(e) => e.exit(),
    };
    <Cli as clap::FromArgMatches>::from_arg_matches(&matches).map_err(|e| e.exit())
}

/// The subcommand a command line names, found as the parser would: the
/// first word that is neither an option of connleak's nor its value.
fn subcommand_named<'a>(cmd: &'a mut clap::Command, args: &[OsString]) -> Option<&'a str> {
    cmd.build();
    let mut words = args.iter().skip(1).map(|a| a.to_str());
    while let Some(word) = words.next() {
        let word = word?;
        if let Some(long) = word.strip_prefix("--").filter(|l| !l.contains('=')) {
            let takes_value = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .is_some_and(|a| a.get_action().takes_values());
            if takes_value {
                words.next();
            }
        } else if !word.starts_with('-') {
            return cmd.find_subcommand(word).map(clap::Command::get_name);
        }
    }
    None
}

/// The `--source` values, named and explained for the command line.
impl clap::ValueEnum for SourceChoice {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            SourceChoice::Auto,
            SourceChoice::Netlink,
            SourceChoice::Proc,
        ]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        use clap::builder::PossibleValue;
        Some(match self {
            SourceChoice::Auto => PossibleValue::new("auto")
                .help("sock_diag netlink, falling back to /proc/net/tcp when it is unavailable"),
            SourceChoice::Netlink => PossibleValue::new("netlink").help("sock_diag netlink only"),
            SourceChoice::Proc => PossibleValue::new("proc")
                .help("/proc/net/tcp and /proc/net/tcp6 only (no tcp_info: ages unknown)"),
        })
    }
}

/// The `--fd-scan` values, named and explained for the command line.
impl clap::ValueEnum for FdScan {
    fn value_variants<'a>() -> &'a [Self] {
        &[FdScan::Auto, FdScan::Proc]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        use clap::builder::PossibleValue;
        Some(match self {
            FdScan::Auto => PossibleValue::new("auto").help(
                "A BPF task-file iterator where the kernel and privileges allow it, else \
                 /proc/PID/fd",
            ),
            FdScan::Proc => {
                PossibleValue::new("proc").help("/proc/PID/fd only (one readlink per fd)")
            }
        })
    }
}

/// The threshold flags, made from the one table of thresholds
/// (`diagnose::thresholds`): a flag per threshold, of the same name in kebab-case.
macro_rules! define_threshold_args {
    ($( $(#[doc = $doc:literal])* $field:ident: $measure:ident = $default:expr; )*) => {
        /// The thresholds given on the command line; unset ones come from the
        /// configuration file or the defaults.
        #[derive(Debug, Clone, Default, clap::Args)]
        #[command(next_help_heading = "Thresholds")]
        pub struct ThresholdArgs {
            $( $(#[doc = $doc])*
               #[arg(long, value_name = Measure::$measure.value_name(), allow_negative_numbers = true,
                     value_parser = clap::value_parser!(u64).range(0..=Measure::$measure.max()))]
               pub $field: Option<u64>, )*
        }

        impl ThresholdArgs {
            /// `base` with the flags that were given put over it.
            pub fn over(&self, mut base: Thresholds) -> Thresholds {
                $( if let Some(v) = self.$field { base.$field = v; } )*
                base
            }
        }
    };
}

crate::diagnose::threshold_table!(define_threshold_args);

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn flags_over_config_over_defaults() {
        let config = Thresholds {
            close_wait_warn: 3,
            fd_warn: 70,
            ..Thresholds::default()
        };
        let args = ThresholdArgs {
            close_wait_warn: Some(7),
            ..ThresholdArgs::default()
        };
        let t = args.over(config);
        assert_eq!((t.close_wait_warn, t.fd_warn, t.idle), (7, 70, 3600));
    }

    #[test]
    fn the_subcommand_is_found_past_options_and_their_values() {
        let mut cmd = command();
        for (line, sub) in [
            ("connleak check --bogus", Some("check")),
            ("connleak --from check check", Some("check")),
            ("connleak --from=x check", Some("check")),
            ("connleak --json check", Some("check")),
            ("connleak --netns check", None),
            ("connleak explain check", Some("explain")),
            ("connleak chek", None),
        ] {
            assert_eq!(subcommand_named(&mut cmd, &args(line)), sub, "{line}");
        }
    }

    #[test]
    fn a_bad_check_is_a_check_usage_error() {
        let bad = |line: &str| parse_from(args(line)).err().map(|e| e.to_string());
        assert_eq!(
            bad("connleak check --bogus").as_deref(),
            Some("unexpected argument '--bogus' found")
        );
        let pct = bad("connleak check --ports-warn 200").unwrap_or_default();
        assert!(
            pct.contains("'--ports-warn <PCT>'") && pct.contains("0..=100"),
            "{pct}"
        );
        assert!(parse_from(args("connleak check --fd-warn 100")).is_ok());
    }
}

//! The command line, defined once: it feeds argument parsing, `--help` and the
//! man page (`man/connleak.1`, checked by a test), so they cannot drift.

use crate::collect::{FdScan, SourceChoice};
use crate::config::ConfigError;
use crate::diagnose::{Contradiction, Thresholds};
use crate::filter::Filter;
use crate::plan::{Plan, Scope};
use crate::render::{Format, table::Style};
use crate::tcp::TcpState;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::{self, IsTerminal};
use std::path::PathBuf;

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
#[command(name = "connleak", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Print the report as JSON (schema_version 1; see the README for the contract).
    #[arg(long, global = true, conflicts_with = "prometheus")]
    pub json: bool,

    /// Print the report in Prometheus' text exposition format (node_exporter textfile collector).
    #[arg(long, global = true)]
    pub prometheus: bool,

    /// Write the output to FILE instead of stdout: a regular file is replaced atomically (a
    /// temporary file renamed into place), a device or a read FIFO is written through, a
    /// directory is refused.
    #[arg(long, global = true, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Also save the collected snapshot to FILE (JSON), to diagnose later with --from.
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "from")]
    pub save: Option<PathBuf>,

    /// Diagnose a snapshot saved with --save instead of the live system (no root needed).
    #[arg(long, global = true, value_name = "FILE")]
    pub from: Option<PathBuf>,

    /// Diagnose the network namespace NAME (as `ip netns list` names it) instead of this one.
    #[arg(long, global = true, value_name = "NAME", conflicts_with_all = ["netns_pid", "all_netns", "from"])]
    pub netns: Option<String>,

    /// Diagnose the network namespace of process PID (a container's) instead of this one.
    #[arg(long, global = true, value_name = "PID", conflicts_with_all = ["all_netns", "from"])]
    pub netns_pid: Option<u32>,

    /// Diagnose every distinct network namespace on the host, each report labelled.
    #[arg(long, global = true, conflicts_with = "from")]
    pub all_netns: bool,

    /// Take this many snapshots, --interval apart, and report each finding's growth.
    #[arg(long, global = true, value_name = "N", default_value_t = 1, conflicts_with = "from",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub samples: u32,

    /// Seconds between samples (with --samples) or refreshes (watch, serve), 0.1 to 86400
    /// [default: 5; serve: 60].
    #[arg(long, global = true, value_name = "SECS", value_parser = interval)]
    pub interval: Option<f64>,

    /// Where to read the socket table from.
    #[arg(long, global = true, value_enum, default_value_t = SourceChoice::Auto)]
    pub source: SourceChoice,

    /// How to find which process holds which socket: `auto` reads every fd table at once
    /// with a BPF task-file iterator where the kernel (BTF, Linux 5.8+) and privileges
    /// (root) allow, and falls back to /proc; `proc` always reads /proc/PID/fd.
    #[arg(long, global = true, value_enum, default_value_t = FdScan::Auto)]
    pub fd_scan: FdScan,

    /// Read /proc, /sys and the container runtimes' metadata under DIR: the host's root
    /// mounted in a container (a Kubernetes DaemonSet).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "CONNLEAK_HOST_ROOT",
        default_value = "/"
    )]
    pub host_root: PathBuf,

    /// Thresholds from this TOML file (keys as the threshold flags, with underscores)
    /// [default: /etc/connleak.toml, if present].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// When to colour the report: auto colours a terminal unless NO_COLOR is set;
    /// always and never hold whatever NO_COLOR says.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(flatten)]
    pub filter: FilterArgs,

    #[command(flatten)]
    pub thresholds: ThresholdArgs,
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
    /// What the arguments ask the library to do, built once: thresholds from
    /// the configuration file with the flags over them, the scope, the window.
    pub fn plan(&self) -> Result<Plan, PlanError> {
        let thresholds = self
            .thresholds
            .over(crate::config::thresholds(self.config.as_deref())?)
            .consistent()?;
        let scope = if let Some(path) = &self.from {
            Scope::Saved(path.clone())
        } else if self.all_netns {
            Scope::AllNetns
        } else if let Some(name) = &self.netns {
            Scope::Netns(name.clone())
        } else if let Some(pid) = self.netns_pid {
            Scope::NetnsOfPid(pid)
        } else {
            Scope::Here
        };
        Ok(Plan {
            scope,
            source: self.source,
            fd_scan: self.fd_scan,
            host_root: self.host_root.clone(),
            samples: self.samples,
            interval: self.interval(),
            filter: Filter {
                pids: self.filter.pid.clone(),
                ports: self.filter.port.clone(),
                states: self.filter.state.clone(),
                workloads: self.filter.workload.clone(),
            },
            thresholds,
        })
    }
}

impl Cli {
    /// `--interval`, else the subcommand's default: an agent that runs for
    /// months collects once a minute, as often as Prometheus scrapes.
    fn interval(&self) -> std::time::Duration {
        let default = match self.command {
            Some(Command::Serve { .. }) => SERVE_INTERVAL,
            _ => DEFAULT_INTERVAL,
        };
        // The parser admits only finite, positive intervals; the fallback is never taken.
        std::time::Duration::try_from_secs_f64(self.interval.unwrap_or(default))
            .unwrap_or(std::time::Duration::from_secs(5))
    }

    /// The output format, chosen once.
    pub fn format(&self, thresholds: Thresholds) -> Format {
        if let Some(Command::Check { verbose }) = self.command {
            Format::Check {
                thresholds,
                verbose,
            }
        } else if self.prometheus {
            Format::Prometheus
        } else if self.json {
            Format::Json {
                namespaces: self.all_netns,
            }
        } else {
            Format::Table(Style {
                color: self.output.is_none() && self.color(),
                width: self.width(),
                live: false,
            })
        }
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
        match self.color {
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
    #[arg(long, global = true, value_name = "PID")]
    pub pid: Vec<u32>,

    /// Only findings whose local or remote endpoint has this port (repeatable).
    #[arg(long, global = true, value_name = "PORT")]
    pub port: Vec<u16>,

    /// Only findings about this TCP state, any spelling (repeatable).
    #[arg(long, global = true, value_name = "STATE")]
    pub state: Vec<TcpState>,

    /// Only findings and processes of workloads matching PATTERN: a glob (* and ?) on the
    /// workload's name (a systemd unit, a container's name, NAMESPACE/POD), pod, container
    /// or container id (repeatable).
    #[arg(long, global = true, value_name = "PATTERN")]
    pub workload: Vec<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Health check for cron and Nagios/Icinga/Sensu: one line with performance data,
    /// exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    Check {
        /// Also print every finding's evidence after the status line.
        #[arg(short, long)]
        verbose: bool,
    },
    /// A live view, refreshed every --interval seconds (findings on top); q or Ctrl-C quits.
    Watch,
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
    },
    /// Explain a TCP state (who is in it, what ends it, which timer bounds it) or a finding kind.
    Explain {
        /// A state, as ss or RFC 9293 spells it (CLOSE_WAIT, close-wait, FIN-WAIT-2...), or a
        /// finding kind (close_wait_leak, ...); none lists them all.
        topic: Option<String>,
    },
    /// Print a shell completion script (bash, zsh, fish, ...).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// The clap command, for parsing, the man page and completions: the derived
/// definition with each threshold's default added to its help.
pub fn command() -> clap::Command {
    let mut cmd = <Cli as clap::CommandFactory>::command().after_long_help(reference());
    for (id, default) in Thresholds::DEFAULTS {
        cmd = cmd.mut_arg(*id, |a| {
            let help = a.get_help().map(ToString::to_string).unwrap_or_default();
            a.help(format!("{help} [default: {default}]"))
        });
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
         bad thresholds); its status survives a closed or full stdout\n  connleak serve: \
         0 when SIGTERM or SIGINT ended it, 2 when it could not start (the address, a bad flag \
         or configuration); a collection that fails is counted, never fatal\n\n\
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

/// Refuses flags that the chosen subcommand would silently ignore, naming
/// the first one: a flag that does nothing misleads whoever wrote it.
pub fn validate(cli: &Cli) -> Result<(), String> {
    const REPORT_FORMATS: &[&str] = &["--json", "--prometheus"];
    const NOT_ON_SCREEN: &[&str] = &["--json", "--prometheus", "--output", "--save", "--samples"];
    const NOT_SERVED: &[&str] = &[
        "--json",
        "--prometheus",
        "--output",
        "--save",
        "--from",
        "--samples",
    ];
    // For explain and completions (no list), every flag but --output: they read nothing.
    let (name, what, ignored) = match &cli.command {
        None => return Ok(()),
        Some(Command::Check { .. }) => ("check", "prints one status line", Some(REPORT_FORMATS)),
        Some(Command::Watch) => ("watch", "draws on the terminal", Some(NOT_ON_SCREEN)),
        Some(Command::Serve { .. }) => (
            "serve",
            "serves every format over HTTP from its own live collections",
            Some(NOT_SERVED),
        ),
        Some(Command::Explain { .. }) => ("explain", "reads nothing", None),
        Some(Command::Completions { .. }) => ("completions", "reads nothing", None),
    };
    let does_nothing =
        |flag: &String| ignored.map_or(flag != "--output", |l| l.contains(&flag.as_str()));
    match given(cli).into_iter().find(does_nothing) {
        Some(flag) => Err(format!(
            "{flag} does nothing with `connleak {name}` (it {what}); drop it"
        )),
        None => Ok(()),
    }
}

/// The flags given a value other than their default, in the order of
/// `--help` (`--color` aside: it never changes what is reported).
fn given(cli: &Cli) -> Vec<String> {
    let set = [
        ("--json", cli.json),
        ("--prometheus", cli.prometheus),
        ("--output", cli.output.is_some()),
        ("--save", cli.save.is_some()),
        ("--from", cli.from.is_some()),
        ("--netns", cli.netns.is_some()),
        ("--netns-pid", cli.netns_pid.is_some()),
        ("--all-netns", cli.all_netns),
        ("--samples", cli.samples != 1),
        ("--interval", cli.interval.is_some()),
        ("--source", cli.source != SourceChoice::Auto),
        ("--fd-scan", cli.fd_scan != FdScan::Auto),
        ("--config", cli.config.is_some()),
        ("--pid", !cli.filter.pid.is_empty()),
        ("--port", !cli.filter.port.is_empty()),
        ("--state", !cli.filter.state.is_empty()),
        ("--workload", !cli.filter.workload.is_empty()),
    ];
    set.into_iter()
        .filter(|&(_, on)| on)
        .map(|(flag, _)| flag.to_string())
        .chain(cli.thresholds.given())
        .collect()
}

/// Parses the process's arguments (exits with clap's message on a bad one).
pub fn parse() -> Cli {
    let matches = command().get_matches();
    <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
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
    ($( $(#[doc = $doc:literal])* $field:ident: $value_name:literal = $default:expr; )*) => {
        /// The thresholds given on the command line; unset ones come from the
        /// configuration file or the defaults.
        #[derive(Debug, Clone, Default, clap::Args)]
        #[command(next_help_heading = "Thresholds")]
        pub struct ThresholdArgs {
            $( $(#[doc = $doc])* #[arg(long, global = true, value_name = $value_name)]
               pub $field: Option<u64>, )*
        }

        impl ThresholdArgs {
            /// `base` with the flags that were given put over it.
            pub fn over(&self, mut base: Thresholds) -> Thresholds {
                $( if let Some(v) = self.$field { base.$field = v; } )*
                base
            }

            /// The threshold flags given, as they are spelt on the command line.
            pub fn given(&self) -> Vec<String> {
                let mut flags = Vec::new();
                $( if self.$field.is_some() {
                    flags.push(format!("--{}", stringify!($field).replace('_', "-")));
                } )*
                flags
            }
        }
    };
}

crate::diagnose::threshold_table!(define_threshold_args);

#[cfg(test)]
mod threshold_tests {
    use super::*;

    #[test]
    fn flags_over_config_over_defaults() {
        let config: Thresholds =
            toml::from_str("close_wait_warn = 3\nfd_warn = 70\n").unwrap_or_default();
        let args = ThresholdArgs {
            close_wait_warn: Some(7),
            ..ThresholdArgs::default()
        };
        let t = args.over(config);
        assert_eq!((t.close_wait_warn, t.fd_warn, t.idle), (7, 70, 3600));
        assert_eq!(args.given(), ["--close-wait-warn"]);
    }
}

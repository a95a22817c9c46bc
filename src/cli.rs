//! The command line, defined once: it feeds argument parsing, `--help` and the
//! man page (`man/connleak.1`, checked by a test), so they cannot drift.

use crate::collect::SourceChoice;
use crate::diagnose::{ThresholdArgs, Thresholds};
use crate::tcp::TcpState;
use clap::{Parser, Subcommand, ValueEnum};
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

    /// Write the output to FILE atomically (a temporary file renamed into place) instead of stdout.
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

    /// Seconds between samples (with --samples).
    #[arg(long, global = true, value_name = "SECS", default_value_t = 5.0)]
    pub interval: f64,

    /// Where to read the socket table from.
    #[arg(long, global = true, value_enum, default_value_t = SourceChoice::Auto)]
    pub source: SourceChoice,

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

    /// When to colour the report: auto colours a terminal unless NO_COLOR is set.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(flatten)]
    pub filter: FilterArgs,

    #[command(flatten)]
    pub thresholds: ThresholdArgs,
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
         0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (could not collect)\n\n\
         FINDING KINDS (connleak explain KIND):\n{}\n\n\
         FILES:\n  {}  thresholds, keys as the threshold flags in snake_case\n\n\
         ENVIRONMENT:\n  NO_COLOR            no colour, even on a terminal\n  \
         CONNLEAK_BACKTRACE  set to 1: an error's causes and a panic's backtrace, not one line\n  \
         CONNLEAK_HOST_ROOT  as --host-root\n\n\
         connleak only reads: it never writes to /proc/sys, sends no signal and destroys no \
         socket.",
        kinds.join("\n"),
        crate::diagnose::CONFIG_PATH
    )
}

/// Parses the process's arguments (exits with clap's message on a bad one).
pub fn parse() -> Cli {
    let matches = command().get_matches();
    <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

//! The command line, defined once: it feeds argument parsing, `--help` and the
//! man page (`man/connleak.1`, checked by a test), so they cannot drift.

use crate::collect::SourceChoice;
use crate::diagnose::Thresholds;
use clap::{Args, Parser, Subcommand, ValueEnum};
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
#[derive(Debug, Parser)]
#[command(name = "connleak", version, max_term_width = 100)]
#[command(
    after_help = "EXIT STATUS:\n  0  the report was produced (whatever it found)\n  2  \
    an error: nothing could be collected, or a bad argument or snapshot file"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Print the report as JSON (schema_version 1; see the README for the contract).
    #[arg(long, global = true)]
    pub json: bool,

    /// Also save the collected snapshot to FILE (JSON), to diagnose later with --from.
    #[arg(long, value_name = "FILE", conflicts_with = "from")]
    pub save: Option<PathBuf>,

    /// Diagnose a snapshot saved with --save instead of the live system (no root needed).
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,

    /// Where to read the socket table from.
    #[arg(long, value_enum, default_value_t = SourceChoice::Auto)]
    pub source: SourceChoice,

    /// When to colour the report: auto colours a terminal unless NO_COLOR is set.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(flatten)]
    pub thresholds: ThresholdArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Explain a TCP state (who is in it, what ends it, which timer bounds it) or a finding kind.
    Explain {
        /// A state, as ss or RFC 9293 spells it (CLOSE_WAIT, close-wait, FIN-WAIT-2...), or a
        /// finding kind (close_wait_leak, ...); none lists them all.
        topic: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Thresholds")]
pub struct ThresholdArgs {
    /// Stuck CLOSE_WAIT sockets per process and endpoint that make a warning.
    #[arg(long, value_name = "N", default_value_t = Thresholds::default().close_wait_warn)]
    pub close_wait_warn: u64,

    /// Stuck CLOSE_WAIT sockets per process and endpoint that make a critical.
    #[arg(long, value_name = "N", default_value_t = Thresholds::default().close_wait_crit)]
    pub close_wait_crit: u64,

    /// CLOSE_WAIT sockets younger than SECS are still being closed, not stuck.
    #[arg(long, value_name = "SECS", default_value_t = Thresholds::default().close_wait_min_age_s)]
    pub close_wait_min_age: u64,

    /// A warning whose oldest CLOSE_WAIT socket is older than SECS becomes critical.
    #[arg(long, value_name = "SECS", default_value_t = Thresholds::default().close_wait_crit_age_s)]
    pub close_wait_crit_age: u64,

    /// Accepted connections with requests nobody reads that make a warning (worker pool).
    #[arg(long, value_name = "N", default_value_t = Thresholds::default().unread_warn)]
    pub unread_warn: u64,

    /// Percent of the usable ephemeral ports toward one destination that makes a warning.
    #[arg(long, value_name = "PCT", default_value_t = Thresholds::default().ports_warn_pct)]
    pub ports_warn: u64,

    /// ... and a critical.
    #[arg(long, value_name = "PCT", default_value_t = Thresholds::default().ports_crit_pct)]
    pub ports_crit: u64,

    /// Percent of a process's soft fd limit in use that makes a warning.
    #[arg(long, value_name = "PCT", default_value_t = Thresholds::default().fd_warn_pct)]
    pub fd_warn: u64,

    /// ... and a critical.
    #[arg(long, value_name = "PCT", default_value_t = Thresholds::default().fd_crit_pct)]
    pub fd_crit: u64,

    /// Sockets in LAST_ACK, FIN_WAIT1 or CLOSING (each) that make a warning.
    #[arg(long, value_name = "N", default_value_t = Thresholds::default().stalled_close_warn)]
    pub stalled_close_warn: u64,

    /// Percent of tcp_max_tw_buckets or tcp_max_orphans in use that makes a warning.
    #[arg(long, value_name = "PCT", default_value_t = Thresholds::default().kernel_limit_warn_pct)]
    pub kernel_limit_warn: u64,

    /// ESTABLISHED connections silent this long without keep-alive are noted.
    #[arg(long, value_name = "SECS", default_value_t = Thresholds::default().idle_s)]
    pub idle: u64,
}

impl ThresholdArgs {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            close_wait_warn: self.close_wait_warn,
            close_wait_crit: self.close_wait_crit.max(self.close_wait_warn),
            close_wait_min_age_s: self.close_wait_min_age,
            close_wait_crit_age_s: self.close_wait_crit_age,
            unread_warn: self.unread_warn,
            ports_warn_pct: self.ports_warn,
            ports_crit_pct: self.ports_crit.max(self.ports_warn),
            fd_warn_pct: self.fd_warn,
            fd_crit_pct: self.fd_crit.max(self.fd_warn),
            stalled_close_warn: self.stalled_close_warn,
            kernel_limit_warn_pct: self.kernel_limit_warn,
            idle_s: self.idle,
        }
    }
}

/// The clap command, for the man page and completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

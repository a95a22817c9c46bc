//! The plan: what to diagnose, how often, and how to judge it — everything
//! below the command line needs from it, as plain data. The binary builds it
//! once from the arguments (and the configuration file); the library never
//! sees the command line, so it can be driven by tests or another front end.

use crate::collect::{FdScan, SourceChoice};
use crate::diagnose::Thresholds;
use crate::filter::Filter;
use std::path::PathBuf;
use std::time::Duration;

/// Which sockets to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The network namespace connleak runs in.
    Here,
    /// A snapshot saved with `--save`.
    Saved(PathBuf),
    /// A namespace by its `ip netns` name.
    Netns(String),
    /// The namespace of a process (a container's).
    NetnsOfPid(u32),
    /// Every distinct namespace on the host, each reported on its own.
    AllNetns,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub scope: Scope,
    pub source: SourceChoice,
    pub fd_scan: FdScan,
    /// Where the host's `/proc`, `/sys` and runtime metadata are (`/`, or
    /// the host's root mounted into a container).
    pub host_root: PathBuf,
    /// Samples in the window of a run (1: no trend).
    pub samples: u32,
    /// Time between samples (and between refreshes of a live view).
    pub interval: Duration,
    pub filter: Filter,
    pub thresholds: Thresholds,
}

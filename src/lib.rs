//! connleak finds TCP connection leaks on a Linux host and says why they happen.
//!
//! The pipeline is **collect → snapshot → diagnose → link → report → render**:
//!
//! - [`collect`] is the only code that touches the system: sockets from the
//!   kernel's sock_diag netlink interface, owners from each process's fd
//!   table (a BPF task-file iterator on Linux 6.1+ with BTF, as root; else
//!   `/proc/PID/fd`), sysctls and counters from `/proc`.
//! - [`snapshot::Snapshot`] is what it yields: plain data that saves to JSON
//!   and loads back, so an incident can be diagnosed later and every rule is
//!   tested on fixtures.
//! - [`diagnose`] holds one pure rule per cause, speaking TCP's state machine
//!   as modelled in [`tcp`].
//! - [`link`] joins the findings into incidents: a finding another one
//!   explains becomes its consequence (`caused_by`), under its root cause.
//! - [`report::Report`] is the JSON contract; [`render`] turns it into text.
//! - [`serve`] is the long-running agent: the same pipeline every interval,
//!   its latest result served over HTTP to Prometheus.
//! - [`output`] delivers the text to stdout or a file without ever
//!   destroying what is at the target (a device, a FIFO, a directory).

pub mod call_sites;
pub mod cli;
pub mod collect;
pub mod config;
pub mod diagnose;
pub mod filter;
#[doc(hidden)]
pub mod fuzzing;
pub mod link;
pub mod output;
pub mod pipeline;
pub mod plan;
pub mod render;
pub mod report;
pub mod serve;
pub mod snapshot;
pub mod tcp;
pub mod threads;
pub mod timings;
pub mod watch;

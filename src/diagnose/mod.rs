//! Diagnosis: pure functions from a [`Snapshot`] to findings.
//!
//! Each cause of a connection build-up is one rule in its own module, listed in
//! [`RULES`]. A rule reads the snapshot through an [`Index`] (who owns which
//! socket, which ports listen) and returns findings that name the owner, the
//! endpoint, the kernel's evidence in numbers, what the state means in TCP's
//! close sequence, and what to do. Rules never read the system or the clock,
//! so every one is tested on saved snapshots.

mod accept_queue;
mod blocked_send;
mod cause;
mod close_wait;
mod ephemeral_ports;
mod event_loop;
mod farewell;
mod fd_limit;
mod half_closed;
mod holders;
mod identity;
mod idioms;
mod idle;
mod index;
mod kernel_limits;
mod listener_holder;
mod peers;
mod pools;
mod rollup;
mod send_stall;
mod server_close;
mod stalled_close;
mod syn_backlog;
mod syn_sent;
mod thresholds;
mod unreleased;
mod window;
mod worker_pool;

pub use blocked_send::BlockedSendCause;
pub use close_wait::CloseWaitCause;
pub use fd_limit::FdCause;
pub use half_closed::HalfClosedCause;
pub use index::{Index, Placed};
pub use peers::{Peer, is_local_destination};
pub use syn_backlog::SynBacklogCause;
pub use unreleased::UnreleasedCause;
pub use window::{Span, Trend, Window};
pub use worker_pool::WorkerPoolCause;

use crate::snapshot::{Process, Snapshot, Socket, Workload, endpoint};
use crate::tcp::TcpState;
use serde::{Serialize, Serializer};
use std::net::SocketAddr;

/// How bad a finding is. Ordered: `Info` < `Warning` < `Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
        }
    }

    /// One step worse, for a count that grows at every sample.
    pub fn raised(self) -> Severity {
        match self {
            Severity::Info => Severity::Warning,
            _ => Severity::Critical,
        }
    }

    /// `Critical` from `crit` on, `Warning` from `warn` on, `Info` below.
    pub fn grade(n: u64, warn: u64, crit: u64) -> Severity {
        if n >= crit {
            Severity::Critical
        } else if n >= warn {
            Severity::Warning
        } else {
            Severity::Info
        }
    }
}

/// Which end of the connections a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnSide {
    /// Connections accepted on a local listening port.
    Server,
    /// Connections this host opened toward a remote endpoint.
    Client,
}

cause::causes! {
    CloseWait(CloseWaitCause) of close_wait::RULE,
    WorkerPool(WorkerPoolCause) of worker_pool::RULE,
    Fd(FdCause) of fd_limit::RULE,
    HalfClosed(HalfClosedCause) of half_closed::RULE,
    BlockedSend(BlockedSendCause) of blocked_send::RULE,
    Unreleased(UnreleasedCause) of unreleased::RULE,
    SynBacklog(SynBacklogCause) of syn_backlog::RULE,
}

/// Finds a cause by name, in any spelling (case, `-` or `_`).
pub fn cause_named(name: &str) -> Option<Cause> {
    let name = name.replace('-', "_");
    Cause::all().find(|c| c.name().eq_ignore_ascii_case(&name))
}

/// One diagnosed cause: the JSON contract's `findings[]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Names the finding within its report, the same from one sample to the
    /// next while it lasts: kind, owner, endpoint and peer (`identity::identify`).
    pub id: String,
    /// The kind, as its rule names it ([`Rule::kind`]).
    pub kind: &'static str,
    pub severity: Severity,
    /// The `id` of the finding that explains this one (its root cause or a
    /// step toward it); `None` for a root cause. Set by the link stage.
    pub caused_by: Option<String>,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// The systemd unit, container or pod of its owner (or, for connections
    /// no process holds, of their cgroup); filled by the report, not the rules.
    pub workload: Option<Workload>,
    pub count: u64,
    /// What `count` counts.
    pub unit: Unit,
    /// The number the rule graded against its count thresholds, where that
    /// is not `count` (`close_wait_leak` counts every CLOSE_WAIT socket of
    /// its group, and grades the stuck ones): what `check`'s perfdata puts
    /// beside those thresholds.
    #[serde(skip)]
    pub graded: Option<u64>,
    /// Written as [`endpoint`] writes it: IPv4-mapped as IPv4, IPv6 as `[addr]:port`.
    #[serde(serialize_with = "endpoint_text")]
    pub local: Option<SocketAddr>,
    #[serde(serialize_with = "endpoint_text")]
    pub remote: Option<SocketAddr>,
    pub evidence: Vec<String>,
    pub suggestion: String,
    /// The TCP state the finding is about (`null` for process- or kernel-wide findings).
    pub state: Option<TcpState>,
    pub side: Option<ConnSide>,
    /// The specific cause within the kind.
    pub cause: Option<Cause>,
    /// Age of the oldest socket in the group, seconds, when the kernel told it.
    pub oldest_s: Option<u64>,
    /// The other local process of a connection pair (`half_closed_peer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_comm: Option<String>,
    /// The peers of a finding grouped by what the engineer acts on: one
    /// entry per peer host, or per local process at the other end.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<Peer>,
    /// Change of `count` per second over a sampled window (`--samples`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub growth_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trend: Option<Trend>,
    /// Where its sockets were born, most first, when a trace saw them born
    /// (`connleak trace`); filled after the diagnosis, not by the rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub call_sites: Vec<crate::snapshot::CallSite>,
    /// Indexes (into the snapshot's sockets) of the sockets this finding
    /// explains; a warning claims them from less specific rules.
    #[serde(skip)]
    pub sockets: Vec<usize>,
    /// For sockets a kernel timer ends: where their count levels off
    /// matters, not that it grows (see [`Ceiling`]).
    #[serde(skip)]
    pub ceiling: Option<Ceiling>,
}

fn endpoint_text<S: Serializer>(addr: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
    match addr {
        Some(a) => s.serialize_str(&endpoint(a)),
        None => s.serialize_none(),
    }
}

/// The address a finding names: IPv4-mapped IPv6 as the IPv4 address it is,
/// so that both spellings of one endpoint group together.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

impl Finding {
    /// A finding of `rule`'s kind with everything else empty, to fill with struct update syntax.
    pub fn of(rule: &Rule, state: Option<TcpState>) -> Finding {
        Finding {
            id: String::new(),
            kind: rule.kind,
            severity: Severity::Info,
            caused_by: None,
            pid: None,
            comm: None,
            workload: None,
            count: 0,
            unit: rule.unit,
            graded: None,
            local: None,
            remote: None,
            evidence: Vec::new(),
            suggestion: String::new(),
            state,
            side: None,
            cause: None,
            oldest_s: None,
            peer_pid: None,
            peer_comm: None,
            peers: Vec::new(),
            growth_per_s: None,
            trend: None,
            call_sites: Vec::new(),
            sockets: Vec::new(),
            ceiling: None,
        }
    }

    /// Names the owning process.
    pub fn owned_by(mut self, p: Option<&Process>) -> Finding {
        self.pid = p.map(|p| p.pid);
        self.comm = p.map(|p| p.comm.clone());
        self
    }
}

pub(crate) use thresholds::threshold_table;
pub use thresholds::{Contradiction, Measure, Threshold, Thresholds};

/// The limit a timer-bounded build-up runs into. Sockets that a kernel timer
/// ends (TIME-WAIT after a fixed 60 s) pile up while a service warms up and
/// then level off at about arrival rate × timer length: growth over a window
/// is judged by that projection against the limit that matters (ephemeral
/// ports to one destination, `tcp_max_tw_buckets`), never called a leak.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ceiling {
    /// How long the kernel keeps each socket, seconds.
    pub timer_s: u64,
    /// The limit, and what it is, as the evidence names it.
    pub limit: u64,
    pub limit_name: &'static str,
    /// The share of the limit (percent) that makes a warning.
    pub warn_pct: u64,
}

impl Ceiling {
    /// TIME-WAIT sockets against `limit`.
    pub fn time_wait(limit: u64, limit_name: &'static str, warn_pct: u64) -> Ceiling {
        Ceiling {
            timer_s: u64::from(crate::tcp::TIME_WAIT_SECS),
            limit,
            limit_name,
            warn_pct,
        }
    }
}

/// The kinds of finding, by the rules that make them: what the link stage
/// and the renderers name.
pub mod kind {
    pub const ACCEPT_QUEUE_FULL: &str = super::accept_queue::RULE.kind;
    pub const BLOCKED_SEND: &str = super::blocked_send::RULE.kind;
    pub const CLOSE_WAIT_LEAK: &str = super::close_wait::RULE.kind;
    pub const CLOSE_WAIT_ROLLUP: &str = super::rollup::RULE.kind;
    pub const CLOSED_NOT_RELEASED: &str = super::unreleased::RULE.kind;
    pub const CONNECT_UNANSWERED: &str = super::syn_sent::RULE.kind;
    pub const FD_EXHAUSTION: &str = super::fd_limit::RULE.kind;
    pub const NO_KEEPALIVE_IDLE: &str = super::idle::RULE.kind;
    pub const STALLED_CLOSE: &str = super::stalled_close::RULE.kind;
    pub const SYN_BACKLOG: &str = super::syn_backlog::RULE.kind;
    pub const WORKER_POOL_EXHAUSTED: &str = super::worker_pool::RULE.kind;
}

/// What a rule sees.
pub struct Context<'a> {
    pub snapshot: &'a Snapshot,
    pub index: &'a Index<'a>,
    pub thresholds: Thresholds,
    /// The earlier samples (none for a single run): the trend of counts,
    /// unread data and what the kernel counters did during the window.
    pub window: &'a Window,
    /// Sockets (by position) a more specific warning already explains, one flag each.
    claimed: Vec<bool>,
}

impl<'a> Context<'a> {
    /// The sockets no earlier rule has explained, with their indexes.
    pub fn sockets(&self) -> impl Iterator<Item = (usize, &'a Socket)> + '_ {
        self.snapshot
            .sockets
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.claimed.get(*i).copied().unwrap_or(false))
    }

    /// Unclaimed sockets in one state.
    pub fn in_state(&self, state: TcpState) -> impl Iterator<Item = (usize, &'a Socket)> + '_ {
        self.sockets().filter(move |(_, s)| s.state() == state)
    }
}

/// What a finding's `count` counts: one unit per kind, said in the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Connections: a pair of local ends, or a handshake, is one.
    Connections,
    /// Sockets, each end apart.
    Sockets,
    /// Open file descriptors of a process.
    Fds,
}

/// A rule: its finding kind, what it means for a person, and the function that finds it.
pub struct Rule {
    pub kind: &'static str,
    /// What its findings' `count` counts.
    pub unit: Unit,
    /// One line: what the finding is.
    pub title: &'static str,
    /// What the finding means and what to do: `connleak explain KIND` and the README.
    pub about: &'static str,
    pub run: fn(&Context) -> Vec<Finding>,
}

/// Every rule, most specific first: a socket explained by a warning of an
/// earlier rule is not counted again by a later one, and an INFO finding
/// about sockets an earlier finding already told is left out.
pub const RULES: &[Rule] = &[
    worker_pool::RULE,
    event_loop::RULE,
    accept_queue::RULE,
    half_closed::RULE,
    fd_limit::RULE,
    close_wait::RULE,
    rollup::RULE,
    unreleased::RULE,
    ephemeral_ports::RULE,
    server_close::RULE,
    syn_backlog::RULE,
    syn_sent::RULE,
    stalled_close::RULE,
    blocked_send::RULE,
    kernel_limits::TIME_WAIT_RULE,
    kernel_limits::ORPHAN_RULE,
    idle::RULE,
];

/// Runs every rule on a single sample; findings come worst first, then largest first.
pub fn diagnose(snapshot: &Snapshot, thresholds: Thresholds) -> Vec<Finding> {
    diagnose_indexed(
        snapshot,
        &Index::new(snapshot),
        thresholds,
        &Window::default(),
    )
}

/// [`diagnose`] with an index the caller built (and uses for more than this),
/// and the window of earlier samples that gives each finding its trend.
pub fn diagnose_indexed<'a>(
    snapshot: &'a Snapshot,
    index: &'a Index<'a>,
    thresholds: Thresholds,
    window: &'a Window,
) -> Vec<Finding> {
    let mut cx = Context {
        snapshot,
        index,
        thresholds,
        window,
        claimed: vec![false; snapshot.sockets.len()],
    };
    // Sockets some finding already counts: an INFO finding that would only
    // tell them again (with other advice) is left out.
    let mut told = vec![false; snapshot.sockets.len()];
    let mut findings = Vec::new();
    for rule in RULES {
        for f in (rule.run)(&cx) {
            let again = |i: &usize| told.get(*i).copied().unwrap_or(false);
            if f.severity == Severity::Info && !f.sockets.is_empty() && f.sockets.iter().all(again)
            {
                continue;
            }
            for &i in &f.sockets {
                if let Some(t) = told.get_mut(i) {
                    *t = true;
                }
                if let Some(claimed) = cx
                    .claimed
                    .get_mut(i)
                    .filter(|_| f.severity >= Severity::Warning)
                {
                    *claimed = true;
                }
            }
            findings.push(f);
        }
    }
    // An earlier INFO finding whose sockets a later warning (a roll-up) all
    // explains would tell them a second time.
    let claimed = |i: &usize| cx.claimed.get(*i).copied().unwrap_or(false);
    findings.retain(|f| {
        f.severity > Severity::Info || f.sockets.is_empty() || !f.sockets.iter().all(claimed)
    });
    holders::annotate(snapshot, index, &mut findings);
    order(&mut findings);
    identity::identify(&mut findings);
    window.apply(snapshot, &mut findings);
    order(&mut findings);
    findings
}

/// Worst first, then largest first.
fn order(findings: &mut [Finding]) {
    findings.sort_by(worst_first);
}

/// The report's order of two findings: worst first, then largest first, then by pid.
pub fn worst_first(a: &Finding, b: &Finding) -> std::cmp::Ordering {
    b.severity
        .cmp(&a.severity)
        .then(b.count.cmp(&a.count))
        .then(a.pid.cmp(&b.pid))
}

/// `n` as a percentage of `of` (0 when `of` is 0).
pub fn percent(n: u64, of: u64) -> u64 {
    n.saturating_mul(100).checked_div(of).unwrap_or(0)
}

/// "pid 123 (nginx)", or a phrase for an unknown owner.
pub fn who(p: Option<&Process>) -> String {
    match p {
        Some(p) => format!("pid {} ({})", p.pid, p.comm),
        None => "no process we could see".to_string(),
    }
}

/// "1 process", "3 processes", "0 problems".
pub fn plural(n: u64, word: &str) -> String {
    match (n, word.ends_with('s')) {
        (1, _) => format!("1 {word}"),
        (_, true) => format!("{n} {word}es"),
        (_, false) => format!("{n} {word}s"),
    }
}

/// Formats a duration in seconds the way an on-call engineer reads it.
pub fn human_duration(secs: u64) -> String {
    match secs {
        0 => "under 1 s".to_string(),
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s if s < 86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_and_durations_read() {
        assert!(Severity::Critical > Severity::Warning && Severity::Warning > Severity::Info);
        assert_eq!(human_duration(0), "under 1 s");
        assert_eq!(human_duration(5), "5 s");
        assert_eq!(human_duration(125), "2 min 5 s");
        assert_eq!(human_duration(7300), "2 h 1 min");
        assert_eq!(human_duration(90000), "1 d 1 h");
        assert_eq!(plural(1, "process"), "1 process");
        assert_eq!(plural(3, "process"), "3 processes");
        assert_eq!(plural(0, "problem"), "0 problems");
    }

    #[test]
    fn grades_count_against_warn_and_crit() {
        assert_eq!(Severity::grade(4, 5, 10), Severity::Info);
        assert_eq!(Severity::grade(5, 5, 10), Severity::Warning);
        assert_eq!(Severity::grade(10, 5, 10), Severity::Critical);
    }

    /// The JSON contract's cause names, including those no golden fixture shows.
    #[test]
    fn causes_serialize_to_their_names() {
        let json = |c: Cause| serde_json::to_string(&c).unwrap_or_default();
        let names = [
            (
                CloseWaitCause::NeverClosedAfterEof.into(),
                "never_closed_after_eof",
            ),
            (
                CloseWaitCause::UnreadAfterPeerClose.into(),
                "unread_after_peer_close",
            ),
            (
                CloseWaitCause::RequestNeverRead.into(),
                "request_never_read",
            ),
            (CloseWaitCause::NeverAccepted.into(), "never_accepted"),
            (
                CloseWaitCause::ResponseNotClosed.into(),
                "response_not_closed",
            ),
            (
                WorkerPoolCause::WorkersBlockedOnReads.into(),
                "workers_blocked_on_reads",
            ),
            (
                WorkerPoolCause::WorkersBlockedElsewhere.into(),
                "workers_blocked_elsewhere",
            ),
            (WorkerPoolCause::WorkersUnknown.into(), "workers_unknown"),
            (
                WorkerPoolCause::WorkersBlockedOnDependency.into(),
                "workers_blocked_on_dependency",
            ),
            (FdCause::CloseWaitLeak.into(), "close_wait_leak"),
            (FdCause::FdLimit.into(), "fd_limit"),
            (FdCause::ClosedNotReleased.into(), "closed_not_released"),
            (
                HalfClosedCause::HalfCloseNotAnswered.into(),
                "half_close_not_answered",
            ),
            (
                HalfClosedCause::OrphanedFinWait2.into(),
                "orphaned_fin_wait2",
            ),
            (BlockedSendCause::PeerNotReading.into(), "peer_not_reading"),
            (BlockedSendCause::PeerGone.into(), "peer_gone"),
            (UnreleasedCause::ConnectFailed.into(), "connect_failed"),
            (UnreleasedCause::ResetAfterWrite.into(), "reset_after_write"),
            (UnreleasedCause::EndedWhileIdle.into(), "ended_while_idle"),
            (UnreleasedCause::ClosedInOrder.into(), "closed_in_order"),
            (UnreleasedCause::NeverConnected.into(), "never_connected"),
        ];
        for (cause, name) in names {
            assert_eq!(json(cause), format!("\"{name}\""));
        }
    }

    #[test]
    fn endpoints_serialize_as_ss_writes_them() {
        let addr = |s: &str| s.parse::<SocketAddr>().ok();
        let f = Finding {
            local: addr("[::ffff:10.1.2.3]:8080"),
            remote: addr("[2001:db8::1]:443"),
            state: Some(TcpState::FinWait2),
            ..Finding::of(&RULES[0], None)
        };
        let v = serde_json::to_value(&f).unwrap_or_default();
        assert_eq!(v["local"], "10.1.2.3:8080");
        assert_eq!(v["remote"], "[2001:db8::1]:443");
        assert_eq!(v["state"], "FIN_WAIT2");
        assert_eq!(v["kind"], RULES[0].kind);
        let none = serde_json::to_value(Finding::of(&RULES[0], None)).unwrap_or_default();
        assert!(none["local"].is_null() && none["cause"].is_null());
    }
}

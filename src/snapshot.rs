//! The snapshot: everything connleak knows about one moment of one host.
//!
//! It is plain data, filled by `collect` and read by everything after it, so
//! that a snapshot saved during an incident (`--save`) can be diagnosed later
//! anywhere (`--from`), and every rule can be tested on a fixture without root.
//! Values the kernel did not give are `None` (or absent from a map), never zero.
//! Ownership is kept as collected (each process lists the socket inodes in its
//! fd table); the join happens in analysis.

use crate::tcp::TcpState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

mod call_site;
mod socket;
pub mod workload;

pub use call_site::{CallSite, Frame};
pub use socket::{Socket, SocketParts};

/// Version of the snapshot file format. Bumped on any incompatible change;
/// `--from` refuses other versions with a clear message. Fields a newer
/// release adds within a version are ignored, so they need no bump.
pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub snapshot_version: u32,
    pub meta: Meta,
    pub sockets: Vec<Socket>,
    pub processes: Vec<Process>,
    pub kernel: Kernel,
    pub unreadable: Unreadable,
    /// cgroup v2 id → cgroup path, for the ids of sockets no process holds
    /// (connections never accepted carry their listener's cgroup).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cgroups: BTreeMap<u64, String>,
}

/// When, where and how the snapshot was taken.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    /// Milliseconds since the Unix epoch, when collection started.
    pub taken_at_ms: u64,
    /// How long collection took, milliseconds.
    pub duration_ms: u64,
    pub host: Option<String>,
    pub kernel_release: Option<String>,
    pub netns: Netns,
    pub source: SocketSource,
    pub connleak_version: String,
}

/// The network namespace the sockets were read in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Netns {
    /// Inode of `/proc/thread-self/ns/net`.
    pub inode: Option<u64>,
    /// Its `ip netns` name, when it has one.
    pub name: Option<String>,
    /// Whether it is the host's initial namespace (that of pid 1), whose
    /// counters run since boot; `None` when that could not be told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<bool>,
}

impl Netns {
    /// Since when its kernel counters count, as the evidence says it.
    pub fn counted_since(&self) -> &'static str {
        match self.initial {
            Some(true) => "since boot",
            Some(false) => "since this network namespace was created",
            None => "since this network namespace was created (since boot, for the host's)",
        }
    }
}

/// Where the socket table came from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SocketSource {
    /// The kernel's sock_diag netlink interface, with tcp_info.
    SockDiag,
    /// `/proc/net/tcp` and `/proc/net/tcp6`: no cookies, no tcp_info.
    ProcNet,
}

/// The timer the kernel runs on a socket.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Timer {
    None,
    Retransmit,
    KeepAlive,
    TimeWait,
    ZeroWindowProbe,
}

impl Timer {
    /// The kernel's `idiag_timer` number, which `/proc/net/tcp` prints as `tr`.
    pub fn from_kernel(n: u8) -> Timer {
        match n {
            1 => Timer::Retransmit,
            2 => Timer::KeepAlive,
            3 => Timer::TimeWait,
            4 => Timer::ZeroWindowProbe,
            _ => Timer::None,
        }
    }
}

/// The parts of `struct tcp_info` a diagnosis uses. Only full sockets have one
/// (not TIME_WAIT, not request sockets); fields an old kernel lacks are `None`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct TcpInfo {
    /// Retransmissions of the current unacknowledged segment.
    pub retransmits: u8,
    /// Zero-window probes sent that the peer has not answered (reset by each
    /// answer): a peer that answers while its window stays closed shows 0 here
    /// with the zero-window probe timer running.
    #[serde(default)]
    pub probes: u8,
    /// Exponential backoff of the retransmission or probe timer.
    #[serde(default)]
    pub backoff: u8,
    pub last_data_sent_ms: Option<u32>,
    pub last_data_recv_ms: Option<u32>,
    /// Time since the last segment (ACK) from the peer; in CLOSE_WAIT, since its FIN.
    pub last_ack_recv_ms: Option<u32>,
    pub total_retrans: Option<u32>,
}

/// A process that holds at least one socket, or whose fd table was scanned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Process {
    pub pid: u32,
    /// Its parent's pid: the workers of a prefork server share one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
    /// Control characters kept; invalid UTF-8 bytes written as `\xNN`.
    pub comm: String,
    pub cmdline: String,
    pub uid: Option<u32>,
    pub threads: Option<u32>,
    /// Open file descriptors, all kinds.
    pub fds: u32,
    pub fd_soft_limit: Option<u64>,
    pub fd_hard_limit: Option<u64>,
    /// Inodes of the TCP sockets in its fd table.
    pub socket_inodes: Vec<u64>,
    /// Its threads and what each waits on; read only for processes that have
    /// unread data on a socket (the worker-pool diagnosis), empty otherwise.
    #[serde(default)]
    pub tasks: Vec<Task>,
    /// The systemd unit, container or pod it runs in; `None` in the root
    /// cgroup, or when its cgroup could not be read.
    #[serde(default)]
    pub workload: Option<Workload>,
    /// The runtime it runs on, when recognised (read only for socket holders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<Runtime>,
    /// The connection-pool libraries it is seen to run (from its thread
    /// names or mapped libraries), so that advice names their settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub libraries: Vec<Library>,
    /// TCP sockets in its fd table that are in no TCP table of the namespace:
    /// closed by a reset or a timeout (state CLOSE, unhashed), never close()d.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub closed_tcp_fds: u32,
    /// What the kernel still held of those sockets, grouped; empty when it
    /// could not be read (no BPF socket iterator), so "unknown" never reads
    /// as "none".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub closed_tcp: Vec<ClosedGroup>,
}

/// Sockets of one process in state CLOSE that share what the kernel still
/// holds of them: where they were connecting or connected to, whether the
/// handshake ever completed, and how their connection ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClosedGroup {
    pub count: u32,
    /// The address they connected or tried to connect to; `None` when the
    /// kernel kept none (never connected), or for the other peers of a
    /// process with more peers than a snapshot keeps groups for.
    pub peer: Option<std::net::IpAddr>,
    /// The peer's port when all of the group share it; `None` when they do
    /// not (clients' ephemeral ports) or the kernel forgot it (a failed
    /// blocking `connect()` resets the socket).
    pub peer_port: Option<u16>,
    /// Whether the handshake ever completed: something was received or
    /// acknowledged, or a round-trip time measured.
    pub established: bool,
    /// Whether data (or a FIN) they sent was unacknowledged when they ended.
    pub unacked: bool,
    /// Whether the peer's FIN had arrived (before the end, or as the end).
    #[serde(default)]
    pub peer_fin: bool,
    /// The error the kernel holds for the application (`ETIMEDOUT`,
    /// `ECONNREFUSED`, `ECONNRESET`, `EPIPE`, ...), not yet collected by a
    /// read, a write or `SO_ERROR`; `None` once the application saw it.
    pub error: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A client library that keeps a pool of connections, told without attaching
/// to the process: by the threads it names or the library it maps.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Library {
    /// The JDBC pool (threads `HikariPool-N housekeeper`, `... connection adder`).
    Hikaricp,
    /// Apache Commons Pool, under DBCP2 and Jedis (thread `commons-pool-evictor`).
    CommonsPool,
    /// The c3p0 JDBC pool (threads `C3P0PooledConnectionPoolManager...`).
    C3p0,
    /// The Tomcat JDBC pool (thread `PoolCleaner[...]`).
    TomcatJdbc,
    /// OkHttp's connection pool (threads `OkHttp ConnectionPool`, `OkHttp TaskRunner`).
    Okhttp,
    /// PostgreSQL's C client library (libpq), under psycopg and most PostgreSQL drivers
    /// outside the JVM and Go.
    Libpq,
}

impl Library {
    pub fn name(self) -> &'static str {
        match self {
            Library::Hikaricp => "HikariCP",
            Library::CommonsPool => "Commons Pool (DBCP2, Jedis)",
            Library::C3p0 => "c3p0",
            Library::TomcatJdbc => "Tomcat JDBC",
            Library::Okhttp => "OkHttp",
            Library::Libpq => "libpq",
        }
    }
}

/// What runs a process, as a person names it: a systemd unit, a container,
/// a Kubernetes pod; told from its cgroup and the runtimes' metadata files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Workload {
    pub kind: WorkloadKind,
    /// The unit (`nginx.service`), the container's name, `NAMESPACE/POD`
    /// for Kubernetes, a short container id when no metadata names it, or
    /// the cgroup path.
    pub name: String,
    pub container_id: Option<String>,
    /// Kubernetes pod name and namespace, from the runtime's metadata.
    pub pod: Option<String>,
    pub namespace: Option<String>,
    /// The container's name (in its pod, for Kubernetes).
    pub container: Option<String>,
    /// The cgroup path it was told from.
    pub cgroup: String,
}

/// Who made the cgroup a workload was told from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    Systemd,
    Docker,
    Containerd,
    CriO,
    Podman,
    Lxc,
    /// None of the above: named by its cgroup path.
    Cgroup,
}

/// The language runtime or server a process runs, which decides how its
/// threads read (a pool of blocking workers, or an event loop) and which
/// idioms a suggestion names.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Runtime {
    Jvm,
    Go,
    Node,
    Python,
    Nginx,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Jvm => "jvm",
            Runtime::Go => "go",
            Runtime::Node => "node",
            Runtime::Python => "python",
            Runtime::Nginx => "nginx",
        }
    }

    /// Whether it serves connections from a few threads parked in an event
    /// loop rather than a thread per connection (a Netty or asyncio server on
    /// a JVM or Python is told by its threads instead).
    pub fn is_event_loop(self) -> bool {
        matches!(self, Runtime::Go | Runtime::Node | Runtime::Nginx)
    }

    /// Its HTTP client, when that client reads its own idle pooled
    /// connections and closes those the server shut (Go's net/http
    /// Transport, Node's http.Agent): a client-side CLOSE-WAIT there is never
    /// an idle pooled connection, but one the application still holds a
    /// response on.
    pub fn idle_pool_reader(self) -> Option<&'static str> {
        match self {
            Runtime::Go => Some("Go's net/http Transport"),
            Runtime::Node => Some("Node's http.Agent"),
            _ => None,
        }
    }
}

/// One thread of a process, as `/proc/PID/task/TID` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Task {
    pub tid: u32,
    pub comm: String,
    /// The scheduler state letter (`R`, `S`, `D`, ...).
    pub state: String,
    /// The kernel function it sleeps in, when the kernel tells.
    pub wchan: Option<String>,
    /// The system call it is blocked in (`recvfrom`, `futex`, ...), when known.
    pub syscall: Option<String>,
    /// The fd that system call works on, for calls whose first argument is one.
    pub fd: Option<u32>,
    /// The socket inode that fd points to, if it is a socket.
    pub inode: Option<u64>,
}

/// Kernel settings and counters of the namespace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Kernel {
    pub sysctls: Sysctls,
    /// `/proc/net/netstat` and `/proc/net/snmp`: group (`TcpExt`, `Tcp`, ...) → name → value.
    pub counters: BTreeMap<String, BTreeMap<String, i64>>,
    /// `/proc/net/sockstat{,6}`'s TCP lines, when readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sockstat: Option<Sockstat>,
}

/// The kernel's own TCP socket accounting (`/proc/net/sockstat`, `sockstat6`).
/// `inuse` and `tw` count this namespace's hashed sockets; `orphan` and
/// `alloc` count the whole host, every namespace and both IP versions.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Sockstat {
    /// IPv4 TCP sockets in the namespace's tables (`TCP: inuse`).
    pub inuse: u64,
    /// IPv6 TCP sockets in the namespace's tables (`TCP6: inuse`).
    pub inuse6: u64,
    /// Sockets no process holds any more, host-wide (`orphan`).
    pub orphan: u64,
    /// TIME-WAIT sockets of the namespace (`tw`).
    pub tw: u64,
    /// Every TCP socket allocated, hashed or not, host-wide (`alloc`).
    pub alloc: u64,
}
/// The kernel counters that betray dropped or aborted connections: exported to
/// Prometheus and compared over a sample window.
pub const WATCHED_COUNTERS: &[(&str, &str)] = &[
    ("TcpExt", "ListenOverflows"),
    ("TcpExt", "ListenDrops"),
    ("TcpExt", "TCPTimeWaitOverflow"),
    ("TcpExt", "TCPAbortOnClose"),
    ("TcpExt", "TCPAbortOnMemory"),
    ("TcpExt", "TCPAbortOnTimeout"),
    ("TcpExt", "TCPReqQFullDrop"),
    ("TcpExt", "TCPReqQFullDoCookies"),
    ("TcpExt", "SyncookiesSent"),
    ("Tcp", "ActiveOpens"),
    ("Tcp", "PassiveOpens"),
    ("Tcp", "EstabResets"),
];

impl Kernel {
    pub fn counter(&self, group: &str, name: &str) -> Option<i64> {
        self.counters.get(group)?.get(name).copied()
    }
}

/// The sysctls that bound the states connleak diagnoses. `None`: not readable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Sysctls {
    pub tcp_fin_timeout: Option<u32>,
    pub ip_local_port_range: Option<(u16, u16)>,
    /// Ranges, inclusive.
    pub ip_local_reserved_ports: Option<Vec<(u16, u16)>>,
    pub tcp_max_tw_buckets: Option<u64>,
    pub tcp_tw_reuse: Option<u32>,
    pub somaxconn: Option<u32>,
    pub tcp_max_orphans: Option<u64>,
    pub tcp_syncookies: Option<u32>,
    /// Caps each listener's SYN queue; with SYN cookies off, its last quarter
    /// is kept for peers already proven alive.
    #[serde(default)]
    pub tcp_max_syn_backlog: Option<u32>,
}

/// What could not be read, counted so that the report never pretends to be complete.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Unreadable {
    /// Processes whose fd table we were not allowed to read (owners unknown).
    pub processes_denied: u32,
    /// Processes that exited while being scanned.
    pub processes_vanished: u32,
    /// Other files or interfaces that failed, with the reason.
    pub sources: Vec<UnreadableSource>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UnreadableSource {
    pub what: String,
    pub error: String,
}

impl Unreadable {
    pub fn note(&mut self, what: impl Into<String>, error: impl std::fmt::Display) {
        self.sources.push(UnreadableSource {
            what: what.into(),
            error: error.to_string(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.processes_denied == 0 && self.processes_vanished == 0 && self.sources.is_empty()
    }
}

/// Formats an endpoint as `ip:port`, IPv6 as `[addr]:port`; IPv4-mapped IPv6
/// addresses are shown as the IPv4 address they carry.
pub fn endpoint(addr: &SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("{v4}:{}", addr.port()),
            None => format!("[{v6}]:{}", addr.port()),
        },
        IpAddr::V4(v4) => format!("{v4}:{}", addr.port()),
    }
}

/// Why a snapshot file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read snapshot {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "snapshot {path} is not a connleak snapshot: it starts with byte {found:#04x}, not '{{'"
    )]
    NotJson { path: String, found: u8 },
    #[error("snapshot {path} is larger than the {limit}-byte limit")]
    TooLarge { path: String, limit: u64 },
    #[error("snapshot {path} is not a connleak snapshot: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error(
        "snapshot {path} has format version {found}; this connleak reads version {SNAPSHOT_VERSION}"
    )]
    Version { path: String, found: u64 },
}

/// Largest snapshot `--from` accepts: `--save` writes about 300 bytes a
/// socket, so this holds some three and a half million sockets, and bounds
/// the memory a hostile file (or `/dev/zero`) can make connleak take.
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;

impl Snapshot {
    /// A listener's backlog: its Send-Q from sock_diag; `None` (unknown) from
    /// `/proc/net/tcp`, whose LISTEN line shows the unsent bytes (0), not the backlog.
    pub fn backlog(&self, listener: &Socket) -> Option<u32> {
        (listener.state() == TcpState::Listen && self.meta.source == SocketSource::SockDiag)
            .then_some(listener.send_q())
    }

    /// Reads a snapshot written by `--save`, checking its version before its shape.
    pub fn load(path: &std::path::Path) -> Result<Snapshot, LoadError> {
        use std::io::Read;
        let shown = path.display().to_string();
        let read_err = |source| LoadError::Read {
            path: shown.clone(),
            source,
        };
        // A regular file's size says at once; a pipe or a device (/dev/zero)
        // is read up to the limit and no further.
        let too_large = || LoadError::TooLarge {
            path: shown.clone(),
            limit: MAX_SNAPSHOT_BYTES,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        if file.metadata().map_err(read_err)?.len() > MAX_SNAPSHOT_BYTES {
            return Err(too_large());
        }
        // Read in chunks, so that what is not JSON (`/dev/zero`) is refused
        // after its first bytes rather than after the whole limit.
        let mut reader = file.take(MAX_SNAPSHOT_BYTES + 1);
        let mut text = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let mut opened = false;
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e)),
            };
            let new = chunk.get(..n).unwrap_or_default();
            if !opened && let Some(&first) = new.iter().find(|b| !b.is_ascii_whitespace()) {
                if first != b'{' {
                    return Err(LoadError::NotJson {
                        path: shown,
                        found: first,
                    });
                }
                opened = true;
            }
            text.extend_from_slice(new);
        }
        if text.len() as u64 > MAX_SNAPSHOT_BYTES {
            return Err(too_large());
        }
        Self::from_json(&text).map_err(|e| match e {
            FromJsonError::Parse(source) => LoadError::Parse {
                path: shown,
                source,
            },
            FromJsonError::Version(found) => LoadError::Version { path: shown, found },
        })
    }

    /// Parses a snapshot from JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Snapshot, FromJsonError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            snapshot_version: u64,
        }
        let version: VersionOnly = serde_json::from_slice(bytes).map_err(FromJsonError::Parse)?;
        if version.snapshot_version != u64::from(SNAPSHOT_VERSION) {
            return Err(FromJsonError::Version(version.snapshot_version));
        }
        serde_json::from_slice(bytes).map_err(FromJsonError::Parse)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FromJsonError {
    #[error("{0}")]
    Parse(serde_json::Error),
    #[error("format version {0}")]
    Version(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_print_like_ss() {
        let v4: SocketAddr = "10.0.0.1:80".parse().unwrap_or_else(|_| unreachable!());
        let v6: SocketAddr = "[2001:db8::1]:443"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:8080"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(endpoint(&v4), "10.0.0.1:80");
        assert_eq!(endpoint(&v6), "[2001:db8::1]:443");
        assert_eq!(endpoint(&mapped), "10.1.2.3:8080");
    }

    #[test]
    fn wrong_version_is_named_before_shape() {
        let err = Snapshot::from_json(br#"{"snapshot_version": 99, "whatever": true}"#);
        assert!(matches!(err, Err(FromJsonError::Version(99))));
        let err = Snapshot::from_json(br#"{"snapshot_version": 1}"#);
        assert!(matches!(err, Err(FromJsonError::Parse(_))));
        let err = Snapshot::from_json(b"{\"snapshot_v");
        assert!(matches!(err, Err(FromJsonError::Parse(_))));
    }

    #[test]
    fn fields_a_newer_release_adds_are_ignored() {
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/leak.json");
        let text = std::fs::read_to_string(fixture).unwrap_or_default();
        let mut value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let plain = Snapshot::from_json(text.as_bytes()).ok();
        assert!(plain.is_some());
        value["added_later"] = serde_json::json!({"a": 1});
        value["meta"]["added_later"] = serde_json::json!(true);
        value["sockets"][0]["added_later"] = serde_json::json!([1, 2]);
        value["kernel"]["sysctls"]["tcp_added_later"] = serde_json::json!(3);
        let extended = serde_json::to_vec(&value).unwrap_or_default();
        assert_eq!(Snapshot::from_json(&extended).ok(), plain);
    }
}

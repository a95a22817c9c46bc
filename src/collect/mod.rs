//! The only code that touches the live system: it fills a [`Snapshot`] from
//! the kernel (sock_diag, `/proc`), and nothing after it reads the system or
//! the clock. Each data source has its own module; failures of a part are
//! recorded in the snapshot's `unreadable` section, and only a missing socket
//! table is an error. Everything is read under a host root (`/`, or the
//! host's root mounted in a container), so that connleak run in a privileged
//! pod sees the host's `/proc`, `/sys` and container runtimes.

pub mod bpf;
pub mod btf;
pub mod cgroup;
pub mod dense;
pub mod fd_iter;
pub mod held;
pub mod kernel;
pub mod libraries;
pub mod netns;
pub mod owners;
pub mod parallel;
pub mod proc_net;
pub mod procfs;
pub mod runtime;
pub mod sock_diag;
pub mod sock_lookup;
pub mod tasks;
pub mod trace;
pub mod unreleased;
pub mod workload;

use crate::snapshot::{Meta, Netns, SNAPSHOT_VERSION, Snapshot, Socket, SocketSource, Unreadable};
use crate::tcp::TcpState;
use crate::timings;
use dense::DenseSet;
use fd_iter::FdIter;
use held::HostScan;
use rustc_hash::{FxHashMap, FxHashSet};
use std::io::BufReader;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Which socket table to read (the command line names them: `cli`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceChoice {
    /// sock_diag netlink, falling back to /proc/net/tcp when it is unavailable.
    Auto,
    /// sock_diag netlink only.
    Netlink,
    /// /proc/net/tcp and /proc/net/tcp6 only (no tcp_info: ages unknown).
    Proc,
}

/// How to read every process's fd table (which process holds which socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdScan {
    /// A BPF task-file iterator where the kernel and privileges allow it, else /proc/PID/fd.
    Auto,
    /// /proc/PID/fd only (one readlink per fd).
    Proc,
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    SockDiag(#[from] sock_diag::SockDiagError),
    #[error("cannot read {path}: {source}")]
    ProcNet {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    ProcNetParse(#[from] proc_net::ParseError),
    #[error("internal error: {0} panicked")]
    Panicked(&'static str),
    #[error("host root {0} has no proc directory (is the host's root mounted there?)")]
    NoProc(String),
    #[error("no socket table: sock_diag failed ({netlink}) and so did /proc/net/tcp ({proc})")]
    Neither { netlink: String, proc: String },
}

/// When and where a collection started, and what it could not read so far.
pub struct Begun {
    started: Instant,
    taken_at_ms: u64,
    netns: Netns,
    unreadable: Unreadable,
}

/// A namespace's collection waiting for the host scan, with what it read.
pub struct Waiting {
    begun: Begun,
    kernel: crate::snapshot::Kernel,
}

/// What [`Collector::collect_among`] came back with.
pub enum Collected {
    /// The snapshot, and how its sockets were read: `Ok`, by lookups;
    /// `Err`, dumped, and why.
    Done(Box<Snapshot>, Result<(), &'static str>),
    /// To be resumed in the same namespace once the host scan is done.
    Waiting(Box<Waiting>),
}

/// What every collection of one process shares, set up at the first that
/// needs it and reused by the next ones: a sampled run, `watch` and `serve`
/// collect again and again, and the fd iterator costs a read and parse of
/// the kernel's BTF (megabytes) and a pass of the BPF verifier to load.
/// Shared by reference with the threads that enter other namespaces: the
/// loaded program reads fd tables whatever network namespace asks.
pub struct Collector {
    source: SourceChoice,
    fd_scan: FdScan,
    host_root: PathBuf,
    /// The fd iterator once it was tried: `None` when it cannot be used here
    /// (then every scan reads `/proc`, without trying again).
    fd_iter: OnceLock<Option<FdIter>>,
    /// Why other users' processes are hidden, if they are (`hidepid`).
    hidden: OnceLock<Option<String>>,
}

impl Collector {
    /// A collector of the host whose root is `host_root` (`/`, or where a
    /// container mounted it); nothing is loaded before the first collection.
    pub fn new(source: SourceChoice, fd_scan: FdScan, host_root: &Path) -> Collector {
        Collector {
            source,
            fd_scan,
            host_root: host_root.to_path_buf(),
            fd_iter: OnceLock::new(),
            hidden: OnceLock::new(),
        }
    }

    /// Reads every process's fd table, and what they hold of each
    /// namespace, once for all the namespaces to be collected now
    /// (`--all-netns`): for each [`Collector::collect_among`].
    pub fn host_scan(&self) -> HostScan<'_> {
        let proc_root = self.host_root.join("proc");
        timings::phase("host scan", || {
            HostScan::new(&proc_root, self.fd_iter(&proc_root))
        })
    }

    /// Takes a snapshot of the calling thread's network namespace, now.
    pub fn collect(&self) -> Result<Snapshot, CollectError> {
        let mut begun = self.begin(None)?;
        let proc_root = &self.host_root.join("proc");
        let netns = begun.netns.inode;
        // The kernel's dump and the fd scan are independent: run them side by side.
        let (sockets, tables) = std::thread::scope(|s| {
            let tables = s.spawn(|| {
                timings::phase("fd scan", || {
                    let iterator = self.fd_iter(proc_root);
                    owners::scan_fd_tables(proc_root, netns, iterator)
                })
            });
            let sockets = timings::phase("dump", || {
                read_sockets(self.source, proc_root, &mut begun.unreadable)
            });
            (sockets, tables.join())
        });
        let tables = tables.map_err(|_| CollectError::Panicked("the /proc fd scan"))?;
        let (sockets, source) = sockets?;
        let kernel = timings::phase("kernel", || kernel::read(proc_root, &mut begun.unreadable));
        Ok(self.finish(begun, kernel, sockets, source, tables))
    }

    /// Takes a snapshot of the calling thread's network namespace as one
    /// of all (`--all-netns`), while the host scan runs on another thread
    /// (`scan` is set when it ends; `None` if it failed). A namespace that
    /// must be dumped is dumped at once; one whose sockets may all be held
    /// waits for the scan to look them up, unless `wait` is false: then it
    /// comes back [`Collected::Waiting`], to be resumed (in its namespace)
    /// once there is nothing else to do. `names`: the `ip netns` names.
    pub fn collect_among(
        &self,
        scan: &OnceLock<Option<HostScan>>,
        names: &FxHashMap<u64, String>,
        resumed: Option<Box<Waiting>>,
        wait: bool,
    ) -> Result<Collected, CollectError> {
        let proc_root = &self.host_root.join("proc");
        let Waiting { mut begun, kernel } = match resumed {
            Some(waiting) => *waiting,
            None => {
                let mut begun = self.begin(Some(names))?;
                // The kernel's accounting first: its sockstat says whether
                // the held sockets can be the whole namespace.
                let kernel =
                    timings::phase("kernel", || kernel::read(proc_root, &mut begun.unreadable));
                Waiting { begun, kernel }
            }
        };
        let stat = kernel.sockstat.as_ref();
        let must_dump = match self.source {
            SourceChoice::Proc => Err("--source proc"),
            _ => held::must_dump(stat),
        };
        let looked_up = match must_dump {
            Err(why) => Err(why),
            Ok(()) => {
                let host = match scan.get() {
                    Some(host) => host,
                    None if wait => scan.wait(),
                    None => return Ok(Collected::Waiting(Box::new(Waiting { begun, kernel }))),
                };
                let host = host
                    .as_ref()
                    .ok_or(CollectError::Panicked("the host scan"))?;
                timings::phase("lookups", || host.sockets(begun.netns.inode, stat))
            }
        };
        let how = looked_up.as_ref().map(|_| ()).map_err(|why| *why);
        let (sockets, source) = match looked_up {
            Ok(sockets) => (sockets, SocketSource::SockDiag),
            Err(_) => timings::phase("dump", || {
                read_sockets(self.source, proc_root, &mut begun.unreadable)
            })?,
        };
        let host = scan
            .wait()
            .as_ref()
            .ok_or(CollectError::Panicked("the host scan"))?;
        let tables = host.tables(begun.netns.inode);
        let snapshot = self.finish(begun, kernel, sockets, source, tables);
        Ok(Collected::Done(Box::new(snapshot), how))
    }

    /// When and where a collection starts; `names`: the `ip netns` names,
    /// by inode, if they were read already.
    fn begin(&self, names: Option<&FxHashMap<u64, String>>) -> Result<Begun, CollectError> {
        let proc_root = self.host_root.join("proc");
        if !proc_root.is_dir() {
            return Err(CollectError::NoProc(self.host_root.display().to_string()));
        }
        Ok(Begun {
            started: Instant::now(),
            taken_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            netns: netns(&proc_root, &self.host_root, names),
            unreadable: Unreadable::default(),
        })
    }

    /// The snapshot, once the sockets and the fd tables are read: their
    /// owners, workloads and cgroups.
    fn finish(
        &self,
        begun: Begun,
        kernel: crate::snapshot::Kernel,
        sockets: Vec<Socket>,
        source: SocketSource,
        tables: owners::FdTables,
    ) -> Snapshot {
        let Begun {
            started,
            taken_at_ms,
            netns,
            mut unreadable,
        } = begun;
        let host_root = self.host_root.as_path();
        let proc_root = &host_root.join("proc");
        let (tcp_inodes, wants_tasks) = timings::phase("join", || inodes(&sockets));
        let hidden = self
            .hidden
            .get_or_init(|| owners::hidden_processes(proc_root));
        let mut processes = owners::owners(
            proc_root,
            tables,
            &tcp_inodes,
            &wants_tasks,
            hidden.as_deref(),
            &mut unreadable,
        );
        let mut namer = workload::Namer::new(host_root);
        for p in &mut processes {
            p.workload = namer.of_process(proc_root, p.pid);
        }
        // Connections never accepted (and orphans) have no process: their
        // cgroup, the listener's, is the only link to a workload.
        let unowned_cgroups: FxHashSet<u64> = sockets
            .iter()
            .filter(|s| s.inode() == 0)
            .filter_map(Socket::cgroup_id)
            .collect();
        let cgroups = cgroup::paths(proc_root, host_root, &unowned_cgroups);
        let text = |rel: &str| {
            std::fs::read_to_string(proc_root.join(rel))
                .ok()
                .map(|s| s.trim().to_string())
        };
        let meta = Meta {
            taken_at_ms,
            duration_ms: 0,
            host: text("sys/kernel/hostname"),
            kernel_release: text("sys/kernel/osrelease"),
            netns,
            source,
            connleak_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let mut snapshot = Snapshot {
            snapshot_version: SNAPSHOT_VERSION,
            meta,
            sockets,
            processes,
            kernel,
            unreadable,
            cgroups,
        };
        snapshot.meta.duration_ms =
            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        snapshot
    }

    /// The fd iterator, loaded at the first call where `--fd-scan auto`
    /// allows it and `/proc` under the host root is a real procfs (not a
    /// copy, as in tests, of which the iterator would know nothing).
    fn fd_iter(&self, proc_root: &Path) -> Option<&FdIter> {
        self.fd_iter
            .get_or_init(|| {
                let why_not = if self.fd_scan == FdScan::Proc {
                    "--fd-scan proc".to_string()
                } else if !fd_iter::is_procfs(proc_root) {
                    format!("{} is not a procfs", proc_root.display())
                } else {
                    match timings::phase("fd iterator load", || FdIter::load(proc_root)) {
                        Ok(iterator) => {
                            timings::note("fd tables read by a BPF task-file iterator");
                            return Some(iterator);
                        }
                        Err(e) => format!("no fd iterator: {e}"),
                    }
                };
                timings::note(&format!("fd tables read from /proc: {why_not}"));
                None
            })
            .as_ref()
    }
}

/// The inodes of the snapshot's sockets, and of those whose owners' threads
/// are worth reading.
fn inodes(sockets: &[Socket]) -> (DenseSet, FxHashSet<u64>) {
    // One pass over the (large) socket records; the set is built from the dense copy.
    let mut held = Vec::with_capacity(sockets.len());
    let mut wants_tasks = FxHashSet::default();
    for s in sockets.iter().filter(|s| s.inode() != 0) {
        held.push(s.inode());
        if has_unread_data(s) {
            wants_tasks.insert(s.inode());
        }
    }
    (DenseSet::new(held.iter().copied()), wants_tasks)
}

/// A socket whose owner's threads are worth reading: requests waiting unread,
/// connections waiting to be accepted, or data stuck behind a peer's closed
/// window (its writers block in write/sendto).
fn has_unread_data(s: &Socket) -> bool {
    s.inode() != 0
        && (s.has_unread_request()
            || (s.state() == TcpState::Listen && s.recv_q() > 0)
            || (s.send_q() > 0 && s.timer() == crate::snapshot::Timer::ZeroWindowProbe))
}

fn read_sockets(
    choice: SourceChoice,
    proc_root: &Path,
    unreadable: &mut Unreadable,
) -> Result<(Vec<Socket>, SocketSource), CollectError> {
    match choice {
        SourceChoice::Netlink => Ok(from_netlink(proc_root, unreadable)?),
        SourceChoice::Proc => Ok((proc_net_tables(proc_root)?, SocketSource::ProcNet)),
        SourceChoice::Auto => match from_netlink(proc_root, unreadable) {
            Ok(found) => Ok(found),
            Err(netlink_err) => match proc_net_tables(proc_root) {
                Ok(sockets) => {
                    unreadable.note(
                        "sock_diag",
                        format!("{netlink_err}; used /proc/net/tcp instead (no socket ages)"),
                    );
                    Ok((sockets, SocketSource::ProcNet))
                }
                Err(proc_err) => Err(CollectError::Neither {
                    netlink: netlink_err.to_string(),
                    proc: proc_err.to_string(),
                }),
            },
        },
    }
}

fn from_netlink(
    proc_root: &Path,
    unreadable: &mut Unreadable,
) -> Result<(Vec<Socket>, SocketSource), sock_diag::SockDiagError> {
    let dump = sock_diag::dump(kernel::socket_count_hint(proc_root))?;
    for note in &dump.notes {
        unreadable.note("sock_diag", note);
    }
    Ok((dump.sockets, SocketSource::SockDiag))
}

fn proc_net_tables(proc_root: &Path) -> Result<Vec<Socket>, CollectError> {
    let mut sockets = Vec::new();
    for (file, required) in [("tcp", true), ("tcp6", false)] {
        let path: PathBuf = proc_root.join("thread-self/net").join(file);
        let shown = path.display().to_string();
        match std::fs::File::open(&path) {
            Ok(f) => proc_net::parse(&shown, BufReader::new(f), &mut sockets)?,
            // No tcp6 is a kernel without IPv6.
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(CollectError::ProcNet {
                    path: shown,
                    source,
                });
            }
        }
    }
    Ok(sockets)
}

/// The network namespace of this thread, and its `ip netns` name if it has
/// one (from `names`, by inode, when they were read already).
fn netns(proc_root: &Path, host_root: &Path, names: Option<&FxHashMap<u64, String>>) -> Netns {
    let inode = std::fs::metadata(proc_root.join("thread-self/ns/net"))
        .ok()
        .map(|m| m.ino());
    let name = inode.and_then(|ino| match names {
        Some(names) => names.get(&ino).cloned(),
        None => netns::names(host_root).remove(&ino),
    });
    // The initial namespace has a fixed inode (PROC_NET_INIT_INO, since
    // Linux 3.8): any other is a namespace created since boot, whether or
    // not pid 1's may be read.
    const INIT_NET_INODE: u64 = 0xEFFF_FFF9;
    let initial = inode.map(|ino| ino == INIT_NET_INODE);
    Netns {
        inode,
        name,
        initial,
    }
}

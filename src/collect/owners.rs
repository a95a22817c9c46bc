//! Which process holds which socket: the fd-table scan.
//!
//! The kernel's socket table names no processes; the only link is the socket
//! inode that `/proc/PID/fd/N` points at (`socket:[INODE]`). This scan is the
//! hot path on a busy host (hundreds of thousands of fds). Where the kernel
//! and privileges allow, each process's table is read whole by a BPF
//! task-file iterator ([`super::fd_iter`]), a fraction of the cost and with
//! no dentries created on a cold cache; otherwise, it spends one
//! `readlinkat` per fd on an open directory fd, with no allocation per fd.
//! Either way the work is spread over the available cores. Only processes
//! that hold a TCP socket of the snapshot, or a TCP socket the kernel
//! already closed (see [`super::unreleased`]), are kept, and only then are
//! their names, limits and thread counts read. A process that exits
//! mid-scan or that we may not read is counted, never fatal and never
//! silently dropped. `status` and `limits` are read for the one or two
//! fields used, not through procfs, whose parsers fail a whole file for one
//! field an older or newer kernel lacks.

use super::dense::DenseSet;
use super::fd_iter::FdIter;
use super::parallel::on_threads;
use super::procfs::{cmdline_text, lossless_text, open_files_limit, socket_inode, trim_newline};
use crate::snapshot::{Process, Unreadable};
use crate::timings;
use rustc_hash::{FxHashMap, FxHashSet};
use rustix::fs::{AtFlags, Dir, Mode, OFlags, openat, readlinkat_raw, statat};
use rustix::io::Errno;
use std::ffi::CStr;
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Mutex;

/// Upper bound on scanning threads; more does not help a two-socket-syscall loop.
const MAX_THREADS: usize = 4;

/// Fds of one table that one thread reads at a time: a process holding most
/// of the host's fds is read by every scanning thread, not by one.
const SLICE: u64 = 8192;

/// The outcome of reading one process's fd table.
#[derive(Clone)]
enum Scan {
    /// Fd count and the sockets (of any kind) among them: (fd, inode).
    Read {
        fds: u32,
        sockets: Vec<(u32, u64)>,
    },
    Denied,
    Vanished,
}

impl Scan {
    /// The socket fds (of any kind) of a table read.
    fn sockets(&self) -> usize {
        match self {
            Scan::Read { sockets, .. } => sockets.len(),
            Scan::Denied | Scan::Vanished => 0,
        }
    }
}

/// What one `stat` or two tell of a process before its fd table is read.
enum Probe {
    /// Worth scanning; about this many fds (0: the kernel does not say),
    /// in this network namespace (`None`: not asked, or not told).
    Scan {
        fds: u64,
        netns: Option<u64>,
    },
    /// In none any more (it exited).
    Skip,
    Failed(Scan),
}

/// Whose network namespace a scan compares, and with what.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    /// Every process, wherever it is: none is compared.
    Any,
    /// Only the processes of this namespace (its `ns/net` inode).
    Only(u64),
    /// Every process, each placed in its namespace.
    Each,
}

/// Every process's fd table, as read: the first half of the owner scan,
/// which needs no socket table and so runs while the kernel dumps it.
pub struct FdTables<'a> {
    scans: Vec<(u32, Scan)>,
    /// The fd iterator the tables were read with, if any: it also reads
    /// the sockets the kernel closed.
    iterator: Option<&'a FdIter>,
    /// Why `/proc` itself could not be listed, if it could not.
    failed: Option<(String, String)>,
}

/// Reads the fd table of every process under `proc_root` that is in the
/// network namespace `netns` (its `ns/net` inode; `None`: every process),
/// on several threads. Socket inodes are a counter shared by every
/// namespace (and by pipes) that wraps, so an fd of another namespace's
/// process can name the same inode as a socket of this one: such processes
/// are never owners here, and not scanning them is also the speed win on a
/// host of containers. Kernel threads (no fds) are skipped too, and the
/// largest fd tables go first, so that the threads end together. Each
/// table is read by `iterator` when there is one, else from `/proc`.
pub fn scan_fd_tables<'a>(
    proc_root: &Path,
    netns: Option<u64>,
    iterator: Option<&'a FdIter>,
) -> FdTables<'a> {
    let place = netns.map_or(Place::Any, Place::Only);
    let (scans, failed) = scan(proc_root, place, iterator);
    FdTables {
        scans: scans
            .into_iter()
            .map(|(pid, _, scan)| (pid, scan))
            .collect(),
        iterator,
        failed,
    }
}

/// Every process's fd table, read once for all the network namespaces of
/// `--all-netns`, each process placed in its namespace: one scan instead of
/// one per namespace (each of which would `stat` every process to find its
/// own). [`HostTables::take`] hands each namespace its share.
pub struct HostTables<'a> {
    /// The tables of the processes placed in each namespace, by its inode.
    by_netns: Mutex<FxHashMap<u64, Vec<(u32, Scan)>>>,
    /// Processes that could not be placed (their namespace link was denied,
    /// or their table could not be read): every namespace's scan reads them.
    unplaced: Vec<(u32, Scan)>,
    iterator: Option<&'a FdIter>,
    failed: Option<(String, String)>,
}

/// Reads the fd table of every process under `proc_root`, placed in its
/// network namespace, on several threads (as [`scan_fd_tables`] does).
pub fn scan_host_fd_tables<'a>(proc_root: &Path, iterator: Option<&'a FdIter>) -> HostTables<'a> {
    let (scans, failed) = scan(proc_root, Place::Each, iterator);
    let mut by_netns: FxHashMap<u64, Vec<(u32, Scan)>> = FxHashMap::default();
    let mut unplaced = Vec::new();
    for (pid, netns, scan) in scans {
        match netns {
            Some(ns) => by_netns.entry(ns).or_default().push((pid, scan)),
            None => unplaced.push((pid, scan)),
        }
    }
    HostTables {
        by_netns: Mutex::new(by_netns),
        unplaced,
        iterator,
        failed,
    }
}

impl<'a> HostTables<'a> {
    /// The pids placed in each namespace, and how many socket fds (of any
    /// kind) each of them holds.
    pub fn sockets_by_netns(&self) -> Vec<(u64, Vec<(u32, usize)>)> {
        let by_netns = self.by_netns.lock().unwrap_or_else(|e| e.into_inner());
        by_netns
            .iter()
            .map(|(&ns, scans)| {
                let pids = scans
                    .iter()
                    .map(|(pid, scan)| (*pid, scan.sockets()))
                    .collect();
                (ns, pids)
            })
            .collect()
    }

    /// Namespace `netns`'s share, as a scan of that namespace alone would
    /// have read it; handed out once (a second time, only the unplaced).
    pub fn take(&self, netns: Option<u64>) -> FdTables<'a> {
        let mut scans = netns
            .and_then(|ns| {
                let mut by_netns = self.by_netns.lock().unwrap_or_else(|e| e.into_inner());
                by_netns.remove(&ns)
            })
            .unwrap_or_default();
        scans.extend(self.unplaced.iter().map(|(pid, scan)| (*pid, scan.clone())));
        FdTables {
            scans,
            iterator: self.iterator,
            failed: self.failed.clone(),
        }
    }
}

/// Probes every process under `proc_root`, keeps those `place` wants, and
/// reads their fd tables: (pid, its namespace if placed, its table), and
/// why `/proc` itself could not be listed, if it could not.
#[allow(clippy::type_complexity)]
fn scan(
    proc_root: &Path,
    place: Place,
    iterator: Option<&FdIter>,
) -> (Vec<(u32, Option<u64>, Scan)>, Option<(String, String)>) {
    let failed = |e: Errno| {
        (
            Vec::new(),
            Some((proc_root.display().to_string(), e.to_string())),
        )
    };
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let proc_dir = match openat(rustix::fs::CWD, proc_root, dir_flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(e) => return failed(e),
    };
    let pids = match list_pids(&proc_dir) {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_THREADS);
    let counted = reports_fd_counts(&proc_dir);
    let mut scans = Vec::with_capacity(pids.len());
    let mut todo = Vec::with_capacity(pids.len());
    let mut placed = FxHashMap::default();
    for (pid, probed) in on_threads(threads, &pids, |&pid| {
        (pid, probe(&proc_dir, pid, place != Place::Any, counted))
    }) {
        match probed {
            Probe::Scan {
                netns: Some(theirs),
                ..
            } if matches!(place, Place::Only(ours) if ours != theirs) => {}
            Probe::Scan { fds, netns } => {
                todo.push((fds, pid));
                placed.insert(pid, netns);
            }
            Probe::Skip => {}
            Probe::Failed(scan) => scans.push((pid, None, scan)),
        }
    }
    todo.sort_unstable_by(|a, b| b.cmp(a));
    // The iterator reads a table whole: no slices for it.
    let slice = if iterator.is_some() { u64::MAX } else { SLICE };
    scans.extend(
        scan_all(&proc_dir, &todo, threads, slice, iterator)
            .into_iter()
            .map(|(pid, scan)| (pid, placed.get(&pid).copied().flatten(), scan)),
    );
    (scans, None)
}

/// Whether `stat` of `/proc/PID/fd` gives the number of open fds (Linux
/// 6.2 and later): this thread's own table is never empty.
fn reports_fd_counts(proc_dir: &OwnedFd) -> bool {
    statat(proc_dir, "thread-self/fd", AtFlags::empty()).is_ok_and(|st| st.st_size > 0)
}

/// `stat`s a process: its namespace when `place` (`None` when the link is
/// denied), and its fd count when the kernel gives it.
fn probe(proc_dir: &OwnedFd, pid: u32, place: bool, counted: bool) -> Probe {
    let mut netns = None;
    if place {
        match statat(proc_dir, format!("{pid}/ns/net"), AtFlags::empty()) {
            Ok(st) => netns = Some(st.st_ino),
            // A namespace link can be denied where the fd table is not (an
            // init of another user namespace, an LSM): scan it, as before
            // namespaces were compared, and let the fd table say.
            Err(Errno::ACCESS | Errno::PERM) => {}
            // Exited before it could be placed (a zombie has no namespace and
            // no fds): it held nothing of this namespace's that we would miss,
            // and counting it would count it in every namespace.
            Err(Errno::NOENT | Errno::SRCH) => return Probe::Skip,
            Err(e) => return Probe::Failed(classify(e)),
        }
    }
    if !counted {
        return Probe::Scan { fds: 0, netns };
    }
    // Zero is a kernel thread's empty table, or one the kernel will not
    // count for us (ptrace access denied, even to root under some LSMs and
    // user namespaces): listing it tells them apart.
    match statat(proc_dir, format!("{pid}/fd"), AtFlags::empty()) {
        Ok(st) => Probe::Scan {
            fds: u64::try_from(st.st_size).unwrap_or(0),
            netns,
        },
        Err(e) => Probe::Failed(classify(e)),
    }
}

/// The second half: keeps the processes that hold one of `tcp_inodes` (and
/// only those inodes), reads their names and limits, and counts the rest of
/// what could not be read.
pub fn owners(
    proc_root: &Path,
    tables: FdTables,
    tcp_inodes: &DenseSet,
    wants_tasks: &FxHashSet<u64>,
    unreadable: &mut Unreadable,
) -> Vec<Process> {
    if let Some((what, error)) = tables.failed {
        unreadable.note(what, error);
    }
    if let Some(hidden) = hidden_processes(proc_root) {
        unreadable.note(proc_root.display().to_string(), hidden);
    }
    let probe = super::unreleased::Probe::new(proc_root);
    let mut processes = Vec::new();
    let mut with_tasks = FxHashSet::default();
    timings::phase("owners", || {
        for (pid, scan) in tables.scans {
            match scan {
                Scan::Denied => unreadable.processes_denied += 1,
                Scan::Vanished => unreadable.processes_vanished += 1,
                Scan::Read { fds, mut sockets } => {
                    let inodes: Vec<u64> = sockets
                        .iter()
                        .map(|&(_, i)| i)
                        .filter(|&i| tcp_inodes.contains(i))
                        .collect();
                    sockets.retain(|&(_, i)| !tcp_inodes.contains(i));
                    let (closed_tcp_fds, closed_tcp) = probe.closed(pid, &sockets, tables.iterator);
                    if inodes.is_empty() && closed_tcp_fds == 0 {
                        continue;
                    }
                    if inodes.iter().any(|i| wants_tasks.contains(i)) {
                        with_tasks.insert(pid);
                    }
                    match describe(proc_root, pid, fds, inodes) {
                        Some(p) => processes.push(Process {
                            closed_tcp_fds,
                            closed_tcp,
                            ..p
                        }),
                        None => unreadable.processes_vanished += 1,
                    }
                }
            }
        }
    });
    timings::phase("threads", || {
        for p in processes.iter_mut().filter(|p| with_tasks.contains(&p.pid)) {
            p.tasks = super::tasks::read(&proc_root.join(p.pid.to_string()));
        }
    });
    processes.sort_by_key(|p| p.pid);
    processes
}

/// Why other users' processes are missing from `proc_root`, when it is
/// mounted with `hidepid` and connleak may not see through it: they are not
/// denied but absent, so nothing else would count them.
fn hidden_processes(proc_root: &Path) -> Option<String> {
    let sees_all = rustix::thread::capabilities(None).is_ok_and(|c| {
        c.effective
            .contains(rustix::thread::CapabilitySet::SYS_PTRACE)
    });
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mode = hidepid(&mountinfo, &proc_root.to_string_lossy()).filter(|_| !sees_all)?;
    Some(format!(
        "mounted with hidepid={mode}: other users' processes are hidden, so the owners of \
         their sockets are unknown"
    ))
}

/// The `hidepid` mode of the proc mount at `mount_point` in a
/// `/proc/self/mountinfo` text, unless it hides nothing.
fn hidepid<'a>(mountinfo: &'a str, mount_point: &str) -> Option<&'a str> {
    let line = mountinfo.lines().rev().find(|l| {
        let mut fields = l.split(' ');
        fields.nth(4) == Some(mount_point)
            && l.split(" - ")
                .nth(1)
                .is_some_and(|t| t.starts_with("proc "))
    })?;
    let options = line.split(" - ").nth(1)?.split(' ').nth(2)?;
    options
        .split(',')
        .find_map(|o| o.strip_prefix("hidepid="))
        .filter(|m| !matches!(*m, "0" | "off"))
}

fn list_pids(proc_dir: &OwnedFd) -> rustix::io::Result<Vec<u32>> {
    let mut pids = Vec::new();
    for entry in Dir::read_from(proc_dir)? {
        let entry = entry?;
        if let Some(pid) = entry.file_name().to_str().ok().and_then(|n| n.parse().ok()) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

fn classify(e: Errno) -> Scan {
    if e == Errno::ACCESS || e == Errno::PERM {
        Scan::Denied
    } else {
        // ENOENT, ESRCH: the process exited; anything else we also cannot read now.
        Scan::Vanished
    }
}

/// Reads the fd table of `pid`, of about `expected` fds (0: unknown).
///
/// Listing `/proc/PID/fd` costs the kernel a dentry lookup per fd (and on a
/// cold cache a new dentry and inode) before each link is even read. When
/// the kernel says how many fds are open, they are read by number instead,
/// from 0 up, until that many were found: one lookup per fd. A table with
/// more holes than a few (fds closed meanwhile, or a few high numbers) is
/// listed for the numbers not tried yet, so nothing is missed.
fn scan_fds(proc_dir: &OwnedFd, pid: u32, expected: u64) -> Scan {
    let fd_dir = match open_fd_dir(proc_dir, pid) {
        Ok(fd) => fd,
        Err(e) => return classify(e),
    };
    let mut table = Table::default();
    let mut tried = 0u32;
    let mut holes = 0u64;
    let hole_budget = expected / 8 + 64;
    while u64::from(table.fds) < expected && holes <= hole_budget {
        let mut name = [0u8; 12];
        match table.read(&fd_dir, fd_name(tried, &mut name), tried) {
            Ok(true) => {}
            Ok(false) => holes += 1,
            Err(e) => return classify(e),
        }
        tried += 1;
    }
    if expected > 0 && u64::from(table.fds) >= expected {
        return table.into_scan();
    }
    match table.list_from(&fd_dir, tried) {
        Ok(()) => table.into_scan(),
        Err(e) => classify(e),
    }
}

fn open_fd_dir(proc_dir: &OwnedFd, pid: u32) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    openat(proc_dir, format!("{pid}/fd"), flags, Mode::empty())
}

/// Reads the tables of `todo` (fd count, pid) on `threads` threads: small
/// ones whole, big ones as slices of `slice` fd numbers (from /proc), each
/// slice a share of work of its own, put together afterwards; with the fd
/// iterator, tables no larger than `slice` are read by it.
fn scan_all(
    proc_dir: &OwnedFd,
    todo: &[(u64, u32)],
    threads: usize,
    slice: u64,
    iterator: Option<&FdIter>,
) -> Vec<(u32, Scan)> {
    let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    let work: Vec<(u32, u64, Option<Range<u32>>)> = todo
        .iter()
        .flat_map(|&(fds, pid)| {
            let slices = if fds > slice { fds.div_ceil(slice) } else { 1 };
            (0..slices).map(move |k| {
                let range =
                    (slices > 1).then(|| clamp(k * slice)..clamp(((k + 1) * slice).min(fds)));
                (pid, fds, range)
            })
        })
        .collect();
    let parts = on_threads(threads, &work, |(pid, fds, range)| {
        let scan = match (range, iterator) {
            (None, Some(it)) => it.table(*pid).map_or_else(
                // Whatever failed, /proc tells whether the process is still there.
                |_| scan_fds(proc_dir, *pid, *fds),
                |t| Scan::Read {
                    fds: t.fds,
                    sockets: t.sockets,
                },
            ),
            (None, None) => scan_fds(proc_dir, *pid, *fds),
            (Some(r), _) => scan_slice(proc_dir, *pid, r.clone()),
        };
        (*pid, *fds, range.is_some(), scan)
    });
    let mut scans = Vec::with_capacity(todo.len());
    let mut sliced: FxHashMap<u32, (u64, Scan)> = FxHashMap::default();
    for (pid, fds, is_slice, scan) in parts {
        if !is_slice {
            scans.push((pid, scan));
            continue;
        }
        let empty = Scan::Read {
            fds: 0,
            sockets: Vec::new(),
        };
        let (_, so_far) = sliced.entry(pid).or_insert((fds, empty));
        *so_far = combine(std::mem::replace(so_far, Scan::Vanished), scan);
    }
    for (pid, (expected, scan)) in sliced {
        scans.push((pid, finish(proc_dir, pid, expected, scan)));
    }
    scans
}

fn scan_slice(proc_dir: &OwnedFd, pid: u32, numbers: Range<u32>) -> Scan {
    let fd_dir = match open_fd_dir(proc_dir, pid) {
        Ok(fd) => fd,
        Err(e) => return classify(e),
    };
    let mut table = Table::default();
    for n in numbers {
        let mut name = [0u8; 12];
        if let Err(e) = table.read(&fd_dir, fd_name(n, &mut name), n) {
            return classify(e);
        }
    }
    table.into_scan()
}

/// Two slices of one table together; a slice that failed fails the table.
fn combine(a: Scan, b: Scan) -> Scan {
    match (a, b) {
        (
            Scan::Read {
                fds: f1,
                sockets: mut s1,
            },
            Scan::Read {
                fds: f2,
                sockets: s2,
            },
        ) => {
            s1.extend(s2);
            Scan::Read {
                fds: f1 + f2,
                sockets: s1,
            }
        }
        (Scan::Read { .. }, failed) | (failed, _) => failed,
    }
}

/// A sliced table that came out short of its count has holes: the numbers
/// past the slices are listed, so that nothing is missed.
fn finish(proc_dir: &OwnedFd, pid: u32, expected: u64, scan: Scan) -> Scan {
    let Scan::Read { fds, sockets } = scan else {
        return scan;
    };
    let mut table = Table { fds, sockets };
    if u64::from(fds) >= expected {
        return table.into_scan();
    }
    let tried = u32::try_from(expected).unwrap_or(u32::MAX);
    match open_fd_dir(proc_dir, pid).and_then(|d| table.list_from(&d, tried)) {
        Ok(()) => table.into_scan(),
        Err(e) => classify(e),
    }
}

/// What a scan has found of one fd table so far.
#[derive(Default)]
struct Table {
    fds: u32,
    /// (fd, inode) of the sockets; the number is kept to look a socket up again.
    sockets: Vec<(u32, u64)>,
}

impl Table {
    /// Reads the link of fd `fd` (named `name`): `true` (and counted) when
    /// it is open, `false` when it is not; an error when the table may not
    /// be read (a directory we may list, of links we may not follow).
    fn read(&mut self, fd_dir: &OwnedFd, name: &CStr, fd: u32) -> rustix::io::Result<bool> {
        let mut link = [0u8; 64];
        let len = match readlinkat_raw(fd_dir, name, &mut link[..]) {
            Ok(len) => len,
            Err(e @ (Errno::ACCESS | Errno::PERM)) => return Err(e),
            Err(_) => return Ok(false),
        };
        self.fds += 1;
        if let Some(inode) = socket_inode(&link[..len.min(link.len())]) {
            self.sockets.push((fd, inode));
        }
        Ok(true)
    }

    /// Lists the table and reads every fd numbered `tried` or more.
    fn list_from(&mut self, fd_dir: &OwnedFd, tried: u32) -> rustix::io::Result<()> {
        for entry in Dir::read_from(fd_dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let number = std::str::from_utf8(name.to_bytes())
                .ok()
                .and_then(|n| n.parse::<u32>().ok());
            let Some(number) = number.filter(|&n| n >= tried) else {
                continue; // `.`, `..`, or read by number already
            };
            // A link that fails to read is an fd closed since the listing: counted, not a socket.
            if !self.read(fd_dir, name, number)? {
                self.fds += 1;
            }
        }
        Ok(())
    }

    fn into_scan(self) -> Scan {
        Scan::Read {
            fds: self.fds,
            sockets: self.sockets,
        }
    }
}

/// `n` as a NUL-terminated decimal name, written into `buf`, with no allocation.
fn fd_name(mut n: u32, buf: &mut [u8; 12]) -> &CStr {
    let mut at = buf.len() - 1; // buf[11] stays NUL
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    CStr::from_bytes_with_nul(&buf[at..]).unwrap_or_default()
}

/// Reads the rest of what the report shows of a socket-holding process
/// (its threads are read after, for the few that need them); `None` when it
/// exited meanwhile.
fn describe(proc_root: &Path, pid: u32, fds: u32, socket_inodes: Vec<u64>) -> Option<Process> {
    let dir = proc_root.join(pid.to_string());
    let comm = std::fs::read(dir.join("comm")).ok()?;
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
    let status_field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    let limits = std::fs::read_to_string(dir.join("limits")).unwrap_or_default();
    let (fd_soft_limit, fd_hard_limit) = open_files_limit(&limits);
    let runtime = super::runtime::detect(&dir);
    Some(Process {
        pid,
        ppid: status_field("PPid"),
        comm: lossless_text(trim_newline(&comm)),
        cmdline: lossless_text(&cmdline_text(&cmdline)),
        uid: status_field("Uid"),
        threads: status_field("Threads"),
        fds,
        fd_soft_limit,
        fd_hard_limit,
        tasks: Vec::new(),
        socket_inodes,
        workload: None,
        runtime,
        libraries: super::libraries::detect(&dir, runtime),
        closed_tcp_fds: 0,
        closed_tcp: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, symlink};

    #[test]
    fn fd_names_are_decimal() {
        let mut buf = [0u8; 12];
        assert_eq!(fd_name(0, &mut buf).to_bytes(), b"0");
        assert_eq!(fd_name(4_294_967_295, &mut buf).to_bytes(), b"4294967295");
        assert_eq!(fd_name(1024, &mut buf).to_bytes(), b"1024");
    }

    /// A child killed when the test ends, pass or fail.
    struct Child(std::process::Child);

    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Reading fds by number, whole or in slices, finds what listing them
    /// finds, holes and a far-off fd included.
    #[test]
    fn by_number_and_by_listing_agree() -> std::io::Result<()> {
        use std::io::BufRead;
        let script = "import os, socket, time\n\
                      s = [socket.socket() for _ in range(6)]\n\
                      for x in s[1:3]: os.close(x.detach())\n\
                      os.dup2(s[0].fileno(), 5000)\n\
                      print('ok', flush=True)\n\
                      time.sleep(60)\n";
        let Ok(child) = std::process::Command::new("python3")
            .args(["-c", script])
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            return Ok(()); // no python3: nothing to compare with
        };
        let mut child = Child(child);
        let mut line = String::new();
        if let Some(out) = child.0.stdout.take() {
            let _ = std::io::BufReader::new(out).read_line(&mut line);
        }
        assert_eq!(line, "ok\n");
        let pid = child.0.id();
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let proc_dir = openat(rustix::fs::CWD, "/proc", flags, Mode::empty())?;
        let expected = match probe(&proc_dir, pid, false, reports_fd_counts(&proc_dir)) {
            Probe::Scan { fds, .. } => fds,
            _ => panic!("the child is there"),
        };
        let read = |expected| match scan_fds(&proc_dir, pid, expected) {
            Scan::Read { fds, mut sockets } => {
                sockets.sort_unstable();
                (fds, sockets)
            }
            _ => panic!("the child is readable"),
        };
        let (by_number, listed) = (read(expected), read(0));
        assert_eq!(by_number, listed);
        // In slices of 2 fds on 2 threads, as a big table is read: the same.
        let mut sliced = scan_all(&proc_dir, &[(expected, pid)], 2, 2, None);
        assert_eq!(sliced.len(), 1);
        let Some((_, Scan::Read { fds, mut sockets })) = sliced.pop() else {
            panic!("the child is readable")
        };
        sockets.sort_unstable();
        assert_eq!((fds, sockets), listed);
        assert_eq!(listed.1.len(), 5, "4 sockets, one of them twice");
        assert!(expected == 0 || u64::from(by_number.0) == expected);
        Ok(())
    }

    #[test]
    fn hidepid_is_read_from_mountinfo() {
        let info = "22 27 0:21 / /proc rw,relatime - proc proc rw,hidepid=invisible\n\
                    30 22 0:30 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw\n";
        assert_eq!(hidepid(info, "/proc"), Some("invisible"));
        assert_eq!(hidepid(info, "/tmp/proc"), None);
        let plain = "22 27 0:21 / /proc rw,relatime - proc proc rw\n";
        assert_eq!(hidepid(plain, "/proc"), None);
        let off = "22 27 0:21 / /proc rw - proc proc rw,hidepid=0\n";
        assert_eq!(hidepid(off, "/proc"), None);
        // The last mount over a point is the one in effect.
        let remounted = format!("{plain}40 27 0:40 / /proc rw - proc proc rw,hidepid=2\n");
        assert_eq!(hidepid(&remounted, "/proc"), Some("2"));
    }

    /// A fake /proc with one socket-holding process, one without TCP
    /// sockets, one gone once placed in this namespace (counted), one gone
    /// before (of no namespace: not counted), and one in another network
    /// namespace whose fd names the same inode: only the first is an owner.
    #[test]
    fn scans_a_fake_proc_tree() -> std::io::Result<()> {
        let root = std::env::temp_dir().join(format!("connleak-owners-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let p = root.join("100");
        std::fs::create_dir_all(p.join("fd"))?;
        symlink("socket:[7]", p.join("fd/3"))?;
        symlink("socket:[8]", p.join("fd/4"))?;
        symlink("/dev/null", p.join("fd/0"))?;
        std::fs::write(p.join("comm"), "srv\n")?;
        std::fs::write(p.join("cmdline"), "srv\0--port\x007001\0")?;
        std::fs::write(
            p.join("status"),
            "Name:\tsrv\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t100\nNgid:\t0\nPid:\t100\nPPid:\t1\n\
             TracerPid:\t0\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nFDSize:\t64\n\
             Groups:\t\nThreads:\t5\n",
        )?;
        std::fs::write(
            p.join("limits"),
            "Limit                     Soft Limit           Hard Limit           Units     \n\
             Max open files            256                  4096                 files     \n",
        )?;
        let q = root.join("200");
        std::fs::create_dir_all(q.join("fd"))?;
        symlink("socket:[99]", q.join("fd/5"))?;
        std::fs::create_dir_all(root.join("300"))?; // no fd dir: exited
        std::fs::create_dir_all(root.join("500"))?; // not even a namespace: exited before
        let other = root.join("400");
        std::fs::create_dir_all(other.join("fd"))?;
        symlink("socket:[7]", other.join("fd/3"))?;
        std::fs::write(other.join("comm"), "elsewhere\n")?;
        // Namespaces as files: the same inode (a hard link) is the same namespace.
        let ours = root.join("thread-self/ns/net");
        std::fs::create_dir_all(root.join("thread-self/ns"))?;
        std::fs::write(&ours, "")?;
        for pid in ["100", "200", "300", "400"] {
            std::fs::create_dir_all(root.join(pid).join("ns"))?;
        }
        std::fs::hard_link(&ours, p.join("ns/net"))?;
        std::fs::hard_link(&ours, q.join("ns/net"))?;
        std::fs::hard_link(&ours, root.join("300/ns/net"))?;
        std::fs::write(other.join("ns/net"), "")?;
        let netns = std::fs::metadata(&ours)?.ino();
        let tcp = DenseSet::new([7, 9].into_iter());
        let mut unreadable = Unreadable::default();
        let none = FxHashSet::default();
        let tables = scan_fd_tables(&root, Some(netns), None);
        let procs = owners(&root, tables, &tcp, &none, &mut unreadable);
        let mut ignored = Unreadable::default();
        let tables = scan_fd_tables(&root, None, None);
        let everyone = owners(&root, tables, &tcp, &none, &mut ignored);
        std::fs::remove_dir_all(&root)?;
        assert_eq!(procs.len(), 1);
        let srv = &procs[0];
        assert_eq!((srv.pid, srv.comm.as_str(), srv.fds), (100, "srv", 3));
        assert_eq!(srv.cmdline, "srv --port 7001");
        assert_eq!(srv.socket_inodes, vec![7]);
        assert_eq!(srv.ppid, Some(1));
        assert_eq!((srv.uid, srv.threads), (Some(1000), Some(5)));
        assert_eq!(
            (srv.fd_soft_limit, srv.fd_hard_limit),
            (Some(256), Some(4096))
        );
        assert_eq!(unreadable.processes_vanished, 1);
        // Without a namespace to compare with, the other one's process would be an owner too.
        let pids: Vec<u32> = everyone.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [100, 400]);
        Ok(())
    }
}

//! Which process holds which socket: the `/proc/PID/fd` scan.
//!
//! The kernel's socket table names no processes; the only link is the socket
//! inode that `/proc/PID/fd/N` points at (`socket:[INODE]`). This scan is the
//! hot path on a busy host (hundreds of thousands of fds), so it spends one
//! `readlinkat` per fd on an open directory fd, with no allocation per fd,
//! spread over the available cores. Only processes that hold a TCP socket of
//! the snapshot, or a TCP socket the kernel already closed (see
//! [`super::unreleased`]), are kept, and only then are their names, limits
//! and thread counts read. A process that exits mid-scan or that we may not read is
//! counted, never fatal and never silently dropped. `status` and `limits` are
//! read for the one or two fields used, not through procfs, whose parsers
//! fail a whole file for one field an older or newer kernel lacks.

use crate::snapshot::{Process, Unreadable};
use rustc_hash::FxHashSet;
use rustix::fs::{Dir, Mode, OFlags, openat, readlinkat_raw};
use rustix::io::Errno;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Upper bound on scanning threads; more does not help a two-socket-syscall loop.
const MAX_THREADS: usize = 4;

/// The outcome of reading one process's fd table.
enum Scan {
    /// Fd count and the sockets (of any kind) among them: (fd, inode).
    Read {
        fds: u32,
        sockets: Vec<(u32, u64)>,
    },
    Denied,
    Vanished,
}

/// Every process's fd table, as read: the first half of the owner scan,
/// which needs no socket table and so runs while the kernel dumps it.
pub struct FdTables {
    scans: Vec<(u32, Scan)>,
    /// Why `/proc` itself could not be listed, if it could not.
    failed: Option<(String, String)>,
}

/// Reads the fd table of every process under `proc_root`, on several threads.
pub fn scan_fd_tables(proc_root: &Path) -> FdTables {
    let failed = |e: Errno| FdTables {
        scans: Vec::new(),
        failed: Some((proc_root.display().to_string(), e.to_string())),
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
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(pids.len()));
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_THREADS);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&pid) = pids.get(i) else { break };
                    mine.push((pid, scan_fds(&proc_dir, pid)));
                }
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .append(&mut mine);
            });
        }
    });
    FdTables {
        scans: results.into_inner().unwrap_or_else(|e| e.into_inner()),
        failed: None,
    }
}

/// The second half: keeps the processes that hold one of `tcp_inodes` (and
/// only those inodes), reads their names and limits, and counts the rest of
/// what could not be read.
pub fn owners(
    proc_root: &Path,
    tables: FdTables,
    tcp_inodes: &FxHashSet<u64>,
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
    for (pid, scan) in tables.scans {
        match scan {
            Scan::Denied => unreadable.processes_denied += 1,
            Scan::Vanished => unreadable.processes_vanished += 1,
            Scan::Read { fds, mut sockets } => {
                let inodes: Vec<u64> = sockets
                    .iter()
                    .map(|&(_, i)| i)
                    .filter(|i| tcp_inodes.contains(i))
                    .collect();
                sockets.retain(|(_, i)| !tcp_inodes.contains(i));
                let closed_tcp_fds = probe.closed_tcp_fds(pid, &sockets);
                if inodes.is_empty() && closed_tcp_fds == 0 {
                    continue;
                }
                let with_tasks = inodes.iter().any(|i| wants_tasks.contains(i));
                match describe(proc_root, pid, fds, inodes, with_tasks) {
                    Some(p) => processes.push(Process {
                        closed_tcp_fds,
                        ..p
                    }),
                    None => unreadable.processes_vanished += 1,
                }
            }
        }
    }
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

fn scan_fds(proc_dir: &OwnedFd, pid: u32) -> Scan {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd_dir = match openat(proc_dir, format!("{pid}/fd"), flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(e) => return classify(e),
    };
    let dir = match Dir::read_from(&fd_dir) {
        Ok(d) => d,
        Err(e) => return classify(e),
    };
    let mut fds = 0u32;
    let mut sockets = Vec::new();
    let mut link = [0u8; 64];
    for entry in dir {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => return classify(e),
        };
        let name = entry.file_name();
        if name.to_bytes().starts_with(b".") {
            continue;
        }
        fds += 1;
        // A link that fails to read is an fd closed since the listing: not counted as a socket.
        let Ok(len) = readlinkat_raw(&fd_dir, name, &mut link[..]) else {
            continue;
        };
        if let Some(inode) = socket_inode(&link[..len.min(link.len())]) {
            // Fd names are numbers; the number is kept to look the socket up again.
            if let Some(fd) = fd_number(name.to_bytes()) {
                sockets.push((fd, inode));
            }
        }
    }
    Scan::Read { fds, sockets }
}

/// `socket:[12345]` → 12345.
pub(crate) fn socket_inode(link: &[u8]) -> Option<u64> {
    let digits = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// An fd directory entry's name as its number.
fn fd_number(name: &[u8]) -> Option<u32> {
    std::str::from_utf8(name).ok()?.parse().ok()
}

/// Reads the rest of what the report shows of a socket-holding process;
/// `None` when it exited meanwhile.
fn describe(
    proc_root: &Path,
    pid: u32,
    fds: u32,
    socket_inodes: Vec<u64>,
    with_tasks: bool,
) -> Option<Process> {
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
        tasks: if with_tasks {
            super::tasks::read(&dir)
        } else {
            Vec::new()
        },
        socket_inodes,
        workload: None,
        runtime: super::runtime::detect(&dir),
        closed_tcp_fds: 0,
    })
}

/// The soft and hard `Max open files` of `/proc/PID/limits`; `None` when
/// unlimited or unreadable.
pub(crate) fn open_files_limit(limits: &str) -> (Option<u64>, Option<u64>) {
    let Some(rest) = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
    else {
        return (None, None);
    };
    let mut values = rest.split_whitespace().map(|v| v.parse().ok());
    (values.next().flatten(), values.next().flatten())
}

fn trim_newline(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\n").unwrap_or(b)
}

/// `/proc/PID/cmdline` separates arguments with NUL; show them with spaces.
pub(crate) fn cmdline_text(raw: &[u8]) -> Vec<u8> {
    let trimmed = raw.strip_suffix(b"\0").unwrap_or(raw);
    trimmed
        .iter()
        .map(|&b| if b == 0 { b' ' } else { b })
        .collect()
}

/// Text as the process set it: valid UTF-8 kept as is (control characters
/// included: renderers escape them), invalid bytes written as `\xNN`.
pub fn lossless_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn socket_links_parse() {
        assert_eq!(socket_inode(b"socket:[4242]"), Some(4242));
        assert_eq!(socket_inode(b"pipe:[4242]"), None);
        assert_eq!(socket_inode(b"socket:[42"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
    }

    #[test]
    fn text_keeps_what_the_process_set() {
        assert_eq!(lossless_text(b"java"), "java");
        assert_eq!(lossless_text(b"a\x1b[31mb"), "a\u{1b}[31mb");
        assert_eq!(lossless_text(b"bad\xff\xfe"), "bad\\xff\\xfe");
        assert_eq!(
            cmdline_text(b"python3\0-m\0http.server\0"),
            b"python3 -m http.server"
        );
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
    /// sockets, one unreadable and one gone: all accounted for.
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
        let tcp: FxHashSet<u64> = [7, 9].into_iter().collect();
        let mut unreadable = Unreadable::default();
        let none = FxHashSet::default();
        let procs = owners(&root, scan_fd_tables(&root), &tcp, &none, &mut unreadable);
        std::fs::remove_dir_all(&root)?;
        assert_eq!(procs.len(), 1);
        let srv = &procs[0];
        assert_eq!((srv.pid, srv.comm.as_str(), srv.fds), (100, "srv", 3));
        assert_eq!(srv.cmdline, "srv --port 7001");
        assert_eq!(srv.socket_inodes, vec![7]);
        assert_eq!((srv.uid, srv.threads), (Some(1000), Some(5)));
        assert_eq!(srv.ppid, Some(1));
        assert_eq!(
            (srv.fd_soft_limit, srv.fd_hard_limit),
            (Some(256), Some(4096))
        );
        assert_eq!(unreadable.processes_vanished, 1);
        Ok(())
    }
}

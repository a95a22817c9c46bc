//! What a process's threads are doing: `/proc/PID/task/TID/{comm,stat,wchan,syscall}`.
//!
//! A fixed pool whose workers all block reading idle clients looks, in the
//! socket table, like any leak: accepted connections nobody reads. The threads
//! tell it apart: which system call each is blocked in and on which fd, mapped
//! back to its socket. Read only for processes that have unread data on a
//! socket or a queued listener, with a bound on threads, because it costs four
//! reads per thread.
//! The bound never picks an arbitrary subset: runtime housekeeping threads
//! (GC, compilers) are left out by name, and the rest are taken round-robin
//! over their pools (see [`crate::threads`]), so every pool and the accept
//! thread are seen. A read with a timeout blocks in `poll`/`ppoll`, whose fd
//! is in the `pollfd` array in the process's memory: it is read from
//! `/proc/PID/mem` when allowed, else the fd stays unknown.

use crate::snapshot::Task;
use crate::threads::{is_housekeeping, stem};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Threads read per process at most.
const MAX_TASKS: usize = 1024;
/// Thread names read per process at most, to choose from.
const MAX_NAMES: usize = 16 * 1024;
/// Entries of a `pollfd` array looked at: a blocking read with a timeout polls one.
const MAX_POLLFDS: usize = 4;

/// Reads the threads of `pid`; an unreadable or vanished one is left out.
pub fn read(proc_dir: &Path) -> Vec<Task> {
    let named: Vec<(u32, String)> = names(proc_dir)
        .into_iter()
        .filter(|(_, comm)| !is_housekeeping(comm))
        .collect();
    let mem = File::open(proc_dir.join("mem")).ok();
    let mut tasks: Vec<Task> = chosen(named, MAX_TASKS)
        .into_iter()
        .filter_map(|tid| read_task(proc_dir, mem.as_ref(), tid))
        .collect();
    tasks.sort_by_key(|t| t.tid);
    tasks
}

/// (tid, name) of up to `MAX_NAMES` threads of the process at `proc_dir`;
/// an unreadable or vanished one is left out.
pub fn names(proc_dir: &Path) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir(proc_dir.join("task")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .take(MAX_NAMES)
        .filter_map(|tid| {
            let path = proc_dir.join("task").join(tid.to_string()).join("comm");
            let comm = std::fs::read(path).ok()?;
            Some((tid, super::procfs::lossless_text(comm.trim_ascii_end())))
        })
        .collect()
}

/// Up to `cap` of the threads, round-robin over their pools: the first of
/// each pool, then the second of each, and so on.
fn chosen(mut named: Vec<(u32, String)>, cap: usize) -> Vec<u32> {
    if named.len() <= cap {
        return named.into_iter().map(|(tid, _)| tid).collect();
    }
    named.sort_by_key(|(tid, _)| *tid);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut ranked: Vec<(usize, u32)> = named
        .iter()
        .map(|(tid, comm)| {
            let n = seen.entry(stem(comm)).or_insert(0);
            *n += 1;
            (*n, *tid)
        })
        .collect();
    ranked.sort_unstable();
    ranked.into_iter().take(cap).map(|(_, tid)| tid).collect()
}

fn read_task(proc_dir: &Path, mem: Option<&File>, tid: u32) -> Option<Task> {
    let dir = proc_dir.join("task").join(tid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let (comm, state) = parse_stat(&stat)?;
    let wchan = std::fs::read_to_string(dir.join("wchan"))
        .ok()
        .filter(|w| !w.is_empty() && w != "0");
    let line = std::fs::read_to_string(dir.join("syscall")).unwrap_or_default();
    let (syscall, mut fd) = parse_syscall(&line);
    if let (None, Some(mem), Some((ptr, nfds))) = (fd, mem, poll_args(&line)) {
        fd = polled_fd(proc_dir, mem, ptr, nfds);
    }
    let inode = fd.and_then(|fd| socket_of(proc_dir, fd));
    Some(Task {
        tid,
        comm: super::procfs::lossless_text(comm.as_bytes()),
        state,
        wchan,
        syscall,
        fd,
        inode,
    })
}

fn socket_of(proc_dir: &Path, fd: u32) -> Option<u64> {
    let link = std::fs::read_link(proc_dir.join("fd").join(fd.to_string())).ok()?;
    super::procfs::socket_inode(link.as_os_str().as_bytes())
}

/// The first socket among the fds of a `pollfd` array at `ptr` in the
/// process's memory.
fn polled_fd(proc_dir: &Path, mem: &File, ptr: u64, nfds: u64) -> Option<u32> {
    let n = usize::try_from(nfds).ok()?.min(MAX_POLLFDS);
    let mut buf = [0u8; 8 * MAX_POLLFDS];
    let buf = buf.get_mut(..8 * n)?;
    mem.read_exact_at(buf, ptr).ok()?;
    buf.chunks_exact(8)
        .filter_map(|entry| {
            let fd = i32::from_ne_bytes(entry.get(..4)?.try_into().ok()?);
            u32::try_from(fd).ok()
        })
        .find(|&fd| socket_of(proc_dir, fd).is_some())
}

/// The `pollfd` array pointer and count of a thread blocked in poll/ppoll.
pub(crate) fn poll_args(text: &str) -> Option<(u64, u64)> {
    let mut f = text.split_whitespace();
    let nr = f.next()?.parse::<i64>().ok()?;
    if !matches!(syscall_name(nr), Some(("poll" | "ppoll", _))) {
        return None;
    }
    let mut arg = || u64::from_str_radix(f.next()?.trim_start_matches("0x"), 16).ok();
    Some((arg()?, arg()?))
}

/// `123 (name with) parens) S 1 ...` → ("name with) parens", "S").
pub(crate) fn parse_stat(stat: &str) -> Option<(String, String)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let state = stat
        .get(close + 1..)?
        .split_whitespace()
        .next()?
        .to_string();
    Some((comm, state))
}

/// `45 0x5 0x7f...` → (Some("recvfrom"), Some(5)); `running` → (None, None).
pub(crate) fn parse_syscall(text: &str) -> (Option<String>, Option<u32>) {
    let mut f = text.split_whitespace();
    let Some(nr) = f.next().and_then(|n| n.parse::<i64>().ok()) else {
        return (None, None);
    };
    let Some((name, takes_fd)) = syscall_name(nr) else {
        return (Some(format!("syscall {nr}")).filter(|_| nr >= 0), None);
    };
    let fd = f
        .next()
        .filter(|_| takes_fd)
        .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        .and_then(|a| u32::try_from(a).ok());
    (Some(name.to_string()), fd)
}

/// The blocking system calls worth naming, and whether their first argument is an fd.
#[cfg(target_arch = "x86_64")]
fn syscall_name(nr: i64) -> Option<(&'static str, bool)> {
    Some(match nr {
        0 => ("read", true),
        1 => ("write", true),
        7 => ("poll", false),
        23 => ("select", false),
        35 => ("nanosleep", false),
        42 => ("connect", true),
        43 => ("accept", true),
        44 => ("sendto", true),
        45 => ("recvfrom", true),
        46 => ("sendmsg", true),
        47 => ("recvmsg", true),
        61 => ("wait4", false),
        202 => ("futex", false),
        230 => ("clock_nanosleep", false),
        232 => ("epoll_wait", true),
        270 => ("pselect6", false),
        271 => ("ppoll", false),
        281 => ("epoll_pwait", true),
        288 => ("accept4", true),
        441 => ("epoll_pwait2", true),
        _ => return None,
    })
}

#[cfg(target_arch = "aarch64")]
fn syscall_name(nr: i64) -> Option<(&'static str, bool)> {
    Some(match nr {
        22 => ("epoll_pwait", true),
        63 => ("read", true),
        64 => ("write", true),
        72 => ("pselect6", false),
        73 => ("ppoll", false),
        98 => ("futex", false),
        101 => ("nanosleep", false),
        115 => ("clock_nanosleep", false),
        202 => ("accept", true),
        203 => ("connect", true),
        206 => ("sendto", true),
        207 => ("recvfrom", true),
        211 => ("sendmsg", true),
        212 => ("recvmsg", true),
        242 => ("accept4", true),
        260 => ("wait4", false),
        441 => ("epoll_pwait2", true),
        _ => return None,
    })
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn syscall_name(_nr: i64) -> Option<(&'static str, bool)> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_parens_in_the_name() {
        let (comm, state) = parse_stat("42 (a) b) S 1 2 3").unwrap_or_default();
        assert_eq!((comm.as_str(), state.as_str()), ("a) b", "S"));
        assert!(parse_stat("garbage").is_none());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn syscall_lines() {
        let (name, fd) = parse_syscall("45 0x7 0x7f3c 0x400 0x0 0x0 0x0 0x7ffd 0x7f3c\n");
        assert_eq!((name.as_deref(), fd), (Some("recvfrom"), Some(7)));
        let (name, fd) = parse_syscall("202 0x7f 0x80 0x0 0x0 0x0 0x0 0x7ffd 0x7f3c\n");
        assert_eq!((name.as_deref(), fd), (Some("futex"), None));
        assert_eq!(parse_syscall("running\n"), (None, None));
        assert_eq!(parse_syscall("-1 0x7ffd 0x7f3c\n"), (None, None));
        assert_eq!(parse_syscall("999 0x1\n").0.as_deref(), Some("syscall 999"));
        assert_eq!(
            poll_args("7 0x7ffd10 0x1 0x1388 0x0\n"),
            Some((0x7ffd10, 1))
        );
        assert_eq!(poll_args("45 0x7 0x7f3c\n"), None);
    }

    #[test]
    fn a_capped_read_sees_every_pool() {
        let mut named: Vec<(u32, String)> = (1..=100)
            .map(|tid| (tid, format!("pool-1-thread-{tid}")))
            .collect();
        named.push((500, "java".to_string()));
        named.push((501, "grpc-default-ex".to_string()));
        let picked = chosen(named, 10);
        assert_eq!(picked.len(), 10);
        assert!(picked.contains(&500) && picked.contains(&501));
    }
}

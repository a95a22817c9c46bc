//! What a process's threads are doing: `/proc/PID/task/TID/{stat,wchan,syscall}`.
//!
//! A fixed pool whose workers all block reading idle clients looks, in the
//! socket table, like any leak: accepted connections nobody reads. The threads
//! tell it apart: which system call each is blocked in and on which fd, mapped
//! back to its socket. Read only for processes that have unread data on a
//! socket, with a bound on threads, because it costs three reads per thread.

use crate::snapshot::Task;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Threads read per process at most.
const MAX_TASKS: usize = 1024;

/// Reads the threads of `pid`; an unreadable or vanished one is left out.
pub fn read(proc_dir: &Path) -> Vec<Task> {
    let Ok(entries) = std::fs::read_dir(proc_dir.join("task")) else {
        return Vec::new();
    };
    let mut tasks: Vec<Task> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .take(MAX_TASKS)
        .filter_map(|tid| read_task(proc_dir, tid))
        .collect();
    tasks.sort_by_key(|t| t.tid);
    tasks
}

fn read_task(proc_dir: &Path, tid: u32) -> Option<Task> {
    let dir = proc_dir.join("task").join(tid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let (comm, state) = parse_stat(&stat)?;
    let wchan = std::fs::read_to_string(dir.join("wchan"))
        .ok()
        .filter(|w| !w.is_empty() && w != "0");
    let (syscall, fd) = std::fs::read_to_string(dir.join("syscall"))
        .ok()
        .map(|s| parse_syscall(&s))
        .unwrap_or_default();
    let inode = fd.and_then(|fd| {
        let link = std::fs::read_link(proc_dir.join("fd").join(fd.to_string())).ok()?;
        super::owners::socket_inode(link.as_os_str().as_bytes())
    });
    Some(Task {
        tid,
        comm: super::owners::lossless_text(comm.as_bytes()),
        state,
        wchan,
        syscall,
        fd,
        inode,
    })
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
    }
}

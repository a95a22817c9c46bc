//! A socket's birth as the birth program records it, and what user space
//! reads back: the record is laid out here for the program to fill and
//! parsed back here, a pure function of its bytes.

/// Bytes of one record: inode, pid_tgid, ktime, stack id, comm, the words at the user sp.
pub const RECORD: usize = 112;
/// Where the stack id (a signed 64-bit number; negative: none) is.
pub const STACK_ID: usize = 24;
/// Where the words read at the thread's user stack pointer begin, and how many.
pub const WORDS_AT: usize = 48;
pub const WORDS: usize = 8;

/// The birth of one TCP socket, by `connect()` or `accept()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Birth {
    /// The socket's inode, as sock_diag reports it.
    pub inode: u64,
    pub pid: u32,
    pub tid: u32,
    /// The thread's name (`comm`) then, as the kernel holds it: untrusted.
    pub thread: String,
    /// `CLOCK_MONOTONIC`, nanoseconds.
    pub at_ns: u64,
    /// Its user-space stack in the stack map; `None` when it could not be stored.
    pub stack: Option<u32>,
    /// The words at the thread's user stack pointer in the system call:
    /// the return address a frameless wrapper (glibc's `accept`) leaves
    /// there, which a frame-pointer walk skips.
    pub words: [u64; WORDS],
}

/// Parses one record; `None` if it is short.
pub fn parse(r: &[u8]) -> Option<Birth> {
    let u64_at = |at: usize| Some(u64::from_ne_bytes(r.get(at..at + 8)?.try_into().ok()?));
    let pid_tgid = u64_at(8)?;
    let comm = r.get(32..48)?;
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    let mut words = [0u64; WORDS];
    for (i, w) in words.iter_mut().enumerate() {
        *w = u64_at(WORDS_AT + 8 * i)?;
    }
    Some(Birth {
        inode: u64_at(0)?,
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        thread: String::from_utf8_lossy(&comm[..end]).into_owned(),
        at_ns: u64_at(16)?,
        stack: u32::try_from(u64_at(STACK_ID)? as i64).ok(),
        words,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_a_failed_stack_is_none() {
        let mut r = vec![0u8; RECORD];
        r[0..8].copy_from_slice(&77u64.to_ne_bytes());
        r[8..16].copy_from_slice(&((42u64 << 32) | 43).to_ne_bytes());
        r[16..24].copy_from_slice(&5u64.to_ne_bytes());
        r[24..32].copy_from_slice(&3u64.to_ne_bytes());
        r[32..40].copy_from_slice(b"worker-3");
        r[48..56].copy_from_slice(&0x401234u64.to_ne_bytes());
        let b = parse(&r).unwrap();
        assert_eq!((b.inode, b.pid, b.tid, b.at_ns), (77, 42, 43, 5));
        assert_eq!((b.thread.as_str(), b.stack), ("worker-3", Some(3)));
        assert_eq!(b.words[0], 0x401234);
        r[24..32].copy_from_slice(&(-17i64).to_ne_bytes());
        assert_eq!(parse(&r).unwrap().stack, None);
        assert_eq!(parse(&r[..40]), None);
    }
}

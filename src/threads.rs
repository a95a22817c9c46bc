//! Thread names: which pool a thread belongs to, and which threads are a
//! runtime's own housekeeping.
//!
//! Runtimes and frameworks name their threads (`pool-3-thread-1`,
//! `http-nio-8080-exec-7`, `worker-4`), and the kernel keeps the first 15
//! bytes in `/proc/PID/task/TID/comm`. Threads of one pool differ only by a
//! trailing number, so cutting it off groups them. The collector uses this to
//! choose which threads to read when there are too many, the diagnosis to
//! judge each pool on its own, without the JVM's GC and compiler threads.

/// The longest name the kernel keeps: a name this long may have been cut.
pub const COMM_MAX: usize = 15;

/// The pool a thread name belongs to: the name without its trailing number
/// and separators (`pool-3-thread-1` → `pool-3-thread`, `worker_4` →
/// `worker`); a name that is all number stays as it is.
pub fn stem(comm: &str) -> &str {
    let cut = comm.trim_end_matches(|c: char| c.is_ascii_digit());
    let cut = cut.trim_end_matches(['-', '_', '#', ' ', '.', ':']);
    if cut.is_empty() { comm } else { cut }
}

/// A name as a pool label: `…` marks one the kernel may have cut.
pub fn label(stem: &str, comm_len: usize) -> String {
    if comm_len >= COMM_MAX && stem.len() == comm_len {
        format!("{stem}…")
    } else {
        stem.to_string()
    }
}

/// JVM (and libc) threads that never serve connections: garbage collection,
/// JIT compilers, the VM thread, signal and reference handling.
const HOUSEKEEPING: &[&str] = &[
    "GC Thread",
    "G1 ",
    "VM Thread",
    "VM Periodic Tas",
    "C1 CompilerThre",
    "C2 CompilerThre",
    "Sweeper thread",
    "Signal Dispatch",
    "Finalizer",
    "Reference Handl",
    "Service Thread",
    "Monitor Deflati",
    "Common-Cleaner",
    "Notification Th",
    "Attach Listener",
    "JFR ",
    "Java2D Disposer",
    "Cleaner-",
    "process reaper",
];

/// Whether a thread of this name is runtime housekeeping, never a worker.
pub fn is_housekeeping(comm: &str) -> bool {
    HOUSEKEEPING.iter().any(|h| comm.starts_with(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_group_a_pool() {
        assert_eq!(stem("pool-3-thread-1"), "pool-3-thread");
        assert_eq!(stem("pool-3-thread-12"), "pool-3-thread");
        assert_eq!(stem("worker_4"), "worker");
        assert_eq!(stem("http-nio-8080-e"), "http-nio-8080-e");
        assert_eq!(stem("GC Thread#3"), "GC Thread");
        assert_eq!(stem("1234"), "1234");
        assert_eq!(label("http-nio-8080-e", 15), "http-nio-8080-e…");
        assert_eq!(label("pool-3-thread", 15), "pool-3-thread");
    }

    #[test]
    fn jvm_housekeeping_is_known() {
        for name in [
            "GC Thread#0",
            "C2 CompilerThre",
            "VM Thread",
            "Signal Dispatch",
            "G1 Refine#0",
        ] {
            assert!(is_housekeeping(name), "{name}");
        }
        for name in ["java", "pool-1-thread-1", "http-nio-8080-e", "main"] {
            assert!(!is_housekeeping(name), "{name}");
        }
    }
}

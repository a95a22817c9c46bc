//! Which connection-pool library a process runs, told without attaching to it.
//!
//! "Evict idle connections" helps less than the setting's name in the
//! library at hand: HikariCP ignores `idleTimeout` in a fixed-size pool and
//! needs `maxLifetime` below the server's timeout, c3p0 tests idle
//! connections only with `idleConnectionTestPeriod`. Pools name their
//! threads (`HikariPool-1 housekeeper`; the kernel keeps 15 bytes of a
//! name), and C drivers are mapped libraries (`libpq.so`), so a JVM's
//! thread names or a Python process's maps tell the library for the cost of
//! a directory listing and one small read per thread, paid only by the JVM
//! and Python processes that hold sockets.

use super::tasks;
use crate::snapshot::{Library, Runtime};
use std::path::Path;

/// The libraries the process at `proc_dir` is seen to run, sorted, once each.
pub fn detect(proc_dir: &Path, runtime: Option<Runtime>) -> Vec<Library> {
    let mut found: Vec<Library> = match runtime {
        Some(Runtime::Jvm) => tasks::names(proc_dir)
            .iter()
            .filter_map(|(_, name)| by_thread_name(name))
            .collect(),
        Some(Runtime::Python) => std::fs::read_to_string(proc_dir.join("maps"))
            .map(|maps| by_mapped_library(&maps))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    found.sort_unstable();
    found.dedup();
    found
}

/// The pool a thread of this name belongs to (names as the kernel keeps
/// them: at most 15 bytes).
pub fn by_thread_name(name: &str) -> Option<Library> {
    const PREFIXES: [(&str, Library); 6] = [
        ("HikariPool-", Library::Hikaricp),
        ("commons-pool-ev", Library::CommonsPool),
        ("C3P0PooledConne", Library::C3p0),
        ("PoolCleaner[", Library::TomcatJdbc),
        ("OkHttp Connecti", Library::Okhttp),
        ("OkHttp TaskRunn", Library::Okhttp),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|&(_, library)| library)
}

/// The pool libraries among a process's mapped files (`/proc/PID/maps`).
pub fn by_mapped_library(maps: &str) -> Vec<Library> {
    let libpq = maps
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .any(|file| file.starts_with("libpq.so"));
    if libpq {
        vec![Library::Libpq]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_by_their_threads_names_as_the_kernel_cuts_them() {
        assert_eq!(by_thread_name("HikariPool-1 ho"), Some(Library::Hikaricp));
        assert_eq!(
            by_thread_name("commons-pool-ev"),
            Some(Library::CommonsPool)
        );
        assert_eq!(by_thread_name("OkHttp Connecti"), Some(Library::Okhttp));
        assert_eq!(by_thread_name("pool-1-thread-3"), None);
        assert_eq!(by_thread_name("C1 CompilerThre"), None);
    }

    #[test]
    fn libpq_by_its_mapping() {
        let maps = "7f00-7f01 r-xp 0 08:01 42 /usr/lib/x86_64-linux-gnu/libpq.so.5.15\n\
                    7f02-7f03 r-xp 0 08:01 43 /usr/lib/x86_64-linux-gnu/libc.so.6\n";
        assert_eq!(by_mapped_library(maps), vec![Library::Libpq]);
        assert!(by_mapped_library("7f02-7f03 r-xp 0 08:01 43 /usr/lib/libc.so.6\n").is_empty());
    }
}

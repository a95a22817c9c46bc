//! Network namespaces: entering one by its `ip netns` name or through a
//! process in it, and finding every distinct one on the host.
//!
//! `setns` moves only the calling thread. connleak enters a namespace before
//! it starts any thread of its own, so every thread it spawns afterwards is
//! in it too, and reads `/proc/thread-self/net`, never `/proc/net` (which
//! follows the main thread's namespace).

use rustix::fs::{Mode, OFlags, open};
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A network namespace to diagnose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/run/netns/NAME`, as `ip netns` names it.
    Named(String),
    /// The namespace of a process (a container's, say).
    OfPid(u32),
}

impl Target {
    fn path(&self) -> PathBuf {
        match self {
            Target::Named(name) => Path::new("/run/netns").join(name),
            Target::OfPid(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
        }
    }

    /// How reports label it.
    pub fn label(&self) -> String {
        match self {
            Target::Named(name) => name.clone(),
            Target::OfPid(pid) => format!("pid:{pid}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("cannot open network namespace {path}: {error}{hint}", hint = hint(*error, path))]
    Open {
        path: String,
        error: rustix::io::Errno,
    },
    #[error("cannot enter network namespace {path} (setns): {error}{hint}", hint = hint(*error, path))]
    Enter {
        path: String,
        error: rustix::io::Errno,
    },
}

/// What to do about the usual failures.
fn hint(e: rustix::io::Errno, path: &str) -> &'static str {
    use rustix::io::Errno;
    match e {
        Errno::PERM | Errno::ACCESS => " (entering a namespace needs root or CAP_SYS_ADMIN)",
        Errno::NOENT if path.starts_with("/proc/") => {
            " (no such process: pass the pid of a process in the namespace)"
        }
        Errno::NOENT => " (no such namespace: `ip netns list` names them)",
        _ => "",
    }
}

/// Moves the calling thread into `target`'s network namespace.
pub fn enter(target: &Target) -> Result<(), NetnsError> {
    let path = target.path();
    let shown = path.display().to_string();
    let fd = open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(|error| {
        NetnsError::Open {
            path: shown.clone(),
            error,
        }
    })?;
    move_into_link_name_space(fd.as_fd(), Some(LinkNameSpaceType::Network))
        .map_err(|error| NetnsError::Enter { path: shown, error })
}

/// Every distinct network namespace in use on the host: the `ip netns` named
/// ones, and one process for each other namespace a process is in.
pub fn all() -> Vec<Target> {
    let mut by_inode: BTreeMap<u64, Target> = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/run/netns") {
        for e in dir.flatten() {
            if let (Ok(m), Some(name)) = (std::fs::metadata(e.path()), e.file_name().to_str()) {
                by_inode.insert(m.ino(), Target::Named(name.to_string()));
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for pid in dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        {
            if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net")) {
                by_inode.entry(m.ino()).or_insert(Target::OfPid(pid));
            }
        }
    }
    by_inode.into_values().collect()
}

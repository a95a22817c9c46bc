//! Network namespaces: entering one by its `ip netns` name or through a
//! process in it, and finding every distinct one on the host.
//!
//! `setns` moves only the calling thread. connleak enters a namespace before
//! it starts any thread of its own, so every thread it spawns afterwards is
//! in it too, and reads `/proc/thread-self/net`, never `/proc/net` (which
//! follows the main thread's namespace). The namespace connleak runs in needs
//! no entering, so it is read even without the privilege to enter others.

use rustc_hash::FxHashMap;
use rustix::fs::{Mode, OFlags, open};
use rustix::io::Errno;
use rustix::thread::{CapabilitySet, LinkNameSpaceType, move_into_link_name_space};
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
    /// The namespace connleak runs in (the host's, unless it has an `ip netns` name).
    Own,
}

impl Target {
    /// Its namespace file, `/run/netns` and `/proc` under the host root
    /// (connleak's own namespace is its own, wherever the host's root is).
    fn path(&self, host_root: &Path) -> PathBuf {
        match self {
            Target::Named(name) => host_root.join("run/netns").join(name),
            Target::OfPid(pid) => host_root.join(format!("proc/{pid}/ns/net")),
            Target::Own => PathBuf::from("/proc/self/ns/net"),
        }
    }

    /// How reports label it.
    pub fn label(&self) -> String {
        match self {
            Target::Named(name) => name.clone(),
            Target::OfPid(pid) => format!("pid:{pid}"),
            Target::Own => "host".to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("cannot open network namespace {path}: {error}{hint}", hint = hint(*error, path, privileged()))]
    Open { path: String, error: Errno },
    #[error("cannot enter network namespace {path} (setns): {error}{hint}", hint = hint(*error, path, privileged()))]
    Enter { path: String, error: Errno },
    #[error(
        "{name:?} is not a network namespace name: `ip netns` names have no '/' or NUL \
         and are not empty, '.' or '..' (`ip netns list` names them)"
    )]
    BadName { name: String },
}

/// Whether this process may enter other network namespaces (`CAP_SYS_ADMIN`).
fn privileged() -> bool {
    rustix::thread::capabilities(None).is_ok_and(|c| c.effective.contains(CapabilitySet::SYS_ADMIN))
}

/// What to do about the usual failures. With `CAP_SYS_ADMIN` a refusal is
/// not about privilege: opening `/proc/PID/ns/net` needs ptrace read access
/// to the process, which a security module may deny even to root.
fn hint(e: Errno, path: &str, privileged: bool) -> &'static str {
    match e {
        Errno::PERM | Errno::ACCESS if privileged && path.contains("/proc/") => {
            " (connleak has CAP_SYS_ADMIN, so the kernel denied ptrace read access to the \
             process (PTRACE_MODE_READ, CAP_SYS_PTRACE): a security module such as AppArmor, \
             SELinux or Yama's ptrace_scope may forbid it)"
        }
        Errno::PERM | Errno::ACCESS if privileged => {
            " (connleak has CAP_SYS_ADMIN, so a security module such as AppArmor or SELinux, \
             or a user namespace that owns the namespace, denied it)"
        }
        Errno::PERM | Errno::ACCESS => " (entering a namespace needs root or CAP_SYS_ADMIN)",
        Errno::NOENT if path.contains("/proc/") => {
            " (no such process: pass the pid of a process in the namespace)"
        }
        Errno::NOENT => " (no such namespace: `ip netns list` names them)",
        _ => "",
    }
}

/// Whether `name` can be an `ip netns` name: one path component under
/// `/run/netns`, so that `--netns ../../proc/1/ns/net` enters nothing.
fn valid_name(name: &str) -> bool {
    !matches!(name, "" | "." | "..") && !name.contains(['/', '\0'])
}

/// Moves the calling thread into `target`'s network namespace, found under
/// `host_root` (for [`Target::Own`], where it already is: nothing to do).
pub fn enter(target: &Target, host_root: &Path) -> Result<(), NetnsError> {
    match target {
        Target::Own => return Ok(()),
        Target::Named(name) if !valid_name(name) => {
            return Err(NetnsError::BadName { name: name.clone() });
        }
        _ => {}
    }
    let path = target.path(host_root);
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

/// The `ip netns` names under `host_root`, by their namespace's inode.
pub fn names(host_root: &Path) -> FxHashMap<u64, String> {
    let Ok(dir) = std::fs::read_dir(host_root.join("run/netns")) else {
        return FxHashMap::default();
    };
    dir.flatten()
        .filter_map(|e| {
            let inode = std::fs::metadata(e.path()).ok()?.ino();
            Some((inode, e.file_name().to_string_lossy().into_owned()))
        })
        .collect()
}

/// Every distinct network namespace in use on the host: the `ip netns` named
/// ones, connleak's own (labelled `host` unless it is named), and one process
/// for each other namespace a process is in, all under `host_root` (the
/// host's root mounted in a DaemonSet's pod). Without the privilege to enter
/// a namespace, only connleak's own ([`left_out`] says why).
pub fn all(host_root: &Path) -> Vec<Target> {
    if !privileged() {
        return vec![Target::Own];
    }
    let mut by_inode: BTreeMap<u64, Target> = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir(host_root.join("run/netns")) {
        for e in dir.flatten() {
            if let (Ok(m), Some(name)) = (std::fs::metadata(e.path()), e.file_name().to_str()) {
                by_inode.insert(m.ino(), Target::Named(name.to_string()));
            }
        }
    }
    if let Ok(m) = std::fs::metadata(Target::Own.path(host_root)) {
        by_inode.entry(m.ino()).or_insert(Target::Own);
    }
    if let Ok(dir) = std::fs::read_dir(host_root.join("proc")) {
        for pid in dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        {
            if let Ok(m) = std::fs::metadata(Target::OfPid(pid).path(host_root)) {
                by_inode.entry(m.ino()).or_insert(Target::OfPid(pid));
            }
        }
    }
    by_inode.into_values().collect()
}

/// Why [`all`] leaves the other namespaces out, when it does.
pub fn left_out() -> Option<&'static str> {
    (!privileged()).then_some(
        "--all-netns reads only connleak's own network namespace: entering the others \
         needs root or CAP_SYS_ADMIN",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_run_netns_are_refused() {
        for bad in ["", ".", "..", "a/b", "../../proc/1/ns/net", "x\0y"] {
            assert!(!valid_name(bad), "{bad:?}");
            let err = enter(&Target::Named(bad.to_string()), Path::new("/"));
            assert!(matches!(err, Err(NetnsError::BadName { .. })), "{bad:?}");
        }
        for good in ["lab", "a.b", "...", "ns-1_x"] {
            assert!(valid_name(good), "{good:?}");
        }
    }

    #[test]
    fn a_refusal_despite_privilege_names_ptrace_and_security_modules() {
        let root = hint(Errno::ACCESS, "/proc/1/ns/net", true);
        assert!(
            root.contains("PTRACE_MODE_READ") && root.contains("AppArmor"),
            "{root}"
        );
        assert!(!root.contains("needs root"), "{root}");
        let user = hint(Errno::PERM, "/proc/1/ns/net", false);
        assert!(user.contains("needs root or CAP_SYS_ADMIN"), "{user}");
    }

    #[test]
    fn namespaces_are_found_under_the_host_root() {
        let host = Path::new("/host");
        assert_eq!(
            Target::Named("lab".into()).path(host),
            Path::new("/host/run/netns/lab")
        );
        assert_eq!(
            Target::OfPid(42).path(host),
            Path::new("/host/proc/42/ns/net")
        );
        assert_eq!(Target::Own.path(host), Path::new("/proc/self/ns/net"));
        let err = enter(&Target::OfPid(u32::MAX), host).map_err(|e| e.to_string());
        assert!(
            err.as_ref()
                .is_err_and(|e| e.contains("/host/proc/") && e.contains("no such process")),
            "{err:?}"
        );
    }

    #[test]
    fn the_own_namespace_is_the_host() {
        assert_eq!(Target::Own.label(), "host");
        assert!(enter(&Target::Own, Path::new("/")).is_ok());
    }
}

//! Real cgroups in the host's cgroup v2 hierarchy, laid out as systemd, Docker
//! or the kubelet lay them out, for processes of a [`super::Lab`] to run in;
//! and a fixture host root holding the runtimes' metadata files.
//!
//! Each test gets its own top directory (`connleak-PID-TEST`), so parallel
//! tests never share a cgroup. When the guard drops (also on failure) every
//! process still inside is moved back to the root cgroup and the directories
//! are removed, deepest first.

use super::say;
use connleak::collect::cgroup::cgroup2_mount;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

pub struct Cgroup {
    mount: PathBuf,
    top: PathBuf,
    /// The directory processes are placed in.
    pub dir: PathBuf,
    /// Its path as `/proc/PID/cgroup` writes it.
    pub path: String,
}

/// Where the cgroup v2 hierarchy is mounted, from `/proc/self/mountinfo`.
pub fn v2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    cgroup2_mount(&info, Path::new("/"))
}

impl Cgroup {
    /// Creates `LAYOUT` (a relative path such as `system.slice/x.service`)
    /// under this test's top directory; `None`, with a SKIP line, without a
    /// cgroup v2 hierarchy (call it after `Lab::new`, which checks for root).
    pub fn new(test: &str, layout: &str) -> Option<Cgroup> {
        let Some(mount) = v2_mount() else {
            say(&format!("SKIP {test}: no cgroup v2 hierarchy is mounted"));
            return None;
        };
        let top_name = format!("connleak-{}-{test}", std::process::id());
        let top = mount.join(&top_name);
        let dir = top.join(layout);
        let cgroup = Cgroup {
            path: format!("/{top_name}/{layout}"),
            mount,
            top,
            dir,
        };
        std::fs::create_dir_all(&cgroup.dir).expect("create the cgroup");
        Some(cgroup)
    }

    /// The cgroup's id: its directory's inode number.
    pub fn id(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&self.dir).expect("the cgroup").ino()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let mut dirs = Vec::new();
        let mut stack = vec![self.top.clone()];
        while let Some(dir) = stack.pop() {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                stack.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
            dirs.push(dir);
        }
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        let root_procs = self.mount.join("cgroup.procs");
        for dir in &dirs {
            let pids = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in pids.split_whitespace() {
                // One pid a write: the kernel takes one. A process gone meanwhile is fine.
                let _ = std::fs::write(&root_procs, pid);
            }
        }
        for dir in &dirs {
            if let Err(e) = std::fs::remove_dir(dir) {
                say(&format!("cannot remove cgroup {}: {e}", dir.display()));
            }
        }
    }
}

/// A 64-hex-digit container id unique to this test run and `seed`.
pub fn container_id(seed: &str) -> String {
    (0..4u8)
        .map(|i| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (std::process::id(), seed, i).hash(&mut h);
            format!("{:016x}", h.finish())
        })
        .collect()
}

/// A fixture host root under `dir`: the real `/proc`, `/sys` and
/// `/run/netns` (symlinked) and whatever runtime metadata the test writes
/// with [`write`].
pub fn host_root(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("run")).expect("host root");
    for real in ["proc", "sys", "run/netns"] {
        std::os::unix::fs::symlink(Path::new("/").join(real), dir.join(real))
            .expect("symlink into the host root");
    }
    dir.to_path_buf()
}

/// Writes `contents` to `rel` under the host root `root`, creating directories.
pub fn write(root: &Path, rel: &str, contents: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("a file path")).expect("metadata dir");
    std::fs::write(path, contents).expect("metadata file");
}

//! Where a process or a socket sits in the cgroup tree.
//!
//! A process's cgroup is the one fact every service manager and container
//! runtime writes down, and `/proc/PID/cgroup` tells it without asking any
//! daemon. A socket carries the cgroup v2 id of its creator (inherited by a
//! connection from its listener), which is the inode number of the cgroup's
//! directory in the v2 hierarchy; mapping ids back to paths attributes the
//! connections no process holds yet. Parsers take text, so that they are
//! tested and fuzzed without a kernel.

use rustc_hash::FxHashSet;
use std::collections::BTreeMap;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The cgroup paths of one process: the v2 (unified) one, and the
/// `name=systemd` v1 one of a hybrid or v1 host.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ProcCgroup<'a> {
    pub unified: Option<&'a str>,
    pub systemd: Option<&'a str>,
}

impl<'a> ProcCgroup<'a> {
    /// The paths worth naming a workload from, the v2 one first; the root
    /// cgroup `/` is no workload and is left out.
    pub fn candidates(&self) -> impl Iterator<Item = &'a str> {
        [self.unified, self.systemd]
            .into_iter()
            .flatten()
            .filter(|p| !p.trim_matches('/').is_empty())
    }
}

/// Parses `/proc/PID/cgroup`: lines `HIERARCHY:CONTROLLERS:PATH`, where the
/// v2 line is `0::PATH`. A cgroup removed while the process lives in it
/// carries ` (deleted)`, which is dropped.
pub fn parse_proc_cgroup(text: &str) -> ProcCgroup<'_> {
    let mut found = ProcCgroup::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        if id == "0" && controllers.is_empty() {
            found.unified = Some(path);
        } else if controllers.split(',').any(|c| c == "name=systemd") {
            found.systemd = Some(path);
        }
    }
    found
}

/// The mount point of the cgroup v2 hierarchy in `/proc/self/mountinfo`
/// text; of several, the first under `host_root` (a container's view of the
/// host's), else the first.
pub fn cgroup2_mount(mountinfo: &str, host_root: &Path) -> Option<PathBuf> {
    let mounts: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| {
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
            let (left, right) = line.split_once(" - ")?;
            if right.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            Some(PathBuf::from(unescape(left.split_whitespace().nth(4)?)))
        })
        .collect();
    let under_host = mounts
        .iter()
        .find(|m| host_root != Path::new("/") && m.starts_with(host_root));
    under_host.or(mounts.first()).cloned()
}

/// mountinfo writes space, tab, newline and backslash in paths as `\OOO`.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')));
        match octal.and_then(|n| u8::try_from(n).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The paths of the cgroups `ids`, from the v2 hierarchy this process sees
/// (its mount found in `PROC/self/mountinfo`); empty without cgroup v2.
pub fn paths(proc_root: &Path, host_root: &Path, ids: &FxHashSet<u64>) -> BTreeMap<u64, String> {
    if ids.is_empty() {
        return BTreeMap::new();
    }
    std::fs::read_to_string(proc_root.join("self/mountinfo"))
        .ok()
        .and_then(|info| cgroup2_mount(&info, host_root))
        .map(|mount| paths_of_ids(&mount, ids))
        .unwrap_or_default()
}

/// Deepest cgroup tree walked; the kernel's own default limit is far below.
const MAX_DEPTH: usize = 32;

/// The paths (as `/proc/PID/cgroup` writes them) of the cgroups whose ids
/// are `ids`, found by walking the v2 hierarchy mounted at `mount` until all
/// are found. An id whose cgroup is gone is absent.
pub fn paths_of_ids(mount: &Path, ids: &FxHashSet<u64>) -> BTreeMap<u64, String> {
    let mut found = BTreeMap::new();
    if let Ok(meta) = std::fs::metadata(mount)
        && ids.contains(&meta.ino())
    {
        found.insert(meta.ino(), "/".to_string());
    }
    let mut stack = vec![(mount.to_path_buf(), String::new(), 0)];
    while let Some((dir, shown, depth)) = stack.pop() {
        if found.len() == ids.len() {
            break;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = format!("{shown}/{}", entry.file_name().to_string_lossy());
            // kernfs gives each directory's inode number in readdir: no stat needed.
            if ids.contains(&entry.ino()) {
                found.insert(entry.ino(), path.clone());
            }
            if depth < MAX_DEPTH {
                stack.push((entry.path(), path, depth + 1));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_line_and_systemd_line() {
        let hybrid = "9:name=systemd:/system.slice/nginx.service\n4:memory:/x\n0::/\n";
        let c = parse_proc_cgroup(hybrid);
        assert_eq!(c.unified, Some("/"));
        assert_eq!(c.systemd, Some("/system.slice/nginx.service"));
        assert_eq!(
            c.candidates().collect::<Vec<_>>(),
            ["/system.slice/nginx.service"]
        );
        let v2 = parse_proc_cgroup("0::/system.slice/a:b.service (deleted)\n");
        assert_eq!(v2.unified, Some("/system.slice/a:b.service"));
        assert_eq!(parse_proc_cgroup("0::/\n").candidates().count(), 0);
        assert_eq!(parse_proc_cgroup("garbage\n\n::"), ProcCgroup::default());
    }

    #[test]
    fn finds_the_v2_mount() {
        let info = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
                    40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw shared:9 - cgroup2 cgroup2 rw\n\
                    90 88 0:38 / /host/sys/fs/cgroup\\040x rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(info, Path::new("/")),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            cgroup2_mount(info, Path::new("/host")),
            Some(PathBuf::from("/host/sys/fs/cgroup x"))
        );
        assert_eq!(cgroup2_mount("1 2 3 4\n - \n", Path::new("/")), None);
        assert_eq!(unescape("a\\134b\\0"), "a\\b\\0");
    }

    /// Directory inode numbers stand in for cgroup ids on an ordinary tree.
    #[test]
    fn maps_ids_to_paths() -> std::io::Result<()> {
        let root = std::env::temp_dir().join(format!("connleak-cgids-{}", std::process::id()));
        let deep = root.join("kubepods.slice/pod.slice/cri-containerd-1.scope");
        std::fs::create_dir_all(&deep)?;
        let want = std::fs::metadata(&deep)?.ino();
        let root_id = std::fs::metadata(&root)?.ino();
        let ids: FxHashSet<u64> = [want, root_id, u64::MAX].into_iter().collect();
        let found = paths_of_ids(&root, &ids);
        std::fs::remove_dir_all(&root)?;
        assert_eq!(
            found.get(&want).map(String::as_str),
            Some("/kubepods.slice/pod.slice/cri-containerd-1.scope")
        );
        assert_eq!(found.get(&root_id).map(String::as_str), Some("/"));
        assert_eq!(found.len(), 2);
        Ok(())
    }
}

//! Which runtime a socket-holding process runs: the JVM, Go, Node, Python or nginx.
//!
//! The same socket table means different things on a thread-per-connection
//! JVM and on Go's or Node's event loop, and the fix is written in the
//! runtime's own idioms. Detected once per process, cheaply: the executable's
//! name (`java`, `node`, `python3.12`, `nginx`), else the libraries
//! `/proc/PID/maps` lists (`libjvm.so`, `libnode`, `libpython`), else for a
//! statically linked binary the section names of its ELF header (Go writes
//! `.go.buildinfo`), which costs three small reads.

use crate::snapshot::Runtime;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Section headers read at most: a Go binary has about 25.
const MAX_SECTIONS: usize = 128;
/// Bytes of section names read at most.
const MAX_NAMES: usize = 4096;

/// The runtime of the process at `proc_dir` (`/proc/PID`), if recognised.
pub fn detect(proc_dir: &Path) -> Option<Runtime> {
    let exe = std::fs::read_link(proc_dir.join("exe")).ok();
    let name = exe
        .as_deref()
        .and_then(|e| e.file_name())
        .and_then(|n| n.to_str())
        .map(|n| n.trim_end_matches(" (deleted)").to_string());
    if let Some(r) = name.as_deref().and_then(by_name) {
        return Some(r);
    }
    let maps = std::fs::read_to_string(proc_dir.join("maps")).unwrap_or_default();
    by_libraries(&maps).or_else(|| {
        // /proc/PID/exe opens the binary even when its path is gone or in another mount namespace.
        let file = File::open(proc_dir.join("exe")).ok()?;
        is_go_binary(&file).then_some(Runtime::Go)
    })
}

/// The runtime told by the executable's name.
fn by_name(exe: &str) -> Option<Runtime> {
    match exe {
        "java" => Some(Runtime::Jvm),
        "node" | "nodejs" => Some(Runtime::Node),
        "nginx" => Some(Runtime::Nginx),
        e if e.starts_with("python") => Some(Runtime::Python),
        _ => None,
    }
}

/// A runtime embedded in another executable (a JVM launcher, uwsgi, Electron).
fn by_libraries(maps: &str) -> Option<Runtime> {
    let mapped = |lib: &str| {
        maps.lines()
            .filter_map(|l| l.rsplit('/').next())
            .any(|file| file.starts_with(lib))
    };
    if mapped("libjvm.so") {
        Some(Runtime::Jvm)
    } else if mapped("libnode.so") {
        Some(Runtime::Node)
    } else if mapped("libpython") {
        Some(Runtime::Python)
    } else {
        None
    }
}

/// Whether the ELF file has a `.go.buildinfo` section (64-bit little-endian only).
fn is_go_binary(file: &File) -> bool {
    section_names(file).is_some_and(|names| names.split(|&b| b == 0).any(|n| n == b".go.buildinfo"))
}

/// The section-name string table of a 64-bit little-endian ELF file.
fn section_names(file: &File) -> Option<Vec<u8>> {
    let mut header = [0u8; 64];
    file.read_exact_at(&mut header, 0).ok()?;
    // Magic, ELFCLASS64, ELFDATA2LSB.
    if header.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at =
        |b: &[u8], at: usize| Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?));
    let u64_at =
        |b: &[u8], at: usize| Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?));
    let shoff = u64_at(&header, 0x28)?;
    let shentsize = usize::from(u16_at(&header, 0x3a)?);
    let shnum = usize::from(u16_at(&header, 0x3c)?);
    let shstrndx = usize::from(u16_at(&header, 0x3e)?);
    if shentsize < 64 || shstrndx >= shnum.min(MAX_SECTIONS) {
        return None;
    }
    let mut strtab_header = [0u8; 64];
    let at = shoff.checked_add(u64::try_from(shstrndx * shentsize).ok()?)?;
    file.read_exact_at(&mut strtab_header, at).ok()?;
    let offset = u64_at(&strtab_header, 0x18)?;
    let size = usize::try_from(u64_at(&strtab_header, 0x20)?)
        .ok()?
        .min(MAX_NAMES);
    let mut names = vec![0u8; size];
    file.read_exact_at(&mut names, offset).ok()?;
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_libraries() {
        assert_eq!(by_name("java"), Some(Runtime::Jvm));
        assert_eq!(by_name("node"), Some(Runtime::Node));
        assert_eq!(by_name("python3.12"), Some(Runtime::Python));
        assert_eq!(by_name("nginx"), Some(Runtime::Nginx));
        assert_eq!(by_name("sshd"), None);
        let jvm = "7f00-7f01 r-xp 0 08:01 1 /usr/lib/jvm/java-17/lib/server/libjvm.so\n";
        assert_eq!(by_libraries(jvm), Some(Runtime::Jvm));
        let embedded = "7f00-7f01 r-xp 0 08:01 1 /usr/lib/libpython3.12.so.1.0\n";
        assert_eq!(by_libraries(embedded), Some(Runtime::Python));
        assert_eq!(by_libraries("[heap]\n"), None);
    }

    #[test]
    fn this_test_binary_is_no_go_binary() {
        let me = File::open("/proc/self/exe");
        assert!(me.is_ok_and(|f| !is_go_binary(&f) && section_names(&f).is_some()));
    }

    /// A real ELF binary given a `.go.buildinfo` section reads as Go.
    #[test]
    fn a_buildinfo_section_means_go() {
        let dir = std::env::temp_dir().join(format!("connleak-go-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let (info, bin) = (dir.join("info"), dir.join("bin"));
        let _ = std::fs::write(&info, b"\xff Go buildinf:");
        let made = std::process::Command::new("objcopy")
            .arg("--add-section")
            .arg(format!(".go.buildinfo={}", info.display()))
            .arg("/proc/self/exe")
            .arg(&bin)
            .status();
        let go = File::open(&bin).is_ok_and(|f| is_go_binary(&f));
        let _ = std::fs::remove_dir_all(&dir);
        match made {
            Ok(s) if s.success() => assert!(go),
            _ => eprintln!("SKIP a_buildinfo_section_means_go: needs objcopy (binutils)"),
        }
    }
}

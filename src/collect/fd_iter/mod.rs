//! A process's fd table read whole inside the kernel, by a BPF task-file iterator.
//!
//! The `/proc/PID/fd` scan costs the kernel a path lookup and a `readlink`
//! per fd (and on a cold cache a new dentry and inode for each): about two
//! microseconds a socket, seconds on a host with a million, where the socket
//! dump itself takes about as long. A task-file iterator of one process
//! (Linux 6.1) walks that process's fd table inside the kernel and writes
//! one 16-byte record per fd — (pid, fd, socket inode or 0) — into a file
//! this module reads: about half a microsecond an fd (mostly the cache
//! misses of reading each `file` and its inode), with no dentries left
//! behind. One iterator per process keeps the scan to the processes of the
//! namespace being diagnosed, as the `/proc` scan does.
//!
//! The program is assembled here, a few instructions long, with the field
//! offsets of this kernel's `task_struct`, `file` and `inode` taken from its
//! BTF, so nothing is compiled for a particular kernel. It reads only; it
//! needs CAP_BPF and CAP_PERFMON (root) and a kernel with BTF. Whenever any
//! of that is missing, or the iterator does not number processes as the
//! `/proc` being read does (another pid namespace), the caller falls back
//! to the `/proc` scan, which is always there.

mod program;
mod sockets;

pub use sockets::{ClosedSocket, HeldSocket};

use super::bpf::{self, BpfError, ProgramSpec, put32, put64, syscall_fd};
use super::btf::{Btf, BtfError, Field};
use program::{assemble, assemble_sockets};
use sockets::{SOCKET_RECORD, SockOffsets};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::Path;

const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_ITER_CREATE: libc::c_long = 33;
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_TRACE_ITER: u32 = 28;
/// `S_IFMT` and `S_IFSOCK` of an inode's `i_mode`.
const S_IFMT: i32 = 0o170000;
const S_IFSOCK: i32 = 0o140000;
/// One record: pid (u32), fd (u32), socket inode (u64, 0 for other files).
const RECORD: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum FdIterError {
    #[error("no kernel BTF ({0})")]
    NoBtf(std::io::Error),
    #[error("kernel BTF: {0}")]
    Btf(#[from] BtfError),
    #[error("{what}: {source}")]
    Syscall {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Bpf(#[from] BpfError),
    #[error("it does not number processes as this /proc does (another pid namespace)")]
    OtherPidNamespace,
    #[error("the kernel iterated more than the one process asked for (before Linux 6.1)")]
    NotOneProcess,
}

/// The loaded iterator programs, ready to read one process's fd table at a time.
pub struct FdIter {
    prog: OwnedFd,
    /// The socket program, if this kernel has every field it reads.
    sockets: Result<OwnedFd, String>,
}

/// One process's fd table as the iterator saw it.
#[derive(Debug, Default, PartialEq)]
pub struct FdTable {
    /// Open fds, of every kind.
    pub fds: u32,
    /// (fd, inode) of its sockets, of every kind.
    pub sockets: Vec<(u32, u64)>,
}

impl FdIter {
    /// Loads the program, and checks that it finds this process's own
    /// socket under the pid `proc_root` gives this process.
    pub fn load(proc_root: &Path) -> Result<FdIter, FdIterError> {
        let vmlinux = std::fs::read("/sys/kernel/btf/vmlinux").map_err(FdIterError::NoBtf)?;
        let programs = programs_for(&vmlinux)?;
        let sockets = programs
            .sockets
            .and_then(|p| load(&p, programs.attach_to))
            .map_err(|e| e.to_string());
        let iter = FdIter {
            prog: load(&programs.fds, programs.attach_to)?,
            sockets,
        };
        iter.check_pid_namespace(proc_root)?;
        Ok(iter)
    }

    /// The fd table of process `pid` as this process's pid namespace numbers
    /// it: its thread-group leader's table, which is what `/proc/PID/fd`
    /// shows. An iterator of one process (Linux 6.1), so that only the
    /// processes of the namespace being diagnosed are read.
    pub fn table(&self, pid: u32) -> Result<FdTable, FdIterError> {
        read_table(open(&self.prog, pid)?)
    }

    /// The TCP sockets in state CLOSE in process `pid`'s fd table: what the
    /// kernel still holds of each. An error says why they cannot be read
    /// (this kernel lacks a field the program reads, or the read failed).
    pub fn closed_sockets(&self, pid: u32) -> Result<Vec<ClosedSocket>, String> {
        self.sockets_of(pid, sockets::closed)
    }

    /// The TCP sockets still in the kernel's tables in process `pid`'s fd
    /// table, with their namespace and what sock_diag finds them by.
    pub fn held_sockets(&self, pid: u32) -> Result<Vec<HeldSocket>, String> {
        self.sockets_of(pid, sockets::held)
    }

    /// The socket program's records of process `pid`, as `parse` reads them.
    fn sockets_of<T>(&self, pid: u32, parse: fn(&[u8]) -> Option<T>) -> Result<Vec<T>, String> {
        let prog = self.sockets.as_ref().map_err(Clone::clone)?;
        let mut found = Vec::new();
        let file = open(prog, pid).map_err(|e| e.to_string())?;
        read_records(file, SOCKET_RECORD, |r| found.extend(parse(r))).map_err(|e| e.to_string())?;
        Ok(found)
    }

    /// The iterator numbers processes as this process's pid namespace does;
    /// `/proc` as its own namespace does. They agree when the table of this
    /// process, as `/proc/self` names it, holds a marker socket of ours.
    fn check_pid_namespace(&self, proc_root: &Path) -> Result<(), FdIterError> {
        let marker = UnixDatagram::unbound().map_err(|source| FdIterError::Syscall {
            what: "opening a marker socket",
            source,
        })?;
        let fd = u32::try_from(marker.as_raw_fd()).ok();
        let inode = rustix::fs::fstat(&marker).ok().map(|st| st.st_ino);
        let me: Option<u32> = std::fs::read_link(proc_root.join("self"))
            .ok()
            .and_then(|p| p.to_str()?.parse().ok());
        let mine = me.map(|me| self.table(me)).transpose()?;
        let seen = mine.is_some_and(|t| {
            t.sockets
                .iter()
                .any(|&(f, ino)| Some(f) == fd && Some(ino) == inode)
        });
        if seen {
            Ok(())
        } else {
            Err(FdIterError::OtherPidNamespace)
        }
    }
}

/// Whether `proc_root` is a real procfs: the iterator numbers the processes
/// of the running kernel, which a copy of `/proc` (a test's) does not show.
pub fn is_procfs(proc_root: &Path) -> bool {
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    // `f_type`'s width differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::statfs(proc_root).is_ok_and(|st| st.f_type as i64 == PROC_SUPER_MAGIC)
}

/// The programs for the kernel whose BTF is `vmlinux`: a pure function of
/// the bytes, fuzzed (`fuzzing::btf`), since a BTF blob may say anything.
pub struct Programs {
    /// The fd-table program.
    fds: Vec<u8>,
    /// The socket program, or why this kernel cannot have it.
    sockets: Result<Vec<u8>, FdIterError>,
    /// The id of the kernel function both attach to.
    attach_to: u32,
}

/// Assembles [`Programs`] with this kernel's field offsets.
pub fn programs_for(vmlinux: &[u8]) -> Result<Programs, FdIterError> {
    let btf = Btf::parse(vmlinux)?;
    let offsets = Offsets::of(&btf)?;
    Ok(Programs {
        fds: assemble(&offsets),
        sockets: SockOffsets::of(&btf).map(|s| assemble_sockets(&offsets, &s)),
        attach_to: btf.function("bpf_iter_task_file")?,
    })
}

/// An iterator of `prog` over the fd table of process `pid` (as this
/// process's pid namespace numbers it): only that process's table (Linux 6.1).
fn open(prog: &OwnedFd, pid: u32) -> Result<std::fs::File, FdIterError> {
    // `union bpf_iter_link_info`, its `task` member: tid, pid, pid_fd.
    let mut info = [0u32; 4];
    info[1] = pid;
    let link = syscall_fd("creating the iterator link", BPF_LINK_CREATE, |a| {
        put32(a, 0, prog.as_raw_fd() as u32);
        put32(a, 8, BPF_TRACE_ITER);
        put64(a, 16, info.as_ptr() as u64);
        put32(a, 24, std::mem::size_of_val(&info) as u32);
    })?;
    let iter = syscall_fd("opening the iterator", BPF_ITER_CREATE, |a| {
        put32(a, 0, link.as_raw_fd() as u32);
    })?;
    Ok(std::fs::File::from(iter))
}

/// The fd table in the fd-table program's records: (pid, fd, socket inode or 0).
fn read_table(file: std::fs::File) -> Result<FdTable, FdIterError> {
    let mut table = FdTable::default();
    read_records(file, RECORD, |r| {
        table.fds += 1;
        let inode = u64::from_ne_bytes([r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]]);
        if inode != 0 {
            let fd = u32::from_ne_bytes([r[4], r[5], r[6], r[7]]);
            table.sockets.push((fd, inode));
        }
    })?;
    Ok(table)
}

/// Reads an iterator to its end, handing each record of `size` bytes to
/// `each`; every record must be of one process (a kernel that ignores the
/// process asked for, before Linux 6.1, would report every process's fds
/// as this one's).
fn read_records(
    mut file: std::fs::File,
    size: usize,
    mut each: impl FnMut(&[u8]),
) -> Result<(), FdIterError> {
    let mut tgid = None;
    let mut buf = [0u8; 32 * 1024];
    let mut kept = 0;
    loop {
        let n = match file.read(&mut buf[kept..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(FdIterError::Syscall {
                    what: "reading the iterator",
                    source,
                });
            }
        };
        let filled = kept + n;
        let whole = filled - filled % size;
        for r in buf[..whole].chunks_exact(size) {
            let pid = u32::from_ne_bytes([r[0], r[1], r[2], r[3]]);
            if *tgid.get_or_insert(pid) != pid {
                return Err(FdIterError::NotOneProcess);
            }
            each(r);
        }
        buf.copy_within(whole..filled, 0);
        kept = filled - whole;
    }
    Ok(())
}

/// Loads an iterator program.
fn load(program: &[u8], attach_to: u32) -> Result<OwnedFd, FdIterError> {
    Ok(bpf::load(&ProgramSpec {
        what: "loading the iterator program",
        prog_type: BPF_PROG_TYPE_TRACING,
        name: b"connleak_fds",
        insns: program,
        attach_type: BPF_TRACE_ITER,
        attach_btf_id: attach_to,
    })?)
}

/// Where the program reads, in this kernel.
struct Offsets {
    meta: Field,
    task: Field,
    fd: Field,
    file: Field,
    seq: Field,
    tgid: Field,
    pid: Field,
    f_inode: Field,
    i_mode: Field,
    i_ino: Field,
}

impl Offsets {
    fn of(btf: &Btf) -> Result<Offsets, FdIterError> {
        let sized = |strukt, name, size| btf.sized(strukt, name, size);
        let ctx = "bpf_iter__task_file";
        Ok(Offsets {
            meta: sized(ctx, "meta", 8)?,
            task: sized(ctx, "task", 8)?,
            fd: sized(ctx, "fd", 4)?,
            file: sized(ctx, "file", 8)?,
            seq: sized("bpf_iter_meta", "seq", 8)?,
            tgid: sized("task_struct", "tgid", 4)?,
            pid: sized("task_struct", "pid", 4)?,
            f_inode: sized("file", "f_inode", 8)?,
            i_mode: sized("inode", "i_mode", 2)?,
            i_ino: sized("inode", "i_ino", 8)?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The fuzz seed (the records of a real kernel's BTF the programs need)
    /// goes the whole way, so that the fuzzer starts from a blob that does.
    #[test]
    fn the_btf_seed_gives_both_programs() {
        let seed = include_bytes!("../../../fuzz/seeds/btf/fd-iter");
        let programs = programs_for(seed).unwrap();
        assert!(!programs.fds.is_empty());
        assert!(programs.sockets.is_ok_and(|p| !p.is_empty()));
    }

    /// An iterator's output as a file: records of (pid, fd, inode).
    fn records(name: &str, recs: &[(u32, u32, u64)]) -> std::fs::File {
        let path =
            std::env::temp_dir().join(format!("connleak-fd-iter-{name}-{}", std::process::id()));
        let mut bytes = Vec::new();
        for &(pid, fd, inode) in recs {
            bytes.extend_from_slice(&pid.to_ne_bytes());
            bytes.extend_from_slice(&fd.to_ne_bytes());
            bytes.extend_from_slice(&inode.to_ne_bytes());
        }
        std::fs::write(&path, bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    #[test]
    fn a_table_counts_every_fd_and_keeps_the_sockets() {
        let t = read_table(records("one", &[(9, 0, 0), (9, 3, 77), (9, 4, 0)])).unwrap();
        assert_eq!(
            t,
            FdTable {
                fds: 3,
                sockets: vec![(3, 77)]
            }
        );
    }

    #[test]
    fn fds_of_another_process_are_refused_not_counted() {
        let mixed = read_table(records("mixed", &[(9, 0, 0), (10, 0, 5)]));
        assert!(matches!(mixed, Err(FdIterError::NotOneProcess)));
    }
}

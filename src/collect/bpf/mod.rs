//! The bpf(2) system call, as the programs assembled here need it: load a
//! program (with the verifier's last word when it refuses), create a map,
//! read one. Through libc, with `union bpf_attr` filled byte by byte as the
//! uapi header lays it out, so that neither a loader library nor a compiler
//! is needed to build connleak.

pub mod asm;
pub mod maps;

use std::ffi::CStr;
use std::os::fd::{FromRawFd, OwnedFd};

pub const BPF_PROG_LOAD: libc::c_long = 5;
/// Size of `union bpf_attr` in the uapi header this was written against;
/// the kernel accepts a shorter one as long as the rest would be zero.
pub const ATTR_LEN: usize = 144;
/// GPL-compatible, as `bpf_seq_write`, `bpf_probe_read_*` require; the programs are connleak's.
const LICENSE: &CStr = c"Dual MIT/GPL";

/// A bpf(2) call that failed, and what it was for.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct BpfError {
    pub what: &'static str,
    pub source: std::io::Error,
}

/// What a program is and where it will attach, for `BPF_PROG_LOAD`.
pub struct ProgramSpec<'a> {
    pub what: &'static str,
    pub prog_type: u32,
    /// 15 bytes at most.
    pub name: &'a [u8],
    pub insns: &'a [u8],
    /// `expected_attach_type` and `attach_btf_id` (0 for none).
    pub attach_type: u32,
    pub attach_btf_id: u32,
}

/// Loads a program; the verifier's log is asked for only to explain a refusal.
pub fn load(spec: &ProgramSpec) -> Result<OwnedFd, BpfError> {
    let attempt = |log: &mut [u8]| {
        syscall_fd(spec.what, BPF_PROG_LOAD, |a| {
            put32(a, 0, spec.prog_type);
            put32(a, 4, (spec.insns.len() / 8) as u32);
            put64(a, 8, spec.insns.as_ptr() as u64);
            put64(a, 16, LICENSE.as_ptr() as u64);
            if !log.is_empty() {
                put32(a, 24, 1);
                put32(a, 28, log.len() as u32);
                put64(a, 32, log.as_mut_ptr() as u64);
            }
            let name = &spec.name[..spec.name.len().min(15)];
            a[48..48 + name.len()].copy_from_slice(name);
            put32(a, 68, spec.attach_type);
            put32(a, 108, spec.attach_btf_id);
        })
    };
    attempt(&mut []).or_else(|first| {
        let mut log = vec![0u8; 64 * 1024];
        match attempt(&mut log) {
            Ok(fd) => Ok(fd),
            Err(BpfError { what, source }) if log[0] != 0 => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let last = String::from_utf8_lossy(&log[..end]);
                let last = last.lines().last().unwrap_or_default().to_string();
                Err(BpfError {
                    what,
                    source: std::io::Error::new(source.kind(), format!("{source}: {last}")),
                })
            }
            Err(_) => Err(first),
        }
    })
}

/// `bpf(cmd, attr)` for a command that returns a new fd.
pub fn syscall_fd(
    what: &'static str,
    cmd: libc::c_long,
    fill: impl FnOnce(&mut [u8; ATTR_LEN]),
) -> Result<OwnedFd, BpfError> {
    let fd = syscall(what, cmd, fill)?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `bpf(cmd, attr)`: its non-negative result, or the error.
pub fn syscall(
    what: &'static str,
    cmd: libc::c_long,
    fill: impl FnOnce(&mut [u8; ATTR_LEN]),
) -> Result<libc::c_long, BpfError> {
    let mut attr = [0u8; ATTR_LEN];
    fill(&mut attr);
    // SAFETY: `attr` is a `union bpf_attr` laid out as the uapi header says,
    // and every pointer in it points at memory that outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), ATTR_LEN) };
    if r < 0 {
        return Err(BpfError {
            what,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(r)
}

pub fn put32(attr: &mut [u8], at: usize, v: u32) {
    attr[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

pub fn put64(attr: &mut [u8], at: usize, v: u64) {
    attr[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

//! Where each TCP socket was born: the user-space call stack of the
//! `connect()` or `accept()` that made it, recorded by two BPF programs
//! while a trace runs, kept against the socket until it ends.
//!
//! The programs ([`program`]) are assembled here from this kernel's BTF, as
//! the fd iterator's are, and attach by name to raw tracepoints (`sys_exit`,
//! `inet_sock_set_state`): no compiler, no loader library, no tracefs. The
//! hot path records raw addresses only; [`symbols`] names the stacks of the
//! sockets a finding names, after the trace. Every map is preallocated and
//! of fixed size, so memory is bounded however long a trace runs: births
//! beyond the LRU map's capacity evict the oldest, stacks beyond the stack
//! map's are not stored, and [`Tally`] counts both. It needs CAP_BPF and
//! CAP_PERFMON (root) and a kernel with BTF; the programs only read.

mod program;
pub mod record;
pub mod symbols;
pub mod unwind;

pub use record::Birth;

use super::bpf::maps::{ARRAY, LRU_HASH, Map, STACK_TRACE};
use super::bpf::{self, BpfError, ProgramSpec, put32, put64, syscall_fd};
use super::btf::{Btf, BtfError};
use program::{Calls, MapFds, Offsets, TALLY_SLOTS};
use rustc_hash::FxHashMap;
use std::os::fd::{AsRawFd, OwnedFd};

const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
/// Sockets remembered at once: the oldest are evicted past this.
const BIRTHS: u32 = 16 * 1024;
/// Distinct stacks remembered, and frames kept of each (innermost first).
const STACKS: u32 = 4096;
const DEPTH: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("no kernel BTF ({0})")]
    NoBtf(std::io::Error),
    #[error("kernel BTF: {0}")]
    Btf(#[from] BtfError),
    #[error(transparent)]
    Bpf(#[from] BpfError),
}

impl TraceError {
    /// Whether privileges are what is missing.
    pub fn is_denied(&self) -> bool {
        matches!(self, TraceError::Bpf(e) if e.source.raw_os_error() == Some(libc::EPERM))
    }
}

/// The tracer, attached while it lives: its maps, programs and links.
pub struct Tracer {
    births: Map,
    stacks: Map,
    counts: Map,
    tally: Map,
    _attached: Vec<OwnedFd>,
}

/// What the tracer holds now.
#[derive(Debug, Default)]
pub struct Traced {
    /// The sockets born since the trace started and not ended, by inode.
    pub births: FxHashMap<u64, Birth>,
    pub tally: Tally,
}

/// The tracer's counters since it started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Births recorded, and those that ended since.
    pub recorded: u64,
    pub ended: u64,
    /// Births recorded without a stack (the stack map was full), and not recorded at all.
    pub no_stack: u64,
    pub not_recorded: u64,
}

/// How many sockets born at a stack began, and ended, since the trace started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub born: u64,
    pub ended: u64,
}

impl Tracer {
    /// Loads the programs and attaches them: from now on births are recorded.
    pub fn start() -> Result<Tracer, TraceError> {
        let vmlinux = std::fs::read("/sys/kernel/btf/vmlinux").map_err(TraceError::NoBtf)?;
        let offsets = offsets(&Btf::parse(&vmlinux)?)?;
        let births = Map::create(
            "creating the births map",
            LRU_HASH,
            8,
            record::RECORD,
            BIRTHS,
        )?;
        let stacks = Map::create("creating the stack map", STACK_TRACE, 4, 8 * DEPTH, STACKS)?;
        let counts = Map::create("creating the counts map", ARRAY, 4, 16, STACKS)?;
        let tally = Map::create("creating the tally map", ARRAY, 4, 8, TALLY_SLOTS)?;
        let fds = MapFds {
            births: births.raw(),
            stacks: stacks.raw(),
            counts: counts.raw(),
            tally: tally.raw(),
        };
        let calls = Calls {
            connect: libc::SYS_connect as i32,
            accept: libc::SYS_accept as i32,
            accept4: libc::SYS_accept4 as i32,
        };
        let born = load(b"connleak_births", &program::births(&offsets, fds, &calls))?;
        let ends = load(b"connleak_ends", &program::ends(fds))?;
        let mut attached = vec![attach(c"sys_exit", &born)?];
        attached.push(attach(c"inet_sock_set_state", &ends)?);
        attached.extend([born, ends]);
        Ok(Tracer {
            births,
            stacks,
            counts,
            tally,
            _attached: attached,
        })
    }

    /// The births it holds now, and its counters.
    pub fn read(&self) -> Traced {
        let births = self
            .births
            .keys()
            .iter()
            .filter_map(|k| record::parse(&self.births.lookup(k)?))
            .map(|b| (b.inode, b))
            .collect();
        let slot = |i: u32| self.u64_at(&self.tally, i, 0);
        Traced {
            births,
            tally: Tally {
                no_stack: slot(0),
                recorded: slot(1),
                not_recorded: slot(2),
                ended: slot(3),
            },
        }
    }

    /// The return addresses of stack `id`, innermost first.
    pub fn stack(&self, id: u32) -> Vec<u64> {
        let Some(bytes) = self.stacks.lookup(&id.to_ne_bytes()) else {
            return Vec::new();
        };
        bytes
            .chunks_exact(8)
            .filter_map(|w| Some(u64::from_ne_bytes(w.try_into().ok()?)))
            .take_while(|&ip| ip != 0)
            .collect()
    }

    /// The sockets born at stack `id`, and how many of them ended.
    pub fn counts(&self, id: u32) -> Counts {
        Counts {
            born: self.u64_at(&self.counts, id, 0),
            ended: self.u64_at(&self.counts, id, 8),
        }
    }

    fn u64_at(&self, map: &Map, index: u32, at: usize) -> u64 {
        map.lookup(&index.to_ne_bytes())
            .and_then(|v| Some(u64::from_ne_bytes(v.get(at..at + 8)?.try_into().ok()?)))
            .unwrap_or(0)
    }
}

/// Where the birth program reads, in this kernel (x86-64's `pt_regs`).
fn offsets(btf: &Btf) -> Result<Offsets, TraceError> {
    let sized = |strukt, name, size| btf.sized(strukt, name, size);
    let sk_protocol = btf.field("sock", "sk_protocol")?;
    if sk_protocol.size > 8 {
        return Err(BtfError::Size("sock.sk_protocol".to_string()).into());
    }
    Ok(Offsets {
        orig_ax: sized("pt_regs", "orig_ax", 8)?,
        di: sized("pt_regs", "di", 8)?,
        sp: sized("pt_regs", "sp", 8)?,
        files: sized("task_struct", "files", 8)?,
        fdt: sized("files_struct", "fdt", 8)?,
        max_fds: sized("fdtable", "max_fds", 4)?,
        fd: sized("fdtable", "fd", 8)?,
        f_inode: sized("file", "f_inode", 8)?,
        private_data: sized("file", "private_data", 8)?,
        i_ino: sized("inode", "i_ino", 8)?,
        socket_sk: sized("socket", "sk", 8)?,
        sk_protocol,
    })
}

fn load(name: &[u8], insns: &[u8]) -> Result<OwnedFd, BpfError> {
    bpf::load(&ProgramSpec {
        what: "loading the tracer's programs",
        prog_type: BPF_PROG_TYPE_RAW_TRACEPOINT,
        name,
        insns,
        attach_type: 0,
        attach_btf_id: 0,
    })
}

/// Attaches `prog` to the raw tracepoint `name`, by name (no tracefs).
fn attach(name: &std::ffi::CStr, prog: &OwnedFd) -> Result<OwnedFd, BpfError> {
    syscall_fd(
        "attaching to a raw tracepoint",
        BPF_RAW_TRACEPOINT_OPEN,
        |a| {
            put64(a, 0, name.as_ptr() as u64);
            put32(a, 8, prog.as_raw_fd() as u32);
        },
    )
}

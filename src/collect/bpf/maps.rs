//! BPF maps from user space: create one of a fixed size, look an entry up,
//! walk its keys. The kernel preallocates every map made here, so a map's
//! memory is fixed when it is created, however long it is used.

use super::{BpfError, put32, put64, syscall, syscall_fd};
use std::os::fd::{AsRawFd, OwnedFd};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;

/// `BPF_MAP_TYPE_*` used here.
pub const ARRAY: u32 = 2;
pub const STACK_TRACE: u32 = 7;
pub const LRU_HASH: u32 = 9;

/// A map: its fd, and the sizes its entries were made with.
pub struct Map {
    pub fd: OwnedFd,
    key_size: usize,
    value_size: usize,
}

impl Map {
    pub fn create(
        what: &'static str,
        map_type: u32,
        key_size: usize,
        value_size: usize,
        entries: u32,
    ) -> Result<Map, BpfError> {
        let fd = syscall_fd(what, BPF_MAP_CREATE, |a| {
            put32(a, 0, map_type);
            put32(a, 4, key_size as u32);
            put32(a, 8, value_size as u32);
            put32(a, 12, entries);
        })?;
        Ok(Map {
            fd,
            key_size,
            value_size,
        })
    }

    /// The fd as a program's `BPF_PSEUDO_MAP_FD` immediate.
    pub fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// The value under `key`, or `None` when there is none (or the key is
    /// not of the map's size).
    pub fn lookup(&self, key: &[u8]) -> Option<Vec<u8>> {
        if key.len() != self.key_size {
            return None;
        }
        let mut value = vec![0u8; self.value_size];
        syscall("reading a map", BPF_MAP_LOOKUP_ELEM, |a| {
            put32(a, 0, self.raw() as u32);
            put64(a, 8, key.as_ptr() as u64);
            put64(a, 16, value.as_mut_ptr() as u64);
        })
        .ok()?;
        Some(value)
    }

    /// Every key, each once. A key deleted during the walk makes the kernel
    /// start again from the first: the walk stops at a key seen before.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        let mut seen = rustc_hash::FxHashSet::default();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut next = vec![0u8; self.key_size];
        loop {
            let prev = keys.last().map_or(0, |k| k.as_ptr() as u64);
            let got = syscall("walking a map", BPF_MAP_GET_NEXT_KEY, |a| {
                put32(a, 0, self.raw() as u32);
                put64(a, 8, prev);
                put64(a, 16, next.as_mut_ptr() as u64);
            });
            if got.is_err() || !seen.insert(next.clone()) {
                return keys;
            }
            keys.push(next.clone());
        }
    }
}

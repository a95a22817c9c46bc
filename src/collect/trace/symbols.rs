//! Names for the addresses of a recorded stack, in the process that made
//! the socket: blazesym reads its mappings, the ELF symbols (Go binaries'
//! too), DWARF for file and line, and the perf maps a JIT writes
//! (`/tmp/perf-PID.map` under the process's own root: Node's
//! `--perf-basic-prof`, a JVM's agent, Python's `-X perf`). Only the
//! stacks a finding names are symbolized, once the trace is over; a process
//! gone by then leaves its frames unnamed.
//!
//! A frame-pointer walk from a system call skips the caller of a frameless
//! libc wrapper (glibc's `accept` sets up no frame): that caller's return
//! address is one of the words at the user stack pointer, which [`splice`]
//! puts back.

use crate::snapshot::Frame;
use blazesym::symbolize::source::{Process, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer};
use std::path::Path;

/// A symbolizer, its parsed files cached from one stack to the next.
pub struct Symbols {
    symbolizer: Symbolizer,
}

impl Default for Symbols {
    fn default() -> Self {
        Symbols {
            symbolizer: Symbolizer::new(),
        }
    }
}

impl Symbols {
    /// The named frames of `ips` in process `pid`, innermost first; frames
    /// nothing names are left out. Empty when the process is gone.
    pub fn frames(&self, pid: u32, ips: &[u64]) -> Vec<Frame> {
        let source = Source::Process(Process::new(pid.into()));
        let Ok(found) = self.symbolizer.symbolize(&source, Input::AbsAddr(ips)) else {
            return Vec::new();
        };
        found
            .into_iter()
            .filter_map(|s| match s {
                Symbolized::Sym(sym) => Some(Frame {
                    function: sym.name.into_owned(),
                    file: sym
                        .code_info
                        .as_ref()
                        .map(|c| {
                            let file = Path::new(&c.file);
                            c.dir.as_ref().map_or(file.to_path_buf(), |d| d.join(file))
                        })
                        .map(|p| p.to_string_lossy().into_owned()),
                    line: sym.code_info.as_ref().and_then(|c| c.line),
                    module: sym.module.map(|m| m.to_string_lossy().into_owned()),
                }),
                Symbolized::Unknown(_) => None,
            })
            .collect()
    }
}

/// The executable file mappings of process `pid` (start, end), from
/// `/proc/PID/maps` under `proc_root`; empty when it is gone.
pub fn code_ranges(proc_root: &Path, pid: u32) -> Vec<(u64, u64)> {
    std::fs::read_to_string(proc_root.join(pid.to_string()).join("maps"))
        .map(|maps| parse_code_ranges(&maps))
        .unwrap_or_default()
}

/// The executable mappings of a `maps` file (anonymous ones too: JIT code).
fn parse_code_ranges(maps: &str) -> Vec<(u64, u64)> {
    maps.lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let (start, end) = fields.next()?.split_once('-')?;
            let perms = fields.next()?;
            perms.contains('x').then_some(())?;
            Some((
                u64::from_str_radix(start, 16).ok()?,
                u64::from_str_radix(end, 16).ok()?,
            ))
        })
        .collect()
}

/// The stack with the caller of a frameless wrapper put back: the first of
/// the words at the stack pointer that points into code is the wrapper's
/// return address; it goes after the innermost frame unless the walk
/// already has it.
pub fn splice(stack: &[u64], words: &[u64], code: &[(u64, u64)]) -> Vec<u64> {
    let mut ips = stack.to_vec();
    let is_code = |w: u64| code.iter().any(|&(s, e)| (s..e).contains(&w));
    if let Some(&ret) = words.iter().find(|&&w| is_code(w))
        && !ips.is_empty()
        && !ips.contains(&ret)
    {
        ips.insert(1, ret);
    }
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1234 /srv/server
55d0c0a01000-55d0c0a02000 r-xp 00001000 08:01 1234 /srv/server
7f0000000000-7f0000100000 r-xp 00028000 08:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
";

    #[test]
    fn only_executable_mappings_are_code() {
        assert_eq!(
            parse_code_ranges(MAPS),
            [
                (0x55d0c0a01000, 0x55d0c0a02000),
                (0x7f0000000000, 0x7f0000100000)
            ]
        );
    }

    #[test]
    fn the_callers_return_address_goes_back_after_the_wrapper() {
        let code = parse_code_ranges(MAPS);
        // __libc_accept, serve_forever, main: accept_client is missing.
        let stack = [0x7f0000000100, 0x55d0c0a01200, 0x55d0c0a01300];
        // At the stack pointer: a stack address, then accept_client's return address.
        let words = [0x7ffd00000010, 0x55d0c0a01100, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            splice(&stack, &words, &code),
            [
                0x7f0000000100,
                0x55d0c0a01100,
                0x55d0c0a01200,
                0x55d0c0a01300
            ]
        );
        // A wrapper with a frame: its caller is already there, nothing is added.
        let walked = [0x7f0000000100, 0x55d0c0a01100, 0x55d0c0a01200];
        assert_eq!(splice(&walked, &words, &code), walked);
        // No code pointer at the stack pointer: the stack as walked.
        assert_eq!(splice(&stack, &[7; 8], &code), stack);
    }
}

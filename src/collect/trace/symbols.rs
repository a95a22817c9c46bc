//! Names for the addresses of a recorded stack, in the process that made
//! the socket: blazesym reads its mappings, the ELF symbols (Go binaries'
//! too), DWARF for file and line, and the perf maps a JIT writes
//! (`/tmp/perf-PID.map` under the process's own root: Node's
//! `--perf-basic-prof`, a JVM's agent, Python's `-X perf`). Only the
//! stacks a finding names are symbolized, once the trace is over; a process
//! gone by then leaves its frames unnamed.

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

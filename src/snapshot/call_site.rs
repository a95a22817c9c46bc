//! Where sockets were born, as the trace saw it: plain data that a finding
//! carries (`call_sites` in the JSON contract). The strings are the traced
//! program's (its thread names, its symbols): untrusted, escaped wherever
//! they are printed.

use serde::Serialize;

/// One frame of a call stack, named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Frame {
    pub function: String,
    /// The source file and line, from DWARF, where the binary has them.
    pub file: Option<String>,
    pub line: Option<u32>,
    /// The binary or library it is in; `None` for JIT code (named from a perf map).
    pub module: Option<String>,
}

/// The sockets of a finding that one stack, in one thread, made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallSite {
    /// The finding's sockets born here.
    pub count: u64,
    /// The name of the thread that made them (the first one seen).
    pub thread: String,
    /// Innermost first: the `connect()` or `accept()` wrapper, then its callers.
    pub frames: Vec<Frame>,
    /// Every socket born at this stack during the trace (the finding's or
    /// not), those that ended (reached CLOSE), and those still open.
    pub born: u64,
    pub closed: u64,
    pub open: u64,
}

//! Renderers: a [`Report`](crate::report::Report) in, text out. No clock, no
//! reads of the system: the same report always renders the same bytes.

pub mod escape;
pub mod explain;
pub mod table;

use crate::report::Report;
use std::io::{self, Write};

/// The JSON contract, pretty-printed, one trailing newline.
pub fn json(out: &mut impl Write, report: &Report) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}

//! Renderers: a [`Report`](crate::report::Report) in, text out. No clock, no
//! reads of the system: the same report always renders the same bytes.

pub mod check;
pub mod escape;
pub mod explain;
pub mod prometheus;
pub mod table;

use crate::report::Report;
use std::io::{self, Write};

/// The JSON contract, pretty-printed, one trailing newline.
pub fn json(out: &mut impl Write, report: &Report) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}

/// Several namespaces' reports: `{"schema_version", "status", "namespaces": [report, ...]}`.
pub fn json_all(
    out: &mut impl Write,
    status: crate::report::Status,
    reports: &[&Report],
) -> io::Result<()> {
    #[derive(serde::Serialize)]
    struct All<'a> {
        schema_version: u32,
        status: crate::report::Status,
        namespaces: &'a [&'a Report],
    }
    let all = All {
        schema_version: crate::report::SCHEMA_VERSION,
        status,
        namespaces: reports,
    };
    serde_json::to_writer_pretty(&mut *out, &all)?;
    writeln!(out)
}

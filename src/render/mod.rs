//! Renderers: reports in, text out. No clock, no reads of the system: the
//! same reports always render the same bytes. The output format is chosen
//! once, as a [`Format`], and every renderer takes the same input — the
//! labelled report of each namespace.

pub mod call_sites;
pub mod check;
pub mod explain;
pub mod processes;
pub mod prometheus;
pub mod table;
pub mod text;
pub mod workload;

use crate::diagnose::Thresholds;
use crate::report::{Labelled, Report, SCHEMA_VERSION, Status, worst};
use std::io::{self, Write};

/// How to render.
#[derive(Debug, Clone, Copy)]
pub enum Format {
    /// The human report.
    Table(table::Style),
    /// The JSON contract; `namespaces` wraps the reports in a list even when
    /// there is one (`--all-netns`).
    Json { namespaces: bool },
    /// Prometheus' text exposition format.
    Prometheus,
    /// The monitoring-plugin line, with each finding's evidence when `verbose`.
    Check {
        thresholds: Thresholds,
        verbose: bool,
    },
}

/// Renders `reports` in `format`.
pub fn write(out: &mut impl Write, format: Format, reports: &[Labelled]) -> io::Result<()> {
    match format {
        Format::Table(style) => table::write_all(out, reports, style),
        Format::Json { namespaces } => match reports {
            [one] if !namespaces => json(out, one.report),
            many => json_all(out, worst(many), many),
        },
        Format::Prometheus => prometheus::write(out, reports),
        Format::Check {
            thresholds,
            verbose,
        } => check::write(out, reports, thresholds, verbose),
    }
}

/// The JSON contract, pretty-printed, one trailing newline.
pub fn json(out: &mut impl Write, report: &Report) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}

/// Several namespaces' reports: `{"schema_version", "status", "namespaces": [report, ...]}`.
fn json_all(out: &mut impl Write, status: Status, reports: &[Labelled]) -> io::Result<()> {
    #[derive(serde::Serialize)]
    struct All<'a> {
        schema_version: u32,
        status: Status,
        namespaces: Vec<&'a Report>,
    }
    let all = All {
        schema_version: SCHEMA_VERSION,
        status,
        namespaces: reports.iter().map(|l| l.report).collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &all)?;
    writeln!(out)
}

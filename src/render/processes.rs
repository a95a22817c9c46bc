//! The process table of the human report: who holds TCP sockets, in which
//! states, how close to the fd limit. It fits the terminal without ever
//! splitting a number or a header: on a narrow one the low-value columns go
//! first (RUNTIME, shown only when a runtime was recognised, then THR,
//! LIMIT, OTHER), then process and workload names are cut with an
//! ellipsis, then the trend, UNRELEASED, LISTEN, ESTAB and WORKLOAD columns
//! go. PID, PROCESS, CLOSE_WAIT and FDS always stay. UNRELEASED (TCP
//! sockets the kernel closed and the process still holds) is there only when
//! some process has one; WORKLOAD (the unit, container or pod) only when some
//! process runs in one.

use super::text::{escape, per_minute, sparkline, truncate, visible_width};
use crate::report::{ProcessReport, Report};
use crate::tcp::TcpState;
use comfy_table::{
    CellAlignment, ContentArrangement, ContentLineStyle, LineStyle, Table, TableStyle,
};
use std::io::{self, Write};

/// Columns as `ps` prints them: no borders, a dashed line under the header.
const PLAIN: TableStyle = TableStyle::new()
    .header_lines(ContentLineStyle::none())
    .header_separator(LineStyle::none().fill('-').junction(' '))
    .content_lines(ContentLineStyle::none());

/// How many processes the table shows; `--json` has them all.
const MAX_ROWS: usize = 20;

/// The narrowest a process name is cut to before optional columns go.
const MIN_NAME: usize = 8;

/// The narrowest a workload name is cut to before optional columns go.
const MIN_WORKLOAD: usize = 12;

struct Column {
    header: &'static str,
    cells: Vec<String>,
    numeric: bool,
}

impl Column {
    /// Its width on screen: the widest cell, one space of padding each side.
    fn width(&self) -> usize {
        self.cells
            .iter()
            .map(|c| visible_width(c))
            .chain([self.header.len()])
            .max()
            .unwrap_or(0)
            + 2
    }
}

/// Width of the whole table: the columns and one separator between each two.
fn table_width(columns: &[Column]) -> usize {
    columns.iter().map(Column::width).sum::<usize>() + columns.len().saturating_sub(1)
}

pub fn write(out: &mut impl Write, r: &Report, width: usize) -> io::Result<()> {
    let procs = &r.processes;
    if procs.is_empty() {
        return writeln!(out, "No process we could read holds a TCP socket.");
    }
    let shown = &procs[..procs.len().min(MAX_ROWS)];
    let mut columns = columns(shown, r.window.as_ref().map(|w| w.seconds));
    fit(&mut columns, width);
    writeln!(out, "Processes holding TCP sockets")?;
    writeln!(out, "{}", table(&columns, shown.len()).trim_fmt())?;
    if procs.len() > MAX_ROWS {
        writeln!(
            out,
            "... and {} more (all of them in --json)",
            procs.len() - MAX_ROWS
        )?;
    }
    Ok(())
}

/// The first `rows` rows of `columns` laid out as `ps` does, numbers right-aligned.
fn table(columns: &[Column], rows: usize) -> Table {
    let mut t = Table::new();
    t.load_style(PLAIN)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(columns.iter().map(|c| c.header));
    for row in 0..rows {
        t.add_row(columns.iter().map(|c| c.cells[row].as_str()));
    }
    for (i, c) in columns.iter().enumerate() {
        if let (true, Some(col)) = (c.numeric, t.column_mut(i)) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// Every column, filled; the trend column only over a sample window.
fn columns(procs: &[ProcessReport], window_seconds: Option<f64>) -> Vec<Column> {
    let col = |header, numeric, cell: &dyn Fn(&ProcessReport) -> String| Column {
        header,
        cells: procs.iter().map(cell).collect(),
        numeric,
    };
    let n = |p: &ProcessReport, st| p.states.get(&st).copied().unwrap_or(0);
    let dash = || "-".to_string();
    let mut columns = vec![
        col("PID", true, &|p| p.pid.to_string()),
        col("PROCESS", false, &|p| escape(&p.comm).into_owned()),
        col("WORKLOAD", false, &|p| {
            p.workload
                .as_ref()
                .map_or_else(dash, |w| escape(&w.name).into_owned())
        }),
        col("LISTEN", true, &|p| n(p, TcpState::Listen).to_string()),
        col("ESTAB", true, &|p| n(p, TcpState::Established).to_string()),
        col("CLOSE_WAIT", true, &|p| {
            n(p, TcpState::CloseWait).to_string()
        }),
        col("OTHER", true, &|p| {
            let named = [TcpState::Listen, TcpState::Established, TcpState::CloseWait];
            let all: u64 = p.states.values().sum();
            (all - named.iter().map(|&st| n(p, st)).sum::<u64>()).to_string()
        }),
        col("FDS", true, &|p| p.fds.to_string()),
        col("UNRELEASED", true, &|p| p.closed_tcp_fds.to_string()),
        col("LIMIT", true, &|p| {
            p.fd_limit.map_or_else(dash, |l| l.to_string())
        }),
        col("THR", true, &|p| {
            p.threads.map_or_else(dash, |n| n.to_string())
        }),
    ];
    if procs.iter().all(|p| p.workload.is_none()) {
        columns.retain(|c| c.header != "WORKLOAD");
    }
    if procs.iter().all(|p| p.closed_tcp_fds == 0) {
        columns.retain(|c| c.header != "UNRELEASED");
    }
    if procs.iter().any(|p| p.runtime.is_some()) {
        columns.push(col("RUNTIME", false, &|p| {
            p.runtime.map_or_else(dash, |r| r.name().to_string())
        }));
    }
    if let Some(seconds) = window_seconds {
        columns.push(col("SOCKETS TREND", false, &|p| {
            p.trend
                .as_ref()
                .map_or_else(dash, |t| trend_cell(&t.counts, seconds))
        }));
    }
    columns
}

/// Drops and narrows columns until the table fits `width`, in the order the
/// module doc gives; numbers are never cut.
fn fit(columns: &mut Vec<Column>, width: usize) {
    let drop = |columns: &mut Vec<Column>, header: &str| {
        if table_width(columns) > width {
            columns.retain(|c| c.header != header);
        }
    };
    for header in ["RUNTIME", "THR", "LIMIT", "OTHER"] {
        drop(columns, header);
    }
    for (header, min) in [("PROCESS", MIN_NAME), ("WORKLOAD", MIN_WORKLOAD)] {
        let over = table_width(columns).saturating_sub(width);
        if let Some(names) = columns.iter_mut().find(|c| c.header == header) {
            let to = (names.width() - 2).saturating_sub(over).max(min);
            for cell in &mut names.cells {
                *cell = truncate(cell, to);
            }
        }
    }
    for header in ["SOCKETS TREND", "UNRELEASED", "LISTEN", "ESTAB", "WORKLOAD"] {
        drop(columns, header);
    }
}

/// A process's socket count over the window: `▁▃▅█ +12/min`.
fn trend_cell(counts: &[u64], seconds: f64) -> String {
    let (first, last) = (
        counts.first().copied().unwrap_or(0),
        counts.last().copied().unwrap_or(0),
    );
    let per_s = (last as f64 - first as f64) / seconds.max(0.001);
    format!("{} {}", sparkline(counts), per_minute(per_s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(header: &'static str, numeric: bool, cell: &str) -> Column {
        Column {
            header,
            cells: vec![cell.to_string()],
            numeric,
        }
    }

    /// A long workload name is cut, then its column goes, before CLOSE_WAIT
    /// or FDS; numbers stay whole.
    #[test]
    fn workload_gives_way_before_the_counts() {
        for width in [80, 60, 50, 44] {
            let mut columns = vec![
                column("PID", true, "4194304"),
                column("PROCESS", false, "postgres-writer-process"),
                column("WORKLOAD", false, "kube-system/coredns-5d78c9869d-abcde"),
                column("LISTEN", true, "1"),
                column("ESTAB", true, "12345"),
                column("CLOSE_WAIT", true, "412345"),
                column("OTHER", true, "7"),
                column("FDS", true, "1048576"),
                column("LIMIT", true, "1048576"),
                column("THR", true, "200"),
            ];
            fit(&mut columns, width);
            assert!(table_width(&columns) <= width, "{width}");
            let cell = |h: &str| {
                columns
                    .iter()
                    .find(|c| c.header == h)
                    .map(|c| c.cells[0].clone())
            };
            assert_eq!(cell("CLOSE_WAIT").as_deref(), Some("412345"));
            assert_eq!(cell("FDS").as_deref(), Some("1048576"));
            assert_eq!(cell("PID").as_deref(), Some("4194304"));
            if width >= 60 {
                let w = cell("WORKLOAD").unwrap_or_default();
                assert!(
                    w.starts_with("kube-system") && w.ends_with('…'),
                    "{width}: {w}"
                );
            }
        }
    }
    use std::collections::BTreeMap;

    #[test]
    fn the_runtime_column_goes_first() {
        let all = || {
            vec![
                column("PID", false, "12345"),
                column("PROCESS", false, "java"),
                column("CLOSE_WAIT", false, "12"),
                column("FDS", false, "24"),
                column("THR", false, "18"),
                column("RUNTIME", false, "jvm"),
            ]
        };
        let mut wide = all();
        fit(&mut wide, 200);
        assert_eq!(wide.len(), 6);
        let mut narrow = all();
        let width = table_width(&narrow) - 1;
        fit(&mut narrow, width);
        let headers: Vec<&str> = narrow.iter().map(|c| c.header).collect();
        assert_eq!(headers, ["PID", "PROCESS", "CLOSE_WAIT", "FDS", "THR"]);
    }

    fn process(closed_tcp_fds: u32) -> ProcessReport {
        ProcessReport {
            pid: 4242,
            comm: "server".to_string(),
            cmdline: String::new(),
            uid: None,
            states: BTreeMap::from([(TcpState::Listen, 1), (TcpState::Established, 3)]),
            fds: 120,
            fd_limit: Some(1024),
            threads: Some(4),
            workload: None,
            runtime: None,
            libraries: Vec::new(),
            closed_tcp_fds,
            trend: None,
        }
    }

    /// Regression: a process named in CJK characters (two columns each)
    /// was measured in characters, and made a 92-column table for 80.
    #[test]
    fn a_cjk_name_fits_the_width() {
        let name = "数据库连接池服务进程".repeat(4);
        let mut procs = vec![process(0), process(0)];
        procs[0].comm = name.clone();
        for width in [80, 60] {
            let mut columns = columns(&procs, None);
            fit(&mut columns, width);
            for line in table(&columns, procs.len()).trim_fmt().lines() {
                let columns = unicode_width::UnicodeWidthStr::width(line);
                assert!(columns <= width, "{width}: {columns} columns: {line}");
            }
        }
    }

    fn headers(columns: &[Column]) -> Vec<&str> {
        columns.iter().map(|c| c.header).collect()
    }

    #[test]
    fn unreleased_column_only_when_some_process_has_one() {
        assert!(!headers(&columns(&[process(0)], None)).contains(&"UNRELEASED"));
        let mut with = columns(&[process(0), process(37)], None);
        assert!(headers(&with).contains(&"UNRELEASED"));
        assert_eq!(
            with.iter()
                .find(|c| c.header == "UNRELEASED")
                .map(|c| c.cells.clone()),
            Some(vec!["0".to_string(), "37".to_string()])
        );
        // Narrow: it goes after THR, LIMIT, OTHER and before LISTEN and ESTAB.
        let without = table_width(&with) - "UNRELEASED".len() - 3;
        let narrow = without - "THR".len() - "LIMIT".len() - "OTHER".len() - 9;
        fit(&mut with, narrow);
        assert_eq!(
            headers(&with),
            ["PID", "PROCESS", "LISTEN", "ESTAB", "CLOSE_WAIT", "FDS"]
        );
    }
}

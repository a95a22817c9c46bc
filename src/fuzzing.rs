//! Entry points for the fuzz targets in `fuzz/` and for the test that replays
//! what they found (`tests/fuzz_regressions.rs`). Each takes arbitrary bytes
//! and feeds them to every parser of one kind of untrusted input: a snapshot
//! file (then the whole diagnosis and every renderer), `/proc` text, or a
//! kernel binary format (a sock_diag netlink datagram, BTF). Whatever the
//! bytes, none may panic, loop or allocate without bound; errors are fine.

use crate::collect::{
    cgroup, fd_iter, kernel, proc_net, procfs, sock_diag, sock_lookup, tasks, workload,
};
use crate::diagnose::{Thresholds, Window};
use crate::render::{self, Format};
use crate::report::{Labelled, Report};
use crate::snapshot::Snapshot;
use std::collections::BTreeMap;

/// A `--from` file: load it, diagnose it (alone and as the second sample of
/// a window), and render the reports every way connleak can.
pub fn snapshot(bytes: &[u8]) {
    let Ok(snapshot) = Snapshot::from_json(bytes) else {
        return;
    };
    let thresholds = Thresholds::default();
    let mut window = Window::keeping(2);
    let alone = Report::build_in(&snapshot, thresholds, &window);
    alone.record(&snapshot, &mut window);
    let trend = Report::build_in(&snapshot, thresholds, &window);
    let style = render::table::Style {
        color: true,
        width: 80,
        live: true,
    };
    let formats = [
        Format::Table(style),
        Format::Json { namespaces: false },
        Format::Json { namespaces: true },
        Format::Prometheus,
        Format::Check {
            thresholds,
            verbose: true,
        },
    ];
    let mut out = Vec::new();
    for report in [&alone, &trend] {
        let labelled = [Labelled {
            label: Some("ns"),
            report,
        }];
        for format in formats {
            let _ = render::write(&mut out, format, &labelled);
        }
    }
}

/// Any `/proc` file connleak reads as text, through each of its parsers,
/// and the container runtimes' metadata files (JSON) through theirs.
pub fn proc_text(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let _ = proc_net::parse("fuzz", bytes, &mut Vec::new());
    let _ = kernel::parse_counters(&text, &mut BTreeMap::new());
    kernel::sockstat_tcp(&text);
    kernel::port_range(&text);
    kernel::port_list(&text);
    tasks::parse_stat(&text);
    tasks::parse_syscall(&text);
    tasks::poll_args(&text);
    procfs::open_files_limit(&text);
    procfs::socket_inode(bytes);
    procfs::cmdline_text(bytes);
    procfs::lossless_text(bytes);
    workload::telling_path(&text).map(crate::snapshot::workload::place);
    crate::snapshot::workload::place(&text);
    cgroup::cgroup2_mount(&text, std::path::Path::new("/host"));
    workload::docker_names(bytes);
    workload::oci_names(bytes, ["a", "b", "c"]);
    workload::storage_name(bytes, "id");
}

/// One datagram of a sock_diag dump, the same bytes as the answers to
/// exact requests, and as a `tcp_info`.
pub fn netlink(bytes: &[u8]) {
    let _ = sock_diag::decode_datagram(bytes, &mut Vec::new());
    let _ = sock_lookup::decode_answers(bytes);
    sock_diag::decode_tcp_info(bytes);
}

/// Kernel BTF (`/sys/kernel/btf/vmlinux`), as the fd iterator reads it:
/// every field offset its two programs need, and the function they attach to.
pub fn btf(bytes: &[u8]) {
    let _ = fd_iter::programs_for(bytes);
}

//! Per-phase wall times, for the benchmark and for anyone asking where a run
//! spends its time: with `CONNLEAK_TIMINGS=1` in the environment each phase
//! writes one line to stderr (`connleak: timing PHASE MS ms`), measured where
//! it happens, and one with the peak resident memory so far. Without it a phase costs one cached environment check.

use std::sync::OnceLock;
use std::time::Instant;

/// Whether `CONNLEAK_TIMINGS` asks for the lines (any value but empty or `0`).
fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var_os("CONNLEAK_TIMINGS").is_some_and(|v| !v.is_empty() && v != "0")
    })
}

/// Runs `f`, and says how long it took when timings are asked for.
pub fn phase<T>(name: &str, f: impl FnOnce() -> T) -> T {
    if !enabled() {
        return f();
    }
    let started = Instant::now();
    let out = f();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    crate::output::stderr_line(&format!("connleak: timing {name} {ms:.1} ms"));
    if let Some(peak) = peak_rss_kib() {
        crate::output::stderr_line(&format!("connleak: peak RSS after {name} {peak} KiB"));
    }
    out
}

/// The process's peak resident set so far (`VmHWM`), to tell which phase sets it.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// Says how a phase went about its work (which path it took), when timings are asked for.
pub fn note(text: &str) {
    if enabled() {
        crate::output::stderr_line(&format!("connleak: note {text}"));
    }
}

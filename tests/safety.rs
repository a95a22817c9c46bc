//! connleak in an on-call engineer's hands: it never destroys a file it is
//! told to write, its `check` status survives its output, no input panics
//! it, and a flag that would do nothing is refused. Runs the built binary;
//! the parts that need root say SKIP without it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{CONNLEAK, fixture, say};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn connleak(args: &[&str]) -> Command {
    let mut cmd = Command::new(CONNLEAK);
    cmd.args(args)
        .env_remove("CONNLEAK_BACKTRACE")
        .env_remove("NO_COLOR");
    cmd
}

fn run(args: &[&str]) -> Output {
    connleak(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A private temporary directory, removed when dropped (also on failure).
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("connleak-safety-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The Prometheus output of the leak fixture, `--output` to `path`.
fn prometheus_to(path: &Path) -> Output {
    run(&[
        "--from",
        &fixture("leak.json"),
        "--prometheus",
        "--output",
        path.to_str().unwrap(),
    ])
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn assert_refused(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(2), "{}", stderr(out));
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("connleak: error: "), "{err}");
    assert!(err.contains(needle), "{err}");
}

/// Puts `/dev/null` back if a run replaced it, so that a failing test does
/// not leave the host broken.
struct DevNullGuard;

impl DevNullGuard {
    fn is_char_device() -> bool {
        std::fs::metadata("/dev/null").is_ok_and(|m| m.file_type().is_char_device())
    }
}

impl Drop for DevNullGuard {
    fn drop(&mut self) {
        if !Self::is_char_device() {
            let _ = std::fs::remove_file("/dev/null");
            let _ = Command::new("mknod")
                .args(["-m", "666", "/dev/null", "c", "1", "3"])
                .status();
        }
    }
}

#[test]
fn output_to_dev_null_leaves_it_a_device() {
    if !is_root() {
        say("SKIP output_to_dev_null_leaves_it_a_device: needs root (it would replace /dev/null)");
        return;
    }
    let _guard = DevNullGuard;
    for args in [
        vec!["--from", &*fixture("leak.json"), "--output", "/dev/null"],
        vec!["--save", "/dev/null", "--output", "/dev/null"],
    ] {
        let out = run(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(
            DevNullGuard::is_char_device(),
            "{args:?} replaced /dev/null"
        );
    }
}

#[test]
fn output_to_a_fifo_writes_through_it() {
    let dir = TempDir::new("fifo");
    let fifo = dir.path("out.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // Nobody reads: refused at once, not a hang.
    let out = run(&[
        "--from",
        &fixture("leak.json"),
        "--output",
        fifo.to_str().unwrap(),
    ]);
    assert_refused(&out, "is a FIFO that nobody reads");
    // Opened read-write, the FIFO has a reader that never sees end-of-file;
    // the report (a few KiB) fits in its buffer.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let out = run(&[
        "--from",
        &fixture("leak.json"),
        "--output",
        fifo.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut got = vec![0u8; 1 << 16];
    let n = reader.read(&mut got).unwrap();
    let expected = run(&["--from", &fixture("leak.json")]).stdout;
    assert_eq!(&got[..n], &expected[..]);
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn output_to_a_directory_is_refused() {
    let dir = TempDir::new("dir");
    let out = run(&[
        "--from",
        &fixture("leak.json"),
        "--output",
        dir.0.to_str().unwrap(),
    ]);
    assert_refused(&out, "is a directory");
    assert!(dir.0.is_dir());
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 0);
}

#[test]
fn a_regular_file_is_replaced_atomically() {
    let dir = TempDir::new("regular");
    let target = dir.path("connleak.prom");
    std::fs::write(&target, "old\n").unwrap();
    // A hard link keeps the old inode: an in-place write would change it too.
    let old = dir.path("old-link");
    std::fs::hard_link(&target, &old).unwrap();
    let link = dir.path("via-symlink.prom");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = prometheus_to(&link);
    assert!(out.status.success(), "{}", stderr(&out));
    let written = std::fs::read_to_string(&target).unwrap();
    assert!(written.starts_with("# HELP"), "{written}");
    assert_eq!(std::fs::read_to_string(&old).unwrap(), "old\n");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the symbolic link was replaced instead of the file it points to"
    );
    assert_eq!(
        names(&dir.0),
        ["connleak.prom", "old-link", "via-symlink.prom"]
    );
}

/// Regression: the temporary file was `FILE.tmp.PID`, opened truncating and
/// following links, so a link planted under that name (`exec` keeps the
/// pid) made root overwrite the file it pointed to.
#[test]
fn a_link_planted_at_a_temporary_name_is_not_written_through() {
    let dir = TempDir::new("planted");
    let victim = dir.path("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let target = dir.path("out.prom");
    let script = format!(
        "umask 022; ln -s {victim} {target}.tmp.$$; exec {CONNLEAK} --from {leak} \
         --prometheus --output {target}",
        victim = victim.display(),
        target = target.display(),
        leak = fixture("leak.json"),
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let meta = std::fs::symlink_metadata(&target).unwrap();
    assert!(meta.is_file(), "{target:?} is not a regular file");
    assert_eq!(
        meta.mode() & 0o777,
        0o644,
        "a new file's mode, as umask 022 gives"
    );
    assert!(
        std::fs::read_to_string(&target)
            .unwrap()
            .starts_with("# HELP")
    );
    // Only the planted link is left beside it: no temporary file remains.
    let names = names(&dir.0);
    assert!(
        names.len() == 3 && names[0] == "out.prom" && names[1].starts_with("out.prom.tmp."),
        "{names:?}"
    );
}

/// Regression: a link to a file not written yet was replaced by a regular
/// file; its target is created and the link stays a link (`--output` and
/// `--save`, relative links, a link to a link).
#[test]
fn a_dangling_link_gets_its_target_created() {
    let dir = TempDir::new("dangling");
    std::fs::create_dir(dir.path("data")).unwrap();
    let output = dir.path("link.prom");
    let saved = dir.path("snapshot.json");
    std::os::unix::fs::symlink("data/target.prom", &output).unwrap();
    std::os::unix::fs::symlink("data/link.json", &saved).unwrap();
    std::os::unix::fs::symlink("saved.json", dir.path("data/link.json")).unwrap();
    let out = prometheus_to(&output);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = dir.path("report.txt");
    let args = ["--save", saved.to_str().unwrap(), "--output"];
    let out = run(&[&args[..], &[report.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    for link in [&output, &saved, &dir.path("data/link.json")] {
        let meta = std::fs::symlink_metadata(link).unwrap();
        assert!(meta.file_type().is_symlink(), "{link:?} was replaced");
    }
    let written = std::fs::read_to_string(dir.path("data/target.prom")).unwrap();
    assert!(written.starts_with("# HELP"), "{written}");
    let snapshot = std::fs::read_to_string(dir.path("data/saved.json")).unwrap();
    assert!(snapshot.starts_with('{'), "{snapshot}");
    assert_eq!(
        names(&dir.path("data")),
        ["link.json", "saved.json", "target.prom"]
    );
}

/// A stream whose reader is already gone: writing to it fails with EPIPE,
/// as `connleak check | true` does once `true` has exited.
fn closed_stream() -> (Stdio, Stdio) {
    let (writer, reader) = UnixStream::pair().unwrap();
    drop(reader);
    let other = writer.try_clone().unwrap();
    (
        Stdio::from(OwnedFd::from(writer)),
        Stdio::from(OwnedFd::from(other)),
    )
}

/// Runs connleak with stdout (and stderr, when `both`) into a stream whose
/// reader is already gone.
fn into_closed_pipe(args: &[&str], both: bool) -> Output {
    let (out, err) = closed_stream();
    let mut cmd = connleak(args);
    cmd.stdout(out);
    if both {
        cmd.stderr(err);
    } else {
        cmd.stderr(Stdio::piped());
    }
    cmd.output().unwrap()
}

fn into_dev_full(args: &[&str]) -> Output {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    connleak(args).stdout(full).output().unwrap()
}

#[test]
fn checks_status_survives_its_output() {
    let warning = ["check", "--from", &*fixture("leak.json")].map(String::from);
    let critical = ["check", "--from", &*fixture("fd-limit.json")].map(String::from);
    let ok = ["check", "--from", &*fixture("tw-server.json")].map(String::from);
    for (args, code) in [(&warning, 1), (&critical, 2), (&ok, 0)] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let piped = into_closed_pipe(&args, false);
        assert_eq!(piped.status.code(), Some(code), "{args:?} | true");
        assert!(piped.stderr.is_empty(), "{}", stderr(&piped));
        let full = into_dev_full(&args);
        assert_eq!(full.status.code(), Some(code), "{args:?} > /dev/full");
        let err = stderr(&full);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("writing stdout: No space left on device"),
            "{err}"
        );
    }
    // Nothing collected: UNKNOWN, whatever became of the status line.
    let unknown = ["--netns", "connleak-test-no-such-namespace", "check"];
    assert_eq!(into_closed_pipe(&unknown, false).status.code(), Some(3));
    let full = into_dev_full(&unknown);
    assert_eq!(full.status.code(), Some(3));
    assert!(
        stderr(&full).starts_with("CONNLEAK UNKNOWN - "),
        "{}",
        stderr(&full)
    );
    assert_eq!(into_closed_pipe(&unknown, true).status.code(), Some(3));
    // The report: a full disk is an error, a reader that left is not.
    let report = ["--from", &*fixture("leak.json")];
    assert_eq!(into_dev_full(&report).status.code(), Some(2));
    assert_eq!(into_closed_pipe(&report, true).status.code(), Some(0));
}

/// Runs connleak with stdout closed (`connleak ARGS >&-`).
fn with_stdout_closed(args: &[&str]) -> Output {
    Command::new("sh")
        .args(["-c", "exec \"$0\" \"$@\" >&-", CONNLEAK])
        .args(args)
        .env_remove("CONNLEAK_BACKTRACE")
        .output()
        .unwrap()
}

/// Regression: Rust's runtime puts /dev/null on a closed stdout, so
/// `connleak >&-` wrote its report nowhere and exited 0. Now: exit 2 and one
/// line on stderr; `check` keeps the status it found (as with a full disk)
/// and says UNKNOWN on stderr when it found none; `--output FILE` needs no
/// stdout.
#[test]
fn a_closed_stdout_is_an_error() {
    let leak = fixture("leak.json");
    let said = |out: &Output, code: i32, start: &str| {
        assert_eq!(out.status.code(), Some(code), "{}", stderr(out));
        let err = stderr(out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(start), "{err}");
    };
    let bad_fd = "connleak: error: writing stdout: Bad file descriptor";
    said(&with_stdout_closed(&["--from", &leak]), 2, bad_fd);
    said(
        &with_stdout_closed(&["--from", &leak, "--prometheus"]),
        2,
        bad_fd,
    );
    said(&with_stdout_closed(&["check", "--from", &leak]), 1, bad_fd);
    let unknown = ["--netns", "connleak-test-no-such-namespace", "check"];
    said(&with_stdout_closed(&unknown), 3, "CONNLEAK UNKNOWN - ");
    let dir = TempDir::new("closed-stdout");
    let file = dir.path("report.txt");
    let to_file = with_stdout_closed(&["--from", &leak, "--output", file.to_str().unwrap()]);
    assert!(to_file.status.success(), "{}", stderr(&to_file));
    assert!(std::fs::metadata(&file).unwrap().len() > 0);
    // /dev/null opened by the shell is a place to write, not a closed stdout.
    let null = Command::new("sh")
        .args([
            "-c",
            "exec \"$0\" \"$@\" >/dev/null",
            CONNLEAK,
            "--from",
            &leak,
        ])
        .output()
        .unwrap();
    assert!(null.status.success(), "{}", stderr(&null));
    assert!(null.stderr.is_empty(), "{}", stderr(&null));
}

#[test]
fn all_netns_unprivileged_reads_its_own_namespace() {
    let mut cmd = connleak(&["--all-netns", "--json"]);
    if is_root() {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["namespaces"].as_array().map(Vec::len), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("reads only connleak's own network namespace"),
        "{err}"
    );
    // `--all-netns 2>&1 | head -5`: stdout and stderr into a closed pipe.
    let mut cmd = connleak(&["--all-netns"]);
    if is_root() {
        cmd.uid(65534).gid(65534);
    }
    let (out, err) = closed_stream();
    cmd.stdout(out).stderr(err);
    assert_eq!(cmd.status().unwrap().code(), Some(0));
}

/// Processes that exited before the scan (zombies: no namespace, no fds) are
/// counted in no namespace: not as "exited while being scanned" in each.
/// As root, every namespace (a second one made for the test); else our own.
#[test]
fn exited_processes_are_not_counted_in_every_namespace() {
    const ZOMBIES: u64 = 20;
    let mut parent = Command::new("sh")
        .args([
            "-c",
            &format!("for i in $(seq {ZOMBIES}); do sleep 0 & done; exec sleep 30"),
        ])
        .spawn()
        .unwrap();
    let mut other = is_root()
        .then(|| {
            Command::new("unshare")
                .args(["-n", "sleep", "30"])
                .spawn()
                .ok()
        })
        .flatten();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = run(&["--all-netns", "--json"]);
    let _ = parent.kill();
    let _ = parent.wait();
    if let Some(child) = other.as_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let namespaces = report["namespaces"].as_array().unwrap();
    if is_root() {
        assert!(namespaces.len() >= 2, "{report}");
    }
    for ns in namespaces {
        let vanished = ns["unreadable"]["processes_vanished"].as_u64().unwrap_or(0);
        // Other processes of this busy host may really exit mid-scan; not all twenty.
        assert!(vanished < ZOMBIES, "{}: {vanished}", ns["netns"]);
    }
}

#[test]
fn the_hosts_namespace_is_called_host() {
    if !is_root() {
        say("SKIP the_hosts_namespace_is_called_host: needs root to enter namespaces");
        return;
    }
    let out = run(&["--all-netns", "--prometheus"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("connleak_up{netns=\"host\"} 1"), "{text}");
}

#[test]
fn netns_names_that_leave_run_netns_are_refused() {
    for bad in ["a/b", "..", "../../proc/1/ns/net", ""] {
        assert_refused(&run(&["--netns", bad]), "is not a network namespace name");
    }
}

#[test]
fn interval_is_a_sane_number_of_seconds() {
    for bad in ["NaN", "inf", "1e30", "0", "-1", "0.05", "86401", "abc"] {
        let out = run(&[
            "--from",
            &fixture("leak.json"),
            &format!("--interval={bad}"),
        ]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!(
                "error: invalid value '{bad}' for '--interval <SECS>'"
            )),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    for good in ["0.1", "2.5", "86400"] {
        let out = run(&["--from", &fixture("leak.json"), "--interval", good]);
        assert!(out.status.success(), "{good}: {}", stderr(&out));
    }
}

/// A flag a subcommand does not use is not part of it: the parser refuses
/// it (clap's message and status), as it refuses any unknown flag.
#[test]
fn flags_that_would_do_nothing_are_refused() {
    for (args, flag) in [
        (vec!["explain", "--json"], "--json"),
        (vec!["watch", "--json"], "--json"),
        (vec!["watch", "--samples", "3"], "--samples"),
        (vec!["watch", "--output", "/tmp/x"], "--output"),
        (vec!["watch", "--save", "/tmp/x"], "--save"),
        (vec!["completions", "bash", "--json"], "--json"),
        (
            vec!["explain", "--close-wait-warn", "3"],
            "--close-wait-warn",
        ),
        (vec!["explain", "--port", "80"], "--port"),
        (vec!["explain", "--color", "never"], "--color"),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!("error: unexpected argument '{flag}' found")),
            "{args:?}: {err}"
        );
    }
    // Before the subcommand, a flag is the report's: not the subcommand's.
    let out = run(&["--prometheus", "explain", "close_wait"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the subcommand 'explain' cannot be used with '--prometheus'"),
        "{}",
        stderr(&out)
    );
    // What each does use stays accepted.
    let leak = fixture("leak.json");
    let dir = TempDir::new("flags");
    let file = dir.path("out");
    let file = file.to_str().unwrap();
    for args in [
        vec![
            "check",
            "--from",
            &leak,
            "--output",
            file,
            "--close-wait-warn",
            "5",
        ],
        vec![
            "check",
            "-v",
            "--from",
            &leak,
            "--port",
            "7001",
            "--state",
            "close-wait",
        ],
        vec!["explain", "close_wait", "--output", file],
        vec!["completions", "bash", "--output", file],
        vec!["--json", "--from", &leak, "--output", file],
    ] {
        let out = run(&args);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

/// Nagios reads 2 as CRITICAL: every bad invocation of `check` says
/// UNKNOWN (3) on one status line, with the reason, not clap's usage text.
#[test]
fn a_bad_check_is_unknown_not_critical() {
    let leak = fixture("leak.json");
    for (args, reason) in [
        (
            vec!["check", "--bogus"],
            "unexpected argument '--bogus' found",
        ),
        (
            vec!["check", "--interval", "0"],
            "invalid value '0' for '--interval <SECS>'",
        ),
        (
            vec!["check", "--close-wait-warn", "abc"],
            "invalid value 'abc' for '--close-wait-warn <N>'",
        ),
        (
            vec!["check", "--close-wait-warn", "-5"],
            "invalid value '-5' for '--close-wait-warn <N>'",
        ),
        (
            vec!["check", "--json"],
            "unexpected argument '--json' found",
        ),
        (
            vec!["check", "--prometheus"],
            "unexpected argument '--prometheus' found",
        ),
        (
            vec!["check", "--save", "x", "--from", "x"],
            "the argument '--save <FILE>' cannot be used with '--from <FILE>'",
        ),
        (
            vec!["check", "--from", &leak, "--ports-warn", "200"],
            "invalid value '200' for '--ports-warn <PCT>': 200 is not in 0..=100",
        ),
        (
            vec!["--from", &leak, "check"],
            "the subcommand 'check' cannot be used with '--from <FILE>'",
        ),
        (
            vec!["check", "--state", "LEAKING"],
            "invalid value 'LEAKING' for '--state <STATE>'",
        ),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        let line = String::from_utf8(out.stdout.clone()).unwrap();
        assert_eq!(line.lines().count(), 1, "{args:?}: {line}");
        assert!(
            line.starts_with(&format!("CONNLEAK UNKNOWN - {reason}")),
            "{args:?}: {line}"
        );
        assert!(stderr(&out).is_empty(), "{args:?}: {}", stderr(&out));
    }
    // Asking for help is no error; other subcommands keep clap's status.
    assert_eq!(run(&["check", "--help"]).status.code(), Some(0));
    assert_eq!(run(&["--bogus"]).status.code(), Some(2));
}

/// Percentages above 100 could never be reached: refused at the flag and in
/// the configuration file, naming the key, the file and its line.
#[test]
fn percentages_are_bounded() {
    let leak = fixture("leak.json");
    let out = run(&["--from", &leak, "--fd-warn", "150"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid value '150' for '--fd-warn <PCT>': 150 is not in 0..=100"),
        "{}",
        stderr(&out)
    );
    let dir = TempDir::new("percent");
    let config = dir.path("connleak.toml");
    std::fs::write(&config, "# ours\nports_warn = 200\n").unwrap();
    let config = config.to_str().unwrap();
    assert_refused(
        &run(&["--from", &leak, "--config", config]),
        &format!(
            "configuration {config} line 2: ports_warn must be a whole number of percent, 0 to \
             100, not 200"
        ),
    );
    let check = run(&["check", "--from", &leak, "--config", config]);
    assert_eq!(check.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&check.stdout).starts_with("CONNLEAK UNKNOWN - configuration"));
    let full = run(&["--from", &leak, "--fd-warn", "100", "--fd-crit", "100"]);
    assert!(full.status.success(), "{}", stderr(&full));
}

#[test]
fn contradicting_thresholds_are_refused() {
    let leak = fixture("leak.json");
    let flags = run(&[
        "--from",
        &leak,
        "--close-wait-warn",
        "500",
        "--close-wait-crit",
        "20",
    ]);
    assert_refused(&flags, "close-wait-warn 500 is above close-wait-crit 20");
    let ports = run(&["--from", &leak, "--ports-warn", "90", "--ports-crit", "80"]);
    assert_refused(&ports, "ports-warn 90 is above ports-crit 80");
    // check, like any plugin that cannot judge, says UNKNOWN on its status line.
    let fd = run(&["check", "--from", &leak, "--fd-warn", "95"]);
    assert_eq!(fd.status.code(), Some(3));
    let line = String::from_utf8(fd.stdout).unwrap();
    assert!(
        line.starts_with(
            "CONNLEAK UNKNOWN - contradicting thresholds: fd-warn 95 is above fd-crit 90"
        ),
        "{line}"
    );
    let dir = TempDir::new("thresholds");
    let config = dir.path("connleak.toml");
    std::fs::write(&config, "close_wait_warn = 500\nclose_wait_crit = 20\n").unwrap();
    let config = config.to_str().unwrap();
    assert_refused(
        &run(&["--from", &leak, "--config", config]),
        "close-wait-warn 500 is above close-wait-crit 20",
    );
    // No false alarm: equal levels, and a flag that settles the file's contradiction.
    let equal = run(&[
        "--from",
        &leak,
        "--close-wait-warn",
        "40",
        "--close-wait-crit",
        "40",
    ]);
    assert!(equal.status.success(), "{}", stderr(&equal));
    let settled = run(&[
        "--from",
        &leak,
        "--config",
        config,
        "--close-wait-crit",
        "900",
    ]);
    assert!(settled.status.success(), "{}", stderr(&settled));
}

#[test]
fn snapshots_with_fields_added_later_load() {
    let dir = TempDir::new("snapshot");
    let text = std::fs::read_to_string(fixture("leak.json")).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["added_in_a_patch_release"] = serde_json::json!(1);
    value["meta"]["netns"]["added"] = serde_json::json!("x");
    value["unreadable"]["added"] = serde_json::json!([]);
    let extended = dir.path("extended.json");
    std::fs::write(&extended, serde_json::to_vec(&value).unwrap()).unwrap();
    let plain = run(&["--from", &fixture("leak.json"), "--json"]);
    let out = run(&["--from", extended.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, plain.stdout);
    // A version still gates the shape.
    value["snapshot_version"] = serde_json::json!(2);
    std::fs::write(&extended, serde_json::to_vec(&value).unwrap()).unwrap();
    assert_refused(
        &run(&["--from", extended.to_str().unwrap()]),
        "has format version 2",
    );
}

#[test]
fn explain_takes_any_spelling_of_a_kind() {
    for spelling in ["close-wait-leak", "CLOSE-WAIT-LEAK", "Close_Wait_Leak"] {
        let out = run(&["explain", spelling]);
        assert!(out.status.success(), "{spelling}");
        assert!(out.stdout.starts_with(b"close_wait_leak: "), "{spelling}");
    }
    let out = run(&["explain", "NEW_SYN_RECV"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("NEW_SYN_RECV (RFC 9293: SYN-RECEIVED)\n"),
        "{text}"
    );
    let bad = run(&["explain", "leaking"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).starts_with(
            "error: invalid value 'leaking' for '[TOPIC]': unknown state, finding kind or \
             cause: \"leaking\"; one of: ESTABLISHED"
        ),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn color_always_beats_no_color() {
    let leak = fixture("leak.json");
    let always = connleak(&["--from", &leak, "--color", "always"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(always.stdout.contains(&0x1b), "--color always must colour");
    let auto = connleak(&["--from", &leak])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!auto.stdout.contains(&0x1b));
    let help = String::from_utf8(run(&["--help"]).stdout).unwrap();
    assert!(
        help.contains("NO_COLOR            no colour with --color auto"),
        "{help}"
    );
}

#[test]
fn a_device_is_not_a_snapshot() {
    assert_refused(
        &run(&["--from", "/dev/zero"]),
        "/dev/zero is not a connleak snapshot: it starts with byte 0x00",
    );
    let dir = TempDir::new("notjson");
    let path = dir.path("snap");
    std::fs::write(&path, "  \n[1, 2]").unwrap();
    assert_refused(
        &run(&["--from", path.to_str().unwrap()]),
        "starts with byte 0x5b, not '{'",
    );
}

/// connleak's JSON report, run as `nobody` in a private mount namespace whose
/// `/proc` is mounted with `options`, or `None` without root or the tools.
fn report_under_proc_mount(options: &str, as_nobody: bool) -> Option<serde_json::Value> {
    let tools = ["unshare", "setpriv", "mount"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !is_root() || !tools {
        return None;
    }
    let drop = if as_nobody {
        "setpriv --reuid=65534 --regid=65534 --clear-groups"
    } else {
        ""
    };
    let script = format!("mount -t proc -o {options} proc /proc && exec {drop} \"$0\" --json");
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script, CONNLEAK])
        .current_dir("/")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn hidepid_is_said() {
    let Some(hidden) = report_under_proc_mount("hidepid=invisible", true) else {
        say("SKIP hidepid_is_said: needs root, unshare, setpriv and mount");
        return;
    };
    let sources = hidden["unreadable"]["sources"].to_string();
    assert!(
        sources.contains("mounted with hidepid=invisible: other users' processes are hidden"),
        "{sources}"
    );
    // No false alarm: without hidepid, or as root who sees through it.
    for (options, nobody) in [("rw", true), ("hidepid=invisible", false)] {
        let report = report_under_proc_mount(options, nobody).unwrap_or_default();
        let sources = report["unreadable"]["sources"].to_string();
        assert!(
            !sources.contains("hidepid"),
            "{options} {nobody}: {sources}"
        );
    }
}

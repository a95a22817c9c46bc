//! A private network namespace per test, with real processes holding real
//! sockets in it, and the built connleak binary run inside it.
//!
//! Needs root and `ip netns`; without them each test prints a visible SKIP
//! line (straight to stderr, past the test harness's capture) and passes.
//! The namespace and every process in it are removed when the `Lab` drops,
//! also when the test fails.

#![allow(dead_code)] // each test binary uses its own part of this harness

pub mod cgroups;

use connleak::snapshot::Snapshot;
use connleak::tcp::TcpState;
use serde_json::Value;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const CONNLEAK: &str = env!("CARGO_BIN_EXE_connleak");

fn roles_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/roles.py")
}

/// Prints past libtest's output capture, so that a skip is seen.
pub fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

pub struct Lab {
    pub ns: String,
    dir: PathBuf,
    children: Vec<Child>,
}

impl Lab {
    /// A fresh namespace named after the test, or `None` (with a SKIP line) when not root.
    pub fn new(test: &str) -> Option<Lab> {
        let root = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let have_ip = Command::new("ip")
            .arg("-V")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !root || !have_ip {
            say(&format!(
                "SKIP {test}: needs root and iproute2 (ip netns) to build real sockets in a \
                 private network namespace"
            ));
            return None;
        }
        let ns = format!("cl{}-{test}", std::process::id());
        let ns: String = ns.chars().take(60).collect();
        let dir = std::env::temp_dir().join(&ns);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).ok()?;
        let lab = Lab {
            ns,
            dir,
            children: Vec::new(),
        };
        let _ = Command::new("ip")
            .args(["netns", "del", &lab.ns])
            .stderr(Stdio::null())
            .status();
        lab.ip(&["netns", "add", &lab.ns]);
        lab.exec(&["ip", "link", "set", "lo", "up"]);
        Some(lab)
    }

    fn ip(&self, args: &[&str]) {
        let st = Command::new("ip").args(args).status();
        assert!(st.is_ok_and(|s| s.success()), "ip {args:?} failed");
    }

    /// Runs a command inside the namespace and asserts it succeeded.
    pub fn exec(&self, cmd: &[&str]) {
        let mut args = vec!["netns", "exec", &self.ns];
        args.extend_from_slice(cmd);
        self.ip(&args);
    }

    /// Starts a role of `tests/scenarios/roles.py` in the namespace and waits
    /// until it says its sockets are in place; returns what it wrote.
    pub fn spawn(&mut self, role: &str, args: &[&str]) -> Value {
        self.spawn_in(None, role, args)
    }

    /// Starts a role as [`Lab::spawn`] does, in the cgroup v2 directory
    /// `cgroup` from before its first instruction, so that its sockets carry
    /// that cgroup too. (`ip netns exec` hides the cgroup mount: the child
    /// moves itself before it runs `ip`.)
    pub fn spawn_in_cgroup(&mut self, cgroup: &Path, role: &str, args: &[&str]) -> Value {
        self.spawn_in(Some(cgroup), role, args)
    }

    fn spawn_in(&mut self, cgroup: Option<&Path>, role: &str, args: &[&str]) -> Value {
        let cmd = vec![
            "python3".to_string(),
            roles_py().display().to_string(),
            role.to_string(),
        ];
        self.start(role, cmd, cgroup, |c, ready| {
            c.arg("--ready").arg(ready).args(args);
        })
    }

    /// Starts `program ARGS...` in the namespace with the ready file's path
    /// as its first argument, and waits until it writes that file (JSON, by
    /// rename); returns what it wrote.
    pub fn spawn_program(&mut self, label: &str, program: &[&str], args: &[&str]) -> Value {
        let cmd = program.iter().map(|s| s.to_string()).collect();
        self.start(label, cmd, None, |c, ready| {
            c.arg(ready).args(args);
        })
    }

    fn start(
        &mut self,
        label: &str,
        cmd: Vec<String>,
        cgroup: Option<&Path>,
        add_args: impl FnOnce(&mut Command, &Path),
    ) -> Value {
        let ready = self
            .dir
            .join(format!("{}-{label}.json", self.children.len()));
        let log = self
            .dir
            .join(format!("{}-{label}.log", self.children.len()));
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new("ip");
        if let Some(dir) = cgroup {
            move_into_cgroup(&mut command, dir);
        }
        command.args(["netns", "exec", &self.ns]).args(&cmd);
        add_args(&mut command, &ready);
        let child = command
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("start a scenario program");
        self.children.push(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                return serde_json::from_str(&text).expect("ready file is JSON");
            }
            let child = self.children.last_mut().expect("just pushed");
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("{label} exited with {status} before it was ready:\n{log}");
            }
            assert!(Instant::now() < deadline, "{label} not ready after 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts `java -cp CLASSPATH CLASS READY ARGS...` in the namespace, a
    /// small JVM (64 MiB heap, serial GC, C1 only) that starts fast, and waits
    /// until it writes its ready file.
    pub fn spawn_java(
        &mut self,
        label: &str,
        classpath: &str,
        class: &str,
        args: &[&str],
    ) -> Value {
        let java = [
            "java",
            "-Xmx64m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-cp",
            classpath,
            class,
        ];
        self.spawn_program(label, &java, args)
    }

    /// Starts any program in the namespace (a real server: nginx) without
    /// waiting for it, logging to `NAME.log` in the lab's directory; it is
    /// killed with the lab.
    pub fn start_program(&mut self, name: &str, cmd: &[&str]) {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(cmd)
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start the program");
        self.children.push(child);
    }

    /// Runs a command inside the namespace; whether it succeeded.
    pub fn try_exec(&self, cmd: &[&str]) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(cmd)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Runs connleak inside the namespace.
    pub fn connleak_output(&self, args: &[&str]) -> Output {
        self.connleak_output_env(args, ("NO_COLOR", "1"))
    }

    /// Runs connleak inside the namespace with one more variable in its environment.
    pub fn connleak_output_env(&self, args: &[&str], (key, value): (&str, &str)) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, CONNLEAK])
            .args(args)
            .env("NO_COLOR", "1")
            .env(key, value)
            .output()
            .expect("run connleak")
    }

    /// Runs connleak inside the namespace as nobody (uid and gid 65534, no
    /// groups, and so no capabilities).
    pub fn connleak_unprivileged(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, "setpriv", "--reuid=65534"])
            .args(["--regid=65534", "--clear-groups", CONNLEAK])
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .expect("run connleak unprivileged")
    }

    /// Runs `connleak --json ARGS` inside the namespace, asserts exit 0, parses the report.
    pub fn report(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.connleak_output(&all);
        assert!(
            out.status.success(),
            "connleak {all:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("connleak --json prints JSON")
    }

    /// Wires this namespace to `peer`'s with a veth pair on `10.N.0.0/24`:
    /// this end is `10.N.0.1`, the peer's `10.N.0.2`.
    pub fn wire(&self, peer: &Lab, n: u8) {
        let tag = std::process::id() % 100_000;
        let (here, there) = (format!("v{tag}h{n}"), format!("v{tag}p{n}"));
        let _ = Command::new("ip")
            .args(["link", "del", &here])
            .stderr(Stdio::null())
            .status();
        self.ip(&["link", "add", &here, "type", "veth", "peer", "name", &there]);
        self.ip(&["link", "set", &here, "netns", &self.ns]);
        self.ip(&["link", "set", &there, "netns", &peer.ns]);
        let (mine, theirs) = (format!("10.{n}.0.1/24"), format!("10.{n}.0.2/24"));
        self.exec(&["ip", "addr", "add", &mine, "dev", &here]);
        self.exec(&["ip", "link", "set", &here, "up"]);
        peer.exec(&["ip", "addr", "add", &theirs, "dev", &there]);
        peer.exec(&["ip", "link", "set", &there, "up"]);
    }

    /// Makes this namespace's host go silent toward `addr`: everything it
    /// sends there is discarded (a blackhole route, no ICMP), as a host that
    /// died behind a router looks from `addr`, its connections still open there.
    pub fn go_silent_toward(&self, addr: &str) {
        self.exec(&["ip", "route", "add", "blackhole", &format!("{addr}/32")]);
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Makes the command's process move itself into the cgroup v2 directory
/// `dir` before it runs anything.
fn move_into_cgroup(command: &mut Command, dir: &Path) {
    let procs = std::ffi::CString::new(dir.join("cgroup.procs").into_os_string().into_vec())
        .expect("cgroup path without NUL");
    // SAFETY: between fork and exec only async-signal-safe calls (open,
    // write, close) on memory allocated before the fork.
    unsafe {
        command.pre_exec(move || {
            // "0" moves the writing process itself.
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            let moved = fd >= 0 && libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
            if fd >= 0 {
                libc::close(fd);
            }
            if moved {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let pids = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output();
        if let Ok(out) = pids {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                // Short-lived processes may be gone already: nothing to say.
                let _ = Command::new("kill")
                    .args(["-9", pid])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `sources` compiled by `javac` (with `classpath`, if any) into a
/// directory named after the sources' hash under the test's temporary
/// directory (a rename makes it appear whole), so a later run with the same
/// sources reuses it; `label` names it.
pub fn javac_once(label: &str, sources: &[PathBuf], classpath: Option<&str>) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hash = std::collections::hash_map::DefaultHasher::new();
    for s in sources {
        std::fs::read(s).expect("a Java source").hash(&mut hash);
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{label}-{:x}", hash.finish()));
    if out.is_dir() {
        return out;
    }
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let mut javac = Command::new("javac");
    if let Some(cp) = classpath {
        javac.args(["-cp", cp]);
    }
    let status = javac
        .arg("-d")
        .arg(&tmp)
        .args(sources)
        .status()
        .expect("run javac");
    assert!(status.success(), "javac failed");
    if std::fs::rename(&tmp, &out).is_err() {
        // Another run renamed its copy first: use that one.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    out
}

/// A program built from `source` by `build` (given the output path), once
/// for every run with the same source: under a name from the source's hash
/// in the tests' temporary directory, made whole by a rename.
pub fn built_once(label: &str, source: &Path, build: impl FnOnce(&Path) -> Command) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hash = std::collections::hash_map::DefaultHasher::new();
    std::fs::read(source).expect("a source").hash(&mut hash);
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{label}-{:x}", hash.finish()));
    if out.is_file() {
        return out;
    }
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let status = build(&tmp).status().expect("run the build");
    assert!(status.success(), "building {label} failed");
    std::fs::rename(&tmp, &out).expect("rename the built program");
    out
}

/// A Go program built from `source` by Debian's `go` (no modules), once.
pub fn go_build(label: &str, source: &Path) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    built_once(label, source, |out| {
        let mut go = Command::new("go");
        go.args(["build", "-o"])
            .arg(out)
            .arg(source)
            .env("GO111MODULE", "off")
            .env("GOCACHE", dir.join("go-cache"))
            .env("HOME", dir);
        go
    })
}

/// `tests/scenarios/trace/NAME.c`, built once with frame pointers and
/// without tail calls (a tail call would leave its caller off the stack),
/// one build at a time (the tests of a binary run on threads of one process).
pub fn c_program(name: &str) -> String {
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = BUILDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios/trace")
        .join(format!("{name}.c"));
    let built = built_once(name, &source, |out| {
        let mut gcc = Command::new("gcc");
        gcc.args(["-O0", "-g", "-fno-omit-frame-pointer", "-pthread", "-o"])
            .arg(out)
            .arg(&source);
        gcc
    });
    built.to_str().expect("a UTF-8 path").to_string()
}

/// Whether `program --version`-like `args` run: the tool is installed.
pub fn have(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The report once `ready` says so, or after 40 s (the test's assertions then say what is missing).
pub fn report_when(lab: &Lab, args: &[&str], ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let r = lab.report(args);
        if ready(&r) || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The findings of a report of one kind.
pub fn findings<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("findings is an array")
        .iter()
        .filter(|f| f["kind"] == kind)
        .collect()
}

/// Findings at warning level or worse.
pub fn warnings(report: &Value) -> Vec<&Value> {
    report["findings"]
        .as_array()
        .expect("findings is an array")
        .iter()
        .filter(|f| f["severity"] != "info")
        .collect()
}

/// The process `pid` in the report's process list.
pub fn process<'a>(report: &'a Value, pid: &Value) -> &'a Value {
    report["processes"]
        .as_array()
        .expect("processes is an array")
        .iter()
        .find(|p| p["pid"] == *pid)
        .unwrap_or_else(|| panic!("pid {pid} is in the report: {report:#}"))
}

/// The one warning-or-worse finding of the report, which must be of `kind`.
pub fn the_warning<'a>(report: &'a Value, kind: &str) -> &'a Value {
    let w = warnings(report);
    assert_eq!(w.len(), 1, "exactly one warning expected: {report:#}");
    assert_eq!(w[0]["kind"], kind, "{report:#}");
    w[0]
}

/// The path of a snapshot saved from a real pattern, under `tests/fixtures`.
pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A snapshot saved from a real pattern, under `tests/fixtures`.
pub fn load(name: &str) -> Snapshot {
    Snapshot::load(Path::new(&fixture(name))).expect("fixture loads")
}

/// The pid holding the listener on `port` in a snapshot.
pub fn listener_pid(s: &Snapshot, port: u16) -> u32 {
    let inode = s
        .sockets
        .iter()
        .find(|x| x.state() == TcpState::Listen && x.local().port() == port)
        .expect("a listener on that port")
        .inode();
    s.processes
        .iter()
        .find(|p| p.socket_inodes.contains(&inode))
        .expect("an owner of that listener")
        .pid
}

/// The samples of a Prometheus text file as the reference parser
/// (`prometheus_client`) reads them: `{"name", "labels", "value"}` each.
/// `None`, with a SKIP line, when that parser is not installed.
pub fn prometheus_samples(file: &Path) -> Option<Vec<Value>> {
    const PARSE: &str = "
import json, sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1], encoding='utf-8').read()
print(json.dumps([{'name': s.name, 'labels': s.labels, 'value': s.value}
                  for fam in text_string_to_metric_families(text) for s in fam.samples]))
";
    let parsed = Command::new("python3")
        .args(["-c", PARSE])
        .arg(file)
        .output()
        .expect("run python3");
    let err = String::from_utf8_lossy(&parsed.stderr);
    if err.contains("No module named 'prometheus_client'") {
        say("SKIP prometheus parse: pip install prometheus_client (the CI script does)");
        return None;
    }
    assert!(
        parsed.status.success(),
        "prometheus_client rejects it: {err}"
    );
    Some(serde_json::from_slice(&parsed.stdout).expect("parser prints JSON"))
}

/// The value of the one sample named `name` whose labels include `labels`.
pub fn sample(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .and_then(|s| s["value"].as_f64())
}

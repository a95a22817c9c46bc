//! A real JDBC pool against a real database that ends idle sessions:
//! HikariCP (Debian's package) holds connections to PostgreSQL with
//! `idle_session_timeout` set; the server sends its error and its FIN, and
//! the pool, which looks at a connection only when it lends it, leaves them
//! in CLOSE-WAIT. The advice names HikariCP's own setting (`maxLifetime`;
//! `idleTimeout` does nothing in a fixed-size pool), told from the pool's
//! thread names. Its twin, against a server that keeps idle sessions, stays
//! quiet. Needs root, java and javac, PostgreSQL and the HikariCP and
//! PostgreSQL JDBC jars (`postgresql`, `libhikaricp-java`,
//! `libpostgresql-jdbc-java`); skips visibly otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Lab, findings, process, report_when, say};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const JARS: [&str; 3] = [
    "/usr/share/java/HikariCP.jar",
    "/usr/share/java/postgresql.jar",
    "/usr/share/java/slf4j-api.jar",
];

/// PostgreSQL's server binaries directory (`/usr/lib/postgresql/N/bin`), the newest.
fn postgres_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("postgres").is_file() && d.join("initdb").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// The classpath with `HikariIdle` compiled, once per test binary; `None`
/// without a JDK or the jars.
fn classpath() -> Option<&'static str> {
    static CP: OnceLock<Option<String>> = OnceLock::new();
    CP.get_or_init(|| {
        let javac = Command::new("javac").arg("-version").output();
        if !javac.is_ok_and(|o| o.status.success()) || !JARS.iter().all(|j| Path::new(j).is_file())
        {
            return None;
        }
        let source =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/java-pool/HikariIdle.java");
        let jars = JARS.join(":");
        let out = common::javac_once("java-pool", &[source], Some(&jars));
        Some(format!("{jars}:{}", out.display()))
    })
    .as_deref()
}

/// A lab with PostgreSQL listening on 127.0.0.1:5432, ending sessions idle
/// for `idle_ms` (0: never), and the pool's classpath; `None` with a SKIP line.
fn database_lab(test: &str, idle_ms: u32) -> Option<(Lab, &'static str)> {
    let mut lab = Lab::new(test)?;
    let (Some(bin), Some(cp)) = (postgres_bin(), classpath()) else {
        say(&format!(
            "SKIP {test}: needs PostgreSQL, java/javac and the HikariCP and PostgreSQL JDBC jars \
             (postgresql, default-jdk-headless, libhikaricp-java, libpostgresql-jdbc-java)"
        ));
        return None;
    };
    let data = lab.path("pg");
    std::fs::create_dir_all(&data).unwrap();
    let data = data.display().to_string();
    let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
    assert!(ok(Command::new("chown").args(["postgres", &data])));
    let initdb = bin.join("initdb").display().to_string();
    assert!(
        ok(Command::new("runuser")
            .args(["-u", "postgres", "--", &initdb, "-D", &data])
            .args(["--auth=trust", "-U", "postgres"])
            .stdout(std::process::Stdio::null())),
        "initdb failed"
    );
    let postgres = bin.join("postgres").display().to_string();
    let idle = format!("idle_session_timeout={idle_ms}");
    lab.start_program(
        "postgres",
        &[
            "runuser",
            "-u",
            "postgres",
            "--",
            &postgres,
            "-D",
            &data,
            "-k",
            &data,
            "-p",
            "5432",
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            &idle,
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lab.try_exec(&["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"]) {
        assert!(Instant::now() < deadline, "PostgreSQL did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    Some((lab, cp))
}

/// Starts the pool of `n` connections on the JVM.
fn hikari_pool(lab: &mut Lab, cp: &str, n: &str) -> Value {
    let url = "jdbc:postgresql://127.0.0.1:5432/postgres";
    lab.spawn_java("hikari", cp, "HikariIdle", &[url, n])
}

#[test]
fn an_idle_hikari_pool_is_told_in_hikaris_words() {
    let Some((mut lab, cp)) = database_lab("pool-hikari", 1000) else {
        return;
    };
    let pool = hikari_pool(&mut lab, cp, "4");
    let mine = |f: &&Value| f["pid"] == pool["pid"];
    let r = report_when(&lab, &[], |r| {
        findings(r, "close_wait_leak")
            .iter()
            .any(|f| mine(f) && f["count"] == 4)
    });
    let found: Vec<&Value> = findings(&r, "close_wait_leak")
        .into_iter()
        .filter(mine)
        .collect();
    assert_eq!(found.len(), 1, "{r:#}");
    let f = found[0];
    assert_eq!(f["count"], 4, "{f:#}");
    assert_eq!(f["side"], "client", "{f:#}");
    assert_eq!(f["cause"], "unread_after_peer_close", "{f:#}");
    assert!(f["evidence"].to_string().contains("PostgreSQL"), "{f:#}");
    let advice = f["suggestion"].as_str().unwrap();
    assert!(advice.contains("With HikariCP"), "{advice}");
    assert!(advice.contains("maxLifetime"), "{advice}");
    assert!(
        advice.contains("does nothing in a fixed-size pool"),
        "{advice}"
    );
    let p = process(&r, &pool["pid"]);
    assert_eq!(p["libraries"], serde_json::json!(["hikaricp"]), "{p:#}");
}

/// The same pool against a server that keeps idle sessions: the library is
/// known, nothing is reported.
#[test]
fn an_idle_hikari_pool_the_server_keeps_is_quiet() {
    let Some((mut lab, cp)) = database_lab("pool-hikari-ok", 0) else {
        return;
    };
    let pool = hikari_pool(&mut lab, cp, "4");
    // Longer than the other test's server waits before it ends a session.
    std::thread::sleep(Duration::from_secs(3));
    let r = lab.report(&[]);
    assert!(findings(&r, "close_wait_leak").is_empty(), "{r:#}");
    assert_eq!(r["status"], "ok", "{r:#}");
    let p = process(&r, &pool["pid"]);
    assert_eq!(p["libraries"], serde_json::json!(["hikaricp"]), "{p:#}");
}

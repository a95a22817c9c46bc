//! The files under `contrib/` that users copy as they are: the Prometheus
//! alert rules must load (`promtool check rules`) and their unit test pass
//! (`promtool test rules`), the scrape configuration must load (`promtool
//! check config`), and the agent's deployments must run `connleak serve`
//! on the port their scrapers name. promtool comes with Debian's `prometheus`
//! package; without it the test prints a visible SKIP line and passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) -> Option<std::process::Output> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/prometheus");
    match Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            common::say(
                "SKIP prometheus rules: no promtool (apt-get install prometheus; the CI script does)",
            );
            None
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    }
}

#[test]
fn alert_rules_load_and_their_unit_test_passes() {
    for args in [
        &["check", "rules", "connleak.rules.yml"][..],
        &["test", "rules", "connleak.rules.test.yml"][..],
        &["check", "config", "prometheus.yml"][..],
    ] {
        let Some(out) = promtool(args) else {
            return;
        };
        assert!(
            out.status.success(),
            "promtool {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The DaemonSet, the PodMonitor, the scrape configuration and the systemd
/// unit agree: `serve` on port 9742, named `metrics` where a port is named.
#[test]
fn the_agent_deployments_agree_on_serve_and_its_port() {
    let read = |rel: &str| {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("contrib")
                .join(rel),
        )
        .unwrap()
    };
    let daemonset = read("kubernetes/daemonset.yaml");
    assert!(daemonset.contains("- serve\n"), "{daemonset}");
    assert!(daemonset.contains("- --listen=$(NODE_IP):9742"));
    assert!(daemonset.contains("name: metrics\n              containerPort: 9742"));
    assert!(read("kubernetes/podmonitor.yaml").contains("- port: metrics"));
    assert!(read("prometheus/prometheus.yml").contains(":9742\""));
    let unit = read("systemd/connleak.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/connleak serve --listen 0.0.0.0:9742"));
    // The textfile mode stays, for hosts whose node_exporter reads textfiles.
    assert!(read("kubernetes/daemonset-textfile.yaml").contains("--prometheus"));
}

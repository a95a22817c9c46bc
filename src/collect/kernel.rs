//! The kernel's settings and counters that bound or betray the states connleak
//! diagnoses: sysctls (how long FIN_WAIT2 lasts, how many ephemeral ports and
//! TIME_WAIT buckets there are) and the `/proc/net/netstat` + `/proc/net/snmp`
//! counters (listen overflows, TIME_WAIT overflows, aborts). Everything is read
//! for the current thread's network namespace. A value that cannot be read is
//! `None` and noted, never zero.

use crate::snapshot::{Kernel, Sockstat, Sysctls, Unreadable};
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

/// Reads sysctls and counters under `proc_root` (normally `/proc`).
pub fn read(proc_root: &Path, unreadable: &mut Unreadable) -> Kernel {
    let mut sysctl = |name: &str| -> Option<String> {
        let path = proc_root.join("sys").join(name);
        match std::fs::read_to_string(&path) {
            Ok(s) => Some(s.trim().to_string()),
            // Global-only sysctls (tcp_max_orphans) do not exist inside a network namespace.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                unreadable.note(path.display().to_string(), e);
                None
            }
        }
    };
    let sysctls = Sysctls {
        tcp_fin_timeout: num(sysctl("net/ipv4/tcp_fin_timeout")),
        ip_local_port_range: sysctl("net/ipv4/ip_local_port_range").and_then(|s| port_range(&s)),
        ip_local_reserved_ports: sysctl("net/ipv4/ip_local_reserved_ports")
            .and_then(|s| port_list(&s)),
        tcp_max_tw_buckets: num(sysctl("net/ipv4/tcp_max_tw_buckets")),
        tcp_tw_reuse: num(sysctl("net/ipv4/tcp_tw_reuse")),
        somaxconn: num(sysctl("net/core/somaxconn")),
        tcp_max_orphans: num(sysctl("net/ipv4/tcp_max_orphans")),
        tcp_syncookies: num(sysctl("net/ipv4/tcp_syncookies")),
        tcp_max_syn_backlog: num(sysctl("net/ipv4/tcp_max_syn_backlog")),
    };
    let mut counters = BTreeMap::new();
    for file in ["netstat", "snmp"] {
        let path = proc_root.join("thread-self/net").join(file);
        let result = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| parse_counters(&text, &mut counters));
        if let Err(e) = result {
            unreadable.note(path.display().to_string(), e);
        }
    }
    let sockstat = parse_sockstat(&sockstat_text(proc_root));
    Kernel {
        sysctls,
        counters,
        sockstat,
    }
}

fn num<T: FromStr>(s: Option<String>) -> Option<T> {
    s.and_then(|s| s.parse().ok())
}

/// Most sockets the hint reserves room for (some 600 MB of records): a
/// sockstat that says more is believed only as far as this, and the table
/// grows past it as sockets arrive.
const MAX_SOCKET_HINT: usize = 1 << 22;

/// About how many TCP sockets the namespace has, from `/proc/net/sockstat{,6}`
/// (in use + TIME_WAIT), with some slack: enough to size the socket table
/// once. 64 when unknown.
pub fn socket_count_hint(proc_root: &Path) -> usize {
    let n = sockstat_tcp(&sockstat_text(proc_root));
    n.saturating_add(n / 8)
        .saturating_add(64)
        .min(MAX_SOCKET_HINT)
}

/// The TCP accounting of this thread's namespace (`alloc` and `orphan` are the host's).
pub fn sockstat(proc_root: &Path) -> Option<Sockstat> {
    parse_sockstat(&sockstat_text(proc_root))
}

/// `/proc/net/sockstat` and `sockstat6` of this thread's namespace, joined
/// (empty where unreadable).
fn sockstat_text(proc_root: &Path) -> String {
    let net = proc_root.join("thread-self/net");
    ["sockstat", "sockstat6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(net.join(f)).ok())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `key value` pairs of sockstat's line starting with `prefix`.
fn sockstat_line<'a>(text: &'a str, prefix: &str) -> Option<BTreeMap<&'a str, u64>> {
    let rest = text.lines().find_map(|l| l.strip_prefix(prefix))?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    Some(
        words
            .chunks(2)
            .filter_map(|kv| Some((*kv.first()?, kv.get(1)?.parse().ok()?)))
            .collect(),
    )
}

/// The TCP accounting of sockstat text; `None` without a `TCP:` line.
pub(crate) fn parse_sockstat(text: &str) -> Option<Sockstat> {
    let tcp = sockstat_line(text, "TCP:")?;
    let tcp6 = sockstat_line(text, "TCP6:").unwrap_or_default();
    let get = |k: &str| tcp.get(k).copied().unwrap_or(0);
    Some(Sockstat {
        inuse: get("inuse"),
        inuse6: tcp6.get("inuse").copied().unwrap_or(0),
        orphan: get("orphan"),
        tw: get("tw"),
        alloc: get("alloc"),
    })
}

/// Sums `inuse` and `tw` of the `TCP:` and `TCP6:` lines of sockstat text
/// (saturating: the text is only a hint).
pub(crate) fn sockstat_tcp(text: &str) -> usize {
    text.lines()
        .filter_map(|l| l.strip_prefix("TCP:").or_else(|| l.strip_prefix("TCP6:")))
        .flat_map(|rest| {
            let mut words = rest.split_whitespace();
            std::iter::from_fn(move || Some((words.next()?, words.next()?)))
        })
        .filter(|&(key, _)| key == "inuse" || key == "tw")
        .filter_map(|(_, n)| n.parse::<usize>().ok())
        .fold(0, usize::saturating_add)
}

/// `32768\t60999` → (32768, 60999).
pub(crate) fn port_range(s: &str) -> Option<(u16, u16)> {
    let mut it = s.split_whitespace().map(u16::from_str);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi)), None) => Some((lo, hi)),
        _ => None,
    }
}

/// `8080,9000-9010` → [(8080, 8080), (9000, 9010)]; empty → [].
pub(crate) fn port_list(s: &str) -> Option<Vec<(u16, u16)>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('-') {
            Some((lo, hi)) => Some((lo.trim().parse().ok()?, hi.trim().parse().ok()?)),
            None => p.parse().ok().map(|n| (n, n)),
        })
        .collect()
}

/// Parses the two-line-per-group format of `/proc/net/netstat` and
/// `/proc/net/snmp`: a line of names, then a line of values, both prefixed by
/// the group (`TcpExt:`). Values are signed (`Tcp: MaxConn` is -1).
pub fn parse_counters(
    text: &str,
    into: &mut BTreeMap<String, BTreeMap<String, i64>>,
) -> Result<(), String> {
    let mut lines = text.lines().enumerate();
    while let Some((i, names)) = lines.next() {
        if names.trim().is_empty() {
            continue;
        }
        let (group, names) = names
            .split_once(':')
            .ok_or_else(|| format!("line {}: no group name", i + 1))?;
        let (j, values) = lines
            .next()
            .ok_or_else(|| format!("line {}: {group} names without values", i + 1))?;
        let (vgroup, values) = values
            .split_once(':')
            .ok_or_else(|| format!("line {}: no group name", j + 1))?;
        if vgroup != group {
            return Err(format!(
                "line {}: expected {group} values, found {vgroup}",
                j + 1
            ));
        }
        let names: Vec<&str> = names.split_whitespace().collect();
        let values: Vec<&str> = values.split_whitespace().collect();
        if names.len() != values.len() {
            return Err(format!(
                "line {}: {} {group} names but {} values",
                j + 1,
                names.len(),
                values.len()
            ));
        }
        let entry = into.entry(group.to_string()).or_default();
        for (name, value) in names.into_iter().zip(values) {
            let value = value.parse().map_err(|_| {
                format!("line {}: {group} {name} = {value:?} is not a number", j + 1)
            })?;
            entry.insert(name.to_string(), value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_netstat_and_snmp_groups() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 12 13\n\
                    IpExt: InNoRoutes\nIpExt: 0\nTcp: RtoAlgorithm MaxConn CurrEstab\nTcp: 1 -1 7\n";
        let mut m = BTreeMap::new();
        assert_eq!(parse_counters(text, &mut m), Ok(()));
        assert_eq!(m["TcpExt"]["ListenOverflows"], 12);
        assert_eq!(m["Tcp"]["MaxConn"], -1);
        assert_eq!(m["Tcp"]["CurrEstab"], 7);
    }

    #[test]
    fn broken_counters_say_where() {
        let mut m = BTreeMap::new();
        assert_eq!(
            parse_counters("TcpExt: A B\nTcpExt: 1\n", &mut m),
            Err("line 2: 2 TcpExt names but 1 values".to_string())
        );
        assert!(parse_counters("TcpExt: A\n", &mut m).is_err());
        assert!(parse_counters("TcpExt: A\nIp: 1\n", &mut m).is_err());
        assert!(parse_counters("TcpExt: A\nTcpExt: x\n", &mut m).is_err());
    }

    #[test]
    fn sockstat_counts_tcp_in_use_and_time_wait() {
        let text = "sockets: used 290\nTCP: inuse 200 orphan 3 tw 50 alloc 900 mem 12\n\
                    UDP: inuse 4 mem 1\nTCP6: inuse 7\nUDP6: inuse 2\n";
        assert_eq!(sockstat_tcp(text), 257);
        assert_eq!(sockstat_tcp("garbage"), 0);
        let parsed = parse_sockstat(text);
        assert_eq!(
            parsed.map(|s| (s.inuse, s.inuse6, s.orphan, s.tw, s.alloc)),
            Some((200, 7, 3, 50, 900))
        );
        assert_eq!(parse_sockstat("garbage"), None);
        let huge = format!("TCP: inuse {} tw {}\n", usize::MAX, usize::MAX);
        assert_eq!(sockstat_tcp(&huge), usize::MAX);
    }

    #[test]
    fn port_ranges_and_lists() {
        assert_eq!(port_range("32768\t60999"), Some((32768, 60999)));
        assert_eq!(port_range("1"), None);
        assert_eq!(port_list(""), Some(vec![]));
        assert_eq!(
            port_list("8080,9000-9010"),
            Some(vec![(8080, 8080), (9000, 9010)])
        );
        assert_eq!(port_list("x"), None);
    }

    #[test]
    fn reads_this_hosts_kernel() {
        let mut unreadable = Unreadable::default();
        let k = read(Path::new("/proc"), &mut unreadable);
        assert!(k.sysctls.ip_local_port_range.is_some());
        assert!(k.counter("Tcp", "CurrEstab").is_some());
    }
}

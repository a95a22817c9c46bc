//! A finding's `id`: what names it within its report, built from what makes
//! it the finding it is (kind, owner, endpoint, peer), so that the
//! same leak keeps its id from one sample to the next and the window can
//! follow it, and so that `caused_by` can point at it. Two findings that
//! would share one get `#2`, `#3`, … in report order. The cause is left
//! out: a leak whose dominant cause changes as it grows is the same leak.
//! A finding grouped by its peer is named by the peer, not by the one port
//! its connections happen to use.

use super::Finding;
use crate::snapshot::endpoint;
use rustc_hash::FxHashMap;

/// The id before uniqueness: `kind/pid123/at:127.0.0.1:80/to:10.0.0.2:5432`, or `…/peer:pid77`,
/// with the parts that do not apply left out.
fn base(f: &Finding) -> String {
    let mut id = f.kind.to_string();
    if let Some(pid) = f.pid {
        id.push_str(&format!("/pid{pid}"));
    }
    if let Some(a) = f.local {
        id.push_str(&format!("/at:{}", endpoint(&a)));
    }
    // A finding grouped by its peer is named by the peer, its grouping key,
    // whatever ports its connections use this sample (one, then two, would
    // otherwise change its id and lose its history).
    if let [peer] = &f.peers[..] {
        match peer.pid {
            Some(pid) => id.push_str(&format!("/peer:pid{pid}")),
            None => id.push_str(&format!("/peer:{}", peer.host)),
        }
    } else if let Some(a) = f.remote {
        id.push_str(&format!("/to:{}", endpoint(&a)));
    }
    id
}

/// Gives every finding its id, unique within `findings`.
pub fn identify(findings: &mut [Finding]) {
    let mut seen: FxHashMap<String, u32> = FxHashMap::default();
    for f in findings {
        let id = base(f);
        let n = seen.entry(id.clone()).or_default();
        *n += 1;
        f.id = if *n == 1 { id } else { format!("{id}#{n}") };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::RULES;

    #[test]
    fn ids_name_the_finding_and_never_repeat() {
        let addr = |s: &str| s.parse().ok();
        let mut fs = vec![
            Finding {
                pid: Some(7),
                local: addr("[::ffff:10.1.2.3]:8080"),
                ..Finding::of(&RULES[0], None)
            },
            Finding {
                pid: Some(7),
                local: addr("10.1.2.3:8080"),
                ..Finding::of(&RULES[0], None)
            },
            Finding::of(&RULES[1], None),
        ];
        identify(&mut fs);
        let kind = RULES[0].kind;
        assert_eq!(fs[0].id, format!("{kind}/pid7/at:10.1.2.3:8080"));
        assert_eq!(fs[1].id, format!("{kind}/pid7/at:10.1.2.3:8080#2"));
        assert_eq!(fs[2].id, RULES[1].kind);
    }

    /// A finding grouped by its peer keeps its id whether its connections
    /// go to one port of the peer (a remote endpoint) or to several.
    #[test]
    fn a_peer_names_its_finding_whatever_the_ports() {
        let peer = crate::diagnose::Peer {
            host: std::net::IpAddr::from([10, 0, 0, 2]),
            pid: None,
            comm: None,
            connections: 3,
        };
        let one_port = Finding {
            pid: Some(7),
            remote: "10.0.0.2:5432".parse().ok(),
            peers: vec![peer.clone()],
            ..Finding::of(&RULES[0], None)
        };
        let two_ports = Finding {
            remote: None,
            ..one_port.clone()
        };
        let mut fs = [one_port];
        identify(&mut fs);
        let mut gs = [two_ports];
        identify(&mut gs);
        assert_eq!(fs[0].id, gs[0].id);
        assert!(fs[0].id.ends_with("/peer:10.0.0.2"), "{}", fs[0].id);
    }
}

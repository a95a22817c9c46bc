//! `connleak explain TOPIC`: the TCP state model and the finding kinds, told
//! for a person.

use super::text::wrap;
use crate::diagnose::{RULES, Rule};
use crate::tcp::{Bound, TcpState};
use std::io::{self, Write};

/// What `explain` was asked about.
pub enum Topic {
    All,
    State(TcpState),
    Kind(&'static Rule),
}

/// The topic named by `arg`: a TCP state or a finding kind, in any spelling
/// (case, `-` or `_`: `close-wait-leak` is `close_wait_leak`).
pub fn topic(arg: Option<&str>) -> Result<Topic, String> {
    let Some(arg) = arg else {
        return Ok(Topic::All);
    };
    let kind = arg.replace('-', "_");
    if let Some(rule) = RULES.iter().find(|r| r.kind.eq_ignore_ascii_case(&kind)) {
        return Ok(Topic::Kind(rule));
    }
    arg.parse().map(Topic::State).map_err(|_| {
        let states: Vec<&str> = TcpState::ALL.iter().map(|s| s.name()).collect();
        let kinds: Vec<&str> = RULES.iter().map(|r| r.kind).collect();
        format!(
            "unknown state or finding kind: {arg:?}; states: {}; finding kinds: {}",
            states.join(", "),
            kinds.join(", ")
        )
    })
}

/// Writes the account of `topic`, wrapped to `width` columns.
pub fn write(out: &mut impl Write, topic: &Topic, width: usize) -> io::Result<()> {
    let state = match topic {
        Topic::All => {
            writeln!(out, "TCP states (connleak explain STATE for details):")?;
            for st in TcpState::ALL {
                let head = format!("  {:<13} ", st.name());
                wrap(
                    out,
                    st.info().side.describe(),
                    &head,
                    &" ".repeat(16),
                    width,
                )?;
            }
            writeln!(out, "Finding kinds (connleak explain KIND for details):")?;
            for rule in RULES {
                let head = format!("  {:<26} ", rule.kind);
                wrap(out, rule.title, &head, &" ".repeat(29), width)?;
            }
            return Ok(());
        }
        Topic::Kind(rule) => {
            writeln!(out, "{}: {}", rule.kind, rule.title)?;
            return wrap(out, rule.about, "  ", "  ", width);
        }
        Topic::State(state) => *state,
    };
    let i = state.info();
    writeln!(out, "{} (RFC 9293: {})", state.name(), state.rfc_name())?;
    let indent = " ".repeat(17);
    let mut field =
        |name: &str, text: &str| wrap(out, text, &format!("  {name:<15}"), &indent, width);
    field("who is here:", i.side.describe())?;
    field("leaves when:", i.leaves_when)?;
    field("bounded by:", &i.bound.describe())?;
    field("a build-up:", i.buildup)?;
    if i.bound == Bound::Application {
        field(
            "note:",
            "no kernel timer will clear these sockets; only the owning process can, by \
             closing them (or by exiting)",
        )?;
    }
    Ok(())
}

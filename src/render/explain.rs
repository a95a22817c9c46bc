//! `connleak explain TOPIC`: the TCP state model, the finding kinds and the
//! causes told on their own, for a person.

use super::text::wrap;
use crate::diagnose::{Cause, RULES, Rule, cause_named};
use crate::tcp::{Bound, TcpState};
use std::io::{self, Write};

/// What `explain` was asked about.
pub enum Topic {
    All,
    State(TcpState),
    Kind(&'static Rule),
    Cause(Cause),
}

/// Every topic's name: the states, the finding kinds, the causes (a cause
/// named as a kind is told with the kind). For the completions.
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<&str> = TcpState::ALL.iter().map(|s| s.name()).collect();
    names.extend(RULES.iter().map(|r| r.kind));
    let causes: Vec<&str> = Cause::all().map(Cause::name).collect();
    names.extend(
        causes
            .into_iter()
            .filter(|c| !RULES.iter().any(|r| r.kind == *c)),
    );
    names
}

/// The topic named by `arg`: a TCP state, a finding kind or a cause, in any
/// spelling (case, `-` or `_`: `close-wait-leak` is `close_wait_leak`).
pub fn topic(arg: Option<&str>) -> Result<Topic, String> {
    let Some(arg) = arg else {
        return Ok(Topic::All);
    };
    let kind = arg.replace('-', "_");
    if let Some(rule) = RULES.iter().find(|r| r.kind.eq_ignore_ascii_case(&kind)) {
        return Ok(Topic::Kind(rule));
    }
    if let Some(cause) = cause_named(arg) {
        return Ok(Topic::Cause(cause));
    }
    arg.parse().map(Topic::State).map_err(|_| {
        format!(
            "unknown state, finding kind or cause: {arg:?}; one of: {}",
            names().join(", ")
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
            writeln!(out, "Causes (connleak explain CAUSE):")?;
            for cause in Cause::all() {
                writeln!(out, "  {:<29} a cause of {}", cause.name(), cause.kind())?;
            }
            return Ok(());
        }
        Topic::Kind(rule) => {
            writeln!(out, "{}: {}", rule.kind, rule.title)?;
            wrap(out, rule.about, "  ", "  ", width)?;
            // A cause of another kind may have this kind's name (an fd table full of it).
            for cause in Cause::all().filter(|c| c.name() == rule.kind) {
                writeln!(out, "As a cause of {}:", cause.kind())?;
                wrap(out, cause.about(), "  ", "  ", width)?;
            }
            return Ok(());
        }
        Topic::Cause(cause) => {
            writeln!(out, "{}: a cause of {}", cause.name(), cause.kind())?;
            return wrap(out, cause.about(), "  ", "  ", width);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn told(arg: &str) -> String {
        let mut out = Vec::new();
        let written = topic(Some(arg)).map(|t| write(&mut out, &t, 80));
        assert!(matches!(written, Ok(Ok(()))), "explain {arg}");
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn kinds_and_causes_are_explained() {
        let kind = told("closed-not-released");
        assert!(kind.starts_with("closed_not_released: "), "{kind}");
        assert!(kind.contains("can't identify"), "{kind}");
        let cause = told("never_accepted");
        assert!(
            cause.starts_with("never_accepted: a cause of close_wait_leak"),
            "{cause}"
        );
        assert!(cause.contains("queued, not held"), "{cause}");
        let err = topic(Some("nonsense")).err().unwrap_or_default();
        assert!(err.contains("never_accepted"), "{err}");
    }
}

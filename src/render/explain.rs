//! `connleak explain STATE`: the TCP state model, told for a person.

use crate::tcp::{Bound, TcpState};
use std::io::{self, Write};

/// Writes the model's account of one state, or a one-line summary of all.
pub fn write(out: &mut impl Write, state: Option<TcpState>) -> io::Result<()> {
    let Some(state) = state else {
        writeln!(out, "TCP states (connleak explain STATE for details):")?;
        for st in TcpState::ALL {
            let i = st.info();
            writeln!(out, "  {:<13} {}", st.name(), i.side.describe())?;
        }
        return Ok(());
    };
    let i = state.info();
    writeln!(out, "{} (RFC 9293: {})", state.name(), state.rfc_name())?;
    writeln!(out, "  who is here:   {}", i.side.describe())?;
    writeln!(out, "  leaves when:   {}", i.leaves_when)?;
    writeln!(out, "  bounded by:    {}", i.bound.describe())?;
    writeln!(out, "  a build-up:    {}", i.buildup)?;
    if i.bound == Bound::Application {
        writeln!(
            out,
            "  note:          no kernel timer will clear these sockets; only the owning \
             process can, by closing them (or by exiting)"
        )?;
    }
    Ok(())
}

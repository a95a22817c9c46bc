//! TCP's state machine as the kernel runs it, told for people.
//!
//! `ss` prints state names and leaves the reader to remember RFC 9293. Every
//! finding connleak makes cites this model instead: which side of the
//! connection sits in a state, what has to happen for the socket to leave it,
//! and which timer (if any) ends it regardless. The numbering is Linux's
//! (`include/net/tcp_states.h`), which is what sock_diag and `/proc/net/tcp`
//! report.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A TCP socket state, numbered as the Linux kernel numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TcpState {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    NewSynRecv,
}

/// Where a socket in a given state stands in the life of its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Setting the connection up (SYN exchanged, not yet established).
    Opening,
    /// Waiting for connections.
    Listening,
    /// Both directions open.
    Open,
    /// This end called `close()` (or `shutdown()`) first.
    ActiveCloser,
    /// The peer closed first; this end has yet to, or just did.
    PassiveCloser,
    /// Not attached to a connection.
    Closed,
}

impl Side {
    pub fn describe(self) -> &'static str {
        match self {
            Side::Opening => "opening the connection (three-way handshake)",
            Side::Listening => "listening; the server side of future connections",
            Side::Open => "connection open in both directions",
            Side::ActiveCloser => "the active closer: this end sent FIN first",
            Side::PassiveCloser => "the passive closer: the peer sent FIN first",
            Side::Closed => "no connection",
        }
    }
}

/// What bounds the time a socket can spend in a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Nothing: only the application can end it.
    Application,
    /// A fixed kernel constant, in seconds.
    Fixed(u32),
    /// The named sysctl (seconds), when the socket is orphaned.
    Sysctl(&'static str),
    /// Retransmission with exponential back-off, then the connection is dropped.
    Retransmission(&'static str),
    /// Keep-alive, if the application enabled it; otherwise nothing.
    KeepAlive,
}

impl Bound {
    pub fn describe(self) -> String {
        match self {
            Bound::Application => "no timer: only the application's close() ends it".to_string(),
            Bound::Fixed(s) => {
                format!("a fixed {s} s timer (TCP_TIMEWAIT_LEN; no sysctl changes it)")
            }
            Bound::Sysctl(name) => format!("net.ipv4.{name} when orphaned (no process holds it)"),
            Bound::Retransmission(sysctl) => {
                format!("retransmission with back-off, bounded by net.ipv4.{sysctl}")
            }
            Bound::KeepAlive => {
                "keep-alive probes if SO_KEEPALIVE is set; otherwise none".to_string()
            }
        }
    }
}

/// Everything the model knows about one state.
#[derive(Debug, Clone, Copy)]
pub struct StateInfo {
    pub side: Side,
    /// What must happen for the socket to leave the state.
    pub leaves_when: &'static str,
    pub bound: Bound,
    /// Why a build-up of sockets in this state matters, and what usually causes it.
    pub buildup: &'static str,
}

/// Linux's fixed TIME_WAIT length, seconds (`TCP_TIMEWAIT_LEN`).
pub const TIME_WAIT_SECS: u32 = 60;

impl TcpState {
    pub const ALL: [TcpState; 12] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
        TcpState::NewSynRecv,
    ];

    /// A state the kernel finishes on its own once the application closed
    /// the socket (FIN-WAIT-1, FIN-WAIT-2, CLOSING, LAST-ACK): with no fd,
    /// an orphan, not a connection waiting to be accepted.
    pub fn is_closing_after_close(self) -> bool {
        matches!(
            self,
            TcpState::FinWait1 | TcpState::FinWait2 | TcpState::Closing | TcpState::LastAck
        )
    }

    /// The kernel's number for the state (`TCP_ESTABLISHED` = 1, ...).
    pub fn from_kernel(n: u8) -> Option<TcpState> {
        Self::ALL.get(usize::from(n).checked_sub(1)?).copied()
    }

    /// The name as the kernel and `ss` spell it, with underscores.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait1 => "FIN_WAIT1",
            TcpState::FinWait2 => "FIN_WAIT2",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
            TcpState::NewSynRecv => "NEW_SYN_RECV",
        }
    }

    /// The name RFC 9293 gives the state. NEW_SYN_RECV is Linux's lightweight
    /// request socket for a connection the RFC has in SYN-RECEIVED.
    pub fn rfc_name(self) -> &'static str {
        match self {
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN-SENT",
            TcpState::SynRecv => "SYN-RECEIVED",
            TcpState::FinWait1 => "FIN-WAIT-1",
            TcpState::FinWait2 => "FIN-WAIT-2",
            TcpState::TimeWait => "TIME-WAIT",
            TcpState::Close => "CLOSED",
            TcpState::CloseWait => "CLOSE-WAIT",
            TcpState::LastAck => "LAST-ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
            TcpState::NewSynRecv => "SYN-RECEIVED",
        }
    }

    pub fn info(self) -> StateInfo {
        let (side, leaves_when, bound, buildup) = match self {
            TcpState::Established => (
                Side::Open,
                "either end closes: its FIN moves it to FIN-WAIT-1, the peer's FIN to CLOSE-WAIT",
                Bound::KeepAlive,
                "many idle ESTABLISHED sockets mean pooled or forgotten connections; \
                 a peer whose host died is never noticed without keep-alive",
            ),
            TcpState::SynSent => (
                Side::Opening,
                "the peer's SYN-ACK arrives (then ESTABLISHED), or connect() times out",
                Bound::Retransmission("tcp_syn_retries"),
                "a destination that does not answer: filtered, down or overloaded",
            ),
            TcpState::SynRecv | TcpState::NewSynRecv => (
                Side::Opening,
                "the client's final ACK of the handshake arrives",
                Bound::Retransmission("tcp_synack_retries"),
                "clients that never complete the handshake: a SYN flood, or replies lost on \
                 the way back",
            ),
            TcpState::FinWait1 => (
                Side::ActiveCloser,
                "the peer acknowledges our FIN (then FIN-WAIT-2) or sends its own (CLOSING)",
                Bound::Retransmission("tcp_orphan_retries"),
                "a peer that stopped acknowledging, or a full peer receive window",
            ),
            TcpState::FinWait2 => (
                Side::ActiveCloser,
                "the peer sends its FIN (then TIME-WAIT)",
                Bound::Sysctl("tcp_fin_timeout"),
                "a half-closed connection: this end shut down its side and the peer never \
                 closes its own (look for the matching CLOSE-WAIT)",
            ),
            TcpState::TimeWait => (
                Side::ActiveCloser,
                "the timer expires; the socket exists only to absorb late segments",
                Bound::Fixed(TIME_WAIT_SECS),
                "this end closed first: many short connections. On a client it uses up \
                 ephemeral ports to one destination; on a server it is harmless but points at \
                 missing keep-alive",
            ),
            TcpState::Close => (
                Side::Closed,
                "the application calls close()",
                Bound::Application,
                "sockets created or shut down and never closed by the application",
            ),
            TcpState::CloseWait => (
                Side::PassiveCloser,
                "the application calls close() (then LAST-ACK)",
                Bound::Application,
                "the peer closed and the application did not: a leak in the code that should \
                 close the socket, or workers that never get to read it",
            ),
            TcpState::LastAck => (
                Side::PassiveCloser,
                "the peer acknowledges our FIN",
                Bound::Retransmission("tcp_orphan_retries"),
                "a peer that disappeared after sending its FIN",
            ),
            TcpState::Listen => (
                Side::Listening,
                "the application closes the listening socket",
                Bound::Application,
                "accepted-but-unread connections queue behind a listener whose accept loop stalls",
            ),
            TcpState::Closing => (
                Side::ActiveCloser,
                "the peer acknowledges our FIN after both ends sent FIN at once",
                Bound::Retransmission("tcp_orphan_retries"),
                "simultaneous close with a peer that stopped acknowledging",
            ),
        };
        StateInfo {
            side,
            leaves_when,
            bound,
            buildup,
        }
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name given was not a TCP state.
#[derive(Debug, thiserror::Error)]
#[error("unknown TCP state {0:?}; expected one of: {names}", names = TcpState::ALL.map(TcpState::name).join(", "))]
pub struct UnknownState(pub String);

impl FromStr for TcpState {
    type Err = UnknownState;

    /// Accepts the kernel's spelling, RFC 9293's, any case, `-` or `_`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let alias = match norm.as_str() {
            "SYNRECEIVED" => Some(TcpState::SynRecv),
            "CLOSED" => Some(TcpState::Close),
            "ESTAB" => Some(TcpState::Established),
            _ => None,
        };
        alias
            .or_else(|| {
                Self::ALL
                    .into_iter()
                    .find(|st| st.name().replace('_', "") == norm)
            })
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_numbers_round_trip() {
        assert_eq!(TcpState::from_kernel(1), Some(TcpState::Established));
        assert_eq!(TcpState::from_kernel(8), Some(TcpState::CloseWait));
        assert_eq!(TcpState::from_kernel(10), Some(TcpState::Listen));
        assert_eq!(TcpState::from_kernel(12), Some(TcpState::NewSynRecv));
        assert_eq!(TcpState::from_kernel(0), None);
        assert_eq!(TcpState::from_kernel(13), None);
    }

    #[test]
    fn parses_kernel_and_rfc_spellings() {
        for st in TcpState::ALL {
            assert_eq!(st.name().parse::<TcpState>().ok(), Some(st));
        }
        assert_eq!(
            "close-wait".parse::<TcpState>().ok(),
            Some(TcpState::CloseWait)
        );
        assert_eq!(
            "FIN-WAIT-2".parse::<TcpState>().ok(),
            Some(TcpState::FinWait2)
        );
        assert_eq!(
            "SYN-RECEIVED".parse::<TcpState>().ok(),
            Some(TcpState::SynRecv)
        );
        assert!("LEAKING".parse::<TcpState>().is_err());
    }

    #[test]
    fn timers_follow_linux_not_folklore() {
        // TIME_WAIT is a fixed 60 s, not tcp_fin_timeout.
        assert_eq!(TcpState::TimeWait.info().bound, Bound::Fixed(60));
        assert_eq!(
            TcpState::FinWait2.info().bound,
            Bound::Sysctl("tcp_fin_timeout")
        );
        assert_eq!(TcpState::CloseWait.info().bound, Bound::Application);
        assert_eq!(TcpState::CloseWait.info().side, Side::PassiveCloser);
        assert_eq!(TcpState::TimeWait.info().side, Side::ActiveCloser);
    }

    #[test]
    fn serializes_with_kernel_names() {
        let json = serde_json::to_string(&TcpState::FinWait2).unwrap_or_default();
        assert_eq!(json, "\"FIN_WAIT2\"");
        for st in TcpState::ALL {
            let json = serde_json::to_string(&st).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", st.name()));
        }
    }
}

//! The numbers that turn counts into severities, defined once: each is a
//! field of [`Thresholds`], a command-line flag of the same name (kebab-case,
//! made by `cli` from the same table) and a key of the configuration file
//! (snake_case, read by `config`). Precedence: flag, then configuration file,
//! then the default here. The rules only ever see the resulting values.

/// What a threshold measures, which names its value and bounds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Count,
    Seconds,
    /// 0 to 100: a higher percentage could never be reached.
    Percent,
}

impl Measure {
    /// The value's name in `--help`.
    pub const fn value_name(self) -> &'static str {
        match self {
            Measure::Count => "N",
            Measure::Seconds => "SECS",
            Measure::Percent => "PCT",
        }
    }

    /// The largest value that means something.
    pub const fn max(self) -> u64 {
        match self {
            Measure::Percent => 100,
            Measure::Count | Measure::Seconds => u64::MAX,
        }
    }

    /// The values accepted, said for an error.
    pub fn accepted(self) -> &'static str {
        match self {
            Measure::Count => "a whole number, 0 or more",
            Measure::Seconds => "a whole number of seconds, 0 or more",
            Measure::Percent => "a whole number of percent, 0 to 100",
        }
    }
}

/// One threshold as the table defines it: its configuration key (the
/// field's name), what it measures, its default.
#[derive(Debug, Clone, Copy)]
pub struct Threshold {
    pub key: &'static str,
    pub measure: Measure,
    pub default: u64,
}

/// Calls macro `$then` with the table of every threshold: doc, field,
/// [`Measure`] and default. The one definition that [`Thresholds`] here and
/// the command line's flags are both made from.
macro_rules! threshold_table {
    ($then:ident) => {
        $then! {
            /// Stuck CLOSE_WAIT sockets per process and endpoint that make a warning.
            close_wait_warn: Count = 10;
            /// Stuck CLOSE_WAIT sockets per process and endpoint that make a critical.
            close_wait_crit: Count = 200;
            /// CLOSE_WAIT sockets younger than SECS are still being closed, not stuck.
            close_wait_min_age: Seconds = 2;
            /// A warning whose oldest CLOSE_WAIT socket is older than SECS becomes critical
            /// (not a client's idle pool the server closed: age alone does not make that critical).
            close_wait_crit_age: Seconds = 3600;
            /// Accepted connections with requests nobody reads that make a warning (worker pool).
            unread_warn: Count = 5;
            /// Accepted connections with requests nobody reads that make a critical (worker pool).
            unread_crit: Count = 200;
            /// Half-closed connection pairs (or orphaned FIN_WAIT2 sockets) that make a finding.
            half_closed_warn: Count = 10;
            /// Half-closed connection pairs that make a critical.
            half_closed_crit: Count = 200;
            /// TIME_WAIT sockets on one listener that are noted (the server closes first).
            server_close_min: Count = 10;
            /// Half-open handshakes (SYN_RECV) on one listener that are noted; a warning from half
            /// the listener's backlog (or four times this with the backlog unknown).
            syn_backlog_min: Count = 64;
            /// Connection attempts (SYN_SENT) toward one destination that make a warning.
            syn_sent_warn: Count = 5;
            /// Connection attempts (SYN_SENT) toward one destination that make a critical.
            syn_sent_crit: Count = 100;
            /// Unread data on an ESTABLISHED connection counts toward a stuck pool after SECS without new data.
            unread_min_age: Seconds = 10;
            /// Percent of the usable ephemeral ports toward one destination that makes a warning.
            ports_warn: Percent = 50;
            /// Percent of the usable ephemeral ports toward one destination that makes a critical.
            ports_crit: Percent = 80;
            /// Percent of a process's soft fd limit in use that makes a warning.
            fd_warn: Percent = 80;
            /// Percent of a process's soft fd limit in use that makes a critical.
            fd_crit: Percent = 90;
            /// Seconds a connection's Send-Q must stand still (peer not reading, or gone) to count.
            send_stall_secs: Seconds = 30;
            /// Connections toward one peer with a standing Send-Q that make a warning.
            send_stall_warn: Count = 5;
            /// Sockets in LAST_ACK, FIN_WAIT1 or CLOSING (each) that make a warning.
            stalled_close_warn: Count = 50;
            /// Percent of tcp_max_tw_buckets or tcp_max_orphans in use that makes a warning.
            kernel_limit_warn: Percent = 80;
            /// TCP sockets a process holds after the kernel closed them (reset, timeout) that make a warning.
            unreleased_warn: Count = 10;
            /// ESTABLISHED connections silent this long (seconds) without keep-alive are noted.
            idle: Seconds = 3600;
        }
    };
}
pub(crate) use threshold_table;

macro_rules! define_thresholds {
    ($( $(#[doc = $doc:literal])* $field:ident: $measure:ident = $default:expr; )*) => {
        /// Every threshold the rules use.
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct Thresholds {
            $( $(#[doc = $doc])* pub $field: u64, )*
        }

        impl Default for Thresholds {
            fn default() -> Self {
                Thresholds { $( $field: $default, )* }
            }
        }

        impl Thresholds {
            /// Every threshold: key, measure and default.
            pub const TABLE: &[Threshold] = &[
                $( Threshold { key: stringify!($field), measure: Measure::$measure, default: $default }, )*
            ];

            /// Sets the threshold named `key`; `false` when there is none.
            pub fn set(&mut self, key: &str, value: u64) -> bool {
                match key {
                    $( stringify!($field) => self.$field = value, )*
                    _ => return false,
                }
                true
            }
        }
    };
}

threshold_table!(define_thresholds);

/// A warning threshold above its critical one: which of the two was meant
/// cannot be guessed, so it is an error rather than a silent clamp.
#[derive(Debug, thiserror::Error)]
#[error(
    "contradicting thresholds: {name}-warn {warn} is above {name}-crit {crit} \
     (from the flags or the configuration file); lower the first or raise the second"
)]
pub struct Contradiction {
    name: &'static str,
    warn: u64,
    crit: u64,
}

impl Thresholds {
    /// These thresholds, when every warning level is at or below its
    /// critical one, wherever either came from.
    pub fn consistent(self) -> Result<Thresholds, Contradiction> {
        let pairs = [
            ("close-wait", self.close_wait_warn, self.close_wait_crit),
            ("unread", self.unread_warn, self.unread_crit),
            ("half-closed", self.half_closed_warn, self.half_closed_crit),
            ("syn-sent", self.syn_sent_warn, self.syn_sent_crit),
            ("ports", self.ports_warn, self.ports_crit),
            ("fd", self.fd_warn, self.fd_crit),
        ];
        for (name, warn, crit) in pairs {
            if warn > crit {
                return Err(Contradiction { name, warn, crit });
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_above_its_critical_is_refused() {
        let t = Thresholds {
            close_wait_warn: 500,
            close_wait_crit: 20,
            ..Thresholds::default()
        };
        assert_eq!(
            t.consistent()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
            "contradicting thresholds: close-wait-warn 500 is above close-wait-crit 20 \
             (from the flags or the configuration file); lower the first or raise the second"
        );
        // Equal is allowed (critical wins), and the defaults are consistent.
        let equal = Thresholds {
            fd_warn: 90,
            ..Thresholds::default()
        };
        assert!(equal.consistent().is_ok());
        let ports = Thresholds {
            ports_warn: 95,
            ..Thresholds::default()
        };
        assert!(ports.consistent().is_err());
    }
}

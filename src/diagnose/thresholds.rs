//! The numbers that turn counts into severities, defined once: each is a
//! field of [`Thresholds`], a command-line flag of the same name (kebab-case)
//! and a key of the configuration file (snake_case). Precedence: flag, then
//! configuration file, then the default here.

use serde::Deserialize;

macro_rules! thresholds {
    ($( $(#[doc = $doc:literal])* $field:ident: $value_name:literal = $default:expr; )*) => {
        /// Every threshold the rules use.
        #[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct Thresholds {
            $( $(#[doc = $doc])* pub $field: u64, )*
        }

        impl Default for Thresholds {
            fn default() -> Self {
                Thresholds { $( $field: $default, )* }
            }
        }

        /// The thresholds given on the command line; unset ones come from the
        /// configuration file or the defaults.
        #[derive(Debug, Clone, Default, clap::Args)]
        #[command(next_help_heading = "Thresholds")]
        pub struct ThresholdArgs {
            $( $(#[doc = $doc])* #[arg(long, global = true, value_name = $value_name)]
               pub $field: Option<u64>, )*
        }

        impl Thresholds {
            /// Each threshold's flag id and default, for `--help`.
            pub const DEFAULTS: &[(&str, u64)] = &[ $( (stringify!($field), $default), )* ];

            /// These thresholds with the flags that were given put over
            /// them; a warning level above its critical one is refused,
            /// wherever either came from.
            pub fn overridden_by(mut self, args: &ThresholdArgs) -> Result<Thresholds, Contradiction> {
                $( if let Some(v) = args.$field { self.$field = v; } )*
                self.check_pair("close-wait", self.close_wait_warn, self.close_wait_crit)?;
                self.check_pair("unread", self.unread_warn, self.unread_crit)?;
                self.check_pair("half-closed", self.half_closed_warn, self.half_closed_crit)?;
                self.check_pair("syn-sent", self.syn_sent_warn, self.syn_sent_crit)?;
                self.check_pair("ports", self.ports_warn, self.ports_crit)?;
                self.check_pair("fd", self.fd_warn, self.fd_crit)?;
                Ok(self)
            }
        }

        impl ThresholdArgs {
            /// The threshold flags given, as they are spelt on the command line.
            pub fn given(&self) -> Vec<String> {
                let mut flags = Vec::new();
                $( if self.$field.is_some() {
                    flags.push(format!("--{}", stringify!($field).replace('_', "-")));
                } )*
                flags
            }
        }
    };
}

thresholds! {
    /// Stuck CLOSE_WAIT sockets per process and endpoint that make a warning.
    close_wait_warn: "N" = 10;
    /// Stuck CLOSE_WAIT sockets per process and endpoint that make a critical.
    close_wait_crit: "N" = 200;
    /// CLOSE_WAIT sockets younger than SECS are still being closed, not stuck.
    close_wait_min_age: "SECS" = 2;
    /// A warning whose oldest CLOSE_WAIT socket is older than SECS becomes critical
    /// (not a client's idle pool the server closed: age alone does not make that critical).
    close_wait_crit_age: "SECS" = 3600;
    /// Accepted connections with requests nobody reads that make a warning (worker pool).
    unread_warn: "N" = 5;
    /// Accepted connections with requests nobody reads that make a critical (worker pool).
    unread_crit: "N" = 200;
    /// Half-closed connection pairs (or orphaned FIN_WAIT2 sockets) that make a finding.
    half_closed_warn: "N" = 10;
    /// Half-closed connection pairs that make a critical.
    half_closed_crit: "N" = 200;
    /// TIME_WAIT sockets on one listener that are noted (the server closes first).
    server_close_min: "N" = 10;
    /// Half-open handshakes (SYN_RECV) on one listener that are noted; a warning from half
    /// the listener's backlog (or four times this with the backlog unknown).
    syn_backlog_min: "N" = 64;
    /// Connection attempts (SYN_SENT) toward one destination that make a warning.
    syn_sent_warn: "N" = 5;
    /// Connection attempts (SYN_SENT) toward one destination that make a critical.
    syn_sent_crit: "N" = 100;
    /// Unread data on an ESTABLISHED connection counts toward a stuck pool after SECS without new data.
    unread_min_age: "SECS" = 10;
    /// Percent of the usable ephemeral ports toward one destination that makes a warning.
    ports_warn: "PCT" = 50;
    /// Percent of the usable ephemeral ports toward one destination that makes a critical.
    ports_crit: "PCT" = 80;
    /// Percent of a process's soft fd limit in use that makes a warning.
    fd_warn: "PCT" = 80;
    /// Percent of a process's soft fd limit in use that makes a critical.
    fd_crit: "PCT" = 90;
    /// Seconds a connection's Send-Q must stand still (peer not reading, or gone) to count.
    send_stall_secs: "SECS" = 30;
    /// Connections toward one peer with a standing Send-Q that make a warning.
    send_stall_warn: "N" = 5;
    /// Sockets in LAST_ACK, FIN_WAIT1 or CLOSING (each) that make a warning.
    stalled_close_warn: "N" = 50;
    /// Percent of tcp_max_tw_buckets or tcp_max_orphans in use that makes a warning.
    kernel_limit_warn: "PCT" = 80;
    /// TCP sockets a process holds after the kernel closed them (reset, timeout) that make a warning.
    unreleased_warn: "N" = 10;
    /// ESTABLISHED connections silent this long (seconds) without keep-alive are noted.
    idle: "SECS" = 3600;
}

/// Where `check` and every other mode look for thresholds when `--config` is not given.
pub const CONFIG_PATH: &str = "/etc/connleak.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("configuration {path}: {error}")]
    Parse {
        path: String,
        error: toml::de::Error,
    },
}

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
    fn check_pair(&self, name: &'static str, warn: u64, crit: u64) -> Result<(), Contradiction> {
        if warn > crit {
            return Err(Contradiction { name, warn, crit });
        }
        Ok(())
    }

    /// The defaults with a configuration file's values put over them. An
    /// explicit `path` must exist; the default path may be absent.
    pub fn from_config(path: Option<&std::path::Path>) -> Result<Thresholds, ConfigError> {
        let explicit = path.is_some();
        let path = path.unwrap_or(std::path::Path::new(CONFIG_PATH));
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Thresholds::default());
            }
            Err(error) => return Err(ConfigError::Read { path: shown, error }),
        };
        toml::from_str(&text).map_err(|error| ConfigError::Parse { path: shown, error })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_over_config_over_defaults() {
        let config: Thresholds =
            toml::from_str("close_wait_warn = 3\nfd_warn = 70\n").unwrap_or_default();
        assert_eq!(
            (config.close_wait_warn, config.fd_warn, config.idle),
            (3, 70, 3600)
        );
        let args = ThresholdArgs {
            close_wait_warn: Some(7),
            ..ThresholdArgs::default()
        };
        let t = config.overridden_by(&args).unwrap_or_default();
        assert_eq!((t.close_wait_warn, t.fd_warn), (7, 70));
        assert!(toml::from_str::<Thresholds>("close_wait_wran = 3").is_err());
        assert_eq!(args.given(), ["--close-wait-warn"]);
    }

    #[test]
    fn a_warning_above_its_critical_is_refused() {
        let args = ThresholdArgs {
            close_wait_warn: Some(500),
            close_wait_crit: Some(20),
            ..ThresholdArgs::default()
        };
        let err = Thresholds::default().overridden_by(&args).err();
        assert_eq!(
            err.map(|e| e.to_string()).unwrap_or_default(),
            "contradicting thresholds: close-wait-warn 500 is above close-wait-crit 20 \
             (from the flags or the configuration file); lower the first or raise the second"
        );
        // Equal is allowed (critical wins), and a default pair is consistent.
        let config: Thresholds = toml::from_str("fd_warn = 90\n").unwrap_or_default();
        assert!(config.overridden_by(&ThresholdArgs::default()).is_ok());
        let ports: Thresholds = toml::from_str("ports_warn = 95\n").unwrap_or_default();
        assert!(ports.overridden_by(&ThresholdArgs::default()).is_err());
    }
}

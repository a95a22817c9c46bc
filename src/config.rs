//! The configuration file (`/etc/connleak.toml`, or `--config FILE`): the
//! thresholds as snake_case keys, read once at the command line's edge and
//! handed down in the plan, so that no layer below reads a file to judge.

use crate::diagnose::Thresholds;
use std::path::Path;

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

/// The defaults with a configuration file's values put over them. An
/// explicit `path` must exist; the default path may be absent.
pub fn thresholds(path: Option<&Path>) -> Result<Thresholds, ConfigError> {
    let explicit = path.is_some();
    let path = path.unwrap_or(Path::new(CONFIG_PATH));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_over_defaults_and_unknown_keys_refused() {
        let config: Thresholds =
            toml::from_str("close_wait_warn = 3\nfd_warn = 70\n").unwrap_or_default();
        assert_eq!(
            (config.close_wait_warn, config.fd_warn, config.idle),
            (3, 70, 3600)
        );
        assert!(toml::from_str::<Thresholds>("close_wait_wran = 3").is_err());
    }
}

//! The configuration file (`/etc/connleak.toml`, or `--config FILE`): the
//! thresholds as snake_case keys, read once at the command line's edge and
//! handed down in the plan, so that no layer below reads a file to judge.
//! An error is one line that names the file, the line and the key, and says
//! what the key accepts: not the parser's vocabulary, nor every key.

use crate::diagnose::{Threshold, Thresholds};
use std::path::Path;
use toml::de::{DeTable, DeValue};

/// Where `check` and every other mode look for thresholds when `--config` is not given.
pub const CONFIG_PATH: &str = "/etc/connleak.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("configuration {path} line {line}: {problem}")]
    Invalid {
        path: String,
        line: usize,
        problem: String,
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
    parse(&text).map_err(|(at, problem)| ConfigError::Invalid {
        path: shown,
        line: text.get(..at).map_or(1, |t| t.matches('\n').count() + 1),
        problem,
    })
}

/// The thresholds a configuration text sets over the defaults, or where
/// (a byte offset) and what is wrong.
fn parse(text: &str) -> Result<Thresholds, (usize, String)> {
    let table = DeTable::parse(text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        (
            at,
            e.message().lines().next().unwrap_or_default().to_string(),
        )
    })?;
    let mut thresholds = Thresholds::default();
    for (key, value) in table.get_ref() {
        let at = key.span().start;
        let key = key.get_ref().as_ref();
        let Some(t) = Thresholds::TABLE.iter().find(|t| t.key == key) else {
            return Err((
                at,
                format!("unknown key {key:?} (the keys are the threshold flags in snake_case)"),
            ));
        };
        let n = number(t, value.get_ref()).map_err(|problem| (at, problem))?;
        thresholds.set(t.key, n);
    }
    Ok(thresholds)
}

/// The value of threshold `t`, within its measure's bounds.
fn number(t: &Threshold, value: &DeValue) -> Result<u64, String> {
    let refused = |got: String| format!("{} must be {}, not {got}", t.key, t.measure.accepted());
    let Some(int) = value.as_integer() else {
        return Err(refused(format!("a {}", value.type_str())));
    };
    let digits = int.as_str().replace('_', "");
    match u64::from_str_radix(&digits, int.radix()) {
        Ok(n) if n <= t.measure.max() => Ok(n),
        _ => Err(refused(int.as_str().to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(_) => String::new(),
            Err((at, problem)) => format!("{at}: {problem}"),
        }
    }

    #[test]
    fn keys_over_defaults() {
        let config = parse("close_wait_warn = 3\nfd_warn = 70\n").unwrap_or_default();
        assert_eq!(
            (config.close_wait_warn, config.fd_warn, config.idle),
            (3, 70, 3600)
        );
        assert_eq!(parse("idle = 1_000").map(|t| t.idle), Ok(1000));
    }

    /// One short line each, naming the key and what it accepts.
    #[test]
    fn errors_name_the_key_and_what_it_accepts() {
        assert_eq!(
            error("# thresholds\nclose_wait_wran = 3"),
            "13: unknown key \"close_wait_wran\" (the keys are the threshold flags in snake_case)"
        );
        assert_eq!(
            error("close_wait_warn = \"many\""),
            "0: close_wait_warn must be a whole number, 0 or more, not a string"
        );
        assert_eq!(
            error("close_wait_warn = -5"),
            "0: close_wait_warn must be a whole number, 0 or more, not -5"
        );
        assert_eq!(
            error("fd_warn = 150"),
            "0: fd_warn must be a whole number of percent, 0 to 100, not 150"
        );
        assert_eq!(
            error("[section]\nports_warn = 10"),
            "1: unknown key \"section\" (the keys are the threshold flags in snake_case)"
        );
        assert!(error("idle = ").starts_with("7: "), "{}", error("idle = "));
    }
}

//! Session configuration: the keys `SET 'key' = 'value'` accepts.
//!
//! Tributary's own keys follow Flink's names. Any DataFusion key
//! (`datafusion.*`) is passed through to DataFusion's `ConfigOptions`.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::mode::RuntimeMode;

/// `execution.runtime-mode`: `batch`, `streaming` or `automatic`.
pub const RUNTIME_MODE: &str = "execution.runtime-mode";
/// `parallelism.default`: tasks per operator; default the number of cores.
pub const PARALLELISM: &str = "parallelism.default";
/// `sql-client.execution.result-mode`: how the shell shows a STREAMING
/// result: `tableau` (rows with their op as they arrive, the default),
/// `table` (a table updated in place) or `changelog` (same as tableau).
pub const RESULT_MODE: &str = "sql-client.execution.result-mode";

/// How the shell shows STREAMING results (Flink's SQL client result modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultMode {
    /// Print each changelog row with its op as it arrives.
    Tableau,
    /// Keep a table of the folded result on screen and update it in place.
    Table,
    /// Like tableau (Flink prints the changelog in its own view).
    Changelog,
}

impl std::fmt::Display for ResultMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResultMode::Tableau => "tableau",
            ResultMode::Table => "table",
            ResultMode::Changelog => "changelog",
        })
    }
}

/// A configuration key Tributary knows, with its default and what it means.
#[derive(Debug, Clone, Copy)]
pub struct ConfigKey {
    /// The key, as in `SET 'key' = ...`.
    pub key: &'static str,
    /// What the key does, shown by the shell's completion and in docs.
    pub description: &'static str,
}

/// Every Tributary key (DataFusion's `datafusion.*` keys come on top).
pub const KEYS: &[ConfigKey] = &[
    ConfigKey {
        key: RUNTIME_MODE,
        description: "batch | streaming | automatic: how queries run; automatic picks batch when every source is bounded",
    },
    ConfigKey {
        key: PARALLELISM,
        description: "number of parallel tasks (partitions) per operator; default: the number of cores",
    },
    ConfigKey {
        key: RESULT_MODE,
        description: "tableau | table | changelog: how the shell shows STREAMING results",
    },
];

/// The values set for Tributary's keys; unset keys have their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TributaryConfig {
    /// `execution.runtime-mode`.
    pub runtime_mode: RuntimeMode,
    /// `parallelism.default` (tasks, ≥ 1).
    pub parallelism: usize,
    /// `sql-client.execution.result-mode`.
    pub result_mode: ResultMode,
}

impl Default for TributaryConfig {
    fn default() -> Self {
        Self {
            runtime_mode: RuntimeMode::Automatic,
            parallelism: default_parallelism(),
            result_mode: ResultMode::Tableau,
        }
    }
}

/// The number of cores, the default `parallelism.default`.
pub fn default_parallelism() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl TributaryConfig {
    /// Sets a Tributary key. Returns `Ok(false)` if `key` is not one of
    /// Tributary's (the caller then tries DataFusion's keys).
    ///
    /// # Errors
    /// An invalid value for a known key, saying which values are valid.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        match key {
            RUNTIME_MODE => self.runtime_mode = value.parse()?,
            PARALLELISM => self.parallelism = value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    Error::config(format!(
                        "invalid value '{value}' for '{PARALLELISM}': expected a whole number ≥ 1"
                    ))
                })?,
            RESULT_MODE => {
                self.result_mode = match value.trim().to_ascii_lowercase().as_str() {
                    "tableau" => ResultMode::Tableau,
                    "table" => ResultMode::Table,
                    "changelog" => ResultMode::Changelog,
                    _ => {
                        return Err(Error::config(format!(
                            "invalid value '{value}' for '{RESULT_MODE}': expected 'tableau', 'table' or 'changelog'"
                        )));
                    }
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Resets a Tributary key to its default. Returns `false` if unknown.
    pub fn reset(&mut self, key: &str) -> bool {
        let default = Self::default();
        match key {
            RUNTIME_MODE => self.runtime_mode = default.runtime_mode,
            PARALLELISM => self.parallelism = default.parallelism,
            RESULT_MODE => self.result_mode = default.result_mode,
            _ => return false,
        }
        true
    }

    /// Every Tributary key with its current value, in key order.
    pub fn entries(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (RUNTIME_MODE.to_string(), self.runtime_mode.to_string()),
            (PARALLELISM.to_string(), self.parallelism.to_string()),
            (RESULT_MODE.to_string(), self.result_mode.to_string()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_reset() {
        let mut c = TributaryConfig::default();
        assert!(c.set(RUNTIME_MODE, "BATCH").unwrap());
        assert_eq!(c.runtime_mode, RuntimeMode::Batch);
        assert!(c.set(PARALLELISM, "3").unwrap());
        assert_eq!(c.entries()[PARALLELISM], "3");
        assert!(c.set(PARALLELISM, "0").is_err());
        assert!(!c.set("no.such.key", "1").unwrap());
        assert!(c.reset(RUNTIME_MODE));
        assert_eq!(c.runtime_mode, RuntimeMode::Automatic);
    }
}

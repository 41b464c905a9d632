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

/// `table.exec.source.idle-timeout` (Flink's key): a source partition that
/// sends no row for this long (processing time) is idle — the minimum
/// watermark downstream leaves it out until it sends rows again. `0` (the
/// default) never marks a partition idle. Values like `500 ms`, `5 s`,
/// `1 min`; a bare number is milliseconds.
pub const SOURCE_IDLE_TIMEOUT: &str = "table.exec.source.idle-timeout";

/// `table.exec.state.ttl` (Flink's key): the minimum time (processing
/// time, ms) that idle state of a regular join or an updating `GROUP BY` is
/// kept. A join row or an aggregate key that has not been written for this
/// long is dropped, so state stays bounded — and results may then differ
/// from BATCH. `0` (the default) never drops state.
pub const STATE_TTL: &str = "table.exec.state.ttl";

/// `table.exec.mini-batch.enabled` (Flink's key): an updating `GROUP BY`
/// buffers input rows and applies them together, emitting one change per
/// key per mini-batch instead of one per input batch. Default `false`.
pub const MINI_BATCH_ENABLED: &str = "table.exec.mini-batch.enabled";
/// `table.exec.mini-batch.allow-latency`: the longest a row waits in a
/// mini-batch (a duration; default `1 s` here — Flink requires it set).
pub const MINI_BATCH_LATENCY: &str = "table.exec.mini-batch.allow-latency";
/// `table.exec.mini-batch.size`: rows that end a mini-batch (default 50,000
/// here — Flink requires it set).
pub const MINI_BATCH_SIZE: &str = "table.exec.mini-batch.size";

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
    ConfigKey {
        key: MINI_BATCH_ENABLED,
        description: "true | false: updating GROUP BY applies input rows in mini-batches (fewer -U/+U)",
    },
    ConfigKey {
        key: MINI_BATCH_LATENCY,
        description: "longest time a row waits in a mini-batch, e.g. '1 s'",
    },
    ConfigKey {
        key: MINI_BATCH_SIZE,
        description: "rows that end a mini-batch, e.g. '50000'",
    },
    ConfigKey {
        key: SOURCE_IDLE_TIMEOUT,
        description: "a source partition with no rows for this long (e.g. '5 s') is left out of the minimum watermark; 0 = never",
    },
    ConfigKey {
        key: STATE_TTL,
        description: "idle state of regular joins and updating GROUP BY is dropped after this long (e.g. '1 h'); results may then differ from batch; 0 = never",
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
    /// `table.exec.source.idle-timeout` in ms; 0 = never idle.
    pub source_idle_timeout_ms: u64,
    /// `table.exec.state.ttl` in ms; 0 = state is never dropped.
    pub state_ttl_ms: u64,
    /// `table.exec.mini-batch.enabled`.
    pub mini_batch_enabled: bool,
    /// `table.exec.mini-batch.allow-latency` in ms.
    pub mini_batch_latency_ms: u64,
    /// `table.exec.mini-batch.size` in rows (≥ 1).
    pub mini_batch_size: usize,
}

impl Default for TributaryConfig {
    fn default() -> Self {
        Self {
            runtime_mode: RuntimeMode::Automatic,
            parallelism: default_parallelism(),
            result_mode: ResultMode::Tableau,
            source_idle_timeout_ms: 0,
            state_ttl_ms: 0,
            mini_batch_enabled: false,
            mini_batch_latency_ms: 1_000,
            mini_batch_size: 50_000,
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
            SOURCE_IDLE_TIMEOUT => {
                self.source_idle_timeout_ms = parse_duration_ms(value).ok_or_else(|| {
                    Error::config(format!(
                        "invalid value '{value}' for '{SOURCE_IDLE_TIMEOUT}': expected a duration such as '500 ms', '5 s' or '1 min'"
                    ))
                })?
            }
            STATE_TTL => {
                self.state_ttl_ms = parse_duration_ms(value).ok_or_else(|| {
                    Error::config(format!(
                        "invalid value '{value}' for '{STATE_TTL}': expected a duration such as '30 s', '10 min' or '1 h' (0 keeps state forever)"
                    ))
                })?
            }
            MINI_BATCH_ENABLED => {
                self.mini_batch_enabled = match value.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(Error::config(format!(
                            "invalid value '{value}' for '{MINI_BATCH_ENABLED}': expected 'true' or 'false'"
                        )));
                    }
                }
            }
            MINI_BATCH_LATENCY => {
                self.mini_batch_latency_ms = parse_duration_ms(value).ok_or_else(|| {
                    Error::config(format!(
                        "invalid value '{value}' for '{MINI_BATCH_LATENCY}': expected a duration such as '500 ms' or '1 s'"
                    ))
                })?
            }
            MINI_BATCH_SIZE => {
                self.mini_batch_size = value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| {
                        Error::config(format!(
                            "invalid value '{value}' for '{MINI_BATCH_SIZE}': expected a whole number of rows ≥ 1"
                        ))
                    })?
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
            SOURCE_IDLE_TIMEOUT => self.source_idle_timeout_ms = default.source_idle_timeout_ms,
            STATE_TTL => self.state_ttl_ms = default.state_ttl_ms,
            MINI_BATCH_ENABLED => self.mini_batch_enabled = default.mini_batch_enabled,
            MINI_BATCH_LATENCY => self.mini_batch_latency_ms = default.mini_batch_latency_ms,
            MINI_BATCH_SIZE => self.mini_batch_size = default.mini_batch_size,
            _ => return false,
        }
        true
    }

    /// `table.exec.state.ttl` in ms, or None when state is kept forever (0).
    pub fn state_ttl(&self) -> Option<u64> {
        (self.state_ttl_ms > 0).then_some(self.state_ttl_ms)
    }

    /// Every Tributary key with its current value, in key order.
    pub fn entries(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (RUNTIME_MODE.to_string(), self.runtime_mode.to_string()),
            (PARALLELISM.to_string(), self.parallelism.to_string()),
            (RESULT_MODE.to_string(), self.result_mode.to_string()),
            (
                SOURCE_IDLE_TIMEOUT.to_string(),
                format!("{} ms", self.source_idle_timeout_ms),
            ),
            (STATE_TTL.to_string(), format!("{} ms", self.state_ttl_ms)),
            (
                MINI_BATCH_ENABLED.to_string(),
                self.mini_batch_enabled.to_string(),
            ),
            (
                MINI_BATCH_LATENCY.to_string(),
                format!("{} ms", self.mini_batch_latency_ms),
            ),
            (
                MINI_BATCH_SIZE.to_string(),
                self.mini_batch_size.to_string(),
            ),
        ])
    }
}

/// Parses a duration as Flink writes one (`500 ms`, `5s`, `2 min`, `1 h`,
/// `3 d`; a bare number is ms) into milliseconds.
pub fn parse_duration_ms(value: &str) -> Option<u64> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let amount: u64 = value[..split].parse().ok()?;
    let unit_ms: u64 = match value[split..].trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "min" | "m" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    };
    amount.checked_mul(unit_ms)
}

/// Formats ms as the largest Flink unit that divides it exactly (`1 h`,
/// `90 s`, `250 ms`), the inverse of [`parse_duration_ms`].
pub fn format_duration_ms(ms: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "min"),
        (1_000, "s"),
    ];
    for (unit, name) in UNITS {
        if ms > 0 && ms % unit == 0 {
            return format!("{} {name}", ms / unit);
        }
    }
    format!("{ms} ms")
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
        assert!(c.set(SOURCE_IDLE_TIMEOUT, "5 s").unwrap());
        assert_eq!(c.source_idle_timeout_ms, 5_000);
        assert!(c.set(SOURCE_IDLE_TIMEOUT, "five").is_err());
        assert!(c.set(STATE_TTL, "10 min").unwrap());
        assert_eq!(c.state_ttl_ms, 600_000);
        assert_eq!(c.state_ttl(), Some(600_000));
        let e = c.set(STATE_TTL, "an hour").unwrap_err().to_string();
        assert!(e.contains("table.exec.state.ttl"), "{e}");
        assert!(c.reset(STATE_TTL));
        assert_eq!(c.state_ttl(), None);
    }

    #[test]
    fn durations_in_flink_units() {
        assert_eq!(parse_duration_ms("250"), Some(250));
        assert_eq!(parse_duration_ms("500 ms"), Some(500));
        assert_eq!(parse_duration_ms("5s"), Some(5_000));
        assert_eq!(parse_duration_ms("2 min"), Some(120_000));
        assert_eq!(parse_duration_ms("1 h"), Some(3_600_000));
        assert_eq!(parse_duration_ms("0"), Some(0));
        assert_eq!(parse_duration_ms("s"), None);
        assert_eq!(parse_duration_ms("5 weeks"), None);
        for ms in [0, 250, 1_500, 90_000, 3_600_000, 172_800_000] {
            assert_eq!(parse_duration_ms(&format_duration_ms(ms)), Some(ms));
        }
        assert_eq!(format_duration_ms(3_600_000), "1 h");
        assert_eq!(format_duration_ms(90_000), "90 s");
    }
}

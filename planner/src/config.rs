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

/// `execution.batch-shuffle-mode` (Flink's key): how BATCH exchanges data
/// between stages: `ALL_EXCHANGES_BLOCKING` (the default: each stage writes
/// its output to exchange files, the next stage starts when they are
/// complete) or `ALL_EXCHANGES_PIPELINED` (DataFusion's in-memory streaming
/// exchanges, the whole plan runs at once).
pub const BATCH_SHUFFLE_MODE: &str = "execution.batch-shuffle-mode";
/// `taskmanager.numberOfTaskSlots` (Flink's key): how many BATCH tasks run
/// at the same time (blocking shuffle mode); default the number of cores.
pub const TASK_SLOTS: &str = "taskmanager.numberOfTaskSlots";
/// `restart-strategy.fixed-delay.attempts` (Flink's key): how many times a
/// failed BATCH task is re-run from its stage's materialized inputs before
/// the query fails (default 1, Flink's default).
pub const RESTART_ATTEMPTS: &str = "restart-strategy.fixed-delay.attempts";
/// `io.tmp.dirs` (Flink's key): the directories (comma-separated) where a
/// BATCH query keeps its working directory (exchange and spill files);
/// default the system temp directory.
pub const IO_TMP_DIRS: &str = "io.tmp.dirs";
/// `taskmanager.memory.managed.size` (Flink's key): the memory one BATCH
/// query may use for sorting, hashing and aggregating (DataFusion's memory
/// pool); with blocking exchanges each task gets `size / taskmanager.numberOfTaskSlots`,
/// as Flink splits managed memory among slots. Beyond it operators spill to
/// disk or fail with an error naming this key. Unset (the default): `taskmanager.memory.managed.fraction` of
/// the machine's memory; `0` = no limit.
pub const MANAGED_MEMORY_SIZE: &str = "taskmanager.memory.managed.size";
/// `taskmanager.memory.managed.fraction` (Flink's key): the share of the
/// machine's memory a BATCH query may use when
/// `taskmanager.memory.managed.size` is unset (default 0.4).
pub const MANAGED_MEMORY_FRACTION: &str = "taskmanager.memory.managed.fraction";
/// `execution.batch.adaptive.auto-parallelism.enabled` (Flink's key): choose
/// the parallelism of a BATCH stage that reads hash exchanges from the bytes
/// its inputs materialized (blocking shuffle mode). Default `false` here
/// (Flink's default is `true`).
pub const ADAPTIVE_ENABLED: &str = "execution.batch.adaptive.auto-parallelism.enabled";
/// `execution.batch.adaptive.auto-parallelism.min-parallelism`: the lowest
/// parallelism the adaptive scheduler picks (default 1).
pub const ADAPTIVE_MIN: &str = "execution.batch.adaptive.auto-parallelism.min-parallelism";
/// `execution.batch.adaptive.auto-parallelism.max-parallelism`: the highest
/// parallelism the adaptive scheduler picks; hash exchanges are written with
/// this many partitions. Default `parallelism.default` (Flink's is 128).
pub const ADAPTIVE_MAX: &str = "execution.batch.adaptive.auto-parallelism.max-parallelism";
/// `execution.batch.adaptive.auto-parallelism.avg-data-volume-per-task`: the
/// bytes of materialized input one task should read (default `16 mb`).
pub const ADAPTIVE_AVG_BYTES: &str =
    "execution.batch.adaptive.auto-parallelism.avg-data-volume-per-task";

/// `table.optimizer.join.broadcast-threshold` (Flink's key): the largest
/// estimated size, in bytes, of a join input that BATCH broadcasts — the
/// input is collected once and becomes the build side of a `CollectLeft`
/// hash join, and the other input streams through the join in its own
/// stage, with no exchange — instead of hash-partitioning both inputs.
/// `-1` disables broadcasting. Default 10 MB (Flink's default). The size is
/// DataFusion's estimate from the inputs' statistics (Parquet footers,
/// scaled by filters); it sets DataFusion's
/// `datafusion.optimizer.hash_join_single_partition_threshold` (and
/// `..._threshold_rows` to 0 when disabled).
pub const BROADCAST_THRESHOLD: &str = "table.optimizer.join.broadcast-threshold";

/// `taskmanager.network.blocking-shuffle.compression.enabled` (Flink's
/// key): whether BATCH exchange files (blocking shuffle mode) are
/// compressed (LZ4 frames). Default `false` here (Flink's default is
/// `true`): Tributary's exchange files are local and are read back from
/// the page cache, where compression costs CPU and saves no I/O; set it
/// when exchanges are larger than memory and the disk is slow.
pub const BLOCKING_SHUFFLE_COMPRESSION: &str =
    "taskmanager.network.blocking-shuffle.compression.enabled";

/// How BATCH exchanges data between stages (`execution.batch-shuffle-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchShuffleMode {
    /// Materialized exchanges: stages run one after the other.
    AllExchangesBlocking,
    /// DataFusion's in-memory streaming exchanges.
    AllExchangesPipelined,
}

impl std::fmt::Display for BatchShuffleMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BatchShuffleMode::AllExchangesBlocking => "ALL_EXCHANGES_BLOCKING",
            BatchShuffleMode::AllExchangesPipelined => "ALL_EXCHANGES_PIPELINED",
        })
    }
}

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
    ConfigKey {
        key: BATCH_SHUFFLE_MODE,
        description: "ALL_EXCHANGES_BLOCKING (default: BATCH stages exchange through files) | ALL_EXCHANGES_PIPELINED (in-memory streaming exchanges)",
    },
    ConfigKey {
        key: BROADCAST_THRESHOLD,
        description: "largest estimated join input (bytes, e.g. '10 mb') that BATCH broadcasts to a CollectLeft hash join instead of hash-partitioning both inputs; -1 disables (default 10 mb)",
    },
    ConfigKey {
        key: BLOCKING_SHUFFLE_COMPRESSION,
        description: "true | false: BATCH exchange files are LZ4-compressed (default false: they stay local, in the page cache)",
    },
    ConfigKey {
        key: TASK_SLOTS,
        description: "BATCH tasks that run at the same time (blocking shuffle mode); default: the number of cores",
    },
    ConfigKey {
        key: RESTART_ATTEMPTS,
        description: "times a failed BATCH task re-runs from its stage's materialized inputs (default 1)",
    },
    ConfigKey {
        key: IO_TMP_DIRS,
        description: "directories (comma-separated) for a BATCH query's exchange and spill files; default: the system temp directory",
    },
    ConfigKey {
        key: MANAGED_MEMORY_SIZE,
        description: "memory a BATCH query may use before it spills, e.g. '512 mb'; unset: the managed fraction of the machine's memory; 0 = no limit",
    },
    ConfigKey {
        key: MANAGED_MEMORY_FRACTION,
        description: "share of the machine's memory a BATCH query may use when taskmanager.memory.managed.size is unset (default 0.4)",
    },
    ConfigKey {
        key: ADAPTIVE_ENABLED,
        description: "true | false: a BATCH stage's parallelism follows the bytes its inputs materialized (default false)",
    },
    ConfigKey {
        key: ADAPTIVE_MIN,
        description: "lowest parallelism the adaptive batch scheduler picks (default 1)",
    },
    ConfigKey {
        key: ADAPTIVE_MAX,
        description: "highest parallelism the adaptive batch scheduler picks; default: parallelism.default",
    },
    ConfigKey {
        key: ADAPTIVE_AVG_BYTES,
        description: "materialized input bytes per task for the adaptive batch scheduler, e.g. '16 mb' (default)",
    },
];

/// The values set for Tributary's keys; unset keys have their defaults.
#[derive(Debug, Clone, PartialEq)]
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
    /// `execution.batch-shuffle-mode`.
    pub batch_shuffle_mode: BatchShuffleMode,
    /// `table.optimizer.join.broadcast-threshold` in bytes; `None` = `-1`
    /// (no broadcast by size).
    pub broadcast_threshold: Option<u64>,
    /// `taskmanager.network.blocking-shuffle.compression.enabled`.
    pub blocking_shuffle_compression: bool,
    /// `taskmanager.numberOfTaskSlots` (tasks, ≥ 1).
    pub task_slots: usize,
    /// `restart-strategy.fixed-delay.attempts` (re-runs of a failed task).
    pub restart_attempts: usize,
    /// `io.tmp.dirs`; empty = the system temp directory.
    pub io_tmp_dirs: Vec<String>,
    /// `taskmanager.memory.managed.size` in bytes; `None` = unset (use the
    /// fraction), `Some(0)` = no limit. See [`Self::memory_limit`].
    pub managed_memory_size: Option<u64>,
    /// `taskmanager.memory.managed.fraction` (0 < f ≤ 1).
    pub managed_memory_fraction: f64,
    /// `execution.batch.adaptive.auto-parallelism.enabled`.
    pub adaptive_enabled: bool,
    /// `...auto-parallelism.min-parallelism` (≥ 1).
    pub adaptive_min_parallelism: usize,
    /// `...auto-parallelism.max-parallelism`; `None` = `parallelism.default`.
    pub adaptive_max_parallelism: Option<usize>,
    /// `...auto-parallelism.avg-data-volume-per-task` in bytes (≥ 1).
    pub adaptive_avg_bytes_per_task: u64,
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
            batch_shuffle_mode: BatchShuffleMode::AllExchangesBlocking,
            broadcast_threshold: Some(DEFAULT_BROADCAST_THRESHOLD),
            blocking_shuffle_compression: false,
            task_slots: default_parallelism(),
            restart_attempts: 1,
            io_tmp_dirs: vec![],
            managed_memory_size: None,
            managed_memory_fraction: 0.4,
            adaptive_enabled: false,
            adaptive_min_parallelism: 1,
            adaptive_max_parallelism: None,
            adaptive_avg_bytes_per_task: 16 * 1024 * 1024,
        }
    }
}

/// Flink's default `table.optimizer.join.broadcast-threshold`: 10 MB.
pub const DEFAULT_BROADCAST_THRESHOLD: u64 = 10 * 1024 * 1024;

/// The machine's memory in bytes (`MemTotal` in `/proc/meminfo`), where
/// known.
pub fn machine_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Parses a memory size as Flink writes one (`512 mb`, `1g`, `64 kb`,
/// `1024`; a bare number is bytes) into bytes.
pub fn parse_memory_size(value: &str) -> Option<u64> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let amount: u64 = value[..split].parse().ok()?;
    let unit: u64 = match value[split..].trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" | "kib" | "kibibytes" => 1 << 10,
        "m" | "mb" | "mib" | "mebibytes" => 1 << 20,
        "g" | "gb" | "gib" | "gibibytes" => 1 << 30,
        "t" | "tb" | "tib" | "tebibytes" => 1 << 40,
        _ => return None,
    };
    amount.checked_mul(unit)
}

/// Writes a byte count the way `SET` takes one back (`16 mb`, `1 gb`, ...).
pub fn format_memory_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "tb"),
        (1 << 30, "gb"),
        (1 << 20, "mb"),
        (1 << 10, "kb"),
    ];
    for (unit, name) in UNITS {
        if bytes >= unit && bytes % unit == 0 {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes} b")
}

fn whole_number(key: &str, value: &str, min: usize) -> Result<usize> {
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= min)
        .ok_or_else(|| {
            Error::config(format!(
                "invalid value '{value}' for '{key}': expected a whole number ≥ {min}"
            ))
        })
}

fn boolean(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::config(format!(
            "invalid value '{value}' for '{key}': expected 'true' or 'false'"
        ))),
    }
}

fn memory_size(key: &str, value: &str) -> Result<u64> {
    parse_memory_size(value).ok_or_else(|| {
        Error::config(format!(
            "invalid value '{value}' for '{key}': expected a memory size such as '64 mb', '1 gb' or a number of bytes"
        ))
    })
}

/// The number of cores, the default `parallelism.default`.
pub fn default_parallelism() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl TributaryConfig {
    /// The memory limit of a BATCH query in bytes (`None`: no limit):
    /// `taskmanager.memory.managed.size` if set (0 = no limit), else
    /// `taskmanager.memory.managed.fraction` of the machine's memory (no
    /// limit where the machine's memory is unknown).
    pub fn memory_limit(&self) -> Option<u64> {
        match self.managed_memory_size {
            Some(0) => None,
            Some(bytes) => Some(bytes),
            None => machine_memory().map(|m| (m as f64 * self.managed_memory_fraction) as u64),
        }
    }

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
            BATCH_SHUFFLE_MODE => {
                self.batch_shuffle_mode = match value.trim().to_ascii_uppercase().as_str() {
                    "ALL_EXCHANGES_BLOCKING" => BatchShuffleMode::AllExchangesBlocking,
                    "ALL_EXCHANGES_PIPELINED" => BatchShuffleMode::AllExchangesPipelined,
                    _ => {
                        return Err(Error::config(format!(
                            "invalid value '{value}' for '{BATCH_SHUFFLE_MODE}': expected 'ALL_EXCHANGES_BLOCKING' or 'ALL_EXCHANGES_PIPELINED' (Flink's hybrid modes are not supported)"
                        )));
                    }
                }
            }
            BROADCAST_THRESHOLD => {
                self.broadcast_threshold = match value.trim() {
                    "-1" => None,
                    v => Some(parse_memory_size(v).ok_or_else(|| {
                        Error::config(format!(
                            "invalid value '{value}' for '{BROADCAST_THRESHOLD}': expected a size in bytes such as '10 mb' or '1048576', or -1 to disable broadcast joins"
                        ))
                    })?),
                }
            }
            BLOCKING_SHUFFLE_COMPRESSION => {
                self.blocking_shuffle_compression = boolean(key, value)?
            }
            TASK_SLOTS => self.task_slots = whole_number(key, value, 1)?,
            RESTART_ATTEMPTS => self.restart_attempts = whole_number(key, value, 0)?,
            IO_TMP_DIRS => {
                self.io_tmp_dirs = value
                    .split(',')
                    .map(|d| d.trim().to_string())
                    .filter(|d| !d.is_empty())
                    .collect()
            }
            MANAGED_MEMORY_SIZE => self.managed_memory_size = Some(memory_size(key, value)?),
            MANAGED_MEMORY_FRACTION => {
                self.managed_memory_fraction = value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| *f > 0.0 && *f <= 1.0)
                    .ok_or_else(|| {
                        Error::config(format!(
                            "invalid value '{value}' for '{MANAGED_MEMORY_FRACTION}': expected a number above 0 and at most 1, e.g. '0.4'"
                        ))
                    })?
            }
            ADAPTIVE_ENABLED => self.adaptive_enabled = boolean(key, value)?,
            ADAPTIVE_MIN => self.adaptive_min_parallelism = whole_number(key, value, 1)?,
            ADAPTIVE_MAX => self.adaptive_max_parallelism = Some(whole_number(key, value, 1)?),
            ADAPTIVE_AVG_BYTES => {
                self.adaptive_avg_bytes_per_task = memory_size(key, value)?.max(1)
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
            BATCH_SHUFFLE_MODE => self.batch_shuffle_mode = default.batch_shuffle_mode,
            BROADCAST_THRESHOLD => self.broadcast_threshold = default.broadcast_threshold,
            BLOCKING_SHUFFLE_COMPRESSION => {
                self.blocking_shuffle_compression = default.blocking_shuffle_compression
            }
            TASK_SLOTS => self.task_slots = default.task_slots,
            RESTART_ATTEMPTS => self.restart_attempts = default.restart_attempts,
            IO_TMP_DIRS => self.io_tmp_dirs = default.io_tmp_dirs,
            MANAGED_MEMORY_SIZE => self.managed_memory_size = default.managed_memory_size,
            MANAGED_MEMORY_FRACTION => {
                self.managed_memory_fraction = default.managed_memory_fraction
            }
            ADAPTIVE_ENABLED => self.adaptive_enabled = default.adaptive_enabled,
            ADAPTIVE_MIN => self.adaptive_min_parallelism = default.adaptive_min_parallelism,
            ADAPTIVE_MAX => self.adaptive_max_parallelism = default.adaptive_max_parallelism,
            ADAPTIVE_AVG_BYTES => {
                self.adaptive_avg_bytes_per_task = default.adaptive_avg_bytes_per_task
            }
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
            (
                BATCH_SHUFFLE_MODE.to_string(),
                self.batch_shuffle_mode.to_string(),
            ),
            (
                BROADCAST_THRESHOLD.to_string(),
                self.broadcast_threshold
                    .map(format_memory_size)
                    .unwrap_or_else(|| "-1".into()),
            ),
            (
                BLOCKING_SHUFFLE_COMPRESSION.to_string(),
                self.blocking_shuffle_compression.to_string(),
            ),
            (TASK_SLOTS.to_string(), self.task_slots.to_string()),
            (
                RESTART_ATTEMPTS.to_string(),
                self.restart_attempts.to_string(),
            ),
            (IO_TMP_DIRS.to_string(), self.io_tmp_dirs.join(",")),
            (
                MANAGED_MEMORY_SIZE.to_string(),
                self.managed_memory_size
                    .map(format_memory_size)
                    .unwrap_or_default(),
            ),
            (
                MANAGED_MEMORY_FRACTION.to_string(),
                self.managed_memory_fraction.to_string(),
            ),
            (
                ADAPTIVE_ENABLED.to_string(),
                self.adaptive_enabled.to_string(),
            ),
            (
                ADAPTIVE_MIN.to_string(),
                self.adaptive_min_parallelism.to_string(),
            ),
            (
                ADAPTIVE_MAX.to_string(),
                self.adaptive_max_parallelism
                    .unwrap_or(self.parallelism)
                    .to_string(),
            ),
            (
                ADAPTIVE_AVG_BYTES.to_string(),
                format_memory_size(self.adaptive_avg_bytes_per_task),
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
    fn batch_runtime_keys() {
        let mut c = TributaryConfig::default();
        assert_eq!(c.batch_shuffle_mode, BatchShuffleMode::AllExchangesBlocking);
        assert!(
            c.set(BATCH_SHUFFLE_MODE, "all_exchanges_pipelined")
                .unwrap()
        );
        assert_eq!(
            c.batch_shuffle_mode,
            BatchShuffleMode::AllExchangesPipelined
        );
        assert!(
            c.set(BATCH_SHUFFLE_MODE, "ALL_EXCHANGES_HYBRID_FULL")
                .is_err()
        );
        assert!(c.set(TASK_SLOTS, "1").unwrap());
        assert!(c.set(TASK_SLOTS, "0").is_err());
        assert!(c.set(MANAGED_MEMORY_SIZE, "64 mb").unwrap());
        assert_eq!(c.memory_limit(), Some(64 << 20));
        assert_eq!(c.entries()[MANAGED_MEMORY_SIZE], "64 mb");
        assert!(c.set(MANAGED_MEMORY_SIZE, "0").unwrap());
        assert_eq!(c.memory_limit(), None);
        assert!(c.set(MANAGED_MEMORY_FRACTION, "1.5").is_err());
        assert!(c.set(ADAPTIVE_AVG_BYTES, "lots").is_err());
        assert!(c.set(IO_TMP_DIRS, "/a, /b").unwrap());
        assert_eq!(c.io_tmp_dirs, ["/a", "/b"]);
        assert!(c.reset(IO_TMP_DIRS));
        assert!(c.io_tmp_dirs.is_empty());
    }

    #[test]
    fn broadcast_threshold_and_exchange_compression() {
        let mut c = TributaryConfig::default();
        assert_eq!(c.broadcast_threshold, Some(10 << 20));
        assert_eq!(c.entries()[BROADCAST_THRESHOLD], "10 mb");
        assert!(c.set(BROADCAST_THRESHOLD, "-1").unwrap());
        assert_eq!(c.broadcast_threshold, None);
        assert_eq!(c.entries()[BROADCAST_THRESHOLD], "-1");
        assert!(c.set(BROADCAST_THRESHOLD, "1048576").unwrap());
        assert_eq!(c.broadcast_threshold, Some(1 << 20));
        assert_eq!(c.entries()[BROADCAST_THRESHOLD], "1 mb");
        let e = c.set(BROADCAST_THRESHOLD, "-2").unwrap_err().to_string();
        assert!(e.contains("-1 to disable"), "{e}");
        assert!(c.reset(BROADCAST_THRESHOLD));
        assert_eq!(c.broadcast_threshold, Some(DEFAULT_BROADCAST_THRESHOLD));

        assert!(!c.blocking_shuffle_compression);
        assert!(c.set(BLOCKING_SHUFFLE_COMPRESSION, "TRUE").unwrap());
        assert!(c.blocking_shuffle_compression);
        assert!(c.set(BLOCKING_SHUFFLE_COMPRESSION, "lz4").is_err());
        assert!(c.reset(BLOCKING_SHUFFLE_COMPRESSION));
        assert!(!c.blocking_shuffle_compression);
    }

    #[test]
    fn memory_sizes_in_flink_units() {
        assert_eq!(parse_memory_size("1024"), Some(1024));
        assert_eq!(parse_memory_size("16 mb"), Some(16 << 20));
        assert_eq!(parse_memory_size("1g"), Some(1 << 30));
        assert_eq!(parse_memory_size("64 KiB"), Some(64 << 10));
        assert_eq!(parse_memory_size("mb"), None);
        assert_eq!(format_memory_size(16 << 20), "16 mb");
        assert_eq!(format_memory_size(1000), "1000 b");
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

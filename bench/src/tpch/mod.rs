//! TPC-H in BATCH, side by side: Tributary (one or more variants of
//! settings), plain DataFusion over the same Parquet files, and DuckDB (a
//! Python worker), interleaved, with every engine's answers compared.
//!
//! - [`datagen`]: the eight tables as Parquet, from `tpchgen` (the
//!   generator of `tpchgen-cli`), scale factor as an argument.
//! - [`queries`]: the 22 queries (`bench/tpch/queries/qN.sql`).
//! - [`answers`]: result rows normalized and compared across engines.
//! - [`engines`]: the engines behind one `run(sql)` call.
//! - [`runner`]: the interleaved run: warm-up, repetitions, answer checks.
//! - [`report`]: medians, ratios to Tributary, geometric means, JSON, tables.

pub mod answers;
pub mod datagen;
pub mod engines;
pub mod queries;
pub mod report;
pub mod runner;

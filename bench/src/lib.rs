//! Tributary's benchmark library: what the bench binaries share and the
//! test suite runs in quick mode so that the benchmarks do not rot.
//!
//! - [`latency`]: window emit latency after the watermark, in STREAMING.
//! - [`process_memory`]: the process's resident and peak memory.
//! - [`tpch`]: TPC-H data as Parquet, the 22 queries, the engines side by
//!   side (Tributary BATCH variants, plain DataFusion, DuckDB) with answers
//!   checked against each other.

pub mod latency;
pub mod process_memory;
pub mod tpch;

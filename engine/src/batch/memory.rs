//! The memory limit of a BATCH query (`taskmanager.memory.managed.size`):
//! each query gets a DataFusion `FairSpillPool` of that size and a
//! `DiskManager` spilling into the query's working directory, so sorts,
//! aggregations and sort-merge joins spill to disk instead of growing past
//! the limit. What cannot spill (a hash join's build side) fails with an
//! error that names the key to raise, never with the operating system
//! killing the process.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryPool, TrackConsumersPool, UnboundedMemoryPool,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use tributary_planner::config::{MANAGED_MEMORY_SIZE, format_memory_size};

/// A runtime for one query: `base`'s object stores and caches, a memory
/// pool of `limit` bytes (`None`: unbounded) and spill files in `spill_dir`.
///
/// # Errors
/// DataFusion's, building the disk manager.
pub(crate) fn runtime_env(
    base: &RuntimeEnv,
    limit: Option<u64>,
    spill_dir: PathBuf,
) -> Result<Arc<RuntimeEnv>> {
    let pool: Arc<dyn MemoryPool> = match limit {
        Some(bytes) => Arc::new(TrackConsumersPool::new(
            FairSpillPool::new(bytes as usize),
            NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
        )),
        None => Arc::new(UnboundedMemoryPool::default()),
    };
    std::fs::create_dir_all(&spill_dir)?;
    RuntimeEnvBuilder::from_runtime_env(base)
        .with_memory_pool(pool)
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Directories(vec![spill_dir])),
        )
        .build_arc()
}

/// The error a query gets when it ran out of its memory limit: DataFusion's
/// message with the key to raise and its current value.
#[derive(Debug)]
pub struct MemoryLimitExceeded {
    /// DataFusion's message (which operator wanted how much).
    pub detail: String,
    /// The limit in force, bytes.
    pub limit: u64,
}

impl std::fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the query needs more memory than '{MANAGED_MEMORY_SIZE}' = '{}' allows and what it holds cannot spill to disk ({}). \
             Raise the limit, e.g. SET '{MANAGED_MEMORY_SIZE}' = '{}'; a hash join's build side cannot spill: \
             SET 'datafusion.optimizer.prefer_hash_join' = 'false' makes joins sort-merge joins, which spill",
            format_memory_size(self.limit),
            self.detail.trim(),
            format_memory_size(self.limit.saturating_mul(4)),
        )
    }
}

impl std::error::Error for MemoryLimitExceeded {}

/// `e`, or — if it is DataFusion running out of the memory pool — a
/// [`MemoryLimitExceeded`] naming the setting.
pub(crate) fn explain(e: DataFusionError, limit: Option<u64>) -> DataFusionError {
    let exhausted = match e.find_root() {
        DataFusionError::ResourcesExhausted(m) => Some(m.clone()),
        _ => None,
    };
    match (exhausted, limit) {
        (Some(detail), Some(limit)) => {
            DataFusionError::External(Box::new(MemoryLimitExceeded { detail, limit }))
        }
        _ => e,
    }
}

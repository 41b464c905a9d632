//! The memory limit of a BATCH query (`taskmanager.memory.managed.size`).
//! With materialized exchanges it is split evenly among the task slots, as
//! Flink divides a TaskManager's managed memory among its slots: each task
//! runs with a DataFusion `FairSpillPool` of `size / taskmanager.numberOfTaskSlots`
//! ([`SlotContexts`]), so what one task may use does not depend on what the
//! tasks running beside it happen to hold at the moment. With pipelined
//! exchanges the whole plan shares one pool of the full size. Spill files go
//! into the query's working directory, so sorts,
//! aggregations and sort-merge joins spill to disk instead of growing past
//! the limit. What cannot spill (a hash join's build side) fails with an
//! error that names the key to raise, never with the operating system
//! killing the process.
//!
//! One exception, [`QueryMemoryPool`]: a `RepartitionExec`'s in-flight
//! batches are always granted (and counted), so it never spills. DataFusion
//! 55's repartition spill can deadlock — the reader waits on the oldest spill
//! file while the batch it was told about sits in a newer one
//! (apache/datafusion#24883, fixed upstream after 55.2) — and a query that
//! hangs is worse than one whose sorts and aggregations spill a little
//! sooner.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, TrackConsumersPool,
    UnboundedMemoryPool,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::SessionConfig;
use tributary_planner::config::{MANAGED_MEMORY_SIZE, TASK_SLOTS, format_memory_size};

/// A query's memory limit and how many task slots share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    /// `taskmanager.memory.managed.size`, bytes.
    pub limit: u64,
    /// Slots the limit is split among (1: one pool for the whole plan).
    pub slots: usize,
}

impl MemoryBudget {
    /// The bytes one task (or, with one slot, the whole plan) may hold.
    pub fn per_task(&self) -> u64 {
        self.limit / self.slots.max(1) as u64
    }
}

/// Makes the task contexts of a staged query: the query's session
/// configuration, and per task a runtime whose memory pool holds one slot's
/// share of the limit, spilling into the query's spill directory.
pub(crate) struct SlotContexts {
    base: Arc<TaskContext>,
    config: SessionConfig,
    budget: Option<MemoryBudget>,
    spill_dir: PathBuf,
}

impl SlotContexts {
    pub fn new(
        base: Arc<TaskContext>,
        config: SessionConfig,
        budget: Option<MemoryBudget>,
        spill_dir: PathBuf,
    ) -> Self {
        Self {
            base,
            config,
            budget,
            spill_dir,
        }
    }

    /// A context for one task, with a fresh pool of one slot's share.
    ///
    /// # Errors
    /// The spill directory cannot be created.
    pub fn task(&self) -> Result<Arc<TaskContext>> {
        let runtime = runtime_env(
            &self.base.runtime_env(),
            self.budget.map(|b| b.per_task()),
            self.spill_dir.clone(),
        )?;
        Ok(task_context(&self.base, self.config.clone(), runtime))
    }
}

/// `base` with another configuration and runtime.
pub(crate) fn task_context(
    base: &TaskContext,
    config: SessionConfig,
    runtime: Arc<RuntimeEnv>,
) -> Arc<TaskContext> {
    Arc::new(TaskContext::new(
        base.task_id(),
        base.session_id(),
        config,
        base.scalar_functions().clone(),
        base.higher_order_functions().clone(),
        base.aggregate_functions().clone(),
        base.window_functions().clone(),
        runtime,
    ))
}

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
        Some(bytes) => Arc::new(QueryMemoryPool::new(bytes as usize)),
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

/// The memory pool of a BATCH query with a limit: DataFusion's
/// `FairSpillPool` of `limit` bytes (spilling operators share what the
/// others leave, evenly), reporting its three largest consumers when it
/// refuses, except that a `RepartitionExec` reservation always grows: its
/// bytes count against the limit but are never refused, so the repartition
/// never takes its spill path (see the module docs for why).
#[derive(Debug)]
pub struct QueryMemoryPool {
    inner: TrackConsumersPool<FairSpillPool>,
}

impl QueryMemoryPool {
    /// A pool of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            inner: TrackConsumersPool::new(
                FairSpillPool::new(limit),
                NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
            ),
        }
    }

    /// Whether `consumer` is a `RepartitionExec`'s (named
    /// `RepartitionExec[<partition>]` by DataFusion).
    fn is_repartition(consumer: &MemoryConsumer) -> bool {
        consumer.name().starts_with("RepartitionExec[")
    }
}

impl std::fmt::Display for QueryMemoryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl MemoryPool for QueryMemoryPool {
    fn name(&self) -> &str {
        "QueryMemoryPool"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional)
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink)
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        if Self::is_repartition(reservation.consumer()) {
            self.inner.grow(reservation, additional);
            return Ok(());
        }
        self.inner.try_grow(reservation, additional)
    }

    fn reserved(&self) -> usize {
        self.inner.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.inner.memory_limit()
    }
}

/// The error a query gets when it ran out of its memory limit: DataFusion's
/// message with the key to raise and its current value.
#[derive(Debug)]
pub struct MemoryLimitExceeded {
    /// DataFusion's message (which operator wanted how much).
    pub detail: String,
    /// The limit in force and the slots sharing it.
    pub budget: MemoryBudget,
}

impl std::fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let MemoryBudget { limit, slots } = self.budget;
        let share = if slots > 1 {
            format!(
                " ({} for each of its {slots} task slots)",
                format_memory_size(self.budget.per_task())
            )
        } else {
            String::new()
        };
        let fewer_slots = if slots > 1 {
            format!(", or give each task more with fewer slots: SET '{TASK_SLOTS}' = '1'")
        } else {
            String::new()
        };
        write!(
            f,
            "the query needs more memory than '{MANAGED_MEMORY_SIZE}' = '{}' allows{share} and what it holds cannot spill to disk ({}). \
             Raise the limit, e.g. SET '{MANAGED_MEMORY_SIZE}' = '{}'{fewer_slots}; a hash join's build side cannot spill: \
             SET 'datafusion.optimizer.prefer_hash_join' = 'false' makes joins sort-merge joins, which spill",
            format_memory_size(limit),
            self.detail.trim(),
            format_memory_size(limit.saturating_mul(4)),
        )
    }
}

impl std::error::Error for MemoryLimitExceeded {}

/// `e`, or — if it is DataFusion running out of the memory pool — a
/// [`MemoryLimitExceeded`] naming the setting.
pub(crate) fn explain(e: DataFusionError, budget: Option<MemoryBudget>) -> DataFusionError {
    let exhausted = match e.find_root() {
        DataFusionError::ResourcesExhausted(m) => Some(m.clone()),
        _ => None,
    };
    match (exhausted, budget) {
        (Some(detail), Some(budget)) => {
            DataFusionError::External(Box::new(MemoryLimitExceeded { detail, budget }))
        }
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::session::Session;
    use tributary_planner::RuntimeMode;

    #[test]
    fn a_repartition_grows_past_the_limit_and_what_cannot_spill_then_gets_less() {
        let pool: Arc<dyn MemoryPool> = Arc::new(QueryMemoryPool::new(1000));
        let repartition = MemoryConsumer::new("RepartitionExec[0]")
            .with_can_spill(true)
            .register(&pool);
        repartition.try_grow(1500).unwrap();
        assert_eq!(pool.reserved(), 1500);
        let build_side = MemoryConsumer::new("HashJoinInput").register(&pool);
        let refused = build_side.try_grow(1).unwrap_err().to_string();
        assert!(refused.contains("HashJoinInput"), "{refused}");
        drop(repartition);
        build_side.try_grow(1000).unwrap();
        assert_eq!(pool.reserved(), 1000);
        // Anything else over the limit is refused as before.
        let sort = MemoryConsumer::new("ExternalSorter[0]")
            .with_can_spill(true)
            .register(&pool);
        assert!(sort.try_grow(1).is_err());
    }

    /// apache/datafusion#24883's query: with DataFusion's own pool the
    /// third or so run never returns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pipelined_aggregation_under_a_tight_limit_does_not_hang() {
        let s = Session::builder()
            .runtime_mode(RuntimeMode::Batch)
            .parallelism(2)
            .config("execution.batch-shuffle-mode", "ALL_EXCHANGES_PIPELINED")
            .config("datafusion.execution.batch_size", "64")
            .build()
            .unwrap();
        s.sql(
            "CREATE VIEW t AS SELECT v % 13 AS g, md5(CAST(v % 337 AS VARCHAR)) AS trace_id \
             FROM generate_series(1, 40000) AS s(v)",
        )
        .await
        .unwrap();
        s.set("taskmanager.memory.managed.size", "2 mb").unwrap();
        let sql =
            "SELECT SUM(n) AS n FROM (SELECT g, COUNT(DISTINCT trace_id) AS n FROM t GROUP BY g)";
        for run in 0..12 {
            let query = async { s.sql(sql).await?.collect().await };
            let batches = tokio::time::timeout(Duration::from_secs(60), query)
                .await
                .unwrap_or_else(|_| panic!("run {run} did not finish in 60 s"))
                .unwrap();
            let n = batches[0]
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .unwrap()
                .value(0);
            // 337 distinct trace ids, each in 13 / gcd(13, 337) = 13 groups.
            assert_eq!(n, 337 * 13, "run {run}");
        }
    }
}

//! The BATCH runtime with materialized exchanges (Flink's BATCH execution
//! mode, FLIP-134/140; the stage cuts Ballista makes).
//!
//! DataFusion's physical plan is cut into stages at its exchanges
//! ([`stage_graph`]); each stage's tasks write their output partitions to
//! Arrow IPC files (LZ4-compressed only under
//! `taskmanager.network.blocking-shuffle.compression.enabled`) in the
//! query's working directory
//! ([`exchange_write`], [`exchange_files`]), and the next stage reads them
//! ([`exchange_read`]) once they are complete. The [`scheduler`] runs stages
//! in dependency order on a bounded number of slots, re-runs failed tasks
//! from materialized inputs ([`recovery`]), and can size a stage from the
//! bytes its inputs materialized ([`adaptive`]). Every query gets its own
//! memory pool and spill directory ([`memory`]). The working directory is
//! removed when the query ends: on success, error, and when the caller drops
//! the result (cancel).
//!
//! `execution.batch-shuffle-mode = 'ALL_EXCHANGES_PIPELINED'` runs the plan
//! as DataFusion does, with in-memory streaming exchanges (same memory
//! limit and spill directory).

pub mod adaptive;
pub mod exchange_files;
pub mod exchange_read;
pub mod exchange_write;
mod final_stage;
pub mod memory;
pub mod recovery;
pub mod run_metrics;
pub mod scheduler;
pub mod stage_graph;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, displayable, execute_stream};
use futures::{StreamExt, TryStreamExt};
use tributary_planner::TributaryConfig;
use tributary_planner::config::{BATCH_SHUFFLE_MODE, BatchShuffleMode};

use adaptive::AdaptiveOptions;
use memory::{MemoryBudget, SlotContexts};
use recovery::FailureInjector;
use run_metrics::BatchRun;
use stage_graph::StageGraph;

/// The BATCH runtime's settings for one query, from the session's
/// [`TributaryConfig`].
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// `execution.batch-shuffle-mode`.
    pub shuffle_mode: BatchShuffleMode,
    /// `taskmanager.numberOfTaskSlots`.
    pub slots: usize,
    /// `taskmanager.network.blocking-shuffle.compression.enabled`: exchange
    /// files are LZ4-compressed.
    pub compression: bool,
    /// `restart-strategy.fixed-delay.attempts`.
    pub attempts: usize,
    /// `io.tmp.dirs` (empty: the system temp directory).
    pub tmp_dirs: Vec<String>,
    /// `taskmanager.memory.managed.size`, bytes (`None`: no limit).
    pub memory_limit: Option<u64>,
    /// `execution.batch.adaptive.auto-parallelism.*`, when enabled.
    pub adaptive: Option<AdaptiveOptions>,
    /// Test-only failures to inject.
    pub failures: Option<Arc<FailureInjector>>,
}

impl BatchOptions {
    /// The options `config` sets.
    pub fn from_config(config: &TributaryConfig) -> Self {
        Self {
            shuffle_mode: config.batch_shuffle_mode,
            slots: config.task_slots,
            compression: config.blocking_shuffle_compression,
            attempts: config.restart_attempts,
            tmp_dirs: config.io_tmp_dirs.clone(),
            memory_limit: config.memory_limit(),
            adaptive: config.adaptive_enabled.then(|| AdaptiveOptions {
                min_parallelism: config.adaptive_min_parallelism,
                max_parallelism: config
                    .adaptive_max_parallelism
                    .unwrap_or(config.parallelism),
                avg_bytes_per_task: config.adaptive_avg_bytes_per_task,
            }),
            failures: None,
        }
    }
}

/// A BATCH plan as it will run.
#[derive(Debug, Clone)]
pub enum BatchPlan {
    /// Cut into stages with materialized exchanges.
    Staged(StageGraph),
    /// DataFusion's plan run whole with in-memory exchanges, and why.
    Pipelined {
        /// The plan.
        plan: Arc<dyn ExecutionPlan>,
        /// Why it is not staged.
        reason: String,
    },
}

impl BatchPlan {
    /// Plans `plan` for `options`' shuffle mode.
    pub fn new(plan: Arc<dyn ExecutionPlan>, options: &BatchOptions) -> Self {
        match options.shuffle_mode {
            BatchShuffleMode::AllExchangesPipelined => BatchPlan::Pipelined {
                plan,
                reason: format!("'{BATCH_SHUFFLE_MODE}' = 'ALL_EXCHANGES_PIPELINED'"),
            },
            BatchShuffleMode::AllExchangesBlocking => {
                let buckets = options.adaptive.map(|a| a.max_parallelism);
                let compression = options
                    .compression
                    .then_some(arrow::ipc::CompressionType::LZ4_FRAME);
                match StageGraph::cut(plan.clone(), buckets, compression) {
                    Ok(graph) => BatchPlan::Staged(graph),
                    Err(why) => BatchPlan::Pipelined {
                        plan,
                        reason: why.0,
                    },
                }
            }
        }
    }

    /// The plan as `EXPLAIN` shows it: the stage graph, or the pipelined
    /// plan with why it is pipelined.
    pub fn display(&self) -> String {
        match self {
            BatchPlan::Staged(graph) => graph.display(),
            BatchPlan::Pipelined { plan, reason } => format!(
                "Pipelined: one stage, in-memory exchanges ({reason})\n{}",
                displayable(plan.as_ref()).indent(true)
            ),
        }
    }
}

/// A running BATCH query: its rows, and (staged) the run's counters.
pub struct BatchExecution {
    /// The result rows.
    pub stream: SendableRecordBatchStream,
    /// Per-stage counters (blocking shuffle mode only).
    pub run: Option<Arc<BatchRun>>,
}

/// Starts `plan`. The stages run as the returned stream is polled; dropping
/// the stream cancels the run and removes its working directory.
///
/// # Errors
/// The working directory cannot be created (naming `io.tmp.dirs`).
pub fn execute(
    plan: &BatchPlan,
    base: Arc<TaskContext>,
    options: &BatchOptions,
) -> Result<BatchExecution> {
    let working = Arc::new(working_dir(&options.tmp_dirs)?);
    let spill_dir = working.path().join("spill");
    match plan {
        BatchPlan::Pipelined { plan, .. } => {
            let budget = options
                .memory_limit
                .map(|limit| MemoryBudget { limit, slots: 1 });
            let runtime =
                memory::runtime_env(&base.runtime_env(), options.memory_limit, spill_dir)?;
            let ctx = memory::task_context(&base, base.session_config().clone(), runtime);
            let stream =
                execute_stream(plan.clone(), ctx).map_err(|e| memory::explain(e, budget))?;
            Ok(BatchExecution {
                stream: keep_alive(stream, working, budget),
                run: None,
            })
        }
        BatchPlan::Staged(graph) => {
            let budget = options.memory_limit.map(|limit| MemoryBudget {
                limit,
                slots: options.slots.max(1),
            });
            // A partitioned hash join's dynamic filter waits for the build
            // sides of all its partitions: tasks run one stage partition at
            // a time, so it must not wait.
            let mut config = base.session_config().clone();
            config
                .options_mut()
                .optimizer
                .enable_join_dynamic_filter_pushdown = false;
            let contexts = Arc::new(SlotContexts::new(base, config, budget, spill_dir));
            let graph = graph.clone();
            graph.exchanges.set_dir(working.path().to_path_buf())?;
            graph.exchanges.set_failures(options.failures.clone());
            let run = Arc::new(BatchRun::new(
                graph.stages.len(),
                working.path().to_path_buf(),
            ));
            let scheduler = scheduler::SchedulerOptions {
                slots: options.slots,
                attempts: options.attempts,
                adaptive: options.adaptive,
            };
            let schema = graph.final_stage().plan.schema();
            let started = scheduler::run(graph, contexts, scheduler, run.clone(), working.clone());
            let stream = futures::stream::once(started).try_flatten();
            let stream = Box::pin(RecordBatchStreamAdapter::new(schema, stream));
            Ok(BatchExecution {
                stream: keep_alive(stream, working, budget),
                run: Some(run),
            })
        }
    }
}

/// `stream`, holding the working directory until it is dropped, with
/// memory-limit errors explained.
fn keep_alive(
    stream: SendableRecordBatchStream,
    working: Arc<tempfile::TempDir>,
    budget: Option<MemoryBudget>,
) -> SendableRecordBatchStream {
    let schema = stream.schema();
    let stream = stream.map(move |b| {
        let _ = &working;
        b.map_err(|e| memory::explain(e, budget))
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// A fresh working directory for one query under the first of `dirs` (or
/// the system temp directory).
fn working_dir(dirs: &[String]) -> Result<tempfile::TempDir> {
    let root = dirs
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new()
        .prefix("tributary-query-")
        .tempdir_in(&root)
        .map_err(|e| {
            DataFusionError::Execution(format!(
                "cannot create the query's working directory in {} ('io.tmp.dirs'): {e}",
                root.display()
            ))
        })
}

/// The per-stage report `EXPLAIN ANALYZE` shows after a staged run: each
/// stage's tasks, rows, bytes materialized, time and retries, then its plan
/// with DataFusion's metrics.
pub fn analyze_report(graph: &StageGraph, run: &BatchRun) -> String {
    let mut out = String::new();
    let plans = run.plans.lock().map(|p| p.clone()).unwrap_or_default();
    for (i, stage) in graph.stages.iter().enumerate() {
        let counters = &run.stages[i];
        let mut shown = stage.clone();
        if let Some(Some(plan)) = plans.get(i) {
            shown.plan = plan.clone();
        }
        let _ = writeln!(
            out,
            "{} | rows={}, bytes_materialized={}, time={:.3}s, task_runs={}, retries={}",
            graph.stage_header(&shown),
            counters.rows.load(Ordering::Relaxed),
            counters.bytes.load(Ordering::Relaxed),
            counters.elapsed().as_secs_f64(),
            counters.attempts.load(Ordering::Relaxed),
            counters.retries.load(Ordering::Relaxed),
        );
        if let Ok(Some(why)) = counters.adaptive.lock().map(|a| a.clone()) {
            let _ = writeln!(out, "  adaptive: {why}");
        }
        for line in counters
            .retry_log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
        {
            let _ = writeln!(out, "  re-ran: {line}");
        }
        for line in stage_graph::display_with_metrics(shown.plan.as_ref()).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

//! The stage scheduler: runs a [`StageGraph`] in dependency order — every
//! stage whose inputs are complete starts, independent stages side by side —
//! with at most `taskmanager.numberOfTaskSlots` tasks running at once. A
//! task holds a slot while it runs and releases it when its exchange files
//! are committed, so a query runs correctly on one slot; each task gets its
//! own memory pool of one slot's share of the query's limit
//! ([`memory`](super::memory)). When every other
//! stage is done, the final stage's single partition is returned as the
//! query's stream.
//!
//! A failed task re-runs ([`recovery`](super::recovery)) with a fresh
//! instance of its stage's plan, reading the same committed inputs; the
//! final stage does too, while it has not returned a row
//! ([`final_stage`](super::final_stage)).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use futures::{FutureExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::adaptive::{AdaptiveOptions, adapt, fit_per_task_readers};
use super::exchange_files::Exchanges;
use super::final_stage::FinalStage;
use super::memory::SlotContexts;
use super::recovery::{TaskPanic, failed_for_good, is_retryable, record_rerun};
use super::run_metrics::BatchRun;
use super::stage_graph::{StageGraph, reset};

/// How the scheduler runs a graph.
#[derive(Debug, Clone)]
pub(crate) struct SchedulerOptions {
    pub slots: usize,
    pub attempts: usize,
    pub adaptive: Option<AdaptiveOptions>,
}

/// Runs every stage but the final one, then starts the final stage and
/// returns its stream.
///
/// # Errors
/// The first task that fails for good (after its re-runs), with its stage
/// and task.
/// `working` is the query's working directory: every task holds it, so it
/// is removed only once the last task is gone, even when a cancelled run's
/// tasks are still being aborted.
pub(crate) async fn run(
    graph: StageGraph,
    contexts: Arc<SlotContexts>,
    options: SchedulerOptions,
    run: Arc<BatchRun>,
    working: Arc<tempfile::TempDir>,
) -> Result<SendableRecordBatchStream> {
    let n = graph.stages.len();
    let last = n - 1;
    let mut plans: Vec<Arc<dyn ExecutionPlan>> =
        graph.stages.iter().map(|s| s.plan.clone()).collect();
    let mut waiting: Vec<usize> = graph.stages.iter().map(|s| s.inputs.len()).collect();
    let mut left = vec![0usize; n];
    let slots = Arc::new(Semaphore::new(options.slots.max(1)));
    let mut running: JoinSet<(usize, Result<()>)> = JoinSet::new();
    let mut ready: Vec<usize> = (0..last).filter(|&i| waiting[i] == 0).collect();
    let mut done = 0usize;
    let scheduled = async {
        while done < last {
            while let Some(i) = ready.pop() {
                let plan = prepare(i, &mut plans, &graph.exchanges, &options, &run)?;
                let tasks = plan.output_partitioning().partition_count();
                left[i] = tasks;
                for task in 0..tasks {
                    let job = Task {
                        stage: i + 1,
                        task,
                        plan: plan.clone(),
                        ctx: contexts.task()?,
                        exchanges: graph.exchanges.clone(),
                        slots: slots.clone(),
                        attempts: options.attempts,
                        run: run.clone(),
                        _working: working.clone(),
                    };
                    running.spawn(async move { (i, job.run().await) });
                }
                if tasks == 0 {
                    done += complete(i, &graph, &mut waiting, &mut ready, &run, last);
                }
            }
            if done >= last {
                break;
            }
            let Some(joined) = running.join_next().await else {
                return Err(DataFusionError::Internal(
                    "BATCH scheduler: stages left but no task running".into(),
                ));
            };
            let (i, result) = joined.map_err(|e| DataFusionError::External(Box::new(e)))?;
            result?;
            left[i] -= 1;
            if left[i] == 0 {
                done += complete(i, &graph, &mut waiting, &mut ready, &run, last);
            }
        }
        Ok(())
    };
    if let Err(e) = scheduled.await {
        // Stop the other tasks and wait for them, so the working directory
        // is gone by the time the caller sees the error.
        running.shutdown().await;
        return Err(e);
    }
    let plan = prepare(last, &mut plans, &graph.exchanges, &options, &run)?;
    FinalStage {
        plan,
        ctx: contexts.task()?,
        index: last,
        attempts: options.attempts,
        run,
        failures: graph.exchanges.failures(),
    }
    .execute()
}

/// The plan stage `i` runs with (adaptive parallelism applied), recorded
/// for `EXPLAIN ANALYZE`.
fn prepare(
    i: usize,
    plans: &mut [Arc<dyn ExecutionPlan>],
    exchanges: &Exchanges,
    options: &SchedulerOptions,
    run: &BatchRun,
) -> Result<Arc<dyn ExecutionPlan>> {
    if options.adaptive.is_some() {
        let tasks = |stage: usize| {
            run.stages[stage - 1]
                .tasks
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        plans[i] = fit_per_task_readers(&plans[i], tasks)?;
    }
    if let Some(adaptive) = &options.adaptive
        && let Some((plan, why)) = adapt(&plans[i], exchanges, adaptive)?
    {
        log::info!("BATCH stage {}: adaptive {why}", i + 1);
        if let Ok(mut a) = run.stages[i].adaptive.lock() {
            *a = Some(why);
        }
        plans[i] = plan;
    }
    let plan = plans[i].clone();
    run.stages[i].start(plan.output_partitioning().partition_count());
    if let Ok(mut p) = run.plans.lock() {
        p[i] = Some(plan.clone());
    }
    Ok(plan)
}

/// Marks stage `i` complete and readies the consumers whose inputs are all
/// complete. Returns 1 (stages completed).
fn complete(
    i: usize,
    graph: &StageGraph,
    waiting: &mut [usize],
    ready: &mut Vec<usize>,
    run: &BatchRun,
    last: usize,
) -> usize {
    let (rows, bytes) = graph.exchanges.materialized(i + 1);
    let stage = &run.stages[i];
    stage.rows.store(rows, Ordering::Relaxed);
    stage.bytes.store(bytes, Ordering::Relaxed);
    run.stage_done(i);
    log::debug!(
        "BATCH stage {} done: {rows} rows, {bytes} bytes materialized in {:?}",
        i + 1,
        stage.elapsed()
    );
    for consumer in graph.consumers(i + 1) {
        let c = consumer - 1;
        waiting[c] -= 1;
        if waiting[c] == 0 && c != last {
            ready.push(c);
        }
    }
    1
}

/// One task of a producing stage, with its re-runs.
struct Task {
    stage: usize,
    task: usize,
    plan: Arc<dyn ExecutionPlan>,
    ctx: Arc<TaskContext>,
    exchanges: Arc<Exchanges>,
    slots: Arc<Semaphore>,
    attempts: usize,
    run: Arc<BatchRun>,
    _working: Arc<tempfile::TempDir>,
}

impl Task {
    async fn run(self) -> Result<()> {
        let counters = &self.run.stages[self.stage - 1];
        let mut attempt = 0;
        loop {
            let permit = self
                .slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let plan = if attempt == 0 {
                self.plan.clone()
            } else {
                reset(&self.plan)?
            };
            self.exchanges
                .begin_attempt(self.stage, self.task, attempt)?;
            counters.attempts.fetch_add(1, Ordering::Relaxed);
            counters.task_running();
            let result = AssertUnwindSafe(drain(plan, self.task, self.ctx.clone()))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    let text = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    Err(DataFusionError::External(Box::new(TaskPanic(text))))
                });
            drop(permit);
            match result {
                Ok(()) => return Ok(()),
                Err(e) if attempt < self.attempts && is_retryable(&e) => {
                    record_rerun(counters, self.stage, self.task, attempt, &e);
                    attempt += 1;
                }
                Err(e) => {
                    return Err(failed_for_good(
                        e,
                        &format!("stage {} task {}", self.stage, self.task),
                        attempt + 1,
                        self.attempts,
                        "",
                    ));
                }
            }
        }
    }
}

async fn drain(plan: Arc<dyn ExecutionPlan>, task: usize, ctx: Arc<TaskContext>) -> Result<()> {
    let mut stream = plan.execute(task, ctx)?;
    while let Some(b) = stream.next().await {
        b?;
    }
    Ok(())
}

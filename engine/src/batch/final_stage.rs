//! The final stage's stream, with recovery before the first row: when the
//! final stage fails before it has handed the caller a row, it re-runs from
//! its materialized inputs, as any other task does
//! ([`recovery`](super::recovery)); after a row has gone out, a failure
//! fails the query.
//!
//! Why only then: the final stage streams to the caller (the shell, a
//! library user, a sink) as it runs, and its output order is not stable
//! across runs (hash joins, merges of concurrent inputs), so a re-run
//! cannot resume after the rows already delivered. Flink's batch `collect`
//! resolves the same conflict by holding results back until the job ends;
//! here, most final stages (a final aggregate, a sort, a top-k) emit
//! nothing until their input is consumed, so a failure while they read —
//! the window in which almost all of their work happens — is recovered
//! without holding results back.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

use super::recovery::{FailureInjector, failed_for_good, is_retryable, record_rerun};
use super::run_metrics::BatchRun;
use super::stage_graph::reset;

/// What a run of the final stage needs.
pub(super) struct FinalStage {
    /// The stage's plan (one output partition).
    pub plan: Arc<dyn ExecutionPlan>,
    pub ctx: Arc<TaskContext>,
    /// The stage's index in `run.stages` (0-based).
    pub index: usize,
    /// Re-runs allowed (`restart-strategy.fixed-delay.attempts`).
    pub attempts: usize,
    pub run: Arc<BatchRun>,
    /// Test-only fail points.
    pub failures: Option<Arc<FailureInjector>>,
}

/// Where a [`FinalStage`] run is.
struct State {
    stage: FinalStage,
    attempt: usize,
    stream: Option<SendableRecordBatchStream>,
    /// Batches the current attempt has produced.
    batches: usize,
    /// Whether a row has reached the caller.
    emitted: bool,
    finished: bool,
}

impl FinalStage {
    /// Starts the stage and returns its stream.
    ///
    /// # Errors
    /// The first attempt cannot start (the plan fails to execute).
    pub fn execute(self) -> Result<SendableRecordBatchStream> {
        let schema = self.plan.schema();
        let mut state = State {
            stage: self,
            attempt: 0,
            stream: None,
            batches: 0,
            emitted: false,
            finished: false,
        };
        state.start()?;
        let stream = futures::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

impl State {
    fn start(&mut self) -> Result<()> {
        let plan = match self.attempt {
            0 => self.stage.plan.clone(),
            _ => reset(&self.stage.plan)?,
        };
        let counters = &self.stage.run.stages[self.stage.index];
        counters.attempts.fetch_add(1, Ordering::Relaxed);
        counters.task_running();
        self.batches = 0;
        self.stream = Some(plan.execute(0, self.stage.ctx.clone())?);
        Ok(())
    }

    /// The next batch for the caller, re-running the stage after a failure
    /// while nothing has been emitted; `None` at the end.
    async fn next(&mut self) -> Option<Result<arrow::record_batch::RecordBatch>> {
        if self.finished {
            return None;
        }
        loop {
            let next = match self.stream.as_mut() {
                Some(stream) => stream.next().await,
                None => None,
            };
            let failure = match next {
                None => {
                    self.finished = true;
                    self.stage.run.stage_done(self.stage.index);
                    return None;
                }
                Some(Ok(batch)) => {
                    self.batches += 1;
                    let injected = self
                        .stage
                        .failures
                        .as_ref()
                        .map(|f| f.check(self.stage.index + 1, 0, self.attempt, self.batches));
                    match injected {
                        Some(Err(e)) => e,
                        _ => {
                            self.emitted |= batch.num_rows() > 0;
                            self.stage.run.stages[self.stage.index]
                                .rows
                                .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                            return Some(Ok(batch));
                        }
                    }
                }
                Some(Err(e)) => e,
            };
            self.stream = None;
            if let Err(e) = self.retry(failure) {
                self.finished = true;
                return Some(Err(e));
            }
        }
    }

    /// Starts the next attempt after `failure`, or says why it cannot.
    fn retry(&mut self, failure: DataFusionError) -> Result<()> {
        let stage = self.stage.index + 1;
        if self.emitted || self.attempt >= self.stage.attempts || !is_retryable(&failure) {
            let why = if self.emitted {
                "; it had already returned rows, so it cannot re-run"
            } else {
                ""
            };
            return Err(failed_for_good(
                failure,
                &format!("stage {stage} (final)"),
                self.attempt + 1,
                self.stage.attempts,
                why,
            ));
        }
        record_rerun(
            &self.stage.run.stages[self.stage.index],
            stage,
            0,
            self.attempt,
            &failure,
        );
        self.attempt += 1;
        self.start()
    }
}

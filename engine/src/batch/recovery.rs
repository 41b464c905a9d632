//! Task recovery for BATCH (Flink's fixed-delay restart strategy, applied
//! per task as Flink's region failover does for blocking exchanges): a
//! failed task re-runs from its stage's materialized inputs, up to
//! `restart-strategy.fixed-delay.attempts` times; the stages upstream do not
//! run again, since their exchange files are complete.
//!
//! Which failures re-run: I/O and object-store errors, errors of external
//! code (connectors), panics, and failures a test injects — the kinds a new
//! attempt can get past. Errors a re-run would only repeat (a plan or type
//! error, arithmetic overflow, running out of the memory limit) fail the
//! query at once.
//!
//! [`FailureInjector`] is the test-only hook that makes a chosen task fail
//! mid-run.

use std::sync::Mutex;

use datafusion::error::{DataFusionError, Result};

/// A failure a test asks for: attempt `attempt` of task `task` in stage
/// `stage` fails after writing `after_batches` input batches (the task has
/// then written part of its exchange files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailPoint {
    /// The stage (1-based, as `EXPLAIN` numbers them).
    pub stage: usize,
    /// The task (partition) in that stage.
    pub task: usize,
    /// The attempt that fails (0 = the first run).
    pub attempt: usize,
    /// Input batches the task processes before it fails (≥ 1).
    pub after_batches: usize,
}

/// The error an injected failure raises.
#[derive(Debug)]
pub struct InjectedFailure(pub FailPoint);

impl std::fmt::Display for InjectedFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "injected failure of task {} in stage {} (attempt {})",
            self.0.task, self.0.stage, self.0.attempt
        )
    }
}

impl std::error::Error for InjectedFailure {}

/// Test-only: fails chosen tasks. Each fail point fires once.
#[derive(Debug, Default)]
pub struct FailureInjector {
    points: Mutex<Vec<FailPoint>>,
}

impl FailureInjector {
    /// An injector that fires `points`.
    pub fn new(points: Vec<FailPoint>) -> Self {
        Self {
            points: Mutex::new(points),
        }
    }

    /// Called by a task after each input batch (`usize::MAX` at its end):
    /// fails if a fail point matches.
    ///
    /// # Errors
    /// [`InjectedFailure`] (as an external error) when a point fires.
    pub fn check(&self, stage: usize, task: usize, attempt: usize, batches: usize) -> Result<()> {
        let Ok(mut points) = self.points.lock() else {
            return Ok(());
        };
        let hit = points.iter().position(|p| {
            p.stage == stage && p.task == task && p.attempt == attempt && batches >= p.after_batches
        });
        match hit {
            Some(i) => {
                let point = points.remove(i);
                Err(DataFusionError::External(Box::new(InjectedFailure(point))))
            }
            None => Ok(()),
        }
    }

    /// Fail points that have not fired.
    pub fn pending(&self) -> Vec<FailPoint> {
        self.points.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

/// Whether a task that failed with `e` may succeed if it runs again.
pub fn is_retryable(e: &DataFusionError) -> bool {
    match e {
        DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) => true,
        DataFusionError::External(inner) => {
            inner.downcast_ref::<InjectedFailure>().is_some()
                || inner.downcast_ref::<std::io::Error>().is_some()
                || inner.downcast_ref::<TaskPanic>().is_some()
                || inner
                    .downcast_ref::<DataFusionError>()
                    .is_some_and(is_retryable)
        }
        DataFusionError::Context(_, inner) => is_retryable(inner),
        DataFusionError::Shared(inner) => is_retryable(inner),
        DataFusionError::ArrowError(inner, _) => {
            matches!(inner.as_ref(), arrow::error::ArrowError::IoError(..))
        }
        _ => false,
    }
}

/// Records that attempt `attempt` of task `task` in stage `stage` (1-based)
/// failed with `failure` and re-runs: counted in `counters`, logged, and
/// kept for `EXPLAIN ANALYZE`.
pub(crate) fn record_rerun(
    counters: &super::run_metrics::StageRun,
    stage: usize,
    task: usize,
    attempt: usize,
    failure: &DataFusionError,
) {
    let line = format!(
        "stage {stage} task {task} attempt {attempt} failed: {failure}; re-running it from the stage's materialized inputs"
    );
    log::warn!("BATCH {line}");
    counters
        .retries
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Ok(mut l) = counters.retry_log.lock() {
        l.push(line);
    }
}

/// `failure` of `task` (e.g. "stage 2 task 1") after `runs` runs of at most
/// `attempts + 1`, with that (and `why`, if not empty) said in its context.
pub(crate) fn failed_for_good(
    failure: DataFusionError,
    task: &str,
    runs: usize,
    attempts: usize,
    why: &str,
) -> DataFusionError {
    failure.context(format!(
        "BATCH {task} failed ({runs} run{} of at most {}; '{}'){why}",
        if runs == 1 { "" } else { "s" },
        attempts + 1,
        tributary_planner::config::RESTART_ATTEMPTS,
    ))
}

/// A task that panicked.
#[derive(Debug)]
pub struct TaskPanic(pub String);

impl std::fmt::Display for TaskPanic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a task panicked: {}", self.0)
    }
}

impl std::error::Error for TaskPanic {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fail_point_fires_once_at_its_attempt() {
        let inj = FailureInjector::new(vec![FailPoint {
            stage: 2,
            task: 1,
            attempt: 0,
            after_batches: 2,
        }]);
        assert!(inj.check(2, 1, 0, 1).is_ok());
        assert!(inj.check(2, 0, 0, 5).is_ok());
        let e = inj.check(2, 1, 0, 2).unwrap_err();
        assert!(is_retryable(&e));
        assert!(inj.check(2, 1, 0, 3).is_ok());
        assert!(inj.pending().is_empty());
    }

    #[test]
    fn deterministic_errors_do_not_retry() {
        assert!(!is_retryable(&DataFusionError::Plan("x".into())));
        assert!(!is_retryable(&DataFusionError::ResourcesExhausted(
            "x".into()
        )));
        assert!(is_retryable(&DataFusionError::IoError(
            std::io::Error::other("disk")
        )));
    }
}

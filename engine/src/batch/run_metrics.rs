//! What a BATCH run did, stage by stage: tasks, attempts and retries, rows
//! and bytes materialized, time — for `EXPLAIN ANALYZE`, the logs and the
//! shell's progress bar.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Counters of one stage of a run.
#[derive(Debug, Default)]
pub struct StageRun {
    /// Tasks (partitions) the stage ran with.
    pub tasks: AtomicUsize,
    /// Task runs started, re-runs included.
    pub attempts: AtomicUsize,
    /// Task re-runs after a failure.
    pub retries: AtomicUsize,
    /// Rows the stage output (written to exchange files, or streamed out by
    /// the final stage).
    pub rows: AtomicU64,
    /// Bytes of exchange files the stage wrote (compressed, on disk).
    pub bytes: AtomicU64,
    times: Mutex<(Option<Instant>, Option<Instant>)>,
    /// What re-ran and why, one line per re-run.
    pub retry_log: Mutex<Vec<String>>,
    /// The adaptive batch scheduler's choice, if it made one.
    pub adaptive: Mutex<Option<String>>,
}

impl StageRun {
    /// Records the stage's task count (when it is scheduled).
    pub(crate) fn start(&self, tasks: usize) {
        self.tasks.store(tasks, Ordering::Relaxed);
    }

    /// Records that a task of the stage got a slot and runs: the stage's
    /// time starts at its first running task.
    pub(crate) fn task_running(&self) {
        if let Ok(mut t) = self.times.lock()
            && t.0.is_none()
        {
            t.0 = Some(Instant::now());
        }
    }

    pub(crate) fn finish(&self) {
        if let Ok(mut t) = self.times.lock()
            && t.1.is_none()
        {
            t.1 = Some(Instant::now());
        }
    }

    /// Wall-clock time from the stage's first running task to its end (or
    /// to now); waiting for slots before that is not counted.
    pub fn elapsed(&self) -> Duration {
        match self.times.lock().map(|t| *t) {
            Ok((Some(start), Some(end))) => end - start,
            Ok((Some(start), None)) => start.elapsed(),
            _ => Duration::ZERO,
        }
    }

    /// Whether the stage has finished.
    pub fn finished(&self) -> bool {
        self.times.lock().map(|t| t.1.is_some()).unwrap_or(false)
    }
}

/// The counters of a whole BATCH run (blocking shuffle mode), shared with
/// the caller while the query runs.
#[derive(Debug)]
pub struct BatchRun {
    /// One per stage, in stage order (stage `i + 1` at index `i`).
    pub stages: Vec<StageRun>,
    stages_done: AtomicUsize,
    /// The working directory of the run (removed when the query ends).
    pub working_dir: std::path::PathBuf,
    /// The stage graph as it ran (after adaptive parallelism), for
    /// `EXPLAIN ANALYZE`; filled as stages start.
    pub(crate) plans:
        Mutex<Vec<Option<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>>>,
}

/// A snapshot of a BATCH run's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchProgress {
    /// Stages finished.
    pub stages_done: usize,
    /// Stages in the query.
    pub stages_total: usize,
    /// Rows the stages have output so far.
    pub rows: u64,
}

impl BatchRun {
    pub(crate) fn new(stages: usize, working_dir: std::path::PathBuf) -> Self {
        Self {
            stages: (0..stages).map(|_| StageRun::default()).collect(),
            stages_done: AtomicUsize::new(0),
            working_dir,
            plans: Mutex::new(vec![None; stages]),
        }
    }

    pub(crate) fn stage_done(&self, index: usize) {
        if let Some(s) = self.stages.get(index)
            && !s.finished()
        {
            s.finish();
            self.stages_done.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Progress so far.
    pub fn progress(&self) -> BatchProgress {
        BatchProgress {
            stages_done: self.stages_done.load(Ordering::Relaxed),
            stages_total: self.stages.len(),
            rows: self
                .stages
                .iter()
                .map(|s| s.rows.load(Ordering::Relaxed))
                .sum(),
        }
    }
}

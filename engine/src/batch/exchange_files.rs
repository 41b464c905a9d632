//! The exchange files of one BATCH query: where each stage's tasks wrote
//! their output partitions, how many rows and bytes each holds, and which
//! attempt of a task is running.
//!
//! A task writes into a directory of its own attempt
//! (`<working dir>/stage-<s>/task-<t>-attempt-<a>/bucket-<b>.arrow`) and
//! *commits* its files here only when it has written all of them, so a
//! consumer never reads a failed attempt's partial output: a re-run writes
//! a fresh directory and commits that (Flink's blocking result partitions
//! are likewise consumable only once finished).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use datafusion::error::{DataFusionError, Result};

use super::recovery::FailureInjector;

/// One exchange file: an Arrow IPC stream (LZ4-frame compressed under
/// `taskmanager.network.blocking-shuffle.compression.enabled`).
#[derive(Debug, Clone)]
pub struct ExchangeFile {
    /// Where it is.
    pub path: PathBuf,
    /// Rows it holds.
    pub rows: u64,
    /// Its size on disk (bytes, compressed).
    pub bytes: u64,
}

/// What one task of a stage committed: a file per output bucket (`None`
/// for a bucket that got no rows).
#[derive(Debug, Clone, Default)]
pub struct TaskOutput {
    /// Indexed by bucket.
    pub buckets: Vec<Option<ExchangeFile>>,
}

/// The registry of one query's exchange files, shared by its
/// [`ExchangeWriteExec`](super::exchange_write::ExchangeWriteExec)s,
/// [`ExchangeReadExec`](super::exchange_read::ExchangeReadExec)s and the
/// scheduler.
#[derive(Debug, Default)]
pub struct Exchanges {
    dir: Mutex<Option<PathBuf>>,
    /// Stage → task → committed output.
    outputs: Mutex<HashMap<usize, HashMap<usize, TaskOutput>>>,
    /// (stage, task) → the attempt running now (0 = first run).
    attempts: Mutex<HashMap<(usize, usize), usize>>,
    failures: Mutex<Option<std::sync::Arc<FailureInjector>>>,
}

fn poisoned() -> DataFusionError {
    DataFusionError::Internal("a BATCH exchange registry lock was poisoned".into())
}

impl Exchanges {
    /// Sets the query's working directory (when the run starts).
    pub(crate) fn set_dir(&self, dir: PathBuf) -> Result<()> {
        *self.dir.lock().map_err(|_| poisoned())? = Some(dir);
        Ok(())
    }

    /// The query's working directory.
    ///
    /// # Errors
    /// When the plan is executed outside the BATCH scheduler (no directory).
    pub fn dir(&self) -> Result<PathBuf> {
        self.dir
            .lock()
            .map_err(|_| poisoned())?
            .clone()
            .ok_or_else(|| {
                DataFusionError::Internal(
                    "a staged BATCH plan was executed without its working directory".into(),
                )
            })
    }

    /// Installs the test-only failure injector for this run.
    pub(crate) fn set_failures(&self, failures: Option<std::sync::Arc<FailureInjector>>) {
        if let Ok(mut f) = self.failures.lock() {
            *f = failures;
        }
    }

    /// The failure injector, if a test installed one.
    pub(crate) fn failures(&self) -> Option<std::sync::Arc<FailureInjector>> {
        self.failures.lock().ok().and_then(|f| f.clone())
    }

    /// Records that `attempt` of `task` in `stage` starts now.
    pub(crate) fn begin_attempt(&self, stage: usize, task: usize, attempt: usize) -> Result<()> {
        self.attempts
            .lock()
            .map_err(|_| poisoned())?
            .insert((stage, task), attempt);
        Ok(())
    }

    /// The attempt of `task` in `stage` running now.
    pub(crate) fn attempt(&self, stage: usize, task: usize) -> usize {
        self.attempts
            .lock()
            .ok()
            .and_then(|a| a.get(&(stage, task)).copied())
            .unwrap_or(0)
    }

    /// Commits a finished task's files (replacing an earlier commit).
    pub(crate) fn commit(&self, stage: usize, task: usize, output: TaskOutput) -> Result<()> {
        self.outputs
            .lock()
            .map_err(|_| poisoned())?
            .entry(stage)
            .or_default()
            .insert(task, output);
        Ok(())
    }

    /// The committed files of `stage` for the buckets in `buckets`, task by
    /// task (tasks in order); `only_task` limits them to one task.
    pub(crate) fn files(
        &self,
        stage: usize,
        buckets: std::ops::Range<usize>,
        only_task: Option<usize>,
    ) -> Result<Vec<ExchangeFile>> {
        let outputs = self.outputs.lock().map_err(|_| poisoned())?;
        let Some(tasks) = outputs.get(&stage) else {
            return Ok(vec![]);
        };
        let mut ids: Vec<usize> = tasks.keys().copied().collect();
        ids.sort_unstable();
        let mut out = vec![];
        for t in ids {
            if only_task.is_some_and(|o| o != t) {
                continue;
            }
            for b in buckets.clone() {
                if let Some(Some(f)) = tasks[&t].buckets.get(b) {
                    out.push(f.clone());
                }
            }
        }
        Ok(out)
    }

    /// Rows and bytes `stage` materialized (all committed tasks).
    pub fn materialized(&self, stage: usize) -> (u64, u64) {
        let Ok(outputs) = self.outputs.lock() else {
            return (0, 0);
        };
        outputs
            .get(&stage)
            .map(|tasks| {
                tasks
                    .values()
                    .flat_map(|t| t.buckets.iter().flatten())
                    .fold((0, 0), |(r, b), f| (r + f.rows, b + f.bytes))
            })
            .unwrap_or((0, 0))
    }
}

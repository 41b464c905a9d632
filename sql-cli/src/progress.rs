//! The progress bar of a BATCH query that runs in stages (blocking shuffle
//! mode) and takes longer than a second: stages done of total and rows the
//! stages have output so far, drawn with indicatif on stderr when stderr is
//! a terminal, and cleared before the result prints.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tributary_engine::QueryResult;
use tributary_engine::batch::run_metrics::BatchRun;

/// How long a query runs before the bar shows.
const DELAY: Duration = Duration::from_secs(1);
/// How often the bar redraws.
const TICK: Duration = Duration::from_millis(100);

/// A running progress bar; dropping it stops and clears it.
pub struct Progress {
    ticker: tokio::task::JoinHandle<()>,
    bar: Arc<Mutex<Option<ProgressBar>>>,
}

impl Progress {
    /// Starts the bar for `result` if it is a staged BATCH run and
    /// `enabled` (stderr is a terminal).
    pub fn start(result: &QueryResult, enabled: bool) -> Option<Self> {
        let run = result.batch_run()?.clone();
        if !enabled {
            return None;
        }
        let bar: Arc<Mutex<Option<ProgressBar>>> = Arc::default();
        let shown = bar.clone();
        let ticker = tokio::spawn(async move {
            tokio::time::sleep(DELAY).await;
            let progress = ProgressBar::with_draw_target(
                Some(run.progress().stages_total as u64),
                ProgressDrawTarget::stderr(),
            )
            .with_style(style())
            .with_elapsed(DELAY);
            if let Ok(mut b) = shown.lock() {
                *b = Some(progress.clone());
            }
            loop {
                update(&progress, &run);
                tokio::time::sleep(TICK).await;
            }
        });
        Some(Self { ticker, bar })
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} stages {pos}/{len} [{bar:30}] {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn update(bar: &ProgressBar, run: &BatchRun) {
    let p = run.progress();
    bar.set_position(p.stages_done as u64);
    bar.set_message(format!("{} rows", p.rows));
    bar.tick();
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.ticker.abort();
        if let Ok(mut b) = self.bar.lock()
            && let Some(bar) = b.take()
        {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_engine::{RuntimeMode, Session};

    #[tokio::test]
    async fn only_staged_batch_runs_on_a_terminal_get_a_bar() {
        let s = Session::builder()
            .runtime_mode(RuntimeMode::Batch)
            .build()
            .unwrap();
        let r = s
            .sql("SELECT a, COUNT(*) FROM (VALUES (1), (2)) t(a) GROUP BY a")
            .await
            .unwrap();
        assert!(r.batch_progress().is_some());
        assert!(Progress::start(&r, true).is_some());
        assert!(Progress::start(&r, false).is_none());
        let status = s.sql("SET 'parallelism.default' = '2'").await.unwrap();
        assert!(Progress::start(&status, true).is_none());
        s.set("execution.batch-shuffle-mode", "ALL_EXCHANGES_PIPELINED")
            .unwrap();
        let r = s.sql("SELECT 1").await.unwrap();
        assert!(Progress::start(&r, true).is_none());
    }

    #[test]
    fn the_bar_shows_stages_and_rows() {
        let bar = ProgressBar::hidden().with_style(style());
        bar.set_length(3);
        bar.set_position(1);
        bar.set_message("42 rows");
        assert_eq!(bar.position(), 1);
        assert_eq!(bar.message(), "42 rows");
    }
}

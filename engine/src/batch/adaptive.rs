//! Adaptive parallelism (Flink's adaptive batch scheduler, FLIP-187): when
//! `execution.batch.adaptive.auto-parallelism.enabled` is set, a stage that
//! reads repartitioned exchanges runs with
//! `ceil(bytes its inputs materialized / avg-data-volume-per-task)` tasks,
//! clamped to `[min-parallelism, max-parallelism]`. Producers write
//! `max-parallelism` buckets; the chosen `P` tasks each read a contiguous
//! range of them (so both inputs of a join stay co-partitioned).

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::physical_plan::ExecutionPlan;

use super::exchange_files::Exchanges;
use super::exchange_read::{ExchangeInput, ExchangeReadExec};

/// The adaptive batch scheduler's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveOptions {
    /// `...auto-parallelism.min-parallelism`.
    pub min_parallelism: usize,
    /// `...auto-parallelism.max-parallelism` (= buckets producers write).
    pub max_parallelism: usize,
    /// `...auto-parallelism.avg-data-volume-per-task`, bytes.
    pub avg_bytes_per_task: u64,
}

impl AdaptiveOptions {
    /// The parallelism for a stage whose inputs materialized `bytes`.
    pub fn parallelism(&self, bytes: u64) -> usize {
        let wanted = bytes.div_ceil(self.avg_bytes_per_task.max(1)) as usize;
        let max = self.max_parallelism.max(1);
        wanted.clamp(self.min_parallelism.clamp(1, max), max)
    }
}

/// The plan of a stage about to run, with its parallelism chosen from the
/// bytes its inputs materialized, and a line saying what was chosen. The
/// plan is unchanged (`None`) when the stage reads no repartitioned input or
/// also scans a source (whose partitions are fixed).
pub(crate) fn adapt(
    plan: &Arc<dyn ExecutionPlan>,
    exchanges: &Exchanges,
    options: &AdaptiveOptions,
) -> Result<Option<(Arc<dyn ExecutionPlan>, String)>> {
    let Some(p) = choose(plan, exchanges, options)? else {
        return Ok(None);
    };
    let adapted = plan
        .clone()
        .transform_up(|node| {
            let replaced = node
                .downcast_ref::<ExchangeReadExec>()
                .and_then(|r| match r.input() {
                    ExchangeInput::Buckets { .. } => r.with_partitions(p.0),
                    ExchangeInput::PerTask => None,
                });
            Ok(match replaced {
                Some(r) => Transformed::yes(Arc::new(r) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(node),
            })
        })?
        .data;
    Ok(Some((adapted, p.1)))
}

/// `plan` with every reader of a whole upstream task (below a coalesce or
/// merge) reading as many partitions as `tasks(stage)` says the upstream
/// stage ran with — which adaptive parallelism may have changed.
pub(crate) fn fit_per_task_readers(
    plan: &Arc<dyn ExecutionPlan>,
    tasks: impl Fn(usize) -> usize,
) -> Result<Arc<dyn ExecutionPlan>> {
    Ok(plan
        .clone()
        .transform_up(|node| {
            let replaced = node
                .downcast_ref::<ExchangeReadExec>()
                .and_then(|r| match r.input() {
                    ExchangeInput::PerTask => r.with_partitions(tasks(r.stage())),
                    ExchangeInput::Buckets { .. } => None,
                });
            Ok(match replaced {
                Some(r) => Transformed::yes(Arc::new(r) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(node),
            })
        })?
        .data)
}

fn choose(
    plan: &Arc<dyn ExecutionPlan>,
    exchanges: &Exchanges,
    options: &AdaptiveOptions,
) -> Result<Option<(usize, String)>> {
    let mut inputs = vec![];
    let mut only_readers = true;
    plan.apply(|node| {
        if node.children().is_empty() {
            match node.downcast_ref::<ExchangeReadExec>() {
                Some(r) if matches!(r.input(), ExchangeInput::Buckets { .. }) => {
                    if !inputs.contains(&r.stage()) {
                        inputs.push(r.stage());
                    }
                }
                Some(_) => {}
                None => only_readers = false,
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if inputs.is_empty() || !only_readers {
        return Ok(None);
    }
    let bytes: u64 = inputs.iter().map(|s| exchanges.materialized(*s).1).sum();
    let p = options.parallelism(bytes);
    let why = format!(
        "parallelism {p} (inputs materialized {bytes} bytes; {} bytes per task, min {}, max {})",
        options.avg_bytes_per_task, options.min_parallelism, options.max_parallelism
    );
    Ok(Some((p, why)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallelism_follows_bytes_within_bounds() {
        let o = AdaptiveOptions {
            min_parallelism: 1,
            max_parallelism: 8,
            avg_bytes_per_task: 16 << 20,
        };
        assert_eq!(o.parallelism(0), 1);
        assert_eq!(o.parallelism(1), 1);
        assert_eq!(o.parallelism(16 << 20), 1);
        assert_eq!(o.parallelism((16 << 20) + 1), 2);
        assert_eq!(o.parallelism(1 << 40), 8);
        let o = AdaptiveOptions {
            min_parallelism: 3,
            ..o
        };
        assert_eq!(o.parallelism(0), 3);
    }
}

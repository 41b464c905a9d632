//! Cuts DataFusion's physical plan into BATCH stages at its exchanges —
//! hash or round-robin repartition, coalesce of partitions, sort-preserving
//! merge (the cuts Ballista makes) — so that each stage can run on its own
//! and hand its output to the next through exchange files.
//!
//! A `RepartitionExec` becomes an [`ExchangeWriteExec`] at the root of the
//! stage below (splitting rows into buckets) and an [`ExchangeReadExec`] in
//! the stage above. A `CoalescePartitionsExec` or `SortPreservingMergeExec`
//! stays in the stage above, over a reader of the stage below, whose tasks
//! each write their partition whole. The result always ends in one
//! partition (the final stage), which streams to the caller.
//!
//! A plan whose only exchange is the final gather (a scan with filters and
//! projections, perhaps sorted, into a coalesce or merge: `SELECT ... FROM t
//! WHERE ...`, `INSERT INTO sink SELECT ...`) is one stage. Cutting it would
//! write every row to exchange files only to read them back in one task,
//! and would buy no recovery: re-running the scan costs what re-reading its
//! output does. Flink runs such a job as one chained pipeline too.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::ipc::CompressionType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::recursive_query::RecursiveQueryExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{
    ExecutionPlan, ExecutionPlanProperties, Partitioning, displayable,
};

use super::exchange_files::Exchanges;
use super::exchange_read::{ExchangeInput, ExchangeReadExec};
use super::exchange_write::{ExchangeOutput, ExchangeWriteExec};

/// One stage: a plan whose leaves are scans or readers of earlier stages.
#[derive(Debug, Clone)]
pub struct Stage {
    /// 1-based, in the order stages can run (inputs first).
    pub id: usize,
    /// The stage's plan: rooted at an [`ExchangeWriteExec`], except the
    /// final stage's.
    pub plan: Arc<dyn ExecutionPlan>,
    /// The stages it reads.
    pub inputs: Vec<usize>,
}

impl Stage {
    /// Tasks the stage runs: one per partition of its plan.
    pub fn tasks(&self) -> usize {
        self.plan.output_partitioning().partition_count()
    }

    /// How the stage writes its output, `None` for the final stage.
    pub fn output(&self) -> Option<&ExchangeOutput> {
        self.plan
            .downcast_ref::<ExchangeWriteExec>()
            .map(|w| w.output())
    }
}

/// A physical plan cut into stages. The last stage is the final one: one
/// partition, streamed to the caller.
#[derive(Debug, Clone)]
pub struct StageGraph {
    /// In dependency order (every stage after the stages it reads).
    pub stages: Vec<Stage>,
    /// The registry of the exchange files the stages share.
    pub exchanges: Arc<Exchanges>,
}

/// Why a plan cannot run in stages (it then runs pipelined).
#[derive(Debug, Clone)]
pub struct NotStageable(pub String);

impl StageGraph {
    /// Cuts `plan` into stages. `buckets`: when set (adaptive parallelism),
    /// a repartition writes this many buckets instead of its own count;
    /// `compression`: how exchange files are compressed (`None`: not).
    ///
    /// # Errors
    /// [`NotStageable`] for a plan with an exchange the stages cannot
    /// reproduce (an order-preserving repartition).
    pub fn cut(
        plan: Arc<dyn ExecutionPlan>,
        buckets: Option<usize>,
        compression: Option<CompressionType>,
    ) -> std::result::Result<Self, NotStageable> {
        let mut cutter = Cutter {
            stages: vec![],
            exchanges: Arc::new(Exchanges::default()),
            buckets,
            compression,
        };
        let root = if plan.output_partitioning().partition_count() == 1 {
            plan
        } else {
            Arc::new(CoalescePartitionsExec::new(plan)) as Arc<dyn ExecutionPlan>
        };
        if exchanges(&root) <= 1 {
            cutter.push(root);
            return Ok(Self {
                stages: cutter.stages,
                exchanges: cutter.exchanges,
            });
        }
        let root = cutter.rewrite(root)?;
        cutter.push(root);
        Ok(Self {
            stages: cutter.stages,
            exchanges: cutter.exchanges,
        })
    }

    /// The final stage.
    pub fn final_stage(&self) -> &Stage {
        &self.stages[self.stages.len() - 1]
    }

    /// The stages that read `stage`.
    pub fn consumers(&self, stage: usize) -> Vec<usize> {
        self.stages
            .iter()
            .filter(|s| s.inputs.contains(&stage))
            .map(|s| s.id)
            .collect()
    }

    /// The stage graph as `EXPLAIN` shows it: each stage with its tasks,
    /// its exchange and its consumers, then its plan.
    pub fn display(&self) -> String {
        let mut out = String::new();
        for stage in &self.stages {
            let _ = writeln!(out, "{}", self.stage_header(stage));
            let plan = displayable(stage.plan.as_ref())
                .set_show_schema(false)
                .indent(true)
                .to_string();
            for line in plan.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        out
    }

    /// One line about `stage`: `Stage 2: 4 tasks, reads [1], writes
    /// Hash([k@0], 4) to stage 3`.
    pub fn stage_header(&self, stage: &Stage) -> String {
        let reads = if stage.inputs.is_empty() {
            String::new()
        } else {
            format!(
                ", reads stage {}",
                stage
                    .inputs
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let tasks = stage.tasks();
        let plural = if tasks == 1 { "" } else { "s" };
        match stage.output() {
            Some(output) => format!(
                "Stage {}: {tasks} task{plural}{reads}, writes {output} to stage {}",
                stage.id,
                self.consumers(stage.id)
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => format!("Stage {} (final): {tasks} task{plural}{reads}", stage.id),
        }
    }
}

struct Cutter {
    stages: Vec<Stage>,
    exchanges: Arc<Exchanges>,
    buckets: Option<usize>,
    compression: Option<CompressionType>,
}

impl Cutter {
    fn push(&mut self, plan: Arc<dyn ExecutionPlan>) -> usize {
        let id = self.stages.len() + 1;
        let mut inputs = vec![];
        let _ = plan.apply(|node| {
            if let Some(r) = node.downcast_ref::<ExchangeReadExec>()
                && !inputs.contains(&r.stage())
            {
                inputs.push(r.stage());
            }
            Ok(TreeNodeRecursion::Continue)
        });
        inputs.sort_unstable();
        self.stages.push(Stage { id, plan, inputs });
        id
    }

    /// A new stage writing `input` as `output`; returns its id.
    fn stage(&mut self, input: Arc<dyn ExecutionPlan>, output: ExchangeOutput) -> usize {
        let id = self.stages.len() + 1;
        let writer =
            ExchangeWriteExec::new(input, id, output, self.compression, self.exchanges.clone());
        self.push(Arc::new(writer))
    }

    fn rewrite(
        &mut self,
        node: Arc<dyn ExecutionPlan>,
    ) -> std::result::Result<Arc<dyn ExecutionPlan>, NotStageable> {
        // A recursive query re-runs its inputs itself: it stays whole.
        if node.downcast_ref::<RecursiveQueryExec>().is_some() {
            return Ok(node);
        }
        // DataFusion runs an uncorrelated scalar subquery first and hands its
        // value to the expressions of the plan above through shared state; a
        // stage cut out of that plan would read the value before it is set
        // ("ScalarSubqueryExpr evaluated before the subquery was executed":
        // TPC-H q11, q15, q22).
        if node
            .downcast_ref::<datafusion::physical_plan::scalar_subquery::ScalarSubqueryExec>()
            .is_some()
        {
            return Err(NotStageable(
                "a scalar subquery (its value is shared with the plan above it) runs pipelined"
                    .into(),
            ));
        }
        let children: Vec<Arc<dyn ExecutionPlan>> = node.children().into_iter().cloned().collect();
        let mut new_children = Vec::with_capacity(children.len());
        for c in &children {
            new_children.push(self.rewrite(c.clone())?);
        }
        let changed = children
            .iter()
            .zip(&new_children)
            .any(|(a, b)| !Arc::ptr_eq(a, b));
        let node = if changed {
            with_children(node, new_children)?
        } else {
            node
        };
        if let Some(r) = node.downcast_ref::<RepartitionExec>() {
            if r.preserve_order() {
                return Err(NotStageable(
                    "an order-preserving repartition runs pipelined".into(),
                ));
            }
            let partitioning = r.partitioning().clone();
            let planned = partitioning.partition_count();
            let buckets = self.buckets.unwrap_or(planned).max(1);
            let written = match partitioning {
                Partitioning::Hash(exprs, _) => Partitioning::Hash(exprs, buckets),
                Partitioning::RoundRobinBatch(_) => Partitioning::RoundRobinBatch(buckets),
                other => {
                    return Err(NotStageable(format!(
                        "a repartition {other} runs pipelined"
                    )));
                }
            };
            let schema = r.schema();
            let properties = r.properties().clone();
            let id = self.stage(r.input().clone(), ExchangeOutput::Partitioned(written));
            return Ok(Arc::new(ExchangeReadExec::new(
                id,
                ExchangeInput::Buckets { buckets },
                schema,
                self.exchanges.clone(),
                properties,
            )));
        }
        let merge_input = if let Some(c) = node.downcast_ref::<CoalescePartitionsExec>() {
            Some(c.input().clone())
        } else {
            node.downcast_ref::<SortPreservingMergeExec>()
                .map(|s| s.input().clone())
        };
        if let Some(input) = merge_input {
            let schema = input.schema();
            let properties = input.properties().clone();
            let id = self.stage(input, ExchangeOutput::PassThrough);
            let reader: Arc<dyn ExecutionPlan> = Arc::new(ExchangeReadExec::new(
                id,
                ExchangeInput::PerTask,
                schema,
                self.exchanges.clone(),
                properties,
            ));
            return with_children(node, vec![reader]);
        }
        Ok(node)
    }
}

/// The exchanges (repartitions, coalesces, merges) in `plan`.
fn exchanges(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let mut n = 0;
    let _ = plan.apply(|node| {
        if node.downcast_ref::<RepartitionExec>().is_some()
            || node.downcast_ref::<CoalescePartitionsExec>().is_some()
            || node.downcast_ref::<SortPreservingMergeExec>().is_some()
        {
            n += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    n
}

#[expect(deprecated)]
fn with_children(
    node: Arc<dyn ExecutionPlan>,
    children: Vec<Arc<dyn ExecutionPlan>>,
) -> std::result::Result<Arc<dyn ExecutionPlan>, NotStageable> {
    node.clone().with_new_children(children).map_err(|e| {
        NotStageable(format!(
            "{} could not take its new inputs: {e}",
            node.name()
        ))
    })
}

/// A fresh instance of `plan` (every node's run state reset, shared
/// exchange registry kept), for re-running a task.
pub(crate) fn reset(plan: &Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    Ok(plan
        .clone()
        .transform_up(|node| {
            node.reset_state()
                .map(datafusion::common::tree_node::Transformed::yes)
        })?
        .data)
}

/// Indented one-line-per-operator text of `plan` with its metrics.
pub(crate) fn display_with_metrics(plan: &dyn ExecutionPlan) -> String {
    datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(plan)
        .set_show_schema(false)
        .indent(true)
        .to_string()
}

//! Keeps `COUNT(DISTINCT x)` (and the other DISTINCT aggregates) as they
//! are when they aggregate a SESSION window TVF; everywhere else
//! DataFusion's `SingleDistinctToGroupBy` applies as usual.
//!
//! Why: `SingleDistinctToGroupBy` turns `SELECT k, COUNT(DISTINCT v) ...
//! GROUP BY k, window_start, window_end` into a GROUP BY on `(k,
//! window_start, window_end, v)` under a second aggregate. Over a SESSION
//! TVF that inner GROUP BY is not a session aggregate any more: STREAMING
//! only knows a row's session once the session has ended, so it aggregates
//! sessions in one operator keyed by the window and PARTITION BY columns
//! (`engine/src/streaming/session_aggregate.rs`), and refused the rewritten
//! plan. That operator runs DISTINCT accumulators directly (their states
//! merge when sessions do), and BATCH runs them through DataFusion's hash
//! aggregate, so both modes plan the original aggregate
//! (cross_mode/regressions.slt, third case).

use datafusion::common::tree_node::Transformed;
use datafusion::error::Result;
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::single_distinct_to_groupby::SingleDistinctToGroupBy;
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use crate::window_tvf::{WindowKind, WindowTvfNode};

/// DataFusion's `SingleDistinctToGroupBy`, except over a SESSION window TVF;
/// it takes that rule's place in the optimizer's list.
#[derive(Debug, Default)]
pub struct SingleDistinctToGroupByExceptSession {
    inner: SingleDistinctToGroupBy,
}

impl OptimizerRule for SingleDistinctToGroupByExceptSession {
    fn name(&self) -> &str {
        "tributary_single_distinct_to_group_by_except_session"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        self.inner.apply_order()
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        match &plan {
            LogicalPlan::Aggregate(a) if reads_session_tvf(&a.input) => Ok(Transformed::no(plan)),
            _ => self.inner.rewrite(plan, config),
        }
    }
}

/// Whether `plan` is a SESSION window TVF, seen through the projections,
/// aliases and filters the optimizer may put between it and an aggregate.
fn reads_session_tvf(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Projection(p) => reads_session_tvf(&p.input),
        LogicalPlan::SubqueryAlias(a) => reads_session_tvf(&a.input),
        LogicalPlan::Filter(f) => reads_session_tvf(&f.input),
        LogicalPlan::Extension(e) => e
            .node
            .as_any()
            .downcast_ref::<WindowTvfNode>()
            .is_some_and(|t| matches!(t.kind, WindowKind::Session { .. })),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::functions_aggregate::count::count_distinct;
    use datafusion::logical_expr::{Extension, LogicalPlanBuilder, col, table_scan};
    use datafusion::optimizer::{Optimizer, OptimizerContext};

    use super::*;

    /// `SELECT k, COUNT(DISTINCT v) FROM TABLE(<kind>(visits ...)) GROUP BY
    /// k, window_start, window_end`, optimized by this rule alone.
    fn optimized(kind: WindowKind) -> String {
        let schema = Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]);
        let scan = table_scan(Some("visits"), &schema, None)
            .unwrap()
            .build()
            .unwrap();
        let partition_by = match kind {
            WindowKind::Session { .. } => vec!["k".to_string()],
            _ => vec![],
        };
        let tvf = WindowTvfNode::try_new(scan, "ts", kind, 0, partition_by).unwrap();
        let plan = LogicalPlanBuilder::from(LogicalPlan::Extension(Extension {
            node: Arc::new(tvf),
        }))
        .aggregate(
            vec![col("k"), col("window_start"), col("window_end")],
            vec![count_distinct(col("v"))],
        )
        .unwrap()
        .build()
        .unwrap();
        let optimizer = Optimizer::with_rules(vec![Arc::new(
            SingleDistinctToGroupByExceptSession::default(),
        )]);
        optimizer
            .optimize(plan, &OptimizerContext::new(), |_, _| {})
            .unwrap()
            .display_indent()
            .to_string()
    }

    #[test]
    fn a_distinct_aggregate_over_a_session_tvf_stays_one_aggregate() {
        let plan = optimized(WindowKind::Session { gap: 5_000 });
        assert_eq!(plan.matches("Aggregate:").count(), 1, "{plan}");
        assert!(plan.contains("count(DISTINCT visits.v)"), "{plan}");
    }

    #[test]
    fn a_distinct_aggregate_over_a_tumble_tvf_is_rewritten_as_datafusion_does() {
        let plan = optimized(WindowKind::Tumble { size: 5_000 });
        assert_eq!(plan.matches("Aggregate:").count(), 2, "{plan}");
        assert!(plan.contains("visits.v AS alias1]], aggr=[[]]"), "{plan}");
    }
}

//! The mode-aware physical planner: the one entry point that turns a
//! logical plan into something to run, in the runtime mode asked for.
//!
//! BATCH lowers to DataFusion's physical plan (hash aggregate, hash join,
//! sort). STREAMING lowers to Tributary's incremental operators
//! ([`crate::streaming`]).

use std::sync::Arc;

use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;

use crate::error::Result;
use crate::insert_types::check_insert_types;
use crate::mode::{ResolvedMode, RuntimeMode, resolve_mode};
use crate::streaming::{StreamPlan, plan_streaming};

/// The plan of a query in its mode.
#[derive(Debug, Clone)]
pub enum QueryPlan {
    /// DataFusion's physical plan, run to completion.
    Batch(Arc<dyn ExecutionPlan>),
    /// Incremental operators emitting a changelog.
    Streaming(StreamPlan),
}

/// A statement ready to run: its plan and the mode it runs in.
#[derive(Debug, Clone)]
pub struct PhysicalQuery {
    /// The mode, and why it was chosen.
    pub mode: ResolvedMode,
    /// The optimized logical plan the physical plan was made from.
    pub logical: LogicalPlan,
    /// What to run.
    pub plan: QueryPlan,
}

/// Plans `logical` in the `requested` mode.
///
/// # Errors
/// Whatever [`resolve_mode`] refuses (BATCH over an unbounded source), an
/// `INSERT` whose types do not match its sink, constructs STREAMING does not
/// support yet, and DataFusion's optimizer and physical planner errors.
pub async fn create_physical_plan(
    state: &SessionState,
    logical: &LogicalPlan,
    requested: RuntimeMode,
) -> Result<PhysicalQuery> {
    let mode = resolve_mode(requested, logical)?;
    if let LogicalPlan::Dml(dml) = logical {
        check_insert_types(dml)?;
    }
    let logical = &crate::temporal_join::lower_temporal_joins(logical, mode.mode)?;
    let optimized = state.optimize(logical)?;
    let optimized = match mode.mode {
        RuntimeMode::Streaming => optimized,
        _ => crate::decorrelated_aggregate_prefilter::prefilter_decorrelated_aggregates(optimized)?,
    };
    crate::scalar_subquery_domain_join::check_decorrelated(&optimized)?;
    let plan = match mode.mode {
        RuntimeMode::Streaming => QueryPlan::Streaming(plan_streaming(state, &optimized).await?),
        _ => QueryPlan::Batch(
            state
                .query_planner()
                .create_physical_plan(&optimized, state)
                .await?,
        ),
    };
    Ok(PhysicalQuery {
        mode,
        logical: optimized,
        plan,
    })
}

//! The mode-aware physical planner: the one entry point that turns a
//! logical plan into something to run, in the runtime mode asked for.
//!
//! BATCH lowers to DataFusion's physical plan (hash aggregate, hash join,
//! sort). STREAMING lowers to incremental operators — not built yet, so it is
//! refused by [`resolve_mode`] with a clear error.

use std::sync::Arc;

use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;

use crate::error::Result;
use crate::insert_types::check_insert_types;
use crate::mode::{ResolvedMode, RuntimeMode, resolve_mode};

/// A statement ready to run: its physical plan and the mode it runs in.
#[derive(Debug, Clone)]
pub struct PhysicalQuery {
    /// The mode, and why it was chosen.
    pub mode: ResolvedMode,
    /// The optimized logical plan the physical plan was made from.
    pub logical: LogicalPlan,
    /// The physical plan (DataFusion's, in BATCH).
    pub plan: Arc<dyn ExecutionPlan>,
}

/// Plans `logical` in the `requested` mode.
///
/// # Errors
/// Whatever [`resolve_mode`] refuses (STREAMING for now; BATCH over an
/// unbounded source), and DataFusion's optimizer and physical planner
/// errors.
pub async fn create_physical_plan(
    state: &SessionState,
    logical: &LogicalPlan,
    requested: RuntimeMode,
) -> Result<PhysicalQuery> {
    let mode = resolve_mode(requested, logical)?;
    if let LogicalPlan::Dml(dml) = logical {
        check_insert_types(dml)?;
    }
    let optimized = state.optimize(logical)?;
    let plan = state.query_planner().create_physical_plan(&optimized, state).await?;
    Ok(PhysicalQuery { mode, logical: optimized, plan })
}

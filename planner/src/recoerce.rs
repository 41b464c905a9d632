//! Re-applies DataFusion's type coercion after its optimizer rules, for the
//! types a rewrite changed under expressions coerced before it.
//!
//! DataFusion coerces types once, in its analyzer, before optimizing. A
//! rewrite can then change the type of a column that an expression above it
//! was coerced against: DataFusion 55's `SingleDistinctToGroupBy` turns
//! `SUM(d)` beside a `COUNT(DISTINCT ...)` into a SUM of per-group SUMs,
//! whose result is `DECIMAL(p + 20, s)` where the plan above was coerced for
//! `DECIMAL(p + 10, s)`; a `HAVING SUM(d) < 0` then fails at execution
//! ("Invalid comparison operation: Decimal128(30, 2) < Decimal128(20, 2)").
//! Running the coercion again over the optimized plan casts where types no
//! longer line up; over a plan whose types do, it changes nothing.
//! (regressions.slt, sixth case.)

use datafusion::common::tree_node::Transformed;
use datafusion::error::Result;
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::analyzer::AnalyzerRule;
use datafusion::optimizer::analyzer::type_coercion::TypeCoercion;
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// The last optimizer rule of Tributary's sessions: DataFusion's
/// `TypeCoercion` analyzer rule over the optimized plan.
#[derive(Debug, Default)]
pub struct RecoerceTypes;

impl OptimizerRule for RecoerceTypes {
    fn name(&self) -> &str {
        "tributary_recoerce_types"
    }

    /// The whole plan at once (the coercion walks it itself).
    fn apply_order(&self) -> Option<ApplyOrder> {
        None
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let coerced = TypeCoercion::new().analyze(plan.clone(), &config.options())?;
        let changed = coerced != plan;
        Ok(Transformed::new_transformed(coerced, changed))
    }
}

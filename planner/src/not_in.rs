//! Rewrites a correlated `x NOT IN (subquery)` in a WHERE into the
//! `NOT EXISTS` that means the same there, before DataFusion decorrelates
//! subqueries.
//!
//! Why: DataFusion 55 turns a correlated `NOT IN` into a null-aware anti
//! join that empties the result when *any* subquery row has a NULL value,
//! even rows the correlation excludes for the outer row at hand
//! (`k NOT IN (SELECT k FROM r WHERE r.y > l.x)` returned nothing when one
//! `r` row with a NULL `k` failed `r.y > l.x` for every `l`;
//! cross_mode/join_semi_anti.slt). STREAMING refused it.
//!
//! The rewrite (SQL's three-valued logic): `x NOT IN S` is TRUE when no
//! element of S equals x, is NULL, or x is NULL with S not empty; FALSE or
//! NULL otherwise. A WHERE keeps only TRUE, so as a conjunct of a WHERE it
//! is `NOT EXISTS (SELECT 1 FROM S WHERE s = x OR s IS NULL OR x IS NULL)`,
//! with the correlation kept inside S. DataFusion decorrelates that into an
//! anti join whose filter holds the whole condition, which both modes run.
//! Uncorrelated `NOT IN` keeps DataFusion's null-aware anti join (an
//! equi-join, which the rewrite would turn into a nested loop).

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema};
use datafusion::error::Result;
use datafusion::logical_expr::expr::{Exists, InSubquery};
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    Expr, ExprSchemable, Filter, LogicalPlan, LogicalPlanBuilder, Subquery, cast,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// The rule; it must run before DataFusion's `DecorrelatePredicateSubquery`.
#[derive(Debug, Default)]
pub struct CorrelatedNotInToNotExists;

impl OptimizerRule for CorrelatedNotInToNotExists {
    fn name(&self) -> &str {
        "tributary_correlated_not_in_to_not_exists"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Filter(filter) = plan else {
            return Ok(Transformed::no(plan));
        };
        let correlated_not_in = |e: &Expr| {
            matches!(e, Expr::InSubquery(InSubquery { negated: true, subquery, .. })
                if !subquery.outer_ref_columns.is_empty())
        };
        if !split_conjunction_owned(filter.predicate.clone())
            .iter()
            .any(correlated_not_in)
        {
            return Ok(Transformed::no(LogicalPlan::Filter(filter)));
        }
        let outer_schema = filter.input.schema().clone();
        let conjuncts = split_conjunction_owned(filter.predicate)
            .into_iter()
            .map(|e| match e {
                Expr::InSubquery(InSubquery {
                    expr,
                    subquery,
                    negated: true,
                }) if !subquery.outer_ref_columns.is_empty() => {
                    not_exists(*expr, subquery, &outer_schema)
                }
                other => Ok(other),
            })
            .collect::<Result<Vec<_>>>()?;
        let predicate = conjunction(conjuncts).unwrap_or_else(|| Expr::Literal(true.into(), None));
        Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(
            predicate,
            filter.input,
        )?)))
    }
}

/// `NOT EXISTS (SELECT * FROM (subquery) WHERE s = x OR s IS NULL OR x IS
/// NULL)`, `x` made an outer reference.
fn not_exists(x: Expr, subquery: Subquery, outer_schema: &Arc<DFSchema>) -> Result<Expr> {
    let inner_schema = subquery.subquery.schema().clone();
    let (qualifier, field) = inner_schema.qualified_field(0);
    let s = Expr::Column(Column::new(qualifier.cloned(), field.name()));
    let outer_x = x
        .clone()
        .transform(|e| {
            Ok(match e {
                Expr::Column(c) => {
                    let (_, f) = outer_schema.qualified_field_from_column(&c)?;
                    Transformed::yes(Expr::OuterReferenceColumn(Arc::clone(f), c))
                }
                other => Transformed::no(other),
            })
        })?
        .data;
    let x_type = x.get_type(outer_schema.as_ref())?;
    let outer_x = if &x_type == field.data_type() {
        outer_x
    } else {
        cast(outer_x, field.data_type().clone())
    };
    let condition = s
        .clone()
        .eq(outer_x.clone())
        .or(s.is_null())
        .or(outer_x.is_null());
    let plan = LogicalPlanBuilder::from(subquery.subquery.as_ref().clone())
        .filter(condition)?
        .build()?;
    let mut outer_refs = subquery.outer_ref_columns;
    x.apply(|e| {
        if let Expr::Column(c) = e
            && let Ok((_, f)) = outer_schema.qualified_field_from_column(c)
        {
            outer_refs.push(Expr::OuterReferenceColumn(Arc::clone(f), c.clone()));
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })?;
    Ok(Expr::Exists(Exists {
        subquery: Subquery {
            subquery: Arc::new(plan),
            outer_ref_columns: outer_refs,
            spans: subquery.spans,
        },
        negated: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    /// The optimized plan of `sql` over l(k, x) and r(k, y), with the rule
    /// before DataFusion's decorrelation as Tributary's sessions have it.
    async fn optimized(sql: &str) -> String {
        let state = SessionContext::new().state();
        let mut rules = datafusion::optimizer::Optimizer::new().rules;
        let at = rules
            .iter()
            .position(|r| r.name() == "decorrelate_predicate_subquery")
            .unwrap();
        rules.insert(at, Arc::new(CorrelatedNotInToNotExists));
        let state = datafusion::execution::SessionStateBuilder::new_from_existing(state)
            .with_optimizer_rules(rules)
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.sql("CREATE TABLE l (k INT, x INT)").await.unwrap();
        ctx.sql("CREATE TABLE r (k BIGINT, y INT)").await.unwrap();
        let plan = ctx.sql(sql).await.unwrap().into_optimized_plan().unwrap();
        plan.display_indent().to_string()
    }

    #[tokio::test]
    async fn a_correlated_not_in_becomes_an_anti_join_with_the_null_conditions() {
        let plan =
            optimized("SELECT x FROM l WHERE k NOT IN (SELECT k FROM r WHERE r.y > l.x)").await;
        assert!(plan.contains("LeftAnti Join"), "{plan}");
        assert!(plan.contains("IS NULL"), "{plan}");
        assert!(!plan.contains("null_aware"), "{plan}");
    }

    #[tokio::test]
    async fn an_uncorrelated_not_in_keeps_the_null_aware_anti_join() {
        let plan = optimized("SELECT x FROM l WHERE k NOT IN (SELECT k FROM r)").await;
        assert!(plan.contains("LeftAnti Join"), "{plan}");
        assert!(!plan.contains("IS NULL"), "{plan}");
    }
}

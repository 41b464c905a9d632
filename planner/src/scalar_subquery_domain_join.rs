//! Decorrelates a correlated scalar subquery whose correlation DataFusion
//! cannot pull up — a non-equality such as
//! `(SELECT count(*) FROM t1 AS x WHERE x.b < t1.b)` — into joins, by the
//! domain ("magic set") method of Neumann and Kemper, *Unnesting Arbitrary
//! Queries* (BTW 2015).
//!
//! Why: DataFusion 55's `ScalarSubqueryToJoin` pulls a correlated predicate
//! above the subquery's aggregate only when it is an equality (it then
//! groups by the inner column). Any other correlation is left in place and
//! physical planning fails with "Physical plan does not support logical
//! expression ScalarSubquery". SQLite's sqllogictest corpus
//! (`test_files/standard/sqlite/select1.test` ...) is full of them.
//!
//! The rewrite, for a `Projection` or `Filter` over `outer` holding
//! `(SELECT agg(..) FROM inner WHERE p(inner, outer.c1, ..))`:
//!
//! ```text
//! D = SELECT DISTINCT c1, .. FROM outer                 -- the domain
//! S = SELECT d.*, agg(..) FILTER (WHERE marker IS NOT NULL)
//!     FROM D d LEFT JOIN (SELECT inner.*, TRUE AS marker FROM inner)
//!          ON p(inner, d.c1, ..)
//!     GROUP BY d.*                                      -- one row per d
//! outer LEFT JOIN S ON outer.c1 IS NOT DISTINCT FROM S.c1 AND ..
//! ```
//!
//! and the subquery becomes `S`'s value column. Each outer row meets exactly
//! one row of `S` (the domain holds its values, NULLs included, and
//! `IS NOT DISTINCT FROM` matches NULL to NULL), so the outer rows keep their
//! multiplicity. The LEFT JOIN from `D` keeps a domain value whose group is
//! empty, and the aggregate's `FILTER` on the inner side's marker ignores
//! the NULL-padded row it brings: `COUNT(*)` of an empty group is 0 and
//! `SUM` / `MIN` / `MAX` / `AVG` are NULL, as for the subquery itself (the
//! "COUNT bug" of Kim's unnesting, Ganski and Wong, SIGMOD 1987).
//!
//! What it takes: a subquery of the shape `Projection* -> Aggregate` without
//! `GROUP BY` `-> Filter* -> input`, where the outer references are in the
//! filters, the aggregate's arguments or the projections, and none is below
//! the filters; no subquery inside it. Anything else is left to DataFusion's
//! rules. The rule runs after `ScalarSubqueryToJoin`, so the equality
//! correlations DataFusion decorrelates keep its plan.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, JoinType};
use datafusion::error::Result;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, Operator, Projection, Subquery, binary_expr,
    lit,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// The rule; it runs after DataFusion's `ScalarSubqueryToJoin`.
///
/// Input: a `Projection` or `Filter` whose expressions hold correlated
/// `ScalarSubquery`s. Output: the same node over `outer LEFT JOIN S` (see
/// the module header), each subquery replaced by the column
/// `__scalar_domain_<n>.__value` of its `S`; a `Filter` gets a `Projection`
/// on top that restores its schema. Subqueries of another shape are left
/// as they are. It returns no error of its own: a plan it cannot build is
/// an error of DataFusion's builders (a bug).
#[derive(Debug, Default)]
pub struct ScalarSubqueryToDomainJoin;

impl OptimizerRule for ScalarSubqueryToDomainJoin {
    fn name(&self) -> &str {
        "tributary_scalar_subquery_to_domain_join"
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
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        match plan {
            LogicalPlan::Projection(projection) => {
                if !projection.expr.iter().any(has_correlated_scalar_subquery) {
                    return Ok(Transformed::no(LogicalPlan::Projection(projection)));
                }
                let outer = projection.input.as_ref().clone();
                let mut joined = outer.clone();
                let mut changed = false;
                let mut exprs = Vec::with_capacity(projection.expr.len());
                for expr in &projection.expr {
                    let new = replace_subqueries(expr.clone(), &outer, &mut joined, config)?;
                    changed |= new.transformed;
                    exprs.push(keep_name(expr, new.data)?);
                }
                if !changed {
                    return Ok(Transformed::no(LogicalPlan::Projection(projection)));
                }
                let plan = LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(joined))?);
                Ok(Transformed::yes(plan))
            }
            LogicalPlan::Filter(filter) => {
                if !has_correlated_scalar_subquery(&filter.predicate) {
                    return Ok(Transformed::no(LogicalPlan::Filter(filter)));
                }
                let outer = filter.input.as_ref().clone();
                let mut joined = outer.clone();
                let new =
                    replace_subqueries(filter.predicate.clone(), &outer, &mut joined, config)?;
                if !new.transformed {
                    return Ok(Transformed::no(LogicalPlan::Filter(filter)));
                }
                let columns = outer.schema().columns().into_iter().map(Expr::Column);
                let plan = LogicalPlanBuilder::from(joined)
                    .filter(new.data)?
                    .project(columns)?
                    .build()?;
                Ok(Transformed::yes(plan))
            }
            other => Ok(Transformed::no(other)),
        }
    }
}

fn has_correlated_scalar_subquery(expr: &Expr) -> bool {
    expr.exists(|e| Ok(matches!(e, Expr::ScalarSubquery(s) if !s.outer_ref_columns.is_empty())))
        .unwrap_or(false)
}

/// `new` named as `old` was, so the nodes above still find it.
fn keep_name(old: &Expr, new: Expr) -> Result<Expr> {
    let (old_name, new_name) = (old.schema_name().to_string(), new.schema_name().to_string());
    Ok(if old_name == new_name {
        new
    } else {
        let (qualifier, name) = old.qualified_name();
        new.alias_qualified(qualifier, name)
    })
}

/// Replaces each correlated scalar subquery of `expr` that has the shape
/// this rule takes by the value column of its domain join, joining that onto
/// `joined` (which starts as `outer`).
fn replace_subqueries(
    expr: Expr,
    outer: &LogicalPlan,
    joined: &mut LogicalPlan,
    config: &dyn OptimizerConfig,
) -> Result<Transformed<Expr>> {
    expr.transform_down(|e| match e {
        Expr::ScalarSubquery(subquery) if !subquery.outer_ref_columns.is_empty() => {
            let alias = config.alias_generator().next("__scalar_domain");
            match domain_join(&subquery, outer, &alias)? {
                Some((s, keys)) => {
                    let on = keys
                        .into_iter()
                        .map(|(o, d)| {
                            binary_expr(
                                Expr::Column(o),
                                Operator::IsNotDistinctFrom,
                                Expr::Column(d),
                            )
                        })
                        .collect::<Vec<_>>();
                    *joined = LogicalPlanBuilder::from(joined.clone())
                        .join_on(s, JoinType::Left, on)?
                        .build()?;
                    Ok(Transformed::new(
                        Expr::Column(Column::new(Some(alias), VALUE)),
                        true,
                        TreeNodeRecursion::Jump,
                    ))
                }
                None => Ok(Transformed::new(
                    Expr::ScalarSubquery(subquery),
                    false,
                    TreeNodeRecursion::Jump,
                )),
            }
        }
        other => Ok(Transformed::no(other)),
    })
}

/// The name of the subquery's value in `S`.
const VALUE: &str = "__value";

/// `S` of the module header for `subquery`, aliased `alias`, and the join
/// keys (outer column, `S`'s domain column) to join it on; `None` if the
/// subquery does not have the shape the rule takes.
fn domain_join(
    subquery: &Subquery,
    outer: &LogicalPlan,
    alias: &str,
) -> Result<Option<(LogicalPlan, Vec<(Column, Column)>)>> {
    let plan = subquery.subquery.as_ref();
    // No subquery inside: its own outer references would be another scope.
    let mut nested = false;
    plan.apply(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if matches!(
                    e,
                    Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
                ) {
                    nested = true;
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    if nested {
        return Ok(None);
    }
    // The outer columns the subquery reads: the domain's columns.
    let mut outer_columns: Vec<Column> = vec![];
    plan.apply(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::OuterReferenceColumn(_, c) = e
                    && !outer_columns.contains(c)
                {
                    outer_columns.push(c.clone());
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    if outer_columns.is_empty() || !outer_columns.iter().all(|c| outer.schema().has_column(c)) {
        return Ok(None);
    }

    // Projection* -> Aggregate (no GROUP BY) -> Filter* -> input.
    let mut projections = vec![];
    let mut node = plan;
    while let LogicalPlan::Projection(p) = node {
        projections.push(p);
        node = p.input.as_ref();
    }
    let LogicalPlan::Aggregate(aggregate) = node else {
        return Ok(None);
    };
    if !aggregate.group_expr.is_empty() {
        return Ok(None);
    }
    let mut conjuncts = vec![];
    let mut node = aggregate.input.as_ref();
    while let LogicalPlan::Filter(f) = node {
        conjuncts.extend(split_conjunction_owned(f.predicate.clone()));
        node = f.input.as_ref();
    }
    let below = node;
    if below.exists(|n| Ok(n.contains_outer_reference()))? {
        return Ok(None);
    }

    // D: the distinct outer values, as __domain.__d<i>.
    let domain_alias = format!("{alias}_domain");
    let domain_columns: Vec<Column> = (0..outer_columns.len())
        .map(|i| Column::new(Some(domain_alias.clone()), format!("__d{i}")))
        .collect();
    let domain = LogicalPlanBuilder::from(outer.clone())
        .project(
            outer_columns
                .iter()
                .zip(&domain_columns)
                .map(|(c, d)| Expr::Column(c.clone()).alias(d.name.clone())),
        )?
        .distinct()?
        .alias(domain_alias.clone())?
        .build()?;
    let to_domain = |e: Expr| -> Result<Expr> {
        e.transform(|e| match e {
            Expr::OuterReferenceColumn(f, c) => {
                Ok(match outer_columns.iter().position(|o| o == &c) {
                    Some(i) => Transformed::yes(Expr::Column(domain_columns[i].clone())),
                    None => Transformed::no(Expr::OuterReferenceColumn(f, c)),
                })
            }
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
    };

    // The inner side: its uncorrelated conjuncts stay below the join, and a
    // marker that is NULL only on the row the LEFT JOIN pads.
    let (correlated, local): (Vec<Expr>, Vec<Expr>) =
        conjuncts.into_iter().partition(Expr::contains_outer);
    let marker = format!("{alias}_marker");
    let mut inner = LogicalPlanBuilder::from(below.clone());
    if let Some(local) = conjunction(local) {
        inner = inner.filter(local)?;
    }
    let inner_columns = inner.schema().columns().into_iter().map(Expr::Column);
    let inner = inner
        .project(inner_columns.chain([lit(true).alias(marker.clone())]))?
        .build()?;
    let on = correlated
        .into_iter()
        .map(to_domain)
        .collect::<Result<Vec<_>>>()?;
    let joined = LogicalPlanBuilder::from(domain)
        .join_on(inner, JoinType::Left, on)?
        .build()?;

    // The aggregate, grouped by the domain, ignoring the padded row.
    let not_padded = Expr::Column(Column::from_name(marker)).is_not_null();
    let group_len = aggregate.group_expr.len();
    let aggr_expr = aggregate
        .aggr_expr
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let name = aggregate.schema.field(group_len + i).name().clone();
            let e = to_domain(e.clone())?
                .transform(|e| match e {
                    Expr::AggregateFunction(mut f) => {
                        f.params.filter = Some(Box::new(match f.params.filter.take() {
                            Some(old) => (*old).and(not_padded.clone()),
                            None => not_padded.clone(),
                        }));
                        Ok(Transformed::yes(Expr::AggregateFunction(
                            AggregateFunction {
                                func: f.func,
                                params: f.params,
                            },
                        )))
                    }
                    other => Ok(Transformed::no(other)),
                })?
                .data;
            Ok(e.alias(name))
        })
        .collect::<Result<Vec<_>>>()?;
    let group_expr: Vec<Expr> = domain_columns.iter().cloned().map(Expr::Column).collect();
    let mut top = LogicalPlan::Aggregate(Aggregate::try_new(
        Arc::new(joined),
        group_expr.clone(),
        aggr_expr,
    )?);
    // The value: the aggregate's first, or the top projection's first column.
    let mut value = Expr::Column(Column::from(
        top.schema().qualified_field(outer_columns.len()),
    ));
    for p in projections.iter().rev() {
        let mut exprs = p
            .expr
            .iter()
            .map(|e| keep_name(e, to_domain(e.clone())?))
            .collect::<Result<Vec<_>>>()?;
        exprs.extend(group_expr.iter().cloned());
        top = LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(top))?);
        value = Expr::Column(Column::from(top.schema().qualified_field(0)));
    }
    let s = LogicalPlanBuilder::from(top)
        .project(std::iter::once(value.alias(VALUE)).chain(group_expr))?
        .alias(alias)?
        .build()?;
    let keys = outer_columns
        .into_iter()
        .zip(&domain_columns)
        .map(|(o, d)| (o, Column::new(Some(alias), d.name.clone())))
        .collect();
    Ok(Some((s, keys)))
}

/// Fails with a clear error if `plan` (optimized) still holds a correlated
/// subquery: one that neither DataFusion's rules nor
/// [`ScalarSubqueryToDomainJoin`] could turn into joins, which neither mode
/// can run (DataFusion's physical planner would only say "Physical plan does
/// not support logical expression ScalarSubquery"). Uncorrelated scalar
/// subqueries are fine in BATCH (DataFusion runs them itself).
///
/// Errors: `NotSupported`, with a hint on how to write it so it runs (and
/// the subquery's place in the SQL text when DataFusion kept its span).
pub fn check_decorrelated(plan: &LogicalPlan) -> crate::error::Result<()> {
    let mut found: Option<(&'static str, Option<crate::error::Location>)> = None;
    let place = |s: &Subquery| {
        s.spans.first().map(|span| crate::error::Location {
            line: span.start.line,
            column: span.start.column,
        })
    };
    let _ = plan.apply(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                found = match e {
                    Expr::ScalarSubquery(s) if !s.outer_ref_columns.is_empty() => {
                        Some(("a correlated scalar subquery", place(s)))
                    }
                    Expr::InSubquery(i) if !i.subquery.outer_ref_columns.is_empty() => {
                        Some(("a correlated IN subquery", place(&i.subquery)))
                    }
                    Expr::Exists(x) if !x.subquery.outer_ref_columns.is_empty() => {
                        Some(("a correlated EXISTS subquery", place(&x.subquery)))
                    }
                    _ => None,
                };
                Ok(if found.is_some() {
                    TreeNodeRecursion::Stop
                } else {
                    TreeNodeRecursion::Continue
                })
            })
        })
    });
    match found {
        None => Ok(()),
        Some((what, location)) => Err(crate::error::Error::not_supported(format!(
            "{what} of this shape cannot be turned into a join yet: a scalar \
             subquery is decorrelated when its SELECT is one aggregate without \
             GROUP BY (any correlation) or when it is correlated by equalities"
        ))
        .at(location)
        .with_hint(
            "give the subquery an aggregate (e.g. max(x) instead of x ... LIMIT 1), \
             or write it as a join",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::SessionContext;

    /// A session with the rule right after DataFusion's
    /// `scalar_subquery_to_join`, as Tributary's sessions have it, and
    /// t(id, b) = (1, 10), (2, 20), (3, 20), (4, NULL), (5, 30), (5, 30).
    async fn session() -> SessionContext {
        let state = SessionContext::new().state();
        let mut rules = datafusion::optimizer::Optimizer::new().rules;
        let at = rules
            .iter()
            .position(|r| r.name() == "scalar_subquery_to_join")
            .unwrap();
        rules.insert(at + 1, Arc::new(ScalarSubqueryToDomainJoin));
        let state = datafusion::execution::SessionStateBuilder::new_from_existing(state)
            .with_optimizer_rules(rules)
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.sql("CREATE TABLE t (id INT, b INT)").await.unwrap();
        ctx.sql("INSERT INTO t VALUES (1, 10), (2, 20), (3, 20), (4, NULL), (5, 30), (5, 30)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        ctx
    }

    async fn plan(ctx: &SessionContext, sql: &str) -> String {
        let plan = ctx.sql(sql).await.unwrap().into_optimized_plan().unwrap();
        plan.display_indent().to_string()
    }

    async fn rows(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    #[tokio::test]
    async fn a_non_equality_count_becomes_a_domain_join() {
        let ctx = session().await;
        let sql = "SELECT id, (SELECT count(*) FROM t AS x WHERE x.b < t.b) AS n FROM t";
        let plan = plan(&ctx, sql).await;
        // Before: DataFusion leaves the ScalarSubquery in the projection.
        // After: outer LEFT JOIN (domain LEFT JOIN inner, grouped by the
        // domain) on IS NOT DISTINCT FROM, the count filtered on the marker.
        assert!(!plan.contains("ScalarSubquery"), "{plan}");
        assert!(plan.contains("_domain.__d0"), "{plan}");
        assert!(plan.contains("_marker IS NOT NULL)"), "{plan}");
        assert_eq!(plan.matches("Left Join").count(), 2, "{plan}");
        // The join back to the outer rows matches NULL to NULL (IS NOT
        // DISTINCT FROM; the plan's display writes its keys with `=`).
        let optimized = ctx.sql(sql).await.unwrap().into_optimized_plan().unwrap();
        let mut null_safe_joins = 0;
        optimized
            .apply(|node| {
                if let LogicalPlan::Join(join) = node
                    && join.null_equality == datafusion::common::NullEquality::NullEqualsNull
                {
                    null_safe_joins += 1;
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .unwrap();
        assert_eq!(null_safe_joins, 1, "{plan}");
        let out = rows(&ctx, &format!("{sql} ORDER BY id")).await;
        let expected = [
            "+----+---+",
            "| id | n |",
            "+----+---+",
            "| 1  | 0 |",
            "| 2  | 1 |",
            "| 3  | 1 |",
            "| 4  | 0 |",
            "| 5  | 3 |",
            "| 5  | 3 |",
            "+----+---+",
        ]
        .join("\n");
        assert_eq!(out, expected);
    }

    #[tokio::test]
    async fn empty_groups_give_null_sum_and_zero_count_in_a_filter() {
        let ctx = session().await;
        let out = rows(
            &ctx,
            "SELECT id, (SELECT sum(x.b) FROM t AS x WHERE x.b < t.b) AS s FROM t \
             WHERE (SELECT count(*) FROM t AS x WHERE x.b < t.b) < 2 ORDER BY id",
        )
        .await;
        let expected = [
            "+----+----+",
            "| id | s  |",
            "+----+----+",
            "| 1  |    |",
            "| 2  | 10 |",
            "| 3  | 10 |",
            "| 4  |    |",
            "+----+----+",
        ]
        .join("\n");
        assert_eq!(out, expected);
    }

    #[tokio::test]
    async fn an_outer_column_above_the_aggregate_reads_the_domain() {
        let ctx = session().await;
        let out = rows(
            &ctx,
            "SELECT id, (SELECT count(*) + t.id FROM t AS x WHERE x.b < t.b) AS n FROM t \
             WHERE id < 3 ORDER BY id",
        )
        .await;
        let expected = [
            "+----+---+",
            "| id | n |",
            "+----+---+",
            "| 1  | 1 |",
            "| 2  | 3 |",
            "+----+---+",
        ]
        .join("\n");
        assert_eq!(out, expected);
    }

    #[tokio::test]
    async fn an_equality_correlation_keeps_datafusion_s_plan() {
        let ctx = session().await;
        let plan = plan(
            &ctx,
            "SELECT id, (SELECT count(*) FROM t AS x WHERE x.b = t.b) FROM t",
        )
        .await;
        assert!(!plan.contains("__scalar_domain"), "{plan}");
        assert!(!plan.contains("ScalarSubquery"), "{plan}");
    }

    #[tokio::test]
    async fn a_subquery_without_an_aggregate_is_left_alone() {
        let ctx = session().await;
        let plan = plan(
            &ctx,
            "SELECT t.id, (SELECT x.b FROM t AS x WHERE x.b < t.b LIMIT 1) AS v FROM t",
        )
        .await;
        assert!(!plan.contains("__scalar_domain"), "{plan}");
        assert!(plan.contains("Subquery"), "{plan}");
        // ... and fails with a clear error instead of DataFusion's.
        let optimized = ctx
            .sql("SELECT t.id, (SELECT x.b FROM t AS x WHERE x.b < t.b LIMIT 1) AS v FROM t")
            .await
            .unwrap()
            .into_optimized_plan()
            .unwrap();
        let err = check_decorrelated(&optimized).unwrap_err().to_string();
        assert!(
            err.contains("a correlated scalar subquery of this shape"),
            "{err}"
        );
        assert!(
            err.contains("hint: give the subquery an aggregate"),
            "{err}"
        );
        let optimized = ctx
            .sql("SELECT id, (SELECT count(*) FROM t AS x WHERE x.b < t.b) FROM t")
            .await
            .unwrap()
            .into_optimized_plan()
            .unwrap();
        assert!(check_decorrelated(&optimized).is_ok());
    }
}

//! BATCH: a decorrelated subquery's aggregate reads only the rows whose
//! group keys the join above it can match, through a semi join on those
//! keys placed under the aggregate.
//!
//! Why: DataFusion decorrelates `l_quantity < (SELECT avg(l_quantity) FROM
//! lineitem WHERE l_partkey = p_partkey)` into an aggregate of *all* of
//! `lineitem` grouped by `l_partkey`, joined afterwards with the few parts
//! the outer query's filters keep (TPC-H q17: 200,000 groups computed, 204
//! used; q2 and q20 alike). DuckDB computes the aggregate only for the keys
//! that survive; this rule gives DataFusion's plan the same shape.
//!
//! The rewrite: for a join whose one input is (through projections,
//! filters and the `__scalar_sq_N` / `__correlated_sq_N` alias that
//! decorrelation adds) an `Aggregate` whose group column `g` is an equi-join
//! key matched with the other input's column `k`, the aggregate's input
//! becomes `input LEFT SEMI JOIN keys ON g = k`, where `keys` is the part of
//! the other input that `k` comes from (down through projections and inner
//! joins to the input that holds the filter).
//!
//! Why it never changes an answer: every row in a group has the same `g`,
//! so the semi join keeps or drops whole groups, and the groups it drops
//! have a `g` no row of the other input has: the join would have dropped
//! them anyway. That holds wherever the aggregate's unmatched rows do not
//! reach the output: an inner join (either input), a semi join with the
//! aggregate on the side that only filters (`LeftSemi` with it on the
//! right, `RightSemi` on the left; how DataFusion decorrelates q17 and
//! q20), an outer join with it on the side that is not preserved. The semi
//! join takes the join's null equality. The keys' subtree is evaluated a second time, so it must be
//! deterministic; it must also filter something (a `Filter`, or a scan with
//! filters), else the semi join would cost a scan and keep every group.
//!
//! BATCH only (applied in [`crate::physical`] after DataFusion's optimizer):
//! STREAMING keeps the plan as written, where a second copy of the keys'
//! input would be a second stateful join.

use std::sync::Arc;

use datafusion::common::Column;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::logical_expr::{
    Aggregate, Expr, Join, JoinConstraint, JoinType, LogicalPlan, Projection,
};

/// The prefix of the key columns of the semi joins this rule adds; a plan
/// with such a semi join under an aggregate is not rewritten again.
const KEY_PREFIX: &str = "__prefilter_key_";

/// Prefilters the decorrelated aggregates under every join of `plan`
/// (bottom up); see the module documentation.
///
/// # Errors
/// DataFusion's, from rebuilding a plan node (not expected: the schemas
/// stay the same).
pub fn prefilter_decorrelated_aggregates(plan: LogicalPlan) -> Result<LogicalPlan> {
    Ok(plan.transform_up(rewrite_join)?.data)
}

/// Which input of a join holds the aggregate.
#[derive(Clone, Copy)]
enum Side {
    Left,
    Right,
}

fn rewrite_join(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Join(join) = &plan else {
        return Ok(Transformed::no(plan));
    };
    if join.null_aware {
        return Ok(Transformed::no(plan));
    }
    // The inputs whose rows that match nothing on the other side never
    // reach the join's output.
    let sides: &[Side] = match join.join_type {
        JoinType::Inner => &[Side::Right, Side::Left],
        JoinType::LeftSemi | JoinType::Left => &[Side::Right],
        JoinType::RightSemi | JoinType::Right => &[Side::Left],
        _ => &[],
    };
    for side in sides {
        if let Some(new_join) = prefilter_side(join, *side)? {
            return Ok(Transformed::yes(new_join));
        }
    }
    Ok(Transformed::no(plan))
}

/// The join with its `side` input's aggregate prefiltered, if the rule
/// applies there.
fn prefilter_side(join: &Join, side: Side) -> Result<Option<LogicalPlan>> {
    let (agg_side, other_side) = match side {
        Side::Right => (&join.right, &join.left),
        Side::Left => (&join.left, &join.right),
    };
    // Equi-join key pairs that are plain columns on both sides.
    let mut agg_cols = vec![];
    let mut other_cols = vec![];
    for (l, r) in &join.on {
        let (a, o) = match side {
            Side::Right => (r, l),
            Side::Left => (l, r),
        };
        if let (Expr::Column(a), Expr::Column(o)) = (a, o) {
            agg_cols.push(Some(a.clone()));
            other_cols.push(o.clone());
        }
    }
    if agg_cols.is_empty() {
        return Ok(None);
    }
    let Some(group_exprs) = trace_to_group_exprs(agg_side, agg_cols, false) else {
        return Ok(None);
    };
    // Only the pairs whose aggregate-side column is a group column.
    let (group_exprs, other_cols): (Vec<Expr>, Vec<Column>) = group_exprs
        .into_iter()
        .zip(other_cols)
        .filter_map(|(g, o)| g.map(|g| (g, o)))
        .unzip();
    if group_exprs.is_empty() {
        return Ok(None);
    }
    let keyed = other_cols.into_iter().enumerate().collect();
    let Some((keys_input, key_cols)) = key_source(other_side, keyed) else {
        return Ok(None);
    };
    if key_cols.is_empty() || !filters_rows(&keys_input)? || has_volatile(&keys_input)? {
        return Ok(None);
    }
    let keys = LogicalPlan::Projection(Projection::try_new(
        key_cols
            .iter()
            .map(|(i, c)| Expr::Column(c.clone()).alias(format!("{KEY_PREFIX}{i}")))
            .collect(),
        Arc::new(keys_input),
    )?);
    let on = key_cols
        .iter()
        .map(|(i, _)| {
            (
                group_exprs[*i].clone(),
                Expr::Column(Column::from_name(format!("{KEY_PREFIX}{i}"))),
            )
        })
        .collect::<Vec<_>>();
    let new_agg_side = rebuild_with_aggregate_input(agg_side, &|input| {
        Ok(LogicalPlan::Join(Join::try_new(
            input,
            Arc::new(keys.clone()),
            on.clone(),
            None,
            JoinType::LeftSemi,
            JoinConstraint::On,
            join.null_equality,
            false,
        )?))
    })?;
    let (left, right) = match side {
        Side::Right => (Arc::clone(&join.left), Arc::new(new_agg_side)),
        Side::Left => (Arc::new(new_agg_side), Arc::clone(&join.right)),
    };
    Ok(Some(LogicalPlan::Join(Join::try_new(
        left,
        right,
        join.on.clone(),
        join.filter.clone(),
        join.join_type,
        join.join_constraint,
        join.null_equality,
        join.null_aware,
    )?)))
}

/// Follows `cols` of `plan` down through projections (of plain columns),
/// filters and subquery aliases to an `Aggregate`, and returns for each
/// column the group expression it is, if it is one. `None` when there is
/// no such aggregate, when the path has no decorrelation alias
/// (`__scalar_sq_N`, `__correlated_sq_N`), when the aggregate has grouping
/// sets or is already prefiltered.
fn trace_to_group_exprs(
    plan: &LogicalPlan,
    cols: Vec<Option<Column>>,
    seen_alias: bool,
) -> Option<Vec<Option<Expr>>> {
    match plan {
        LogicalPlan::SubqueryAlias(alias) => {
            let name = alias.alias.table();
            let decorrelated =
                name.starts_with("__scalar_sq_") || name.starts_with("__correlated_sq_");
            let input_schema = alias.input.schema();
            let cols = cols
                .into_iter()
                .map(|c| {
                    let i = alias.schema.maybe_index_of_column(&c?)?;
                    Some(Column::from(input_schema.qualified_field(i)))
                })
                .collect();
            trace_to_group_exprs(&alias.input, cols, seen_alias || decorrelated)
        }
        LogicalPlan::Projection(projection) => {
            let cols = cols
                .into_iter()
                .map(|c| projected_column(projection, &c?))
                .collect();
            trace_to_group_exprs(&projection.input, cols, seen_alias)
        }
        LogicalPlan::Filter(filter) => trace_to_group_exprs(&filter.input, cols, seen_alias),
        LogicalPlan::Aggregate(aggregate) => {
            if !seen_alias
                || aggregate.group_expr.is_empty()
                || aggregate
                    .group_expr
                    .iter()
                    .any(|g| matches!(g, Expr::GroupingSet(_)) || g.is_volatile())
                || is_prefiltered(&aggregate.input)
            {
                return None;
            }
            Some(
                cols.into_iter()
                    .map(|c| {
                        let i = aggregate.schema.maybe_index_of_column(&c?)?;
                        aggregate.group_expr.get(i).cloned()
                    })
                    .collect(),
            )
        }
        _ => None,
    }
}

/// Whether `input` is already a semi join this rule added.
fn is_prefiltered(input: &LogicalPlan) -> bool {
    matches!(input, LogicalPlan::Join(j) if j.join_type == JoinType::LeftSemi
        && j.right.schema().fields().iter().any(|f| f.name().starts_with(KEY_PREFIX)))
}

/// `plan` (a path [`trace_to_group_exprs`] accepted) with its aggregate's
/// input replaced by `wrap(input)`; every node keeps its schema.
fn rebuild_with_aggregate_input(
    plan: &LogicalPlan,
    wrap: &dyn Fn(Arc<LogicalPlan>) -> Result<LogicalPlan>,
) -> Result<LogicalPlan> {
    match plan {
        LogicalPlan::Aggregate(aggregate) => {
            Ok(LogicalPlan::Aggregate(Aggregate::try_new_with_schema(
                Arc::new(wrap(Arc::clone(&aggregate.input))?),
                aggregate.group_expr.clone(),
                aggregate.aggr_expr.clone(),
                Arc::clone(&aggregate.schema),
            )?))
        }
        _ => {
            let inputs = plan
                .inputs()
                .into_iter()
                .map(|input| rebuild_with_aggregate_input(input, wrap))
                .collect::<Result<Vec<_>>>()?;
            plan.with_new_exprs(plan.expressions(), inputs)
        }
    }
}

/// Key columns, each with its index among the join's key pairs.
type Keys = Vec<(usize, Column)>;

/// The plain column a projection's expression is, if it is one.
fn projected_column(projection: &Projection, c: &Column) -> Option<Column> {
    let i = projection.schema.maybe_index_of_column(c)?;
    match projection.expr.get(i)? {
        Expr::Column(c) => Some(c.clone()),
        Expr::Alias(alias) => match alias.expr.as_ref() {
            Expr::Column(c) => Some(c.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// A small part of `plan` whose rows hold every value of the key columns
/// that `plan` outputs, and the key columns there (some keys may be left
/// out: a semi join on fewer keys filters less, never wrongly). It goes down
/// through projections of plain columns and subquery aliases; at an inner
/// join into the input that has all the keys, if that input filters; at an
/// inner or semi join whose keys' input filters nothing, across the join's
/// own equi keys into the other input, if it filters (TPC-H q20: the
/// `ps_partkey` of `partsupp ⋉ part` are among the filtered parts'
/// `p_partkey`). `None` when only an inner join without a filtering input
/// would be left: a semi join would repeat the whole join.
fn key_source(plan: &LogicalPlan, keys: Keys) -> Option<(LogicalPlan, Keys)> {
    let filters = |p: &LogicalPlan| filters_rows(p).unwrap_or(false);
    let mapped: Option<(&LogicalPlan, Keys)> = match plan {
        LogicalPlan::Projection(projection) => keys
            .iter()
            .map(|(i, c)| Some((*i, projected_column(projection, c)?)))
            .collect::<Option<Vec<_>>>()
            .map(|keys| (projection.input.as_ref(), keys)),
        LogicalPlan::SubqueryAlias(alias) => keys
            .iter()
            .map(|(i, c)| {
                let at = alias.schema.maybe_index_of_column(c)?;
                Some((*i, Column::from(alias.input.schema().qualified_field(at))))
            })
            .collect::<Option<Vec<_>>>()
            .map(|keys| (alias.input.as_ref(), keys)),
        LogicalPlan::Join(join) => {
            let in_left = keys.iter().all(|(_, c)| join.left.schema().has_column(c));
            let in_right = keys.iter().all(|(_, c)| join.right.schema().has_column(c));
            let (own, other, own_is_left) = match (join.join_type, in_left, in_right) {
                (JoinType::Inner | JoinType::LeftSemi, true, false) => {
                    (&join.left, &join.right, true)
                }
                (JoinType::Inner | JoinType::RightSemi, false, true) => {
                    (&join.right, &join.left, false)
                }
                _ => return None,
            };
            if join.join_type == JoinType::Inner && filters(own) {
                Some((own.as_ref(), keys.clone()))
            } else {
                // Across the join's equi keys: a key equal to a plain column
                // of the other input takes that column's values.
                let across: Keys = keys
                    .iter()
                    .filter_map(|(i, c)| {
                        join.on.iter().find_map(|(l, r)| {
                            let (mine, theirs) = if own_is_left { (l, r) } else { (r, l) };
                            match (mine, theirs) {
                                (Expr::Column(m), Expr::Column(t)) if m == c => {
                                    Some((*i, t.clone()))
                                }
                                _ => None,
                            }
                        })
                    })
                    .collect();
                if !across.is_empty() && filters(other) {
                    Some((other.as_ref(), across))
                } else if join.join_type == JoinType::Inner {
                    return None;
                } else {
                    // The semi join itself filters its keys' input.
                    None
                }
            }
        }
        _ => None,
    };
    match mapped {
        // Down only into an input that filters: the filter is what the semi
        // join is for.
        Some((input, input_keys)) if filters(input) => key_source(input, input_keys),
        _ => Some((plan.clone(), keys)),
    }
}

/// Whether `plan` has a `Filter`, or a scan with filters, anywhere.
fn filters_rows(plan: &LogicalPlan) -> Result<bool> {
    plan.exists(|node| {
        Ok(match node {
            LogicalPlan::Filter(_) => true,
            LogicalPlan::TableScan(scan) => !scan.filters.is_empty(),
            _ => false,
        })
    })
}

/// Whether any expression of `plan` is volatile (`random()`, ...): such a
/// subtree gives other rows when evaluated a second time.
fn has_volatile(plan: &LogicalPlan) -> Result<bool> {
    let mut volatile = false;
    plan.apply(|node| {
        if node.expressions().iter().any(Expr::is_volatile) {
            volatile = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(volatile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::SessionContext;

    /// A context with part(p, brand) and item(p, q, price): 3 parts, one of
    /// them of brand 'a', and items of every part (one with a NULL part).
    async fn context() -> SessionContext {
        let ctx = SessionContext::new();
        for sql in [
            "CREATE TABLE part (p INT, brand VARCHAR) AS VALUES (1, 'a'), (2, 'b'), (3, 'b'), (NULL, 'a')",
            "CREATE TABLE item (p INT, q INT, price INT) AS VALUES \
             (1, 1, 10), (1, 5, 20), (1, 9, 30), (2, 1, 40), (2, 2, 50), (3, 7, 60), (NULL, 1, 70)",
        ] {
            ctx.sql(sql).await.unwrap().collect().await.unwrap();
        }
        ctx
    }

    /// The optimized plan of `sql`, before and after the rule, and the
    /// sorted rows of both (which must be equal).
    async fn plans(sql: &str) -> (String, String) {
        let ctx = context().await;
        let before = ctx.sql(sql).await.unwrap().into_optimized_plan().unwrap();
        let after = prefilter_decorrelated_aggregates(before.clone()).unwrap();
        let mut answers = vec![];
        for plan in [&before, &after] {
            let batches = ctx
                .execute_logical_plan(plan.clone())
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            let text = pretty_format_batches(&batches).unwrap().to_string();
            let mut lines: Vec<_> = text.lines().map(str::to_string).collect();
            lines.sort();
            answers.push(lines);
        }
        assert_eq!(answers[0], answers[1], "answers differ for {sql}");
        assert_eq!(before.schema(), after.schema());
        (
            before.display_indent().to_string(),
            after.display_indent().to_string(),
        )
    }

    /// Asserts that the rule leaves the plan of `sql` as it is.
    async fn unchanged(sql: &str) {
        let (before, after) = plans(sql).await;
        assert_eq!(before, after);
    }

    /// Asserts that the rule adds a semi join to the plan of `sql`, and
    /// returns the new plan.
    async fn prefiltered(sql: &str) -> String {
        let (_, after) = plans(sql).await;
        assert!(after.contains("__prefilter_key_0"), "{after}");
        after
    }

    const Q17: &str = "SELECT sum(price) FROM item, part WHERE part.p = item.p AND brand = 'a' \
         AND q < (SELECT 0.5 * avg(q) FROM item i2 WHERE i2.p = part.p)";

    #[tokio::test]
    async fn the_aggregate_of_a_scalar_subquery_reads_only_the_filtered_keys() {
        let (before, after) = plans(Q17).await;
        assert!(!before.contains(KEY_PREFIX), "{before}");
        // The semi join is under the aggregate, against the filtered parts.
        let agg = after.find("Aggregate: groupBy=[[i2.p]]").unwrap();
        let semi = after[agg..]
            .find("LeftSemi Join: i2.p = __prefilter_key_0")
            .unwrap();
        assert!(
            after[agg + semi..].contains("Filter: part.brand"),
            "{after}"
        );
    }

    #[tokio::test]
    async fn it_applies_once() {
        let ctx = context().await;
        let plan = ctx.sql(Q17).await.unwrap().into_optimized_plan().unwrap();
        let once = prefilter_decorrelated_aggregates(plan).unwrap();
        let twice = prefilter_decorrelated_aggregates(once.clone()).unwrap();
        assert_eq!(once, twice);
    }

    #[tokio::test]
    async fn without_an_outer_filter_nothing_changes() {
        unchanged(
            "SELECT sum(price) FROM item, part WHERE part.p = item.p \
             AND q < (SELECT 0.5 * avg(q) FROM item i2 WHERE i2.p = part.p)",
        )
        .await;
    }

    #[tokio::test]
    async fn an_in_subquery_with_a_having_is_prefiltered_and_keeps_its_answer() {
        prefiltered(
            "SELECT brand FROM part WHERE brand = 'a' AND p IN \
             (SELECT p FROM item GROUP BY p HAVING sum(q) > 10)",
        )
        .await;
    }

    #[tokio::test]
    async fn a_scalar_subquery_in_the_select_list_keeps_its_answer() {
        // A left join with the aggregate on the side that is not preserved.
        prefiltered(
            "SELECT p, (SELECT max(q) FROM item WHERE item.p = part.p) FROM part \
             WHERE brand = 'b'",
        )
        .await;
    }

    #[tokio::test]
    async fn the_keys_come_across_an_in_subquery_from_its_filtered_input() {
        // TPC-H q20's shape: the outer rows are filtered by a semi join, and
        // the keys are taken from the semi join's filtered input.
        let (_, after) = plans(
            "SELECT count(*) FROM item i1 WHERE i1.p IN (SELECT p FROM part WHERE brand = 'b') \
             AND i1.q > (SELECT avg(q) FROM item i2 WHERE i2.p = i1.p)",
        )
        .await;
        let semi = after
            .find("LeftSemi Join: i2.p = __prefilter_key_0")
            .unwrap();
        let keys = &after[semi..];
        assert!(keys.contains("Filter: part.brand"), "{after}");
    }

    #[tokio::test]
    async fn a_join_on_the_aggregate_value_too_uses_only_the_group_key() {
        // TPC-H q2's shape: the subquery's value is an equi-join key as
        // well; only the group column takes the prefilter.
        let after = prefiltered(
            "SELECT part.p, price FROM part, item WHERE part.p = item.p AND brand = 'a' \
             AND item.q = (SELECT min(q) FROM item i2 WHERE i2.p = part.p)",
        )
        .await;
        assert!(!after.contains("__prefilter_key_1"), "{after}");
    }

    #[tokio::test]
    async fn a_volatile_filter_on_the_keys_side_is_not_evaluated_twice() {
        unchanged(
            "SELECT count(*) FROM item, part WHERE part.p = item.p AND random() < 2.0 \
             AND q < (SELECT 0.5 * avg(q) FROM item i2 WHERE i2.p = part.p)",
        )
        .await;
    }

    #[tokio::test]
    async fn a_plain_aggregate_in_from_is_left_alone() {
        unchanged(
            "SELECT part.p, s FROM part JOIN (SELECT p, sum(q) AS s FROM item GROUP BY p) t \
             ON t.p = part.p WHERE brand = 'a'",
        )
        .await;
    }
}

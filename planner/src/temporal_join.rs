//! Event-time temporal joins (Flink's "Event Time Temporal Join"):
//!
//! ```sql
//! SELECT o.id, o.ts, r.rate
//! FROM orders AS o
//! [LEFT] JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r
//!   ON o.currency = r.currency
//! ```
//!
//! Semantics (<https://nightlies.apache.org/flink/flink-docs-stable/docs/dev/table/sql/queries/joins/#event-time-temporal-join>):
//! `rates` is a *versioned table*: it declares a `PRIMARY KEY (...) NOT
//! ENFORCED` and an event-time column (`WATERMARK FOR ts AS ...`); each of
//! its rows is a version of its key, valid from its event time up to (not
//! including) the event time of the key's next version. Each row `o` of the
//! left (probe) input meets the one version of the key it names that is
//! valid at `o.ts`: the key's latest version at or before `o.ts`. An INNER
//! join drops `o` when there is none (or the rest of `ON` rejects it); a LEFT
//! join pads the right columns with NULLs.
//!
//! Requirements, checked at plan time with an error saying how to fix them:
//! the versioned table has a PRIMARY KEY and a watermark; `ON` equates every
//! primary-key column with an expression of the left input; the `AS OF`
//! column is an event-time column (with a watermark) of the left input; the
//! join is INNER or LEFT.
//!
//! Planning:
//! 1. The parser reads `FOR SYSTEM_TIME AS OF` with
//!    [`crate::dialect::VersioningDialect`]; [`TemporalTablePlanner`]
//!    (DataFusion's `RelationPlanner` hook) plans the table under a
//!    [`VersionedTableNode`] that remembers the `AS OF` column, the key and
//!    the version time. DataFusion's own planner would silently ignore the
//!    clause and plan a regular join.
//! 2. [`lower_temporal_joins`], before the optimizer, turns each join whose
//!    right input is a [`VersionedTableNode`] into
//!    - BATCH: standard operators: a running `MAX` of the version time over
//!      the left rows and the versions sorted by key and time finds each
//!      left row's version time, then an equi-join on key and version time
//!      (see [`lower_temporal_joins`]'s `batch_rewrite`);
//!    - STREAMING: a [`TemporalJoinNode`], which the streaming planner lowers
//!      to the engine's temporal join operator.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::tree_node::TreeNode;
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{Column, DFSchemaRef, JoinType, ScalarValue, TableReference};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::functions_aggregate::min_max::max_udaf;
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::expr_fn::ExprFunctionExt;
use datafusion::logical_expr::planner::{
    PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    BinaryExpr, Expr, ExprSchemable, Extension, LogicalPlan, LogicalPlanBuilder, Operator,
    SubqueryAlias, UserDefinedLogicalNodeCore, col, lit,
};
use sqlparser::ast::{Expr as SqlExpr, TableFactor, TableVersion};

use crate::mode::RuntimeMode;
use crate::watermark::WATERMARK_DELAY_MS;

/// The column the BATCH rewrite adds to the left rows: the version time of
/// the version valid at the row's time (NULL: none), dropped after the join.
pub const VALID_FROM: &str = "__tributary_valid_from";

/// A versioned table named in `FOR SYSTEM_TIME AS OF`: its scan, unchanged
/// (same schema), plus what the temporal join needs to know. Only valid as
/// the right input of a join, which [`lower_temporal_joins`] replaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct VersionedTableNode {
    /// The table's scan.
    pub input: LogicalPlan,
    /// The table's name, for messages.
    pub table: String,
    /// The `AS OF` column, a column of the join's left input (`o.ts`).
    pub as_of: Column,
    /// The primary-key column names.
    pub primary_key: Vec<String>,
    /// The event-time (version time) column name.
    pub time_column: String,
}

impl UserDefinedLogicalNodeCore for VersionedTableNode {
    fn name(&self) -> &str {
        "VersionedTable"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "VersionedTable: {} FOR SYSTEM_TIME AS OF {}, key=[{}], version time={}",
            self.table,
            self.as_of,
            self.primary_key.join(", "),
            self.time_column
        )
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> DFResult<Self> {
        let input = one_input(inputs, "VersionedTable")?;
        Ok(Self {
            input,
            ..self.clone()
        })
    }
}

fn one_input(inputs: Vec<LogicalPlan>, node: &str) -> DFResult<LogicalPlan> {
    let mut inputs = inputs.into_iter();
    match (inputs.next(), inputs.next()) {
        (Some(input), None) => Ok(input),
        _ => Err(DataFusionError::Internal(format!("{node} takes one input"))),
    }
}

/// An event-time temporal join, as the STREAMING planner receives it.
///
/// Output schema: DataFusion's join schema, the left columns then the right
/// ones (nullable for LEFT).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TemporalJoinNode {
    /// The probe side.
    pub left: LogicalPlan,
    /// The versioned table (its scan, possibly under an alias).
    pub right: LogicalPlan,
    /// INNER or LEFT.
    pub join_type: JoinType,
    /// `left expression = right primary-key column`, one per key column.
    pub on: Vec<(Expr, Expr)>,
    /// The rest of `ON`, over the left then the right columns: applied to the
    /// version found (LEFT pads when it rejects it).
    pub filter: Option<Expr>,
    /// The `AS OF` column of the left input.
    pub left_time: Column,
    /// The version-time column of the right input.
    pub right_time: Column,
    schema: DFSchemaRef,
}

impl PartialOrd for TemporalJoinNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.left.partial_cmp(&other.left) {
            Some(Ordering::Equal) => match self.right.partial_cmp(&other.right) {
                Some(Ordering::Equal) => match self.on.partial_cmp(&other.on) {
                    Some(Ordering::Equal) => self.filter.partial_cmp(&other.filter),
                    o => o,
                },
                o => o,
            },
            o => o,
        }
    }
}

impl UserDefinedLogicalNodeCore for TemporalJoinNode {
    fn name(&self) -> &str {
        "TemporalJoin"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.left, &self.right]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        let mut exprs: Vec<Expr> = self
            .on
            .iter()
            .flat_map(|(l, r)| [l.clone(), r.clone()])
            .collect();
        exprs.push(Expr::Column(self.left_time.clone()));
        exprs.push(Expr::Column(self.right_time.clone()));
        exprs.extend(self.filter.clone());
        exprs
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let on: Vec<String> = self.on.iter().map(|(l, r)| format!("{l} = {r}")).collect();
        write!(
            f,
            "TemporalJoin: type={}, on=[{}], {} AS OF {}",
            self.join_type,
            on.join(", "),
            self.right_time,
            self.left_time
        )?;
        if let Some(filter) = &self.filter {
            write!(f, ", filter={filter}")?;
        }
        Ok(())
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> DFResult<Self> {
        let [left, right]: [LogicalPlan; 2] = inputs
            .try_into()
            .map_err(|_| DataFusionError::Internal("TemporalJoin takes two inputs".into()))?;
        let n = self.on.len();
        // The analyzer's coercions come aliased to the old names: not needed here.
        let exprs: Vec<Expr> = exprs.into_iter().map(Expr::unalias).collect();
        if exprs.len() != 2 * n + 2 + usize::from(self.filter.is_some()) {
            return Err(DataFusionError::Internal(
                "TemporalJoin: wrong number of expressions".into(),
            ));
        }
        let on = exprs[..2 * n]
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect();
        let column = |e: &Expr, old: &Column| match e {
            Expr::Column(c) => c.clone(),
            _ => old.clone(),
        };
        Ok(Self {
            left,
            right,
            join_type: self.join_type,
            on,
            filter: exprs.get(2 * n + 2).cloned(),
            left_time: column(&exprs[2 * n], &self.left_time),
            right_time: column(&exprs[2 * n + 1], &self.right_time),
            schema: self.schema.clone(),
        })
    }
}

/// Plans `t FOR SYSTEM_TIME AS OF o.ts` (DataFusion's `RelationPlanner`
/// hook) as the table under a [`VersionedTableNode`].
///
/// # Errors
/// Another table version clause (`TIMESTAMP AS OF`, `VERSION AS OF`, `AT`,
/// ...); an `AS OF` that is not a column; a table without a PRIMARY KEY or
/// without a watermark.
#[derive(Debug, Default)]
pub struct TemporalTablePlanner;

impl RelationPlanner for TemporalTablePlanner {
    fn plan_relation(
        &self,
        mut relation: TableFactor,
        context: &mut dyn RelationPlannerContext,
    ) -> DFResult<RelationPlanning> {
        let TableFactor::Table {
            name,
            alias,
            version,
            args: None,
            ..
        } = &mut relation
        else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let Some(version) = version.take() else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let alias = alias.take();
        let name = name.clone();
        let as_of = match version {
            TableVersion::ForSystemTimeAsOf(expr) => expr,
            other => {
                return Err(DataFusionError::Plan(format!(
                    "table '{name}': '{other}' is not supported; the only table version clause is \
                     FOR SYSTEM_TIME AS OF <time column of the left input> (an event-time temporal join)"
                )));
            }
        };
        let as_of = match &as_of {
            SqlExpr::Identifier(c) => Column::new_unqualified(context.normalize_ident(c.clone())),
            SqlExpr::CompoundIdentifier(parts) if parts.len() == 2 => Column::new(
                Some(TableReference::bare(
                    context.normalize_ident(parts[0].clone()),
                )),
                context.normalize_ident(parts[1].clone()),
            ),
            other => {
                return Err(DataFusionError::Plan(format!(
                    "FOR SYSTEM_TIME AS OF {other}: the temporal join takes the event-time column \
                     of the join's left input, e.g. FOR SYSTEM_TIME AS OF o.ts"
                )));
            }
        };
        let table_ref = context.object_name_to_table_reference(name.clone())?;
        let source = context
            .context_provider()
            .get_table_source(table_ref.clone())?;
        let schema = source.schema();
        let primary_key: Vec<String> = source
            .constraints()
            .into_iter()
            .flat_map(|c| c.iter())
            .find_map(|c| match c {
                datafusion::common::Constraint::PrimaryKey(indices) => Some(
                    indices
                        .iter()
                        .filter_map(|i| schema.fields().get(*i).map(|f| f.name().clone()))
                        .collect(),
                ),
                _ => None,
            })
            .unwrap_or_default();
        if primary_key.is_empty() {
            return Err(DataFusionError::Plan(format!(
                "temporal join: the versioned table '{table_ref}' has no PRIMARY KEY, so FOR SYSTEM_TIME AS OF \
                 cannot tell which rows are versions of the same thing; declare one in its CREATE TABLE, \
                 e.g. PRIMARY KEY (currency) NOT ENFORCED"
            )));
        }
        let Some(time_column) = schema
            .fields()
            .iter()
            .find(|f| f.metadata().contains_key(WATERMARK_DELAY_MS))
            .map(|f| f.name().clone())
        else {
            return Err(DataFusionError::Plan(format!(
                "temporal join: the versioned table '{table_ref}' has no event-time column, so its versions \
                 have no time; declare one with a watermark in its CREATE TABLE, \
                 e.g. WATERMARK FOR ts AS ts - INTERVAL '5' SECOND"
            )));
        };
        let input = context.plan(relation)?;
        let node = VersionedTableNode {
            input,
            table: table_ref.to_string(),
            as_of,
            primary_key,
            time_column,
        };
        let plan = LogicalPlan::Extension(Extension {
            node: Arc::new(node),
        });
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
            plan, alias,
        ))))
    }
}

/// The versioned table under `plan` (through aliases), and `plan` without
/// the [`VersionedTableNode`].
fn versioned(plan: &LogicalPlan) -> Option<(VersionedTableNode, LogicalPlan)> {
    match plan {
        LogicalPlan::Extension(e) => {
            let node = e.node.as_any().downcast_ref::<VersionedTableNode>()?;
            Some((node.clone(), node.input.clone()))
        }
        LogicalPlan::SubqueryAlias(a) => {
            let (node, input) = versioned(&a.input)?;
            let plan = SubqueryAlias::try_new(Arc::new(input), a.alias.clone()).ok()?;
            Some((node, LogicalPlan::SubqueryAlias(plan)))
        }
        _ => None,
    }
}

fn is_versioned_table(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Extension(e)
        if e.node.as_any().downcast_ref::<VersionedTableNode>().is_some())
}

/// Replaces every temporal join of `plan` (unoptimized) by its plan in
/// `mode`: standard operators in BATCH, a [`TemporalJoinNode`] in STREAMING
/// (see the module doc).
///
/// # Errors
/// `FOR SYSTEM_TIME AS OF` elsewhere than on the right input of a join; a
/// join that is not INNER or LEFT, whose `ON` does not equate the primary
/// key, or whose `AS OF` column is not an event-time column of the left
/// input.
pub fn lower_temporal_joins(plan: &LogicalPlan, mode: RuntimeMode) -> DFResult<LogicalPlan> {
    let mut found = false;
    plan.apply_with_subqueries(|p| {
        found |= is_versioned_table(p);
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    if !found {
        return Ok(plan.clone());
    }
    let lowered = plan
        .clone()
        .transform_up_with_subqueries(|p| {
            let LogicalPlan::Join(join) = &p else {
                return Ok(Transformed::no(p));
            };
            let Some((node, right)) = versioned(&join.right) else {
                return Ok(Transformed::no(p));
            };
            let temporal = analyze(join, &node, right)?;
            Ok(Transformed::yes(match mode {
                RuntimeMode::Streaming => LogicalPlan::Extension(Extension {
                    node: Arc::new(temporal),
                }),
                _ => batch_rewrite(temporal)?,
            }))
        })?
        .data;
    let mut stray = None;
    lowered.apply_with_subqueries(|p| {
        if let LogicalPlan::Extension(e) = p
            && let Some(node) = e.node.as_any().downcast_ref::<VersionedTableNode>()
        {
            stray = Some(node.table.clone());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if let Some(table) = stray {
        return Err(DataFusionError::Plan(format!(
            "FOR SYSTEM_TIME AS OF on '{table}' is only supported on the right side of a JOIN \
             (an event-time temporal join: ... FROM o JOIN {table} FOR SYSTEM_TIME AS OF o.ts ON ...)"
        )));
    }
    Ok(lowered)
}

/// Checks the join and splits its `ON` into the key equalities and the rest.
fn analyze(
    join: &datafusion::logical_expr::Join,
    node: &VersionedTableNode,
    right: LogicalPlan,
) -> DFResult<TemporalJoinNode> {
    let table = &node.table;
    if !matches!(join.join_type, JoinType::Inner | JoinType::Left) {
        return Err(DataFusionError::Plan(format!(
            "temporal join with '{table}': a {} JOIN is not supported; an event-time temporal join is \
             an INNER or a LEFT JOIN",
            join.join_type
        )));
    }
    let (ls, rs) = (join.left.schema(), right.schema());
    // The AS OF column: an event-time column of the left input.
    let (qualifier, field) = ls.qualified_field_from_column(&node.as_of).map_err(|_| {
        DataFusionError::Plan(format!(
            "FOR SYSTEM_TIME AS OF {}: no such column in the join's left input; name the left input's \
             event-time column, e.g. FOR SYSTEM_TIME AS OF o.ts",
            node.as_of
        ))
    })?;
    if !matches!(field.data_type(), DataType::Timestamp(..)) {
        return Err(DataFusionError::Plan(format!(
            "FOR SYSTEM_TIME AS OF {}: the column must be a TIMESTAMP, but it is {}",
            node.as_of,
            crate::sql_type(field.data_type())
        )));
    }
    if !field.metadata().contains_key(WATERMARK_DELAY_MS)
        || !crate::time_join::rowtime_safe(&join.left)
    {
        return Err(DataFusionError::Plan(format!(
            "FOR SYSTEM_TIME AS OF {}: '{}' is not an event-time column of the join's left input; \
             declare a watermark on it (WATERMARK FOR {} AS {} - INTERVAL '5' SECOND) and read it \
             through projections and filters only",
            node.as_of,
            field.name(),
            field.name(),
            field.name()
        )));
    }
    let left_time = Column::new(qualifier.cloned(), field.name());
    let right_column = |name: &str| -> DFResult<Column> {
        let (q, f) = rs.qualified_field_with_unqualified_name(name)?;
        Ok(Column::new(q.cloned(), f.name()))
    };
    let right_time = right_column(&node.time_column)?;
    let keys: Vec<Column> = node
        .primary_key
        .iter()
        .map(|k| right_column(k))
        .collect::<DFResult<_>>()?;

    let mut conjuncts: Vec<Expr> = join
        .on
        .iter()
        .map(|(l, r)| l.clone().eq(r.clone()))
        .collect();
    if let Some(f) = &join.filter {
        conjuncts.extend(split_conjunction(f).into_iter().cloned());
    }
    let from_left = |e: &Expr| {
        let refs = e.column_refs();
        !refs.is_empty() && refs.iter().all(|c| ls.has_column(c) && !rs.has_column(c))
    };
    let mut on: Vec<(Expr, Expr)> = vec![];
    let mut rest: Vec<Expr> = vec![];
    for c in conjuncts {
        if let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) = &c
        {
            let pair = match (left.as_ref(), right.as_ref()) {
                (l, Expr::Column(r)) if keys.contains(r) && from_left(l) => Some((l, r)),
                (Expr::Column(r), l) if keys.contains(r) && from_left(l) => Some((l, r)),
                _ => None,
            };
            if let Some((l, r)) = pair
                && !on.iter().any(|(_, k)| k == &Expr::Column(r.clone()))
            {
                on.push((l.clone(), Expr::Column(r.clone())));
                continue;
            }
        }
        rest.push(c);
    }
    let missing: Vec<&str> = keys
        .iter()
        .filter(|k| !on.iter().any(|(_, r)| r == &Expr::Column((*k).clone())))
        .map(|k| k.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(DataFusionError::Plan(format!(
            "temporal join with '{table}': ON must equate every column of its PRIMARY KEY ({}) with the \
             left input, e.g. ON o.{k} = {q}.{k}; missing: {}",
            node.primary_key.join(", "),
            missing.join(", "),
            k = missing[0],
            q = keys[0]
                .relation
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_else(|| table.clone()),
        )));
    }
    // Key order follows the primary key.
    on.sort_by_key(|(_, r)| {
        keys.iter()
            .position(|k| r == &Expr::Column(k.clone()))
            .unwrap_or(usize::MAX)
    });
    Ok(TemporalJoinNode {
        left: join.left.as_ref().clone(),
        right,
        join_type: join.join_type,
        on,
        filter: rest.into_iter().reduce(Expr::and),
        left_time,
        right_time,
        schema: join.schema.clone(),
    })
}

/// BATCH: the join in standard operators. Output: the join's schema.
///
/// A join on the key and `r.ts <= o.ts < next r.ts` alone would compare
/// every left row with every version of its key (a hash join on a key with
/// few values, such as an airport, and a filter over all pairs). Instead the
/// version each left row meets is found by one sort:
///
/// 1. the left rows (their columns, the key, `o.ts`) and the versions (the
///    key, `r.ts`) are put in one relation, the versions marked;
/// 2. `MAX(version time) OVER (PARTITION BY key ORDER BY time, is_version
///    DESC)` gives each left row the latest version time at or before its
///    own (a version at the same instant sorts first: it is valid from it);
/// 3. the left rows join the versioned table on the key and that version
///    time, an equi-join on a unique key, INNER or LEFT, with the rest of
///    `ON` as its filter.
fn batch_rewrite(t: TemporalJoinNode) -> DFResult<LogicalPlan> {
    const TIME: &str = "__tributary_time";
    const IS_VERSION: &str = "__tributary_is_version";
    const VERSION: &str = "__tributary_version";
    let key = |i: usize| format!("__tributary_key{i}");
    let left_col = |i: usize| format!("__tributary_l{i}");
    let (ls, rs) = (t.left.schema().clone(), t.right.schema().clone());
    let (o_ts, r_ts) = (Expr::Column(t.left_time), Expr::Column(t.right_time));
    let time_type = r_ts.get_type(&rs)?;
    let key_types: Vec<DataType> =
        t.on.iter()
            .map(|(_, r)| r.get_type(&rs))
            .collect::<DFResult<_>>()?;

    // 1. Left rows and versions in one relation.
    let mut probe: Vec<Expr> = ls
        .columns()
        .into_iter()
        .enumerate()
        .map(|(i, c)| Expr::Column(c).alias(left_col(i)))
        .collect();
    let mut versions: Vec<Expr> = ls
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Ok(lit(ScalarValue::try_from(f.data_type())?).alias(left_col(i))))
        .collect::<DFResult<_>>()?;
    for (i, (l, r)) in t.on.iter().enumerate() {
        probe.push(l.clone().cast_to(&key_types[i], &ls)?.alias(key(i)));
        versions.push(r.clone().alias(key(i)));
    }
    probe.push(o_ts.cast_to(&time_type, &ls)?.alias(TIME));
    versions.push(r_ts.clone().alias(TIME));
    probe.push(lit(ScalarValue::try_from(&time_type)?).alias(VERSION));
    versions.push(r_ts.clone().alias(VERSION));
    probe.push(lit(false).alias(IS_VERSION));
    versions.push(lit(true).alias(IS_VERSION));
    let probe = LogicalPlanBuilder::from(t.left).project(probe)?.build()?;
    let versions = LogicalPlanBuilder::from(t.right.clone())
        .filter(r_ts.clone().is_not_null())?
        .project(versions)?
        .build()?;

    // 2. The version time valid at each left row's time.
    let keys: Vec<Expr> = (0..t.on.len()).map(|i| col(key(i))).collect();
    let valid_from = Expr::from(WindowFunction::new(max_udaf(), vec![col(VERSION)]))
        .partition_by(keys.clone())
        .order_by(vec![
            col(TIME).sort(true, true),
            col(IS_VERSION).sort(false, false),
        ])
        .build()?
        .alias(VALID_FROM);
    let probe = LogicalPlanBuilder::from(probe)
        .union(versions)?
        .window(vec![valid_from])?
        .filter(Expr::Not(Box::new(col(IS_VERSION))))?
        .build()?;

    // 3. Join the versions on key and version time.
    let left_columns: Vec<Column> = ls.columns();
    let rename = |e: Expr| -> DFResult<Expr> {
        e.transform(|e| match &e {
            Expr::Column(c) => match left_columns.iter().position(|l| l == c) {
                Some(i) => Ok(Transformed::yes(col(left_col(i)))),
                None => Ok(Transformed::no(e)),
            },
            _ => Ok(Transformed::no(e)),
        })
        .map(|t| t.data)
    };
    let mut on: Vec<Expr> = keys
        .into_iter()
        .zip(t.on.iter())
        .map(|(k, (_, r))| k.eq(r.clone()))
        .collect();
    on.push(col(VALID_FROM).eq(r_ts));
    if let Some(filter) = t.filter {
        on.push(rename(filter)?);
    }
    let joined = LogicalPlanBuilder::from(probe)
        .join_on(t.right, t.join_type, on)?
        .build()?;
    let mut output: Vec<Expr> = ls
        .iter()
        .enumerate()
        .map(|(i, (q, f))| col(left_col(i)).alias_qualified(q.cloned(), f.name()))
        .collect();
    output.extend(rs.columns().into_iter().map(Expr::Column));
    LogicalPlanBuilder::from(joined).project(output)?.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema, TimeUnit};
    use datafusion::logical_expr::logical_plan::table_scan;
    use std::collections::HashMap;

    /// (k STRING, v BIGINT, ts TIMESTAMP(3) with a watermark).
    fn scan(name: &str) -> LogicalPlan {
        let ts =
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true).with_metadata(
                HashMap::from([(WATERMARK_DELAY_MS.to_string(), "1000".to_string())]),
            );
        let schema = Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
            ts,
        ]);
        table_scan(Some(name), &schema, None)
            .unwrap()
            .build()
            .unwrap()
    }

    fn temporal(join_type: JoinType, on: Vec<Expr>) -> LogicalPlan {
        let versioned = LogicalPlan::Extension(Extension {
            node: Arc::new(VersionedTableNode {
                input: scan("r"),
                table: "r".into(),
                as_of: Column::from_qualified_name("o.ts"),
                primary_key: vec!["k".into()],
                time_column: "ts".into(),
            }),
        });
        LogicalPlanBuilder::from(scan("o"))
            .join_on(versioned, join_type, on)
            .unwrap()
            .build()
            .unwrap()
    }

    fn key_equality() -> Vec<Expr> {
        vec![
            col(Column::from_qualified_name("o.k")).eq(col(Column::from_qualified_name("r.k"))),
            col(Column::from_qualified_name("r.v")).gt(lit(1i64)),
        ]
    }

    #[test]
    fn batch_uses_standard_operators_with_the_joins_schema() {
        let plan = temporal(JoinType::Left, key_equality());
        let lowered = lower_temporal_joins(&plan, RuntimeMode::Batch).unwrap();
        assert_eq!(lowered.schema().as_arrow(), plan.schema().as_arrow());
        assert_eq!(lowered.schema().columns(), plan.schema().columns());
        let mut extensions = 0;
        lowered
            .apply(|p| {
                extensions += usize::from(matches!(p, LogicalPlan::Extension(_)));
                Ok(TreeNodeRecursion::Continue)
            })
            .unwrap();
        assert_eq!(extensions, 0);
    }

    #[test]
    fn streaming_gets_a_node_with_the_key_and_the_rest_of_on() {
        let plan = temporal(JoinType::Inner, key_equality());
        let lowered = lower_temporal_joins(&plan, RuntimeMode::Streaming).unwrap();
        let LogicalPlan::Extension(e) = &lowered else {
            panic!("{lowered}")
        };
        let node = e.node.as_any().downcast_ref::<TemporalJoinNode>().unwrap();
        assert_eq!(node.on.len(), 1);
        assert_eq!(node.on[0].1.to_string(), "r.k");
        assert_eq!(node.filter.as_ref().unwrap().to_string(), "r.v > Int64(1)");
        assert_eq!(node.left_time.flat_name(), "o.ts");
        assert_eq!(node.right_time.flat_name(), "r.ts");
    }

    #[test]
    fn the_key_must_be_equated_and_the_join_inner_or_left() {
        let plan = temporal(
            JoinType::Inner,
            vec![
                col(Column::from_qualified_name("o.v")).eq(col(Column::from_qualified_name("r.v"))),
            ],
        );
        let err = lower_temporal_joins(&plan, RuntimeMode::Batch).unwrap_err();
        assert!(err.to_string().contains("missing: k"), "{err}");
        let plan = temporal(JoinType::Full, key_equality());
        let err = lower_temporal_joins(&plan, RuntimeMode::Streaming).unwrap_err();
        assert!(err.to_string().contains("INNER or a LEFT JOIN"), "{err}");
    }
}

//! The STREAMING physical planner: lowers an optimized DataFusion logical
//! plan to a tree of incremental operators, and knows for each operator
//! whether its output is append-only or updating (Flink's changelog mode).
//!
//! Supported now: table scans (any source, read as a stream), projection,
//! filter, `UNION ALL`, non-windowed `GROUP BY` aggregation (also `DISTINCT`,
//! `HAVING`, `FILTER (WHERE ...)`, and aggregation over an updating input),
//! window TVFs and their aggregates, regular joins (inner, outer, semi, anti;
//! over append-only or updating inputs; state unbounded or bounded by
//! `table.exec.state.ttl`), interval and window
//! joins (state freed by the watermark; [`crate::time_join`]), and `INSERT INTO`
//! of an append-only result. Anything else is a plan-time error that names
//! the construct and suggests BATCH.
//!
//! Expressions are DataFusion `PhysicalExpr`s and aggregates DataFusion
//! `AggregateFunctionExpr`s, so every scalar function works in both modes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, JoinType, NullEquality, ScalarValue};
use datafusion::datasource::source_as_provider;
use datafusion::execution::SessionState;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::logical_plan::builder::build_join_schema;
use datafusion::logical_expr::type_coercion::binary::comparison_coercion;
use datafusion::logical_expr::{Aggregate, Expr, ExprSchemable, Join, LogicalPlan, WriteOp};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_plan::ExecutionPlan;
#[allow(deprecated)]
use datafusion::physical_planner::create_aggregate_expr_and_maybe_filter;

use crate::changelog::ChangelogMode;
use crate::config::TributaryConfig;
use crate::error::{Error, Result};
use crate::temporal_join::TemporalJoinNode;
use crate::time_join::{JoinTime, TimeBound};
use crate::watermark::watermark_delay_ms;
use crate::window_tvf::{WINDOW_COLUMN, WindowKind, WindowTvfNode};

/// An operator of a streaming plan, with its output schema (without the
/// `op` column) and changelog mode.
#[derive(Debug, Clone)]
pub struct StreamPlan {
    /// What the operator does.
    pub node: StreamNode,
    /// The schema of its rows.
    pub schema: SchemaRef,
    /// Whether its output is append-only or updating.
    pub changelog: ChangelogMode,
}

/// The operators.
#[derive(Debug, Clone)]
pub enum StreamNode {
    /// Reads a table: the partitions of DataFusion's scan of it, each row `+I`.
    /// With an event-time column, each partition emits watermarks: the
    /// largest time it has read minus the declared delay.
    Source {
        table: String,
        scan: Arc<dyn ExecutionPlan>,
        watermark: Option<SourceWatermark>,
    },
    /// A window TVF: each row once per window it falls in, with
    /// `window_start`, `window_end`, `window_time` appended.
    WindowAssign {
        input: Box<StreamPlan>,
        time_index: usize,
        kind: WindowKind,
        offset: i64,
    },
    /// `GROUP BY window_start, window_end, ...` over a window TVF: keeps each
    /// window's accumulators until the watermark passes its end, then emits
    /// its rows once (append-only) and frees the state. Rows for a window
    /// already emitted are late: counted and dropped.
    WindowAggregate {
        input: Box<StreamPlan>,
        group: Vec<Arc<dyn PhysicalExpr>>,
        aggregates: Vec<StreamAggregate>,
        /// Which group expression is `window_start`.
        window_start: usize,
        /// Which group expression is `window_end`.
        window_end: usize,
    },
    /// Keeps the rows (of any kind) for which `predicate` is true.
    Filter {
        input: Box<StreamPlan>,
        predicate: Arc<dyn PhysicalExpr>,
    },
    /// Computes `exprs` over each row, keeping its kind.
    Project {
        input: Box<StreamPlan>,
        exprs: Vec<Arc<dyn PhysicalExpr>>,
    },
    /// Merges its inputs (`UNION ALL`).
    Union { inputs: Vec<StreamPlan> },
    /// Non-windowed `GROUP BY`: keeps one accumulator set per key, consumes
    /// retractions, and emits `+I` / `-U` `+U` / `-D` as a key's result changes.
    /// With `state_ttl_ms` (`table.exec.state.ttl`), a key not written for
    /// that long (processing time) is forgotten: its next row starts again
    /// from `+I`.
    GroupAggregate {
        input: Box<StreamPlan>,
        group: Vec<Arc<dyn PhysicalExpr>>,
        aggregates: Vec<StreamAggregate>,
        /// `table.exec.state.ttl` in ms; None keeps every key forever (also
        /// for a global aggregate, whose one key cannot grow).
        state_ttl_ms: Option<u64>,
    },
    /// `GROUP BY window_start, window_end, <keys>` over a SESSION window TVF
    /// partitioned by `<keys>`: assigns and aggregates at once, merging
    /// sessions as rows arrive; emits a session when the watermark passes its
    /// end (append-only). Late rows are counted and dropped.
    SessionAggregate {
        input: Box<StreamPlan>,
        time_index: usize,
        gap: i64,
        /// The PARTITION BY columns, over the TVF's input.
        keys: Vec<Arc<dyn PhysicalExpr>>,
        /// What each GROUP BY column of the output is.
        outputs: Vec<SessionColumn>,
        aggregates: Vec<StreamAggregate>,
        /// A `WHERE` between the TVF and the GROUP BY: rows it rejects still
        /// shape the sessions (as in BATCH) but are not aggregated; a session
        /// with no row passing it has no result row.
        row_filter: Option<Arc<dyn PhysicalExpr>>,
    },
    /// Top-N: `ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)` kept only
    /// where it is at most `limit` (Flink's `Rank` operator; `limit` 1 is
    /// deduplication). Per partition, the rows in order; each change emits
    /// what it does to the first `limit` ranks, with the rank as the last
    /// column (`-U`/`+U` where a rank's row changes, `+I`/`-D` where a rank
    /// fills or empties). Over an append-only input only the first `limit`
    /// rows of a partition are kept; over an updating input every row is.
    TopN {
        input: Box<StreamPlan>,
        partition_by: Vec<Arc<dyn PhysicalExpr>>,
        order_by: Vec<(Arc<dyn PhysicalExpr>, arrow::compute::SortOptions)>,
        limit: usize,
    },
    /// OVER aggregation ordered by event time (Flink's `OverAggregate`):
    /// rows wait until the watermark passes their time, then leave, in time
    /// order per partition, with the window columns appended (append-only).
    /// Each partition keeps the emitted rows that later frames can reach
    /// (`retention`). Rows at or behind the watermark are late: counted,
    /// dropped.
    OverAggregate {
        input: Box<StreamPlan>,
        /// DataFusion's window expressions over the input's columns.
        window_exprs: Vec<Arc<dyn datafusion::physical_plan::WindowExpr>>,
        /// The PARTITION BY expressions, over the input.
        partition_by: Vec<Arc<dyn PhysicalExpr>>,
        /// The event-time column the windows are ordered by.
        time_index: usize,
        retention: crate::over_window::OverRetention,
    },
    /// A regular (non-windowed) equi-join of two changelogs, Flink's
    /// `StreamingJoinOperator`: each side's current rows are kept per join
    /// key, every change probes the other side, and joined rows (and, for
    /// outer joins, NULL-padded rows) are emitted and retracted as matches
    /// come and go. Both inputs are hash-partitioned by their keys.
    /// Without a TTL state is unbounded: every row of both inputs is kept.
    /// With `state_ttl_ms` (`table.exec.state.ttl`), a row not written for
    /// that long (processing time) is forgotten.
    Join {
        left: Box<StreamPlan>,
        right: Box<StreamPlan>,
        /// Inner, Left, Right, Full, LeftSemi, LeftAnti, RightSemi or RightAnti.
        join_type: JoinType,
        /// The equi-join keys over the left input, pairwise of the same type
        /// as `right_keys`. None (a cross or theta join): every row meets
        /// every row of the other side in one instance (as Flink's global
        /// join), and only `filter` decides.
        left_keys: Vec<Arc<dyn PhysicalExpr>>,
        /// The equi-join keys over the right input.
        right_keys: Vec<Arc<dyn PhysicalExpr>>,
        /// The non-equi part of `ON`, over the left columns followed by the
        /// right columns; a pair matches only if it is true.
        filter: Option<Arc<dyn PhysicalExpr>>,
        /// `IS NOT DISTINCT FROM` keys: NULL keys match each other. Otherwise
        /// (`=`) a row with a NULL key matches nothing.
        null_equals_null: bool,
        /// `NOT IN (subquery)`, a LEFT ANTI join with SQL's NULL semantics: a
        /// NULL anywhere in the subquery empties the result, so it runs on
        /// one instance that sees every right row.
        null_aware: bool,
        /// `table.exec.state.ttl` in ms; None keeps every row forever (also
        /// for `NOT IN`, whose emptiness and NULL tests need every row).
        state_ttl_ms: Option<u64>,
    },
    /// An interval join or a window join of two append-only inputs (Flink's
    /// `IntervalJoin` and `WindowJoin`; see [`crate::time_join`]): like
    /// [`StreamNode::Join`], keyed state on both sides, but each row leaves
    /// the state once the watermark guarantees no row of the other side can
    /// still match it, so state stays bounded by the time bound. The output
    /// is append-only: an interval join emits a match when its second row
    /// arrives and an outer side's NULL-padded row (or an ANTI join's kept
    /// row) when the row leaves the state unmatched; a window join emits a
    /// window's rows when the watermark closes it. Rows behind the watermark
    /// on arrival are late: counted and dropped.
    TimeJoin {
        left: Box<StreamPlan>,
        right: Box<StreamPlan>,
        /// Any of the types [`StreamNode::Join`] takes.
        join_type: JoinType,
        left_keys: Vec<Arc<dyn PhysicalExpr>>,
        right_keys: Vec<Arc<dyn PhysicalExpr>>,
        /// The non-equi part of `ON`, time bounds included, over the left
        /// then the right columns.
        filter: Option<Arc<dyn PhysicalExpr>>,
        null_equals_null: bool,
        /// What frees the state.
        bound: TimeBound,
        /// A range join's ([`TimeBound::Range`]) per-row expiries: TIMESTAMP
        /// expressions over the left / the right input; a row leaves the
        /// state once the watermark reaches the least of its side's (empty
        /// for interval and window joins, whose bound gives the expiry).
        expiries: [Vec<Arc<dyn PhysicalExpr>>; 2],
    },
    /// An event-time temporal join (Flink's `TemporalRowTimeJoinOperator`;
    /// see [`crate::temporal_join`]), INNER or LEFT, of two append-only
    /// inputs hash-partitioned by the key: each left row waits until the
    /// watermark (the minimum of both inputs) passes its time, then meets
    /// the right row of its key with the latest version time at or before
    /// it. State: the waiting left rows, and per key the versions from the
    /// one valid at the watermark onward. Output append-only; rows at or
    /// behind the watermark on arrival are late: counted and dropped.
    TemporalJoin {
        left: Box<StreamPlan>,
        right: Box<StreamPlan>,
        /// Inner or Left.
        join_type: JoinType,
        /// The left expressions equated with the right's primary key.
        left_keys: Vec<Arc<dyn PhysicalExpr>>,
        /// The right's primary-key columns.
        right_keys: Vec<Arc<dyn PhysicalExpr>>,
        /// The rest of `ON`, over the left then the right columns.
        filter: Option<Arc<dyn PhysicalExpr>>,
        /// The `AS OF` column's index in the left input.
        left_time: usize,
        /// The version-time column's index in the right input.
        right_time: usize,
    },
    /// `INSERT INTO table`: appends the (append-only) input to the table
    /// through the table's own sink, or hands every changelog row to a sink
    /// that takes updates (`print`, `blackhole`); emits one row, `count`, at
    /// the end.
    Sink {
        input: Box<StreamPlan>,
        table: String,
        target: Arc<dyn TableProvider>,
    },
    /// A sub-plan that occurs more than once in the query (the same logical
    /// subtree, e.g. Nexmark q5's two identical HOP counts), run once: every
    /// occurrence carries the same `id` and the same `input`, and the runtime
    /// starts `input` at its first occurrence and hands each occurrence a
    /// copy of every output partition (same rows, same watermarks, same
    /// partitioning). Flink's sub-plan reuse
    /// (`table.optimizer.reuse-sub-plan-enabled`, on by default).
    Reused { id: usize, input: Box<StreamPlan> },
}

/// Where a source's event time is and how far watermarks trail it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceWatermark {
    /// The event-time column's index in the scan's output.
    pub column: usize,
    /// The declared delay (`ts - INTERVAL ...`), ms.
    pub delay_ms: i64,
    /// `table.exec.source.idle-timeout` (ms), if set: a partition that sends
    /// no row for this long is marked idle.
    pub idle_timeout_ms: Option<u64>,
}

/// A GROUP BY column of a [`StreamNode::SessionAggregate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionColumn {
    /// The i-th PARTITION BY column.
    Key(usize),
    /// `window_start`.
    Start,
    /// `window_end`.
    End,
    /// `window_time` (`window_end` - 1 ms).
    Time,
}

/// One aggregate of a [`StreamNode::GroupAggregate`].
#[derive(Debug, Clone)]
pub struct StreamAggregate {
    /// DataFusion's aggregate (function, arguments, output field).
    pub expr: Arc<AggregateFunctionExpr>,
    /// `FILTER (WHERE ...)`, if any.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// How its state takes retractions.
    pub retraction: Retraction,
}

/// How an aggregate's state handles a retracted row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retraction {
    /// The accumulator's own `retract_batch` (COUNT, SUM, AVG).
    Accumulator,
    /// A multiset of values, because MIN/MAX cannot undo a value (MIN if true).
    MinMax { min: bool },
    /// `COUNT(DISTINCT x)`: a multiset of the values, counted by key.
    DistinctCount,
    /// The input is append-only: nothing is ever retracted.
    NotNeeded,
}

/// Aggregate functions whose DataFusion sliding accumulator retracts rows in
/// any order.
const RETRACTABLE: &[&str] = &["count", "sum", "avg", "mean"];

/// `table.exec.state.ttl` in ms, if set (not 0).
fn state_ttl(state: &SessionState) -> Option<u64> {
    state
        .config()
        .get_extension::<TributaryConfig>()
        .and_then(|c| c.state_ttl())
}

/// How EXPLAIN shows the state of a stateful operator: `ttl <duration>`
/// when `table.exec.state.ttl` bounds it, else `unbounded`.
fn state_label(ttl_ms: Option<u64>) -> String {
    match ttl_ms {
        None => "unbounded".into(),
        Some(ms) => format!("ttl {}", crate::config::format_duration_ms(ms)),
    }
}

/// Lowers `plan` (optimized) to a streaming plan.
///
/// # Errors
/// A [`NotSupported`](crate::ErrorKind::NotSupported) error naming the first
/// construct STREAMING cannot run yet, with a hint to use BATCH.
pub async fn plan_streaming(state: &SessionState, plan: &LogicalPlan) -> Result<StreamPlan> {
    let reuse = std::sync::Mutex::new(SubPlanReuse::new(plan));
    REUSE.scope(reuse, Box::pin(lower(state, plan))).await
}

tokio::task_local! {
    /// The sub-plans of the query being lowered that occur more than once.
    static REUSE: std::sync::Mutex<SubPlanReuse>;
}

/// Which logical subtrees of a query occur more than once, and the
/// streaming plan each was lowered to (see [`StreamNode::Reused`]).
struct SubPlanReuse {
    /// Each repeated subtree's id.
    ids: HashMap<LogicalPlan, usize>,
    /// The lowered plan of each id lowered so far.
    lowered: HashMap<usize, StreamPlan>,
}

impl SubPlanReuse {
    /// Numbers the subtrees of `root` that occur at least twice. A scan or
    /// literal rows alone are not shared (reading them again is as cheap as
    /// copying them), nor is an insert.
    fn new(root: &LogicalPlan) -> Self {
        let mut counts: HashMap<&LogicalPlan, usize> = HashMap::new();
        let mut stack = vec![root];
        while let Some(plan) = stack.pop() {
            *counts.entry(plan).or_default() += 1;
            stack.extend(plan.inputs());
        }
        // Only the largest repeated subtrees: an input that occurs exactly
        // as often as its repeated parent occurs only inside it.
        let inner: std::collections::HashSet<&LogicalPlan> = counts
            .iter()
            .filter(|(_, n)| **n > 1)
            .flat_map(|(plan, n)| {
                plan.inputs()
                    .into_iter()
                    .filter(|input| counts.get(input) == Some(n))
            })
            .collect();
        let mut repeated: Vec<&LogicalPlan> = counts
            .iter()
            .filter(|(plan, n)| {
                **n > 1
                    && !inner.contains(*plan)
                    && !matches!(
                        plan,
                        LogicalPlan::TableScan(_)
                            | LogicalPlan::Values(_)
                            | LogicalPlan::EmptyRelation(_)
                            | LogicalPlan::Dml(_)
                    )
            })
            .map(|(plan, _)| *plan)
            .collect();
        // Ids in a stable order (the display), not the map's.
        repeated.sort_by_cached_key(|plan| plan.display_indent().to_string());
        Self {
            ids: repeated
                .into_iter()
                .enumerate()
                .map(|(id, plan)| (plan.clone(), id + 1))
                .collect(),
            lowered: HashMap::new(),
        }
    }
}

/// Lowers `plan`, or hands back the [`StreamNode::Reused`] it was lowered
/// to if it is a repeated sub-plan already lowered.
async fn lower(state: &SessionState, plan: &LogicalPlan) -> Result<StreamPlan> {
    // (A poisoned lock only means another lowering panicked; the table
    // itself is still consistent.)
    // Most queries repeat nothing: then no plan is hashed to look it up.
    let found = REUSE
        .try_with(|reuse| {
            let reuse = reuse.lock().unwrap_or_else(|e| e.into_inner());
            if reuse.ids.is_empty() {
                return None;
            }
            reuse
                .ids
                .get(plan)
                .map(|id| (*id, reuse.lowered.get(id).cloned()))
        })
        .ok()
        .flatten();
    let id = match found {
        None => return lower_node(state, plan).await,
        Some((_, Some(done))) => return Ok(done),
        Some((id, None)) => id,
    };
    let input = lower_node(state, plan).await?;
    let reused = StreamPlan {
        schema: input.schema.clone(),
        changelog: input.changelog,
        node: StreamNode::Reused {
            id,
            input: Box::new(input),
        },
    };
    let _ = REUSE.try_with(|reuse| {
        reuse
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lowered
            .insert(id, reused.clone())
    });
    Ok(reused)
}

async fn lower_node(state: &SessionState, plan: &LogicalPlan) -> Result<StreamPlan> {
    let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
    // Subqueries the optimizer could not turn into joins stay expressions
    // that no physical operator evaluates: refuse them here, not at run time.
    if let Some(construct) = plan.expressions().iter().find_map(subquery_in) {
        return Err(unsupported(
            construct,
            "it is not rewritten into a join, and STREAMING evaluates subqueries no other way",
        ));
    }
    match plan {
        LogicalPlan::TableScan(scan) => {
            // A source must read each partition in the table's own order, or its
            // watermark runs ahead of rows still to come: no repartitioning of
            // the scan (DataFusion would split an in-memory table by size,
            // largest batches first).
            let mut scan_state = state.clone();
            scan_state
                .config_mut()
                .options_mut()
                .optimizer
                .repartition_file_scans = false;
            let physical = scan_state
                .query_planner()
                .create_physical_plan(plan, &scan_state)
                .await?;
            let idle_timeout_ms = state
                .config()
                .get_extension::<TributaryConfig>()
                .map(|c| c.source_idle_timeout_ms)
                .filter(|ms| *ms > 0);
            let watermark = schema.fields().iter().enumerate().find_map(|(column, f)| {
                watermark_delay_ms(f).map(|delay_ms| SourceWatermark {
                    column,
                    delay_ms,
                    idle_timeout_ms,
                })
            });
            Ok(StreamPlan {
                node: StreamNode::Source {
                    table: scan.table_name.to_string(),
                    scan: physical,
                    watermark,
                },
                schema,
                changelog: ChangelogMode::AppendOnly,
            })
        }
        LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => {
            let physical = state
                .query_planner()
                .create_physical_plan(plan, state)
                .await?;
            Ok(StreamPlan {
                node: StreamNode::Source {
                    table: "VALUES".into(),
                    scan: physical,
                    watermark: None,
                },
                schema,
                changelog: ChangelogMode::AppendOnly,
            })
        }
        LogicalPlan::Extension(extension) => {
            if let Some(temporal) = extension.node.as_any().downcast_ref::<TemporalJoinNode>() {
                return lower_temporal_join(state, temporal, schema).await;
            }
            let Some(tvf) = extension.node.as_any().downcast_ref::<WindowTvfNode>() else {
                return Err(unsupported(extension.node.name(), "it is not built yet"));
            };
            if matches!(tvf.kind, WindowKind::Session { .. }) {
                return Err(unsupported(
                    "a SESSION window TVF not followed by GROUP BY window_start, window_end",
                    "a row's session is only known when the session ends",
                ));
            }
            let input = Box::pin(lower(state, &tvf.input)).await?;
            if input.changelog == ChangelogMode::Updating {
                return Err(unsupported(
                    "a window TVF over an updating input",
                    "windows take append-only rows",
                ));
            }
            let time_index = tvf.time_index()?;
            Ok(StreamPlan {
                node: StreamNode::WindowAssign {
                    input: Box::new(input),
                    time_index,
                    kind: tvf.kind,
                    offset: tvf.offset,
                },
                schema,
                changelog: ChangelogMode::AppendOnly,
            })
        }
        LogicalPlan::Filter(filter) => {
            if let Some(top_n) = top_n_limit(filter) {
                return lower_filtered_top_n(state, filter, top_n, schema).await;
            }
            let input = Box::pin(lower(state, &filter.input)).await?;
            let predicate =
                state.create_physical_expr(filter.predicate.clone(), filter.input.schema())?;
            let changelog = input.changelog;
            Ok(StreamPlan {
                node: StreamNode::Filter {
                    input: Box::new(input),
                    predicate,
                },
                schema,
                changelog,
            })
        }
        LogicalPlan::Projection(projection) => {
            let input = Box::pin(lower(state, &projection.input)).await?;
            let exprs = projection
                .expr
                .iter()
                .map(|e| state.create_physical_expr(e.clone(), projection.input.schema()))
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            let changelog = input.changelog;
            Ok(StreamPlan {
                node: StreamNode::Project {
                    input: Box::new(input),
                    exprs,
                },
                schema,
                changelog,
            })
        }
        LogicalPlan::SubqueryAlias(alias) => {
            let mut input = Box::pin(lower(state, &alias.input)).await?;
            input.schema = schema;
            Ok(input)
        }
        LogicalPlan::Union(union) => {
            let mut inputs = Vec::with_capacity(union.inputs.len());
            for i in &union.inputs {
                inputs.push(Box::pin(lower(state, i)).await?);
            }
            let changelog = if inputs
                .iter()
                .all(|i| i.changelog == ChangelogMode::AppendOnly)
            {
                ChangelogMode::AppendOnly
            } else {
                ChangelogMode::Updating
            };
            Ok(StreamPlan {
                node: StreamNode::Union { inputs },
                schema,
                changelog,
            })
        }
        LogicalPlan::Aggregate(aggregate) => lower_aggregate(state, aggregate, schema).await,
        LogicalPlan::Sort(_) => Err(unsupported(
            "ORDER BY",
            "a streaming result has no final order until the input ends",
        )),
        LogicalPlan::Limit(_) => Err(unsupported(
            "LIMIT",
            "a streaming result has no final order to cut",
        )),
        LogicalPlan::Join(join) => lower_join(state, join, schema).await,
        LogicalPlan::Window(window) => lower_over_aggregate(state, window, schema).await,
        LogicalPlan::Distinct(_) => Err(unsupported("DISTINCT ON", "it is not built yet")),
        LogicalPlan::RecursiveQuery(_) => {
            Err(unsupported("WITH RECURSIVE", "it cannot run incrementally"))
        }
        LogicalPlan::Unnest(_) => Err(unsupported("UNNEST", "it is not built yet")),
        LogicalPlan::Dml(dml) if matches!(dml.op, WriteOp::Insert(InsertOp::Append)) => {
            let input = Box::pin(lower(state, &dml.input)).await?;
            let target = source_as_provider(&dml.target)?;
            let takes_changelog = tributary_connectors::print::changelog_sink(&target).is_some();
            if input.changelog == ChangelogMode::Updating && !takes_changelog {
                return Err(Error::plan(format!(
                    "cannot INSERT INTO {}: the query produces an updating changelog {} (it revises rows it emitted), \
                     but the table's sink only appends rows",
                    dml.table_name,
                    input.changelog
                ))
                .with_hint("run the INSERT in BATCH mode, where the result is final, or make the query append-only"));
            }
            Ok(StreamPlan {
                node: StreamNode::Sink {
                    input: Box::new(input),
                    table: dml.table_name.to_string(),
                    target,
                },
                schema,
                changelog: ChangelogMode::AppendOnly,
            })
        }
        LogicalPlan::Dml(_) => Err(unsupported(
            "INSERT OVERWRITE, UPDATE and DELETE",
            "only INSERT INTO appends",
        )),
        other => Err(unsupported(
            other
                .display()
                .to_string()
                .split(':')
                .next()
                .unwrap_or("this operator"),
            "it is not built yet",
        )),
    }
}

async fn lower_aggregate(
    state: &SessionState,
    aggregate: &Aggregate,
    schema: SchemaRef,
) -> Result<StreamPlan> {
    if aggregate
        .group_expr
        .iter()
        .any(|e| matches!(e, Expr::GroupingSet(_)))
    {
        return Err(unsupported(
            "GROUPING SETS / ROLLUP / CUBE",
            "they are not built yet",
        ));
    }
    let mut path = Vec::new();
    if let Some(tvf) = session_tvf(&aggregate.input, &mut path) {
        return lower_session_aggregate(state, aggregate, tvf, path, schema).await;
    }
    let input = Box::pin(lower(state, &aggregate.input)).await?;
    let input_schema = aggregate.input.schema();
    let group = aggregate
        .group_expr
        .iter()
        .map(|e| state.create_physical_expr(e.clone(), input_schema))
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let physical_input_schema = input_schema.as_arrow();
    let mut aggregates = Vec::with_capacity(aggregate.aggr_expr.len());
    for e in &aggregate.aggr_expr {
        // DataFusion 55 deprecates this helper for its LoweredAggregateBuilder,
        // which is not exported; the helper does the same lowering.
        #[allow(deprecated)]
        let (expr, filter, order) = create_aggregate_expr_and_maybe_filter(
            e,
            input_schema,
            physical_input_schema,
            state.execution_props(),
        )?;
        if !order.is_empty() {
            return Err(unsupported(
                "ordered aggregates (... ORDER BY inside an aggregate)",
                "they are not built yet",
            ));
        }
        let name = expr.fun().name().to_ascii_lowercase();
        let retraction = if input.changelog == ChangelogMode::AppendOnly {
            Retraction::NotNeeded
        } else if expr.is_distinct() && name == "count" && expr.expressions().len() == 1 {
            Retraction::DistinctCount
        } else if expr.is_distinct() {
            return Err(unsupported(
                &format!(
                    "{}(DISTINCT ...) over an updating input",
                    name.to_uppercase()
                ),
                "its state cannot take retractions yet",
            ));
        } else if name == "min" || name == "max" {
            Retraction::MinMax { min: name == "min" }
        } else if RETRACTABLE.contains(&name.as_str()) {
            Retraction::Accumulator
        } else {
            return Err(unsupported(
                &format!("{}() over an updating input", name.to_uppercase()),
                "its state cannot take retractions",
            ));
        };
        aggregates.push(StreamAggregate {
            expr,
            filter,
            retraction,
        });
    }
    // GROUP BY window_start, window_end (of a window TVF): a window aggregate.
    let window_role = |e: &Expr| match e {
        Expr::Column(c) => input_schema
            .field_with_unqualified_name(&c.name)
            .ok()
            .and_then(|f| f.metadata().get(WINDOW_COLUMN).cloned()),
        _ => None,
    };
    let roles: Vec<Option<String>> = aggregate.group_expr.iter().map(window_role).collect();
    let window_end = roles.iter().position(|r| r.as_deref() == Some("end"));
    let window_start = roles.iter().position(|r| r.as_deref() == Some("start"));
    if let (Some(window_end), Some(window_start)) = (window_end, window_start) {
        if input.changelog == ChangelogMode::Updating {
            return Err(unsupported(
                "a window aggregate over an updating input",
                "windows take append-only rows",
            ));
        }
        return Ok(StreamPlan {
            node: StreamNode::WindowAggregate {
                input: Box::new(input),
                group,
                aggregates,
                window_start,
                window_end,
            },
            schema,
            changelog: ChangelogMode::AppendOnly,
        });
    }
    Ok(StreamPlan {
        node: StreamNode::GroupAggregate {
            input: Box::new(input),
            state_ttl_ms: if group.is_empty() {
                None
            } else {
                state_ttl(state)
            },
            group,
            aggregates,
        },
        schema,
        changelog: ChangelogMode::Updating,
    })
}

async fn lower_join(state: &SessionState, join: &Join, schema: SchemaRef) -> Result<StreamPlan> {
    match join.join_type {
        JoinType::Inner
        | JoinType::Left
        | JoinType::Right
        | JoinType::Full
        | JoinType::LeftSemi
        | JoinType::LeftAnti
        | JoinType::RightSemi
        | JoinType::RightAnti => {}
        JoinType::LeftMark | JoinType::RightMark => {
            return Err(unsupported(
                "an IN / EXISTS subquery inside OR (a mark join)",
                "mark joins are not built yet",
            ));
        }
    }
    // `ON ... AND FALSE`, simplified by the optimizer to no keys and a
    // FALSE filter: nothing matches, so only the outer sides' padded rows
    // come out. Keys that are never equal (0 on the left, 1 on the right)
    // give exactly that, without comparing any pair.
    let never = matches!(
        &join.filter,
        Some(Expr::Literal(ScalarValue::Boolean(None | Some(false)), _))
    );
    if join.on.is_empty() && never {
        let left = Box::pin(lower(state, &join.left)).await?;
        let right = Box::pin(lower(state, &join.right)).await?;
        let key = |v: i64| -> Result<Vec<Arc<dyn PhysicalExpr>>> {
            Ok(vec![state.create_physical_expr(
                Expr::Literal(ScalarValue::Int64(Some(v)), None),
                join.left.schema(),
            )?])
        };
        return Ok(StreamPlan {
            node: StreamNode::Join {
                left: Box::new(left),
                right: Box::new(right),
                join_type: join.join_type,
                left_keys: key(0)?,
                right_keys: key(1)?,
                filter: None,
                null_equals_null: false,
                null_aware: false,
                state_ttl_ms: state_ttl(state),
            },
            schema,
            changelog: if join.join_type == JoinType::Inner {
                ChangelogMode::AppendOnly
            } else {
                ChangelogMode::Updating
            },
        });
    }
    if join.null_aware && (join.join_type != JoinType::LeftAnti || join.filter.is_some()) {
        return Err(unsupported(
            "a correlated NOT IN (subquery) outside a WHERE's top-level AND",
            "only an uncorrelated NOT IN, or one that is a conjunct of a WHERE (rewritten into NOT EXISTS), is built; write NOT EXISTS",
        ));
    }
    let left = Box::pin(lower(state, &join.left)).await?;
    let right = Box::pin(lower(state, &join.right)).await?;
    let (left_schema, right_schema) = (join.left.schema(), join.right.schema());
    let mut left_keys = Vec::with_capacity(join.on.len());
    let mut right_keys = Vec::with_capacity(join.on.len());
    for (l, r) in &join.on {
        // Both sides are hashed and encoded by their key values, so a pair of
        // keys must have one type (the optimizer's coercion usually did this).
        let (lt, rt) = (l.get_type(left_schema)?, r.get_type(right_schema)?);
        let (l, r) = if lt == rt {
            (l.clone(), r.clone())
        } else {
            let common = comparison_coercion(&lt, &rt).ok_or_else(|| {
                Error::plan(format!(
                    "cannot join on {l} = {r}: no common type for {lt} and {rt}"
                ))
            })?;
            (
                l.clone().cast_to(&common, left_schema)?,
                r.clone().cast_to(&common, right_schema)?,
            )
        };
        left_keys.push(state.create_physical_expr(l, left_schema)?);
        right_keys.push(state.create_physical_expr(r, right_schema)?);
    }
    let filter = match &join.filter {
        None => None,
        Some(f) => {
            let both = build_join_schema(left_schema, right_schema, &JoinType::Inner)?;
            Some(state.create_physical_expr(f.clone(), &both)?)
        }
    };
    let append_only =
        left.changelog == ChangelogMode::AppendOnly && right.changelog == ChangelogMode::AppendOnly;
    if append_only && !join.null_aware {
        let classified = crate::time_join::classify(join);
        let ranged = match classified {
            JoinTime::Bounded(bound) => Some((bound, [Vec::new(), Vec::new()])),
            JoinTime::Ranged {
                bound,
                ref expiries,
            } => {
                let [l, r] = expiries;
                let physical = |exprs: &Vec<Expr>, schema: &DFSchema| {
                    exprs
                        .iter()
                        .map(|e| state.create_physical_expr(e.clone(), schema))
                        .collect::<datafusion::error::Result<Vec<_>>>()
                };
                Some((
                    bound,
                    [physical(l, left_schema)?, physical(r, right_schema)?],
                ))
            }
            _ => None,
        };
        match classified {
            JoinTime::Bounded(_) | JoinTime::Ranged { .. } => {
                let Some((bound, expiries)) = ranged else {
                    return Err(Error::plan("a time-bounded join lost its bound"));
                };
                return Ok(StreamPlan {
                    node: StreamNode::TimeJoin {
                        left: Box::new(left),
                        right: Box::new(right),
                        join_type: join.join_type,
                        left_keys,
                        right_keys,
                        filter,
                        null_equals_null: join.null_equality == NullEquality::NullEqualsNull,
                        bound,
                        expiries,
                    },
                    schema,
                    changelog: ChangelogMode::AppendOnly,
                });
            }
            JoinTime::OneSided(one_sided) => {
                // With a TTL it runs as a regular join whose state the TTL
                // bounds, as Flink allows.
                let unbounded = crate::mode::unbounded_tables(&LogicalPlan::Join(join.clone()));
                if let (Some(table), None) = (unbounded.first(), state_ttl(state)) {
                    return Err(Error::plan(format!(
                        "this join bounds event time on one side only ({}), over the unbounded table '{table}': \
                         a row can match rows arriving arbitrarily later, so its join state would grow forever",
                        one_sided.condition
                    ))
                    .with_hint(
                        "bound both sides to make it an interval join whose state the watermark frees, \
                         e.g. a.ts BETWEEN b.ts - INTERVAL '1' HOUR AND b.ts + INTERVAL '1' HOUR; \
                         or run over bounded tables; or set a state TTL, e.g. SET 'table.exec.state.ttl' = '1 h', \
                         to run it as a regular join that forgets rows idle that long (results may then differ from BATCH)",
                    ));
                }
            }
            JoinTime::None => {}
        }
    }
    let changelog = if join.join_type == JoinType::Inner
        && left.changelog == ChangelogMode::AppendOnly
        && right.changelog == ChangelogMode::AppendOnly
    {
        ChangelogMode::AppendOnly
    } else {
        ChangelogMode::Updating
    };
    Ok(StreamPlan {
        node: StreamNode::Join {
            left: Box::new(left),
            right: Box::new(right),
            join_type: join.join_type,
            left_keys,
            right_keys,
            filter,
            null_equals_null: join.null_equality == NullEquality::NullEqualsNull,
            null_aware: join.null_aware,
            state_ttl_ms: if join.null_aware {
                None
            } else {
                state_ttl(state)
            },
        },
        schema,
        changelog,
    })
}

/// An event-time temporal join (see [`StreamNode::TemporalJoin`]).
async fn lower_temporal_join(
    state: &SessionState,
    join: &TemporalJoinNode,
    schema: SchemaRef,
) -> Result<StreamPlan> {
    let left = Box::pin(lower(state, &join.left)).await?;
    let right = Box::pin(lower(state, &join.right)).await?;
    for (side, input) in [("left input", &left), ("versioned table", &right)] {
        if input.changelog != ChangelogMode::AppendOnly {
            return Err(unsupported(
                "a temporal join over an updating input",
                &format!(
                    "its {side} must be append-only (rows, or versions, only ever added), but it is updating"
                ),
            ));
        }
    }
    let (left_schema, right_schema) = (join.left.schema(), join.right.schema());
    let mut left_keys = Vec::with_capacity(join.on.len());
    let mut right_keys = Vec::with_capacity(join.on.len());
    for (l, r) in &join.on {
        let (lt, rt) = (l.get_type(left_schema)?, r.get_type(right_schema)?);
        let l = if lt == rt {
            l.clone()
        } else {
            l.clone().cast_to(&rt, left_schema)?
        };
        left_keys.push(state.create_physical_expr(l, left_schema)?);
        right_keys.push(state.create_physical_expr(r.clone(), right_schema)?);
    }
    let filter = match &join.filter {
        None => None,
        Some(f) => {
            let both = build_join_schema(left_schema, right_schema, &JoinType::Inner)?;
            Some(state.create_physical_expr(f.clone(), &both)?)
        }
    };
    Ok(StreamPlan {
        node: StreamNode::TemporalJoin {
            left: Box::new(left),
            right: Box::new(right),
            join_type: join.join_type,
            left_keys,
            right_keys,
            filter,
            left_time: left_schema.index_of_column(&join.left_time)?,
            right_time: right_schema.index_of_column(&join.right_time)?,
        },
        schema,
        changelog: ChangelogMode::AppendOnly,
    })
}

/// A node between a SESSION aggregate and its window TVF.
enum SessionPath {
    /// A projection (or alias): each output column and what it computes
    /// from the node below.
    Map(Vec<(datafusion::common::Column, Expr)>),
    /// A filter, over the node below.
    Filter(Expr),
}

/// The SESSION window TVF an aggregate reads, through projections, aliases
/// and filters (collected into `path`, top first). DataFusion's optimizer
/// puts such nodes there itself (common subexpressions, pushed-down
/// filters); the session operator evaluates them on the TVF's rows.
fn session_tvf<'a>(
    plan: &'a LogicalPlan,
    path: &mut Vec<SessionPath>,
) -> Option<&'a WindowTvfNode> {
    match plan {
        LogicalPlan::Projection(p) => {
            path.push(SessionPath::Map(
                p.schema
                    .columns()
                    .into_iter()
                    .zip(p.expr.iter().map(|e| e.clone().unalias()))
                    .collect(),
            ));
            session_tvf(&p.input, path)
        }
        LogicalPlan::SubqueryAlias(a) => {
            path.push(SessionPath::Map(
                a.schema
                    .columns()
                    .into_iter()
                    .zip(a.input.schema().columns().into_iter().map(Expr::Column))
                    .collect(),
            ));
            session_tvf(&a.input, path)
        }
        LogicalPlan::Filter(f) => {
            path.push(SessionPath::Filter(f.predicate.clone()));
            session_tvf(&f.input, path)
        }
        LogicalPlan::Extension(e) => e
            .node
            .as_any()
            .downcast_ref::<WindowTvfNode>()
            .filter(|t| matches!(t.kind, WindowKind::Session { .. })),
        _ => None,
    }
}

/// `expr`, written over the output of `path[0]`'s node, rewritten over the
/// TVF's output by substituting what each projection below computes.
fn inline_path(expr: &Expr, path: &[SessionPath]) -> Result<Expr> {
    use datafusion::common::tree_node::Transformed;
    let mut expr = expr.clone();
    for step in path {
        let SessionPath::Map(columns) = step else {
            continue;
        };
        expr = expr
            .transform_up(|e| {
                if let Expr::Column(c) = &e
                    && let Some((_, computed)) = columns.iter().find(|(out, _)| out == c)
                {
                    return Ok(Transformed::yes(computed.clone()));
                }
                Ok(Transformed::no(e))
            })?
            .data;
    }
    Ok(expr)
}

async fn lower_session_aggregate(
    state: &SessionState,
    aggregate: &Aggregate,
    tvf: &WindowTvfNode,
    path: Vec<SessionPath>,
    schema: SchemaRef,
) -> Result<StreamPlan> {
    let WindowKind::Session { gap } = tvf.kind else {
        return Err(datafusion::error::DataFusionError::Internal(
            "a SESSION aggregate was planned over a window TVF that is not SESSION".into(),
        )
        .into());
    };
    let needs = || {
        unsupported(
            "this GROUP BY over a SESSION window TVF",
            "STREAMING groups sessions by window_start, window_end (window_time) and the PARTITION BY columns only",
        )
    };
    let input = Box::pin(lower(state, &tvf.input)).await?;
    if input.changelog == ChangelogMode::Updating {
        return Err(unsupported(
            "a SESSION window over an updating input",
            "windows take append-only rows",
        ));
    }
    // Everything over the TVF's own output: window columns and its input's.
    let tvf_output = datafusion::logical_expr::UserDefinedLogicalNode::schema(tvf);
    let mut outputs = Vec::with_capacity(aggregate.group_expr.len());
    for e in &aggregate.group_expr {
        let Expr::Column(c) = inline_path(e, &path)? else {
            return Err(needs());
        };
        let field = datafusion::common::ExprSchema::field_from_column(tvf_output.as_ref(), &c)
            .map_err(|_| needs())?;
        outputs.push(
            match field.metadata().get(WINDOW_COLUMN).map(String::as_str) {
                Some("start") => SessionColumn::Start,
                Some("end") => SessionColumn::End,
                Some("time") => SessionColumn::Time,
                _ => SessionColumn::Key(
                    tvf.partition_by
                        .iter()
                        .position(|k| k == &c.name)
                        .ok_or_else(needs)?,
                ),
            },
        );
    }
    if !outputs.contains(&SessionColumn::Start) || !outputs.contains(&SessionColumn::End) {
        return Err(needs());
    }
    let tvf_input = tvf.input.schema();
    let keys = tvf
        .partition_indices()?
        .into_iter()
        .map(|i| {
            let (q, f) = tvf_input.qualified_field(i);
            state.create_physical_expr(
                Expr::Column(datafusion::common::Column::new(q.cloned(), f.name())),
                tvf_input,
            )
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let mut aggregates = Vec::with_capacity(aggregate.aggr_expr.len());
    for e in &aggregate.aggr_expr {
        let e = inline_path(e, &path)?;
        #[allow(deprecated)]
        let (expr, filter, order) = create_aggregate_expr_and_maybe_filter(
            &e,
            tvf_input,
            tvf_input.as_arrow(),
            state.execution_props(),
        )
        .map_err(|_| {
            unsupported(
                "an aggregate of a SESSION window's own columns",
                "aggregates read the table's columns",
            )
        })?;
        if !order.is_empty() {
            return Err(unsupported(
                "ordered aggregates (... ORDER BY inside an aggregate)",
                "they are not built yet",
            ));
        }
        aggregates.push(StreamAggregate {
            expr,
            filter,
            retraction: Retraction::NotNeeded,
        });
    }
    // Each filter is over the node below it: inline the projections below.
    let filters = path
        .iter()
        .enumerate()
        .filter_map(|(i, step)| match step {
            SessionPath::Filter(predicate) => Some(inline_path(predicate, &path[i + 1..])),
            SessionPath::Map(_) => None,
        })
        .collect::<Result<Vec<_>>>()?;
    // A conjunct over the table's columns filters rows (they still shape the
    // sessions, as in BATCH). One over the grouped window and PARTITION BY
    // columns only — DataFusion pushes an outer WHERE on `window_start`
    // below the aggregate — keeps or drops whole sessions, so it runs on the
    // aggregate's output instead.
    let group_columns: Vec<(Expr, Expr)> = aggregate
        .group_expr
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let (q, f) = aggregate.schema.qualified_field(i);
            Ok((
                inline_path(g, &path)?,
                Expr::Column(datafusion::common::Column::new(q.cloned(), f.name())),
            ))
        })
        .collect::<Result<_>>()?;
    let mut row_conjuncts = Vec::new();
    let mut session_conjuncts = Vec::new();
    for conjunct in filters
        .iter()
        .flat_map(datafusion::logical_expr::utils::split_conjunction)
    {
        if state
            .create_physical_expr(conjunct.clone(), tvf_input)
            .is_ok()
        {
            row_conjuncts.push(conjunct.clone());
            continue;
        }
        use datafusion::common::tree_node::Transformed;
        let over_output = conjunct
            .clone()
            .transform_up(|e| {
                Ok(match group_columns.iter().find(|(g, _)| *g == e) {
                    Some((_, out)) => Transformed::yes(out.clone()),
                    None => Transformed::no(e),
                })
            })?
            .data;
        match state.create_physical_expr(over_output, &aggregate.schema) {
            Ok(predicate) => session_conjuncts.push(predicate),
            Err(_) => {
                return Err(unsupported(
                    "a WHERE on a SESSION window's own columns before GROUP BY",
                    "filters read the table's columns, or the grouped window and PARTITION BY columns",
                ));
            }
        }
    }
    let row_filter = match row_conjuncts.into_iter().reduce(|a, b| a.and(b)) {
        None => None,
        Some(predicate) => Some(state.create_physical_expr(predicate, tvf_input)?),
    };
    let mut plan = StreamPlan {
        node: StreamNode::SessionAggregate {
            input: Box::new(input),
            time_index: tvf.time_index()?,
            gap,
            keys,
            outputs,
            aggregates,
            row_filter,
        },
        schema: schema.clone(),
        changelog: ChangelogMode::AppendOnly,
    };
    for predicate in session_conjuncts {
        plan = StreamPlan {
            node: StreamNode::Filter {
                input: Box::new(plan),
                predicate,
            },
            schema: schema.clone(),
            changelog: ChangelogMode::AppendOnly,
        };
    }
    Ok(plan)
}

/// A filter over a Top-N pattern (see [`top_n_limit`]): the Top-N, the
/// projection the optimizer put under the filter, and the filter's other
/// conjuncts.
async fn lower_filtered_top_n(
    state: &SessionState,
    filter: &datafusion::logical_expr::Filter,
    (window, limit, projection, rest): TopNPattern<'_>,
    schema: SchemaRef,
) -> Result<StreamPlan> {
    let window_schema: SchemaRef = Arc::new(window.schema.as_arrow().clone());
    let mut plan = lower_top_n(state, window, limit, window_schema).await?;
    // Columns the optimizer dropped between the filter and the window.
    if let Some(p) = projection {
        let exprs = p
            .expr
            .iter()
            .map(|e| state.create_physical_expr(e.clone(), p.input.schema()))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        plan = StreamPlan {
            changelog: plan.changelog,
            node: StreamNode::Project {
                input: Box::new(plan),
                exprs,
            },
            schema: schema.clone(),
        };
    }
    // The filter's other conjuncts read the ranked rows: after Top-N.
    if let Some(rest) = rest {
        let predicate = state.create_physical_expr(rest, filter.input.schema())?;
        plan = StreamPlan {
            changelog: plan.changelog,
            node: StreamNode::Filter {
                input: Box::new(plan),
                predicate,
            },
            schema,
        };
    }
    Ok(plan)
}

/// What [`top_n_limit`] finds: the window node, N, the projection between
/// them, and the filter's other conjuncts.
type TopNPattern<'a> = (
    &'a datafusion::logical_expr::Window,
    usize,
    Option<&'a datafusion::logical_expr::Projection>,
    Option<Expr>,
);

/// `WHERE rn <= N` (or `rn < N`, `rn = 1`) over a window node that
/// computes only `rn = ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)`,
/// directly or through a projection of columns that keeps `rn`: the window
/// node, N, and that projection.
/// The filter's other conjuncts come back too, to apply after the Top-N.
fn top_n_limit(filter: &datafusion::logical_expr::Filter) -> Option<TopNPattern<'_>> {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    let (window, projection) = match filter.input.as_ref() {
        LogicalPlan::Window(w) => (w, None),
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
            match p.input.as_ref() {
                LogicalPlan::Window(w) => (w, Some(p)),
                _ => return None,
            }
        }
        _ => return None,
    };
    let [expr] = window.window_expr.as_slice() else {
        return None;
    };
    let Expr::WindowFunction(f) = expr.clone().unalias() else {
        return None;
    };
    if f.fun.name() != "row_number" || !f.params.args.is_empty() || f.params.order_by.is_empty() {
        return None;
    }
    let rank = window.schema.columns().pop()?;
    let bound = |e: &Expr| -> Option<(Operator, ScalarValue)> {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
            return None;
        };
        match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) if c.name == rank.name => Some((*op, v.clone())),
            (Expr::Literal(v, _), Expr::Column(c)) if c.name == rank.name => {
                Some((op.swap()?, v.clone()))
            }
            _ => None,
        }
    };
    let upper = |e: &Expr| {
        bound(e).filter(|(op, _)| matches!(op, Operator::Lt | Operator::LtEq | Operator::Eq))
    };
    let mut conjuncts = datafusion::logical_expr::utils::split_conjunction(&filter.predicate);
    let at = conjuncts.iter().position(|e| upper(e).is_some())?;
    let (op, value) = upper(conjuncts[at])?;
    // `rn = k` ranks k rows and keeps the k-th: it stays as a filter after.
    if op != Operator::Eq {
        conjuncts.remove(at);
    }
    let rest = conjuncts.into_iter().cloned().reduce(|a, b| a.and(b));
    let value = &value;
    let n = match value {
        ScalarValue::UInt64(Some(n)) => i128::from(*n),
        ScalarValue::Int64(Some(n)) => i128::from(*n),
        ScalarValue::Int32(Some(n)) => i128::from(*n),
        _ => return None,
    };
    let limit = match op {
        Operator::LtEq => n,
        Operator::Lt => n - 1,
        Operator::Eq => n,
        _ => return None,
    };
    // `rn < 1` and the like keep nothing: a Top-0 emits no row.
    Some((
        window,
        usize::try_from(limit.max(0)).ok()?,
        projection,
        rest,
    ))
}

async fn lower_top_n(
    state: &SessionState,
    window: &datafusion::logical_expr::Window,
    limit: usize,
    schema: SchemaRef,
) -> Result<StreamPlan> {
    let Expr::WindowFunction(f) = window.window_expr[0].clone().unalias() else {
        return Err(Error::plan("Top-N without a window function"));
    };
    let input = Box::pin(lower(state, &window.input)).await?;
    let input_schema = window.input.schema();
    let partition_by = f
        .params
        .partition_by
        .iter()
        .map(|e| state.create_physical_expr(e.clone(), input_schema))
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let order_by = f
        .params
        .order_by
        .iter()
        .map(|s| {
            Ok((
                state.create_physical_expr(s.expr.clone(), input_schema)?,
                arrow::compute::SortOptions {
                    descending: !s.asc,
                    nulls_first: s.nulls_first,
                },
            ))
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    Ok(StreamPlan {
        node: StreamNode::TopN {
            input: Box::new(input),
            partition_by,
            order_by,
            limit,
        },
        schema,
        changelog: ChangelogMode::Updating,
    })
}

/// `... OVER (PARTITION BY ... ORDER BY ts ROWS|RANGE BETWEEN ... PRECEDING
/// AND CURRENT ROW)` over an append-only input: see
/// [`crate::over_window`] for what can run.
async fn lower_over_aggregate(
    state: &SessionState,
    window: &datafusion::logical_expr::Window,
    schema: SchemaRef,
) -> Result<StreamPlan> {
    let input_schema = window.input.schema();
    let input = Box::pin(lower(state, &window.input)).await?;
    if input.changelog != ChangelogMode::AppendOnly {
        return Err(unsupported(
            "an OVER aggregation over an updating input",
            "its rows' results would have to be revised when an earlier row is retracted",
        ));
    }
    let shape = crate::over_window::over_shape(&window.window_expr, input_schema)?;
    let time_index = input_schema
        .index_of_column_by_name(None, &shape.order_column)
        .ok_or_else(|| {
            Error::plan(format!(
                "the OVER ORDER BY column '{}' is not in the window's input",
                shape.order_column
            ))
        })?;
    let planning =
        datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext::default();
    let window_exprs = window
        .window_expr
        .iter()
        .map(|e| {
            datafusion::physical_planner::create_window_expr(
                e,
                input_schema,
                state.execution_props(),
                &planning,
            )
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let partition_by = shape
        .partition_by
        .iter()
        .map(|e| state.create_physical_expr(e.clone(), input_schema))
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    Ok(StreamPlan {
        node: StreamNode::OverAggregate {
            input: Box::new(input),
            window_exprs,
            partition_by,
            time_index,
            retention: shape.retention,
        },
        schema,
        changelog: ChangelogMode::AppendOnly,
    })
}

/// The kind of subquery in `expr`, if it has one.
fn subquery_in(expr: &Expr) -> Option<&'static str> {
    let mut found = None;
    let _ = expr.apply(|e| {
        found = match e {
            Expr::ScalarSubquery(_) => Some("a scalar subquery"),
            Expr::InSubquery(_) => Some("an IN subquery"),
            Expr::Exists(_) => Some("an EXISTS subquery"),
            _ => None,
        };
        Ok(if found.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

fn unsupported(construct: &str, why: &str) -> Error {
    Error::not_supported(format!(
        "{construct} is not supported in STREAMING mode yet: {why}"
    ))
    .with_hint("SET 'execution.runtime-mode' = 'batch' to run this query over the data present now")
}

impl StreamPlan {
    /// An indented description of the operator tree with each operator's
    /// changelog mode, for `EXPLAIN`.
    pub fn display_indent(&self) -> String {
        let mut out = String::new();
        self.fmt_indent(0, &mut out, &mut std::collections::HashSet::new());
        out.trim_end().to_string()
    }

    /// `shown`: the ids of the [`StreamNode::Reused`] sub-plans written so
    /// far.
    fn fmt_indent(
        &self,
        depth: usize,
        out: &mut String,
        shown: &mut std::collections::HashSet<usize>,
    ) {
        let pad = "  ".repeat(depth);
        let _ = match &self.node {
            StreamNode::Source {
                table, watermark, ..
            } => {
                let wm = watermark
                    .map(|w| format!(", watermark=column {} - {}ms", w.column, w.delay_ms))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{pad}Source: table={table}{wm}, changelogMode={}",
                    self.changelog
                )
            }
            StreamNode::WindowAssign {
                kind,
                time_index,
                offset,
                ..
            } => {
                writeln!(
                    out,
                    "{pad}WindowAssign: {kind} on column {time_index}, offset={offset}ms, changelogMode={}",
                    self.changelog
                )
            }
            StreamNode::SessionAggregate {
                gap,
                outputs,
                aggregates,
                ..
            } => {
                let a: Vec<String> = aggregates
                    .iter()
                    .map(|a| a.expr.name().to_string())
                    .collect();
                writeln!(
                    out,
                    "{pad}SessionAggregate: gap={gap}ms, group={outputs:?}, aggregates=[{}], emit=on watermark, changelogMode={}",
                    a.join(", "),
                    self.changelog
                )
            }
            StreamNode::WindowAggregate {
                group, aggregates, ..
            } => {
                let g: Vec<String> = group.iter().map(|e| e.to_string()).collect();
                let a: Vec<String> = aggregates
                    .iter()
                    .map(|a| a.expr.name().to_string())
                    .collect();
                writeln!(
                    out,
                    "{pad}WindowAggregate: group=[{}], aggregates=[{}], emit=on watermark, changelogMode={}",
                    g.join(", "),
                    a.join(", "),
                    self.changelog
                )
            }
            StreamNode::Filter { predicate, .. } => {
                writeln!(
                    out,
                    "{pad}Filter: {predicate}, changelogMode={}",
                    self.changelog
                )
            }
            StreamNode::Project { exprs, .. } => {
                let e: Vec<String> = exprs.iter().map(|e| e.to_string()).collect();
                writeln!(
                    out,
                    "{pad}Project: [{}], changelogMode={}",
                    e.join(", "),
                    self.changelog
                )
            }
            StreamNode::Union { .. } => {
                writeln!(out, "{pad}Union: changelogMode={}", self.changelog)
            }
            StreamNode::Join {
                join_type,
                left_keys,
                right_keys,
                filter,
                null_equals_null,
                null_aware,
                state_ttl_ms,
                ..
            } => {
                let eq = if *null_equals_null {
                    "IS NOT DISTINCT FROM"
                } else {
                    "="
                };
                let on: Vec<String> = left_keys
                    .iter()
                    .zip(right_keys)
                    .map(|(l, r)| format!("{l} {eq} {r}"))
                    .collect();
                let mut filter = filter
                    .as_ref()
                    .map(|f| format!(", filter={f}"))
                    .unwrap_or_default();
                if left_keys.is_empty() {
                    filter.push_str(", parallelism=1 (no equality)");
                }
                if *null_aware {
                    filter.push_str(", NOT IN (null-aware), parallelism=1");
                }
                writeln!(
                    out,
                    "{pad}Join: type={join_type}, on=[{}]{filter}, state={}, changelogMode={}",
                    on.join(", "),
                    state_label(*state_ttl_ms),
                    self.changelog
                )
            }
            StreamNode::TimeJoin {
                join_type,
                left_keys,
                right_keys,
                filter,
                null_equals_null,
                bound,
                expiries,
                ..
            } => {
                let eq = if *null_equals_null {
                    "IS NOT DISTINCT FROM"
                } else {
                    "="
                };
                let on: Vec<String> = left_keys
                    .iter()
                    .zip(right_keys)
                    .map(|(l, r)| format!("{l} {eq} {r}"))
                    .collect();
                let mut filter = filter
                    .as_ref()
                    .map(|f| format!(", filter={f}"))
                    .unwrap_or_default();
                if left_keys.is_empty() {
                    filter.push_str(", parallelism=1 (no equality)");
                }
                let (name, what) = match bound {
                    TimeBound::Interval {
                        left_time,
                        right_time,
                        lower,
                        upper,
                    } => (
                        "IntervalJoin",
                        format!(
                            "left column {left_time} - right column {right_time} in [{lower}ms, {upper}ms], emit=on match, watermark delay={}ms",
                            bound.watermark_delay_ms().unwrap_or_default()
                        ),
                    ),
                    TimeBound::Window {
                        left_end,
                        right_end,
                    } => (
                        "WindowJoin",
                        format!(
                            "window_end left column {left_end} = right column {right_end}, emit=on watermark"
                        ),
                    ),
                    TimeBound::Range {
                        left_time,
                        right_time,
                    } => {
                        let list = |exprs: &Vec<Arc<dyn PhysicalExpr>>| {
                            exprs
                                .iter()
                                .map(|e| e.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        (
                            "RangeJoin",
                            format!(
                                "late if left column {left_time} / right column {right_time} <= watermark, \
                                 left rows expire at least([{}]), right rows expire at least([{}]), \
                                 emit=on match, watermark=held until end of input",
                                list(&expiries[0]),
                                list(&expiries[1])
                            ),
                        )
                    }
                };
                writeln!(
                    out,
                    "{pad}{name}: type={join_type}, on=[{}]{filter}, {what}, state=freed by watermark, changelogMode={}",
                    on.join(", "),
                    self.changelog
                )
            }
            StreamNode::TemporalJoin {
                join_type,
                left_keys,
                right_keys,
                filter,
                left_time,
                right_time,
                ..
            } => {
                let on: Vec<String> = left_keys
                    .iter()
                    .zip(right_keys)
                    .map(|(l, r)| format!("{l} = {r}"))
                    .collect();
                let filter = filter
                    .as_ref()
                    .map(|f| format!(", filter={f}"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{pad}TemporalJoin: type={join_type}, on=[{}]{filter}, right column {right_time} AS OF left column {left_time}, \
                     emit=on watermark, state=waiting left rows + versions from the one valid at the watermark, changelogMode={}",
                    on.join(", "),
                    self.changelog
                )
            }
            StreamNode::Sink { table, .. } => writeln!(
                out,
                "{pad}Sink: table={table}, changelogMode={}",
                self.changelog
            ),
            StreamNode::Reused { id, input } => {
                // The sub-plan is shown at its first occurrence only.
                if !shown.insert(*id) {
                    return writeln!(out, "{pad}Reused: id={id}, run once (shown above)")
                        .map_or((), |_| ());
                }
                let _ = writeln!(
                    out,
                    "{pad}Reused: id={id}, run once, its output copied to each use"
                );
                return input.fmt_indent(depth + 1, out, shown);
            }
            StreamNode::TopN {
                partition_by,
                order_by,
                limit,
                ..
            } => {
                let p: Vec<String> = partition_by.iter().map(|e| e.to_string()).collect();
                let o: Vec<String> = order_by
                    .iter()
                    .map(|(e, o)| format!("{e} {}", if o.descending { "DESC" } else { "ASC" }))
                    .collect();
                writeln!(
                    out,
                    "{pad}TopN: partition=[{}], order=[{}], limit={limit}, state=unbounded, changelogMode={}",
                    p.join(", "),
                    o.join(", "),
                    self.changelog
                )
            }
            StreamNode::OverAggregate {
                window_exprs,
                partition_by,
                time_index,
                retention,
                ..
            } => {
                let p: Vec<String> = partition_by.iter().map(|e| e.to_string()).collect();
                let w: Vec<&str> = window_exprs.iter().map(|e| e.name()).collect();
                let state = match retention {
                    crate::over_window::OverRetention::All => ", state=unbounded",
                    _ => "",
                };
                writeln!(
                    out,
                    "{pad}OverAggregate: partition=[{}], order=column {time_index}, frame={retention}, aggregates=[{}], emit=on watermark{state}, changelogMode={}",
                    p.join(", "),
                    w.join(", "),
                    self.changelog
                )
            }
            StreamNode::GroupAggregate {
                group,
                aggregates,
                state_ttl_ms,
                ..
            } => {
                let g: Vec<String> = group.iter().map(|e| e.to_string()).collect();
                let a: Vec<String> = aggregates
                    .iter()
                    .map(|a| a.expr.name().to_string())
                    .collect();
                writeln!(
                    out,
                    "{pad}GroupAggregate: group=[{}], aggregates=[{}], state={}, changelogMode={}",
                    g.join(", "),
                    a.join(", "),
                    state_label(*state_ttl_ms),
                    self.changelog
                )
            }
        };
        for input in self.inputs() {
            input.fmt_indent(depth + 1, out, shown);
        }
    }

    /// The operator's inputs, left to right.
    pub fn inputs(&self) -> Vec<&StreamPlan> {
        match &self.node {
            StreamNode::Source { .. } => vec![],
            StreamNode::Filter { input, .. }
            | StreamNode::Project { input, .. }
            | StreamNode::GroupAggregate { input, .. }
            | StreamNode::TopN { input, .. }
            | StreamNode::OverAggregate { input, .. }
            | StreamNode::WindowAssign { input, .. }
            | StreamNode::WindowAggregate { input, .. }
            | StreamNode::SessionAggregate { input, .. }
            | StreamNode::Reused { input, .. }
            | StreamNode::Sink { input, .. } => vec![input.as_ref()],
            StreamNode::Union { inputs } => inputs.iter().collect(),
            StreamNode::Join { left, right, .. }
            | StreamNode::TimeJoin { left, right, .. }
            | StreamNode::TemporalJoin { left, right, .. } => vec![left.as_ref(), right.as_ref()],
        }
    }
}

//! The STREAMING runtime: runs a [`StreamPlan`] as tokio tasks connected by
//! bounded channels, each carrying changelog batches.
//!
//! Every operator consumes and produces [`Message`]s: [`ChangeBatch`]es — an
//! Arrow record batch plus an `Int8` array of row kinds — and watermarks.
//! Channels are bounded, so a slow operator back-pressures its inputs.
//! Sources emit watermarks per partition; an operator that merges inputs
//! (after a hash exchange) takes the minimum over them; at the end of an
//! input its watermark jumps to +infinity (`i64::MAX`), so every window fires. Stateless
//! operators run once per input partition; keyed operators run
//! `parallelism.default` instances, each fed the rows of its share of the
//! keys by a hash [`exchange`]. The sink merges the outputs and turns the row
//! kinds into the leading `op` column (`+I`, `-U`, `+U`, `-D`).
//!
//! Dropping the result stream aborts every task.

mod aggregate_input;
mod append_only_top_n;
mod change_batch;
mod deduplicate;
mod exchange;
mod expiry_queue;
mod group_aggregate;
mod join;
mod join_state;
pub mod late_rows;
mod native_state;
mod over_aggregate;
mod reuse;
mod session_aggregate;
mod sink;
mod source;
mod state_ttl;
mod stateless;
mod temporal_join;
mod time_bounded_join;
mod top_n;
mod two_inputs;
mod value_multiset;
mod window_aggregate;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, SessionState, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use tributary_planner::changelog::changelog_schema;
use tributary_planner::streaming::{StreamNode, StreamPlan};

pub(crate) use change_batch::ChangeBatch;
use late_rows::{LateRowLog, LateRows};

/// Batches in flight between two operators, per channel.
const CHANNEL_CAPACITY: usize = 4;

/// What flows between operators.
#[derive(Debug, Clone)]
pub(crate) enum Message {
    /// Changelog rows.
    Data(ChangeBatch),
    /// No row with an event time at or before `ts` (ms) will follow from
    /// input `from` (the router index after an exchange; 0 elsewhere).
    Watermark { from: usize, ts: i64 },
    /// Input `from` is idle: it has sent no rows for
    /// `table.exec.source.idle-timeout`, so the minimum watermark leaves it
    /// out until it sends a watermark again (Flink's `WatermarkStatus.IDLE`).
    Idle { from: usize },
}

/// The watermark that ends an input: every window closes.
pub(crate) const END_OF_INPUT: i64 = i64::MAX;

/// The receiving end of an operator's output partition.
pub(crate) type Receiver = mpsc::Receiver<Result<Message>>;
/// The sending end of an operator's output partition.
pub(crate) type Sender = mpsc::Sender<Result<Message>>;

/// What a streaming run reports to the user: the late rows each window
/// operator dropped (counted, and kept in the session's `system.late_rows`).
#[derive(Debug, Default)]
pub struct StreamMetrics {
    late_rows: std::sync::Mutex<Vec<(String, Arc<std::sync::atomic::AtomicU64>)>>,
    /// Late rows kept in the log by this query so far.
    kept: Arc<std::sync::atomic::AtomicU64>,
    /// This query's number in the session's late-row log.
    query: u64,
    log: Option<Arc<LateRowLog>>,
}

impl StreamMetrics {
    /// Metrics of a new query whose late rows go to `log`.
    pub(crate) fn for_query(log: Option<Arc<LateRowLog>>) -> Self {
        let query = log.as_ref().map(|l| l.begin_query()).unwrap_or_default();
        Self {
            query,
            log,
            ..Self::default()
        }
    }

    /// The late-row recorder of the operator described by `name`.
    pub(crate) fn late_rows_recorder(&self, name: String) -> LateRows {
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        self.late_rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((name.clone(), counter.clone()));
        LateRows::new(
            name.into(),
            counter,
            self.kept.clone(),
            self.query,
            self.log.clone(),
        )
    }

    /// Late rows dropped so far, per operator with any: (operator, rows).
    pub fn late_rows(&self) -> Vec<(String, u64)> {
        let counters = self
            .late_rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<(String, u64)> = Vec::new();
        for (name, c) in counters.iter() {
            let n = c.load(std::sync::atomic::Ordering::Relaxed);
            match out.iter_mut().find(|(o, _)| o == name) {
                Some((_, total)) => *total += n,
                None => out.push((name.clone(), n)),
            }
        }
        out.retain(|(_, n)| *n > 0);
        out
    }

    /// The query's number in `system.late_rows` (column `query`), if the
    /// session keeps late rows.
    pub fn late_rows_query(&self) -> Option<u64> {
        self.log.as_ref().map(|_| self.query)
    }

    /// How many late rows were kept in `system.late_rows` (at most
    /// [`late_rows::KEPT_PER_QUERY`]).
    pub fn late_rows_kept(&self) -> u64 {
        self.kept
            .load(std::sync::atomic::Ordering::Relaxed)
            .min(late_rows::KEPT_PER_QUERY)
    }
}

/// A bounded channel between two operators.
pub(crate) fn channel() -> (Sender, Receiver) {
    mpsc::channel(CHANNEL_CAPACITY)
}

/// Starts `plan` and returns its changelog: batches whose first column is
/// `op` (Utf8: `+I`, `-U`, `+U`, `-D`) followed by the plan's columns.
///
/// # Errors
/// Errors starting a source; errors while running come through the stream.
pub async fn execute(
    plan: &StreamPlan,
    state: &SessionState,
    ctx: Arc<TaskContext>,
    parallelism: usize,
) -> Result<(SendableRecordBatchStream, Arc<StreamMetrics>)> {
    let mut tasks = JoinSet::new();
    let metrics = Arc::new(StreamMetrics::for_query(
        state.config().get_extension::<LateRowLog>(),
    ));
    let mut uses = HashMap::new();
    count_reused_uses(plan, &mut uses);
    let reused = std::sync::Mutex::new(ReusedOutputs {
        uses,
        copies: HashMap::new(),
    });
    let env = Env {
        state,
        ctx: &ctx,
        parallelism: parallelism.max(1),
        metrics: &metrics,
        reused: &reused,
    };
    let outputs = build_root(plan, &env, &mut tasks).await?;
    let schema = changelog_schema(&plan.schema);
    let out_schema = schema.clone();
    let merged = futures::stream::select_all(outputs.into_iter().map(|rx| {
        futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .boxed()
    }));
    // The tasks live as long as the stream: dropping it aborts them. When
    // every output has ended, a task that panicked is an error, never a
    // quiet end of input.
    let rows = merged.filter_map(move |item| {
        futures::future::ready(match item {
            Ok(Message::Data(change)) if change.num_rows() > 0 => {
                Some(with_op_column(&out_schema, change))
            }
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
    });
    let panics = futures::stream::once(async move {
        let mut tasks = tasks;
        while let Some(joined) = tasks.join_next().await {
            if let Err(e) = joined
                && e.is_panic()
            {
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                return Some(Err(DataFusionError::Execution(format!(
                    "a streaming operator failed: {message}"
                ))));
            }
        }
        None
    })
    .filter_map(futures::future::ready);
    let stream = rows.chain(panics);
    Ok((
        Box::pin(RecordBatchStreamAdapter::new(schema, stream)),
        metrics,
    ))
}

/// What every operator may need while starting.
struct Env<'a> {
    state: &'a SessionState,
    ctx: &'a Arc<TaskContext>,
    parallelism: usize,
    metrics: &'a Arc<StreamMetrics>,
    reused: &'a std::sync::Mutex<ReusedOutputs>,
}

/// The sub-plans run once for several uses ([`StreamNode::Reused`]).
struct ReusedOutputs {
    /// Uses of each id in the plan as it is started (a reused sub-plan
    /// inside another is counted once per start of the outer one).
    uses: HashMap<usize, usize>,
    /// The output partitions of each started id not yet handed to a use.
    copies: HashMap<usize, Vec<Vec<Receiver>>>,
}

/// Counts the uses of each [`StreamNode::Reused`] id that starting `plan`
/// meets: every occurrence, but the input only at the first (the others
/// are not started).
fn count_reused_uses(plan: &StreamPlan, uses: &mut HashMap<usize, usize>) {
    if let StreamNode::Reused { id, input } = &plan.node {
        let count = uses.entry(*id).or_default();
        *count += 1;
        if *count == 1 {
            count_reused_uses(input, uses);
        }
        return;
    }
    for input in plan.inputs() {
        count_reused_uses(input, uses);
    }
}

/// The schema of a key index (`GroupValues`) over evaluated key columns:
/// `key_0`, `key_1`, ... in their types, nullable.
pub(super) fn key_columns_schema(keys: &[ArrayRef]) -> arrow::datatypes::SchemaRef {
    Arc::new(arrow::datatypes::Schema::new(
        keys.iter()
            .enumerate()
            .map(|(i, k)| {
                arrow::datatypes::Field::new(format!("key_{i}"), k.data_type().clone(), true)
            })
            .collect::<Vec<_>>(),
    ))
}

pub(super) fn with_op_column(
    schema: &arrow::datatypes::SchemaRef,
    change: ChangeBatch,
) -> Result<RecordBatch> {
    let ops: ArrayRef = if change.all_inserts() {
        Arc::new(insert_strings(change.num_rows()))
    } else {
        Arc::new(op_strings(&change.ops))
    };
    let mut columns = Vec::with_capacity(change.data.num_columns() + 1);
    columns.push(ops);
    columns.extend(change.data.columns().iter().cloned());
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// `n` `+I` values: a zero-copy slice of a per-thread `+I` column that
/// grows to the largest batch seen (doubling), so an append-only result
/// pays nothing per batch for its `op` column.
fn insert_strings(n: usize) -> StringArray {
    thread_local! {
        static RUN: std::cell::RefCell<StringArray> = std::cell::RefCell::new(StringArray::from(Vec::<&str>::new()));
    }
    RUN.with(|run| {
        let mut run = run.borrow_mut();
        if run.len() < n {
            let len = n.max(2 * run.len()).max(8192);
            *run = op_strings(&arrow::array::Int8Array::from_value(
                tributary_planner::RowKind::Insert.code(),
                len,
            ));
        }
        run.slice(0, n)
    })
}

/// The `op` column for row-kind codes: every value is two bytes (`+I`,
/// `-U`, `+U`, `-D`), so the offsets are 0, 2, 4, ... and the bytes are
/// copied from a table — no per-row string building.
fn op_strings(codes: &arrow::array::Int8Array) -> StringArray {
    const OPS: [[u8; 2]; 4] = [*b"+I", *b"-U", *b"+U", *b"-D"];
    let n = codes.len();
    let mut bytes = Vec::with_capacity(2 * n);
    for code in codes.values().iter() {
        // Codes come from RowKind::code (0..=3); anything else reads as +I.
        bytes.extend_from_slice(&OPS[usize::try_from(*code).unwrap_or(0).min(3)]);
    }
    let offsets = arrow::buffer::OffsetBuffer::from_lengths(std::iter::repeat_n(2, n));
    // Every value is one of the ASCII strings above.
    StringArray::new(offsets, arrow::buffer::Buffer::from_vec(bytes), None)
}

/// The mini-batch of an updating aggregate, when
/// `table.exec.mini-batch.enabled` is set: (rows, longest wait).
fn mini_batch(state: &SessionState) -> Option<group_aggregate::MiniBatch> {
    let config = state
        .config()
        .get_extension::<tributary_planner::TributaryConfig>()?;
    config
        .mini_batch_enabled
        .then(|| group_aggregate::MiniBatch {
            rows: config.mini_batch_size.max(1),
            latency: std::time::Duration::from_millis(config.mini_batch_latency_ms),
        })
}

/// The stateless operators from `plan` down (filter, project, window
/// assign), composed bottom-up into one function, and the first operator
/// below them.
fn stateless_chain(plan: &StreamPlan) -> (&StreamPlan, stateless::Transform) {
    let mut nodes = Vec::new();
    let mut below = plan;
    loop {
        match &below.node {
            StreamNode::WindowAssign { input, .. }
            | StreamNode::Filter { input, .. }
            | StreamNode::Project { input, .. } => {
                nodes.push(below);
                below = input;
            }
            _ => break,
        }
    }
    let mut chain: Option<stateless::Transform> = None;
    for node in nodes.into_iter().rev() {
        let step = match &node.node {
            StreamNode::WindowAssign {
                time_index,
                kind,
                offset,
                ..
            } => stateless::window_assign(
                crate::window_assign::WindowAssigner {
                    time_index: *time_index,
                    kind: *kind,
                    offset: *offset,
                },
                node.schema.clone(),
            ),
            StreamNode::Filter { predicate, .. } => stateless::filter(predicate.clone()),
            StreamNode::Project { exprs, .. } => {
                stateless::project(exprs.clone(), node.schema.clone())
            }
            _ => continue,
        };
        chain = Some(stateless::compose(chain, step));
    }
    // `nodes` held `plan` itself, a stateless operator, so the chain is set.
    let chain = chain.unwrap_or_else(|| Arc::new(|change| Ok(change)));
    (below, chain)
}

/// Starts the operators of `plan`, whose outputs are the result stream,
/// which reads no watermark: a source feeding it directly (alone or through
/// stateless operators) sends none, sparing a scan of each batch's event
/// times and a channel message per batch. Any other plan is [`build`].
async fn build_root(
    plan: &StreamPlan,
    env: &Env<'_>,
    tasks: &mut JoinSet<()>,
) -> Result<Vec<Receiver>> {
    let (below, chain) = match &plan.node {
        StreamNode::Source { .. } => (plan, None),
        StreamNode::WindowAssign { .. }
        | StreamNode::Filter { .. }
        | StreamNode::Project { .. } => {
            let (below, chain) = stateless_chain(plan);
            (below, Some(chain))
        }
        _ => return build(plan, env, tasks).await,
    };
    match &below.node {
        StreamNode::Source { scan, .. } => {
            source::start(scan.clone(), None, chain, env.ctx.clone(), tasks)
        }
        _ => build(plan, env, tasks).await,
    }
}

/// The output columns by which `plan`'s output partitions are split: rows
/// equal in all of them are always in the same partition (one of the
/// `parallelism.default` a keyed operator runs). Known for a join on plain
/// columns (the hash exchange in front routed both sides by the key) on
/// the side whose key columns are never NULL-padded, through filters and
/// projections of those columns; None elsewhere.
fn key_partitioned(plan: &StreamPlan) -> Option<Vec<usize>> {
    use datafusion::common::JoinType;
    let column = column_index;
    let columns = |keys: &[Arc<dyn PhysicalExpr>], offset: usize| {
        keys.iter()
            .map(|k| column(k).map(|c| c + offset))
            .collect::<Option<Vec<usize>>>()
    };
    match &plan.node {
        StreamNode::Join {
            left,
            left_keys,
            right_keys,
            join_type,
            null_aware: false,
            ..
        }
        | StreamNode::TimeJoin {
            left,
            left_keys,
            right_keys,
            join_type,
            ..
        } => {
            if left_keys.is_empty() {
                return None;
            }
            match join_type {
                JoinType::Inner | JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti => {
                    columns(left_keys, 0)
                }
                JoinType::Right => columns(right_keys, left.schema.fields().len()),
                JoinType::RightSemi | JoinType::RightAnti => columns(right_keys, 0),
                _ => None,
            }
        }
        StreamNode::Filter { input, .. } | StreamNode::Reused { input, .. } => {
            key_partitioned(input)
        }
        StreamNode::Project { input, exprs } => key_partitioned(input)?
            .iter()
            .map(|p| exprs.iter().position(|e| column(e) == Some(*p)))
            .collect(),
        _ => None,
    }
}

/// Whether `input`'s partitions can feed a keyed operator grouping by
/// `group` directly: they are split by columns that are all among the
/// group's plain columns, so equal groups are in one partition.
fn partitioned_for(input: &StreamPlan, group: &[Arc<dyn PhysicalExpr>]) -> bool {
    let Some(by) = key_partitioned(input) else {
        return false;
    };
    !by.is_empty()
        && by
            .iter()
            .all(|c| group.iter().any(|g| column_index(g) == Some(*c)))
}

/// The input column a plain column reference reads.
fn column_index(e: &Arc<dyn PhysicalExpr>) -> Option<usize> {
    use datafusion::physical_expr::expressions::Column;
    e.downcast_ref::<Column>().map(Column::index)
}

/// Starts the operators of `plan` and returns its output partitions.
async fn build(plan: &StreamPlan, env: &Env<'_>, tasks: &mut JoinSet<()>) -> Result<Vec<Receiver>> {
    let inputs_of = async |input: &StreamPlan, tasks: &mut JoinSet<()>| {
        Box::pin(build(input, env, tasks)).await
    };
    let (ctx, parallelism) = (env.ctx, env.parallelism);
    match &plan.node {
        StreamNode::Source {
            scan, watermark, ..
        } => source::start(scan.clone(), *watermark, None, ctx.clone(), tasks),
        StreamNode::WindowAssign { .. }
        | StreamNode::Filter { .. }
        | StreamNode::Project { .. } => {
            // Chained: the run of stateless operators down to the first
            // other operator becomes one function.
            let (below, chain) = stateless_chain(plan);
            match &below.node {
                StreamNode::Source {
                    scan, watermark, ..
                } => source::start(scan.clone(), *watermark, Some(chain), ctx.clone(), tasks),
                _ => {
                    let inputs = inputs_of(below, tasks).await?;
                    Ok(stateless::map_each(inputs, tasks, chain))
                }
            }
        }
        StreamNode::SessionAggregate {
            input,
            time_index,
            gap,
            keys,
            outputs,
            aggregates,
            row_filter,
        } => {
            let inputs = inputs_of(input, tasks).await?;
            let routers = inputs.len();
            let instances =
                exchange::start_keyed_exchange(inputs, keys.clone(), parallelism, tasks);
            let late = env
                .metrics
                .late_rows_recorder(format!("session window aggregate (gap {gap} ms)"));
            instances
                .into_iter()
                .map(|rx| {
                    let spec = session_aggregate::SessionSpec {
                        time_index: *time_index,
                        gap: *gap,
                        keys: keys.clone(),
                        outputs: outputs.clone(),
                        aggregates: aggregates.clone(),
                        row_filter: row_filter.clone(),
                        schema: plan.schema.clone(),
                    };
                    session_aggregate::start(rx, routers, spec, late.clone(), tasks)
                })
                .collect()
        }
        StreamNode::WindowAggregate {
            input,
            group,
            aggregates,
            window_start,
            window_end,
        } => {
            let inputs = inputs_of(input, tasks).await?;
            let routers = inputs.len();
            let instances =
                exchange::start_keyed_exchange(inputs, group.clone(), parallelism, tasks);
            let late = env.metrics.late_rows_recorder(format!(
                "window aggregate GROUP BY {}",
                // The output names the group columns (no `@index` suffixes).
                plan.schema.fields()[..group.len()]
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            instances
                .into_iter()
                .map(|rx| {
                    let spec = window_aggregate::WindowSpec {
                        group: group.clone(),
                        aggregates: aggregates.clone(),
                        window_start: *window_start,
                        window_end: *window_end,
                        schema: plan.schema.clone(),
                    };
                    window_aggregate::start(rx, routers, spec, late.clone(), tasks)
                })
                .collect()
        }
        StreamNode::Reused { id, input } => {
            let copy = {
                let mut reused = env.reused.lock().unwrap_or_else(|e| e.into_inner());
                reused.copies.get_mut(id).and_then(Vec::pop)
            };
            if let Some(partitions) = copy {
                return Ok(partitions);
            }
            let outputs = inputs_of(input, tasks).await?;
            let mut reused = env.reused.lock().unwrap_or_else(|e| e.into_inner());
            let uses = reused.uses.get(id).copied().unwrap_or(1);
            if uses <= 1 {
                return Ok(outputs);
            }
            let mut per_use = reuse::fan_out(outputs, uses, tasks);
            let mine = per_use.pop().unwrap_or_default();
            reused.copies.insert(*id, per_use);
            Ok(mine)
        }
        StreamNode::Union { inputs } => {
            let mut out = Vec::new();
            for i in inputs {
                out.extend(inputs_of(i, tasks).await?);
            }
            Ok(out)
        }
        StreamNode::GroupAggregate {
            input,
            group,
            aggregates,
            state_ttl_ms,
        } => {
            let instances = if partitioned_for(input, group) {
                // Each input partition already holds every row of its
                // groups (e.g. a join on `A.id` under `GROUP BY A.id, ...`):
                // no exchange, only the key columns appended, in the task
                // of the stateless operators in between, if any.
                let append = exchange::key_appender(group.clone());
                match &input.node {
                    StreamNode::WindowAssign { .. }
                    | StreamNode::Filter { .. }
                    | StreamNode::Project { .. } => {
                        let (below, chain) = stateless_chain(input);
                        let inputs = inputs_of(below, tasks).await?;
                        stateless::map_each(inputs, tasks, stateless::compose(Some(chain), append))
                    }
                    _ => stateless::map_each(inputs_of(input, tasks).await?, tasks, append),
                }
            } else {
                let inputs = inputs_of(input, tasks).await?;
                exchange::start_keyed_exchange(inputs, group.clone(), parallelism, tasks)
            };
            instances
                .into_iter()
                .map(|rx| {
                    group_aggregate::start(
                        rx,
                        group.clone(),
                        aggregates.clone(),
                        input.schema.clone(),
                        plan.schema.clone(),
                        mini_batch(env.state),
                        *state_ttl_ms,
                        tasks,
                    )
                })
                .collect()
        }
        StreamNode::TopN {
            input,
            partition_by,
            order_by,
            limit,
        } => {
            let inputs = inputs_of(input, tasks).await?;
            let instances =
                exchange::start_hash_exchange(inputs, partition_by.clone(), parallelism, tasks);
            let spec = top_n::TopNSpec {
                partition_by: partition_by.clone(),
                order_by: order_by.clone(),
                limit: *limit,
                append_only: input.changelog
                    == tributary_planner::changelog::ChangelogMode::AppendOnly,
                input: input.schema.clone(),
                schema: plan.schema.clone(),
            };
            instances
                .into_iter()
                .map(|rx| top_n::start(rx, spec.clone(), tasks))
                .collect()
        }
        StreamNode::OverAggregate {
            input,
            window_exprs,
            partition_by,
            time_index,
            retention,
        } => {
            let inputs = inputs_of(input, tasks).await?;
            let routers = inputs.len();
            let instances =
                exchange::start_hash_exchange(inputs, partition_by.clone(), parallelism, tasks);
            let late = env
                .metrics
                .late_rows_recorder(format!("over aggregate ({retention})"));
            let spec = over_aggregate::OverSpec {
                window_exprs: window_exprs.clone(),
                partition_by: partition_by.clone(),
                time_index: *time_index,
                retention: *retention,
                input: input.schema.clone(),
                schema: plan.schema.clone(),
            };
            instances
                .into_iter()
                .map(|rx| {
                    over_aggregate::start(
                        rx,
                        routers,
                        spec.clone(),
                        ctx.clone(),
                        late.clone(),
                        tasks,
                    )
                })
                .collect()
        }
        StreamNode::Join {
            left,
            right,
            join_type,
            left_keys,
            right_keys,
            filter,
            null_equals_null,
            null_aware,
            state_ttl_ms,
        } => {
            // Both sides go through the same hash routing (same key types,
            // same seed, same instance count), so equal keys meet in one
            // instance.
            let left_inputs = inputs_of(left, tasks).await?;
            let right_inputs = inputs_of(right, tasks).await?;
            let (left_routers, right_routers) = (left_inputs.len(), right_inputs.len());
            // NOT IN needs every right row in one place: no key routes to
            // one instance.
            let routing = |keys: &Vec<_>| if *null_aware { vec![] } else { keys.clone() };
            let lefts =
                exchange::start_hash_exchange(left_inputs, routing(left_keys), parallelism, tasks);
            let rights = exchange::start_hash_exchange(
                right_inputs,
                routing(right_keys),
                parallelism,
                tasks,
            );
            let spec = join::JoinSpec {
                join_type: *join_type,
                keys: [left_keys.clone(), right_keys.clone()],
                filter: filter.clone(),
                null_equals_null: *null_equals_null,
                null_aware: *null_aware,
                state_ttl_ms: *state_ttl_ms,
                append_only: [
                    left.changelog == tributary_planner::changelog::ChangelogMode::AppendOnly,
                    right.changelog == tributary_planner::changelog::ChangelogMode::AppendOnly,
                ],
                inputs: [left.schema.clone(), right.schema.clone()],
                schema: plan.schema.clone(),
            };
            lefts
                .into_iter()
                .zip(rights)
                .map(|(l, r)| join::start(l, left_routers, r, right_routers, spec.clone(), tasks))
                .collect()
        }
        StreamNode::TimeJoin {
            left,
            right,
            join_type,
            left_keys,
            right_keys,
            filter,
            null_equals_null,
            bound,
            expiries,
        } => {
            // Same routing on both sides, as for the regular join.
            let left_inputs = inputs_of(left, tasks).await?;
            let right_inputs = inputs_of(right, tasks).await?;
            let (left_routers, right_routers) = (left_inputs.len(), right_inputs.len());
            let lefts =
                exchange::start_hash_exchange(left_inputs, left_keys.clone(), parallelism, tasks);
            let rights =
                exchange::start_hash_exchange(right_inputs, right_keys.clone(), parallelism, tasks);
            let name = match bound {
                tributary_planner::time_join::TimeBound::Interval { .. } => "interval join",
                tributary_planner::time_join::TimeBound::Window { .. } => "window join",
                tributary_planner::time_join::TimeBound::Range { .. } => "range join",
            };
            let late = env.metrics.late_rows_recorder(name.to_string());
            let spec = time_bounded_join::TimeJoinSpec {
                join_type: *join_type,
                keys: [left_keys.clone(), right_keys.clone()],
                filter: filter.clone(),
                null_equals_null: *null_equals_null,
                bound: *bound,
                expiries: expiries.clone(),
                inputs: [left.schema.clone(), right.schema.clone()],
                schema: plan.schema.clone(),
            };
            lefts
                .into_iter()
                .zip(rights)
                .map(|(l, r)| {
                    time_bounded_join::start(
                        l,
                        left_routers,
                        r,
                        right_routers,
                        spec.clone(),
                        late.clone(),
                        tasks,
                    )
                })
                .collect()
        }
        StreamNode::TemporalJoin {
            left,
            right,
            join_type,
            left_keys,
            right_keys,
            filter,
            left_time,
            right_time,
        } => {
            let left_inputs = inputs_of(left, tasks).await?;
            let right_inputs = inputs_of(right, tasks).await?;
            let (left_routers, right_routers) = (left_inputs.len(), right_inputs.len());
            let lefts =
                exchange::start_hash_exchange(left_inputs, left_keys.clone(), parallelism, tasks);
            let rights =
                exchange::start_hash_exchange(right_inputs, right_keys.clone(), parallelism, tasks);
            let late = env.metrics.late_rows_recorder("temporal join".to_string());
            let spec = temporal_join::TemporalJoinSpec {
                join_type: *join_type,
                keys: [left_keys.clone(), right_keys.clone()],
                filter: filter.clone(),
                times: [*left_time, *right_time],
                inputs: [left.schema.clone(), right.schema.clone()],
                schema: plan.schema.clone(),
            };
            lefts
                .into_iter()
                .zip(rights)
                .map(|(l, r)| {
                    temporal_join::start(
                        l,
                        left_routers,
                        r,
                        right_routers,
                        spec.clone(),
                        late.clone(),
                        tasks,
                    )
                })
                .collect()
        }
        StreamNode::Sink { input, target, .. } => {
            let inputs = inputs_of(input, tasks).await?;
            sink::start(
                inputs,
                input.schema.clone(),
                target.clone(),
                env.state,
                ctx.clone(),
                tasks,
            )
            .await
        }
    }
}

/// Sends `result` downstream; false if the receiver is gone (the query was
/// cancelled or failed elsewhere), so the task should stop.
pub(crate) async fn send(tx: &Sender, result: Result<Message>) -> bool {
    tx.send(result).await.is_ok()
}

/// Sends changelog rows (nothing if there are none).
pub(crate) async fn send_data(tx: &Sender, result: Result<ChangeBatch>) -> bool {
    match result {
        Ok(c) if c.num_rows() == 0 => true,
        other => send(tx, other.map(Message::Data)).await,
    }
}

/// `array` as type `want`, cast where it differs: DataFusion may type an
/// aggregate's result or a key other than the logical plan does, and
/// arrow-row may decode a dictionary as its values.
pub(crate) fn conform_column(
    array: ArrayRef,
    want: &arrow::datatypes::DataType,
) -> Result<ArrayRef> {
    if array.data_type() == want {
        Ok(array)
    } else {
        Ok(arrow::compute::cast(&array, want)?)
    }
}

/// What a window-like operator does after handling a message: nothing
/// (`Ok(None)`), send the rows the watermark released and then the
/// watermark (ms) itself, or send the error. Returns whether the operator
/// goes on (false: the receiver is gone, or an error was sent).
pub(crate) async fn send_released(
    tx: &Sender,
    released: Result<Option<(Option<ChangeBatch>, i64)>>,
) -> bool {
    match released {
        Ok(None) => true,
        Ok(Some((rows, watermark))) => {
            if let Some(rows) = rows
                && !send_data(tx, Ok(rows)).await
            {
                return false;
            }
            send(
                tx,
                Ok(Message::Watermark {
                    from: 0,
                    ts: watermark,
                }),
            )
            .await
        }
        Err(e) => {
            let _ = send(tx, Err(e)).await;
            false
        }
    }
}

/// The error a task reports when it panicked or was torn down.
#[allow(dead_code)]
pub(crate) fn internal(message: impl Into<String>) -> DataFusionError {
    DataFusionError::Internal(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_column_spells_each_row_kind() {
        let codes = arrow::array::Int8Array::from(vec![0, 1, 2, 3, 0]);
        let ops = op_strings(&codes);
        let values: Vec<&str> = ops.iter().map(|v| v.unwrap()).collect();
        assert_eq!(values, ["+I", "-U", "+U", "-D", "+I"]);
        let inserts = insert_strings(3);
        assert_eq!(inserts.iter().flatten().collect::<Vec<_>>(), ["+I"; 3]);
        assert_eq!(insert_strings(20_000).len(), 20_000);
        assert_eq!(insert_strings(20_000).value(19_999), "+I");
        assert!(arrow::array::Array::is_empty(&op_strings(
            &arrow::array::Int8Array::from(Vec::<i8>::new())
        )));
    }
}

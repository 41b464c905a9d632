//! The STREAMING runtime: runs a [`StreamPlan`] as tokio tasks connected by
//! bounded channels, each carrying changelog batches.
//!
//! Every operator consumes and produces [`ChangeBatch`]es — an Arrow record
//! batch plus an `Int8` array of row kinds — so a slow operator
//! back-pressures its inputs through the bounded channels. Stateless
//! operators run once per input partition; keyed operators run
//! `parallelism.default` instances, each fed the rows of its share of the
//! keys by a hash [`exchange`]. The sink merges the outputs and turns the row
//! kinds into the leading `op` column (`+I`, `-U`, `+U`, `-D`).
//!
//! Dropping the result stream aborts every task.

mod change_batch;
mod exchange;
mod group_aggregate;
mod min_max;
mod sink;
mod source;
mod stateless;

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, SessionState, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use tributary_planner::changelog::changelog_schema;
use tributary_planner::streaming::{StreamNode, StreamPlan};

pub(crate) use change_batch::ChangeBatch;

/// Batches in flight between two operators, per channel.
const CHANNEL_CAPACITY: usize = 4;

/// The receiving end of an operator's output partition.
pub(crate) type Receiver = mpsc::Receiver<Result<ChangeBatch>>;
/// The sending end of an operator's output partition.
pub(crate) type Sender = mpsc::Sender<Result<ChangeBatch>>;

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
) -> Result<SendableRecordBatchStream> {
    let mut tasks = JoinSet::new();
    let outputs = build(plan, state, &ctx, parallelism.max(1), &mut tasks).await?;
    let schema = changelog_schema(&plan.schema);
    let out_schema = schema.clone();
    let merged = futures::stream::select_all(outputs.into_iter().map(|rx| {
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
    }));
    // The tasks live as long as the stream: dropping it aborts them.
    let stream = merged
        .map(move |item| {
            let _keep_alive = &tasks;
            item.and_then(|change| with_op_column(&out_schema, change))
        })
        .filter(|item| futures::future::ready(!matches!(item, Ok(b) if b.num_rows() == 0)));
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
}

fn with_op_column(schema: &arrow::datatypes::SchemaRef, change: ChangeBatch) -> Result<RecordBatch> {
    let ops: ArrayRef = Arc::new(StringArray::from_iter_values(change.kinds().map(|k| k.short_string())));
    let mut columns = Vec::with_capacity(change.data.num_columns() + 1);
    columns.push(ops);
    columns.extend(change.data.columns().iter().cloned());
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Starts the operators of `plan` and returns its output partitions.
async fn build(
    plan: &StreamPlan,
    state: &SessionState,
    ctx: &Arc<TaskContext>,
    parallelism: usize,
    tasks: &mut JoinSet<()>,
) -> Result<Vec<Receiver>> {
    let inputs_of = async |input: &StreamPlan, tasks: &mut JoinSet<()>| Box::pin(build(input, state, ctx, parallelism, tasks)).await;
    match &plan.node {
        StreamNode::Source { scan, .. } => source::start(scan.clone(), ctx.clone(), tasks),
        StreamNode::Filter { input, predicate } => {
            let inputs = inputs_of(input, tasks).await?;
            Ok(stateless::start_filter(inputs, predicate.clone(), tasks))
        }
        StreamNode::Project { input, exprs } => {
            let inputs = inputs_of(input, tasks).await?;
            Ok(stateless::start_project(inputs, exprs.clone(), plan.schema.clone(), tasks))
        }
        StreamNode::Union { inputs } => {
            let mut out = Vec::new();
            for i in inputs {
                out.extend(inputs_of(i, tasks).await?);
            }
            Ok(out)
        }
        StreamNode::GroupAggregate { input, group, aggregates } => {
            let inputs = inputs_of(input, tasks).await?;
            let instances = exchange::start_hash_exchange(inputs, group.clone(), parallelism, tasks);
            instances
                .into_iter()
                .map(|rx| group_aggregate::start(rx, group.clone(), aggregates.clone(), plan.schema.clone(), tasks))
                .collect()
        }
        StreamNode::Sink { input, target, .. } => {
            let inputs = inputs_of(input, tasks).await?;
            sink::start(inputs, input.schema.clone(), target.clone(), state, ctx.clone(), tasks).await
        }
    }
}

/// Sends `result` downstream; false if the receiver is gone (the query was
/// cancelled or failed elsewhere), so the task should stop.
pub(crate) async fn send(tx: &Sender, result: Result<ChangeBatch>) -> bool {
    tx.send(result).await.is_ok()
}

/// The error a task reports when it panicked or was torn down.
#[allow(dead_code)]
pub(crate) fn internal(message: impl Into<String>) -> DataFusionError {
    DataFusionError::Internal(message.into())
}

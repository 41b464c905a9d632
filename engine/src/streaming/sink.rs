//! The sink of a streaming `INSERT INTO`: hands the append-only stream to
//! the target table's own DataFusion sink (`TableProvider::insert_into`), so
//! a filesystem table writes files in its format and an in-memory table
//! appends batches, exactly as a BATCH `INSERT` does.
//!
//! The running operators feed a one-partition `StreamingTableExec`, which is
//! the sink plan's input; the sink's `count` row comes out when the input
//! ends (never, for an unbounded source).

use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use futures::StreamExt;
use tokio::task::JoinSet;

use super::{ChangeBatch, Message, Receiver, channel, send_data};

/// Starts the sink: returns one receiver that yields the `count` row.
pub(super) async fn start(
    inputs: Vec<Receiver>,
    input_schema: SchemaRef,
    target: Arc<dyn TableProvider>,
    state: &dyn Session,
    ctx: Arc<TaskContext>,
    tasks: &mut JoinSet<()>,
) -> Result<Vec<Receiver>> {
    if let Some(sink) = tributary_connectors::print::changelog_sink(&target) {
        return Ok(vec![start_changelog_sink(
            inputs,
            input_schema,
            sink,
            tasks,
        )?]);
    }
    let partition = Arc::new(ChannelPartition {
        schema: input_schema.clone(),
        inputs: Mutex::new(Some(inputs)),
    });
    let input = Arc::new(StreamingTableExec::try_new(
        input_schema,
        vec![partition],
        None,
        vec![],
        false,
        None,
    )?);
    let plan = target.insert_into(state, input, InsertOp::Append).await?;
    let (tx, rx) = channel();
    let mut stream = plan.execute(0, ctx)?;
    tasks.spawn(async move {
        while let Some(batch) = stream.next().await {
            let item = batch.map(ChangeBatch::inserts);
            let failed = item.is_err();
            if !send_data(&tx, item).await || failed {
                return;
            }
        }
    });
    Ok(vec![rx])
}

/// Feeds every changelog row, with its op, to a sink that takes updates.
fn start_changelog_sink(
    inputs: Vec<Receiver>,
    input_schema: SchemaRef,
    sink: Arc<dyn tributary_connectors::print::ChangelogSink>,
    tasks: &mut JoinSet<()>,
) -> Result<Receiver> {
    let (tx, rx) = channel();
    let with_op = tributary_planner::changelog::changelog_schema(&input_schema);
    let count_schema = Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("count", arrow::datatypes::DataType::UInt64, false),
    ]));
    tasks.spawn(async move {
        let mut merged = futures::stream::select_all(inputs.into_iter().map(|rx| {
            futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            })
            .boxed()
        }));
        let mut rows = 0u64;
        while let Some(item) = merged.next().await {
            let written = match item {
                Ok(Message::Data(change)) => {
                    rows += change.num_rows() as u64;
                    super::with_op_column(&with_op, change)
                        .and_then(|batch| sink.write_changelog(&batch))
                }
                Ok(Message::Watermark { .. } | Message::Idle { .. }) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                let _ = send_data(&tx, Err(e)).await;
                return;
            }
        }
        let count = arrow::record_batch::RecordBatch::try_new(
            count_schema,
            vec![Arc::new(arrow::array::UInt64Array::from(vec![rows]))],
        )
        .map_err(Into::into);
        let _ = send_data(&tx, count.map(ChangeBatch::inserts)).await;
    });
    Ok(rx)
}

/// The rows of the running operators as one DataFusion partition.
#[derive(Debug)]
struct ChannelPartition {
    schema: SchemaRef,
    inputs: Mutex<Option<Vec<Receiver>>>,
}

impl PartitionStream for ChannelPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let inputs = self.inputs.lock().map(|mut g| g.take()).ok().flatten();
        let schema = self.schema.clone();
        let Some(inputs) = inputs else {
            let error = futures::stream::once(async {
                Err(DataFusionError::Internal(
                    "a streaming sink's input can be read once".into(),
                ))
            });
            return Box::pin(RecordBatchStreamAdapter::new(schema, error));
        };
        let merged = futures::stream::select_all(inputs.into_iter().map(|rx| {
            futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            })
            .boxed()
        }));
        // The planner only lets append-only input reach a sink, so every row is +I.
        let rows = merged.filter_map(|item| {
            futures::future::ready(match item {
                Ok(Message::Data(change)) => Some(Ok(change.data)),
                Ok(Message::Watermark { .. } | Message::Idle { .. }) => None,
                Err(e) => Some(Err(e)),
            })
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, rows))
    }
}

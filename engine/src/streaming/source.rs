//! The source operator: runs each partition of DataFusion's scan of a table
//! and emits its rows as `+I`, followed — when the table declares an event
//! time — by a watermark: the largest event time the partition has read,
//! minus the declared delay (Flink's bounded out-of-orderness). At the end
//! of the partition the watermark goes to +infinity.
//!
//! Any table a BATCH query can scan can be read as a stream this way; an
//! unbounded source's scan simply never ends.
//!
//! With `table.exec.source.idle-timeout` set, a partition that reads no row
//! for that long tells downstream it is idle, so a partition that has no
//! data (an empty split, a quiet directory) does not hold every window
//! open; its next rows make it active again (Flink's source idleness).

use std::sync::Arc;

use arrow::array::Array;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use futures::StreamExt;
use tokio::task::JoinSet;

use tributary_planner::streaming::SourceWatermark;

use super::stateless::Transform;
use super::{ChangeBatch, END_OF_INPUT, Message, Receiver, channel, send, send_data};

/// Starts one task per partition of `scan`; `chained`, the stateless
/// operators chained to the source, runs on each batch in the same task
/// (after the watermark is read from the batch as the table has it).
pub(super) fn start(
    scan: Arc<dyn ExecutionPlan>,
    watermark: Option<SourceWatermark>,
    chained: Option<Transform>,
    ctx: Arc<TaskContext>,
    tasks: &mut JoinSet<()>,
) -> Result<Vec<Receiver>> {
    let partitions = scan.properties().partitioning.partition_count().max(1);
    let mut outputs = Vec::with_capacity(partitions);
    for p in 0..partitions {
        let (tx, rx) = channel();
        let mut stream = scan.execute(p, ctx.clone())?;
        let chained = chained.clone();
        tasks.spawn(async move {
            let mut current = i64::MIN;
            let idle_timeout = watermark
                .and_then(|w| w.idle_timeout_ms)
                .map(std::time::Duration::from_millis);
            let mut idle = false;
            loop {
                let next = match idle_timeout {
                    Some(timeout) if !idle => {
                        match tokio::time::timeout(timeout, stream.next()).await {
                            Ok(next) => next,
                            Err(_) => {
                                idle = true;
                                if !send(&tx, Ok(Message::Idle { from: 0 })).await {
                                    return;
                                }
                                continue;
                            }
                        }
                    }
                    _ => stream.next().await,
                };
                let Some(batch) = next else { break };
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = send(&tx, Err(e)).await;
                        return;
                    }
                };
                let next = match watermark {
                    Some(w) => match max_event_time(&batch, w.column) {
                        Ok(Some(max)) => Some(max.saturating_sub(w.delay_ms)),
                        Ok(None) => None,
                        Err(e) => {
                            let _ = send(&tx, Err(e)).await;
                            return;
                        }
                    },
                    None => None,
                };
                let change = ChangeBatch::inserts(batch);
                let out = match &chained {
                    Some(f) => f(change),
                    None => Ok(change),
                };
                let failed = out.is_err();
                if !send_data(&tx, out).await || failed {
                    return;
                }
                // An idle partition becomes active again by sending its
                // watermark, even one that has not moved.
                let reactivated = std::mem::take(&mut idle);
                let advanced = next.is_some_and(|ts| ts > current);
                if let Some(ts) = next.filter(|_| advanced) {
                    current = ts;
                }
                if (advanced || reactivated)
                    && !send(
                        &tx,
                        Ok(Message::Watermark {
                            from: 0,
                            ts: current,
                        }),
                    )
                    .await
                {
                    return;
                }
            }
            let _ = send(
                &tx,
                Ok(Message::Watermark {
                    from: 0,
                    ts: END_OF_INPUT,
                }),
            )
            .await;
        });
        outputs.push(rx);
    }
    Ok(outputs)
}

/// The largest event time (ms) in `column` of `batch`, if any is non-NULL.
fn max_event_time(batch: &RecordBatch, column: usize) -> Result<Option<i64>> {
    let times = batch.column(column);
    if !matches!(times.data_type(), DataType::Timestamp(..)) {
        return Ok(None);
    }
    Ok(arrow::compute::max(&super::aggregate_input::event_time_ms(
        times,
    )?))
}

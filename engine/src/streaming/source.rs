//! The source operator: runs each partition of DataFusion's scan of a table
//! and emits its rows as `+I`.
//!
//! Any table a BATCH query can scan can be read as a stream this way; an
//! unbounded source's scan simply never ends.

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use futures::StreamExt;
use tokio::task::JoinSet;

use super::{ChangeBatch, Receiver, channel, send};

/// Starts one task per partition of `scan`.
pub(super) fn start(scan: Arc<dyn ExecutionPlan>, ctx: Arc<TaskContext>, tasks: &mut JoinSet<()>) -> Result<Vec<Receiver>> {
    let partitions = scan.properties().partitioning.partition_count().max(1);
    let mut outputs = Vec::with_capacity(partitions);
    for p in 0..partitions {
        let (tx, rx) = channel();
        let mut stream = scan.execute(p, ctx.clone())?;
        tasks.spawn(async move {
            while let Some(batch) = stream.next().await {
                let item = batch.map(ChangeBatch::inserts);
                let failed = item.is_err();
                if !send(&tx, item).await || failed {
                    return;
                }
            }
        });
        outputs.push(rx);
    }
    Ok(outputs)
}

//! Runs a sub-plan that occurs more than once in a query once, and hands
//! each of its uses a copy of its output: the runtime half of
//! [`StreamNode::Reused`](tributary_planner::streaming::StreamNode::Reused),
//! Flink's sub-plan reuse (`table.optimizer.reuse-sub-plan-enabled`, on by
//! default there).
//!
//! Why: a query may spell the same sub-query twice. Nexmark q5 counts the
//! bids per auction and HOP window once for the counts it returns and again
//! for their maximum per window; run twice, that count is most of the
//! query's work.
//!
//! How: each output partition of the shared sub-plan gets a task that sends
//! every message it reads to one channel per use. Batches are shared
//! (`Arc`ed Arrow arrays, never copied); watermarks and idle marks go to
//! every use, so each use sees the partitions, partitioning and event time
//! the sub-plan has; an error goes to every use. A use that stops reading
//! is dropped from the fan-out; the task ends with its input or when no use
//! is left.
//!
//! Back-pressure: the task waits for the slowest use, so one use runs at
//! most a channel's capacity ahead of another. That cannot deadlock, since
//! every streaming operator reads all of its inputs as they come (none
//! waits for one input before reading another).

use std::sync::Arc;

use datafusion::error::DataFusionError;
use tokio::task::JoinSet;

use super::{Receiver, Sender, channel, send};

/// Fans each partition of `inputs` out to `uses` copies; returns, per use,
/// its partitions (in `inputs`' order).
pub(super) fn fan_out(
    inputs: Vec<Receiver>,
    uses: usize,
    tasks: &mut JoinSet<()>,
) -> Vec<Vec<Receiver>> {
    let mut per_use: Vec<Vec<Receiver>> = (0..uses).map(|_| Vec::new()).collect();
    for mut input in inputs {
        let mut senders: Vec<Sender> = Vec::with_capacity(uses);
        for partitions in &mut per_use {
            let (tx, rx) = channel();
            senders.push(tx);
            partitions.push(rx);
        }
        tasks.spawn(async move {
            while let Some(item) = input.recv().await {
                let item = item.map_err(Arc::new);
                let mut open = Vec::with_capacity(senders.len());
                for tx in senders {
                    let copy = match &item {
                        Ok(message) => Ok(message.clone()),
                        Err(e) => Err(DataFusionError::Shared(e.clone())),
                    };
                    if send(&tx, copy).await {
                        open.push(tx);
                    }
                }
                senders = open;
                if senders.is_empty() {
                    return;
                }
            }
        });
    }
    per_use
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streaming::{ChangeBatch, Message};
    use arrow::array::{Int8Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;

    fn data(values: &[i64]) -> Message {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let column = Arc::new(Int64Array::from(values.to_vec()));
        Message::Data(ChangeBatch {
            ops: Arc::new(Int8Array::from(vec![0; values.len()])),
            data: RecordBatch::try_new(schema, vec![column]).unwrap(),
        })
    }

    /// What one receiver got: each batch's values, or `wm <ts>`, or `error`.
    async fn drain(mut rx: Receiver) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(item) = rx.recv().await {
            out.push(match item {
                Ok(Message::Data(c)) => format!(
                    "{:?}",
                    c.data
                        .column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .unwrap()
                        .values()
                        .to_vec()
                ),
                Ok(Message::Watermark { ts, .. }) => format!("wm {ts}"),
                Ok(Message::Idle { .. }) => "idle".into(),
                Err(e) => format!("error: {e}"),
            });
        }
        out
    }

    #[tokio::test]
    async fn every_use_gets_every_message_of_its_partition_in_order() {
        let mut tasks = JoinSet::new();
        let (tx0, rx0) = channel();
        let (tx1, rx1) = channel();
        let mut uses = fan_out(vec![rx0, rx1], 2, &mut tasks);
        assert_eq!(uses.len(), 2);
        assert!(uses.iter().all(|u| u.len() == 2));
        tokio::spawn(async move {
            send(&tx0, Ok(data(&[1, 2]))).await;
            send(&tx0, Ok(Message::Watermark { from: 0, ts: 5 })).await;
            send(&tx0, Ok(data(&[3]))).await;
            send(&tx1, Ok(data(&[7]))).await;
            send(
                &tx1,
                Err(DataFusionError::Execution("bad row at line 3".into())),
            )
            .await;
        });
        let second = uses.pop().unwrap();
        let first = uses.pop().unwrap();
        for partitions in [first, second] {
            let mut partitions = partitions.into_iter();
            let p0 = drain(partitions.next().unwrap()).await;
            let p1 = drain(partitions.next().unwrap()).await;
            assert_eq!(p0, vec!["[1, 2]", "wm 5", "[3]"]);
            assert_eq!(p1.len(), 2);
            assert_eq!(p1[0], "[7]");
            assert!(p1[1].contains("bad row at line 3"), "{}", p1[1]);
        }
    }

    #[tokio::test]
    async fn a_use_that_stops_reading_does_not_stop_the_others() {
        let mut tasks = JoinSet::new();
        let (tx, rx) = channel();
        let mut uses = fan_out(vec![rx], 2, &mut tasks);
        // The second use goes away before anything is sent.
        drop(uses.pop());
        let kept = uses.pop().unwrap().pop().unwrap();
        tokio::spawn(async move {
            for v in 0..20 {
                send(&tx, Ok(data(&[v]))).await;
            }
        });
        let got = drain(kept).await;
        assert_eq!(got.len(), 20);
        assert_eq!(got[19], "[19]");
    }
}

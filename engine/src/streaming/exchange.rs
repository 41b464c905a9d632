//! The hash exchange in front of a keyed operator: routes each row to the
//! operator instance that owns its key, so every change of a key — inserts
//! and the retractions that undo them — meets the same state, in order.
//!
//! Keys are hashed with DataFusion's vectorized `create_hashes`; the rows
//! for each instance are gathered with Arrow's `take`.

use std::sync::Arc;

use arrow::array::UInt32Array;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::error::Result;
use datafusion::physical_expr::PhysicalExpr;
use tokio::task::JoinSet;

use super::{ChangeBatch, END_OF_INPUT, Message, Receiver, Sender, channel, send};

/// Starts one router task per input and returns `instances` receivers, one
/// per instance of the keyed operator. With no key, every row goes to
/// instance 0 (a global aggregate has one state). Watermarks go to every
/// instance, tagged with the router's index so an instance can take the
/// minimum over its inputs; at the end of its input a router sends the
/// final watermark.
pub(super) fn start_hash_exchange(
    inputs: Vec<Receiver>,
    key: Vec<Arc<dyn PhysicalExpr>>,
    instances: usize,
    tasks: &mut JoinSet<()>,
) -> Vec<Receiver> {
    let instances = if key.is_empty() { 1 } else { instances };
    let (senders, receivers): (Vec<Sender>, Vec<Receiver>) =
        (0..instances).map(|_| channel()).unzip();
    for (router, mut input) in inputs.into_iter().enumerate() {
        let senders = senders.clone();
        let key = key.clone();
        tasks.spawn(async move {
            let mut ended = false;
            while let Some(item) = input.recv().await {
                let change = match item {
                    Ok(Message::Data(change)) => change,
                    Ok(Message::Watermark { ts, .. }) => {
                        ended |= ts == END_OF_INPUT;
                        for tx in &senders {
                            if !send(tx, Ok(Message::Watermark { from: router, ts })).await {
                                return;
                            }
                        }
                        continue;
                    }
                    Ok(Message::Idle { .. }) => {
                        for tx in &senders {
                            if !send(tx, Ok(Message::Idle { from: router })).await {
                                return;
                            }
                        }
                        continue;
                    }
                    Err(e) => {
                        let _ = send(&senders[0], Err(e)).await;
                        return;
                    }
                };
                let routed = route(&change, &key, senders.len());
                match routed {
                    Ok(parts) => {
                        for (instance, part) in parts.into_iter().enumerate() {
                            if let Some(part) = part
                                && !send(&senders[instance], Ok(Message::Data(part))).await
                            {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = send(&senders[0], Err(e)).await;
                        return;
                    }
                }
            }
            if !ended {
                for tx in &senders {
                    let _ = send(
                        tx,
                        Ok(Message::Watermark {
                            from: router,
                            ts: END_OF_INPUT,
                        }),
                    )
                    .await;
                }
            }
        });
    }
    receivers
}

/// Splits `change` by the hash of its key into `n` parts (None where empty).
fn route(
    change: &ChangeBatch,
    key: &[Arc<dyn PhysicalExpr>],
    n: usize,
) -> Result<Vec<Option<ChangeBatch>>> {
    if n == 1 {
        return Ok(vec![Some(change.clone())]);
    }
    let rows = change.num_rows();
    let columns = key
        .iter()
        .map(|e| {
            e.evaluate(&change.data)?
                .into_array(rows)
                .and_then(super::aggregate_input::key_column)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut hashes = vec![0u64; rows];
    create_hashes(&columns, &RandomState::with_seed(0), &mut hashes)?;
    let mut indices: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (row, h) in hashes.iter().enumerate() {
        indices[(*h % n as u64) as usize].push(row as u32);
    }
    indices
        .into_iter()
        .map(|idx| {
            if idx.is_empty() {
                Ok(None)
            } else if idx.len() == rows {
                Ok(Some(change.clone()))
            } else {
                change.take(&UInt32Array::from(idx)).map(Some)
            }
        })
        .collect()
}

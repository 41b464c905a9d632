//! The hash exchange in front of a keyed operator: routes each row to the
//! operator instance that owns its key, so every change of a key — inserts
//! and the retractions that undo them — meets the same state, in order.
//!
//! Keys are hashed with DataFusion's vectorized `create_hashes`; the rows
//! for each instance are gathered with Arrow's `take`.
//!
//! In front of an aggregate the exchange is *keyed*
//! ([`start_keyed_exchange`]): the key columns it evaluated to route a row
//! travel with the row, appended after the input's columns, so the
//! aggregate does not evaluate its group expressions a second time (a
//! computed key such as `to_char(ts, '%Y-%m-%d')` costs as much as the rest
//! of the aggregation). [`split_keys`] takes them off again.

use std::sync::Arc;

use arrow::array::{ArrayRef, UInt32Array};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::error::{DataFusionError, Result};
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
    start(inputs, key, instances, false, tasks)
}

/// Like [`start_hash_exchange`], but every data batch leaves with the
/// evaluated key columns appended after its own (one per key expression,
/// named `__key_0`, `__key_1`, ...; with one instance too), for
/// [`split_keys`] to take off.
pub(super) fn start_keyed_exchange(
    inputs: Vec<Receiver>,
    key: Vec<Arc<dyn PhysicalExpr>>,
    instances: usize,
    tasks: &mut JoinSet<()>,
) -> Vec<Receiver> {
    start(inputs, key, instances, true, tasks)
}

/// Splits a batch from a keyed exchange into the input's rows and the
/// `keys` key columns appended to them.
///
/// # Errors
/// The batch has fewer than `keys` columns (it did not come through a
/// keyed exchange: an internal error).
pub(super) fn split_keys(batch: &RecordBatch, keys: usize) -> Result<(RecordBatch, Vec<ArrayRef>)> {
    let width = batch
        .num_columns()
        .checked_sub(keys)
        .ok_or_else(|| DataFusionError::Internal("a keyed batch without its key columns".into()))?;
    let data = batch.project(&(0..width).collect::<Vec<_>>())?;
    Ok((data, batch.columns()[width..].to_vec()))
}

/// What a keyed exchange does to a batch, without the routing: appends the
/// evaluated key columns (see [`split_keys`]). For a keyed operator whose
/// input partitions already hold whole groups.
pub(super) fn key_appender(key: Vec<Arc<dyn PhysicalExpr>>) -> super::stateless::Transform {
    let schema: std::sync::Mutex<Option<(SchemaRef, SchemaRef)>> = std::sync::Mutex::new(None);
    Arc::new(move |change: ChangeBatch| {
        let mut schema = schema
            .lock()
            .map_err(|_| DataFusionError::Internal("a key appender's lock was poisoned".into()))?;
        Ok(with_keys(&change, &key, &mut schema)?.0)
    })
}

fn start(
    inputs: Vec<Receiver>,
    key: Vec<Arc<dyn PhysicalExpr>>,
    instances: usize,
    append_keys: bool,
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
            let mut keyed_schema: Option<(SchemaRef, SchemaRef)> = None;
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
                let routed = if append_keys {
                    with_keys(&change, &key, &mut keyed_schema)
                        .and_then(|(keyed, columns)| route_by(&keyed, &columns, senders.len()))
                } else {
                    route(&change, &key, senders.len())
                };
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
    route_by(change, &key_columns(change, key)?, n)
}

/// The key columns of `change`, as keyed state must see them.
fn key_columns(change: &ChangeBatch, key: &[Arc<dyn PhysicalExpr>]) -> Result<Vec<ArrayRef>> {
    let rows = change.num_rows();
    key.iter()
        .map(|e| {
            e.evaluate(&change.data)?
                .into_array(rows)
                .and_then(super::aggregate_input::key_column)
        })
        .collect()
}

/// `change` with its key columns appended, and the key columns. `schema`
/// caches the appended schema for the input schema it was made for.
fn with_keys(
    change: &ChangeBatch,
    key: &[Arc<dyn PhysicalExpr>],
    schema: &mut Option<(SchemaRef, SchemaRef)>,
) -> Result<(ChangeBatch, Vec<ArrayRef>)> {
    let columns = key_columns(change, key)?;
    let input = change.data.schema();
    let keyed = match schema {
        Some((from, to)) if Arc::ptr_eq(from, &input) || **from == *input => to.clone(),
        _ => {
            let mut fields: Vec<Arc<Field>> = input.fields().iter().cloned().collect();
            fields.extend(columns.iter().enumerate().map(|(i, c)| {
                Arc::new(Field::new(
                    format!("__key_{i}"),
                    c.data_type().clone(),
                    true,
                ))
            }));
            let to = Arc::new(Schema::new(fields));
            *schema = Some((input.clone(), to.clone()));
            to
        }
    };
    let mut all = change.data.columns().to_vec();
    all.extend(columns.iter().cloned());
    let data = RecordBatch::try_new_with_options(
        keyed,
        all,
        &RecordBatchOptions::new().with_row_count(Some(change.num_rows())),
    )?;
    Ok((
        ChangeBatch {
            ops: change.ops.clone(),
            data,
        },
        columns,
    ))
}

/// Splits `change` by the hash of `columns` into `n` parts (None where
/// empty).
fn route_by(
    change: &ChangeBatch,
    columns: &[ArrayRef],
    n: usize,
) -> Result<Vec<Option<ChangeBatch>>> {
    if n == 1 {
        return Ok(vec![Some(change.clone())]);
    }
    let rows = change.num_rows();
    let mut hashes = vec![0u64; rows];
    create_hashes(columns, &RandomState::with_seed(0), &mut hashes)?;
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

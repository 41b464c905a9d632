//! The event-time temporal join (Flink's `TemporalRowTimeJoinOperator`):
//! `o JOIN versioned FOR SYSTEM_TIME AS OF o.ts ON o.key = versioned.key`,
//! INNER or LEFT, over two append-only inputs hash-partitioned by the key.
//! The planner recognizes it (`tributary_planner::temporal_join`).
//!
//! Semantics (Flink's "Event Time Temporal Join"): a left row `o` meets the
//! version of its key valid at `o.ts`, the right row of that key with the
//! latest version time at or before `o.ts`; INNER drops `o` without one (or
//! when the rest of `ON` rejects it), LEFT pads it with NULLs.
//!
//! Why rows wait: the version valid at `o.ts` is only known once no right
//! row at or before `o.ts` can still arrive, i.e. once the watermark (the
//! minimum over both inputs) has reached `o.ts`. So:
//!
//! - a left row is kept until the watermark passes its time, then joined
//!   and emitted (`+I`, append-only), before that watermark is forwarded, so
//!   its time is still ahead of the output watermark downstream;
//! - a right row is stored as a version of its key (arrow-row encoded, by
//!   version time; a second version at the same time replaces the first);
//! - state: the left rows not yet released, and per key the versions from
//!   the one valid at the watermark onward; older versions can no longer be
//!   any row's match and are freed as the watermark passes the next one.
//!
//! A row at or behind the watermark on arrival (`ts <= watermark`) is late:
//! a left row's match may already be freed, and a right row would change
//! results already emitted. Late rows are counted, kept in
//! `system.late_rows`, and dropped, so the folded output is BATCH's result
//! over the rows that were not late (the engine's contract).
//!
//! A left row with a NULL time or key matches nothing (LEFT emits it padded
//! at once, or when released); a right row with a NULL time or key is no
//! version of anything and is dropped (BATCH's `r.ts <= o.ts` and `=` never
//! hold for it either).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, UInt32Array};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::JoinType;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use tokio::task::JoinSet;

use super::aggregate_input::{boolean, decode_rows, event_time_ms};
use super::join::{conform, gather};
use super::late_rows::LateRows;
use super::two_inputs::TwoInputs;
use super::{ChangeBatch, Message, Receiver, channel, send, send_data};

/// One instance's temporal join, as planned.
#[derive(Debug, Clone)]
pub(super) struct TemporalJoinSpec {
    /// INNER or LEFT.
    pub join_type: JoinType,
    /// The key expressions over the left input and over the right input
    /// (the right's primary key), one type per pair.
    pub keys: [Vec<Arc<dyn PhysicalExpr>>; 2],
    /// The rest of `ON`, over the left then the right columns.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// The `AS OF` column of the left input and the version-time column of
    /// the right input (TIMESTAMPs).
    pub times: [usize; 2],
    /// The schemas of the left and the right input.
    pub inputs: [SchemaRef; 2],
    /// The output schema: the left columns then the right ones.
    pub schema: SchemaRef,
}

/// Starts one instance on its share of both inputs (`*_routers`: how many
/// routers feed each, for the watermark).
///
/// # Errors
/// A column type arrow-row cannot encode; a time column that is not a
/// TIMESTAMP; a join type other than INNER or LEFT.
pub(super) fn start(
    left: Receiver,
    left_routers: usize,
    right: Receiver,
    right_routers: usize,
    spec: TemporalJoinSpec,
    late: LateRows,
    tasks: &mut JoinSet<()>,
) -> Result<Receiver> {
    let (tx, rx) = channel();
    let mut op = TemporalJoin::try_new(spec, late)?;
    let mut inputs = TwoInputs::new(left, left_routers, right, right_routers);
    tasks.spawn(async move {
        while let Some((side, item)) = inputs.next().await {
            let advanced = match item {
                Ok(Message::Data(change)) => {
                    let out = op.process(side, &change.data, inputs.current());
                    let failed = out.is_err();
                    if !send_data(&tx, out).await || failed {
                        return;
                    }
                    continue;
                }
                Ok(Message::Watermark { from, ts }) => inputs.advance(side, from, ts),
                Ok(Message::Idle { from }) => inputs.idle(side, from),
                Err(e) => Err(e),
            };
            match advanced {
                Ok(None) => {}
                Ok(Some(ts)) => {
                    let out = op.release(ts);
                    let failed = out.is_err();
                    if !send_data(&tx, out).await || failed {
                        return;
                    }
                    if !send(&tx, Ok(Message::Watermark { from: 0, ts })).await {
                        return;
                    }
                }
                Err(e) => {
                    let _ = send(&tx, Err(e)).await;
                    return;
                }
            }
        }
    });
    Ok(rx)
}

struct TemporalJoin {
    spec: TemporalJoinSpec,
    /// Encodes the join key (same types on both sides).
    key: RowConverter,
    /// The right key's types, which the left key is cast to.
    key_types: Vec<DataType>,
    /// Encodes whole right rows.
    right_rows: RowConverter,
    /// Left rows waiting for the watermark to pass their time, per batch
    /// with its earliest time (ms): a watermark before it skips the batch
    /// without reading its rows.
    pending: Vec<(RecordBatch, i64)>,
    /// Key → version time (ms) → the right row (arrow-row encoded).
    versions: HashMap<Box<[u8]>, BTreeMap<i64, Box<[u8]>>>,
    /// Keys with more than one version: the ones that may have some to free.
    several: HashSet<Box<[u8]>>,
    /// Left then right columns, all nullable: what the filter reads.
    pairs_schema: SchemaRef,
    late: LateRows,
}

impl TemporalJoin {
    fn try_new(spec: TemporalJoinSpec, late: LateRows) -> Result<Self> {
        if !matches!(spec.join_type, JoinType::Inner | JoinType::Left) {
            return Err(DataFusionError::Plan(format!(
                "a temporal join is INNER or LEFT, not {}",
                spec.join_type
            )));
        }
        for (side, schema) in spec.inputs.iter().enumerate() {
            match schema.fields().get(spec.times[side]).map(|f| f.data_type()) {
                Some(DataType::Timestamp(..)) => {}
                other => {
                    return Err(DataFusionError::Plan(format!(
                        "the time column {} of a temporal join input is {other:?}, not a TIMESTAMP",
                        spec.times[side]
                    )));
                }
            }
        }
        let key_types = spec.keys[1]
            .iter()
            .map(|k| k.data_type(&spec.inputs[1]))
            .collect::<Result<Vec<_>>>()?;
        let key_fields = key_types
            .iter()
            .map(|t| SortField::new(t.clone()))
            .collect();
        let row_fields = spec.inputs[1]
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        let pairs_fields: Vec<Field> = spec.inputs[0]
            .fields()
            .iter()
            .chain(spec.inputs[1].fields().iter())
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        Ok(Self {
            key: RowConverter::new(key_fields)?,
            key_types,
            right_rows: RowConverter::new(row_fields)?,
            pending: Vec::new(),
            versions: HashMap::new(),
            several: HashSet::new(),
            pairs_schema: Arc::new(Schema::new(pairs_fields)),
            late,
            spec,
        })
    }

    /// The join keys of `batch` (side 0 left, 1 right), encoded.
    fn keys(&self, side: usize, batch: &RecordBatch) -> Result<Rows> {
        let columns = self.spec.keys[side]
            .iter()
            .map(|k| k.evaluate(batch)?.into_array(batch.num_rows()))
            .collect::<Result<Vec<_>>>()?;
        // The left key may be of another type than the right's (coerced at
        // plan time); encode both as the right's.
        let columns = columns
            .into_iter()
            .zip(&self.key_types)
            .map(|(c, t)| {
                if c.data_type() == t {
                    Ok(c)
                } else {
                    Ok(cast(&c, t)?)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(self.key.convert_columns(&columns)?)
    }

    /// Takes a batch of input `side` arriving at `watermark`: stores it, or
    /// records it late. Returns the LEFT join's rows that can never match.
    fn process(&mut self, side: usize, batch: &RecordBatch, watermark: i64) -> Result<ChangeBatch> {
        let times = event_time_ms(batch.column(self.spec.times[side]))?;
        let keys = self.keys(side, batch)?;
        let null_key = key_nulls(batch, &self.spec.keys[side])?;
        let mut late: Vec<u32> = Vec::new();
        if side == 1 {
            let encoded = self.right_rows.convert_columns(batch.columns())?;
            for i in 0..batch.num_rows() {
                if !times.is_valid(i) || null_key[i] {
                    continue;
                }
                let ts = times.value(i);
                if ts <= watermark {
                    late.push(i as u32);
                    continue;
                }
                let row: Box<[u8]> = encoded.row(i).as_ref().into();
                let key: Box<[u8]> = keys.row(i).as_ref().into();
                let versions = self.versions.entry(key.clone()).or_default();
                versions.insert(ts, row);
                if versions.len() > 1 {
                    self.several.insert(key);
                }
            }
            self.late.record(batch, &late, watermark)?;
            return Ok(ChangeBatch::inserts(RecordBatch::new_empty(
                self.spec.schema.clone(),
            )));
        }
        let mut keep: Vec<bool> = Vec::with_capacity(batch.num_rows());
        let mut unmatched: Vec<u32> = Vec::new();
        for i in 0..batch.num_rows() {
            let waits = times.is_valid(i) && !null_key[i];
            if waits && times.value(i) <= watermark {
                late.push(i as u32);
                keep.push(false);
            } else {
                if !waits {
                    unmatched.push(i as u32);
                }
                keep.push(waits);
            }
        }
        self.late.record(batch, &late, watermark)?;
        let kept = filter_record_batch(batch, &BooleanArray::from(keep))?;
        if kept.num_rows() > 0 {
            // Every kept row has a time.
            let earliest = arrow::compute::min(&event_time_ms(kept.column(self.spec.times[0]))?)
                .unwrap_or(i64::MIN);
            self.pending.push((kept, earliest));
        }
        if self.spec.join_type == JoinType::Left && !unmatched.is_empty() {
            let left = gather(batch.columns(), &UInt32Array::from(unmatched))?;
            let n = left_len(&left);
            return self.output(left, vec![None; n], &[]);
        }
        Ok(ChangeBatch::inserts(RecordBatch::new_empty(
            self.spec.schema.clone(),
        )))
    }

    /// The watermark reached `watermark`: joins and emits the left rows at or
    /// before it, then frees the versions no later row can match.
    fn release(&mut self, watermark: i64) -> Result<ChangeBatch> {
        let mut ready: Vec<RecordBatch> = Vec::new();
        let mut waiting: Vec<(RecordBatch, i64)> = Vec::new();
        for (batch, earliest) in std::mem::take(&mut self.pending) {
            if earliest > watermark {
                waiting.push((batch, earliest));
                continue;
            }
            let times = event_time_ms(batch.column(self.spec.times[0]))?;
            let due: BooleanArray = times
                .iter()
                .map(|t| Some(t.is_some_and(|t| t <= watermark)))
                .collect();
            if due.true_count() == batch.num_rows() {
                ready.push(batch);
                continue;
            }
            if due.true_count() > 0 {
                ready.push(filter_record_batch(&batch, &due)?);
            }
            let rest = filter_record_batch(&batch, &arrow::compute::not(&due)?)?;
            let earliest = arrow::compute::min(&event_time_ms(rest.column(self.spec.times[0]))?)
                .unwrap_or(i64::MIN);
            waiting.push((rest, earliest));
        }
        self.pending = waiting;
        let out = if ready.is_empty() {
            ChangeBatch::inserts(RecordBatch::new_empty(self.spec.schema.clone()))
        } else {
            let left = arrow::compute::concat_batches(&self.spec.inputs[0], &ready)?;
            self.join(&left)?
        };
        self.free(watermark);
        Ok(out)
    }

    /// Joins released left rows with the versions valid at their times.
    fn join(&self, left: &RecordBatch) -> Result<ChangeBatch> {
        let times = event_time_ms(left.column(self.spec.times[0]))?;
        let keys = self.keys(0, left)?;
        let mut matches: Vec<Option<usize>> = Vec::with_capacity(left.num_rows());
        let mut found: Vec<&[u8]> = Vec::new();
        for i in 0..left.num_rows() {
            let version = self
                .versions
                .get(keys.row(i).as_ref())
                .and_then(|v| v.range(..=times.value(i)).next_back())
                .map(|(_, row)| row.as_ref());
            matches.push(version.map(|row| {
                found.push(row);
                found.len() - 1
            }));
        }
        let parser = self.right_rows.parser();
        let decoded = decode_rows(&self.right_rows, found.iter().map(|r| parser.parse(r)))?;
        let right = conform(decoded, &self.spec.inputs[1])?;
        self.output(
            left.columns().to_vec(),
            matches.into_iter().map(|m| m.map(|m| m as u32)).collect(),
            &right,
        )
    }

    /// The output rows: every row of `left` with the right row at its index
    /// in `right` (None: no version), after the filter; INNER drops the rows
    /// without a right row, LEFT pads them.
    fn output(
        &self,
        left: Vec<ArrayRef>,
        mut right_index: Vec<Option<u32>>,
        right: &[ArrayRef],
    ) -> Result<ChangeBatch> {
        let n = right_index.len();
        let right_columns = |index: &[Option<u32>]| -> Result<Vec<ArrayRef>> {
            let indices = UInt32Array::from(index.to_vec());
            if right.is_empty() {
                Ok(self.spec.inputs[1]
                    .fields()
                    .iter()
                    .map(|f| arrow::array::new_null_array(f.data_type(), index.len()))
                    .collect())
            } else {
                gather(right, &indices)
            }
        };
        if let Some(filter) = &self.spec.filter {
            let mut columns = left.clone();
            columns.extend(right_columns(&right_index)?);
            let pairs = RecordBatch::try_new_with_options(
                self.pairs_schema.clone(),
                columns,
                &RecordBatchOptions::new().with_row_count(Some(n)),
            )?;
            let pass = boolean(filter.as_ref(), &pairs)?;
            for (i, slot) in right_index.iter_mut().enumerate() {
                if !(pass.is_valid(i) && pass.value(i)) {
                    *slot = None;
                }
            }
        }
        let rows: Vec<u32> = (0..n as u32)
            .filter(|i| self.spec.join_type == JoinType::Left || right_index[*i as usize].is_some())
            .collect();
        let kept: Vec<Option<u32>> = rows.iter().map(|i| right_index[*i as usize]).collect();
        let mut columns = gather(&left, &UInt32Array::from(rows.clone()))?;
        columns.extend(right_columns(&kept)?);
        let data = RecordBatch::try_new_with_options(
            self.spec.schema.clone(),
            conform(columns, &self.spec.schema)?,
            &RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )?;
        Ok(ChangeBatch::inserts(data))
    }

    /// Frees, per key, the versions older than the one valid at `watermark`.
    fn free(&mut self, watermark: i64) {
        let mut done: Vec<Box<[u8]>> = Vec::new();
        for key in &self.several {
            let Some(versions) = self.versions.get_mut(key) else {
                done.push(key.clone());
                continue;
            };
            if let Some((&valid, _)) = versions.range(..=watermark).next_back() {
                *versions = versions.split_off(&valid);
            }
            if versions.len() <= 1 {
                done.push(key.clone());
            }
        }
        for key in done {
            self.several.remove(&key);
        }
    }

    /// Rows held: (left rows waiting, right versions stored).
    #[cfg(test)]
    fn stored(&self) -> (usize, usize) {
        (
            self.pending.iter().map(|(b, _)| b.num_rows()).sum(),
            self.versions.values().map(|v| v.len()).sum(),
        )
    }
}

fn left_len(columns: &[ArrayRef]) -> usize {
    columns.first().map_or(0, |c| c.len())
}

/// Per row of `batch`, whether one of its keys is NULL (SQL `=` never
/// matches it).
fn key_nulls(batch: &RecordBatch, keys: &[Arc<dyn PhysicalExpr>]) -> Result<Vec<bool>> {
    let mut nulls = vec![false; batch.num_rows()];
    for k in keys {
        let v = k.evaluate(batch)?.into_array(batch.num_rows())?;
        if let Some(n) = v.logical_nulls() {
            for (slot, valid) in nulls.iter_mut().zip(n.iter()) {
                *slot |= !valid;
            }
        }
    }
    Ok(nulls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::array::{Int64Array, TimestampMillisecondArray};
    use arrow::datatypes::TimeUnit;
    use datafusion::physical_expr::expressions::Column;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Both inputs: (k BIGINT, v BIGINT, ts TIMESTAMP(3)).
    fn side_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]))
    }

    fn join(join_type: JoinType) -> (TemporalJoin, Arc<AtomicU64>) {
        let late = Arc::new(AtomicU64::new(0));
        let out = Schema::new(
            side_schema()
                .fields()
                .iter()
                .chain(side_schema().fields().iter())
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        );
        let op = TemporalJoin::try_new(
            TemporalJoinSpec {
                join_type,
                keys: [
                    vec![Arc::new(Column::new("k", 0))],
                    vec![Arc::new(Column::new("k", 0))],
                ],
                filter: None,
                times: [2, 2],
                inputs: [side_schema(), side_schema()],
                schema: Arc::new(out),
            },
            LateRows::new(
                "test".into(),
                late.clone(),
                Arc::new(AtomicU64::new(0)),
                0,
                None,
            ),
        )
        .unwrap();
        (op, late)
    }

    fn rows(rows: &[(Option<i64>, i64, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            side_schema(),
            vec![
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(TimestampMillisecondArray::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    /// Output rows as "left v / right v (or NULL)", sorted.
    fn show(change: &ChangeBatch) -> Vec<String> {
        let data = &change.data;
        let (l, r) = (
            data.column(1).as_primitive::<arrow::datatypes::Int64Type>(),
            data.column(4).as_primitive::<arrow::datatypes::Int64Type>(),
        );
        let mut out: Vec<String> = (0..data.num_rows())
            .map(|i| {
                let rv = if r.is_null(i) {
                    "NULL".to_string()
                } else {
                    r.value(i).to_string()
                };
                format!("{} {rv}", l.value(i))
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn left_rows_wait_for_the_watermark_and_meet_the_version_valid_then() {
        let (mut op, late) = join(JoinType::Inner);
        // Versions of key 1 at 10 and 20; left rows at 5, 10, 19, 25.
        op.process(
            1,
            &rows(&[(Some(1), 100, 10), (Some(1), 200, 20)]),
            i64::MIN,
        )
        .unwrap();
        let early = op
            .process(
                0,
                &rows(&[
                    (Some(1), 5, 5),
                    (Some(1), 10, 10),
                    (Some(1), 19, 19),
                    (Some(1), 25, 25),
                ]),
                i64::MIN,
            )
            .unwrap();
        assert_eq!(
            early.num_rows(),
            0,
            "nothing is emitted before the watermark"
        );
        assert_eq!(show(&op.release(19).unwrap()), ["10 100", "19 100"]);
        // The version at 10 is still valid at 19: kept; the left row at 25 waits.
        assert_eq!(op.stored(), (1, 2));
        assert_eq!(show(&op.release(25).unwrap()), ["25 200"]);
        // At 25 the version at 20 is valid: the one at 10 is freed.
        assert_eq!(op.stored(), (0, 1));
        assert_eq!(late.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn left_pads_rows_without_a_version_and_late_rows_are_counted() {
        let (mut op, late) = join(JoinType::Left);
        op.process(1, &rows(&[(Some(1), 100, 10)]), i64::MIN)
            .unwrap();
        // A NULL key can never match: padded at once.
        let now = op
            .process(
                0,
                &rows(&[(None, 1, 12), (Some(2), 2, 12), (Some(1), 3, 12)]),
                i64::MIN,
            )
            .unwrap();
        assert_eq!(show(&now), ["1 NULL"]);
        assert_eq!(show(&op.release(15).unwrap()), ["2 NULL", "3 100"]);
        // Behind the watermark: a left row and a right version are late.
        op.process(0, &rows(&[(Some(1), 4, 15)]), 15).unwrap();
        op.process(1, &rows(&[(Some(1), 101, 14)]), 15).unwrap();
        assert_eq!(late.load(Ordering::Relaxed), 2);
        assert_eq!(op.release(i64::MAX).unwrap().num_rows(), 0);
        assert_eq!(op.stored(), (0, 1));
    }
}

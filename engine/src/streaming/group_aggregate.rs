//! Non-windowed `GROUP BY` aggregation over a changelog (Flink's
//! `GroupAggregate`): one set of accumulators per key; each input batch
//! updates them — `+I`/`+U` rows with `update_batch`, `-U`/`-D` rows with
//! `retract_batch` — and then, for every key the batch touched, the operator
//! emits what changed: `+I` for a new key, `-U` old / `+U` new for a changed
//! result, `-D` when a key's last row is retracted. A key whose result did
//! not change emits nothing. (This is Flink's mini-batch aggregation, with a
//! mini-batch per input batch.)
//!
//! With `table.exec.mini-batch.enabled`, input batches are buffered until
//! `table.exec.mini-batch.size` rows have come or the oldest has waited
//! `table.exec.mini-batch.allow-latency`, and applied as one: a key that
//! changed many times in that span emits one `-U`/`+U` pair, not one per
//! input batch. The folded result is the same either way.
//!
//! Rows of a batch are grouped by their arrow-row key and each aggregate is
//! fed the `take`n rows of a key at once. A global aggregate (no `GROUP BY`)
//! has one key, never deletes it, and emits its empty result at the end of
//! an input that had no rows, as BATCH does.
//!
//! With `table.exec.state.ttl` (see `state_ttl.rs`), a key whose state has
//! not been written for the TTL (processing time) is forgotten, silently, as
//! in Flink's `GroupAggFunction`: its next row starts from fresh
//! accumulators and emits `+I` (its old result stays in the changelog, so
//! the folded result can then hold the key twice, unlike BATCH), and a
//! retraction of rows the key no longer holds is ignored rather than an
//! error.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;
use tokio::task::JoinSet;

use tributary_planner::RowKind;
use tributary_planner::streaming::{Retraction, StreamAggregate};

use super::aggregate_input;
use super::native_state::NativeState;
use super::state_ttl::{Clock, StateTtl};
use super::value_multiset::{Measure, ValueMultiset};
use super::{ChangeBatch, Message, Receiver, channel, send, send_data};

/// How an instance buffers its input (Flink's mini-batch).
#[derive(Debug, Clone, Copy)]
pub(super) struct MiniBatch {
    /// Buffered rows that end a mini-batch.
    pub rows: usize,
    /// The longest a buffered row waits.
    pub latency: std::time::Duration,
}

/// What the instance waits for next.
enum Next {
    Input(Option<Result<Message>>),
    /// The mini-batch's allowed latency is up.
    Deadline,
}

/// Starts one instance of the operator on `input`.
pub(super) fn start(
    mut input: Receiver,
    group: Vec<Arc<dyn PhysicalExpr>>,
    aggregates: Vec<StreamAggregate>,
    schema: SchemaRef,
    mini_batch: Option<MiniBatch>,
    state_ttl_ms: Option<u64>,
    tasks: &mut JoinSet<()>,
) -> Result<Receiver> {
    let (tx, rx) = channel();
    let mut op = GroupAggregate::try_new(group, aggregates, schema, state_ttl_ms)?;
    tasks.spawn(async move {
        let clock = Clock::start();
        let mut buffer: Vec<ChangeBatch> = Vec::new();
        let mut buffered = 0usize;
        let mut deadline = tokio::time::Instant::now();
        loop {
            let next = if buffer.is_empty() {
                Next::Input(input.recv().await)
            } else {
                tokio::select! {
                    item = input.recv() => Next::Input(item),
                    _ = tokio::time::sleep_until(deadline) => Next::Deadline,
                }
            };
            // Watermarks stop here: the result of a non-windowed aggregate
            // has no event time.
            let (apply, ended) = match next {
                Next::Input(Some(Ok(Message::Data(change)))) => match mini_batch {
                    None => (Some(change), false),
                    Some(mb) => {
                        if buffer.is_empty() {
                            deadline = tokio::time::Instant::now() + mb.latency;
                        }
                        buffered += change.num_rows();
                        buffer.push(change);
                        if buffered < mb.rows {
                            continue;
                        }
                        (None, false)
                    }
                },
                Next::Input(Some(Ok(Message::Watermark { .. } | Message::Idle { .. }))) => {
                    continue;
                }
                Next::Input(Some(Err(e))) => {
                    let _ = send(&tx, Err(e)).await;
                    return;
                }
                Next::Input(None) => (None, true),
                Next::Deadline => (None, false),
            };
            // Either one batch to apply, or the buffer (when full, timed out
            // or at the end of the input).
            let change = match apply {
                Some(change) => Ok(Some(change)),
                None => {
                    buffered = 0;
                    let batches = std::mem::take(&mut buffer);
                    match batches.len() {
                        0 => Ok(None),
                        1 => Ok(batches.into_iter().next()),
                        _ => ChangeBatch::concat(&batches[0].data.schema(), &batches).map(Some),
                    }
                }
            };
            let out = change.and_then(|c| match c {
                Some(c) => op.process(&c, clock.now_ms()),
                None => Ok(None),
            });
            match out {
                Ok(None) => {}
                Ok(Some(out)) => {
                    if !send_data(&tx, Ok(out)).await {
                        return;
                    }
                }
                Err(e) => {
                    let _ = send(&tx, Err(e)).await;
                    return;
                }
            }
            if ended {
                break;
            }
        }
        match op.finish() {
            Ok(Some(out)) => {
                let _ = send_data(&tx, Ok(out)).await;
            }
            Ok(None) => {}
            Err(e) => {
                let _ = send(&tx, Err(e)).await;
            }
        }
    });
    Ok(rx)
}

/// The state of one aggregate for one key (32 bytes: the common
/// aggregates inline, the rest boxed).
enum AggState {
    Native(NativeState),
    Accumulator(Box<dyn Accumulator>),
    Multiset(Box<ValueMultiset>),
}

impl AggState {
    fn update(&mut self, args: &[ArrayRef]) -> Result<()> {
        match self {
            AggState::Native(n) => n.update(&args[0]),
            AggState::Accumulator(a) => a.update_batch(args),
            AggState::Multiset(m) => m.update(&args[0]),
        }
    }

    /// Removes `args`' rows. `expired_state`: the key's state may have
    /// expired under a TTL since the rows were added, so rows it does not
    /// hold are skipped instead of an error.
    fn retract(&mut self, args: &[ArrayRef], expired_state: bool) -> Result<()> {
        match self {
            AggState::Native(n) if expired_state => {
                let before = *n;
                if n.retract(&args[0]).is_err() {
                    *n = before;
                }
                Ok(())
            }
            AggState::Native(n) => n.retract(&args[0]),
            AggState::Accumulator(a) => a.retract_batch(args),
            AggState::Multiset(m) if expired_state => m.retract_present(&args[0]),
            AggState::Multiset(m) => m.retract(&args[0]),
        }
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        match self {
            AggState::Native(n) => Ok(n.evaluate()),
            AggState::Accumulator(a) => a.evaluate(),
            AggState::Multiset(m) => m.evaluate(),
        }
    }
}

/// One key's state. The values last emitted for the key are not kept: they
/// are what the states evaluate to before the next batch is applied, so
/// they are computed again then (memory per key matters more than one more
/// `evaluate` per touched key).
struct Group {
    states: Box<[AggState]>,
    /// Rows of the key now in the input (inserted minus retracted); a key
    /// with rows has emitted its result.
    rows: i64,
    /// When a batch last changed the key (processing time, ms), for the TTL.
    written_ms: u64,
}

struct GroupAggregate {
    group: Vec<Arc<dyn PhysicalExpr>>,
    aggregates: Vec<StreamAggregate>,
    schema: SchemaRef,
    /// Encodes the key columns (None for a global aggregate).
    keys: Option<RowConverter>,
    /// Shared by the keys of each MIN/MAX/COUNT(DISTINCT) aggregate over an
    /// updating input (COUNT(DISTINCT)'s is made from its first argument).
    multiset_converters: Vec<Option<Arc<RowConverter>>>,
    /// Each aggregate's inline state when fresh, if it has one.
    native: Vec<Option<NativeState>>,
    groups: HashMap<Box<[u8]>, Group>,
    /// A global aggregate emitted at least once.
    emitted_any: bool,
    /// `table.exec.state.ttl`, if set.
    ttl: Option<StateTtl>,
}

impl GroupAggregate {
    fn try_new(
        group: Vec<Arc<dyn PhysicalExpr>>,
        aggregates: Vec<StreamAggregate>,
        schema: SchemaRef,
        state_ttl_ms: Option<u64>,
    ) -> Result<Self> {
        let keys = if group.is_empty() {
            None
        } else {
            let fields = schema.fields()[..group.len()]
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect();
            Some(RowConverter::new(fields)?)
        };
        let multiset_converters = aggregates
            .iter()
            .map(|a| match a.retraction {
                Retraction::MinMax { .. } => {
                    Ok(Some(ValueMultiset::converter(a.expr.field().data_type())?))
                }
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        let native = aggregates
            .iter()
            .map(|a| NativeState::for_aggregate(&a.expr, a.retraction == Retraction::NotNeeded))
            .collect();
        Ok(Self {
            native,
            group,
            aggregates,
            schema,
            keys,
            multiset_converters,
            groups: HashMap::new(),
            emitted_any: false,
            ttl: state_ttl_ms.map(StateTtl::new),
        })
    }

    fn new_group(&self) -> Result<Group> {
        let states = self
            .aggregates
            .iter()
            .zip(&self.multiset_converters)
            .zip(&self.native)
            .map(|((a, conv), native)| {
                if let Some(native) = native {
                    return Ok(AggState::Native(*native));
                }
                Ok(match (a.retraction, conv) {
                    (Retraction::MinMax { min }, Some(conv)) => {
                        AggState::Multiset(Box::new(ValueMultiset::new(
                            if min { Measure::Min } else { Measure::Max },
                            a.expr.field().data_type().clone(),
                            conv.clone(),
                        )))
                    }
                    (Retraction::DistinctCount, Some(conv)) => AggState::Multiset(Box::new(
                        ValueMultiset::new(Measure::DistinctCount, DataType::Int64, conv.clone()),
                    )),
                    // Only a global aggregate that saw no batch at all: it
                    // counts nothing, whatever the values' type.
                    (Retraction::DistinctCount, None) => {
                        AggState::Multiset(Box::new(ValueMultiset::new(
                            Measure::DistinctCount,
                            DataType::Int64,
                            ValueMultiset::converter(&DataType::Null)?,
                        )))
                    }
                    (Retraction::NotNeeded, _) => {
                        AggState::Accumulator(a.expr.create_accumulator()?)
                    }
                    _ => AggState::Accumulator(a.expr.create_sliding_accumulator()?),
                })
            })
            .collect::<Result<Box<[_]>>>()?;
        Ok(Group {
            states,
            rows: 0,
            written_ms: 0,
        })
    }

    /// Applies one input batch at processing time `now_ms`; returns the
    /// changes it caused.
    ///
    /// # Errors
    /// Without a TTL, a retraction of rows a key does not hold; expression
    /// and accumulator errors.
    fn process(&mut self, change: &ChangeBatch, now_ms: u64) -> Result<Option<ChangeBatch>> {
        let n = change.num_rows();
        if n == 0 {
            return Ok(None);
        }
        let key_rows = match &self.keys {
            Some(conv) => {
                let columns = self
                    .group
                    .iter()
                    .map(|e| {
                        e.evaluate(&change.data)?
                            .into_array(n)
                            .and_then(super::aggregate_input::key_column)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Some(conv.convert_columns(&columns)?)
            }
            None => None,
        };
        let args = aggregate_input::arguments(&self.aggregates, &change.data)?;
        let filters = aggregate_input::filter_masks(&self.aggregates, &change.data)?;
        for (j, a) in self.aggregates.iter().enumerate() {
            if a.retraction == Retraction::DistinctCount && self.multiset_converters[j].is_none() {
                let values = args[j].first().ok_or_else(|| {
                    DataFusionError::Internal("COUNT(DISTINCT) without an argument".into())
                })?;
                self.multiset_converters[j] = Some(ValueMultiset::converter(values.data_type())?);
            }
        }

        // Each row's bucket: (key slot, insert or retraction), keys in first-seen order.
        let mut slot_of: HashMap<&[u8], usize> = HashMap::new();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut bucket: Vec<usize> = Vec::with_capacity(n);
        for (i, kind) in change.kinds().enumerate() {
            let key: &[u8] = match &key_rows {
                Some(rows) => rows.row(i).data(),
                None => &[],
            };
            let slot = *slot_of.entry(key).or_insert_with(|| {
                keys.push(key.to_vec());
                keys.len() - 1
            });
            bucket.push(slot * 2 + usize::from(kind.is_retraction()));
        }
        drop(slot_of);
        // Order the rows by bucket (a counting sort) and gather every argument
        // and mask once in that order; each key's rows are then two contiguous,
        // zero-copy slices.
        let mut offsets = vec![0usize; keys.len() * 2 + 1];
        for b in &bucket {
            offsets[b + 1] += 1;
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        let mut order = vec![0u32; n];
        let mut next = offsets.clone();
        for (i, b) in bucket.iter().enumerate() {
            order[next[*b]] = i as u32;
            next[*b] += 1;
        }
        let order = UInt32Array::from(order);
        let args = args
            .iter()
            .map(|cols| {
                cols.iter()
                    .map(|a| take(a.as_ref(), &order, None))
                    .collect::<std::result::Result<Vec<_>, _>>()
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let filters = filters
            .iter()
            .map(|m| match m {
                None => Ok(None),
                Some(mask) => {
                    let taken = take(mask, &order, None)?;
                    Ok(taken.as_any().downcast_ref::<BooleanArray>().cloned())
                }
            })
            .collect::<std::result::Result<Vec<_>, arrow::error::ArrowError>>()?;
        let touched: Vec<(Vec<u8>, (usize, usize), (usize, usize))> = keys
            .into_iter()
            .enumerate()
            .map(|(slot, key)| {
                (
                    key,
                    (offsets[2 * slot], offsets[2 * slot + 1]),
                    (offsets[2 * slot + 1], offsets[2 * slot + 2]),
                )
            })
            .collect();

        let mut out_keys: Vec<Vec<u8>> = Vec::new();
        let mut out_kinds: Vec<RowKind> = Vec::new();
        let mut out_values: Vec<Vec<ScalarValue>> = Vec::new();
        for (key, inserts, mut retracts) in touched {
            if let Some(ttl) = &self.ttl {
                // An expired key is gone: nothing of it is read again.
                if self
                    .groups
                    .get(key.as_slice())
                    .is_some_and(|g| ttl.expired(g.written_ms, now_ms))
                {
                    self.groups.remove(key.as_slice());
                }
                // Retractions of more rows than the key holds are of rows
                // whose state expired: ignored, as Flink does.
                let held = self.groups.get(key.as_slice()).map_or(0, |g| g.rows);
                let (inserted, retracted) = (inserts.1 - inserts.0, retracts.1 - retracts.0);
                if held + (inserted as i64) < (retracted as i64) {
                    retracts = (retracts.0, retracts.0);
                }
                if inserts.0 == inserts.1 && retracts.0 == retracts.1 {
                    continue;
                }
            }
            let (inserted, retracted) = (inserts.1 - inserts.0, retracts.1 - retracts.0);
            if !self.groups.contains_key(key.as_slice()) {
                if inserted == 0 {
                    return Err(DataFusionError::Execution(
                        "GROUP BY received a retraction for a key it has no rows of".into(),
                    ));
                }
                let g = self.new_group()?;
                self.groups.insert(key.clone().into_boxed_slice(), g);
            }
            let global = self.keys.is_none();
            let emitted_any = self.emitted_any;
            let ttl_set = self.ttl.is_some();
            let group = self
                .groups
                .get_mut(key.as_slice())
                .ok_or_else(|| DataFusionError::Internal("group vanished".into()))?;
            // What the key showed until now: its states before this batch.
            let old = if group.rows > 0 || (global && emitted_any) {
                Some(
                    group
                        .states
                        .iter_mut()
                        .map(AggState::evaluate)
                        .collect::<Result<Vec<_>>>()?,
                )
            } else {
                None
            };
            for (j, state) in group.states.iter_mut().enumerate() {
                for ((start, end), retract) in [(inserts, false), (retracts, true)] {
                    if start == end {
                        continue;
                    }
                    let mut slice: Vec<ArrayRef> = args[j]
                        .iter()
                        .map(|a| a.slice(start, end - start))
                        .collect();
                    if let Some(mask) = &filters[j] {
                        let mask = mask.slice(start, end - start);
                        let mask = if mask.null_count() > 0 {
                            arrow::compute::prep_null_mask_filter(&mask)
                        } else {
                            mask
                        };
                        if mask.true_count() == 0 {
                            continue;
                        }
                        slice = slice
                            .iter()
                            .map(|a| arrow::compute::filter(a.as_ref(), &mask))
                            .collect::<std::result::Result<_, _>>()?;
                    }
                    if retract {
                        state.retract(&slice, ttl_set)?
                    } else {
                        state.update(&slice)?
                    }
                }
            }
            group.rows += inserted as i64 - retracted as i64;
            group.written_ms = now_ms;
            if group.rows < 0 {
                return Err(DataFusionError::Execution(
                    "GROUP BY retracted more rows of a key than it received".into(),
                ));
            }
            if group.rows == 0 && !global {
                if let Some(old) = old {
                    out_keys.push(key.clone());
                    out_kinds.push(RowKind::Delete);
                    out_values.push(old);
                }
                self.groups.remove(key.as_slice());
                continue;
            }
            let new = group
                .states
                .iter_mut()
                .map(AggState::evaluate)
                .collect::<Result<Vec<_>>>()?;
            match old {
                None => {
                    out_keys.push(key);
                    out_kinds.push(RowKind::Insert);
                    out_values.push(new);
                }
                Some(old) if old != new => {
                    out_keys.push(key.clone());
                    out_kinds.push(RowKind::UpdateBefore);
                    out_values.push(old);
                    out_keys.push(key);
                    out_kinds.push(RowKind::UpdateAfter);
                    out_values.push(new);
                }
                Some(_) => {}
            }
        }
        self.emitted_any |= !out_kinds.is_empty();
        if let Some(ttl) = &mut self.ttl
            && ttl.sweep_due(now_ms)
        {
            let ttl = *ttl;
            self.groups
                .retain(|_, g| !ttl.expired(g.written_ms, now_ms));
        }
        self.output(out_keys, out_kinds, out_values)
    }

    /// At the end of the input: a global aggregate over no rows still has a
    /// result (COUNT 0, SUM NULL), as in BATCH.
    fn finish(&mut self) -> Result<Option<ChangeBatch>> {
        if self.keys.is_some() || self.emitted_any {
            return Ok(None);
        }
        let mut group = self.new_group()?;
        let values = group
            .states
            .iter_mut()
            .map(AggState::evaluate)
            .collect::<Result<Vec<_>>>()?;
        self.emitted_any = true;
        self.output(vec![vec![]], vec![RowKind::Insert], vec![values])
    }

    fn output(
        &self,
        keys: Vec<Vec<u8>>,
        kinds: Vec<RowKind>,
        values: Vec<Vec<ScalarValue>>,
    ) -> Result<Option<ChangeBatch>> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let rows = kinds.len();
        let mut columns: Vec<ArrayRef> = match &self.keys {
            Some(conv) => {
                let parser = conv.parser();
                aggregate_input::decode_rows(conv, keys.iter().map(|k| parser.parse(k)))?
            }
            None => vec![],
        };
        let offset = columns.len();
        for j in 0..self.aggregates.len() {
            let array = ScalarValue::iter_to_array(values.iter().map(|v| v[j].clone()))?;
            let want = self.schema.field(offset + j).data_type();
            columns.push(if array.data_type() == want {
                array
            } else {
                cast(&array, want)?
            });
        }
        let data = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        let ops = Arc::new(arrow::array::Int8Array::from_iter_values(
            kinds.iter().map(|k| k.code()),
        ));
        Ok(Some(ChangeBatch { ops, data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RowKind::{Delete as D, Insert as I};
    use arrow::array::{Int8Array, Int64Array};
    use arrow::datatypes::{Field, Schema};
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::Column;

    fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    /// `SELECT k, SUM(v) FROM t GROUP BY k` over an updating input.
    fn sum_by_key(state_ttl_ms: Option<u64>) -> GroupAggregate {
        let sum = AggregateExprBuilder::new(sum_udaf(), vec![Arc::new(Column::new("v", 1))])
            .schema(input_schema())
            .alias("s")
            .build()
            .unwrap();
        let out = Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("s", DataType::Int64, true),
        ]);
        GroupAggregate::try_new(
            vec![Arc::new(Column::new("k", 0))],
            vec![StreamAggregate {
                expr: Arc::new(sum),
                filter: None,
                retraction: Retraction::Accumulator,
            }],
            Arc::new(out),
            state_ttl_ms,
        )
        .unwrap()
    }

    fn batch(rows: &[(RowKind, i64, i64)]) -> ChangeBatch {
        let data = RecordBatch::try_new(
            input_schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap();
        ChangeBatch {
            ops: Arc::new(Int8Array::from_iter_values(rows.iter().map(|r| r.0.code()))),
            data,
        }
    }

    /// Applies `rows` at `now_ms`; the output as `op|k|sum`.
    fn step(op: &mut GroupAggregate, now_ms: u64, rows: &[(RowKind, i64, i64)]) -> Vec<String> {
        let Some(out) = op.process(&batch(rows), now_ms).unwrap() else {
            return vec![];
        };
        let names = ["+I", "-U", "+U", "-D"];
        (0..out.num_rows())
            .map(|i| {
                let col = |c: usize| {
                    arrow::util::display::array_value_to_string(out.data.column(c), i).unwrap()
                };
                format!("{}|{}|{}", names[out.ops.value(i) as usize], col(0), col(1))
            })
            .collect()
    }

    #[test]
    fn without_a_ttl_a_key_is_kept_however_long_it_is_idle() {
        let mut op = sum_by_key(None);
        assert_eq!(step(&mut op, 0, &[(I, 1, 5)]), vec!["+I|1|5"]);
        assert_eq!(
            step(&mut op, 86_400_000, &[(I, 1, 2)]),
            vec!["-U|1|5", "+U|1|7"]
        );
        let e = op.process(&batch(&[(D, 2, 1)]), 0).unwrap_err();
        assert!(e.to_string().contains("no rows of"), "{e}");
    }

    #[test]
    fn a_key_idle_for_the_ttl_starts_again_from_insert() {
        let mut op = sum_by_key(Some(100));
        assert_eq!(step(&mut op, 0, &[(I, 1, 5)]), vec!["+I|1|5"]);
        // Each write keeps the key another TTL.
        assert_eq!(step(&mut op, 50, &[(I, 1, 1)]), vec!["-U|1|5", "+U|1|6"]);
        assert_eq!(step(&mut op, 149, &[(I, 1, 1)]), vec!["-U|1|6", "+U|1|7"]);
        // Idle from 149 to 249: forgotten, the next row is a new key.
        assert_eq!(step(&mut op, 249, &[(I, 1, 3)]), vec!["+I|1|3"]);
        // A retraction of rows the key no longer holds is ignored.
        assert!(step(&mut op, 400, &[(D, 1, 3)]).is_empty());
        assert!(step(&mut op, 400, &[(D, 2, 9)]).is_empty());
        // Rows inserted and retracted in one batch still cancel out.
        assert_eq!(
            step(&mut op, 500, &[(I, 3, 4), (I, 3, 6), (D, 3, 4)]),
            vec!["+I|3|6"]
        );
    }

    #[test]
    fn under_a_ttl_a_retraction_of_a_value_from_before_the_expiry_is_skipped() {
        // MAX over an updating input keeps a multiset of values.
        let max = AggregateExprBuilder::new(
            datafusion::functions_aggregate::min_max::max_udaf(),
            vec![Arc::new(Column::new("v", 1))],
        )
        .schema(input_schema())
        .alias("m")
        .build()
        .unwrap();
        let out = Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("m", DataType::Int64, true),
        ]);
        let mut op = GroupAggregate::try_new(
            vec![Arc::new(Column::new("k", 0))],
            vec![StreamAggregate {
                expr: Arc::new(max),
                filter: None,
                retraction: Retraction::MinMax { min: false },
            }],
            Arc::new(out),
            Some(100),
        )
        .unwrap();
        assert_eq!(step(&mut op, 0, &[(I, 1, 9)]), vec!["+I|1|9"]);
        assert_eq!(step(&mut op, 200, &[(I, 1, 4), (I, 1, 5)]), vec!["+I|1|5"]);
        // 9 was added before the key expired: MAX skips it (no error), but
        // the key's row count still drops, as Flink's record counter does,
        // so the next retraction empties the key.
        assert!(step(&mut op, 210, &[(D, 1, 9)]).is_empty());
        assert_eq!(step(&mut op, 220, &[(D, 1, 5)]), vec!["-D|1|5"]);
    }

    #[test]
    fn expired_keys_leave_memory_at_the_sweep() {
        let mut op = sum_by_key(Some(100));
        step(&mut op, 0, &[(I, 1, 1), (I, 2, 1)]);
        step(&mut op, 60, &[(I, 2, 1)]);
        assert_eq!(op.groups.len(), 2);
        // At 100 the sweep drops key 1 (idle since 0), keeps key 2 (60).
        step(&mut op, 100, &[(I, 3, 1)]);
        assert_eq!(op.groups.len(), 2);
        assert_eq!(step(&mut op, 120, &[(I, 2, 1)]), vec!["-U|2|2", "+U|2|3"]);
    }
}

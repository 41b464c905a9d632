//! Non-windowed `GROUP BY` aggregation over a changelog (Flink's
//! `GroupAggregate`): state per key; each input batch updates it — `+I`/`+U`
//! rows added, `-U`/`-D` rows retracted — and then, for every key the batch
//! touched, the operator emits what changed: `+I` for a new key, `-U` old /
//! `+U` new for a changed result, `-D` when a key's last row is retracted. A
//! key whose result did not change emits nothing. (This is Flink's
//! mini-batch aggregation, with a mini-batch per input batch.)
//!
//! The state is laid out as DataFusion's hash aggregate lays out its own: a
//! `GroupValues` key index interns a batch's key columns (which the keyed
//! exchange in front evaluated once) and returns a group index per row, and
//! each aggregate's state is indexed by group. COUNT, SUM, AVG (and MIN/MAX
//! of an append-only input) are columnar [`NativeColumn`]s folded row-weighted
//! (+1 add, -1 retract) in one pass; any other aggregate keeps a DataFusion
//! accumulator (or a value multiset) per key, fed each key's rows as slices.
//! The old and new values of the touched keys are evaluated as arrays, compared
//! with Arrow's `distinct`, and the changelog is assembled with `take` /
//! `interleave`. Deleted and expired keys leave dead slots in the index; once
//! those outnumber the live keys the index is rebuilt from the live keys.
//!
//! With `table.exec.mini-batch.enabled`, input batches are buffered until
//! `table.exec.mini-batch.size` rows have come or the oldest has waited
//! `table.exec.mini-batch.allow-latency`, and applied as one: a key that
//! changed many times in that span emits one `-U`/`+U` pair, not one per
//! input batch. The folded result is the same either way.
//!
//! A global aggregate (no `GROUP BY`)
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

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int8Array, UInt32Array};
use arrow::compute::{interleave, take};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::RowConverter;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Accumulator, EmitTo};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;
use tokio::task::JoinSet;

use tributary_planner::RowKind;
use tributary_planner::streaming::{Retraction, StreamAggregate};

use super::native_state::{self, DistinctSet, NativeColumn, NativeKind};
use super::state_ttl::{Clock, StateTtl};
use super::value_multiset::{Measure, ValueMultiset};
use super::{
    ChangeBatch, Message, Receiver, aggregate_input, channel, conform_column, exchange, send,
    send_data,
};

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

/// Starts one instance of the operator on `input`, whose rows are of
/// `input_schema`.
#[allow(clippy::too_many_arguments)]
pub(super) fn start(
    mut input: Receiver,
    group: Vec<Arc<dyn PhysicalExpr>>,
    aggregates: Vec<StreamAggregate>,
    input_schema: SchemaRef,
    schema: SchemaRef,
    mini_batch: Option<MiniBatch>,
    state_ttl_ms: Option<u64>,
    tasks: &mut JoinSet<()>,
) -> Result<Receiver> {
    let (tx, rx) = channel();
    let mut op = GroupAggregate::try_new(group, aggregates, &input_schema, schema, state_ttl_ms)?;
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

/// The state of one aggregate for one key when it has no [`NativeColumn`]:
/// DataFusion's accumulator, or a value multiset (MIN/MAX/COUNT(DISTINCT)
/// over an updating input).
enum BoxedState {
    Accumulator(Box<dyn Accumulator>),
    Multiset(Box<ValueMultiset>),
}

impl BoxedState {
    fn update(&mut self, args: &[ArrayRef]) -> Result<()> {
        match self {
            BoxedState::Accumulator(a) => a.update_batch(args),
            BoxedState::Multiset(m) => m.update(&args[0]),
        }
    }

    /// Removes `args`' rows. `expired_state`: the key's state may have
    /// expired under a TTL since the rows were added, so rows it does not
    /// hold are skipped instead of an error.
    fn retract(&mut self, args: &[ArrayRef], expired_state: bool) -> Result<()> {
        match self {
            BoxedState::Accumulator(a) => a.retract_batch(args),
            BoxedState::Multiset(m) if expired_state => m.retract_present(&args[0]),
            BoxedState::Multiset(m) => m.retract(&args[0]),
        }
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        match self {
            BoxedState::Accumulator(a) => a.evaluate(),
            BoxedState::Multiset(m) => m.evaluate(),
        }
    }
}

/// One aggregate's state for every group index.
enum AggColumn {
    /// The common aggregates: a few `Vec`s over group indices.
    Native(NativeColumn),
    /// Every other aggregate: one boxed state per group (None: not made
    /// yet, i.e. fresh).
    Boxed(Vec<Option<BoxedState>>),
}

/// `weights` with 0 where `filter` (an aggregate's `FILTER (WHERE ...)`) is
/// not true: such rows weigh nothing for that aggregate.
fn filtered_weights(weights: &[i8], filter: Option<&BooleanArray>) -> Vec<i8> {
    match filter {
        None => weights.to_vec(),
        Some(mask) => {
            // True and not NULL, as one bitmap.
            let keep = match mask.nulls() {
                Some(nulls) => mask.values() & nulls.inner(),
                None => mask.values().clone(),
            };
            weights
                .iter()
                .zip(keep.iter())
                .map(|(w, keep)| if keep { *w } else { 0 })
                .collect()
        }
    }
}

/// One [`DistinctSet`] per argument of the `COUNT(DISTINCT)` columns: those
/// over the same expression share one (in `members` order: bit `k` is the
/// `k`-th of them).
fn distinct_sets(aggregates: &[StreamAggregate], columns: &[AggColumn]) -> Vec<DistinctSet> {
    let argument = |j: usize| aggregates[j].expr.expressions().first().cloned();
    let mut sets: Vec<DistinctSet> = Vec::new();
    for (j, column) in columns.iter().enumerate() {
        if !matches!(column, AggColumn::Native(n) if n.kind() == NativeKind::DistinctInt) {
            continue;
        }
        let shared = sets.iter_mut().find(|s| {
            s.members().len() < DistinctSet::MAX_MEMBERS && argument(s.members()[0]) == argument(j)
        });
        match shared {
            Some(set) => {
                set.join(j);
            }
            None => sets.push(DistinctSet::new(j)),
        }
    }
    sets
}

/// Below this many dead group slots the key index is never compacted.
const COMPACT_MIN_DEAD: usize = 4096;

struct GroupAggregate {
    group: Vec<Arc<dyn PhysicalExpr>>,
    aggregates: Vec<StreamAggregate>,
    schema: SchemaRef,
    /// The key columns' schema (the output's first columns).
    key_schema: SchemaRef,
    /// DataFusion's key index (`GroupValues`, as its hash aggregate uses):
    /// interns a batch's key columns, returns a group index per row. None
    /// for a global aggregate, whose one group is index 0.
    index: Option<Box<dyn GroupValues>>,
    /// Each aggregate's state over group indices.
    columns: Vec<AggColumn>,
    /// The value pairs of the `COUNT(DISTINCT)` columns
    /// ([`NativeKind::DistinctInt`]), one set per argument they share.
    distinct: Vec<DistinctSet>,
    /// Rows of each group now in the input (inserted minus retracted); a
    /// group with rows holds a key and has emitted its result. A group
    /// with none is a dead slot (deleted or expired key), its state empty.
    rows: Vec<i64>,
    /// When a batch last changed each group (processing time, ms); only
    /// kept under a TTL.
    written_ms: Vec<u64>,
    /// Groups with rows.
    live: usize,
    /// Scratch, `u32::MAX` outside `process`: a group's slot among the
    /// groups the current batch touches.
    slot_of_group: Vec<u32>,
    /// Shared by the keys of each MIN/MAX/COUNT(DISTINCT) aggregate over an
    /// updating input (COUNT(DISTINCT)'s is made from its first argument).
    multiset_converters: Vec<Option<Arc<RowConverter>>>,
    /// A global aggregate emitted at least once.
    emitted_any: bool,
    /// `table.exec.state.ttl`, if set.
    ttl: Option<StateTtl>,
}

/// What one batch does to one key it touches.
struct Touched {
    group: usize,
    /// The key's first row in the batch (its key columns are read there).
    first_row: u32,
    inserted: i64,
    retracted: i64,
}

impl GroupAggregate {
    fn try_new(
        group: Vec<Arc<dyn PhysicalExpr>>,
        aggregates: Vec<StreamAggregate>,
        input: &arrow::datatypes::Schema,
        schema: SchemaRef,
        state_ttl_ms: Option<u64>,
    ) -> Result<Self> {
        let key_schema = Arc::new(arrow::datatypes::Schema::new(
            schema.fields()[..group.len()].to_vec(),
        ));
        let index = if group.is_empty() {
            None
        } else {
            Some(new_group_values(key_schema.clone(), &GroupOrdering::None)?)
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
        let columns = aggregates
            .iter()
            .map(|a| {
                let append_only = a.retraction == Retraction::NotNeeded;
                // Over an append-only input without a TTL no key is ever dropped.
                let keys_kept = append_only && state_ttl_ms.is_none();
                match NativeKind::for_aggregate(&a.expr, input, append_only, keys_kept) {
                    Some(kind) => AggColumn::Native(NativeColumn::new(kind)),
                    None => AggColumn::Boxed(Vec::new()),
                }
            })
            .collect::<Vec<_>>();
        let distinct = distinct_sets(&aggregates, &columns);
        let mut op = Self {
            group,
            aggregates,
            schema,
            key_schema,
            index,
            columns,
            distinct,
            rows: Vec::new(),
            written_ms: Vec::new(),
            live: 0,
            slot_of_group: Vec::new(),
            multiset_converters,
            emitted_any: false,
            ttl: state_ttl_ms.map(StateTtl::new),
        };
        if op.index.is_none() {
            op.grow(1);
        }
        Ok(op)
    }

    /// A fresh boxed state for aggregate `j`.
    fn new_boxed(&self, j: usize) -> Result<BoxedState> {
        let a = &self.aggregates[j];
        Ok(match (a.retraction, &self.multiset_converters[j]) {
            (Retraction::MinMax { min }, Some(conv)) => {
                BoxedState::Multiset(Box::new(ValueMultiset::new(
                    if min { Measure::Min } else { Measure::Max },
                    a.expr.field().data_type().clone(),
                    conv.clone(),
                )))
            }
            (Retraction::DistinctCount, Some(conv)) => BoxedState::Multiset(Box::new(
                ValueMultiset::new(Measure::DistinctCount, DataType::Int64, conv.clone()),
            )),
            // Only a global aggregate that saw no batch at all: it counts
            // nothing, whatever the values' type.
            (Retraction::DistinctCount, None) => {
                BoxedState::Multiset(Box::new(ValueMultiset::new(
                    Measure::DistinctCount,
                    DataType::Int64,
                    ValueMultiset::converter(&DataType::Null)?,
                )))
            }
            (Retraction::NotNeeded, _) => BoxedState::Accumulator(a.expr.create_accumulator()?),
            _ => BoxedState::Accumulator(a.expr.create_sliding_accumulator()?),
        })
    }

    /// Makes room for group indices `0..groups`.
    fn grow(&mut self, groups: usize) {
        if groups <= self.rows.len() {
            return;
        }
        self.rows.resize(groups, 0);
        if self.ttl.is_some() {
            self.written_ms.resize(groups, 0);
        }
        self.slot_of_group.resize(groups, u32::MAX);
        for c in &mut self.columns {
            match c {
                AggColumn::Native(n) => n.resize(groups),
                AggColumn::Boxed(b) => b.resize_with(groups, || None),
            }
        }
    }

    /// Empties group `g`: its key was deleted or its state expired.
    fn clear_group(&mut self, g: usize) {
        if self.rows[g] > 0 {
            self.live -= 1;
        }
        self.rows[g] = 0;
        for c in &mut self.columns {
            match c {
                AggColumn::Native(n) => n.reset(g),
                AggColumn::Boxed(b) => b[g] = None,
            }
        }
        for set in &mut self.distinct {
            set.reset(g);
        }
    }

    /// Aggregate `j`'s values for `groups`, in that order.
    fn evaluate(&mut self, j: usize, groups: &[usize]) -> Result<ArrayRef> {
        let want = self.schema.field(self.group.len() + j).data_type().clone();
        let fresh = match &self.columns[j] {
            AggColumn::Boxed(states) if groups.iter().any(|g| states[*g].is_none()) => {
                Some(self.new_boxed(j)?)
            }
            _ => None,
        };
        let array = match &mut self.columns[j] {
            AggColumn::Native(n) => n.evaluate(groups),
            AggColumn::Boxed(states) => {
                let mut fresh = fresh;
                let values = groups
                    .iter()
                    .map(|g| match &mut states[*g] {
                        Some(s) => s.evaluate(),
                        None => match &mut fresh {
                            Some(f) => f.evaluate(),
                            None => Err(DataFusionError::Internal("no fresh state".into())),
                        },
                    })
                    .collect::<Result<Vec<_>>>()?;
                if values.is_empty() {
                    arrow::array::new_empty_array(&want)
                } else {
                    ScalarValue::iter_to_array(values)?
                }
            }
        };
        conform_column(array, &want)
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
        let global = self.index.is_none();
        // The exchange in front appended the evaluated key columns.
        let (data, keys) = exchange::split_keys(&change.data, self.group.len())?;
        let args = aggregate_input::arguments(&self.aggregates, &data)?;
        let filters = aggregate_input::filter_masks(&self.aggregates, &data)?;
        for (j, a) in self.aggregates.iter().enumerate() {
            if a.retraction == Retraction::DistinctCount && self.multiset_converters[j].is_none() {
                let values = args[j].first().ok_or_else(|| {
                    DataFusionError::Internal("COUNT(DISTINCT) without an argument".into())
                })?;
                self.multiset_converters[j] = Some(ValueMultiset::converter(values.data_type())?);
            }
        }

        // Each row's group index, vectorized over the key columns.
        let mut group_of_row: Vec<usize> = Vec::with_capacity(n);
        match &mut self.index {
            Some(index) => {
                index.intern(&keys, &mut group_of_row)?;
                let groups = index.len();
                self.grow(groups);
            }
            None => group_of_row.resize(n, 0),
        }

        // The keys the batch touches, in first-seen order, and each row's
        // slot among them.
        let retraction: Vec<bool> = change.kinds().map(|k| k.is_retraction()).collect();
        let mut touched: Vec<Touched> = Vec::new();
        let mut slot_of_row: Vec<u32> = Vec::with_capacity(n);
        for (row, &g) in group_of_row.iter().enumerate() {
            let mut slot = self.slot_of_group[g];
            if slot == u32::MAX {
                slot = touched.len() as u32;
                self.slot_of_group[g] = slot;
                touched.push(Touched {
                    group: g,
                    first_row: row as u32,
                    inserted: 0,
                    retracted: 0,
                });
            }
            let t = &mut touched[slot as usize];
            if retraction[row] {
                t.retracted += 1;
            } else {
                t.inserted += 1;
            }
            slot_of_row.push(slot);
        }
        for t in &touched {
            self.slot_of_group[t.group] = u32::MAX;
        }

        // Under a TTL an expired key is gone: nothing of it is read again;
        // retractions of more rows than a key holds are of rows whose state
        // expired, and are ignored, as Flink does.
        let mut dropped_retractions = vec![false; touched.len()];
        if let Some(ttl) = self.ttl {
            for (s, t) in touched.iter_mut().enumerate() {
                if self.rows[t.group] > 0 && ttl.expired(self.written_ms[t.group], now_ms) {
                    self.clear_group(t.group);
                }
                if self.rows[t.group] + t.inserted < t.retracted {
                    dropped_retractions[s] = true;
                    t.retracted = 0;
                }
            }
        } else {
            for t in &touched {
                if self.rows[t.group] == 0 && t.inserted == 0 && !global {
                    return Err(DataFusionError::Execution(
                        "GROUP BY received a retraction for a key it has no rows of".into(),
                    ));
                }
            }
        }
        // Each row's weight: +1 added, -1 retracted, 0 ignored.
        let weights: Vec<i8> = retraction
            .iter()
            .zip(&slot_of_row)
            .map(|(r, s)| match (r, dropped_retractions[*s as usize]) {
                (false, _) => 1,
                (true, false) => -1,
                (true, true) => 0,
            })
            .collect();

        // What each key showed until now: its values before this batch.
        let shown_before: Vec<bool> = touched
            .iter()
            .map(|t| self.rows[t.group] > 0 || (global && self.emitted_any))
            .collect();
        let old_groups: Vec<usize> = touched
            .iter()
            .zip(&shown_before)
            .filter(|(_, shown)| **shown)
            .map(|(t, _)| t.group)
            .collect();
        let old = (0..self.aggregates.len())
            .map(|j| self.evaluate(j, &old_groups))
            .collect::<Result<Vec<_>>>()?;

        self.update_native(
            &args,
            &filters,
            &group_of_row,
            &slot_of_row,
            &weights,
            &touched,
        )?;
        if self
            .columns
            .iter()
            .any(|c| matches!(c, AggColumn::Boxed(_)))
        {
            self.update_boxed(&args, &filters, &slot_of_row, &weights, &touched)?;
        }

        // Row counts, the live count and write times.
        for t in &touched {
            let g = t.group;
            let before = self.rows[g];
            self.rows[g] += t.inserted - t.retracted;
            if self.rows[g] < 0 {
                return Err(DataFusionError::Execution(
                    "GROUP BY retracted more rows of a key than it received".into(),
                ));
            }
            match (before > 0, self.rows[g] > 0) {
                (false, true) => self.live += 1,
                (true, false) => self.live -= 1,
                _ => {}
            }
            if let Some(w) = self.written_ms.get_mut(g) {
                *w = now_ms;
            }
        }

        // What each key shows now; a key whose last row went is deleted.
        let new_groups: Vec<usize> = touched
            .iter()
            .filter(|t| global || self.rows[t.group] > 0)
            .map(|t| t.group)
            .collect();
        let new = (0..self.aggregates.len())
            .map(|j| self.evaluate(j, &new_groups))
            .collect::<Result<Vec<_>>>()?;
        if !global {
            for t in &touched {
                if self.rows[t.group] == 0 {
                    self.clear_group(t.group);
                }
            }
        }

        let out = self.changes(&touched, &keys, &old, &new, &shown_before)?;
        self.emitted_any |= out.is_some();
        if let Some(ttl) = &mut self.ttl
            && ttl.sweep_due(now_ms)
        {
            let ttl = *ttl;
            for g in 0..self.rows.len() {
                if self.rows[g] > 0 && ttl.expired(self.written_ms[g], now_ms) {
                    self.clear_group(g);
                }
            }
        }
        self.compact_if_sparse()?;
        Ok(out)
    }

    /// Folds the batch into the native columns: inserts, then retractions
    /// (so a retraction never meets a state its inserts have not reached).
    fn update_native(
        &mut self,
        args: &[Vec<ArrayRef>],
        filters: &[Option<BooleanArray>],
        group_of_row: &[usize],
        slot_of_row: &[u32],
        weights: &[i8],
        touched: &[Touched],
    ) -> Result<()> {
        let any_retraction = weights.iter().any(|w| *w < 0);
        let ttl_set = self.ttl.is_some();
        for set in &mut self.distinct {
            let members = set.members();
            let values = args[members[0]].first().ok_or_else(|| {
                DataFusionError::Internal("COUNT(DISTINCT) without an argument".into())
            })?;
            let member_weights: Vec<Vec<i8>> = members
                .iter()
                .map(|&j| filtered_weights(weights, filters[j].as_ref()))
                .collect();
            let mut columns: Vec<&mut NativeColumn> = self
                .columns
                .iter_mut()
                .enumerate()
                .filter(|(j, _)| members.contains(j))
                .filter_map(|(_, c)| match c {
                    AggColumn::Native(n) => Some(n),
                    AggColumn::Boxed(_) => None,
                })
                .collect();
            set.update(values, group_of_row, &member_weights, &mut columns)?;
        }
        for (j, column) in self.columns.iter_mut().enumerate() {
            let AggColumn::Native(column) = column else {
                continue;
            };
            if column.kind() == NativeKind::DistinctInt {
                continue; // folded by its DistinctSet above
            }
            let values = args[j].first().ok_or_else(|| {
                DataFusionError::Internal("an aggregate without an argument".into())
            })?;
            let weights = filtered_weights(weights, filters[j].as_ref());
            if !any_retraction {
                column.update(values, group_of_row, &weights)?;
                continue;
            }
            let inserts: Vec<i8> = weights.iter().map(|w| (*w).max(0)).collect();
            let mut retracts: Vec<i8> = weights.iter().map(|w| (*w).min(0)).collect();
            column.update(values, group_of_row, &inserts)?;
            if ttl_set {
                // Values the key no longer holds (its state expired since
                // they were added) are skipped, not an error.
                let mut retracted = vec![0i64; touched.len()];
                NativeColumn::count_retracted(values, slot_of_row, &retracts, &mut retracted);
                let skip: Vec<bool> = touched
                    .iter()
                    .zip(&retracted)
                    .map(|(t, r)| column.count(t.group) < *r)
                    .collect();
                for (w, s) in retracts.iter_mut().zip(slot_of_row) {
                    if skip[*s as usize] {
                        *w = 0;
                    }
                }
            }
            column.update(values, group_of_row, &retracts)?;
            for t in touched {
                if column.count(t.group) < 0 {
                    return Err(DataFusionError::Execution(
                        "an aggregate retracted more values than it received".into(),
                    ));
                }
                column.settle(t.group);
            }
        }
        Ok(())
    }

    /// Folds the batch into the boxed states: the rows are ordered by (key,
    /// insert or retraction) with a counting sort, every argument and mask
    /// gathered once in that order, and each key's rows fed to its states
    /// as two contiguous, zero-copy slices.
    fn update_boxed(
        &mut self,
        args: &[Vec<ArrayRef>],
        filters: &[Option<BooleanArray>],
        slot_of_row: &[u32],
        weights: &[i8],
        touched: &[Touched],
    ) -> Result<()> {
        let buckets = touched.len() * 2;
        let bucket = |row: usize| slot_of_row[row] as usize * 2 + usize::from(weights[row] < 0);
        let mut offsets = vec![0usize; buckets + 1];
        for (row, w) in weights.iter().enumerate() {
            if *w != 0 {
                offsets[bucket(row) + 1] += 1;
            }
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        let mut order = vec![0u32; offsets[buckets]];
        let mut next = offsets.clone();
        for (row, w) in weights.iter().enumerate() {
            if *w != 0 {
                let b = bucket(row);
                order[next[b]] = row as u32;
                next[b] += 1;
            }
        }
        let order = UInt32Array::from(order);
        let ttl_set = self.ttl.is_some();
        for j in 0..self.aggregates.len() {
            if !matches!(self.columns[j], AggColumn::Boxed(_)) {
                continue;
            }
            let args = args[j]
                .iter()
                .map(|a| take(a.as_ref(), &order, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let mask = match &filters[j] {
                Some(mask) => Some(take(mask, &order, None)?.as_boolean().clone()),
                None => None,
            };
            for (s, t) in touched.iter().enumerate() {
                for retract in [false, true] {
                    let b = s * 2 + usize::from(retract);
                    let (start, end) = (offsets[b], offsets[b + 1]);
                    if start == end {
                        continue;
                    }
                    let mut slice: Vec<ArrayRef> =
                        args.iter().map(|a| a.slice(start, end - start)).collect();
                    if let Some(mask) = &mask {
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
                    let fresh = match &self.columns[j] {
                        AggColumn::Boxed(states) if states[t.group].is_none() => {
                            Some(self.new_boxed(j)?)
                        }
                        _ => None,
                    };
                    let AggColumn::Boxed(states) = &mut self.columns[j] else {
                        continue;
                    };
                    let state = &mut states[t.group];
                    if let Some(f) = fresh {
                        *state = Some(f);
                    }
                    let Some(state) = state else { continue };
                    if retract {
                        state.retract(&slice, ttl_set)?
                    } else {
                        state.update(&slice)?
                    }
                }
            }
        }
        Ok(())
    }

    /// The changelog rows of one batch, keys in first-seen order: `+I` for
    /// a new key, `-U` old / `+U` new for a changed result, `-D` when a
    /// key's last row was retracted; nothing for a key whose result did not
    /// change. `old` holds the values of the keys `shown_before` (in
    /// touched order), `new` those of the keys with rows now (or every key
    /// of a global aggregate).
    fn changes(
        &self,
        touched: &[Touched],
        keys: &[ArrayRef],
        old: &[ArrayRef],
        new: &[ArrayRef],
        shown_before: &[bool],
    ) -> Result<Option<ChangeBatch>> {
        let global = self.index.is_none();
        // Each touched key's row in `old` and in `new`, if it has one.
        let (mut next_old, mut next_new) = (0usize, 0usize);
        let mut positions: Vec<(Option<usize>, Option<usize>)> = Vec::with_capacity(touched.len());
        for (t, shown) in touched.iter().zip(shown_before) {
            let o = shown.then(|| {
                next_old += 1;
                next_old - 1
            });
            let nw = (global || self.rows[t.group] > 0).then(|| {
                next_new += 1;
                next_new - 1
            });
            positions.push((o, nw));
        }
        // Which of the keys shown before and after changed, compared column
        // by column with Arrow's `distinct` kernel.
        let pairs: Vec<(u32, u32)> = positions
            .iter()
            .filter_map(|p| match p {
                (Some(o), Some(n)) => Some((*o as u32, *n as u32)),
                _ => None,
            })
            .collect();
        let changed = changed_rows(old, new, &pairs)?;
        let mut pair = 0usize;
        let mut kinds: Vec<i8> = Vec::new();
        let mut key_rows: Vec<u32> = Vec::new();
        let mut values: Vec<(usize, usize)> = Vec::new();
        for (t, p) in touched.iter().zip(&positions) {
            let mut push = |kind: RowKind, from: (usize, usize)| {
                kinds.push(kind.code());
                key_rows.push(t.first_row);
                values.push(from);
            };
            match *p {
                (None, None) => {}
                (None, Some(n)) => push(RowKind::Insert, (1, n)),
                (Some(o), None) => push(RowKind::Delete, (0, o)),
                (Some(o), Some(n)) => {
                    if changed[pair] {
                        push(RowKind::UpdateBefore, (0, o));
                        push(RowKind::UpdateAfter, (1, n));
                    }
                    pair += 1;
                }
            }
        }
        if kinds.is_empty() {
            return Ok(None);
        }
        let key_rows = UInt32Array::from(key_rows);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (i, k) in keys.iter().enumerate() {
            let k = aggregate_input::zero_null_slots(take(k.as_ref(), &key_rows, None)?)?;
            columns.push(conform_column(k, self.key_schema.field(i).data_type())?);
        }
        for (o, nw) in old.iter().zip(new) {
            columns.push(interleave(&[o.as_ref(), nw.as_ref()], &values)?);
        }
        let data = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(kinds.len())),
        )?;
        Ok(Some(ChangeBatch {
            ops: Arc::new(Int8Array::from(kinds)),
            data,
        }))
    }

    /// Drops the dead slots (deleted or expired keys) from the key index
    /// and every state column once they outnumber the live keys, so memory
    /// follows the keys held: the index's keys are emitted, the live ones
    /// interned again into a fresh index (their new indices are their
    /// order), and the state columns keep the same rows.
    fn compact_if_sparse(&mut self) -> Result<()> {
        let Some(index) = &mut self.index else {
            return Ok(());
        };
        let dead = index.len() - self.live;
        if dead < COMPACT_MIN_DEAD || dead <= self.live {
            return Ok(());
        }
        let keys = index.emit(EmitTo::All)?;
        let keep: Vec<bool> = self.rows.iter().map(|r| *r > 0).collect();
        let mask = BooleanArray::from(keep.clone());
        let kept = keys
            .iter()
            .map(|k| arrow::compute::filter(k.as_ref(), &mask))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut fresh = new_group_values(self.key_schema.clone(), &GroupOrdering::None)?;
        let mut groups = Vec::new();
        fresh.intern(&kept, &mut groups)?;
        *index = fresh;
        native_state::retain(&mut self.rows, &keep);
        native_state::retain(&mut self.written_ms, &keep);
        self.slot_of_group.truncate(self.live);
        self.slot_of_group.shrink_to_fit();
        for c in &mut self.columns {
            match c {
                AggColumn::Native(n) => n.retain(&keep),
                AggColumn::Boxed(b) => native_state::retain(b, &keep),
            }
        }
        for set in &mut self.distinct {
            set.retain(&keep);
        }
        self.rows.shrink_to_fit();
        Ok(())
    }

    /// Keys held now (tests).
    #[cfg(test)]
    fn live_keys(&self) -> usize {
        self.live
    }

    /// At the end of the input: a global aggregate over no rows still has a
    /// result (COUNT 0, SUM NULL), as in BATCH.
    fn finish(&mut self) -> Result<Option<ChangeBatch>> {
        if self.index.is_some() || self.emitted_any {
            return Ok(None);
        }
        let columns = (0..self.aggregates.len())
            .map(|j| self.evaluate(j, &[0]))
            .collect::<Result<Vec<_>>>()?;
        self.emitted_any = true;
        let data = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(1)),
        )?;
        Ok(Some(ChangeBatch::inserts(data)))
    }
}

/// For each `(old row, new row)` pair, whether any aggregate's value
/// differs (NULL equals NULL), with Arrow's vectorized `distinct` where
/// the type has it, else value by value.
fn changed_rows(old: &[ArrayRef], new: &[ArrayRef], pairs: &[(u32, u32)]) -> Result<Vec<bool>> {
    let mut changed = vec![false; pairs.len()];
    if pairs.is_empty() {
        return Ok(changed);
    }
    let from_old = UInt32Array::from_iter_values(pairs.iter().map(|p| p.0));
    let from_new = UInt32Array::from_iter_values(pairs.iter().map(|p| p.1));
    for (o, n) in old.iter().zip(new) {
        let (o, n) = (
            take(o.as_ref(), &from_old, None)?,
            take(n.as_ref(), &from_new, None)?,
        );
        match arrow::compute::kernels::cmp::distinct(&o, &n) {
            Ok(d) => {
                for (c, d) in changed.iter_mut().zip(d.values().iter()) {
                    *c |= d;
                }
            }
            Err(_) => {
                for (i, c) in changed.iter_mut().enumerate() {
                    if !*c {
                        *c = ScalarValue::try_from_array(&o, i)?
                            != ScalarValue::try_from_array(&n, i)?;
                    }
                }
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RowKind::{Delete as D, Insert as I};
    use arrow::array::Int64Array;
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
            &input_schema(),
            Arc::new(out),
            state_ttl_ms,
        )
        .unwrap()
    }

    /// The rows as a keyed exchange hands them over: `k, v`, then the key
    /// column `k` again.
    fn batch(rows: &[(RowKind, i64, i64)]) -> ChangeBatch {
        let mut fields = input_schema().fields().to_vec();
        fields.push(Arc::new(Field::new("__key_0", DataType::Int64, true)));
        let k: ArrayRef = Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1)));
        let data = RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            vec![
                k.clone(),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
                k,
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
            &input_schema(),
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
        assert_eq!(op.live_keys(), 2);
        // At 100 the sweep drops key 1 (idle since 0), keeps key 2 (60).
        step(&mut op, 100, &[(I, 3, 1)]);
        assert_eq!(op.live_keys(), 2);
        assert_eq!(step(&mut op, 120, &[(I, 2, 1)]), vec!["-U|2|2", "+U|2|3"]);
    }

    #[test]
    fn deleted_keys_are_compacted_out_of_the_index() {
        let mut op = sum_by_key(None);
        let keys = 5000i64;
        let inserts: Vec<_> = (0..keys).map(|k| (I, k, k)).collect();
        assert_eq!(step(&mut op, 0, &inserts).len(), keys as usize);
        // Delete all but the last 10 keys: the dead slots outnumber the
        // live ones, so the index is rebuilt from the 10 live keys.
        let deletes: Vec<_> = (0..keys - 10).map(|k| (D, k, k)).collect();
        let out = step(&mut op, 0, &deletes);
        assert_eq!(out.len(), (keys - 10) as usize);
        assert_eq!(out[0], "-D|0|0");
        assert_eq!(op.live_keys(), 10);
        assert_eq!(op.index.as_ref().unwrap().len(), 10);
        assert_eq!(op.rows.len(), 10);
        // The live keys kept their state; a deleted key starts afresh.
        assert_eq!(
            step(&mut op, 0, &[(I, 4995, 5), (I, 3, 1), (D, 4999, 4999)]),
            vec!["-U|4995|4995", "+U|4995|5000", "+I|3|1", "-D|4999|4999"]
        );
        assert_eq!(op.live_keys(), 10);
    }
}

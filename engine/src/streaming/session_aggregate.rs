//! SESSION window aggregation in STREAMING: assignment and aggregation in
//! one operator, because a row's session is only known once the session has
//! ended (later rows may bridge two sessions into one).
//!
//! The state is laid out as DataFusion's hash aggregate lays out its own, so
//! rows are folded in a batch at a time with vectorized accumulators:
//!
//! - a `GroupValues` interns the PARTITION BY key columns (evaluated once,
//!   by the keyed exchange in front) and gives each row a key index; the
//!   keys' values are kept arrow-row encoded by key index, for the output;
//! - every session ever opened since the last firing is a *slot*, and a
//!   slot is a group index of one `GroupsAccumulator` per aggregate; a slot
//!   holds the session's interval [start, end) — end = last row's time +
//!   gap — and how many rows passed the row filter;
//! - per key, the open sessions (never overlapping) form a short list
//!   through their slots.
//!
//! A batch is assigned row by row (only interval arithmetic: a row joins
//! the open session of its key its [time, time + gap) overlaps, starts one,
//! or bridges several, which merge), then folded in with one `update_batch`
//! per aggregate over the rows' slots. A merge only links the merged slot
//! to the slot it joined; the accumulator states of merged slots are
//! combined at the next firing, which renumbers every slot anyway.
//!
//! When the watermark passes a session's last instant (end - 1 ms) it
//! fires: the accumulators hand over their state (`state`) and take it back
//! (`merge_batch`) renumbered — fired sessions first, merged slots onto the
//! session they joined, open sessions after — the fired ones are evaluated
//! and emitted (`+I`) in one batch (`evaluate(EmitTo::First)`), and the open
//! ones stay. A session with no row passing the row filter has no result.
//!
//! A session made only of a batch's own rows (bridging no session opened
//! before the batch) that is already closed by the watermark is late: its
//! rows are counted and dropped. (Rows of one batch are judged together, as
//! the batch-local session they form, so results do not depend on the order
//! of rows inside a batch.) Keys with no open session are dropped from the
//! key index once they outnumber the keys with one.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, TimestampMillisecondArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;
use tokio::task::JoinSet;

use tributary_planner::streaming::{SessionColumn, StreamAggregate};

use super::aggregate_input::{self, MinWatermark};
use super::late_rows::LateRows;
use super::{ChangeBatch, Message, Receiver, channel, conform_column, exchange, send_released};

/// What an instance needs to know.
pub(super) struct SessionSpec {
    pub time_index: usize,
    /// The session gap, ms.
    pub gap: i64,
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    pub outputs: Vec<SessionColumn>,
    pub aggregates: Vec<StreamAggregate>,
    /// Rows it rejects shape sessions but are not aggregated.
    pub row_filter: Option<Arc<dyn PhysicalExpr>>,
    pub schema: SchemaRef,
}

/// Starts one instance fed by `routers` inputs (through a keyed exchange:
/// each batch carries its evaluated PARTITION BY columns at the end).
pub(super) fn start(
    mut input: Receiver,
    routers: usize,
    spec: SessionSpec,
    late: LateRows,
    tasks: &mut JoinSet<()>,
) -> Result<Receiver> {
    let (tx, rx) = channel();
    let mut op = SessionAggregate::try_new(spec, routers, late)?;
    tasks.spawn(async move {
        while let Some(item) = input.recv().await {
            let result = match item {
                Ok(Message::Data(change)) => op.process(&change).map(|()| None),
                Ok(Message::Watermark { from, ts }) => op.advance(from, ts),
                Ok(Message::Idle { from }) => op.idle(from),
                Err(e) => Err(e),
            };
            if !send_released(&tx, result.map(|r| r.map(|(fired, w)| (Some(fired), w)))).await {
                return;
            }
        }
    });
    Ok(rx)
}

/// No slot (end of a key's list of open sessions).
const NONE: u32 = u32::MAX;

/// Keys without an open session kept in the key index before it is rebuilt
/// (beyond as many as there are keys with one).
const KEY_SLACK: usize = 4096;

/// One session opened since the last firing; its index is its group index
/// in the accumulators.
#[derive(Debug, Clone)]
struct Slot {
    /// Key index.
    key: u32,
    /// Time of its first row, ms.
    start: i64,
    /// Time of its last row + gap, ms (exclusive).
    end: i64,
    /// Rows that passed the row filter.
    counted: u64,
    /// The slot it was merged into; itself while it is a session.
    parent: u32,
    /// The key's next open session (`NONE`: the last).
    next: u32,
    /// Made of the current batch's rows alone (late if already closed).
    fresh: bool,
    /// Late: its rows are dropped and it has no result.
    dead: bool,
}

/// The PARTITION BY keys seen: their index and their values.
struct KeyIndex {
    groups: Box<dyn GroupValues>,
    /// The key columns' types, as interned.
    schema: SchemaRef,
    converter: RowConverter,
    /// Each key's values, arrow-row encoded, by key index.
    values: Rows,
}

struct SessionAggregate {
    spec: SessionSpec,
    /// Made from the first batch's key types; None until then, and always
    /// without PARTITION BY (every row has key 0).
    keys: Option<KeyIndex>,
    /// Each key's first open session (`NONE`: none).
    key_head: Vec<u32>,
    slots: Vec<Slot>,
    /// One per aggregate, its groups the slots.
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    /// The minimum watermark over the routers feeding this instance.
    watermark: MinWatermark,
    late: LateRows,
    /// Reused per batch: each row's key index, and its slot.
    key_of_row: Vec<usize>,
    slot_of_row: Vec<usize>,
}

impl SessionAggregate {
    fn try_new(spec: SessionSpec, routers: usize, late: LateRows) -> Result<Self> {
        let accumulators = spec
            .aggregates
            .iter()
            .map(|a| aggregate_input::groups_accumulator(&a.expr))
            .collect::<Result<Vec<_>>>()?;
        let key_head = if spec.keys.is_empty() {
            vec![NONE]
        } else {
            vec![]
        };
        Ok(Self {
            spec,
            keys: None,
            key_head,
            slots: Vec::new(),
            accumulators,
            watermark: MinWatermark::new(routers),
            late,
            key_of_row: Vec::new(),
            slot_of_row: Vec::new(),
        })
    }

    fn process(&mut self, change: &ChangeBatch) -> Result<()> {
        let n = change.num_rows();
        if n == 0 {
            return Ok(());
        }
        let (data, keys) = exchange::split_keys(&change.data, self.spec.keys.len())?;
        self.intern_keys(&keys, n)?;
        let times = aggregate_input::event_time_ms(data.column(self.spec.time_index))?;
        let row_mask = self
            .spec
            .row_filter
            .as_ref()
            .map(|f| aggregate_input::boolean(f.as_ref(), &data))
            .transpose()?;
        let watermark = self.watermark.current();
        let first_new = self.slots.len();

        // Assign each row (NULL times are in no session: slot 0, filtered
        // out below).
        let gap = self.spec.gap;
        let mut slot_of_row = std::mem::take(&mut self.slot_of_row);
        slot_of_row.clear();
        for row in 0..n {
            if times.is_null(row) {
                slot_of_row.push(0);
                continue;
            }
            let t = times.value(row);
            let slot = self.assign(self.key_of_row[row], t, t.saturating_add(gap))?;
            if row_mask
                .as_ref()
                .is_none_or(|m| m.is_valid(row) && m.value(row))
            {
                self.slots[slot as usize].counted += 1;
            }
            slot_of_row.push(slot as usize);
        }
        // The batch's own sessions that are already closed are late.
        let mut any_dead = false;
        for i in first_new..self.slots.len() {
            let slot = &self.slots[i];
            if slot.parent as usize == i && slot.fresh && slot.end.saturating_sub(1) <= watermark {
                self.unlink(i as u32);
                self.slots[i].dead = true;
                any_dead = true;
            }
            self.slots[i].fresh = false;
        }
        let mut late: Vec<u32> = Vec::new();
        if any_dead {
            for (row, slot) in slot_of_row.iter().enumerate() {
                if times.is_valid(row) && self.slots[self.root(*slot as u32) as usize].dead {
                    late.push(row as u32);
                }
            }
        }
        let folded = n - times.null_count() - late.len();
        if folded > 0 {
            // Rows that are in no session or late are left out of every
            // aggregate, as rows the row filter rejects are.
            let mut keep = row_mask.clone();
            if folded < n {
                let mut in_session = times
                    .nulls()
                    .map(|nulls| nulls.inner().clone())
                    .unwrap_or_else(|| arrow::buffer::BooleanBuffer::new_set(n));
                if !late.is_empty() {
                    let mut bits = arrow::array::BooleanBufferBuilder::new(n);
                    bits.append_buffer(&in_session);
                    for row in &late {
                        bits.set_bit(*row as usize, false);
                    }
                    in_session = bits.finish();
                }
                let in_session = BooleanArray::new(in_session, None);
                keep = Some(match keep {
                    Some(m) => arrow::compute::and(&m, &in_session)?,
                    None => in_session,
                });
            }
            let args = aggregate_input::arguments(&self.spec.aggregates, &data)?;
            let filters = aggregate_input::filter_masks(&self.spec.aggregates, &data)?;
            let groups = self.slots.len();
            for ((acc, args), own) in self.accumulators.iter_mut().zip(&args).zip(filters) {
                let filter = match (own, &keep) {
                    (Some(a), Some(b)) => Some(arrow::compute::and(&a, b)?),
                    (a, b) => a.or_else(|| b.clone()),
                };
                acc.update_batch(args, &slot_of_row, filter.as_ref(), groups)?;
            }
        }
        self.slot_of_row = slot_of_row;
        self.late.record(&data, &late, watermark)
    }

    /// Sets `key_of_row` to each row's key index, interning new keys (and
    /// keeping their values).
    fn intern_keys(&mut self, keys: &[ArrayRef], n: usize) -> Result<()> {
        if keys.is_empty() {
            self.key_of_row.clear();
            self.key_of_row.resize(n, 0);
            return Ok(());
        }
        if self.keys.is_none() {
            let schema = super::key_columns_schema(keys);
            let converter = RowConverter::new(
                keys.iter()
                    .map(|k| SortField::new(k.data_type().clone()))
                    .collect(),
            )?;
            self.keys = Some(KeyIndex {
                groups: new_group_values(schema.clone(), &GroupOrdering::None)?,
                schema,
                values: converter.empty_rows(0, 0),
                converter,
            });
        }
        let Some(index) = self.keys.as_mut() else {
            return Err(DataFusionError::Internal(
                "SESSION aggregate: no key index".into(),
            ));
        };
        let before = index.groups.len();
        index.groups.intern(keys, &mut self.key_of_row)?;
        let after = index.groups.len();
        if after > before {
            // Keep the new keys' values: each one's first row, in key order.
            let mut first = vec![u32::MAX; after - before];
            for (row, key) in self.key_of_row.iter().enumerate() {
                if *key >= before && first[*key - before] == u32::MAX {
                    first[*key - before] = row as u32;
                }
            }
            let first = UInt32Array::from(first);
            let new_keys = keys
                .iter()
                .map(|k| take(k.as_ref(), &first, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            index.converter.append(&mut index.values, &new_keys)?;
            self.key_head.resize(after, NONE);
        }
        Ok(())
    }

    /// Puts a row of key `key` at time `t` (its own session [t, end)) into
    /// the open session it overlaps, merging every one it overlaps, or into
    /// a new one. Returns that session's slot.
    fn assign(&mut self, key: usize, t: i64, end: i64) -> Result<u32> {
        let mut found = NONE;
        let mut prev = NONE;
        let mut cur = self.key_head[key];
        while cur != NONE {
            let s = &self.slots[cur as usize];
            let next = s.next;
            if s.start < end && t < s.end {
                if found == NONE {
                    found = cur;
                    let s = &mut self.slots[cur as usize];
                    s.start = s.start.min(t);
                    s.end = s.end.max(end);
                    prev = cur;
                } else {
                    // The row bridges `found` and `cur`: `cur` joins `found`
                    // (open sessions of a key never overlap, so the merged
                    // one overlaps no other).
                    let (start, stop, counted, fresh) = (s.start, s.end, s.counted, s.fresh);
                    let into = &mut self.slots[found as usize];
                    into.start = into.start.min(start);
                    into.end = into.end.max(stop);
                    into.counted += counted;
                    into.fresh &= fresh;
                    let merged = &mut self.slots[cur as usize];
                    merged.parent = found;
                    merged.next = NONE;
                    if prev == NONE {
                        self.key_head[key] = next;
                    } else {
                        self.slots[prev as usize].next = next;
                    }
                }
            } else {
                prev = cur;
            }
            cur = next;
        }
        if found != NONE {
            return Ok(found);
        }
        let id = u32::try_from(self.slots.len())
            .ok()
            .filter(|id| *id != NONE)
            .ok_or_else(|| {
                DataFusionError::Execution(
                    "SESSION aggregate: more than 4 billion sessions opened between two watermarks"
                        .into(),
                )
            })?;
        self.slots.push(Slot {
            key: key as u32,
            start: t,
            end,
            counted: 0,
            parent: id,
            next: self.key_head[key],
            fresh: true,
            dead: false,
        });
        self.key_head[key] = id;
        Ok(id)
    }

    /// Takes open session `slot` off its key's list.
    fn unlink(&mut self, slot: u32) {
        let key = self.slots[slot as usize].key as usize;
        let next = self.slots[slot as usize].next;
        if self.key_head[key] == slot {
            self.key_head[key] = next;
            return;
        }
        let mut cur = self.key_head[key];
        while cur != NONE {
            if self.slots[cur as usize].next == slot {
                self.slots[cur as usize].next = next;
                return;
            }
            cur = self.slots[cur as usize].next;
        }
    }

    /// The session slot `slot` was merged into (itself if none).
    fn root(&self, mut slot: u32) -> u32 {
        loop {
            let parent = self.slots[slot as usize].parent;
            if parent == slot {
                return slot;
            }
            slot = parent;
        }
    }

    fn advance(&mut self, from: usize, ts: i64) -> Result<Option<(ChangeBatch, i64)>> {
        match self.watermark.advance(from, ts)? {
            Some(min) => self.fire(min).map(Some),
            None => Ok(None),
        }
    }

    /// Input `from` went idle: fires what the watermark, if it moved, closes.
    fn idle(&mut self, from: usize) -> Result<Option<(ChangeBatch, i64)>> {
        match self.watermark.idle(from)? {
            Some(min) => self.fire(min).map(Some),
            None => Ok(None),
        }
    }

    /// Emits and frees the sessions that end at or before watermark `min`.
    fn fire(&mut self, min: i64) -> Result<(ChangeBatch, i64)> {
        let closed = |s: &Slot| s.end.saturating_sub(1) <= min;
        let any = self
            .slots
            .iter()
            .enumerate()
            .any(|(i, s)| s.parent as usize == i && !s.dead && closed(s));
        if !any {
            return Ok((self.output(&[], vec![])?, self.watermark.current()));
        }
        // New group order: the sessions to emit, then those without a
        // result (no row passed the row filter, or late), then the open ones.
        let (mut emit, mut silent, mut open) = (Vec::new(), Vec::new(), Vec::new());
        for (i, s) in self.slots.iter().enumerate() {
            if s.parent as usize != i {
                continue;
            }
            if s.dead || (closed(s) && s.counted == 0) {
                silent.push(i);
            } else if closed(s) {
                emit.push(i);
            } else {
                open.push(i);
            }
        }
        let mut group_of_root = vec![0usize; self.slots.len()];
        for (group, root) in emit.iter().chain(&silent).chain(&open).enumerate() {
            group_of_root[*root] = group;
        }
        let mapping: Vec<usize> = (0..self.slots.len())
            .map(|i| group_of_root[self.root(i as u32) as usize])
            .collect();
        let closed_groups = emit.len() + silent.len();
        let groups = closed_groups + open.len();
        let mut values = Vec::with_capacity(self.accumulators.len());
        for acc in &mut self.accumulators {
            // `state` hands over (and resets) every group's state; merging
            // it back renumbered combines merged slots with their session.
            let state = acc.state(EmitTo::All)?;
            let len = state.first().map_or(0, |s| s.len());
            let renumbered = mapping.get(..len).ok_or_else(|| {
                DataFusionError::Internal("SESSION aggregate: more groups than sessions".into())
            })?;
            acc.merge_batch(&state, renumbered, groups)?;
            let closed = if closed_groups == groups {
                acc.evaluate(EmitTo::All)?
            } else {
                acc.evaluate(EmitTo::First(closed_groups))?
            };
            values.push(closed.slice(0, emit.len()));
        }
        let fired: Vec<Slot> = emit.iter().map(|i| self.slots[*i].clone()).collect();
        // The open sessions, renumbered, and the keys' lists rebuilt.
        for root in emit.iter().chain(&silent).chain(&open) {
            self.key_head[self.slots[*root].key as usize] = NONE;
        }
        let mut slots = Vec::with_capacity(open.len());
        for (id, old) in open.iter().enumerate() {
            let s = &self.slots[*old];
            let key = s.key as usize;
            slots.push(Slot {
                parent: id as u32,
                next: self.key_head[key],
                ..s.clone()
            });
            self.key_head[key] = id as u32;
        }
        self.slots = slots;
        let out = self.output(&fired, values)?;
        self.compact_keys()?;
        Ok((out, self.watermark.current()))
    }

    /// Rebuilds the key index from the keys with an open session once the
    /// others outnumber them (and `KEY_SLACK`), so memory follows the keys
    /// in use. Call with every slot a session (right after firing).
    fn compact_keys(&mut self) -> Result<()> {
        let live: Vec<usize> = (0..self.key_head.len())
            .filter(|k| self.key_head[*k] != NONE)
            .collect();
        if self.key_head.len() <= 2 * live.len() + KEY_SLACK {
            return Ok(());
        }
        let Some(index) = self.keys.as_mut() else {
            return Ok(());
        };
        let columns = aggregate_input::decode_rows(
            &index.converter,
            live.iter().map(|k| index.values.row(*k)),
        )?
        .into_iter()
        .zip(index.schema.fields())
        .map(|(c, f)| conform_column(c, f.data_type()))
        .collect::<Result<Vec<_>>>()?;
        let mut groups = new_group_values(index.schema.clone(), &GroupOrdering::None)?;
        let mut new_key = Vec::with_capacity(live.len());
        groups.intern(&columns, &mut new_key)?;
        if groups.len() != live.len() {
            return Err(DataFusionError::Internal(
                "SESSION aggregate: live keys did not intern to distinct keys".into(),
            ));
        }
        // The values in their new order.
        let mut old_of_new = vec![0usize; live.len()];
        for (i, k) in new_key.iter().enumerate() {
            old_of_new[*k] = live[i];
        }
        let mut values = index.converter.empty_rows(live.len(), 0);
        for old in &old_of_new {
            values.push(index.values.row(*old));
        }
        index.groups = groups;
        index.values = values;
        let mut renumber = vec![NONE; self.key_head.len()];
        for (i, old) in live.iter().enumerate() {
            renumber[*old] = new_key[i] as u32;
        }
        let mut key_head = vec![NONE; live.len()];
        for (i, old) in live.iter().enumerate() {
            key_head[new_key[i]] = self.key_head[*old];
        }
        for s in &mut self.slots {
            s.key = renumber[s.key as usize];
        }
        self.key_head = key_head;
        Ok(())
    }

    /// The rows of the `fired` sessions, each aggregate's `values` (one per
    /// session, in order).
    fn output(&self, fired: &[Slot], values: Vec<ArrayRef>) -> Result<ChangeBatch> {
        let rows = fired.len();
        let schema = &self.spec.schema;
        let key_columns: Vec<ArrayRef> = match &self.keys {
            Some(index) if rows > 0 => aggregate_input::decode_rows(
                &index.converter,
                fired.iter().map(|s| index.values.row(s.key as usize)),
            )?,
            _ => vec![],
        };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for (i, out) in self.spec.outputs.iter().enumerate() {
            let want = schema.field(i).data_type();
            let array: ArrayRef = match out {
                SessionColumn::Key(k) if rows > 0 => key_columns
                    .get(*k)
                    .cloned()
                    .ok_or_else(|| DataFusionError::Internal("SESSION: no such key".into()))?,
                SessionColumn::Key(_) => arrow::array::new_empty_array(want),
                SessionColumn::Start => Arc::new(TimestampMillisecondArray::from_iter_values(
                    fired.iter().map(|s| s.start),
                )),
                SessionColumn::End => Arc::new(TimestampMillisecondArray::from_iter_values(
                    fired.iter().map(|s| s.end),
                )),
                SessionColumn::Time => Arc::new(TimestampMillisecondArray::from_iter_values(
                    fired.iter().map(|s| s.end - 1),
                )),
            };
            columns.push(conform_column(array, want)?);
        }
        let offset = columns.len();
        for j in 0..self.spec.aggregates.len() {
            let want = schema.field(offset + j).data_type();
            let array = match values.get(j) {
                Some(v) if rows > 0 => v.clone(),
                _ => arrow::array::new_empty_array(want),
            };
            columns.push(conform_column(array, want)?);
        }
        let data = RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        Ok(ChangeBatch::inserts(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};
    use std::sync::atomic::{AtomicU64, Ordering};

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, TimeUnit};
    use datafusion::functions_aggregate::count::count_udaf;
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};

    const GAP: i64 = 10;

    /// Input rows: `k, v, ts`.
    fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]))
    }

    /// `SELECT k, window_start, window_end, COUNT(v), SUM(v), COUNT(DISTINCT
    /// v) ... GROUP BY k, window_start, window_end` over a SESSION of gap 10
    /// ms (`WHERE v > 0` if `filtered`), one router; its late-row counter.
    fn op(filtered: bool) -> (SessionAggregate, Arc<AtomicU64>) {
        let input = input_schema();
        let agg = |f, name: &str, distinct: bool| {
            let e = AggregateExprBuilder::new(f, vec![Arc::new(Column::new("v", 1))])
                .schema(input.clone())
                .alias(name)
                .with_distinct(distinct)
                .build()
                .unwrap();
            StreamAggregate {
                expr: Arc::new(e),
                filter: None,
                retraction: tributary_planner::streaming::Retraction::NotNeeded,
            }
        };
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        let spec = SessionSpec {
            time_index: 2,
            gap: GAP,
            keys: vec![Arc::new(Column::new("k", 0))],
            outputs: vec![
                SessionColumn::Key(0),
                SessionColumn::Start,
                SessionColumn::End,
            ],
            aggregates: vec![
                agg(count_udaf(), "n", false),
                agg(sum_udaf(), "total", false),
                agg(count_udaf(), "distinct_v", true),
            ],
            row_filter: filtered.then(|| {
                Arc::new(BinaryExpr::new(
                    Arc::new(Column::new("v", 1)),
                    datafusion::logical_expr::Operator::Gt,
                    Arc::new(Literal::new(datafusion::common::ScalarValue::Int64(Some(
                        0,
                    )))),
                )) as Arc<dyn PhysicalExpr>
            }),
            schema: Arc::new(Schema::new(vec![
                Field::new("k", DataType::Int64, true),
                Field::new("window_start", ts.clone(), false),
                Field::new("window_end", ts, false),
                Field::new("n", DataType::Int64, false),
                Field::new("total", DataType::Int64, true),
                Field::new("distinct_v", DataType::Int64, false),
            ])),
        };
        let (late, count) = LateRows::counting();
        (SessionAggregate::try_new(spec, 1, late).unwrap(), count)
    }

    /// Rows `(k, v, ts)` as the keyed exchange hands them over: the input's
    /// columns, then the key column.
    fn rows(rows: &[(Option<i64>, i64, Option<i64>)]) -> ChangeBatch {
        let k: ArrayRef = Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.0)));
        let v: ArrayRef = Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1)));
        let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from_iter(
            rows.iter().map(|r| r.2),
        ));
        let mut fields = input_schema().fields().to_vec();
        fields.push(Arc::new(Field::new("__key_0", DataType::Int64, true)));
        let data =
            RecordBatch::try_new(Arc::new(Schema::new(fields)), vec![k.clone(), v, ts, k]).unwrap();
        ChangeBatch::inserts(data)
    }

    /// The rows a watermark at `ts` fires, as sorted `k|start|end|n|total|distinct` lines
    /// (times in ms).
    fn fire(op: &mut SessionAggregate, ts: i64) -> Vec<String> {
        let Some((out, watermark)) = op.advance(0, ts).unwrap() else {
            return vec![];
        };
        assert_eq!(watermark, ts);
        let mut columns = out.data.columns().to_vec();
        for c in &mut columns[1..3] {
            *c = arrow::compute::cast(c, &DataType::Int64).unwrap();
        }
        let mut lines: Vec<String> = (0..out.num_rows())
            .map(|i| {
                columns
                    .iter()
                    .map(|c| arrow::util::display::array_value_to_string(c, i).unwrap())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn rows_bridging_two_sessions_merge_them() {
        let (mut op, late) = op(false);
        // Key 1: sessions [0, 15) and [22, 32), key 2: [3, 13); NULL times
        // are in no session.
        op.process(&rows(&[
            (Some(1), 1, Some(0)),
            (Some(2), 7, Some(3)),
            (Some(1), 2, Some(5)),
            (Some(1), 3, Some(22)),
            (Some(1), 100, None),
        ]))
        .unwrap();
        assert!(fire(&mut op, 11).is_empty());
        // Key 1's row at 14 bridges [0, 15) and [22, 32); a NULL key is a key.
        op.process(&rows(&[
            (Some(1), 2, Some(14)),
            (None, 4, Some(12)),
            (Some(1), 5, Some(20)),
        ]))
        .unwrap();
        assert_eq!(fire(&mut op, 12), ["2|3|13|1|7|1"]);
        assert_eq!(
            fire(&mut op, crate::streaming::END_OF_INPUT),
            ["1|0|32|5|13|4", "|12|22|1|4|1"]
        );
        assert_eq!(late.load(Ordering::Relaxed), 0);
        assert!(op.slots.is_empty(), "fired sessions are freed");
    }

    #[test]
    fn a_batchs_own_closed_session_is_late_unless_it_bridges_an_open_one() {
        let (mut op, late) = op(false);
        op.process(&rows(&[(Some(1), 1, Some(100))])).unwrap();
        assert!(fire(&mut op, 50).is_empty());
        // Rows at 10 and 15 form [10, 25), closed at watermark 50: late, as
        // are key 2's at 35 and 38. The row at 88 reaches the open [100,
        // 110) through the one at 95.
        op.process(&rows(&[
            (Some(1), 2, Some(15)),
            (Some(1), 3, Some(95)),
            (Some(1), 4, Some(10)),
            (Some(2), 5, Some(35)),
            (Some(1), 6, Some(88)),
            (Some(2), 7, Some(38)),
        ]))
        .unwrap();
        assert_eq!(late.load(Ordering::Relaxed), 4);
        assert_eq!(
            fire(&mut op, crate::streaming::END_OF_INPUT),
            ["1|88|110|3|10|3"]
        );
    }

    #[test]
    fn rows_the_filter_rejects_shape_sessions_but_are_not_aggregated() {
        let (mut op, _) = op(true);
        op.process(&rows(&[
            (Some(1), -1, Some(0)),
            (Some(1), 4, Some(8)),
            (Some(1), -2, Some(16)),
            (Some(2), -3, Some(0)),
        ]))
        .unwrap();
        // Key 2's session has no row passing the filter: no result.
        assert_eq!(
            fire(&mut op, crate::streaming::END_OF_INPUT),
            ["1|0|26|1|4|1"]
        );
    }

    #[test]
    fn keys_without_sessions_leave_the_key_index() {
        let (mut op, _) = op(false);
        let many: Vec<_> = (0..2 * KEY_SLACK as i64)
            .map(|k| (Some(k), k, Some(0)))
            .collect();
        op.process(&rows(&many)).unwrap();
        op.process(&rows(&[(Some(7), 1, Some(100)), (Some(-1), 2, Some(100))]))
            .unwrap();
        assert_eq!(fire(&mut op, 50).len(), 2 * KEY_SLACK);
        let index = op.keys.as_ref().unwrap();
        assert_eq!(index.groups.len(), 2, "only keys 7 and -1 are left");
        assert_eq!(op.key_head.len(), 2);
        op.process(&rows(&[
            (Some(7), 3, Some(105)),
            (Some(8), 4, Some(101)),
            (Some(-1), 4, Some(101)),
        ]))
        .unwrap();
        assert_eq!(
            fire(&mut op, crate::streaming::END_OF_INPUT),
            ["-1|100|111|2|6|2", "7|100|115|2|4|2", "8|101|111|1|4|1"]
        );
    }
}

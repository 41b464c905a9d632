//! The regular (non-windowed) streaming equi-join: Flink's
//! `StreamingJoinOperator` with retractions, for INNER, LEFT, RIGHT, FULL,
//! and (Flink's `StreamingSemiAntiJoinOperator`) LEFT/RIGHT SEMI and ANTI.
//!
//! Why it is built this way: a regular join has no window to close, so the
//! final result is only known when both inputs end; to emit as it goes and
//! still fold to BATCH's answer, every change must be matched against
//! everything the other side holds *now*. So each side keeps its current
//! rows (a multiset: each copy is a row) columnar, in the Arrow batches they
//! arrived in, indexed by join key (arrow-row encoded), with, per row, how
//! many rows of the other side it matches (`join_state.rs`). A retraction
//! finds its row by the hash of the whole row and then by value; an
//! append-only input keeps no hashes. Both inputs are hash-partitioned by
//! their keys by the same routing, so equal keys meet in one instance.
//!
//! On an insert (`+I`/`+U`) on one side: the row joins its side's state,
//! probes the other side, and emits a joined `+I` per matching row. A matched row of a padded side that had no match
//! before first retracts its NULL-padded row (`-D`); an insert that matches
//! nothing on a padded side emits its NULL-padded row (`+I`). A retraction
//! (`-U`/`-D`) of a row not in the state is an error; otherwise it leaves the
//! state and emits a `-D` per joined row it had produced, and a padded-side
//! row that loses its last match gets its NULL-padded row back (`+I`).
//! SEMI/ANTI emit or retract the kept row as its match count crosses 0↔1.
//! The output is `+I`/`-D` only, like Flink's join for retracting inputs.
//!
//! A row with a NULL key matches nothing (SQL `=`), but an outer side still
//! emits its padded row; `IS NOT DISTINCT FROM` keys match NULLs too. The
//! non-equi part of `ON` is evaluated once per input batch on all its
//! candidate pairs (the other side's rows under the batch's distinct keys,
//! gathered with `interleave`), and only pairs that pass it count as matches.
//!
//! Rows of a batch are applied in order (so a row inserted and retracted in
//! one batch is handled exactly), but the values are never built row by row:
//! the operator collects index vectors and gathers the output with `take`.
//! The watermark is the minimum over both inputs.
//!
//! Without a TTL, state grows with the inputs. With `table.exec.state.ttl`
//! (see `state_ttl.rs`), a row of a side that has not been written (inserted
//! or its match count changed; each copy of a row on its own) for the TTL
//! (processing time) is
//! forgotten, silently, as in Flink's join state: later rows of the other
//! side no longer match it, so the result can differ from BATCH. A
//! retraction of a row that is no longer held is then ignored, not an
//! error, and an outer row's NULL padding on retraction follows the
//! matches it had emitted (its stored count), so every retraction the join
//! emits is of a row it emitted. `NOT IN` never expires (the planner gives
//! it no TTL): its emptiness and NULL tests need every right row. Without a
//! TTL no write time is kept at all.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Int8Array, UInt32Array};
use arrow::compute::{filter_record_batch, take};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, SortField};
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::common::{HashMap as DfHashMap, JoinType};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use tokio::task::JoinSet;

use tributary_planner::RowKind;

use super::aggregate_input::boolean;
use super::join_state::{NIL, SideRows};
use super::state_ttl::{Clock, StateTtl};
use super::two_inputs::TwoInputs;
use super::{ChangeBatch, Message, Receiver, channel, send, send_data};

/// What one join instance needs: the join as planned, and the schemas of
/// its two inputs and its output.
#[derive(Debug, Clone)]
pub(super) struct JoinSpec {
    /// One of the eight types the planner lets through (not the mark joins).
    pub join_type: JoinType,
    /// The key expressions over the left and the right input, pairwise of
    /// one type.
    pub keys: [Vec<Arc<dyn PhysicalExpr>>; 2],
    /// The non-equi condition over the left then the right columns.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// NULL keys match each other (`IS NOT DISTINCT FROM`).
    pub null_equals_null: bool,
    /// A LEFT ANTI join with `NOT IN`'s NULL semantics; the planner runs it
    /// on one instance (it needs every right row) and without a filter.
    pub null_aware: bool,
    /// `table.exec.state.ttl` in ms (None: rows are kept forever).
    pub state_ttl_ms: Option<u64>,
    /// Whether the left and the right input are append-only (they never
    /// retract, so held rows need no hash to be found by a retraction).
    pub append_only: [bool; 2],
    /// The schemas of the left and right input.
    pub inputs: [SchemaRef; 2],
    /// The output schema (DataFusion's join schema).
    pub schema: SchemaRef,
}

/// Starts one instance of the join on its share of the left and the right
/// input (`left_routers` / `right_routers`: how many routers feed each, for
/// the watermark).
///
/// # Errors
/// A key or column type that arrow-row cannot encode.
pub(super) fn start(
    left: Receiver,
    left_routers: usize,
    right: Receiver,
    right_routers: usize,
    spec: JoinSpec,
    tasks: &mut JoinSet<()>,
) -> Result<Receiver> {
    let (tx, rx) = channel();
    let mut op = StreamingJoin::try_new(spec)?;
    let mut inputs = TwoInputs::new(left, left_routers, right, right_routers);
    tasks.spawn(async move {
        let clock = Clock::start();
        while let Some((side, item)) = inputs.next().await {
            let keep_going = match item {
                Ok(Message::Data(change)) => {
                    let out = op.process(side, &change, clock.now_ms());
                    let failed = out.is_err();
                    send_data(&tx, out).await && !failed
                }
                Ok(message @ (Message::Watermark { .. } | Message::Idle { .. })) => {
                    let advanced = match message {
                        Message::Watermark { from, ts } => inputs.advance(side, from, ts),
                        Message::Idle { from } => inputs.idle(side, from),
                        Message::Data(_) => Ok(None),
                    };
                    match advanced {
                        Ok(None) => true,
                        Ok(Some(ts)) => send(&tx, Ok(Message::Watermark { from: 0, ts })).await,
                        Err(e) => {
                            let _ = send(&tx, Err(e)).await;
                            false
                        }
                    }
                }
                Err(e) => {
                    let _ = send(&tx, Err(e)).await;
                    false
                }
            };
            if !keep_going {
                return;
            }
        }
    });
    Ok(rx)
}

/// One input's state.
struct Side {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Encodes whole rows: a retraction's row is compared with the held
    /// rows of equal hash through it.
    rows: RowConverter,
    /// The rows held, columnar, with their keys (`join_state.rs`).
    held: SideRows,
}

/// `NOT IN (subquery)`: a left row is in the result only if the right side
/// has no row with a NULL key and either has no rows at all or none equal
/// to the row's key (then a NULL key is fine too). Whether the right side is
/// empty or holds a NULL decides for every left row at once.
#[derive(Debug, Default)]
struct NullAware {
    right_rows: u64,
    right_null_rows: u64,
    /// Keys of left rows that hold a NULL.
    null_keys: HashSet<Vec<u8>>,
}

impl NullAware {
    /// (the right side holds a NULL key, the right side is empty).
    fn flags(&self) -> (bool, bool) {
        (self.right_null_rows > 0, self.right_rows == 0)
    }

    /// Whether a left row is in the result under `flags`.
    fn visible(flags: (bool, bool), key_null: bool, matches: u64) -> bool {
        !flags.0 && (flags.1 || (!key_null && matches == 0))
    }
}

/// What the output rows are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Output {
    /// Left columns then right columns (inner and outer joins).
    Both,
    /// The columns of one side (semi and anti joins): 0 left, 1 right.
    One(usize),
}

/// One instance's state and the rules of its join type.
struct StreamingJoin {
    sides: [Side; 2],
    /// Encodes the join key (same types on both sides).
    key: RowConverter,
    filter: Option<Arc<dyn PhysicalExpr>>,
    /// Left then right columns, all nullable: the candidate pairs the filter
    /// reads.
    pairs_schema: SchemaRef,
    schema: SchemaRef,
    null_equals_null: bool,
    /// Which sides emit a NULL-padded row while they have no match.
    padded: [bool; 2],
    /// Semi/anti: the kept side and whether it is ANTI.
    semi: Option<(usize, bool)>,
    output: Output,
    null_aware: Option<NullAware>,
    /// `table.exec.state.ttl`, if set (never for `NOT IN`).
    ttl: Option<StateTtl>,
}

/// The output rows being collected: for each, its kind and the index of its
/// left and right values (None: NULL-padded, or not in the output).
#[derive(Default)]
struct Collected {
    left: Vec<Option<u32>>,
    right: Vec<Option<u32>>,
    kinds: Vec<i8>,
}

impl StreamingJoin {
    fn try_new(spec: JoinSpec) -> Result<Self> {
        let key_fields = spec.keys[0]
            .iter()
            .map(|e| Ok(SortField::new(e.data_type(&spec.inputs[0])?)))
            .collect::<Result<Vec<_>>>()?;
        for (l, r) in spec.keys[0].iter().zip(&spec.keys[1]) {
            let (lt, rt) = (l.data_type(&spec.inputs[0])?, r.data_type(&spec.inputs[1])?);
            if lt != rt {
                return Err(DataFusionError::Internal(format!(
                    "join keys {l} and {r} differ in type ({lt} and {rt})"
                )));
            }
        }
        let ttl = spec
            .state_ttl_ms
            .filter(|_| !spec.null_aware)
            .map(StateTtl::new);
        let side = |i: usize| -> Result<Side> {
            let fields = spec.inputs[i]
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect();
            Ok(Side {
                keys: spec.keys[i].clone(),
                rows: RowConverter::new(fields)?,
                held: SideRows::new(spec.inputs[i].clone(), ttl.is_some(), !spec.append_only[i]),
            })
        };
        let (padded, semi, output) = join_shape(spec.join_type, "streaming")?;
        Ok(Self {
            sides: [side(0)?, side(1)?],
            key: RowConverter::new(key_fields)?,
            filter: spec.filter,
            pairs_schema: pairs_schema(&spec.inputs),
            schema: spec.schema,
            null_equals_null: spec.null_equals_null,
            padded,
            semi,
            output,
            null_aware: (spec.null_aware && spec.join_type == JoinType::LeftAnti)
                .then(NullAware::default),
            ttl,
        })
    }

    /// Whether rows of `side` keep their match count.
    fn tracks_matches(&self, side: usize) -> bool {
        self.padded[side] || self.semi.is_some_and(|(kept, _)| kept == side)
    }

    /// Applies one batch of changes of input `s` (0 left, 1 right) at
    /// processing time `now_ms`; returns the changes of the join's result.
    ///
    /// The batch is probed as a whole: its distinct keys are looked up once,
    /// the other side's rows under them are gathered with `interleave`, and
    /// the filter runs once over every candidate pair. Rows are then applied
    /// in order, so an insert and a retraction of one row in one batch are
    /// exact.
    ///
    /// # Errors
    /// Without a TTL, a retraction of a row the side does not hold;
    /// expression errors.
    fn process(&mut self, s: usize, change: &ChangeBatch, now_ms: u64) -> Result<ChangeBatch> {
        let o = 1 - s;
        let n = change.num_rows();
        if n == 0 {
            return Ok(ChangeBatch {
                ops: Arc::new(Int8Array::from(Vec::<i8>::new())),
                data: RecordBatch::new_empty(self.schema.clone()),
            });
        }
        let key_columns = self.sides[s]
            .keys
            .iter()
            .map(|e| {
                e.evaluate(&change.data)?
                    .into_array(n)
                    .and_then(super::aggregate_input::key_column)
            })
            .collect::<Result<Vec<_>>>()?;
        let key_rows = self.key.convert_columns(&key_columns)?;
        // No key (a join without equalities, run on one instance as Flink
        // does): every row has the empty key and meets every other row.
        let keyless = key_columns.is_empty();
        let key_of = |i: usize| -> &[u8] { if keyless { &[] } else { key_rows.row(i).data() } };
        // SQL `=`: a NULL in any key column matches nothing.
        let mut joinable = vec![true; n];
        if !self.null_equals_null {
            for column in &key_columns {
                if column.null_count() > 0 {
                    for (i, j) in joinable.iter_mut().enumerate() {
                        *j &= column.is_valid(i);
                    }
                }
            }
        }
        let kinds: Vec<RowKind> = change.kinds().collect();
        let any_retraction = kinds.iter().any(|k| k.is_retraction());
        // A side may have no columns at all (the query reads none of them):
        // every row is then the empty one.
        let no_columns = change.data.num_columns() == 0;

        // The batch's distinct keys, and each row's.
        let mut distinct: Vec<&[u8]> = Vec::new();
        let mut distinct_joinable: Vec<bool> = Vec::new();
        let mut batch_key: Vec<u32> = Vec::with_capacity(n);
        {
            let mut ids: DfHashMap<&[u8], u32> = DfHashMap::with_capacity(n.min(1024));
            for (i, ok) in joinable.iter().enumerate() {
                let key = key_of(i);
                let id = *ids.entry(key).or_insert_with(|| {
                    distinct.push(key);
                    distinct_joinable.push(*ok);
                    (distinct.len() - 1) as u32
                });
                batch_key.push(id);
            }
        }

        // Expired rows under the batch's keys leave both sides first, so
        // nothing below reads them.
        if let Some(ttl) = self.ttl {
            for key in &distinct {
                for side in &mut self.sides {
                    if let Some(id) = side.held.key_id(key) {
                        side.held.expire_key(id, |w| ttl.expired(w, now_ms));
                    }
                }
            }
        }

        // The other side's rows under each joinable key of the batch: the
        // candidates. The other side does not change while this batch is
        // applied.
        let mut cand_slots: Vec<u32> = Vec::new();
        let mut range: Vec<(usize, usize)> = Vec::with_capacity(distinct.len());
        for (key, ok) in distinct.iter().zip(&distinct_joinable) {
            let start = cand_slots.len();
            if *ok && let Some(id) = self.sides[o].held.key_id(key) {
                self.sides[o].held.slots_of(id, &mut cand_slots);
            }
            range.push((start, cand_slots.len()));
        }
        let cand_columns = self.sides[o].held.gather(&cand_slots)?;

        // Every (row of the batch, candidate) pair, and whether it passes the filter.
        let mut pair_offsets = Vec::with_capacity(n + 1);
        let mut pair_probe: Vec<u32> = Vec::new();
        let mut pair_cand: Vec<u32> = Vec::new();
        pair_offsets.push(0usize);
        for (i, ok) in joinable.iter().enumerate() {
            if *ok {
                let (a, b) = range[batch_key[i] as usize];
                for j in a..b {
                    pair_probe.push(i as u32);
                    pair_cand.push(j as u32);
                }
            }
            pair_offsets.push(pair_probe.len());
        }
        let passes = self.evaluate_filter(s, change, &cand_columns, &pair_probe, &pair_cand)?;

        // The inserted rows' values join the side's state now; each becomes
        // alive when the loop below reaches it.
        let hashes: Vec<u64> = if self.sides[s].held.tracks_hash() {
            let mut hashes = vec![0u64; n];
            if create_hashes(
                change.data.columns(),
                &RandomState::with_seed(0),
                &mut hashes,
            )
            .is_err()
            {
                // A type without a hash: every row compares by value.
                hashes.fill(0);
            }
            hashes
        } else {
            Vec::new()
        };
        let row_bytes = if any_retraction && !no_columns {
            Some(self.sides[s].rows.convert_columns(change.data.columns())?)
        } else {
            None
        };
        let inserted = if any_retraction {
            let mask =
                BooleanArray::from(kinds.iter().map(|k| !k.is_retraction()).collect::<Vec<_>>());
            filter_record_batch(&change.data, &mask)?
        } else {
            change.data.clone()
        };
        let mut next_slot = self.sides[s].held.append(inserted)?;
        let mut own_key = vec![NIL; distinct.len()];

        let mut out = Collected::default();
        let push = |out: &mut Collected, kind: RowKind, mine: Option<u32>, theirs: Option<u32>| {
            let (l, r) = if s == 0 {
                (mine, theirs)
            } else {
                (theirs, mine)
            };
            out.left.push(l);
            out.right.push(r);
            out.kinds.push(kind.code());
        };
        let mut cand_matches: Vec<u64> = cand_slots
            .iter()
            .map(|slot| self.sides[o].held.matches(*slot))
            .collect();
        let mut changed = vec![false; cand_slots.len()];
        let flags_before = self.null_aware.as_ref().map(NullAware::flags);
        let matches_before = if self.null_aware.is_some() {
            cand_matches.clone()
        } else {
            Vec::new()
        };
        let mut matched: Vec<usize> = Vec::new();
        for (i, kind) in kinds.iter().enumerate() {
            let (pa, pb) = (pair_offsets[i], pair_offsets[i + 1]);
            matched.clear();
            matched.extend(
                (pa..pb)
                    .filter(|p| passes.as_ref().is_none_or(|m| m[*p]))
                    .map(|p| pair_cand[p] as usize),
            );
            let mut m = matched.len() as u64;
            let bk = batch_key[i] as usize;
            let retract = kind.is_retraction();
            if retract {
                let side = &self.sides[s];
                let hash = hashes.get(i).copied().unwrap_or(0);
                let found = match side.held.key_id(distinct[bk]) {
                    None => None,
                    Some(id) => side.held.find(id, hash, |slot| {
                        let Some(bytes) = &row_bytes else {
                            return Ok(true);
                        };
                        let held = side.rows.convert_columns(side.held.row(slot).columns())?;
                        Ok(held.row(0).data() == bytes.row(i).data())
                    })?,
                };
                let Some(slot) = found else {
                    if self.ttl.is_some() {
                        // Its state expired: what it emitted stays.
                        continue;
                    }
                    return Err(DataFusionError::Execution(format!(
                        "the {} input of a join retracted a row it does not hold",
                        if s == 0 { "left" } else { "right" }
                    )));
                };
                if self.ttl.is_some() {
                    // Matches that expired on the other side still have
                    // their joined rows out: the row's padding follows what
                    // it emitted.
                    m = side.held.matches(slot);
                }
                self.sides[s].held.kill(slot);
            } else {
                if own_key[bk] == NIL {
                    own_key[bk] = self.sides[s].held.key_id_or_insert(distinct[bk]);
                }
                let hash = hashes.get(i).copied().unwrap_or(0);
                self.sides[s]
                    .held
                    .activate(next_slot, own_key[bk], m, now_ms, hash);
                next_slot += 1;
            }
            if let Some(na) = &mut self.null_aware {
                let key_null = !joinable[i];
                if s == 1 {
                    if retract {
                        na.right_rows = na.right_rows.saturating_sub(1);
                        if key_null {
                            na.right_null_rows = na.right_null_rows.saturating_sub(1);
                        }
                    } else {
                        na.right_rows += 1;
                        na.right_null_rows += u64::from(key_null);
                    }
                } else if key_null && !retract {
                    na.null_keys.insert(distinct[bk].to_vec());
                }
            }
            let mine = Some(i as u32);
            for &j in &matched {
                let theirs = Some(j as u32);
                if self.output == Output::Both && retract {
                    push(&mut out, RowKind::Delete, mine, theirs);
                }
                if self.tracks_matches(o) {
                    let before = cand_matches[j];
                    let after = if retract {
                        match (before.checked_sub(1), self.ttl) {
                            (Some(after), _) => after,
                            // Defensive: with a TTL, counts of forgotten
                            // rows are not exact.
                            (None, Some(_)) => 0,
                            (None, None) => {
                                return Err(DataFusionError::Internal(
                                    "a join row lost a match it did not have".into(),
                                ));
                            }
                        }
                    } else {
                        before + 1
                    };
                    cand_matches[j] = after;
                    changed[j] = true;
                    // The other row's first match (0 → 1) or last (1 → 0).
                    let first = before == 0 && after == 1;
                    let last = before == 1 && after == 0;
                    if self.padded[o] && (first || last) {
                        let kind = if first {
                            RowKind::Delete
                        } else {
                            RowKind::Insert
                        };
                        push(&mut out, kind, None, theirs);
                    }
                    // (NOT IN decides after the whole batch: below.)
                    if let Some((kept, anti)) = self.semi
                        && kept == o
                        && (first || last)
                        && self.null_aware.is_none()
                    {
                        let kind = if first != anti {
                            RowKind::Insert
                        } else {
                            RowKind::Delete
                        };
                        push(&mut out, kind, None, theirs);
                    }
                }
                if self.output == Output::Both && !retract {
                    push(&mut out, RowKind::Insert, mine, theirs);
                }
            }
            let kind = if retract {
                RowKind::Delete
            } else {
                RowKind::Insert
            };
            if self.padded[s] && m == 0 {
                push(&mut out, kind, mine, None);
            }
            let kept_row = match &self.null_aware {
                Some(na) => NullAware::visible(na.flags(), !joinable[i], m),
                None => (m > 0) != anti_of(self.semi),
            };
            if let Some((kept, _)) = self.semi
                && kept == s
                && kept_row
            {
                push(&mut out, kind, mine, None);
            }
        }

        // The other side's new match counts.
        for (j, _) in changed.iter().enumerate().filter(|(_, c)| **c) {
            self.sides[o]
                .held
                .set_matches(cand_slots[j], cand_matches[j], now_ms);
        }
        if let Some(ttl) = &mut self.ttl
            && ttl.sweep_due(now_ms)
        {
            let ttl = *ttl;
            for side in &mut self.sides {
                side.held.expire_all(|w| ttl.expired(w, now_ms));
            }
        }
        let result = if let (Some(flags_before), 1) = (flags_before, s) {
            let changed: Vec<(u32, u64)> = changed
                .iter()
                .enumerate()
                .filter(|(_, c)| **c)
                .map(|(j, _)| (cand_slots[j], matches_before[j]))
                .collect();
            self.null_aware_changes(flags_before, &changed)
        } else {
            self.output_batch(s, change, &cand_columns, out)
        };
        // Slots move when a side compacts: only after they were read.
        for side in &mut self.sides {
            side.held.maybe_compact()?;
        }
        result
    }

    /// After a batch of right rows of a `NOT IN` join: the left rows that
    /// entered or left the result. If the right side became (non-)empty or
    /// gained (lost) its NULL keys, any left row may have; otherwise only
    /// those whose match count changed (`changed`: slot, count before).
    fn null_aware_changes(
        &self,
        flags_before: (bool, bool),
        changed: &[(u32, u64)],
    ) -> Result<ChangeBatch> {
        let Some(na) = &self.null_aware else {
            return Err(DataFusionError::Internal(
                "NOT IN changes of a join that is not NOT IN".into(),
            ));
        };
        let flags_after = na.flags();
        let left = &self.sides[0].held;
        let mut slots: Vec<u32> = Vec::new();
        let mut kinds: Vec<i8> = Vec::new();
        // (slot, its key holds a NULL, its match count before)
        let mut touched: Vec<(u32, bool, u64)> = Vec::new();
        if flags_before != flags_after {
            let before: DfHashMap<u32, u64> = changed.iter().copied().collect();
            for (key, slot) in left.live_slots_by_key() {
                let m = before
                    .get(&slot)
                    .copied()
                    .unwrap_or_else(|| left.matches(slot));
                touched.push((slot, na.null_keys.contains(key), m));
            }
        } else {
            let null_slots: DfHashMap<u32, bool> = if changed.is_empty() {
                DfHashMap::new()
            } else {
                left.live_slots_by_key()
                    .into_iter()
                    .map(|(key, slot)| (slot, na.null_keys.contains(key)))
                    .collect()
            };
            for (slot, m) in changed {
                if let Some(key_null) = null_slots.get(slot) {
                    touched.push((*slot, *key_null, *m));
                }
            }
        }
        for (slot, key_null, before) in touched {
            let was = NullAware::visible(flags_before, key_null, before);
            let is = NullAware::visible(flags_after, key_null, left.matches(slot));
            if was != is {
                let kind = if is { RowKind::Insert } else { RowKind::Delete };
                slots.push(slot);
                kinds.push(kind.code());
            }
        }
        let columns = left.gather(&slots)?;
        let data = RecordBatch::try_new_with_options(
            self.schema.clone(),
            conform(columns, &self.schema)?,
            &RecordBatchOptions::new().with_row_count(Some(kinds.len())),
        )?;
        Ok(ChangeBatch {
            ops: Arc::new(Int8Array::from(kinds)),
            data,
        })
    }

    /// Whether each candidate pair passes the non-equi condition (None: no
    /// condition, every pair passes). NULL is false.
    fn evaluate_filter(
        &self,
        s: usize,
        change: &ChangeBatch,
        cand_columns: &[ArrayRef],
        pair_probe: &[u32],
        pair_cand: &[u32],
    ) -> Result<Option<Vec<bool>>> {
        let Some(filter) = &self.filter else {
            return Ok(None);
        };
        if pair_probe.is_empty() {
            return Ok(Some(vec![]));
        }
        let probe = UInt32Array::from(pair_probe.to_vec());
        let cand = UInt32Array::from(pair_cand.to_vec());
        let mine = gather(change.data.columns(), &probe)?;
        let theirs = gather(cand_columns, &cand)?;
        let columns = if s == 0 {
            mine.into_iter().chain(theirs).collect()
        } else {
            theirs.into_iter().chain(mine).collect()
        };
        let pairs = RecordBatch::try_new_with_options(
            self.pairs_schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(pair_probe.len())),
        )?;
        let mask = boolean(filter.as_ref(), &pairs)?;
        Ok(Some(
            (0..mask.len())
                .map(|p| mask.is_valid(p) && mask.value(p))
                .collect(),
        ))
    }

    /// Gathers the collected output rows from the batch of side `s` and the
    /// candidates of the other side.
    fn output_batch(
        &self,
        s: usize,
        change: &ChangeBatch,
        cand_columns: &[ArrayRef],
        out: Collected,
    ) -> Result<ChangeBatch> {
        let rows = out.kinds.len();
        let (left, right): (&[ArrayRef], &[ArrayRef]) = if s == 0 {
            (change.data.columns(), cand_columns)
        } else {
            (cand_columns, change.data.columns())
        };
        let left_idx = UInt32Array::from(out.left);
        let right_idx = UInt32Array::from(out.right);
        let columns = match self.output {
            Output::Both => {
                let mut c = gather(left, &left_idx)?;
                c.extend(gather(right, &right_idx)?);
                c
            }
            Output::One(0) => gather(left, &left_idx)?,
            Output::One(_) => gather(right, &right_idx)?,
        };
        let columns = conform(columns, &self.schema)?;
        let data = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        Ok(ChangeBatch {
            ops: Arc::new(Int8Array::from(out.kinds)),
            data,
        })
    }
}

/// Whether a semi/anti join is ANTI (false for the other joins).
fn anti_of(semi: Option<(usize, bool)>) -> bool {
    semi.is_some_and(|(_, anti)| anti)
}

/// What a join type does (shared with the time-bounded join): which sides
/// emit NULL-padded rows, the semi/anti side and whether it is anti, and
/// what the output rows are made of.
///
/// # Errors
/// A join type the streaming joins do not run (`kind` names the operator).
#[allow(clippy::type_complexity)]
pub(super) fn join_shape(
    join_type: JoinType,
    kind: &str,
) -> Result<([bool; 2], Option<(usize, bool)>, Output)> {
    Ok(match join_type {
        JoinType::Inner => ([false, false], None, Output::Both),
        JoinType::Left => ([true, false], None, Output::Both),
        JoinType::Right => ([false, true], None, Output::Both),
        JoinType::Full => ([true, true], None, Output::Both),
        JoinType::LeftSemi => ([false, false], Some((0, false)), Output::One(0)),
        JoinType::LeftAnti => ([false, false], Some((0, true)), Output::One(0)),
        JoinType::RightSemi => ([false, false], Some((1, false)), Output::One(1)),
        JoinType::RightAnti => ([false, false], Some((1, true)), Output::One(1)),
        other => {
            return Err(DataFusionError::NotImplemented(format!(
                "{kind} {other} join"
            )));
        }
    })
}

/// The schema a join filter is evaluated over: the left columns then the
/// right ones, all nullable (a padded side is NULL).
pub(super) fn pairs_schema(inputs: &[SchemaRef; 2]) -> SchemaRef {
    let fields: Vec<Field> = inputs[0]
        .fields()
        .iter()
        .chain(inputs[1].fields().iter())
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Arc::new(Schema::new(fields))
}

/// `take` of every column (a NULL index gives a NULL value). Shared with
/// the time-bounded join.
pub(super) fn gather(columns: &[ArrayRef], indices: &UInt32Array) -> Result<Vec<ArrayRef>> {
    Ok(columns
        .iter()
        .map(|c| take(c.as_ref(), indices, None))
        .collect::<std::result::Result<Vec<_>, _>>()?)
}

/// Casts columns decoded from arrow-row to `schema`'s types where they differ
/// (arrow-row may decode a dictionary as its values). Shared with the
/// time-bounded join.
pub(super) fn conform(columns: Vec<ArrayRef>, schema: &Schema) -> Result<Vec<ArrayRef>> {
    if columns.len() != schema.fields().len() {
        return Err(DataFusionError::Internal(format!(
            "join produced {} columns for a schema of {}",
            columns.len(),
            schema.fields().len()
        )));
    }
    columns
        .into_iter()
        .zip(schema.fields())
        .map(|(c, f)| super::conform_column(c, f.data_type()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::DataType;
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column};
    use tributary_planner::changelog::changelog_schema;

    fn side_schema(prefix: &str) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(format!("{prefix}k"), DataType::Int64, true),
            Field::new(format!("{prefix}v"), DataType::Utf8, true),
        ]))
    }

    fn join(join_type: JoinType, filter: Option<Arc<dyn PhysicalExpr>>) -> StreamingJoin {
        join_with_ttl(join_type, filter, None)
    }

    fn join_with_ttl(
        join_type: JoinType,
        filter: Option<Arc<dyn PhysicalExpr>>,
        state_ttl_ms: Option<u64>,
    ) -> StreamingJoin {
        let (l, r) = (side_schema("l"), side_schema("r"));
        let schema: SchemaRef = match join_type {
            JoinType::LeftSemi | JoinType::LeftAnti => l.clone(),
            JoinType::RightSemi | JoinType::RightAnti => r.clone(),
            _ => Arc::new(Schema::new(
                l.fields()
                    .iter()
                    .chain(r.fields().iter())
                    .map(|f| f.as_ref().clone().with_nullable(true))
                    .collect::<Vec<_>>(),
            )),
        };
        StreamingJoin::try_new(JoinSpec {
            join_type,
            keys: [
                vec![Arc::new(Column::new("lk", 0))],
                vec![Arc::new(Column::new("rk", 0))],
            ],
            filter,
            null_equals_null: false,
            null_aware: false,
            state_ttl_ms,
            append_only: [false, false],
            inputs: [l, r],
            schema,
        })
        .unwrap()
    }

    /// A batch of one side: (kind, key, value).
    fn rows(side: usize, rows: &[(RowKind, Option<i64>, &str)]) -> ChangeBatch {
        let data = RecordBatch::try_new(
            side_schema(if side == 0 { "l" } else { "r" }),
            vec![
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        ChangeBatch {
            ops: Arc::new(Int8Array::from(
                rows.iter().map(|r| r.0.code()).collect::<Vec<_>>(),
            )),
            data,
        }
    }

    /// Each output row as `op|col|col...`.
    fn show(change: &ChangeBatch) -> Vec<String> {
        let batch =
            super::super::with_op_column(&changelog_schema(&change.data.schema()), change.clone())
                .unwrap();
        (0..batch.num_rows())
            .map(|i| {
                (0..batch.num_columns())
                    .map(|c| {
                        arrow::util::display::array_value_to_string(batch.column(c), i).unwrap()
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }

    /// Feeds one batch and returns its output rows.
    fn step(j: &mut StreamingJoin, side: usize, batch: ChangeBatch) -> Vec<String> {
        show(&j.process(side, &batch, 0).unwrap())
    }

    /// Feeds one batch at processing time `now_ms`; returns its output rows.
    fn step_at(j: &mut StreamingJoin, now_ms: u64, side: usize, batch: ChangeBatch) -> Vec<String> {
        show(&j.process(side, &batch, now_ms).unwrap())
    }

    /// Feeds the batches and returns every output row and the folded result.
    fn run(j: &mut StreamingJoin, batches: &[(usize, ChangeBatch)]) -> (Vec<String>, Vec<String>) {
        let mut all = Vec::new();
        let mut batches_out = Vec::new();
        for (side, b) in batches {
            let out = j.process(*side, b, 0).unwrap();
            all.extend(show(&out));
            batches_out
                .push(super::super::with_op_column(&changelog_schema(&j.schema), out).unwrap());
        }
        let folded = crate::changelog::fold(&changelog_schema(&j.schema), &batches_out).unwrap();
        let mut rows: Vec<String> = (0..folded.num_rows())
            .map(|i| {
                (0..folded.num_columns())
                    .map(|c| {
                        arrow::util::display::array_value_to_string(folded.column(c), i).unwrap()
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        rows.sort();
        (all, rows)
    }

    use RowKind::{Delete as D, Insert as I, UpdateAfter as UA, UpdateBefore as UB};

    #[test]
    fn inner_join_emits_each_match_times_its_copies() {
        let mut j = join(JoinType::Inner, None);
        let (out, folded) = run(
            &mut j,
            &[
                (
                    0,
                    rows(
                        0,
                        &[(I, Some(1), "a"), (I, Some(2), "b"), (I, Some(1), "a")],
                    ),
                ),
                (1, rows(1, &[(I, Some(1), "x"), (I, Some(3), "y")])),
                (0, rows(0, &[(I, Some(3), "c")])),
            ],
        );
        assert_eq!(out, vec!["+I|1|a|1|x", "+I|1|a|1|x", "+I|3|c|3|y"]);
        assert_eq!(folded, vec!["1|a|1|x", "1|a|1|x", "3|c|3|y"]);
    }

    #[test]
    fn left_join_retracts_the_padded_row_at_the_first_match_and_restores_it() {
        let mut j = join(JoinType::Left, None);
        let (out, folded) = run(
            &mut j,
            &[
                (0, rows(0, &[(I, Some(1), "a")])),
                (1, rows(1, &[(I, Some(1), "x"), (I, Some(1), "y")])),
                (1, rows(1, &[(D, Some(1), "x")])),
                (1, rows(1, &[(UB, Some(1), "y")])),
            ],
        );
        assert_eq!(
            out,
            vec![
                "+I|1|a||",
                "-D|1|a||",
                "+I|1|a|1|x",
                "+I|1|a|1|y",
                "-D|1|a|1|x",
                "-D|1|a|1|y",
                "+I|1|a||",
            ]
        );
        assert_eq!(folded, vec!["1|a||"]);
    }

    #[test]
    fn a_retraction_on_one_side_retracts_its_joined_rows() {
        let mut j = join(JoinType::Full, None);
        let (_, folded) = run(
            &mut j,
            &[
                (1, rows(1, &[(I, Some(1), "x"), (I, Some(2), "z")])),
                (
                    0,
                    rows(
                        0,
                        &[(I, Some(1), "a"), (UB, Some(1), "a"), (UA, Some(1), "b")],
                    ),
                ),
                (0, rows(0, &[(I, Some(5), "e"), (D, Some(5), "e")])),
            ],
        );
        assert_eq!(folded, vec!["1|b|1|x", "||2|z"]);
    }

    #[test]
    fn retracting_a_row_never_inserted_is_an_error() {
        let mut j = join(JoinType::Inner, None);
        j.process(0, &rows(0, &[(I, Some(1), "a")]), 0).unwrap();
        let e = j.process(0, &rows(0, &[(D, Some(1), "b")]), 0).unwrap_err();
        assert!(e.to_string().contains("does not hold"), "{e}");
        assert!(j.process(1, &rows(1, &[(D, Some(1), "a")]), 0).is_err());
    }

    #[test]
    fn semi_and_anti_follow_the_match_count() {
        let batches = [
            (
                0,
                rows(0, &[(I, Some(1), "a"), (I, Some(2), "b"), (I, None, "n")]),
            ),
            (
                1,
                rows(1, &[(I, Some(1), "x"), (I, Some(1), "y"), (I, None, "m")]),
            ),
            (1, rows(1, &[(D, Some(1), "x")])),
        ];
        let mut semi = join(JoinType::LeftSemi, None);
        let (out, folded) = run(&mut semi, &batches);
        assert_eq!(out, vec!["+I|1|a"]);
        assert_eq!(folded, vec!["1|a"]);
        let mut anti = join(JoinType::LeftAnti, None);
        let (out, folded) = run(&mut anti, &batches);
        assert_eq!(out, vec!["+I|1|a", "+I|2|b", "+I||n", "-D|1|a"]);
        assert_eq!(folded, vec!["2|b", "|n"]);
        let mut right_anti = join(JoinType::RightAnti, None);
        let (_, folded) = run(&mut right_anti, &batches);
        assert_eq!(folded, vec!["|m"]);
    }

    #[test]
    fn not_in_follows_nulls_and_emptiness_of_the_right_side() {
        let mut j = join(JoinType::LeftAnti, None);
        j.null_aware = Some(NullAware::default());
        let left = (
            0,
            rows(0, &[(I, Some(1), "a"), (I, None, "n"), (I, Some(2), "b")]),
        );
        let (out, folded) = run(&mut j, std::slice::from_ref(&left));
        assert_eq!(out, vec!["+I|1|a", "+I||n", "+I|2|b"]);
        assert_eq!(folded, vec!["1|a", "2|b", "|n"]);
        // A right row: NULL keys and matched rows leave.
        let mut out = step(&mut j, 1, rows(1, &[(I, Some(2), "x")]));
        out.sort();
        assert_eq!(out, vec!["-D|2|b", "-D||n"]);
        // A NULL in the subquery: nothing is left.
        let out = step(&mut j, 1, rows(1, &[(I, None, "m")]));
        assert_eq!(out, vec!["-D|1|a"]);
        let out = step(&mut j, 1, rows(1, &[(D, None, "m")]));
        assert_eq!(out, vec!["+I|1|a"]);
        // Empty again: every row is back.
        let mut out = step(&mut j, 1, rows(1, &[(D, Some(2), "x")]));
        out.sort();
        assert_eq!(out, vec!["+I|2|b", "+I||n"]);
        // A left row arriving while the right side holds a NULL stays out.
        step(&mut j, 1, rows(1, &[(I, None, "m")]));
        let out = step(&mut j, 0, rows(0, &[(I, Some(7), "g")]));
        assert!(out.is_empty());
    }

    #[test]
    fn null_keys_never_match_but_outer_rows_stay() {
        let mut j = join(JoinType::Full, None);
        let (_, folded) = run(
            &mut j,
            &[
                (0, rows(0, &[(I, None, "a")])),
                (1, rows(1, &[(I, None, "x")])),
            ],
        );
        assert_eq!(folded, vec!["|a||", "|||x"]);
        let mut inner = join(JoinType::Inner, None);
        let (out, _) = run(
            &mut inner,
            &[
                (0, rows(0, &[(I, None, "a")])),
                (1, rows(1, &[(I, None, "x")])),
            ],
        );
        assert!(out.is_empty());
    }

    #[test]
    fn a_side_without_columns_still_counts_its_rows() {
        // `SELECT r.* FROM l FULL JOIN r ON ... AND FALSE`: the left input
        // has rows but no columns (the query reads none), and constant keys.
        let empty: SchemaRef = Arc::new(Schema::empty());
        let r = side_schema("r");
        let key = |v: i64| -> Vec<Arc<dyn PhysicalExpr>> {
            vec![Arc::new(
                datafusion::physical_expr::expressions::Literal::new(
                    datafusion::common::ScalarValue::Int64(Some(v)),
                ),
            )]
        };
        let mut j = StreamingJoin::try_new(JoinSpec {
            join_type: JoinType::Full,
            keys: [key(0), key(1)],
            filter: None,
            null_equals_null: false,
            null_aware: false,
            state_ttl_ms: None,
            append_only: [false, false],
            inputs: [empty.clone(), r.clone()],
            schema: r.clone(),
        })
        .unwrap();
        let left = ChangeBatch {
            ops: Arc::new(Int8Array::from(vec![I.code(), I.code(), D.code()])),
            data: RecordBatch::try_new_with_options(
                empty,
                vec![],
                &RecordBatchOptions::new().with_row_count(Some(3)),
            )
            .unwrap(),
        };
        let out = j.process(0, &left, 0).unwrap();
        assert_eq!(out.num_rows(), 3);
        assert!(j.process(0, &left, 0).is_ok());
        let out = j.process(1, &rows(1, &[(I, Some(1), "x")]), 0).unwrap();
        assert_eq!(show(&out), vec!["+I|1|x"]);
    }

    #[test]
    fn with_a_ttl_rows_idle_that_long_no_longer_match() {
        let mut j = join_with_ttl(JoinType::Inner, None, Some(100));
        assert!(step_at(&mut j, 0, 0, rows(0, &[(I, Some(1), "a")])).is_empty());
        assert_eq!(
            step_at(&mut j, 50, 1, rows(1, &[(I, Some(1), "x")])),
            vec!["+I|1|a|1|x"]
        );
        // Being matched is no write: the left row expires 100 ms after its
        // insert (Flink's OnCreateAndWrite), the right row is still held.
        assert!(step_at(&mut j, 100, 1, rows(1, &[(I, Some(1), "y")])).is_empty());
        // The matches of one row come in no set order.
        let mut matched = step_at(&mut j, 120, 0, rows(0, &[(I, Some(1), "b")]));
        matched.sort();
        assert_eq!(matched, vec!["+I|1|b|1|x", "+I|1|b|1|y"]);
        // A retraction of a forgotten row is ignored, not an error.
        assert!(step_at(&mut j, 130, 0, rows(0, &[(D, Some(1), "a")])).is_empty());
    }

    #[test]
    fn with_a_ttl_an_outer_row_pads_by_the_matches_it_emitted() {
        let mut j = join_with_ttl(JoinType::Left, None, Some(100));
        assert_eq!(
            step_at(&mut j, 0, 0, rows(0, &[(I, Some(1), "a")])),
            vec!["+I|1|a||"]
        );
        assert_eq!(
            step_at(&mut j, 10, 1, rows(1, &[(I, Some(1), "x")])),
            vec!["-D|1|a||", "+I|1|a|1|x"]
        );
        assert_eq!(
            step_at(&mut j, 80, 0, rows(0, &[(I, Some(1), "b")])),
            vec!["+I|1|b|1|x"]
        );
        // At 150 the right row (written at 10) is gone; the left row b
        // (80) is held and still counts its match, so its retraction emits
        // no NULL-padded -D for a row it never emitted; its joined row
        // stays (results differ from BATCH, as documented).
        assert!(step_at(&mut j, 150, 0, rows(0, &[(D, Some(1), "b")])).is_empty());
        // A new left row finds nothing: padded.
        assert_eq!(
            step_at(&mut j, 160, 0, rows(0, &[(I, Some(2), "c")])),
            vec!["+I|2|c||"]
        );
        // The sweep at 200 freed both sides' expired rows.
        assert_eq!(j.sides[1].held.live_rows(), 0);
        assert_eq!(j.sides[0].held.live_rows(), 1);
    }

    #[test]
    fn the_filter_decides_which_pairs_match() {
        // ON l.k = r.k AND l.v < r.v
        let filter: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(Column::new("lv", 1)),
            Operator::Lt,
            Arc::new(Column::new("rv", 3)),
        ));
        let mut j = join(JoinType::Left, Some(filter));
        let (_, folded) = run(
            &mut j,
            &[
                (0, rows(0, &[(I, Some(1), "m"), (I, Some(1), "b")])),
                (1, rows(1, &[(I, Some(1), "c"), (I, Some(1), "z")])),
                (1, rows(1, &[(D, Some(1), "z")])),
            ],
        );
        assert_eq!(folded, vec!["1|b|1|c", "1|m||"]);
    }
}

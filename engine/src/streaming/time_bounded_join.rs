//! Joins whose state the watermark frees: Flink's interval join
//! (`TimeIntervalJoin`) and window join (`WindowJoinOperator`), over two
//! append-only inputs. The planner recognizes them
//! (`tributary_planner::time_join`).
//!
//! Why one operator for both: a window join is an interval join on
//! `window_end` with bounds `[0, 0]` (a row meets only rows of its window,
//! and the window's end - 1 ms is when no more can come) whose matches are
//! held back until the window closes. So each side keeps its rows
//! columnar (`join_state.rs`: the Arrow batches they arrived in, indexed by
//! arrow-row encoded join key), each with the watermark at which it
//! *expires* — after which no row of the other side that is not late can
//! match it:
//!
//! - interval join, `l.t - r.t ∈ [lower, upper]`: a left row expires at
//!   `l.t - lower`, a right row at `r.t + upper`;
//! - window join: every row expires at `window_end - 1`;
//! - range join (`TimeBound::Range`, e.g. Nexmark q4's `B.t BETWEEN A.t
//!   AND A.expires`): a row expires at the least of its side's expiry
//!   expressions, evaluated over its own columns (`A.expires` for an
//!   auction, `B.t` for a bid; a NULL one means the row never matches).
//!
//! A row at or behind the watermark on arrival (`t <= watermark`; for a
//! window join `window_end - 1 <= watermark`) is late: it may have missed
//! partners already freed, so it is counted, kept in `system.late_rows`, and
//! dropped — the rest folds to BATCH's answer over the rows that were not
//! late, the engine's contract.
//!
//! Emission (append-only, `+I` only):
//! - interval join: a new row probes the other side's state by key; pairs
//!   passing the join's filter (which holds the exact time bounds) are
//!   emitted at once. SEMI emits a kept row at its first match. When a row
//!   expires, an outer side's row that never matched is emitted NULL-padded,
//!   and an ANTI side's row that never matched is emitted.
//! - window join: rows are only stored; when the watermark closes a window,
//!   each closed key's rows of both sides are joined (one filter evaluation
//!   over all closed pairs), and padded / semi / anti rows follow from the
//!   match flags.
//!
//! A row with a NULL key (SQL `=`) or a NULL time never matches: an outer or
//! ANTI side emits it at once, other sides drop it.
//!
//! When one input ends (every router has sent the end-of-input
//! watermark), no row of it can come any more, so the other side's rows
//! need no keeping: those held are freed at once (an outer or ANTI side's
//! unmatched rows emitted as on expiry), and later ones probe and are
//! emitted or dropped without being stored. A bounded join whose smaller
//! input is read first (Nexmark q4's auctions) then holds only that input,
//! as BATCH's hash join does. A window join keeps its rows until their
//! window closes, as before.
//!
//! The output watermark is the minimum over both inputs, held back by
//! `TimeBound::watermark_delay_ms` (the largest bound of an interval join),
//! so both inputs' event-time columns stay time attributes of the output
//! (Flink delays its interval join's watermark the same way); a range join,
//! whose output rows can be arbitrarily far behind, forwards only the
//! end-of-input watermark. Expired rows are emitted before the watermark
//! that expired them.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Int8Array, UInt32Array};
use arrow::compute::FilterBuilder;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::{HashMap as DfHashMap, JoinType};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use tokio::task::JoinSet;

use tributary_planner::RowKind;
use tributary_planner::time_join::TimeBound;

use super::aggregate_input::{boolean, event_time_ms};
use super::expiry_queue::ExpiryQueue;
use super::join::{Output, conform, gather, join_shape, pairs_schema};
use super::join_state::{COMPACT_MIN_DEAD, KeyIndex, SideRows};
use super::late_rows::LateRows;
use super::two_inputs::TwoInputs;
use super::{ChangeBatch, END_OF_INPUT, Message, Receiver, channel, send, send_data};

/// One instance's join, as planned.
#[derive(Debug, Clone)]
pub(super) struct TimeJoinSpec {
    /// Inner, Left, Right, Full, or a SEMI / ANTI type.
    pub join_type: JoinType,
    /// The key expressions over the left and the right input (one type per
    /// pair).
    pub keys: [Vec<Arc<dyn PhysicalExpr>>; 2],
    /// The non-equi condition (with the time bounds) over the left then the
    /// right columns.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// NULL keys match each other (`IS NOT DISTINCT FROM`).
    pub null_equals_null: bool,
    /// What frees the state.
    pub bound: TimeBound,
    /// A range join's expiry expressions over the left / the right input
    /// (TIMESTAMP; a row expires at the least of its side's), empty for an
    /// interval or window join.
    pub expiries: [Vec<Arc<dyn PhysicalExpr>>; 2],
    /// The schemas of the left and the right input.
    pub inputs: [SchemaRef; 2],
    /// The output schema (DataFusion's join schema).
    pub schema: SchemaRef,
}

/// Starts one instance on its share of both inputs (`*_routers`: how many
/// routers feed each, for the watermark).
///
/// # Errors
/// A key or column type arrow-row cannot encode; a time column that is not
/// a TIMESTAMP.
pub(super) fn start(
    left: Receiver,
    left_routers: usize,
    right: Receiver,
    right_routers: usize,
    spec: TimeJoinSpec,
    late: LateRows,
    tasks: &mut JoinSet<()>,
) -> Result<Receiver> {
    let (tx, rx) = channel();
    let delay = spec.bound.watermark_delay_ms();
    let mut op = TimeBoundedJoin::try_new(spec, late)?;
    let mut inputs = TwoInputs::new(left, left_routers, right, right_routers);
    tasks.spawn(async move {
        while let Some((side, item)) = inputs.next().await {
            let advanced = match item {
                Ok(Message::Data(change)) => {
                    let out = op.process(side, &change, inputs.current());
                    let failed = out.is_err();
                    if !send_data(&tx, out).await || failed {
                        return;
                    }
                    continue;
                }
                Ok(Message::Watermark { from, ts }) => {
                    let advanced = inputs.advance(side, from, ts);
                    if inputs.ended(side)
                        && let Some(out) = op.end_input(side, inputs.current())
                    {
                        let failed = out.is_err();
                        if !send_data(&tx, out).await || failed {
                            return;
                        }
                    }
                    advanced
                }
                Ok(Message::Idle { from }) => inputs.idle(side, from),
                Err(e) => Err(e),
            };
            match advanced {
                Ok(None) => {}
                Ok(Some(ts)) => {
                    let out = op.expire(ts);
                    let failed = out.is_err();
                    if !send_data(&tx, out).await || failed {
                        return;
                    }
                    let held = match delay {
                        _ if ts == END_OF_INPUT => ts,
                        Some(delay) => ts.saturating_sub(delay),
                        // A range join forwards only the end of input.
                        None => continue,
                    };
                    if !send(&tx, Ok(Message::Watermark { from: 0, ts: held })).await {
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

/// One input's state and how its rows' times are read.
struct Side {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
    /// The rows held, columnar, by key (`join_state.rs`); a row has matched
    /// if its match count is not 0.
    held: SideRows,
    /// When each held row expires: a watermark visits only what it
    /// reaches, never the whole state (`expiry_queue.rs`).
    expiries: ExpiryQueue,
    /// The time column (event time, or `window_end`).
    time: usize,
    /// A row is late if `time + late_offset <= watermark`.
    late_offset: i64,
    /// A row expires at `time + expiry_offset`, unless `expiry_exprs` is
    /// not empty:
    expiry_offset: i64,
    /// A range join's expiry expressions: a row expires at the least of
    /// them (ms).
    expiry_exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// Whether the join type reads this side's match flags (outer, SEMI or
    /// ANTI side); an inner side keeps none.
    reads_matches: bool,
}

impl Side {
    /// Frees the rows expired at `watermark` (marks them dead) and returns
    /// their slots; their values stay readable until [`Side::compact`].
    fn take_expired(&mut self, watermark: i64) -> Vec<u32> {
        let out = self.expiries.take_expired(watermark);
        // The queue holds each live slot once, so this many are all of them.
        if out.len() == self.held.live_rows() {
            self.held.kill_all();
        } else {
            for slot in &out {
                self.held.kill(*slot);
            }
        }
        out
    }

    /// Compacts the held rows if enough are dead, renumbering the runs;
    /// returns whether it did.
    ///
    /// # Errors
    /// Arrow errors copying rows.
    fn compact(&mut self) -> Result<bool> {
        let Some(moved) = self.held.maybe_compact()? else {
            return Ok(false);
        };
        self.expiries.renumber(&moved);
        Ok(true)
    }

    /// Live rows held.
    #[cfg(test)]
    fn held_rows(&self) -> usize {
        self.held.live_rows()
    }
}

/// Output rows being collected: the index of each row's left and right
/// values in the columns they are gathered from (None: NULL).
#[derive(Default)]
struct Collected {
    left: Vec<Option<u32>>,
    right: Vec<Option<u32>>,
}

impl Collected {
    fn push(&mut self, left: Option<u32>, right: Option<u32>) {
        self.left.push(left);
        self.right.push(right);
    }
}

struct TimeBoundedJoin {
    sides: [Side; 2],
    /// The join keys of both sides' rows, numbered once for both: a batch
    /// looks each distinct key up once to find the other side's rows and to
    /// file its own.
    index: KeyIndex,
    /// Encodes the join key.
    key: RowConverter,
    filter: Option<Arc<dyn PhysicalExpr>>,
    /// Left then right columns, all nullable: the pairs the filter reads.
    pairs_schema: SchemaRef,
    schema: SchemaRef,
    null_equals_null: bool,
    /// Sides that emit a NULL-padded row when they never matched.
    padded: [bool; 2],
    /// SEMI / ANTI: the kept side and whether it is ANTI.
    semi: Option<(usize, bool)>,
    output: Output,
    /// A window join: matches wait for the window to close.
    on_close: bool,
    /// Which inputs have ended (see the module docs).
    ended: [bool; 2],
    late: LateRows,
}

impl TimeBoundedJoin {
    fn try_new(spec: TimeJoinSpec, late: LateRows) -> Result<Self> {
        let key_fields = spec.keys[0]
            .iter()
            .map(|e| Ok(SortField::new(e.data_type(&spec.inputs[0])?)))
            .collect::<Result<Vec<_>>>()?;
        let (times, late_offsets, expiry_offsets, on_close) = match spec.bound {
            TimeBound::Interval {
                left_time,
                right_time,
                lower,
                upper,
            } => (
                [left_time, right_time],
                [0, 0],
                [lower.saturating_neg(), upper],
                false,
            ),
            TimeBound::Window {
                left_end,
                right_end,
            } => ([left_end, right_end], [-1, -1], [-1, -1], true),
            TimeBound::Range {
                left_time,
                right_time,
            } => ([left_time, right_time], [0, 0], [0, 0], false),
        };
        let (padded, semi, output) = join_shape(spec.join_type, "streaming time-bounded")?;
        let side = |i: usize| -> Result<Side> {
            let schema = &spec.inputs[i];
            let time = times[i];
            match schema.fields().get(time).map(|f| f.data_type()) {
                Some(DataType::Timestamp(..)) => {}
                other => {
                    return Err(DataFusionError::Plan(format!(
                        "the time column {time} of a time-bounded join input is {other:?}, not a TIMESTAMP"
                    )));
                }
            }
            let reads_matches = padded[i] || semi.is_some_and(|(kept, _)| kept == i);
            let held = SideRows::new(schema.clone(), false, false).with_shared_keys();
            Ok(Side {
                keys: spec.keys[i].clone(),
                schema: schema.clone(),
                held: if reads_matches {
                    held
                } else {
                    held.without_matches()
                },
                expiries: ExpiryQueue::default(),
                time,
                late_offset: late_offsets[i],
                expiry_offset: expiry_offsets[i],
                expiry_exprs: spec.expiries[i].clone(),
                reads_matches,
            })
        };
        Ok(Self {
            sides: [side(0)?, side(1)?],
            index: KeyIndex::default(),
            key: RowConverter::new(key_fields)?,
            filter: spec.filter,
            pairs_schema: pairs_schema(&spec.inputs),
            schema: spec.schema,
            null_equals_null: spec.null_equals_null,
            padded,
            semi,
            output,
            on_close,
            ended: [false; 2],
            late,
        })
    }

    /// Whether side `s` stores its new rows: not once the other input has
    /// ended (no row can come to match them), except in a window join.
    fn stores(&self, s: usize) -> bool {
        self.on_close || !self.ended[1 - s]
    }

    /// Input `side` has ended at watermark `watermark`: the other side's
    /// held rows are freed (emitting what their expiry would), unless that
    /// was done already or this is a window join. None: nothing to do.
    fn end_input(&mut self, side: usize, watermark: i64) -> Option<Result<ChangeBatch>> {
        if self.ended[side] || self.on_close {
            return None;
        }
        self.ended[side] = true;
        Some(self.expire(watermark))
    }

    /// Whether an unmatched row of side `s` is emitted on its own (padded or
    /// ANTI-kept).
    fn emits_unmatched(&self, s: usize) -> bool {
        self.padded[s] || self.semi == Some((s, true))
    }

    /// The times (ms) of side `s`'s rows in `batch` (None: NULL).
    fn times(&self, s: usize, batch: &RecordBatch) -> Result<Vec<Option<i64>>> {
        Ok(event_time_ms(batch.column(self.sides[s].time))?
            .iter()
            .collect())
    }

    /// The expiries (ms) of side `s`'s rows in `batch`, whose times are
    /// `times` (None: the row can never match).
    fn expiries(
        &self,
        s: usize,
        batch: &RecordBatch,
        times: &[Option<i64>],
    ) -> Result<Vec<Option<i64>>> {
        let side = &self.sides[s];
        if side.expiry_exprs.is_empty() {
            return Ok(times
                .iter()
                .map(|t| t.map(|t| t.saturating_add(side.expiry_offset)))
                .collect());
        }
        let n = batch.num_rows();
        let mut out: Vec<Option<i64>> = vec![Some(i64::MAX); n];
        for e in &side.expiry_exprs {
            let column = e.evaluate(batch)?.into_array(n)?;
            // Finer than ms: the cast to ms truncates, so keep the row 1 ms
            // longer rather than free it before its time.
            let round_up = i64::from(matches!(
                column.data_type(),
                DataType::Timestamp(TimeUnit::Microsecond | TimeUnit::Nanosecond, _)
            ));
            let ms = event_time_ms(&column)?;
            for (o, v) in out.iter_mut().zip(ms.iter()) {
                *o = match (*o, v) {
                    (Some(a), Some(b)) => Some(a.min(b.saturating_add(round_up))),
                    _ => None,
                };
            }
        }
        Ok(out)
    }

    /// The encoded join keys of side `s`'s rows in `batch`, and whether each
    /// row can match (no NULL key, unless NULLs match).
    fn keys(&self, s: usize, batch: &RecordBatch) -> Result<(Option<Rows>, Vec<bool>)> {
        let n = batch.num_rows();
        let key_columns = self.sides[s]
            .keys
            .iter()
            .map(|e| {
                e.evaluate(batch)?
                    .into_array(n)
                    .and_then(super::aggregate_input::key_column)
            })
            .collect::<Result<Vec<_>>>()?;
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
        // No key: every row has the empty key.
        let rows = if key_columns.is_empty() {
            None
        } else {
            Some(self.key.convert_columns(&key_columns)?)
        };
        Ok((rows, joinable))
    }

    /// Applies a batch of side `s` (inserts only) at `watermark`; returns
    /// the rows it emits now.
    ///
    /// # Errors
    /// A retraction in the input; expression errors.
    fn process(&mut self, s: usize, change: &ChangeBatch, watermark: i64) -> Result<ChangeBatch> {
        let o = 1 - s;
        let n = change.num_rows();
        if n == 0 {
            return Ok(ChangeBatch {
                ops: Arc::new(Int8Array::from(Vec::<i8>::new())),
                data: RecordBatch::new_empty(self.schema.clone()),
            });
        }
        if change.kinds().any(|k| k.is_retraction()) {
            return Err(DataFusionError::Execution(
                "an interval or window join takes append-only inputs, but its input retracted a row"
                    .into(),
            ));
        }
        let times = self.times(s, &change.data)?;
        let expiries = self.expiries(s, &change.data, &times)?;
        let (key_rows, joinable) = self.keys(s, &change.data)?;
        let key_of = |i: usize| -> &[u8] {
            match &key_rows {
                Some(rows) => rows.row(i).data(),
                None => &[],
            }
        };

        // Late rows leave; rows that can never match go out alone or not at all.
        let mut out = Collected::default();
        let mut late: Vec<u32> = Vec::new();
        let mut live: Vec<usize> = Vec::with_capacity(n);
        let side = &self.sides[s];
        for (i, t) in times.iter().enumerate() {
            match t {
                Some(t) if t.saturating_add(side.late_offset) <= watermark => late.push(i as u32),
                Some(_) if joinable[i] && expiries[i].is_some() => live.push(i),
                _ => {
                    if self.emits_unmatched(s) {
                        out.push_side(s, i as u32);
                    }
                }
            }
        }
        self.late.record(&change.data, &late, watermark)?;

        // Every live row is stored below, so each one's key is numbered now:
        // one lookup per row in the shared index, all of the batch's at once
        // so that their cache misses overlap. The batch's distinct keys are
        // then told apart by id (a small table of `u32`s, no key bytes
        // hashed or compared again): each live row's index among them.
        // Candidates (interval join): the other side's rows under each
        // distinct key, gathered once.
        // (Rows that are not stored only look their keys up.)
        let store = self.stores(s);
        let live_keys: Vec<&[u8]> = live.iter().map(|&i| key_of(i)).collect();
        let row_key_ids = if store {
            self.index.get_or_insert_many(&live_keys)
        } else {
            self.index.get_many(&live_keys)
        };
        let mut key_ids: Vec<u32> = Vec::new();
        let mut distinct_of: Vec<u32> = Vec::new();
        let mut cand_slots: Vec<u32> = Vec::new();
        let mut pair_probe: Vec<u32> = Vec::new();
        let mut pair_cand: Vec<u32> = Vec::new();
        let other = &self.sides[o].held;
        if store {
            let mut index_of: DfHashMap<u32, u32> = DfHashMap::with_capacity(live.len());
            distinct_of = row_key_ids
                .iter()
                .map(|&id| {
                    *index_of.entry(id).or_insert_with(|| {
                        key_ids.push(id);
                        (key_ids.len() - 1) as u32
                    })
                })
                .collect();
            let mut distinct_range: Vec<(usize, usize)> = Vec::new();
            if !self.on_close {
                for &id in &key_ids {
                    let start = cand_slots.len();
                    other.slots_of(id, &mut cand_slots);
                    distinct_range.push((start, cand_slots.len()));
                }
            }
            for (&i, &d) in live.iter().zip(&distinct_of) {
                let Some(&(a, b)) = distinct_range.get(d as usize) else {
                    continue;
                };
                for j in a..b {
                    pair_probe.push(i as u32);
                    pair_cand.push(j as u32);
                }
            }
        } else {
            // Nothing is filed: each row reads its key's rows directly (a
            // key repeated in the batch has its rows gathered again, which
            // costs less than telling the batch's keys apart).
            for (&i, &id) in live.iter().zip(&row_key_ids) {
                let start = cand_slots.len();
                other.slots_of(id, &mut cand_slots);
                for j in start..cand_slots.len() {
                    pair_probe.push(i as u32);
                    pair_cand.push(j as u32);
                }
            }
        }
        let cand_columns = other.gather(&cand_slots)?;
        let (left_cols, right_cols): (&[ArrayRef], &[ArrayRef]) = if s == 0 {
            (change.data.columns(), &cand_columns)
        } else {
            (&cand_columns, change.data.columns())
        };
        let (pl, pr) = if s == 0 {
            (&pair_probe, &pair_cand)
        } else {
            (&pair_cand, &pair_probe)
        };
        let filtered = self.filter_pairs(left_cols, right_cols, pl, pr)?;
        let passes = filtered.as_ref().map(|(passes, _)| passes);
        // When the output is exactly the passing pairs (both sides' columns,
        // nothing emitted alone before them), it is the filter's input
        // filtered: no second gather of every column.
        // (Not when unmatched rows that are not stored go out alone below.)
        let pairs_only = self.output == Output::Both
            && out.left.is_empty()
            && filtered.is_some()
            && (store || !self.emits_unmatched(s));

        let mut new_matched = vec![false; n];
        let mut cand_matched_now: Vec<bool> = vec![false; cand_slots.len()];
        for (p, (&i, &j)) in pair_probe.iter().zip(&pair_cand).enumerate() {
            if !passes.as_ref().is_none_or(|m| m[p]) {
                continue;
            }
            new_matched[i as usize] = true;
            cand_matched_now[j as usize] = true;
            if self.output == Output::Both && !pairs_only {
                let (l, r) = if s == 0 { (i, j) } else { (j, i) };
                out.push(Some(l), Some(r));
            }
        }
        // Candidates that matched for the first time: SEMI emits the kept
        // row; each is marked matched in the state. (A held row listed twice,
        // when nothing is stored, is emitted once: it is marked at once.)
        let semi_kept_o = self.semi == Some((o, false));
        if self.sides[o].reads_matches {
            for (j, now) in cand_matched_now.iter().enumerate() {
                let slot = cand_slots[j];
                if *now && self.sides[o].held.matches(slot) == 0 {
                    if semi_kept_o {
                        out.push_side(o, j as u32);
                    }
                    self.sides[o].held.set_matches(slot, 1, 0);
                }
            }
        }
        // The new rows: SEMI emits a kept row that matched; all are stored,
        // or, when the other input has ended, an unmatched outer or ANTI row
        // goes out now, as it would have on expiry.
        let semi_kept_s = self.semi == Some((s, false));
        if store {
            self.store(
                s,
                change,
                &live,
                &distinct_of,
                &key_ids,
                &expiries,
                &new_matched,
            )?;
        }
        let alone = !store && self.emits_unmatched(s);
        for &i in &live {
            if (semi_kept_s && new_matched[i]) || (alone && !new_matched[i]) {
                out.push_side(s, i as u32);
            }
        }
        match filtered {
            Some((passes, columns)) if pairs_only => self.passing_pairs(&passes, columns),
            _ => self.gather_output(left_cols, right_cols, out),
        }
    }

    /// Files the live rows `live` of side `s`'s `change` (each row's index
    /// among the batch's distinct keys in `distinct_of`, those keys' ids in
    /// `key_ids`) with their expiries and whether each matched now.
    ///
    /// # Errors
    /// Arrow errors gathering the rows; a side over `u32::MAX - 1` rows.
    #[allow(clippy::too_many_arguments)]
    fn store(
        &mut self,
        s: usize,
        change: &ChangeBatch,
        live: &[usize],
        distinct_of: &[u32],
        key_ids: &[u32],
        expiries: &[Option<i64>],
        new_matched: &[bool],
    ) -> Result<()> {
        let stored = if live.len() == change.num_rows() {
            change.data.clone()
        } else {
            let indices = UInt32Array::from_iter_values(live.iter().map(|i| *i as u32));
            RecordBatch::try_new_with_options(
                change.data.schema(),
                gather(change.data.columns(), &indices)?,
                &RecordBatchOptions::new().with_row_count(Some(live.len())),
            )?
        };
        let side = &mut self.sides[s];
        let first = side.held.append(stored)?;
        let mut run = Vec::with_capacity(live.len());
        for (k, (&i, &d)) in live.iter().zip(distinct_of).enumerate() {
            let Some(expiry) = expiries[i] else { continue };
            let slot = first + k as u32;
            side.held
                .activate(slot, key_ids[d as usize], u64::from(new_matched[i]), 0, 0);
            run.push((expiry, slot));
        }
        side.expiries.push(&run);
        Ok(())
    }

    /// The output rows of the pairs that pass (all `+I`): `columns` are the
    /// pairs' left then right columns, `passes` which pass.
    fn passing_pairs(&self, passes: &[bool], columns: Vec<ArrayRef>) -> Result<ChangeBatch> {
        let rows = passes.iter().filter(|p| **p).count();
        let columns = if rows == passes.len() {
            columns
        } else {
            // One prepared predicate for all the columns.
            let mask = FilterBuilder::new(&BooleanArray::from(passes.to_vec()))
                .optimize()
                .build();
            columns
                .iter()
                .map(|c| Ok(mask.filter(c.as_ref())?))
                .collect::<Result<Vec<_>>>()?
        };
        self.inserts(columns, rows)
    }

    /// `rows` output rows of `columns` (the output's, maybe to conform), all
    /// `+I`.
    fn inserts(&self, columns: Vec<ArrayRef>, rows: usize) -> Result<ChangeBatch> {
        let data = RecordBatch::try_new_with_options(
            self.schema.clone(),
            conform(columns, &self.schema)?,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        Ok(ChangeBatch {
            ops: Arc::new(Int8Array::from(vec![RowKind::Insert.code(); rows])),
            data,
        })
    }

    /// Frees the rows expired at `watermark`, emitting what they decide:
    /// a window join's closed windows; an interval join's unmatched outer
    /// or ANTI rows.
    fn expire(&mut self, watermark: i64) -> Result<ChangeBatch> {
        // A side whose partner input has ended keeps nothing.
        let expired = [0, 1].map(|s| {
            let at = if self.stores(s) {
                watermark
            } else {
                END_OF_INPUT
            };
            self.sides[s].take_expired(at)
        });
        let out = if self.on_close {
            self.close_windows(&expired)
        } else {
            let alone: [Vec<u32>; 2] = [0, 1].map(|s| {
                if self.emits_unmatched(s) {
                    expired[s]
                        .iter()
                        .copied()
                        .filter(|slot| self.sides[s].held.matches(*slot) == 0)
                        .collect()
                } else {
                    Vec::new()
                }
            });
            let left = self.sides[0].held.gather(&alone[0])?;
            let right = self.sides[1].held.gather(&alone[1])?;
            let mut out = Collected::default();
            for (s, rows) in alone.iter().enumerate() {
                for i in 0..rows.len() {
                    out.push_side(s, i as u32);
                }
            }
            self.gather_output(&left, &right, out)
        };
        // Slots move when a side compacts: only after they were read.
        let mut compacted = false;
        for side in &mut self.sides {
            compacted |= side.compact()?;
        }
        // Keys without live rows on either side leave the shared index when
        // they outnumber the others. Checked only after a compaction: until
        // then dead rows (at least one per dead key) are at most the live
        // rows, which bounds the dead keys.
        if compacted {
            let live = |k: u32| self.sides.iter().any(|side| side.held.has_live_key(k));
            let dead = (0..self.index.len() as u32).filter(|k| !live(*k)).count();
            if dead >= COMPACT_MIN_DEAD && dead > self.index.len() - dead {
                let (index, new_id) = self.index.retain(live);
                for side in &mut self.sides {
                    side.held.renumber_keys(&new_id);
                }
                self.index = index;
            }
        }
        out
    }

    /// A window join: joins the closed rows of both sides by key.
    fn close_windows(&self, expired: &[Vec<u32>; 2]) -> Result<ChangeBatch> {
        let columns = [0, 1].map(|s| self.sides[s].held.gather(&expired[s]));
        let [left, right] = columns;
        let (left, right) = (left?, right?);
        let batch = |s: usize, columns: &[ArrayRef]| -> Result<RecordBatch> {
            Ok(RecordBatch::try_new_with_options(
                self.sides[s].schema.clone(),
                columns.to_vec(),
                &RecordBatchOptions::new().with_row_count(Some(expired[s].len())),
            )?)
        };
        let (left_keys, _) = self.keys(0, &batch(0, &left)?)?;
        let (right_keys, _) = self.keys(1, &batch(1, &right)?)?;
        let key = |rows: &Option<Rows>, i: usize| -> Vec<u8> {
            match rows {
                Some(rows) => rows.row(i).data().to_vec(),
                None => Vec::new(),
            }
        };
        // (Stored rows never have a NULL key that cannot match.)
        let mut right_of: DfHashMap<Vec<u8>, Vec<u32>> = DfHashMap::new();
        for b in 0..expired[1].len() {
            right_of
                .entry(key(&right_keys, b))
                .or_default()
                .push(b as u32);
        }
        let (mut pl, mut pr): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());
        for a in 0..expired[0].len() {
            if let Some(rs) = right_of.get(&key(&left_keys, a)) {
                for b in rs {
                    pl.push(a as u32);
                    pr.push(*b);
                }
            }
        }
        let passes = self.evaluate_filter(&left, &right, &pl, &pr)?;
        let mut matched = [vec![false; expired[0].len()], vec![false; expired[1].len()]];
        let mut out = Collected::default();
        for (p, (&l, &r)) in pl.iter().zip(&pr).enumerate() {
            if !passes.as_ref().is_none_or(|m| m[p]) {
                continue;
            }
            matched[0][l as usize] = true;
            matched[1][r as usize] = true;
            if self.output == Output::Both {
                out.push(Some(l), Some(r));
            }
        }
        for (s, flags) in matched.iter().enumerate() {
            let emit_matched = self.semi == Some((s, false));
            let emit_unmatched = self.emits_unmatched(s);
            for (i, m) in flags.iter().enumerate() {
                if (*m && emit_matched) || (!*m && emit_unmatched) {
                    out.push_side(s, i as u32);
                }
            }
        }
        self.gather_output(&left, &right, out)
    }

    /// Whether each pair (left index, right index) passes the non-equi
    /// condition (None: no condition). NULL is false.
    fn evaluate_filter(
        &self,
        left: &[ArrayRef],
        right: &[ArrayRef],
        pl: &[u32],
        pr: &[u32],
    ) -> Result<Option<Vec<bool>>> {
        Ok(self
            .filter_pairs(left, right, pl, pr)?
            .map(|(passes, _)| passes))
    }

    /// [`TimeBoundedJoin::evaluate_filter`], also returning the pairs'
    /// columns (left then right) it gathered to evaluate the condition.
    fn filter_pairs(
        &self,
        left: &[ArrayRef],
        right: &[ArrayRef],
        pl: &[u32],
        pr: &[u32],
    ) -> Result<Option<(Vec<bool>, Vec<ArrayRef>)>> {
        let Some(filter) = &self.filter else {
            return Ok(None);
        };
        let mut columns = pick(left, pl)?;
        columns.extend(pick(right, pr)?);
        if pl.is_empty() {
            return Ok(Some((vec![], columns)));
        }
        let pairs = RecordBatch::try_new_with_options(
            self.pairs_schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(pl.len())),
        )?;
        let mask = boolean(filter.as_ref(), &pairs)?;
        let passes = match mask.nulls() {
            None => mask.values().iter().collect(),
            Some(_) => (0..mask.len())
                .map(|p| mask.is_valid(p) && mask.value(p))
                .collect(),
        };
        Ok(Some((passes, pairs.columns().to_vec())))
    }

    /// Gathers the collected rows (all `+I`) from the left and right columns.
    fn gather_output(
        &self,
        left: &[ArrayRef],
        right: &[ArrayRef],
        out: Collected,
    ) -> Result<ChangeBatch> {
        let rows = out.left.len();
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
        self.inserts(columns, rows)
    }
}

/// The rows `indices` of `columns`: the columns themselves when that is
/// every row once, in order (a probing batch whose rows each have one
/// candidate), else gathered.
fn pick(columns: &[ArrayRef], indices: &[u32]) -> Result<Vec<ArrayRef>> {
    let rows = columns.first().map_or(0, |c| c.len());
    if indices.len() == rows && indices.iter().enumerate().all(|(k, &i)| i as usize == k) {
        return Ok(columns.to_vec());
    }
    gather(columns, &UInt32Array::from(indices.to_vec()))
}

impl Collected {
    /// A row of side `s` alone: its index on its side, NULL on the other.
    fn push_side(&mut self, s: usize, i: u32) {
        if s == 0 {
            self.push(Some(i), None);
        } else {
            self.push(None, Some(i));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::array::{Int64Array, TimestampMillisecondArray};
    use arrow::compute::cast;
    use arrow::datatypes::TimeUnit;
    use arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
    use std::sync::atomic::{AtomicU64, Ordering};

    fn side_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]))
    }

    fn out_schema(join_type: JoinType) -> SchemaRef {
        match join_type {
            JoinType::LeftSemi | JoinType::LeftAnti => side_schema(),
            _ => Arc::new(Schema::new(
                side_schema()
                    .fields()
                    .iter()
                    .chain(side_schema().fields().iter())
                    .map(|f| f.as_ref().clone().with_nullable(true))
                    .collect::<Vec<_>>(),
            )),
        }
    }

    /// `r.ts BETWEEN l.ts - 1 s AND l.ts + 1 s` over (l.k, l.ts, r.k, r.ts).
    fn within_a_second() -> Arc<dyn PhysicalExpr> {
        let second: Arc<dyn PhysicalExpr> = Arc::new(Literal::new(
            datafusion::common::ScalarValue::new_interval_mdn(0, 0, 1_000_000_000),
        ));
        let (lts, rts): (Arc<dyn PhysicalExpr>, Arc<dyn PhysicalExpr>) = (
            Arc::new(Column::new("ts", 1)),
            Arc::new(Column::new("ts", 3)),
        );
        let low = Arc::new(BinaryExpr::new(
            lts.clone(),
            Operator::Minus,
            second.clone(),
        ));
        let high = Arc::new(BinaryExpr::new(lts, Operator::Plus, second));
        Arc::new(BinaryExpr::new(
            Arc::new(BinaryExpr::new(rts.clone(), Operator::GtEq, low)),
            Operator::And,
            Arc::new(BinaryExpr::new(rts, Operator::LtEq, high)),
        ))
    }

    fn join(join_type: JoinType, bound: TimeBound) -> (TimeBoundedJoin, Arc<AtomicU64>) {
        let filter = match bound {
            TimeBound::Interval { .. } => Some(within_a_second()),
            TimeBound::Window { .. } | TimeBound::Range { .. } => None,
        };
        join_with(join_type, filter, bound, [Vec::new(), Vec::new()])
    }

    /// A join of two `(k, ts)` sides on `k` with `filter`, `bound` and each
    /// side's `expiries`; also the late-row counter.
    fn join_with(
        join_type: JoinType,
        filter: Option<Arc<dyn PhysicalExpr>>,
        bound: TimeBound,
        expiries: [Vec<Arc<dyn PhysicalExpr>>; 2],
    ) -> (TimeBoundedJoin, Arc<AtomicU64>) {
        let late = Arc::new(AtomicU64::new(0));
        let op = TimeBoundedJoin::try_new(
            TimeJoinSpec {
                join_type,
                keys: [
                    vec![Arc::new(Column::new("k", 0))],
                    vec![Arc::new(Column::new("k", 0))],
                ],
                filter,
                null_equals_null: false,
                bound,
                expiries,
                inputs: [side_schema(), side_schema()],
                schema: out_schema(join_type),
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

    const INTERVAL: TimeBound = TimeBound::Interval {
        left_time: 1,
        right_time: 1,
        lower: -1_000,
        upper: 1_000,
    };
    const WINDOW: TimeBound = TimeBound::Window {
        left_end: 1,
        right_end: 1,
    };

    /// Inserts of (key, time ms).
    fn rows(rows: &[(i64, i64)]) -> ChangeBatch {
        let data = RecordBatch::try_new(
            side_schema(),
            vec![
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(TimestampMillisecondArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        ChangeBatch {
            ops: Arc::new(Int8Array::from(vec![RowKind::Insert.code(); rows.len()])),
            data,
        }
    }

    /// Each output row as "l.k l.ts | r.k r.ts" (NULL as -).
    fn show(change: &ChangeBatch) -> Vec<String> {
        let columns = change.data.columns();
        let int = |c: usize| -> ArrayRef { cast(&columns[c], &DataType::Int64).unwrap() };
        let columns: Vec<ArrayRef> = (0..columns.len()).map(int).collect();
        let mut out: Vec<String> = (0..change.num_rows())
            .map(|i| {
                columns
                    .iter()
                    .map(|c| {
                        let a = c.as_primitive::<arrow::datatypes::Int64Type>();
                        if a.is_null(i) {
                            "-".to_string()
                        } else {
                            a.value(i).to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        out.sort();
        out
    }

    fn stored(op: &TimeBoundedJoin) -> [usize; 2] {
        [0, 1].map(|s| op.sides[s].held_rows())
    }

    #[test]
    fn interval_join_emits_matches_on_arrival_and_frees_state_by_watermark() {
        let (mut op, late) = join(JoinType::Inner, INTERVAL);
        assert!(
            show(
                &op.process(0, &rows(&[(1, 10_000), (2, 10_000)]), i64::MIN)
                    .unwrap()
            )
            .is_empty()
        );
        // 1 s after: on the bound (inclusive); 1.001 s after: out.
        let out = op
            .process(1, &rows(&[(1, 11_000), (1, 11_001), (2, 5_000)]), i64::MIN)
            .unwrap();
        assert_eq!(show(&out), ["1 10000 1 11000"]);
        assert_eq!(stored(&op), [2, 3]);
        // Left rows expire at ts + 1 s, right rows at ts + 1 s.
        assert!(op.expire(10_999).unwrap().num_rows() == 0);
        assert_eq!(stored(&op), [2, 2]);
        op.expire(11_000).unwrap();
        assert_eq!(stored(&op), [0, 2]);
        // At watermark 11 s a row at 11 s is late: counted, dropped, no match.
        let out = op
            .process(0, &rows(&[(1, 11_000), (1, 11_500)]), 11_000)
            .unwrap();
        assert_eq!(show(&out), ["1 11500 1 11000", "1 11500 1 11001"]);
        assert_eq!(late.load(Ordering::Relaxed), 1);
        op.expire(END_OF_INPUT).unwrap();
        assert_eq!(stored(&op), [0, 0]);
    }

    #[test]
    fn expiry_runs_free_rows_in_bulk_and_compaction_keeps_the_rest_joinable() {
        let (mut op, _) = join(JoinType::Inner, INTERVAL);
        // 20 batches of 1,000 left rows, times 0..20 s in arrival order,
        // out of order within each batch; keys 0..9.
        for b in 0..20 {
            let batch: Vec<(i64, i64)> = (0..1_000)
                .map(|i| ((i % 10) as i64, b * 1_000 + (999 - i) as i64))
                .collect();
            op.process(0, &rows(&batch), i64::MIN).unwrap();
        }
        assert!(op.sides[0].expiries.runs() < 20, "runs are grouped");
        assert_eq!(stored(&op), [20_000, 0]);
        // Left rows expire at ts + 1 s: at 15 s those before 14 s are gone.
        assert_eq!(op.expire(14_999).unwrap().num_rows(), 0);
        assert_eq!(stored(&op), [6_000, 0]);
        // Compacted (14,000 dead > 6,000 live): the rest still match.
        assert!(op.sides[0].held.batches_len() <= 2);
        let out = op.process(1, &rows(&[(3, 15_500)]), 14_999).unwrap();
        // Left rows of key 3 with ts in [14.5 s, 16.5 s]: 2,000 ms × 1/10.
        assert_eq!(out.num_rows(), 200);
        op.expire(END_OF_INPUT).unwrap();
        assert_eq!(stored(&op), [0, 0]);
    }

    #[test]
    fn keys_whose_rows_all_expired_leave_the_shared_index() {
        let (mut op, _) = join(JoinType::Inner, INTERVAL);
        // 10,000 keys, one left row each, key k at k ms.
        let batch: Vec<(i64, i64)> = (0..10_000).map(|k| (k, k)).collect();
        op.process(0, &rows(&batch), i64::MIN).unwrap();
        // One right row each for keys 9,000.. (matching: within 1 s).
        let batch: Vec<(i64, i64)> = (9_000..10_000).map(|k| (k, 9_500)).collect();
        assert_eq!(
            op.process(1, &rows(&batch), i64::MIN).unwrap().num_rows(),
            1_000
        );
        assert_eq!(op.index.len(), 10_000);
        // Left rows expire at k + 1 s: keys below 8,000 go on the left, and
        // have no right rows.
        op.expire(8_999).unwrap();
        assert_eq!(stored(&op), [2_000, 1_000]);
        assert_eq!(op.index.len(), 2_000);
        // The rest still match under their renumbered ids; a dropped key
        // matches nothing and is numbered again.
        let out = op
            .process(
                1,
                &rows(&[(9_999, 9_999), (8_500, 9_000), (5, 9_000)]),
                8_999,
            )
            .unwrap();
        assert_eq!(show(&out), ["8500 8500 8500 9000", "9999 9999 9999 9999"]);
        assert_eq!(op.index.len(), 2_001);
        let out = op.process(0, &rows(&[(5, 9_100)]), 8_999).unwrap();
        assert_eq!(show(&out), ["5 9100 5 9000"]);
        // Fewer dead keys than `COMPACT_MIN_DEAD`: the index stays.
        op.expire(END_OF_INPUT).unwrap();
        assert_eq!(stored(&op), [0, 0]);
        assert_eq!(op.index.len(), 2_001);
    }

    #[test]
    fn outer_interval_join_pads_a_row_when_it_expires_unmatched() {
        let (mut op, _) = join(JoinType::Full, INTERVAL);
        op.process(0, &rows(&[(1, 10_000), (3, 10_000)]), i64::MIN)
            .unwrap();
        op.process(1, &rows(&[(1, 10_500), (2, 10_500)]), i64::MIN)
            .unwrap();
        // Nothing padded before the rows expire (a match could still come).
        assert_eq!(op.expire(10_000).unwrap().num_rows(), 0);
        assert_eq!(
            show(&op.expire(11_500).unwrap()),
            ["- - 2 10500", "3 10000 - -"]
        );
        // A new row is never padded on arrival (a match may still come).
        let out = op.process(0, &rows(&[(1, 20_000)]), 11_500).unwrap();
        assert_eq!(out.num_rows(), 0);
        let (mut anti, _) = join(JoinType::LeftAnti, INTERVAL);
        anti.process(0, &rows(&[(1, 10_000), (3, 10_000)]), i64::MIN)
            .unwrap();
        anti.process(1, &rows(&[(1, 10_500)]), i64::MIN).unwrap();
        assert_eq!(show(&anti.expire(END_OF_INPUT).unwrap()), ["3 10000"]);
    }

    #[test]
    fn window_join_emits_a_window_when_the_watermark_closes_it() {
        // The time column is window_end: windows end at 10 s and 20 s.
        let (mut op, late) = join(JoinType::Left, WINDOW);
        assert_eq!(
            op.process(0, &rows(&[(1, 10_000), (2, 10_000), (1, 20_000)]), i64::MIN)
                .unwrap()
                .num_rows(),
            0
        );
        assert_eq!(
            op.process(1, &rows(&[(1, 10_000), (1, 10_000), (1, 20_000)]), i64::MIN)
                .unwrap()
                .num_rows(),
            0
        );
        assert_eq!(op.expire(9_998).unwrap().num_rows(), 0);
        assert_eq!(
            show(&op.expire(9_999).unwrap()),
            ["1 10000 1 10000", "1 10000 1 10000", "2 10000 - -"]
        );
        assert_eq!(stored(&op), [1, 1]);
        // A row of the closed window is late.
        op.process(1, &rows(&[(2, 10_000)]), 9_999).unwrap();
        assert_eq!(late.load(Ordering::Relaxed), 1);
        assert_eq!(show(&op.expire(END_OF_INPUT).unwrap()), ["1 20000 1 20000"]);
        assert_eq!(stored(&op), [0, 0]);
    }

    /// A range join as Nexmark q4's `r.ts BETWEEN l.ts AND l.expires`, with
    /// `expires` the expression `l.ts + 5 s`: left rows expire at `ts + 5 s`
    /// (their own expression), right rows at `ts` (the left time's upper
    /// bound).
    fn range_join(join_type: JoinType) -> (TimeBoundedJoin, Arc<AtomicU64>) {
        let five: Arc<dyn PhysicalExpr> = Arc::new(Literal::new(
            datafusion::common::ScalarValue::new_interval_mdn(0, 0, 5_000_000_000),
        ));
        let ts = |i: usize| -> Arc<dyn PhysicalExpr> { Arc::new(Column::new("ts", i)) };
        let expires = |i: usize| -> Arc<dyn PhysicalExpr> {
            Arc::new(BinaryExpr::new(ts(i), Operator::Plus, five.clone()))
        };
        let filter: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(BinaryExpr::new(ts(3), Operator::GtEq, ts(1))),
            Operator::And,
            Arc::new(BinaryExpr::new(ts(3), Operator::LtEq, expires(1))),
        ));
        join_with(
            join_type,
            Some(filter),
            TimeBound::Range {
                left_time: 1,
                right_time: 1,
            },
            [vec![expires(1)], vec![ts(1)]],
        )
    }

    #[test]
    fn range_join_frees_each_row_at_its_own_expiry() {
        let (mut op, late) = range_join(JoinType::Inner);
        // An inner join keeps no match counts.
        assert!(!op.sides[0].reads_matches && !op.sides[1].reads_matches);
        op.process(0, &rows(&[(1, 10_000), (2, 10_000)]), i64::MIN)
            .unwrap();
        // Before the left row, inside [ts, ts + 5 s], after it.
        let out = op
            .process(
                1,
                &rows(&[(1, 9_000), (1, 12_000), (1, 12_000), (2, 16_000)]),
                i64::MIN,
            )
            .unwrap();
        assert_eq!(show(&out), ["1 10000 1 12000", "1 10000 1 12000"]);
        assert_eq!(stored(&op), [2, 4]);
        // A right row leaves once the watermark reaches its time (no left
        // row that is not late can start at or before it any more).
        op.expire(11_999).unwrap();
        assert_eq!(stored(&op), [2, 3]);
        // Left rows leave at ts + 5 s, right rows at ts.
        op.expire(15_000).unwrap();
        assert_eq!(stored(&op), [0, 1]);
        // A left row at the watermark is late; one after it still meets the
        // right row held until 16 s.
        let out = op
            .process(0, &rows(&[(2, 15_000), (2, 15_500)]), 15_000)
            .unwrap();
        assert_eq!(show(&out), ["2 15500 2 16000"]);
        assert_eq!(late.load(Ordering::Relaxed), 1);
        op.expire(END_OF_INPUT).unwrap();
        assert_eq!(stored(&op), [0, 0]);
    }

    #[test]
    fn once_an_input_ends_the_other_side_keeps_nothing() {
        // Nexmark q4's shape: the left input (auctions) ends first.
        let (mut op, _) = range_join(JoinType::Inner);
        assert_eq!(
            op.process(1, &rows(&[(1, 12_000)]), i64::MIN)
                .unwrap()
                .num_rows(),
            0
        );
        let out = op.process(0, &rows(&[(1, 10_000)]), i64::MIN).unwrap();
        assert_eq!(show(&out), ["1 10000 1 12000"]);
        assert_eq!(stored(&op), [1, 1]);
        // The held right row can meet no left row any more.
        assert_eq!(op.end_input(0, i64::MIN).unwrap().unwrap().num_rows(), 0);
        assert_eq!(stored(&op), [1, 0]);
        assert!(op.end_input(0, i64::MIN).is_none(), "only once");
        // New right rows probe the left rows and are not kept.
        let out = op
            .process(1, &rows(&[(1, 13_000), (2, 13_000)]), i64::MIN)
            .unwrap();
        assert_eq!(show(&out), ["1 10000 1 13000"]);
        assert_eq!(stored(&op), [1, 0]);
        assert_eq!(op.index.len(), 1, "an unstored key is not numbered");

        // An outer side's unmatched rows go out padded when the other
        // input ends, and later ones at once.
        let (mut op, _) = range_join(JoinType::Left);
        op.process(0, &rows(&[(1, 10_000), (2, 10_000)]), i64::MIN)
            .unwrap();
        op.process(1, &rows(&[(1, 11_000)]), i64::MIN).unwrap();
        let out = op.end_input(1, i64::MIN).unwrap().unwrap();
        assert_eq!(show(&out), ["2 10000 - -"]);
        assert_eq!(stored(&op), [0, 1]);
        let out = op
            .process(0, &rows(&[(1, 10_500), (3, 10_500)]), i64::MIN)
            .unwrap();
        assert_eq!(show(&out), ["1 10500 1 11000", "3 10500 - -"]);
        assert_eq!(stored(&op), [0, 1]);
        // ANTI: the kept side's unmatched rows, at once.
        let (mut anti, _) = join(JoinType::LeftAnti, INTERVAL);
        anti.process(1, &rows(&[(1, 10_500)]), i64::MIN).unwrap();
        assert_eq!(anti.end_input(1, i64::MIN).unwrap().unwrap().num_rows(), 0);
        let out = anti
            .process(0, &rows(&[(1, 10_000), (3, 10_000)]), i64::MIN)
            .unwrap();
        assert_eq!(show(&out), ["3 10000"]);
        // SEMI: a held kept row met by two unstored rows goes out once.
        let (mut semi, _) = join(JoinType::LeftSemi, INTERVAL);
        semi.process(0, &rows(&[(1, 10_000)]), i64::MIN).unwrap();
        assert_eq!(semi.end_input(0, i64::MIN).unwrap().unwrap().num_rows(), 0);
        let out = semi
            .process(1, &rows(&[(1, 10_100), (1, 10_200)]), i64::MIN)
            .unwrap();
        assert_eq!(show(&out), ["1 10000"]);
        // A window join keeps its rows until their window closes.
        let (mut window, _) = join(JoinType::Inner, WINDOW);
        window.process(0, &rows(&[(1, 10_000)]), i64::MIN).unwrap();
        assert!(window.end_input(1, i64::MIN).is_none());
        assert_eq!(stored(&window), [1, 0]);
    }

    #[test]
    fn outer_range_join_pads_a_row_when_its_own_expiry_passes() {
        let (mut op, _) = range_join(JoinType::Left);
        assert!(op.sides[0].reads_matches && !op.sides[1].reads_matches);
        op.process(0, &rows(&[(1, 10_000), (2, 10_000)]), i64::MIN)
            .unwrap();
        op.process(1, &rows(&[(1, 11_000)]), i64::MIN).unwrap();
        // Key 2 could still meet a right row up to 15 s: nothing padded yet.
        assert_eq!(op.expire(14_999).unwrap().num_rows(), 0);
        assert_eq!(show(&op.expire(15_000).unwrap()), ["2 10000 - -"]);
        assert_eq!(stored(&op), [0, 0]);
    }
}

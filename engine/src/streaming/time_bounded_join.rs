//! Joins whose state the watermark frees: Flink's interval join
//! (`TimeIntervalJoin`) and window join (`WindowJoinOperator`), over two
//! append-only inputs. The planner recognizes them
//! (`tributary_planner::time_join`).
//!
//! Why one operator for both: a window join is an interval join on
//! `window_end` with bounds `[0, 0]` (a row meets only rows of its window,
//! and the window's end - 1 ms is when no more can come) whose matches are
//! held back until the window closes. So each side keeps, per join key
//! (arrow-row encoded), its rows (arrow-row encoded) with the watermark at
//! which the row *expires* — after which no row of the other side that is
//! not late can match it:
//!
//! - interval join, `l.t - r.t ∈ [lower, upper]`: a left row expires at
//!   `l.t - lower`, a right row at `r.t + upper`;
//! - window join: every row expires at `window_end - 1`.
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
//! The output watermark is the minimum over both inputs, held back by
//! `TimeBound::watermark_delay_ms` (the largest bound of an interval join),
//! so both inputs' event-time columns stay time attributes of the output
//! (Flink delays its interval join's watermark the same way). Expired rows
//! are emitted before the watermark that expired them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int8Array, UInt32Array};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, SortField};
use datafusion::common::JoinType;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use tokio::task::JoinSet;

use tributary_planner::RowKind;
use tributary_planner::time_join::TimeBound;

use super::aggregate_input::{boolean, event_time_ms};
use super::join::{Output, conform, gather, join_shape, pairs_schema};
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
                Ok(Message::Watermark { from, ts }) => inputs.advance(side, from, ts),
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
                    let held = if ts == END_OF_INPUT {
                        ts
                    } else {
                        ts.saturating_sub(delay)
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

/// One stored row of a side.
struct Stored {
    /// The arrow-row encoded row.
    row: Box<[u8]>,
    /// The watermark (ms) at which it leaves the state.
    expiry: i64,
    /// Whether it has matched (outer, SEMI and ANTI sides decide on it).
    matched: bool,
}

/// One input's state and how its rows' times are read.
struct Side {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
    /// Encodes whole rows.
    rows: RowConverter,
    /// Join key → rows, in arrival order.
    state: HashMap<Box<[u8]>, Vec<Stored>>,
    /// Expiry (ms) → keys with a row expiring then (a key may repeat).
    expiries: BTreeMap<i64, Vec<Box<[u8]>>>,
    /// The time column (event time, or `window_end`).
    time: usize,
    /// A row is late if `time + late_offset <= watermark`.
    late_offset: i64,
    /// A row expires at `time + expiry_offset`.
    expiry_offset: i64,
}

impl Side {
    /// Removes and returns the rows expired at `watermark`, by key.
    fn take_expired(&mut self, watermark: i64) -> Vec<(Box<[u8]>, Vec<Stored>)> {
        let expired = if watermark == i64::MAX {
            std::mem::take(&mut self.expiries)
        } else {
            let rest = self.expiries.split_off(&(watermark + 1));
            std::mem::replace(&mut self.expiries, rest)
        };
        let mut seen: HashSet<Box<[u8]>> = HashSet::new();
        let mut out = Vec::new();
        for key in expired.into_values().flatten() {
            if !seen.insert(key.clone()) {
                continue;
            }
            let Some(rows) = self.state.get_mut(&key) else {
                continue;
            };
            let (gone, kept): (Vec<Stored>, Vec<Stored>) = std::mem::take(rows)
                .into_iter()
                .partition(|r| r.expiry <= watermark);
            if kept.is_empty() {
                self.state.remove(&key);
            } else {
                *rows = kept;
            }
            if !gone.is_empty() {
                out.push((key, gone));
            }
        }
        out
    }

    /// Decodes encoded rows into columns of this side's schema.
    fn decode<'a>(&self, rows: impl Iterator<Item = &'a [u8]>) -> Result<Vec<ArrayRef>> {
        let parser = self.rows.parser();
        let columns =
            super::aggregate_input::decode_rows(&self.rows, rows.map(|r| parser.parse(r)))?;
        conform(columns, &self.schema)
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
        };
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
            let fields = schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect();
            Ok(Side {
                keys: spec.keys[i].clone(),
                schema: schema.clone(),
                rows: RowConverter::new(fields)?,
                state: HashMap::new(),
                expiries: BTreeMap::new(),
                time,
                late_offset: late_offsets[i],
                expiry_offset: expiry_offsets[i],
            })
        };
        let (padded, semi, output) = join_shape(spec.join_type, "streaming time-bounded")?;
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
            on_close,
            late,
        })
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
        let keyless = key_columns.is_empty();
        let key_of = |i: usize| -> &[u8] { if keyless { &[] } else { key_rows.row(i).data() } };
        let row_bytes = self.sides[s].rows.convert_columns(change.data.columns())?;
        let no_columns = change.data.num_columns() == 0;
        let row_of = |i: usize| -> &[u8] {
            if no_columns {
                &[]
            } else {
                row_bytes.row(i).data()
            }
        };

        // Late rows leave; rows that can never match go out alone or not at all.
        let mut out = Collected::default();
        let mut late: Vec<u32> = Vec::new();
        let mut live: Vec<usize> = Vec::with_capacity(n);
        let side = &self.sides[s];
        for (i, t) in times.iter().enumerate() {
            let joinable = self.null_equals_null || key_columns.iter().all(|c| c.is_valid(i));
            match t {
                Some(t) if t.saturating_add(side.late_offset) <= watermark => late.push(i as u32),
                Some(_) if joinable => live.push(i),
                _ => {
                    if self.emits_unmatched(s) {
                        self.push_alone(&mut out, s, i as u32);
                    }
                }
            }
        }
        self.late.record(&change.data, &late, watermark)?;

        // Candidates: the other side's rows under the live rows' keys.
        let mut cand_rows: Vec<&[u8]> = Vec::new();
        let mut range_of: HashMap<&[u8], (usize, usize)> = HashMap::new();
        if !self.on_close {
            for &i in &live {
                let key = key_of(i);
                if range_of.contains_key(key) {
                    continue;
                }
                let start = cand_rows.len();
                if let Some(rows) = self.sides[o].state.get(key) {
                    for r in rows {
                        cand_rows.push(&r.row);
                    }
                }
                range_of.insert(key, (start, cand_rows.len()));
            }
        }
        let cand_columns = self.sides[o].decode(cand_rows.iter().copied())?;
        // A candidate's position in its key's vector is its index minus the
        // start of the key's range.
        let n_cand = cand_rows.len();
        let mut pair_probe: Vec<u32> = Vec::new();
        let mut pair_cand: Vec<u32> = Vec::new();
        for &i in &live {
            if let Some((a, b)) = range_of.get(key_of(i)) {
                for j in *a..*b {
                    pair_probe.push(i as u32);
                    pair_cand.push(j as u32);
                }
            }
        }
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
        let passes = self.evaluate_filter(left_cols, right_cols, pl, pr)?;

        let mut new_matched = vec![false; n];
        let mut cand_matched_now: Vec<bool> = vec![false; n_cand];
        for (p, (&i, &j)) in pair_probe.iter().zip(&pair_cand).enumerate() {
            if !passes.as_ref().is_none_or(|m| m[p]) {
                continue;
            }
            new_matched[i as usize] = true;
            cand_matched_now[j as usize] = true;
            if self.output == Output::Both {
                let (l, r) = if s == 0 { (i, j) } else { (j, i) };
                out.push(Some(l), Some(r));
            }
        }
        // Candidates that matched: SEMI emits the kept row at its first match.
        let mut cand_out: Vec<u32> = Vec::new();
        let semi_kept_o = self.semi == Some((o, false));
        for &i in &live {
            let Some((a, b)) = range_of.get(key_of(i)) else {
                continue;
            };
            let Some(rows) = self.sides[o].state.get(key_of(i)) else {
                continue;
            };
            for j in *a..*b {
                if cand_matched_now[j] && !rows[j - a].matched {
                    cand_out.push(j as u32);
                }
            }
        }
        // Each key's range is visited once per live row with that key: dedup.
        cand_out.sort_unstable();
        cand_out.dedup();
        let (left_cols, right_cols): (Vec<ArrayRef>, Vec<ArrayRef>) = if s == 0 {
            (change.data.columns().to_vec(), cand_columns.clone())
        } else {
            (cand_columns.clone(), change.data.columns().to_vec())
        };
        for &j in &cand_out {
            if semi_kept_o {
                out.push_side(o, j);
            }
        }
        // Mark the candidates' matches in the state.
        for (key, (a, b)) in &range_of {
            if let Some(rows) = self.sides[o].state.get_mut(*key) {
                for j in *a..*b {
                    if cand_matched_now[j] {
                        rows[j - a].matched = true;
                    }
                }
            }
        }
        // The new rows: SEMI emits a kept row that matched; all are stored.
        let side = &mut self.sides[s];
        for &i in &live {
            if self.semi == Some((s, false)) && new_matched[i] {
                out.push_side(s, i as u32);
            }
            let Some(t) = times[i] else { continue };
            let expiry = t.saturating_add(side.expiry_offset);
            let key: Box<[u8]> = key_of(i).into();
            side.expiries.entry(expiry).or_default().push(key.clone());
            side.state.entry(key).or_default().push(Stored {
                row: row_of(i).into(),
                expiry,
                matched: new_matched[i],
            });
        }
        self.gather_output(&left_cols, &right_cols, out)
    }

    /// An output row of side `s`'s row `i` alone: NULL-padded (outer) or the
    /// kept row (SEMI / ANTI).
    fn push_alone(&self, out: &mut Collected, s: usize, i: u32) {
        out.push_side(s, i);
    }

    /// Frees the rows expired at `watermark`, emitting what they decide:
    /// a window join's closed windows; an interval join's unmatched outer
    /// or ANTI rows.
    fn expire(&mut self, watermark: i64) -> Result<ChangeBatch> {
        let expired = [
            self.sides[0].take_expired(watermark),
            self.sides[1].take_expired(watermark),
        ];
        if self.on_close {
            return self.close_windows(expired);
        }
        let mut alone: [Vec<&[u8]>; 2] = [Vec::new(), Vec::new()];
        for s in 0..2 {
            if !self.emits_unmatched(s) {
                continue;
            }
            for (_, rows) in &expired[s] {
                alone[s].extend(rows.iter().filter(|r| !r.matched).map(|r| &*r.row));
            }
        }
        let left = self.sides[0].decode(alone[0].iter().copied())?;
        let right = self.sides[1].decode(alone[1].iter().copied())?;
        let mut out = Collected::default();
        for (s, rows) in alone.iter().enumerate() {
            for i in 0..rows.len() {
                out.push_side(s, i as u32);
            }
        }
        self.gather_output(&left, &right, out)
    }

    /// A window join: joins each closed key's rows of both sides.
    fn close_windows(&self, expired: [Vec<(Box<[u8]>, Vec<Stored>)>; 2]) -> Result<ChangeBatch> {
        let [left_expired, right_expired] = expired;
        let mut right_of: HashMap<&[u8], &Vec<Stored>> = right_expired
            .iter()
            .map(|(k, rows)| (k.as_ref(), rows))
            .collect();
        let mut rows: [Vec<&[u8]>; 2] = [Vec::new(), Vec::new()];
        let (mut pl, mut pr): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());
        for (key, lrows) in &left_expired {
            let l0 = rows[0].len();
            rows[0].extend(lrows.iter().map(|r| &*r.row));
            let Some(rrows) = right_of.remove(key.as_ref()) else {
                continue;
            };
            let r0 = rows[1].len();
            rows[1].extend(rrows.iter().map(|r| &*r.row));
            for a in 0..lrows.len() {
                for b in 0..rrows.len() {
                    pl.push((l0 + a) as u32);
                    pr.push((r0 + b) as u32);
                }
            }
        }
        // Right rows of keys with no left row in the window.
        for (_, rrows) in right_of {
            rows[1].extend(rrows.iter().map(|r| &*r.row));
        }
        let left = self.sides[0].decode(rows[0].iter().copied())?;
        let right = self.sides[1].decode(rows[1].iter().copied())?;
        let passes = self.evaluate_filter(&left, &right, &pl, &pr)?;
        let mut matched = [vec![false; rows[0].len()], vec![false; rows[1].len()]];
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
        let Some(filter) = &self.filter else {
            return Ok(None);
        };
        if pl.is_empty() {
            return Ok(Some(vec![]));
        }
        let mut columns = gather(left, &UInt32Array::from(pl.to_vec()))?;
        columns.extend(gather(right, &UInt32Array::from(pr.to_vec()))?);
        let pairs = RecordBatch::try_new_with_options(
            self.pairs_schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(pl.len())),
        )?;
        let mask = boolean(filter.as_ref(), &pairs)?;
        Ok(Some(
            (0..mask.len())
                .map(|p| mask.is_valid(p) && mask.value(p))
                .collect(),
        ))
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
        let late = Arc::new(AtomicU64::new(0));
        let filter = match bound {
            TimeBound::Interval { .. } => Some(within_a_second()),
            TimeBound::Window { .. } => None,
        };
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
        [0, 1].map(|s| op.sides[s].state.values().map(Vec::len).sum())
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
}

//! SESSION window aggregation in STREAMING: assignment and aggregation in
//! one operator, because a row's session is only known once the session has
//! ended (later rows may bridge two sessions into one).
//!
//! Per key, the operator keeps the open sessions, each with its interval
//! [start, end) — end = last row's time + gap — and its accumulators. Rows
//! of a key within an input batch are first cut into sessions of their own
//! (sorted by time, cut where the gap is reached) and aggregated a slice at
//! a time; each such session is then merged with every open session it
//! overlaps, combining accumulator states with `merge_batch`. When the
//! watermark passes a session's last instant (end - 1 ms), its row is
//! emitted (`+I`) and its state freed. A row whose session would already be
//! closed, and which bridges no open session, is late: counted and dropped.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, TimestampMillisecondArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;
use tokio::task::JoinSet;

use tributary_planner::streaming::{SessionColumn, StreamAggregate};

use super::aggregate_input::{self, MinWatermark};
use super::late_rows::LateRows;
use super::{ChangeBatch, Message, Receiver, channel, conform_column, send_released};

/// What an instance needs to know.
pub(super) struct SessionSpec {
    pub time_index: usize,
    pub gap: i64,
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    pub outputs: Vec<SessionColumn>,
    pub aggregates: Vec<StreamAggregate>,
    /// Rows it rejects shape sessions but are not aggregated.
    pub row_filter: Option<Arc<dyn PhysicalExpr>>,
    pub schema: SchemaRef,
}

/// Starts one instance fed by `routers` inputs.
pub(super) fn start(
    mut input: Receiver,
    routers: usize,
    spec: SessionSpec,
    late: LateRows,
    tasks: &mut JoinSet<()>,
) -> Result<Receiver> {
    let (tx, rx) = channel();
    let mut op = SessionAggregate {
        converter: None,
        spec,
        sessions: HashMap::new(),
        watermark: MinWatermark::new(routers),
        late,
    };
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

/// One open session.
struct Session {
    start: i64,
    end: i64,
    /// Rows that passed the row filter (a session with none has no result).
    counted: u64,
    accumulators: Vec<Box<dyn Accumulator>>,
}

struct SessionAggregate {
    spec: SessionSpec,
    /// Encodes the PARTITION BY key (created from the first batch's key types).
    converter: Option<RowConverter>,
    /// Open sessions per key, in no particular order.
    sessions: HashMap<Vec<u8>, Vec<Session>>,
    /// The minimum watermark over the routers feeding this instance.
    watermark: MinWatermark,
    late: LateRows,
}

impl SessionAggregate {
    fn process(&mut self, change: &ChangeBatch) -> Result<()> {
        let n = change.num_rows();
        if n == 0 {
            return Ok(());
        }
        let data = &change.data;
        let keys = self
            .spec
            .keys
            .iter()
            .map(|e| {
                e.evaluate(data)?
                    .into_array(n)
                    .and_then(super::aggregate_input::key_column)
            })
            .collect::<Result<Vec<_>>>()?;
        if self.converter.is_none() {
            self.converter = Some(RowConverter::new(
                keys.iter()
                    .map(|k| SortField::new(k.data_type().clone()))
                    .collect(),
            )?);
        }
        let Some(converter) = self.converter.as_ref() else {
            return Err(DataFusionError::Internal(
                "SESSION aggregate: the key converter was not made".into(),
            ));
        };
        let key_rows = if keys.is_empty() {
            None
        } else {
            Some(converter.convert_columns(&keys)?)
        };
        let times = aggregate_input::event_time_ms(data.column(self.spec.time_index))?;
        let args = aggregate_input::arguments(&self.spec.aggregates, data)?;
        let row_mask = self
            .spec
            .row_filter
            .as_ref()
            .map(|f| aggregate_input::boolean(f.as_ref(), data))
            .transpose()?;
        // Each aggregate's mask: its FILTER clause and the row filter.
        let filters = aggregate_input::filter_masks(&self.spec.aggregates, data)?
            .into_iter()
            .map(|own| {
                Ok(match (own, &row_mask) {
                    (Some(a), Some(b)) => Some(arrow::compute::and(&a, b)?),
                    (a, b) => a.or_else(|| b.clone()),
                })
            })
            .collect::<Result<Vec<_>>>()?;

        // Rows per key, NULL times left out (they are in no session).
        let mut by_key: HashMap<&[u8], Vec<u32>> = HashMap::new();
        for i in 0..n {
            if times.is_null(i) {
                continue;
            }
            let key: &[u8] = match &key_rows {
                Some(rows) => rows.row(i).data(),
                None => &[],
            };
            by_key.entry(key).or_default().push(i as u32);
        }
        let gap = self.spec.gap;
        let mut late: Vec<u32> = Vec::new();
        for (key, mut rows) in by_key {
            rows.sort_by_key(|r| times.value(*r as usize));
            // Cut the key's rows into sessions of their own.
            let mut start = 0;
            while start < rows.len() {
                let mut end = start + 1;
                while end < rows.len()
                    && times.value(rows[end] as usize) - times.value(rows[end - 1] as usize) < gap
                {
                    end += 1;
                }
                let slice = &rows[start..end];
                let (first, last) = (
                    times.value(slice[0] as usize),
                    times.value(slice[slice.len() - 1] as usize),
                );
                let counted = match &row_mask {
                    Some(m) => slice
                        .iter()
                        .filter(|r| m.is_valid(**r as usize) && m.value(**r as usize))
                        .count() as u64,
                    None => slice.len() as u64,
                };
                if self.add(key, first, last + gap, slice, counted, &args, &filters)? {
                    late.extend_from_slice(slice);
                }
                start = end;
            }
        }
        late.sort_unstable();
        self.late.record(data, &late, self.watermark.current())
    }

    /// Adds a session [start, end) made of `rows`, merging it with the open
    /// sessions of `key` it overlaps. Returns `true` if the rows are late
    /// (their session ended before the watermark and bridges no open one):
    /// they are left out.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        key: &[u8],
        start: i64,
        end: i64,
        rows: &[u32],
        counted: u64,
        args: &[Vec<ArrayRef>],
        filters: &[Option<BooleanArray>],
    ) -> Result<bool> {
        let open = self.sessions.entry(key.to_vec()).or_default();
        let overlaps = |s: &Session| s.start < end && start < s.end;
        if !open.iter().any(overlaps) && end.saturating_sub(1) <= self.watermark.current() {
            if open.is_empty() {
                self.sessions.remove(key);
            }
            return Ok(true);
        }
        let mut session = Session {
            start,
            end,
            counted,
            accumulators: self
                .spec
                .aggregates
                .iter()
                .map(|a| a.expr.create_accumulator())
                .collect::<Result<Vec<_>>>()?,
        };
        for (j, acc) in session.accumulators.iter_mut().enumerate() {
            let selected: Vec<u32> = match &filters[j] {
                Some(mask) => rows
                    .iter()
                    .copied()
                    .filter(|r| mask.is_valid(*r as usize) && mask.value(*r as usize))
                    .collect(),
                None => rows.to_vec(),
            };
            if selected.is_empty() {
                continue;
            }
            let idx = UInt32Array::from(selected);
            let taken = args[j]
                .iter()
                .map(|a| take(a.as_ref(), &idx, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            acc.update_batch(&taken)?;
        }
        let mut kept = Vec::with_capacity(open.len());
        for mut other in open.drain(..) {
            if other.start < session.end && session.start < other.end {
                session.start = session.start.min(other.start);
                session.end = session.end.max(other.end);
                session.counted += other.counted;
                for (mine, theirs) in session
                    .accumulators
                    .iter_mut()
                    .zip(other.accumulators.iter_mut())
                {
                    let state = theirs
                        .state()?
                        .into_iter()
                        .map(|v| v.to_array())
                        .collect::<Result<Vec<_>>>()?;
                    mine.merge_batch(&state)?;
                }
            } else {
                kept.push(other);
            }
        }
        kept.push(session);
        *open = kept;
        Ok(false)
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
        let mut fired: Vec<(Vec<u8>, Session)> = Vec::new();
        self.sessions.retain(|key, open| {
            let (done, keep): (Vec<Session>, Vec<Session>) =
                open.drain(..).partition(|s| s.end.saturating_sub(1) <= min);
            fired.extend(
                done.into_iter()
                    .filter(|s| s.counted > 0)
                    .map(|s| (key.clone(), s)),
            );
            *open = keep;
            !open.is_empty()
        });
        Ok((self.output(fired)?, self.watermark.current()))
    }

    fn output(&self, fired: Vec<(Vec<u8>, Session)>) -> Result<ChangeBatch> {
        let rows = fired.len();
        let schema = &self.spec.schema;
        let key_columns: Vec<ArrayRef> = match (&self.converter, self.spec.keys.is_empty(), rows) {
            (Some(conv), false, r) if r > 0 => {
                let parser = conv.parser();
                aggregate_input::decode_rows(conv, fired.iter().map(|(k, _)| parser.parse(k)))?
            }
            _ => vec![],
        };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for (i, out) in self.spec.outputs.iter().enumerate() {
            let want = schema.field(i).data_type();
            let array: ArrayRef = match out {
                SessionColumn::Key(k) if rows > 0 => key_columns[*k].clone(),
                SessionColumn::Key(_) => arrow::array::new_empty_array(want),
                SessionColumn::Start => Arc::new(TimestampMillisecondArray::from_iter_values(
                    fired.iter().map(|(_, s)| s.start),
                )),
                SessionColumn::End => Arc::new(TimestampMillisecondArray::from_iter_values(
                    fired.iter().map(|(_, s)| s.end),
                )),
                SessionColumn::Time => Arc::new(TimestampMillisecondArray::from_iter_values(
                    fired.iter().map(|(_, s)| s.end - 1),
                )),
            };
            columns.push(conform_column(array, want)?);
        }
        let offset = columns.len();
        let mut fired = fired;
        for j in 0..self.spec.aggregates.len() {
            let want = schema.field(offset + j).data_type();
            let array = if rows == 0 {
                arrow::array::new_empty_array(want)
            } else {
                let values = fired
                    .iter_mut()
                    .map(|(_, s)| s.accumulators[j].evaluate())
                    .collect::<Result<Vec<ScalarValue>>>()?;
                ScalarValue::iter_to_array(values)?
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

//! Window aggregation (Flink's `WindowAggregate`): `GROUP BY window_start,
//! window_end, ...` over a window TVF.
//!
//! Each open window (one `(window_start, window_end)` pair) keeps the same
//! two structures DataFusion's hash aggregate keeps: a `GroupValues` that
//! interns the window's other key columns batch-at-a-time and returns a
//! group index per row, and per aggregate a vectorized `GroupsAccumulator`
//! over those indices. A batch is split by window once (a counting sort over
//! its few windows: one `take` per column, then zero-copy slices; no split
//! at all when the batch lies in one window, the common case), and each
//! window's slice is folded in with one `intern` and one `update_batch` per
//! aggregate — no per-row hashing of encoded keys.
//!
//! When the watermark passes a window's last instant (`window_end` - 1 ms)
//! the window's rows are emitted once, as `+I`, straight from its
//! `GroupValues` and accumulators (`EmitTo::All`), with `window_start` and
//! `window_end` as constant columns, and its state is freed — so state stays
//! bounded by the windows still open. A row for a window that has already
//! been emitted is late: it is dropped and counted (the count is reported
//! when the query ends, the row kept in `system.late_rows`), never lost
//! silently.
//!
//! The watermark of an instance is the minimum over the routers feeding it;
//! at the end of the input it is +infinity and every window fires.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;
use tokio::task::JoinSet;

use tributary_planner::streaming::StreamAggregate;

use super::aggregate_input::{self, MinWatermark};
use super::late_rows::LateRows;
use super::{ChangeBatch, Message, Receiver, channel, conform_column, exchange, send_released};

/// What one instance computes: the planner's `WindowAggregate` node.
pub(super) struct WindowSpec {
    /// The group expressions, `window_start` and `window_end` among them.
    pub group: Vec<Arc<dyn PhysicalExpr>>,
    pub aggregates: Vec<StreamAggregate>,
    /// Which group expression is `window_start`.
    pub window_start: usize,
    /// Which group expression is `window_end`.
    pub window_end: usize,
    /// Output: the group columns, then one column per aggregate.
    pub schema: SchemaRef,
}

/// Starts one instance; `routers` is how many inputs feed it watermarks.
pub(super) fn start(
    mut input: Receiver,
    routers: usize,
    spec: WindowSpec,
    late: LateRows,
    tasks: &mut JoinSet<()>,
) -> Result<Receiver> {
    let (tx, rx) = channel();
    let mut op = WindowAggregate::try_new(spec, routers, late)?;
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

/// One open window: its keys' group indices and the aggregates' state.
struct Window {
    /// Interns the key columns other than `window_start` / `window_end`;
    /// None when there are none (the window is one group).
    keys: Option<Box<dyn GroupValues>>,
    /// Groups so far (with no key columns: 0 or 1).
    groups: usize,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    /// The window's `window_start` and `window_end`, as the input typed them.
    start: ScalarValue,
    end: ScalarValue,
}

struct WindowAggregate {
    spec: WindowSpec,
    /// The key columns other than `window_start` / `window_end` (indices
    /// into `spec.group`) and their schema.
    key_columns: Vec<usize>,
    key_schema: SchemaRef,
    /// Open windows by (`window_end`, `window_start`) in ms.
    windows: BTreeMap<(i64, i64), Window>,
    /// The minimum watermark over the routers feeding this instance.
    watermark: MinWatermark,
    late: LateRows,
    /// Reused for each window's group indices.
    group_indices: Vec<usize>,
}

/// The columns of one batch (or one window's share of it) that the state
/// reads: the key columns, each aggregate's arguments and FILTER mask.
struct Columns {
    keys: Vec<ArrayRef>,
    args: Vec<Vec<ArrayRef>>,
    filters: Vec<Option<BooleanArray>>,
}

impl Columns {
    fn take(&self, indices: &UInt32Array) -> Result<Self> {
        let take_all = |cols: &[ArrayRef]| {
            cols.iter()
                .map(|c| take(c.as_ref(), indices, None))
                .collect::<std::result::Result<Vec<_>, _>>()
        };
        Ok(Self {
            keys: take_all(&self.keys)?,
            args: self
                .args
                .iter()
                .map(|a| take_all(a))
                .collect::<std::result::Result<_, _>>()?,
            filters: self
                .filters
                .iter()
                .map(|f| match f {
                    Some(f) => Ok(Some(take(f, indices, None)?.as_boolean().clone())),
                    None => Ok(None),
                })
                .collect::<std::result::Result<_, arrow::error::ArrowError>>()?,
        })
    }

    fn slice(&self, offset: usize, len: usize) -> Self {
        Self {
            keys: self.keys.iter().map(|c| c.slice(offset, len)).collect(),
            args: self
                .args
                .iter()
                .map(|a| a.iter().map(|c| c.slice(offset, len)).collect())
                .collect(),
            filters: self
                .filters
                .iter()
                .map(|f| f.as_ref().map(|f| f.slice(offset, len)))
                .collect(),
        }
    }
}

impl WindowAggregate {
    fn try_new(spec: WindowSpec, routers: usize, late: LateRows) -> Result<Self> {
        let key_columns: Vec<usize> = (0..spec.group.len())
            .filter(|i| *i != spec.window_start && *i != spec.window_end)
            .collect();
        let key_schema = Arc::new(Schema::new(
            key_columns
                .iter()
                .map(|i| spec.schema.field(*i).clone())
                .collect::<Vec<_>>(),
        ));
        Ok(Self {
            spec,
            key_columns,
            key_schema,
            windows: BTreeMap::new(),
            watermark: MinWatermark::new(routers),
            late,
            group_indices: Vec::new(),
        })
    }

    fn new_window(&self, start: ScalarValue, end: ScalarValue) -> Result<Window> {
        let keys = if self.key_columns.is_empty() {
            None
        } else {
            Some(new_group_values(
                self.key_schema.clone(),
                &GroupOrdering::None,
            )?)
        };
        let accumulators = self
            .spec
            .aggregates
            .iter()
            .map(|a| aggregate_input::groups_accumulator(&a.expr))
            .collect::<Result<Vec<_>>>()?;
        Ok(Window {
            keys,
            groups: 0,
            accumulators,
            start,
            end,
        })
    }

    fn process(&mut self, change: &ChangeBatch) -> Result<()> {
        let n = change.num_rows();
        if n == 0 {
            return Ok(());
        }
        // The keyed exchange in front appended the evaluated group columns.
        let (data, group) = exchange::split_keys(&change.data, self.spec.group.len())?;
        let starts = aggregate_input::event_time_ms(&group[self.spec.window_start])?;
        let ends = aggregate_input::event_time_ms(&group[self.spec.window_end])?;
        let columns = Columns {
            keys: self.key_columns.iter().map(|i| group[*i].clone()).collect(),
            args: aggregate_input::arguments(&self.spec.aggregates, &data)?,
            filters: aggregate_input::filter_masks(&self.spec.aggregates, &data)?,
        };
        let watermark = self.watermark.current();
        let is_late = |end: i64| end.saturating_sub(1) <= watermark;
        let window_of = |row: usize| -> Result<(i64, i64)> {
            if starts.is_null(row) || ends.is_null(row) {
                return Err(DataFusionError::Internal(
                    "a window aggregate row without window_start/window_end".into(),
                ));
            }
            Ok((ends.value(row), starts.value(row)))
        };
        let window_values = |row: usize| -> Result<(ScalarValue, ScalarValue)> {
            Ok((
                ScalarValue::try_from_array(&group[self.spec.window_start], row)?,
                ScalarValue::try_from_array(&group[self.spec.window_end], row)?,
            ))
        };

        // The common case: the whole batch lies in one window.
        let one_window = starts.null_count() == 0
            && ends.null_count() == 0
            && arrow::compute::min(&starts) == arrow::compute::max(&starts)
            && arrow::compute::min(&ends) == arrow::compute::max(&ends);
        if one_window {
            let window = window_of(0)?;
            if is_late(window.0) {
                let all: Vec<u32> = (0..n as u32).collect();
                return self.late.record(&data, &all, watermark);
            }
            if !self.windows.contains_key(&window) {
                let (start, end) = window_values(0)?;
                let w = self.new_window(start, end)?;
                self.windows.insert(window, w);
            }
            return self.fold(window, &columns, n);
        }

        // Several windows: each row's slot among the batch's windows (a
        // batch touches few, so a short list beats a map), late rows apart.
        let mut touched: Vec<(i64, i64)> = Vec::new();
        let mut slot_of_row: Vec<u32> = Vec::with_capacity(n);
        let mut late: Vec<u32> = Vec::new();
        const LATE: u32 = u32::MAX;
        let mut last: Option<((i64, i64), u32)> = None;
        for row in 0..n {
            let window = window_of(row)?;
            let slot = match last {
                Some((w, slot)) if w == window => slot,
                _ => {
                    let slot = if is_late(window.0) {
                        LATE
                    } else {
                        match touched.iter().position(|w| *w == window) {
                            Some(s) => s as u32,
                            None => {
                                if !self.windows.contains_key(&window) {
                                    let (start, end) = window_values(row)?;
                                    let w = self.new_window(start, end)?;
                                    self.windows.insert(window, w);
                                }
                                touched.push(window);
                                (touched.len() - 1) as u32
                            }
                        }
                    };
                    last = Some((window, slot));
                    slot
                }
            };
            if slot == LATE {
                late.push(row as u32);
            }
            slot_of_row.push(slot);
        }
        self.late.record(&data, &late, watermark)?;
        if touched.is_empty() {
            return Ok(());
        }
        // Order the rows by window (a counting sort), gather every column
        // once in that order; each window's rows are then a zero-copy slice.
        let mut offsets = vec![0usize; touched.len() + 1];
        for slot in &slot_of_row {
            if *slot != LATE {
                offsets[*slot as usize + 1] += 1;
            }
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        let mut next = offsets.clone();
        let mut order = vec![0u32; offsets[touched.len()]];
        for (row, slot) in slot_of_row.iter().enumerate() {
            if *slot != LATE {
                order[next[*slot as usize]] = row as u32;
                next[*slot as usize] += 1;
            }
        }
        let ordered = columns.take(&UInt32Array::from(order))?;
        for (slot, window) in touched.into_iter().enumerate() {
            let rows = offsets[slot + 1] - offsets[slot];
            self.fold(window, &ordered.slice(offsets[slot], rows), rows)?;
        }
        Ok(())
    }

    /// Folds `columns` (`rows` rows of one open window) into that window's
    /// state.
    fn fold(&mut self, window: (i64, i64), columns: &Columns, rows: usize) -> Result<()> {
        let Some(w) = self.windows.get_mut(&window) else {
            return Err(DataFusionError::Internal("window vanished".into()));
        };
        let indices = &mut self.group_indices;
        match &mut w.keys {
            Some(keys) => {
                keys.intern(&columns.keys, indices)?;
                w.groups = keys.len();
            }
            None => {
                // No key columns: every row is the window's one group.
                indices.clear();
                indices.resize(rows, 0);
                w.groups = 1;
            }
        }
        for (j, acc) in w.accumulators.iter_mut().enumerate() {
            acc.update_batch(
                &columns.args[j],
                indices,
                columns.filters[j].as_ref(),
                w.groups,
            )?;
        }
        Ok(())
    }

    /// Takes a watermark from input `from`; returns the windows it closes
    /// and the new watermark, if it advanced.
    fn advance(&mut self, from: usize, ts: i64) -> Result<Option<(ChangeBatch, i64)>> {
        if self.watermark.advance(from, ts)?.is_none() {
            return Ok(None);
        }
        self.fire().map(Some)
    }

    /// Input `from` went idle; returns what `advance` does if that moved the
    /// watermark.
    fn idle(&mut self, from: usize) -> Result<Option<(ChangeBatch, i64)>> {
        if self.watermark.idle(from)?.is_none() {
            return Ok(None);
        }
        self.fire().map(Some)
    }

    /// Emits and frees the windows the current watermark closes.
    fn fire(&mut self) -> Result<(ChangeBatch, i64)> {
        // Windows whose last instant (end - 1) is at or before the watermark.
        let open = match self.watermark.current().checked_add(2) {
            Some(first_open_end) => self.windows.split_off(&(first_open_end, i64::MIN)),
            None => BTreeMap::new(),
        };
        let fired = std::mem::replace(&mut self.windows, open);
        let batches = fired
            .into_values()
            .map(|w| self.output(w))
            .collect::<Result<Vec<_>>>()?;
        let data = arrow::compute::concat_batches(&self.spec.schema, &batches)?;
        Ok((ChangeBatch::inserts(data), self.watermark.current()))
    }

    /// A closed window's rows: its keys in group-index order (with the
    /// window's start and end), then each aggregate's values for all of them.
    fn output(&self, window: Window) -> Result<RecordBatch> {
        let Window {
            keys,
            groups,
            mut accumulators,
            start,
            end,
        } = window;
        let mut keys = match keys {
            Some(mut k) => k
                .emit(EmitTo::All)?
                .into_iter()
                .map(aggregate_input::zero_null_slots)
                .collect::<Result<Vec<_>>>()?,
            None => vec![],
        }
        .into_iter();
        let schema = &self.spec.schema;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for i in 0..self.spec.group.len() {
            let column = if i == self.spec.window_start {
                start.to_array_of_size(groups)?
            } else if i == self.spec.window_end {
                end.to_array_of_size(groups)?
            } else {
                keys.next().ok_or_else(|| {
                    DataFusionError::Internal("a window emitted too few key columns".into())
                })?
            };
            columns.push(conform_column(column, schema.field(i).data_type())?);
        }
        let offset = columns.len();
        for (j, acc) in accumulators.iter_mut().enumerate() {
            let array = acc.evaluate(EmitTo::All)?;
            columns.push(conform_column(array, schema.field(offset + j).data_type())?);
        }
        Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(groups)),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    use arrow::array::{Int64Array, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, TimeUnit};
    use datafusion::functions_aggregate::count::count_udaf;
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::Column;

    fn ts() -> DataType {
        DataType::Timestamp(TimeUnit::Millisecond, None)
    }

    /// Input rows: `window_start, window_end, k, v`.
    fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("window_start", ts(), false),
            Field::new("window_end", ts(), false),
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    /// `SELECT window_start, window_end[, k], COUNT(v), SUM(v) ... GROUP BY
    /// window_start, window_end[, k]`, one router; its late-row counter.
    fn op(by_key: bool) -> (WindowAggregate, Arc<AtomicU64>) {
        let input = input_schema();
        let agg = |f, name: &str| {
            let e = AggregateExprBuilder::new(f, vec![Arc::new(Column::new("v", 3))])
                .schema(input.clone())
                .alias(name)
                .build()
                .unwrap();
            StreamAggregate {
                expr: Arc::new(e),
                filter: None,
                retraction: tributary_planner::streaming::Retraction::NotNeeded,
            }
        };
        let mut group: Vec<Arc<dyn PhysicalExpr>> = vec![
            Arc::new(Column::new("window_start", 0)),
            Arc::new(Column::new("window_end", 1)),
        ];
        let mut fields = vec![
            Field::new("window_start", ts(), false),
            Field::new("window_end", ts(), false),
        ];
        if by_key {
            group.push(Arc::new(Column::new("k", 2)));
            fields.push(Field::new("k", DataType::Int64, true));
        }
        fields.push(Field::new("n", DataType::Int64, false));
        fields.push(Field::new("total", DataType::Int64, true));
        let spec = WindowSpec {
            group,
            aggregates: vec![agg(count_udaf(), "n"), agg(sum_udaf(), "total")],
            window_start: 0,
            window_end: 1,
            schema: Arc::new(Schema::new(fields)),
        };
        let (late, count) = LateRows::counting();
        (WindowAggregate::try_new(spec, 1, late).unwrap(), count)
    }

    /// Rows `(window_start, window_end, k, v)` as the keyed exchange hands
    /// them over: the input's columns, then the group columns.
    fn rows(op: &WindowAggregate, rows: &[(i64, i64, Option<i64>, i64)]) -> ChangeBatch {
        let start: ArrayRef = Arc::new(TimestampMillisecondArray::from_iter_values(
            rows.iter().map(|r| r.0),
        ));
        let end: ArrayRef = Arc::new(TimestampMillisecondArray::from_iter_values(
            rows.iter().map(|r| r.1),
        ));
        let k: ArrayRef = Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2)));
        let v: ArrayRef = Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3)));
        let mut fields = input_schema().fields().to_vec();
        let mut columns = vec![start.clone(), end.clone(), k.clone(), v];
        for (i, c) in [start, end, k].into_iter().enumerate() {
            if i < op.spec.group.len() {
                fields.push(Arc::new(Field::new(
                    format!("__key_{i}"),
                    c.data_type().clone(),
                    true,
                )));
                columns.push(c);
            }
        }
        let data = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        ChangeBatch::inserts(data)
    }

    /// The rows a watermark at `ts` fires, as sorted `start|end|...` lines.
    fn fire(op: &mut WindowAggregate, ts: i64) -> Vec<String> {
        let Some((out, watermark)) = op.advance(0, ts).unwrap() else {
            return vec![];
        };
        assert_eq!(watermark, ts);
        let mut lines: Vec<String> = (0..out.num_rows())
            .map(|i| {
                (0..out.data.num_columns())
                    .map(|c| {
                        arrow::util::display::array_value_to_string(out.data.column(c), i).unwrap()
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn a_window_fires_its_keys_once_and_frees_them() {
        let (mut op, late) = op(true);
        // One batch over two windows, then one inside the second.
        op.process(&rows(
            &op,
            &[
                (0, 10, Some(1), 5),
                (10, 20, Some(1), 7),
                (0, 10, Some(2), 1),
                (0, 10, Some(1), 2),
                (0, 10, None, 4),
            ],
        ))
        .unwrap();
        op.process(&rows(&op, &[(10, 20, Some(3), 1), (10, 20, Some(1), 1)]))
            .unwrap();
        assert_eq!(op.windows.len(), 2);
        // The first window's last instant is 9 ms: a watermark of 8 fires nothing.
        assert!(fire(&mut op, 8).is_empty());
        assert_eq!(
            fire(&mut op, 9),
            [
                "1970-01-01T00:00:00|1970-01-01T00:00:00.010|1|2|7",
                "1970-01-01T00:00:00|1970-01-01T00:00:00.010|2|1|1",
                "1970-01-01T00:00:00|1970-01-01T00:00:00.010||1|4",
            ]
        );
        assert_eq!(op.windows.len(), 1, "the fired window's state is freed");
        // A row for the closed window is late: counted, not folded in.
        op.process(&rows(&op, &[(0, 10, Some(1), 100), (10, 20, Some(1), 1)]))
            .unwrap();
        assert_eq!(late.load(Ordering::Relaxed), 1);
        assert_eq!(
            fire(&mut op, crate::streaming::END_OF_INPUT),
            [
                "1970-01-01T00:00:00.010|1970-01-01T00:00:00.020|1|3|9",
                "1970-01-01T00:00:00.010|1970-01-01T00:00:00.020|3|1|1",
            ]
        );
        assert!(op.windows.is_empty());
    }

    #[test]
    fn without_other_keys_a_window_is_one_group() {
        let (mut op, late) = op(false);
        op.process(&rows(&op, &[(0, 10, None, 1), (0, 10, None, 2)]))
            .unwrap();
        op.process(&rows(&op, &[(0, 10, None, 3), (5, 15, None, 4)]))
            .unwrap();
        assert_eq!(
            fire(&mut op, 100),
            [
                "1970-01-01T00:00:00.005|1970-01-01T00:00:00.015|1|4",
                "1970-01-01T00:00:00|1970-01-01T00:00:00.010|3|6",
            ]
        );
        // A whole batch behind the watermark is late at once.
        op.process(&rows(&op, &[(0, 10, None, 1), (0, 10, None, 1)]))
            .unwrap();
        assert_eq!(late.load(Ordering::Relaxed), 2);
        assert!(op.windows.is_empty());
    }
}

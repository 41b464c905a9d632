//! Window aggregation (Flink's `WindowAggregate`): `GROUP BY window_start,
//! window_end, ...` over a window TVF.
//!
//! Each open window keeps DataFusion's vectorized, columnar
//! `GroupsAccumulator`s (the ones its hash aggregate uses): a group index per
//! key of the window, and per aggregate one array-like state over those
//! indices. A batch updates each window it touches with one `update_batch`
//! per aggregate. When the watermark passes the window's last instant
//! (`window_end` - 1 ms) the window's rows are emitted once, as `+I`, straight
//! from the accumulators' arrays, and its state is freed — so state stays
//! bounded by the windows still open. A row for a window that has already been emitted
//! is late: it is dropped and counted (the count is reported when the query
//! ends), never lost silently.
//!
//! The watermark of an instance is the minimum over the routers feeding it;
//! at the end of the input it is +infinity and every window fires.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, TimestampMillisecondArray, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, SortField};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};
use tokio::task::JoinSet;

use tributary_planner::streaming::StreamAggregate;

use super::aggregate_input::{self, MinWatermark};
use super::late_rows::LateRows;
use super::{ChangeBatch, Message, Receiver, channel, send_released};

/// Starts one instance; `routers` is how many inputs feed it watermarks.
#[allow(clippy::too_many_arguments)]
pub(super) fn start(
    mut input: Receiver,
    routers: usize,
    group: Vec<Arc<dyn PhysicalExpr>>,
    aggregates: Vec<StreamAggregate>,
    window_end: usize,
    schema: SchemaRef,
    late: LateRows,
    tasks: &mut JoinSet<()>,
) -> Result<Receiver> {
    let (tx, rx) = channel();
    let fields = schema.fields()[..group.len()]
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect();
    let mut op = WindowAggregate {
        keys: RowConverter::new(fields)?,
        group,
        aggregates,
        window_end,
        schema,
        windows: BTreeMap::new(),
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

/// One open window: its keys' group indices and the aggregates' state.
struct Window {
    /// Group index of each key (arrow-row encoded) in this window.
    slots: HashMap<Box<[u8]>, u32>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
}

struct WindowAggregate {
    group: Vec<Arc<dyn PhysicalExpr>>,
    aggregates: Vec<StreamAggregate>,
    window_end: usize,
    schema: SchemaRef,
    keys: RowConverter,
    /// Open windows by `window_end` (ms).
    windows: BTreeMap<i64, Window>,
    /// The minimum watermark over the routers feeding this instance.
    watermark: MinWatermark,
    late: LateRows,
}

/// DataFusion's groups accumulator for `expr`, or its row accumulators
/// behind DataFusion's adapter when it has none.
fn groups_accumulator(expr: &Arc<AggregateFunctionExpr>) -> Result<Box<dyn GroupsAccumulator>> {
    if expr.groups_accumulator_supported() {
        return expr.create_groups_accumulator();
    }
    let expr = expr.clone();
    Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
        expr.create_accumulator()
    })))
}

impl WindowAggregate {
    fn process(&mut self, change: &ChangeBatch) -> Result<()> {
        let n = change.num_rows();
        if n == 0 {
            return Ok(());
        }
        let columns = self
            .group
            .iter()
            .map(|e| {
                e.evaluate(&change.data)?
                    .into_array(n)
                    .and_then(super::aggregate_input::key_column)
            })
            .collect::<Result<Vec<_>>>()?;
        let ends = window_ends(&columns[self.window_end])?;
        let rows = self.keys.convert_columns(&columns)?;
        let args = aggregate_input::arguments(&self.aggregates, &change.data)?;
        let filters = aggregate_input::filter_masks(&self.aggregates, &change.data)?;

        // Each row's window and group index in it; late rows counted and
        // left out. A batch touches few windows: a short list beats a map.
        let watermark = self.watermark.current();
        let mut touched: Vec<(i64, Vec<u32>, Vec<usize>)> = Vec::new();
        let mut late: Vec<u32> = Vec::new();
        for i in 0..n {
            let end = ends.value(i);
            if end.saturating_sub(1) <= watermark {
                late.push(i as u32);
                continue;
            }
            let window = match self.windows.get_mut(&end) {
                Some(w) => w,
                None => {
                    let accumulators = self
                        .aggregates
                        .iter()
                        .map(|a| groups_accumulator(&a.expr))
                        .collect::<Result<Vec<_>>>()?;
                    self.windows.entry(end).or_insert(Window {
                        slots: HashMap::new(),
                        accumulators,
                    })
                }
            };
            let key = rows.row(i).data();
            let next = window.slots.len() as u32;
            let group = match window.slots.get(key) {
                Some(g) => *g,
                None => {
                    window.slots.insert(key.into(), next);
                    next
                }
            };
            let slot = match touched.iter().position(|(e, _, _)| *e == end) {
                Some(slot) => slot,
                None => {
                    touched.push((end, Vec::new(), Vec::new()));
                    touched.len() - 1
                }
            };
            touched[slot].1.push(i as u32);
            touched[slot].2.push(group as usize);
        }
        self.late.record(&change.data, &late, watermark)?;
        for (end, indices, groups) in touched {
            let window = self
                .windows
                .get_mut(&end)
                .ok_or_else(|| DataFusionError::Internal("window vanished".into()))?;
            let total_groups = window.slots.len();
            let idx = UInt32Array::from(indices);
            for (j, acc) in window.accumulators.iter_mut().enumerate() {
                let taken = args[j]
                    .iter()
                    .map(|a| take(a.as_ref(), &idx, None))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let filter = match &filters[j] {
                    Some(mask) => Some(take(mask, &idx, None)?.as_boolean().clone()),
                    None => None,
                };
                acc.update_batch(&taken, &groups, filter.as_ref(), total_groups)?;
            }
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
            Some(first_open_end) => self.windows.split_off(&first_open_end),
            None => BTreeMap::new(),
        };
        let fired = std::mem::replace(&mut self.windows, open);
        let batches = fired
            .into_values()
            .map(|w| self.output(w))
            .collect::<Result<Vec<_>>>()?;
        let data = arrow::compute::concat_batches(&self.schema, &batches)?;
        Ok((ChangeBatch::inserts(data), self.watermark.current()))
    }

    /// A closed window's rows: its keys in group-index order, then each
    /// aggregate's values for all of them.
    fn output(&self, window: Window) -> Result<RecordBatch> {
        let Window {
            slots,
            mut accumulators,
        } = window;
        let rows = slots.len();
        let mut ordered: Vec<&[u8]> = vec![&[]; rows];
        for (key, group) in &slots {
            ordered[*group as usize] = key;
        }
        let parser = self.keys.parser();
        let mut columns: Vec<ArrayRef> =
            aggregate_input::decode_rows(&self.keys, ordered.iter().map(|k| parser.parse(k)))?;
        let offset = columns.len();
        for (j, acc) in accumulators.iter_mut().enumerate() {
            let want = self.schema.field(offset + j).data_type();
            let array = acc.evaluate(EmitTo::All)?;
            columns.push(if array.data_type() == want {
                array
            } else {
                cast(&array, want)?
            });
        }
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }
}

/// The `window_end` column as milliseconds.
fn window_ends(column: &ArrayRef) -> Result<TimestampMillisecondArray> {
    let tz = match column.data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        other => {
            return Err(DataFusionError::Internal(format!(
                "window_end is {other}, not a timestamp"
            )));
        }
    };
    let ms = cast(column, &DataType::Timestamp(TimeUnit::Millisecond, tz))?;
    Ok(ms
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .expect("cast to ms")
        .clone())
}

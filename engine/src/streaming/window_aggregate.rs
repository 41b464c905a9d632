//! Window aggregation (Flink's `WindowAggregate`): `GROUP BY window_start,
//! window_end, ...` over a window TVF.
//!
//! The accumulators of each (window, key) are kept until the watermark passes
//! the window's last instant (`window_end` - 1 ms); then the window's rows are
//! emitted once, as `+I`, and its state is freed — so state stays bounded by
//! the windows still open. A row for a window that has already been emitted
//! is late: it is dropped and counted (the count is reported when the query
//! ends), never lost silently.
//!
//! The watermark of an instance is the minimum over the routers feeding it;
//! at the end of the input it is +infinity and every window fires.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, TimestampMillisecondArray, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;
use tokio::task::JoinSet;

use tributary_planner::streaming::StreamAggregate;

use super::aggregate_input::{self, MinWatermark};
use super::late_rows::LateRows;
use super::{ChangeBatch, Message, Receiver, channel, send, send_data};

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
            match result {
                Ok(None) => {}
                Ok(Some((fired, watermark))) => {
                    if !send_data(&tx, Ok(fired)).await {
                        return;
                    }
                    if !send(
                        &tx,
                        Ok(Message::Watermark {
                            from: 0,
                            ts: watermark,
                        }),
                    )
                    .await
                    {
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

struct WindowAggregate {
    group: Vec<Arc<dyn PhysicalExpr>>,
    aggregates: Vec<StreamAggregate>,
    window_end: usize,
    schema: SchemaRef,
    keys: RowConverter,
    /// Open windows by `window_end` (ms), then by key.
    windows: BTreeMap<i64, HashMap<Vec<u8>, Vec<Box<dyn Accumulator>>>>,
    /// The latest watermark of each input.
    /// The minimum watermark over the routers feeding this instance.
    watermark: MinWatermark,
    late: LateRows,
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
            .map(|e| e.evaluate(&change.data)?.into_array(n))
            .collect::<Result<Vec<_>>>()?;
        let ends = window_ends(&columns[self.window_end])?;
        let rows = self.keys.convert_columns(&columns)?;
        let args = aggregate_input::arguments(&self.aggregates, &change.data)?;
        let filters = aggregate_input::filter_masks(&self.aggregates, &change.data)?;

        // Rows of each (window, key); late rows counted and left out.
        let mut slot_of: HashMap<&[u8], usize> = HashMap::new();
        let mut touched: Vec<(i64, Vec<u8>, Vec<u32>)> = Vec::new();
        let mut late: Vec<u32> = Vec::new();
        for i in 0..n {
            let end = ends.value(i);
            if end.saturating_sub(1) <= self.watermark.current() {
                late.push(i as u32);
                continue;
            }
            let key = rows.row(i).data();
            let slot = *slot_of.entry(key).or_insert_with(|| {
                touched.push((end, key.to_vec(), Vec::new()));
                touched.len() - 1
            });
            touched[slot].2.push(i as u32);
        }
        drop(slot_of);
        self.late
            .record(&change.data, &late, self.watermark.current())?;
        for (end, key, indices) in touched {
            let window = self.windows.entry(end).or_default();
            let accumulators = match window.get_mut(&key) {
                Some(a) => a,
                None => {
                    let fresh = self
                        .aggregates
                        .iter()
                        .map(|a| a.expr.create_accumulator())
                        .collect::<Result<Vec<_>>>()?;
                    window.entry(key).or_insert(fresh)
                }
            };
            for (j, acc) in accumulators.iter_mut().enumerate() {
                let rows: Vec<u32> = match &filters[j] {
                    Some(mask) => indices
                        .iter()
                        .copied()
                        .filter(|r| mask.is_valid(*r as usize) && mask.value(*r as usize))
                        .collect(),
                    None => indices.clone(),
                };
                if rows.is_empty() {
                    continue;
                }
                let idx = UInt32Array::from(rows);
                let taken = args[j]
                    .iter()
                    .map(|a| take(a.as_ref(), &idx, None))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                acc.update_batch(&taken)?;
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
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut values: Vec<Vec<ScalarValue>> = Vec::new();
        for (_, window) in fired {
            for (key, mut accumulators) in window {
                values.push(
                    accumulators
                        .iter_mut()
                        .map(|a| a.evaluate())
                        .collect::<Result<Vec<_>>>()?,
                );
                keys.push(key);
            }
        }
        Ok((self.output(keys, values)?, self.watermark.current()))
    }

    fn output(&self, keys: Vec<Vec<u8>>, values: Vec<Vec<ScalarValue>>) -> Result<ChangeBatch> {
        let rows = keys.len();
        let parser = self.keys.parser();
        let mut columns: Vec<ArrayRef> = if rows == 0 {
            self.schema.fields()[..self.group.len()]
                .iter()
                .map(|f| arrow::array::new_empty_array(f.data_type()))
                .collect()
        } else {
            self.keys
                .convert_rows(keys.iter().map(|k| parser.parse(k)))?
        };
        let offset = columns.len();
        for j in 0..self.aggregates.len() {
            let want = self.schema.field(offset + j).data_type();
            let array = if rows == 0 {
                arrow::array::new_empty_array(want)
            } else {
                ScalarValue::iter_to_array(values.iter().map(|v| v[j].clone()))?
            };
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
        Ok(ChangeBatch::inserts(data))
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

//! OVER aggregation ordered by event time (Flink's `OverAggregate`, e.g.
//! `SUM(v) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN 2 PRECEDING AND
//! CURRENT ROW)`).
//!
//! A row's frame ends at the row itself, so its result is final once no row
//! with an earlier or equal time can come: when the watermark passes its
//! time. Rows wait in `pending` until then. When the watermark advances,
//! the rows it releases are put after the rows their partitions kept from
//! earlier (`history`), sorted by (partition, time), and DataFusion's own
//! `WindowAggExec` computes the window columns over that batch — the same
//! window functions and frame logic as BATCH, vectorized. Only the released
//! rows are emitted (`+I`, in time order per partition); each partition
//! then keeps what later frames can reach ([`OverRetention`]): its last `n`
//! rows for `ROWS n PRECEDING`, the rows within the range of the watermark
//! for `RANGE`, every row for `UNBOUNDED PRECEDING`. Only partitions that
//! have released rows take part in a computation.
//!
//! A row at or behind the watermark when it arrives is late, as in Flink:
//! counted, kept in `system.late_rows`, and dropped. Rows of equal time in
//! one partition have no order between them (in BATCH neither), so a
//! `ROWS` frame over them may differ between runs.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, TimestampMillisecondArray, UInt32Array};
use arrow::compute::{SortColumn, concat_batches, filter_record_batch, lexsort_to_indices};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::WindowExpr;
use datafusion::physical_plan::windows::WindowAggExec;
use tokio::task::JoinSet;

use tributary_planner::over_window::OverRetention;

use super::aggregate_input::{MinWatermark, event_time_ms, key_column};
use super::late_rows::LateRows;
use super::{ChangeBatch, END_OF_INPUT, Message, Receiver, channel, send_released};

/// What an instance computes.
#[derive(Clone)]
pub(super) struct OverSpec {
    pub window_exprs: Vec<Arc<dyn WindowExpr>>,
    pub partition_by: Vec<Arc<dyn PhysicalExpr>>,
    pub time_index: usize,
    pub retention: OverRetention,
    /// The input's schema.
    pub input: SchemaRef,
    /// The output's: the input's columns, then one per window expression.
    pub schema: SchemaRef,
}

/// Starts one instance; `routers` is how many inputs feed it watermarks.
pub(super) fn start(
    mut input: Receiver,
    routers: usize,
    spec: OverSpec,
    ctx: Arc<TaskContext>,
    late: LateRows,
    tasks: &mut JoinSet<()>,
) -> Result<Receiver> {
    let (tx, rx) = channel();
    let keys = spec
        .partition_by
        .iter()
        .map(|e| Ok(SortField::new(e.data_type(&spec.input)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut op = OverAggregate {
        keys: RowConverter::new(keys)?,
        pending: Vec::new(),
        history: None,
        watermark: MinWatermark::new(routers),
        late,
        ctx,
        spec,
    };
    tasks.spawn(async move {
        while let Some(item) = input.recv().await {
            let advanced = match item {
                Ok(Message::Data(change)) => op.process(change).map(|()| None),
                Ok(Message::Watermark { from, ts }) => op.watermark.advance(from, ts),
                Ok(Message::Idle { from }) => op.watermark.idle(from),
                Err(e) => Err(e),
            };
            let released = match advanced {
                Ok(Some(w)) => op.release(w).await.map(|b| Some((b, w))),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            let released = released.map(|r| r.map(|(rows, w)| (rows.map(ChangeBatch::inserts), w)));
            if !send_released(&tx, released).await {
                return;
            }
        }
    });
    Ok(rx)
}

struct OverAggregate {
    spec: OverSpec,
    /// Encodes partition keys, to find the partitions a release touches.
    keys: RowConverter,
    /// Rows whose time the watermark has not passed yet, by batch with the
    /// batch's earliest time (ms).
    pending: Vec<(RecordBatch, i64)>,
    /// Emitted rows that later frames can still reach.
    history: Option<RecordBatch>,
    watermark: MinWatermark,
    late: LateRows,
    ctx: Arc<TaskContext>,
}

impl OverAggregate {
    /// Keeps the rows of `change` that are not late. The input is
    /// append-only (the planner refuses an updating one).
    fn process(&mut self, change: ChangeBatch) -> Result<()> {
        let data = change.data;
        if data.num_rows() == 0 {
            return Ok(());
        }
        let watermark = self.watermark.current();
        let times = event_times(&data, self.spec.time_index)?;
        // On time: a time after the watermark (a NULL time is never on time).
        let on_time: BooleanArray = times
            .iter()
            .map(|t| Some(t.is_some_and(|t| t > watermark)))
            .collect();
        if on_time.true_count() < data.num_rows() {
            let late: Vec<u32> = (0..data.num_rows() as u32)
                .filter(|&i| !on_time.value(i as usize))
                .collect();
            self.late.record(&data, &late, watermark)?;
            self.wait(filter_record_batch(&data, &on_time)?)
        } else {
            self.wait(data)
        }
    }

    /// Keeps `rows` (all on time) until the watermark passes them, with
    /// their earliest time, so that a release looks only at the batches it
    /// can release from.
    fn wait(&mut self, rows: RecordBatch) -> Result<()> {
        if let Some(earliest) = arrow::compute::min(&event_times(&rows, self.spec.time_index)?) {
            self.pending.push((rows, earliest));
        }
        Ok(())
    }

    /// Emits the rows whose time is at or before `watermark`, with their
    /// window columns; `None` if there are none.
    async fn release(&mut self, watermark: i64) -> Result<Option<RecordBatch>> {
        // Only batches with a row the watermark has passed take part.
        let (candidates, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(_, earliest)| *earliest <= watermark);
        self.pending = later;
        let candidates: Vec<RecordBatch> = candidates.into_iter().map(|(b, _)| b).collect();
        let pending = concat_batches(&self.spec.input, &candidates)?;
        let times = event_times(&pending, self.spec.time_index)?;
        let due: BooleanArray = times
            .iter()
            .map(|t| Some(t.is_some_and(|t| t <= watermark)))
            .collect();
        let ready = filter_record_batch(&pending, &due)?;
        let waiting = filter_record_batch(&pending, &arrow::compute::not(&due)?)?;
        if waiting.num_rows() > 0 {
            self.wait(waiting)?;
        }
        if ready.num_rows() == 0 {
            if watermark == END_OF_INPUT {
                self.history = None;
            }
            return Ok(None);
        }
        // The history of the partitions that have released rows; the rest
        // waits for a later release.
        let (kept, untouched) = match self.history.take() {
            // Without PARTITION BY, one partition: every kept row takes part.
            Some(history) if self.spec.partition_by.is_empty() => {
                (history, RecordBatch::new_empty(self.spec.input.clone()))
            }
            Some(history) => {
                let touched = self.partition_rows(&ready)?;
                let keys = self.partition_rows_of(&history)?;
                let mask: BooleanArray = (0..history.num_rows())
                    .map(|i| Some(touched.contains(keys.row(i).as_ref())))
                    .collect();
                (
                    filter_record_batch(&history, &mask)?,
                    filter_record_batch(&history, &arrow::compute::not(&mask)?)?,
                )
            }
            None => (
                RecordBatch::new_empty(self.spec.input.clone()),
                RecordBatch::new_empty(self.spec.input.clone()),
            ),
        };
        let sorted = self.sorted(&[flagged(&kept, false)?, flagged(&ready, true)?])?;
        let computed = self.compute(&sorted).await?;
        let emit_at = self.spec.input.fields().len();
        let emit = computed
            .column(emit_at)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .cloned()
            .ok_or_else(|| super::internal("the emit flag is not boolean"))?;
        let out = filter_record_batch(
            &without_column(&computed, emit_at, &self.spec.schema)?,
            &emit,
        )?;
        if watermark == END_OF_INPUT {
            self.history = None;
        } else {
            let retained = retained(
                &self.spec,
                &without_column(&sorted, emit_at, &self.spec.input)?,
                watermark,
            )?;
            self.history = Some(concat_batches(&self.spec.input, [&untouched, &retained])?)
                .filter(|h| h.num_rows() > 0);
        }
        Ok(Some(out))
    }

    /// The distinct encoded partition keys of `batch`.
    fn partition_rows(&self, batch: &RecordBatch) -> Result<HashSet<Box<[u8]>>> {
        let rows = self.partition_rows_of(batch)?;
        Ok(rows.iter().map(|r| r.as_ref().into()).collect())
    }

    fn partition_rows_of(&self, batch: &RecordBatch) -> Result<arrow::row::Rows> {
        let columns = self
            .spec
            .partition_by
            .iter()
            .map(|e| key_column(e.evaluate(batch)?.into_array(batch.num_rows())?))
            .collect::<Result<Vec<_>>>()?;
        Ok(self.keys.convert_columns(&columns)?)
    }

    /// `parts` (with the emit flag last) in one batch sorted by partition,
    /// time, then flag (kept rows before released ones of equal time).
    fn sorted(&self, parts: &[RecordBatch]) -> Result<RecordBatch> {
        let schema = parts[0].schema();
        let batch = concat_batches(&schema, parts)?;
        let n = batch.num_rows();
        let mut columns = self
            .spec
            .partition_by
            .iter()
            .map(|e| {
                Ok(SortColumn {
                    values: key_column(e.evaluate(&batch)?.into_array(n)?)?,
                    options: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        for index in [self.spec.time_index, batch.num_columns() - 1] {
            columns.push(SortColumn {
                values: batch.column(index).clone(),
                options: None,
            });
        }
        let order = lexsort_to_indices(&columns, None)?;
        Ok(arrow::compute::take_record_batch(&batch, &order)?)
    }

    /// The window columns over `sorted` (sorted by partition and time), by
    /// DataFusion's `WindowAggExec`: `sorted`'s columns, then one per window
    /// expression.
    async fn compute(&self, sorted: &RecordBatch) -> Result<RecordBatch> {
        let schema = sorted.schema();
        // Declared sorted as `sorted()` sorted it (default options: ascending,
        // NULLs first), which WindowAggExec needs to find partitions.
        let ordering = self
            .spec
            .partition_by
            .iter()
            .cloned()
            .chain([Arc::new(Column::new(
                schema.field(self.spec.time_index).name(),
                self.spec.time_index,
            )) as Arc<dyn PhysicalExpr>])
            .map(PhysicalSortExpr::new_default);
        let source = MemorySourceConfig::try_new(&[vec![sorted.clone()]], schema.clone(), None)?
            .try_with_sort_information(LexOrdering::new(ordering).into_iter().collect())?;
        let source = DataSourceExec::from_data_source(source);
        let exec = Arc::new(WindowAggExec::try_new(
            self.spec.window_exprs.clone(),
            source,
            false,
        )?);
        let out_schema = datafusion::physical_plan::ExecutionPlan::schema(exec.as_ref());
        let batches = datafusion::physical_plan::collect(exec, self.ctx.clone()).await?;
        Ok(concat_batches(&out_schema, &batches)?)
    }
}

/// The rows of `sorted` (sorted by partition and time, emit flag
/// dropped) that later frames can reach once the watermark is at
/// `watermark`.
fn retained(spec: &OverSpec, sorted: &RecordBatch, watermark: i64) -> Result<RecordBatch> {
    match spec.retention {
        OverRetention::All => Ok(sorted.clone()),
        OverRetention::RangeMs(range) => {
            // A later row has a time after the watermark; its frame
            // starts after `watermark - range`.
            let floor = watermark.saturating_sub(range);
            let times = event_times(sorted, spec.time_index)?;
            let keep: BooleanArray = times
                .iter()
                .map(|t| Some(t.is_some_and(|t| t > floor)))
                .collect();
            Ok(filter_record_batch(sorted, &keep)?)
        }
        OverRetention::Rows(n) => {
            let n = n as usize;
            let columns = spec
                .partition_by
                .iter()
                .map(|e| key_column(e.evaluate(sorted)?.into_array(sorted.num_rows())?))
                .collect::<Result<Vec<ArrayRef>>>()?;
            let ranges = if columns.is_empty() {
                vec![0..sorted.num_rows()]
            } else {
                arrow::compute::partition(&columns)?.ranges()
            };
            let take: UInt32Array = ranges
                .into_iter()
                .flat_map(|r| (r.end.saturating_sub(n).max(r.start)..r.end).map(|i| i as u32))
                .collect();
            Ok(arrow::compute::take_record_batch(sorted, &take)?)
        }
    }
}

/// The event-time column of `batch` as ms since the epoch.
fn event_times(batch: &RecordBatch, index: usize) -> Result<TimestampMillisecondArray> {
    event_time_ms(batch.column(index))
}

/// `batch` with a last boolean column, `value` in every row.
fn flagged(batch: &RecordBatch, value: bool) -> Result<RecordBatch> {
    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(
        "__tributary_emit",
        DataType::Boolean,
        false,
    )));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(BooleanArray::from(vec![value; batch.num_rows()])));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new_with_metadata(
            fields,
            batch.schema().metadata().clone(),
        )),
        columns,
    )?)
}

/// `batch` without column `index`, under `schema`.
fn without_column(batch: &RecordBatch, index: usize, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(_, c)| c.clone())
        .collect();
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, TimestampMillisecondArray};
    use arrow::datatypes::TimeUnit;

    /// (k, ts ms) rows, sorted by k then ts, under a spec partitioned by k.
    fn setup(retention: OverRetention, rows: &[(&str, i64)]) -> (OverSpec, RecordBatch) {
        let input = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
        ]));
        let batch = RecordBatch::try_new(
            input.clone(),
            vec![
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(TimestampMillisecondArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        let spec = OverSpec {
            window_exprs: vec![],
            partition_by: vec![Arc::new(Column::new("k", 0))],
            time_index: 1,
            retention,
            input: input.clone(),
            schema: input,
        };
        (spec, batch)
    }

    fn rows(batch: &RecordBatch) -> Vec<(String, i64)> {
        let k = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let ts = event_times(batch, 1).unwrap();
        (0..batch.num_rows())
            .map(|i| (k.value(i).to_string(), ts.value(i)))
            .collect()
    }

    const ROWS: &[(&str, i64)] = &[("a", 1), ("a", 5), ("a", 9), ("b", 2), ("c", 3), ("c", 8)];

    #[test]
    fn rows_frames_keep_the_last_n_rows_of_each_partition() {
        let (spec, sorted) = setup(OverRetention::Rows(2), ROWS);
        let kept = retained(&spec, &sorted, 10).unwrap();
        assert_eq!(
            rows(&kept),
            [("a", 5), ("a", 9), ("b", 2), ("c", 3), ("c", 8)].map(|(k, t)| (k.to_string(), t))
        );
        let (spec, sorted) = setup(OverRetention::Rows(0), ROWS);
        assert_eq!(retained(&spec, &sorted, 10).unwrap().num_rows(), 0);
    }

    #[test]
    fn range_frames_keep_the_rows_a_later_row_can_reach() {
        // A later row is after the watermark 9; a 4 ms range reaches back
        // to after 5.
        let (spec, sorted) = setup(OverRetention::RangeMs(4), ROWS);
        let kept = retained(&spec, &sorted, 9).unwrap();
        assert_eq!(
            rows(&kept),
            [("a", 9), ("c", 8)].map(|(k, t)| (k.to_string(), t))
        );
        let (spec, sorted) = setup(OverRetention::All, ROWS);
        assert_eq!(retained(&spec, &sorted, 9).unwrap().num_rows(), ROWS.len());
    }

    #[test]
    fn the_emit_flag_is_added_and_removed() {
        let (spec, batch) = setup(OverRetention::All, ROWS);
        let flagged = flagged(&batch, true).unwrap();
        assert_eq!(flagged.num_columns(), 3);
        assert_eq!(
            flagged
                .column(2)
                .as_any()
                .downcast_ref::<BooleanArray>()
                .unwrap()
                .true_count(),
            6
        );
        let back = without_column(&flagged, 2, &spec.input).unwrap();
        assert_eq!(rows(&back), rows(&batch));
    }
}

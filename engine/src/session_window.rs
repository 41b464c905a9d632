//! SESSION windows (Flink's SESSION window TVF): rows of one `PARTITION BY`
//! key whose event times are less than `gap` apart share a window, from the
//! first row's time to the last row's time plus `gap` (exclusive end).
//!
//! BATCH assigns sessions with [`SessionAssignExec`]: it needs all rows of a
//! key at once, so DataFusion hash-partitions its input by the key, and each
//! partition is sorted by (key, time) and cut where the gap is reached.
//! STREAMING cannot assign a row its session until the session is complete,
//! so it fuses assignment and aggregation into one operator
//! (`streaming::session_aggregate`) that merges sessions as rows arrive.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, TimestampMillisecondArray, UInt32Array};
use arrow::compute::{SortColumn, cast, concat_batches, lexsort_to_indices, take};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, SortField};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::EmissionType;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    PlanProperties,
};
use futures::TryStreamExt;

/// Assigns sessions to `batch` (all rows of the keys it holds): returns its
/// rows sorted by (key, time), NULL times dropped, with `window_start`,
/// `window_end`, `window_time` appended (`schema` is the output schema).
///
/// # Errors
/// The time column cannot be cast to milliseconds.
pub fn assign_sessions(
    batch: &RecordBatch,
    time_index: usize,
    keys: &[usize],
    gap: i64,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let time = batch.column(time_index);
    let tz = match time.data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        other => {
            return Err(DataFusionError::Internal(format!(
                "session time column is {other}"
            )));
        }
    };
    let ms = cast(
        time,
        &DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
    )?;
    let mut sort: Vec<SortColumn> = keys
        .iter()
        .map(|k| SortColumn {
            values: batch.column(*k).clone(),
            options: None,
        })
        .collect();
    sort.push(SortColumn {
        values: ms.clone(),
        options: None,
    });
    let order = lexsort_to_indices(&sort, None)?;
    let ms = take(ms.as_ref(), &order, None)?;
    let ms = ms
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .ok_or_else(|| {
            DataFusionError::Internal(
                "SESSION: window time is not TIMESTAMP(3) after the cast".into(),
            )
        })?;
    let key_columns: Vec<ArrayRef> = keys
        .iter()
        .map(|k| take(batch.column(*k).as_ref(), &order, None))
        .collect::<std::result::Result<_, _>>()?;
    // Without PARTITION BY every row has the same key (and no key rows exist).
    let key_rows = if keys.is_empty() {
        None
    } else {
        let converter = RowConverter::new(
            key_columns
                .iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect(),
        )?;
        Some(converter.convert_columns(&key_columns)?)
    };
    let same_key = |a: usize, b: usize| {
        key_rows
            .as_ref()
            .is_none_or(|rows| rows.row(a) == rows.row(b))
    };

    // Walk the sorted rows, cutting a session where the key changes or the gap is reached.
    let mut kept: Vec<u32> = Vec::with_capacity(order.len());
    let mut starts: Vec<i64> = Vec::with_capacity(order.len());
    let mut ends: Vec<i64> = Vec::with_capacity(order.len());
    let mut session_first = 0; // index in `kept` of the current session's first row
    let mut previous: Option<(usize, i64)> = None; // (sorted position, time)
    for i in 0..order.len() {
        if ms.is_null(i) {
            continue;
        }
        let t = ms.value(i);
        let new_session = match previous {
            None => true,
            Some((p, pt)) => !same_key(p, i) || t - pt >= gap,
        };
        if new_session {
            close_session(&mut starts, &mut ends, session_first, gap);
            session_first = kept.len();
        }
        kept.push(order.value(i));
        starts.push(t);
        previous = Some((i, t));
    }
    close_session(&mut starts, &mut ends, session_first, gap);
    let indices = UInt32Array::from(kept);
    let mut columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| take(c.as_ref(), &indices, None))
        .collect::<std::result::Result<_, _>>()?;
    let times: Vec<i64> = ends.iter().map(|e| e - 1).collect();
    for values in [starts, ends, times] {
        columns.push(Arc::new(
            TimestampMillisecondArray::from(values).with_timezone_opt(tz.clone()),
        ));
    }
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(indices.len())),
    )?)
}

/// Sets start and end for the session of rows `first..` (whose `starts` hold
/// their own times): start = first time, end = last time + gap.
fn close_session(starts: &mut [i64], ends: &mut Vec<i64>, first: usize, gap: i64) {
    if first >= starts.len() {
        return;
    }
    let (start, end) = (starts[first], starts[starts.len() - 1] + gap);
    for s in &mut starts[first..] {
        *s = start;
    }
    ends.resize(starts.len(), end);
}

/// BATCH's SESSION window TVF: one output batch per partition, after all of
/// the partition's input has arrived.
#[derive(Debug)]
pub struct SessionAssignExec {
    input: Arc<dyn ExecutionPlan>,
    time_index: usize,
    keys: Vec<usize>,
    gap: i64,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl SessionAssignExec {
    /// Sessions over `input`, per key (`keys`: column indices), `gap` in ms.
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        time_index: usize,
        keys: Vec<usize>,
        gap: i64,
        schema: SchemaRef,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            input.output_partitioning().clone(),
            EmissionType::Final,
            input.boundedness(),
        ));
        Self {
            input,
            time_index,
            keys,
            gap,
            schema,
            properties,
        }
    }
}

impl DisplayAs for SessionAssignExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "SessionAssignExec: gap={}ms, time column {}, keys {:?}",
            self.gap, self.time_index, self.keys
        )
    }
}

impl ExecutionPlan for SessionAssignExec {
    fn name(&self) -> &str {
        "SessionAssignExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        if self.keys.is_empty() {
            return vec![Distribution::SinglePartition];
        }
        let schema = self.input.schema();
        let keys: Vec<Arc<dyn PhysicalExpr>> = self
            .keys
            .iter()
            .map(|k| Arc::new(Column::new(schema.field(*k).name(), *k)) as Arc<dyn PhysicalExpr>)
            .collect();
        vec![Distribution::KeyPartitioned(keys)]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children
            .pop()
            .ok_or_else(|| DataFusionError::Internal("SessionAssignExec takes one input".into()))?;
        Ok(Arc::new(Self::new(
            input,
            self.time_index,
            self.keys.clone(),
            self.gap,
            self.schema.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let input_schema = self.input.schema();
        let (time_index, keys, gap, schema) = (
            self.time_index,
            self.keys.clone(),
            self.gap,
            self.schema.clone(),
        );
        let out = futures::stream::once(async move {
            let batches: Vec<RecordBatch> = input.try_collect().await?;
            let all = concat_batches(&input_schema, &batches)?;
            assign_sessions(&all, time_index, &keys, gap, &schema)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            out,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn sessions_per_key_cut_at_the_gap() {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        let input = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("ts", ts.clone(), true),
        ]));
        let batch = RecordBatch::try_new(
            input,
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "a", "a", "b"])),
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(10),
                    Some(0),
                    Some(14),
                    Some(30),
                    None,
                ])),
            ],
        )
        .unwrap();
        let out = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("ts", ts.clone(), true),
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts.clone(), false),
            Field::new("window_time", ts, false),
        ]));
        let b = assign_sessions(&batch, 1, &[0], 5, &out).unwrap();
        let col = |i: usize| {
            b.column(i)
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .unwrap()
                .values()
                .to_vec()
        };
        // a@10, a@14 → [10, 19); a@30 → [30, 35); b@0 → [0, 5); b@NULL dropped
        assert_eq!(col(1), vec![10, 14, 30, 0]);
        assert_eq!(col(2), vec![10, 10, 30, 0]);
        assert_eq!(col(3), vec![19, 19, 35, 5]);
    }
}

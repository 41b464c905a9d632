//! Window assignment for the window TVFs (TUMBLE, HOP, CUMULATE): each row
//! is repeated once per window it falls in, with `window_start`,
//! `window_end` (exclusive) and `window_time` (`window_end` - 1 ms) added.
//! The same kernel serves BATCH ([`WindowAssignExec`]) and STREAMING (the
//! window-assign operator), so both modes put a row in the same windows.
//!
//! Window boundaries follow Flink: windows are aligned to `offset` from the
//! epoch; a row at time t is in [start, end) when start ≤ t < end. Rows
//! with a NULL time are in no window and are dropped.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, TimestampMillisecondArray, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use futures::StreamExt;

use tributary_planner::window_tvf::{WindowKind, WindowTvfNode};

use crate::session_window::SessionAssignExec;

/// Where and how to assign windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowAssigner {
    /// The time column's index in the input.
    pub time_index: usize,
    /// The windows.
    pub kind: WindowKind,
    /// Alignment from the epoch, ms.
    pub offset: i64,
}

impl WindowAssigner {
    /// The rows of `batch`, each once per window, with the three window
    /// columns appended; `schema` is the output schema.
    ///
    /// # Errors
    /// The time column cannot be cast to milliseconds.
    pub fn assign(&self, batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
        let time = batch.column(self.time_index);
        let tz = match time.data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            other => {
                return Err(DataFusionError::Internal(format!(
                    "window time column is {other}"
                )));
            }
        };
        let ms = cast(
            time,
            &DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
        )?;
        let ms = ms
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .ok_or_else(|| {
                DataFusionError::Internal("window time column did not cast to ms".into())
            })?;
        let n = batch.num_rows();
        // TUMBLE without NULL times, the common case: every row is in one
        // window, so the input columns stay as they are (no `take`) and the
        // window columns are computed a column at a time.
        if let WindowKind::Tumble { size } = self.kind
            && ms.null_count() == 0
        {
            let offset = self.offset;
            let starts =
                ms.unary::<_, TimestampMillisecondType>(|t| t - (t - offset).rem_euclid(size));
            let ends = starts.unary::<_, TimestampMillisecondType>(|s| s + size);
            let times = starts.unary::<_, TimestampMillisecondType>(|s| s + size - 1);
            let mut columns = batch.columns().to_vec();
            for values in [starts, ends, times] {
                columns.push(Arc::new(values.with_timezone_opt(tz.clone())));
            }
            return Ok(RecordBatch::try_new_with_options(
                schema.clone(),
                columns,
                &RecordBatchOptions::new().with_row_count(Some(n)),
            )?);
        }
        let mut rows: Vec<u32> = Vec::with_capacity(n);
        let mut starts: Vec<i64> = Vec::with_capacity(n);
        let mut ends: Vec<i64> = Vec::with_capacity(n);
        let offset = self.offset;
        for (i, t) in ms.iter().enumerate() {
            let Some(t) = t else { continue };
            match self.kind {
                WindowKind::Tumble { size } => {
                    let start = t - (t - offset).rem_euclid(size);
                    rows.push(i as u32);
                    starts.push(start);
                    ends.push(start + size);
                }
                WindowKind::Hop { slide, size } => {
                    let last = t - (t - offset).rem_euclid(slide);
                    let windows = (size + slide - 1) / slide;
                    for k in (0..windows).rev() {
                        let start = last - k * slide;
                        if start + size > t {
                            rows.push(i as u32);
                            starts.push(start);
                            ends.push(start + size);
                        }
                    }
                }
                WindowKind::Session { .. } => {
                    return Err(DataFusionError::Internal(
                        "SESSION windows are assigned per partition, not per row".into(),
                    ));
                }
                WindowKind::Cumulate { step, size } => {
                    let start = t - (t - offset).rem_euclid(size);
                    let mut end = start + ((t - start) / step + 1) * step;
                    while end <= start + size {
                        rows.push(i as u32);
                        starts.push(start);
                        ends.push(end);
                        end += step;
                    }
                }
            }
        }
        let indices = UInt32Array::from(rows);
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
}

/// BATCH's window TVF operator: assigns windows to each input batch.
#[derive(Debug)]
pub struct WindowAssignExec {
    input: Arc<dyn ExecutionPlan>,
    assigner: WindowAssigner,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl WindowAssignExec {
    /// The operator over `input`, producing `schema` (input columns + window columns).
    pub fn new(input: Arc<dyn ExecutionPlan>, assigner: WindowAssigner, schema: SchemaRef) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            input.output_partitioning().clone(),
            input.pipeline_behavior(),
            input.boundedness(),
        ));
        Self {
            input,
            assigner,
            schema,
            properties,
        }
    }
}

impl DisplayAs for WindowAssignExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "WindowAssignExec: {} on column {}, offset={}ms",
            self.assigner.kind, self.assigner.time_index, self.assigner.offset
        )
    }
}

impl ExecutionPlan for WindowAssignExec {
    fn name(&self) -> &str {
        "WindowAssignExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
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
            .ok_or_else(|| DataFusionError::Internal("WindowAssignExec takes one input".into()))?;
        Ok(Arc::new(Self::new(
            input,
            self.assigner,
            self.schema.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let (assigner, schema) = (self.assigner, self.schema.clone());
        let out = input.map(move |batch| assigner.assign(&batch?, &schema));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            out,
        )))
    }
}

/// Plans Tributary's logical extension nodes for DataFusion's physical
/// planner (BATCH).
#[derive(Debug, Default)]
pub struct TributaryExtensionPlanner;

#[async_trait]
impl ExtensionPlanner for TributaryExtensionPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(tvf) = node.as_any().downcast_ref::<WindowTvfNode>() else {
            return Ok(None);
        };
        let schema = Arc::new(node.schema().as_arrow().clone());
        if let WindowKind::Session { gap } = tvf.kind {
            let keys = tvf.partition_indices()?;
            return Ok(Some(Arc::new(SessionAssignExec::new(
                physical_inputs[0].clone(),
                tvf.time_index()?,
                keys,
                gap,
                schema,
            ))));
        }
        let assigner = WindowAssigner {
            time_index: tvf.time_index()?,
            kind: tvf.kind,
            offset: tvf.offset,
        };
        Ok(Some(Arc::new(WindowAssignExec::new(
            physical_inputs[0].clone(),
            assigner,
            schema,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};

    /// `ts`, then the window columns.
    fn output_schema() -> SchemaRef {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        Arc::new(Schema::new(vec![
            Field::new("ts", ts.clone(), true),
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts.clone(), false),
            Field::new("window_time", ts, false),
        ]))
    }

    fn assign(kind: WindowKind, times: &[i64]) -> Vec<(i64, i64, i64)> {
        let input = Arc::new(Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        )]));
        let batch = RecordBatch::try_new(
            input.clone(),
            vec![Arc::new(TimestampMillisecondArray::from(times.to_vec()))],
        )
        .unwrap();
        let out = output_schema();
        let b = WindowAssigner {
            time_index: 0,
            kind,
            offset: 0,
        }
        .assign(&batch, &out)
        .unwrap();
        let col = |i: usize| {
            b.column(i)
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .unwrap()
                .values()
                .to_vec()
        };
        let (t, s, e) = (col(0), col(1), col(2));
        (0..b.num_rows()).map(|i| (t[i], s[i], e[i])).collect()
    }

    #[test]
    fn tumble_puts_each_row_in_one_window() {
        assert_eq!(
            assign(WindowKind::Tumble { size: 10 }, &[0, 9, 10, -1]),
            vec![(0, 0, 10), (9, 0, 10), (10, 10, 20), (-1, -10, 0)]
        );
    }

    #[test]
    fn tumble_leaves_rows_without_a_time_out_and_sets_window_time() {
        let assigner = WindowAssigner {
            time_index: 0,
            kind: WindowKind::Tumble { size: 10 },
            offset: 3,
        };
        for times in [vec![Some(5), None, Some(12)], vec![Some(5), Some(12)]] {
            let input = Arc::new(Schema::new(vec![output_schema().field(0).clone()]));
            let batch = RecordBatch::try_new(
                input,
                vec![Arc::new(TimestampMillisecondArray::from(times))],
            )
            .unwrap();
            let out = assigner.assign(&batch, &output_schema()).unwrap();
            let col = |i: usize| {
                out.column(i)
                    .as_any()
                    .downcast_ref::<TimestampMillisecondArray>()
                    .unwrap()
                    .values()
                    .to_vec()
            };
            assert_eq!(col(0), [5, 12]);
            assert_eq!(col(1), [3, 3]);
            assert_eq!(col(2), [13, 13]);
            assert_eq!(col(3), [12, 12]);
        }
    }

    #[test]
    fn hop_puts_a_row_in_size_over_slide_windows() {
        assert_eq!(
            assign(WindowKind::Hop { slide: 5, size: 10 }, &[7]),
            vec![(7, 0, 10), (7, 5, 15)]
        );
        assert_eq!(
            assign(WindowKind::Hop { slide: 4, size: 10 }, &[9]),
            vec![(9, 0, 10), (9, 4, 14), (9, 8, 18)]
        );
    }

    #[test]
    fn cumulate_grows_windows_by_step() {
        assert_eq!(
            assign(WindowKind::Cumulate { step: 5, size: 15 }, &[7]),
            vec![(7, 0, 10), (7, 0, 15)]
        );
        assert_eq!(
            assign(WindowKind::Cumulate { step: 5, size: 15 }, &[16]),
            vec![(16, 15, 20), (16, 15, 25), (16, 15, 30)]
        );
    }
}

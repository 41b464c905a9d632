//! What the aggregate operators (group, window, session) share: making
//! each aggregate's groups accumulator, evaluating its arguments and
//! `FILTER` mask over a batch, and tracking the minimum watermark over the
//! routers that feed an instance.

use arrow::array::{ArrayRef, BooleanArray};
use arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::GroupsAccumulator;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};

use tributary_planner::streaming::StreamAggregate;

/// DataFusion's groups accumulator for `expr`, or its row accumulators
/// behind DataFusion's adapter when it has none (e.g. DISTINCT aggregates).
///
/// # Errors
/// DataFusion could not make the accumulator.
pub(super) fn groups_accumulator(
    expr: &std::sync::Arc<AggregateFunctionExpr>,
) -> Result<Box<dyn GroupsAccumulator>> {
    if expr.groups_accumulator_supported() {
        return expr.create_groups_accumulator();
    }
    let expr = expr.clone();
    Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
        expr.create_accumulator()
    })))
}

/// Each aggregate's argument columns over `batch`.
pub(super) fn arguments(
    aggregates: &[StreamAggregate],
    batch: &RecordBatch,
) -> Result<Vec<Vec<ArrayRef>>> {
    aggregates
        .iter()
        .map(|a| {
            a.expr
                .expressions()
                .iter()
                .map(|e| e.evaluate(batch)?.into_array(batch.num_rows()))
                .collect()
        })
        .collect()
}

/// Each aggregate's `FILTER (WHERE ...)` mask over `batch` (None: no filter).
///
/// # Errors
/// A filter that is not boolean (the planner should not let one through).
pub(super) fn filter_masks(
    aggregates: &[StreamAggregate],
    batch: &RecordBatch,
) -> Result<Vec<Option<BooleanArray>>> {
    aggregates
        .iter()
        .map(|a| {
            a.filter
                .as_ref()
                .map(|f| boolean(f.as_ref(), batch))
                .transpose()
        })
        .collect()
}

/// A boolean expression's values over `batch`.
///
/// # Errors
/// The expression is not boolean.
pub(super) fn boolean(expr: &dyn PhysicalExpr, batch: &RecordBatch) -> Result<BooleanArray> {
    let mask = expr.evaluate(batch)?.into_array(batch.num_rows())?;
    mask.as_any()
        .downcast_ref::<BooleanArray>()
        .cloned()
        .ok_or_else(|| {
            DataFusionError::Internal(format!("filter is {}, not boolean", mask.data_type()))
        })
}

/// An event-time (TIMESTAMP) column as milliseconds since the epoch, the
/// unit watermarks are in.
///
/// # Errors
/// The column is not a TIMESTAMP (the planners only hand over time
/// attributes, so this is an internal error).
pub(super) fn event_time_ms(column: &ArrayRef) -> Result<arrow::array::TimestampMillisecondArray> {
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
    let column = match column.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) => column.clone(),
        DataType::Timestamp(_, tz) => arrow::compute::cast(
            column,
            &DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
        )?,
        other => {
            return Err(DataFusionError::Internal(format!(
                "an event-time column of type {other}, not a TIMESTAMP"
            )));
        }
    };
    Ok(column.as_primitive::<TimestampMillisecondType>().clone())
}

/// A key column as keyed state and the exchange must see it: floats with
/// -0.0 made 0.0 (SQL has -0.0 = 0.0, as BATCH's hash aggregate and joins
/// do, but their `arrow-row` bytes and hashes differ in the sign bit).
/// Adding +0.0 does exactly that (IEEE 754), vectorized; NaN and NULL stay.
pub(super) fn key_column(column: ArrayRef) -> Result<ArrayRef> {
    use arrow::array::{Float32Array, Float64Array, Scalar};
    use arrow::datatypes::DataType;
    let zero: ArrayRef = match column.data_type() {
        DataType::Float64 => std::sync::Arc::new(Float64Array::from(vec![0.0])),
        DataType::Float32 => std::sync::Arc::new(Float32Array::from(vec![0.0])),
        _ => return Ok(column),
    };
    Ok(arrow::compute::kernels::numeric::add(
        &column,
        &Scalar::new(zero),
    )?)
}

/// Decodes arrow-row encoded rows into columns, with zeros under the NULLs
/// of fixed-width columns. `arrow-row` leaves arbitrary values there (e.g.
/// `i64::MIN`), which Arrow allows, but some of DataFusion's kernels compute
/// on them anyway and overflow (`date_trunc` of a NULL timestamp key).
pub(super) fn decode_rows<'a>(
    converter: &arrow::row::RowConverter,
    rows: impl IntoIterator<Item = arrow::row::Row<'a>>,
) -> Result<Vec<ArrayRef>> {
    converter
        .convert_rows(rows)?
        .into_iter()
        .map(zero_null_slots)
        .collect()
}

/// `column` with its fixed-width values under NULLs set to zero bytes.
pub(super) fn zero_null_slots(column: ArrayRef) -> Result<ArrayRef> {
    let Some(nulls) = column.logical_nulls().filter(|n| n.null_count() > 0) else {
        return Ok(column);
    };
    let Some(width) = column.data_type().primitive_width() else {
        return Ok(column);
    };
    let data = column.to_data();
    let start = data.offset() * width;
    let mut bytes = data.buffers()[0].as_slice()[start..start + data.len() * width].to_vec();
    for (i, valid) in nulls.iter().enumerate() {
        if !valid {
            bytes[i * width..(i + 1) * width].fill(0);
        }
    }
    let zeroed = arrow::array::ArrayData::builder(data.data_type().clone())
        .len(data.len())
        .add_buffer(arrow::buffer::Buffer::from_vec(bytes))
        .nulls(Some(nulls))
        .build()?;
    Ok(arrow::array::make_array(zeroed))
}

/// The watermark of an operator instance fed by several routers: the
/// minimum of the latest watermark of each input that is not idle (Flink
/// leaves idle inputs out of the minimum, and takes them back in when they
/// send a watermark again); with every input idle, the largest of them. The
/// watermark never goes back.
#[derive(Debug)]
pub(super) struct MinWatermark {
    inputs: Vec<i64>,
    idle: Vec<bool>,
    current: i64,
}

impl MinWatermark {
    /// No watermark yet from any of `inputs` routers.
    pub fn new(inputs: usize) -> Self {
        Self {
            inputs: vec![i64::MIN; inputs.max(1)],
            idle: vec![false; inputs.max(1)],
            current: i64::MIN,
        }
    }

    /// The watermark now (`i64::MIN` before any).
    pub fn current(&self) -> i64 {
        self.current
    }

    /// The last watermark router `from` sent (`i64::MIN` before any, or for
    /// a router that does not exist).
    pub fn of(&self, from: usize) -> i64 {
        self.inputs.get(from).copied().unwrap_or(i64::MIN)
    }

    /// Takes watermark `ts` from router `from` (which is active again if it
    /// was idle); returns the new minimum if it advanced.
    ///
    /// # Errors
    /// `from` is not one of the routers.
    pub fn advance(&mut self, from: usize, ts: i64) -> Result<Option<i64>> {
        let slot = self.slot(from)?;
        self.inputs[slot] = self.inputs[slot].max(ts);
        self.idle[slot] = false;
        Ok(self.recompute())
    }

    /// Marks router `from` idle; returns the new minimum if leaving it out
    /// advanced the watermark.
    ///
    /// # Errors
    /// `from` is not one of the routers.
    pub fn idle(&mut self, from: usize) -> Result<Option<i64>> {
        let slot = self.slot(from)?;
        self.idle[slot] = true;
        Ok(self.recompute())
    }

    fn slot(&self, from: usize) -> Result<usize> {
        if from < self.inputs.len() {
            Ok(from)
        } else {
            Err(DataFusionError::Internal(format!(
                "watermark from unknown input {from}"
            )))
        }
    }

    /// The minimum over active inputs, if above the current watermark.
    /// With every input idle it is the largest watermark of any input, as
    /// in Flink (`StatusWatermarkValve`): nothing holds it back any more.
    fn recompute(&mut self) -> Option<i64> {
        let active_min = self
            .inputs
            .iter()
            .zip(&self.idle)
            .filter(|(_, idle)| !**idle)
            .map(|(ts, _)| *ts)
            .min();
        let min = match active_min {
            Some(min) => min,
            None => self.inputs.iter().copied().max()?,
        };
        if min <= self.current {
            return None;
        }
        self.current = min;
        Some(min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_null_keys_have_zeros_underneath() {
        use arrow::array::{Array, Int64Array};
        use arrow::row::{RowConverter, SortField};
        let conv =
            RowConverter::new(vec![SortField::new(arrow::datatypes::DataType::Int64)]).unwrap();
        let input: ArrayRef = std::sync::Arc::new(Int64Array::from(vec![Some(5), None]));
        let rows = conv.convert_columns(&[input]).unwrap();
        let out = decode_rows(&conv, rows.iter()).unwrap();
        let ints = out[0].as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(ints.value(0), 5);
        assert!(ints.is_null(1));
        assert_eq!(ints.values()[1], 0, "no i64::MIN under the NULL");
    }

    #[test]
    fn the_watermark_is_the_minimum_over_inputs() {
        let mut w = MinWatermark::new(2);
        assert_eq!(w.advance(0, 10).unwrap(), None);
        assert_eq!(w.advance(1, 5).unwrap(), Some(5));
        assert_eq!(w.advance(1, 20).unwrap(), Some(10));
        assert_eq!(w.advance(1, 3).unwrap(), None);
        assert_eq!(w.current(), 10);
        assert!(w.advance(2, 1).is_err());
    }

    #[test]
    fn idle_inputs_are_left_out_until_they_send_a_watermark() {
        let mut w = MinWatermark::new(3);
        assert_eq!(w.advance(0, 100).unwrap(), None);
        assert_eq!(w.advance(1, 50).unwrap(), None);
        // input 2 never sent anything and goes idle: min of 0 and 1
        assert_eq!(w.idle(2).unwrap(), Some(50));
        assert_eq!(w.idle(1).unwrap(), Some(100));
        // every input idle: the largest watermark, already reached
        assert_eq!(w.idle(0).unwrap(), None);
        assert_eq!(w.current(), 100);
        // input 1 comes back behind: the watermark does not go back
        assert_eq!(w.advance(1, 60).unwrap(), None);
        assert_eq!(w.current(), 100);
        assert_eq!(w.advance(0, 200).unwrap(), None);
        assert_eq!(w.advance(1, 150).unwrap(), Some(150));
        // every input idle: the largest watermark of any
        let mut w = MinWatermark::new(2);
        assert_eq!(w.advance(0, 40).unwrap(), None);
        assert_eq!(w.idle(0).unwrap(), None); // input 1 still active, at MIN
        assert_eq!(w.idle(1).unwrap(), Some(40));
        assert!(w.idle(5).is_err());
    }
}

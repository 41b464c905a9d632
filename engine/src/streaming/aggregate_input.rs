//! What the aggregate operators (group, window, session) share: evaluating
//! each aggregate's arguments and `FILTER` mask over a batch, and tracking
//! the minimum watermark over the routers that feed an instance.

use arrow::array::{ArrayRef, BooleanArray};
use arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;

use tributary_planner::streaming::StreamAggregate;

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

/// The watermark of an operator instance fed by several routers: the
/// minimum of the latest watermark of each.
#[derive(Debug)]
pub(super) struct MinWatermark {
    inputs: Vec<i64>,
    current: i64,
}

impl MinWatermark {
    /// No watermark yet from any of `inputs` routers.
    pub fn new(inputs: usize) -> Self {
        Self {
            inputs: vec![i64::MIN; inputs.max(1)],
            current: i64::MIN,
        }
    }

    /// The watermark now (`i64::MIN` before any).
    pub fn current(&self) -> i64 {
        self.current
    }

    /// Takes watermark `ts` from router `from`; returns the new minimum if it
    /// advanced.
    ///
    /// # Errors
    /// `from` is not one of the routers.
    pub fn advance(&mut self, from: usize, ts: i64) -> Result<Option<i64>> {
        let slot = self.inputs.get_mut(from).ok_or_else(|| {
            DataFusionError::Internal(format!("watermark from unknown input {from}"))
        })?;
        *slot = (*slot).max(ts);
        let min = self.inputs.iter().copied().min().unwrap_or(i64::MIN);
        if min <= self.current {
            return Ok(None);
        }
        self.current = min;
        Ok(Some(min))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

//! Inline per-key state for the most common aggregates — `COUNT`, `SUM`
//! and `AVG` over `BIGINT` / `DOUBLE`, and `MIN` / `MAX` of `BIGINT` over
//! an append-only input — so an updating `GROUP BY` over a million keys
//! does not hold a million boxed DataFusion accumulators per aggregate
//! (a heap allocation, a vtable and a `DataType` each). The state is a few
//! machine words stored in the key's own state array.
//!
//! Semantics are DataFusion's (so both modes agree): `COUNT` counts
//! non-NULL argument values (`COUNT(*)` is `COUNT(1)`), `SUM` is NULL over
//! no non-NULL value and wraps on `BIGINT` overflow, `AVG` is the `DOUBLE`
//! sum divided by the count, NULL over no value. Every other aggregate
//! keeps DataFusion's accumulator.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::{cast, max, min, sum};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;

/// One aggregate's state for one key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum NativeState {
    Count(i64),
    SumInt { sum: i64, n: i64 },
    SumFloat { sum: f64, n: i64 },
    Avg { sum: f64, n: i64 },
    MinInt(Option<i64>),
    MaxInt(Option<i64>),
}

impl NativeState {
    /// The inline state for `expr`, if it is one of the aggregates above
    /// (MIN/MAX only when `append_only`: retracting them needs every value).
    pub fn for_aggregate(expr: &AggregateFunctionExpr, append_only: bool) -> Option<Self> {
        if expr.is_distinct() || expr.expressions().len() != 1 {
            return None;
        }
        let out = expr.field().data_type().clone();
        match (expr.fun().name().to_ascii_lowercase().as_str(), out) {
            ("count", DataType::Int64) => Some(Self::Count(0)),
            ("sum", DataType::Int64) => Some(Self::SumInt { sum: 0, n: 0 }),
            ("sum", DataType::Float64) => Some(Self::SumFloat { sum: 0.0, n: 0 }),
            ("avg" | "mean", DataType::Float64) => Some(Self::Avg { sum: 0.0, n: 0 }),
            ("min", DataType::Int64) if append_only => Some(Self::MinInt(None)),
            ("max", DataType::Int64) if append_only => Some(Self::MaxInt(None)),
            _ => None,
        }
    }

    /// Adds `values` (the aggregate's one argument).
    pub fn update(&mut self, values: &ArrayRef) -> Result<()> {
        let present = (values.len() - values.null_count()) as i64;
        match self {
            Self::Count(n) => *n += present,
            Self::SumInt { sum: s, n } => {
                if let Some(v) = sum(int64(values)?.as_primitive::<Int64Type>()) {
                    *s = s.wrapping_add(v);
                }
                *n += present;
            }
            Self::SumFloat { sum: s, n } | Self::Avg { sum: s, n } => {
                if let Some(v) = sum(float64(values)?.as_primitive::<Float64Type>()) {
                    *s += v;
                }
                *n += present;
            }
            Self::MinInt(m) => {
                if let Some(v) = min(int64(values)?.as_primitive::<Int64Type>()) {
                    *m = Some(m.map_or(v, |m| m.min(v)));
                }
            }
            Self::MaxInt(m) => {
                if let Some(v) = max(int64(values)?.as_primitive::<Int64Type>()) {
                    *m = Some(m.map_or(v, |m| m.max(v)));
                }
            }
        }
        Ok(())
    }

    /// Removes `values`.
    ///
    /// # Errors
    /// MIN/MAX (never planned over an updating input), or more values
    /// retracted than were added.
    pub fn retract(&mut self, values: &ArrayRef) -> Result<()> {
        let present = (values.len() - values.null_count()) as i64;
        match self {
            Self::Count(n) => *n -= present,
            Self::SumInt { sum: s, n } => {
                if let Some(v) = sum(int64(values)?.as_primitive::<Int64Type>()) {
                    *s = s.wrapping_sub(v);
                }
                *n -= present;
            }
            Self::SumFloat { sum: s, n } | Self::Avg { sum: s, n } => {
                if let Some(v) = sum(float64(values)?.as_primitive::<Float64Type>()) {
                    *s -= v;
                }
                *n -= present;
                if *n == 0 {
                    // No value left: start again from an exact zero, not
                    // the rounding left over by the subtractions.
                    *s = 0.0;
                }
            }
            Self::MinInt(_) | Self::MaxInt(_) => {
                return Err(DataFusionError::Internal(
                    "MIN/MAX with inline state cannot take retractions".into(),
                ));
            }
        }
        match self {
            Self::Count(n)
            | Self::SumInt { n, .. }
            | Self::SumFloat { n, .. }
            | Self::Avg { n, .. }
                if *n < 0 =>
            {
                Err(DataFusionError::Execution(
                    "an aggregate retracted more values than it received".into(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// The aggregate's value now.
    pub fn evaluate(&self) -> ScalarValue {
        match *self {
            Self::Count(n) => ScalarValue::Int64(Some(n)),
            Self::SumInt { sum, n } => ScalarValue::Int64((n > 0).then_some(sum)),
            Self::SumFloat { sum, n } => ScalarValue::Float64((n > 0).then_some(sum)),
            Self::Avg { sum, n } => ScalarValue::Float64((n > 0).then(|| sum / n as f64)),
            Self::MinInt(m) | Self::MaxInt(m) => ScalarValue::Int64(m),
        }
    }
}

/// `values` as `BIGINT` (DataFusion coerces SUM's and MIN/MAX's integer
/// arguments already; a cast keeps any other integer type correct).
fn int64(values: &ArrayRef) -> Result<ArrayRef> {
    if values.data_type() == &DataType::Int64 {
        Ok(values.clone())
    } else {
        Ok(cast(values, &DataType::Int64)?)
    }
}

/// `values` as `DOUBLE` (AVG of integers averages them as doubles).
fn float64(values: &ArrayRef) -> Result<ArrayRef> {
    if values.data_type() == &DataType::Float64 {
        Ok(values.clone())
    } else {
        Ok(cast(values, &DataType::Float64)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array};
    use std::sync::Arc;

    fn ints(v: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(v.to_vec()))
    }

    #[test]
    fn count_sum_avg_add_and_retract() {
        let mut count = NativeState::Count(0);
        let mut total = NativeState::SumInt { sum: 0, n: 0 };
        let mut mean = NativeState::Avg { sum: 0.0, n: 0 };
        let values = ints(&[Some(4), None, Some(2)]);
        for s in [&mut count, &mut total, &mut mean] {
            s.update(&values).unwrap();
        }
        assert_eq!(count.evaluate(), ScalarValue::Int64(Some(2)));
        assert_eq!(total.evaluate(), ScalarValue::Int64(Some(6)));
        assert_eq!(mean.evaluate(), ScalarValue::Float64(Some(3.0)));
        let gone = ints(&[Some(4), Some(2)]);
        for s in [&mut count, &mut total, &mut mean] {
            s.retract(&gone).unwrap();
        }
        assert_eq!(count.evaluate(), ScalarValue::Int64(Some(0)));
        assert_eq!(total.evaluate(), ScalarValue::Int64(None), "SUM of nothing");
        assert_eq!(mean.evaluate(), ScalarValue::Float64(None));
        assert!(count.retract(&ints(&[Some(1)])).is_err());
    }

    #[test]
    fn float_sums_and_integer_extremes() {
        let mut s = NativeState::SumFloat { sum: 0.0, n: 0 };
        s.update(&(Arc::new(Float64Array::from(vec![0.5, 0.25])) as ArrayRef))
            .unwrap();
        assert_eq!(s.evaluate(), ScalarValue::Float64(Some(0.75)));
        let mut lo = NativeState::MinInt(None);
        let mut hi = NativeState::MaxInt(None);
        assert_eq!(hi.evaluate(), ScalarValue::Int64(None));
        for v in [ints(&[Some(3), None]), ints(&[Some(-7), Some(9)])] {
            lo.update(&v).unwrap();
            hi.update(&v).unwrap();
        }
        assert_eq!(lo.evaluate(), ScalarValue::Int64(Some(-7)));
        assert_eq!(hi.evaluate(), ScalarValue::Int64(Some(9)));
        assert!(hi.retract(&ints(&[Some(9)])).is_err());
    }
}

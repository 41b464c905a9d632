//! MIN, MAX and COUNT(DISTINCT) that take retractions: the values of a
//! group kept as a multiset (an ordered map from value to count), so
//! removing the current minimum reveals the next one, and a value stops
//! counting as distinct when its last copy is retracted. DataFusion's
//! sliding MIN/MAX assume values leave in arrival order (a window's), which
//! a changelog does not promise; its DISTINCT accumulators cannot retract.
//!
//! Values are keyed by their arrow-row encoding, which orders like the
//! values themselves, so the map's first and last keys are MIN and MAX, and
//! its length is the distinct count.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::DataType;
use arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};

/// What a [`ValueMultiset`] evaluates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Measure {
    Min,
    Max,
    /// The number of distinct non-NULL values (`BIGINT`).
    DistinctCount,
}

/// The multiset state of one group's MIN, MAX or COUNT(DISTINCT).
#[derive(Debug)]
pub(crate) struct ValueMultiset {
    measure: Measure,
    data_type: DataType,
    converter: Arc<RowConverter>,
    values: BTreeMap<OwnedRow, u64>,
}

impl ValueMultiset {
    /// A state for values of `data_type` (the result's type for MIN/MAX);
    /// `converter` is shared by the groups of one aggregate.
    pub fn new(measure: Measure, data_type: DataType, converter: Arc<RowConverter>) -> Self {
        Self {
            measure,
            data_type,
            converter,
            values: BTreeMap::new(),
        }
    }

    /// A converter for values of `data_type`.
    pub fn converter(data_type: &DataType) -> Result<Arc<RowConverter>> {
        Ok(Arc::new(RowConverter::new(vec![SortField::new(
            data_type.clone(),
        )])?))
    }

    /// Adds the non-NULL values of `values`.
    pub fn update(&mut self, values: &ArrayRef) -> Result<()> {
        let rows = self
            .converter
            .convert_columns(std::slice::from_ref(values))?;
        for i in 0..values.len() {
            if values.is_valid(i) {
                *self.values.entry(rows.row(i).owned()).or_insert(0) += 1;
            }
        }
        Ok(())
    }

    /// Removes one copy of each non-NULL value of `values`.
    ///
    /// # Errors
    /// If a value is not in the multiset: the changelog retracted a row that
    /// was never added.
    pub fn retract(&mut self, values: &ArrayRef) -> Result<()> {
        self.remove(values, false)
    }

    /// Like [`ValueMultiset::retract`], but a value that is not there is
    /// skipped: under `table.exec.state.ttl` it was added before the state
    /// expired (Flink ignores such retractions too).
    pub fn retract_present(&mut self, values: &ArrayRef) -> Result<()> {
        self.remove(values, true)
    }

    fn remove(&mut self, values: &ArrayRef, skip_missing: bool) -> Result<()> {
        let rows = self
            .converter
            .convert_columns(std::slice::from_ref(values))?;
        for i in 0..values.len() {
            if values.is_null(i) {
                continue;
            }
            let key = rows.row(i).owned();
            match self.values.get_mut(&key) {
                Some(n) if *n > 1 => *n -= 1,
                Some(_) => {
                    self.values.remove(&key);
                }
                None if skip_missing => {}
                None => {
                    return Err(DataFusionError::Execution(format!(
                        "{} retracted a value it never saw",
                        match self.measure {
                            Measure::Min => "MIN",
                            Measure::Max => "MAX",
                            Measure::DistinctCount => "COUNT(DISTINCT)",
                        }
                    )));
                }
            }
        }
        Ok(())
    }

    /// The current MIN or MAX (NULL when empty), or the distinct count.
    pub fn evaluate(&self) -> Result<ScalarValue> {
        let key = match self.measure {
            Measure::Min => self.values.keys().next(),
            Measure::Max => self.values.keys().next_back(),
            Measure::DistinctCount => {
                return Ok(ScalarValue::Int64(Some(self.values.len() as i64)));
            }
        };
        match key {
            None => ScalarValue::try_from(&self.data_type),
            Some(row) => {
                let arrays = self.converter.convert_rows([row.row()])?;
                ScalarValue::try_from_array(&arrays[0], 0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    fn array(v: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(v.to_vec()))
    }

    #[test]
    fn retracting_the_minimum_reveals_the_next() {
        let conv = ValueMultiset::converter(&DataType::Int64).unwrap();
        let mut min = ValueMultiset::new(Measure::Min, DataType::Int64, conv.clone());
        let mut max = ValueMultiset::new(Measure::Max, DataType::Int64, conv);
        for m in [&mut min, &mut max] {
            m.update(&array(&[Some(5), Some(-3), None, Some(9), Some(-3)]))
                .unwrap();
        }
        assert_eq!(min.evaluate().unwrap(), ScalarValue::Int64(Some(-3)));
        assert_eq!(max.evaluate().unwrap(), ScalarValue::Int64(Some(9)));
        min.retract(&array(&[Some(-3)])).unwrap();
        assert_eq!(
            min.evaluate().unwrap(),
            ScalarValue::Int64(Some(-3)),
            "one -3 is left"
        );
        min.retract(&array(&[Some(-3)])).unwrap();
        assert_eq!(min.evaluate().unwrap(), ScalarValue::Int64(Some(5)));
        max.retract(&array(&[Some(9), Some(5), Some(-3), Some(-3)]))
            .unwrap();
        assert_eq!(max.evaluate().unwrap(), ScalarValue::Int64(None));
        assert!(max.retract(&array(&[Some(1)])).is_err());
    }

    #[test]
    fn distinct_count_drops_a_value_with_its_last_copy() {
        let conv = ValueMultiset::converter(&DataType::Int64).unwrap();
        let mut n = ValueMultiset::new(Measure::DistinctCount, DataType::Int64, conv);
        n.update(&array(&[Some(1), Some(1), None, Some(2)]))
            .unwrap();
        assert_eq!(n.evaluate().unwrap(), ScalarValue::Int64(Some(2)));
        n.retract(&array(&[Some(1)])).unwrap();
        assert_eq!(n.evaluate().unwrap(), ScalarValue::Int64(Some(2)));
        n.retract(&array(&[Some(1), None])).unwrap();
        assert_eq!(n.evaluate().unwrap(), ScalarValue::Int64(Some(1)));
        assert!(n.retract(&array(&[Some(7)])).is_err());
    }
}

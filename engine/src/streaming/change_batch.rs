//! A batch of changelog rows: data plus one row kind per row.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, Int8Array, UInt32Array};
use arrow::compute::{filter, filter_record_batch, take, take_record_batch};
use arrow::record_batch::RecordBatch;
use datafusion::error::Result;

use tributary_planner::RowKind;

/// Rows and their kinds (`Int8` codes of [`RowKind`]).
#[derive(Debug, Clone)]
pub(crate) struct ChangeBatch {
    /// One code per row.
    pub ops: Arc<Int8Array>,
    /// The rows.
    pub data: RecordBatch,
}

impl ChangeBatch {
    /// Every row of `data` as `+I`. The codes are a zero-copy slice of a
    /// shared run of `+I` codes, so an append-only stream pays no
    /// allocation per batch for them.
    pub fn inserts(data: RecordBatch) -> Self {
        let ops = Arc::new(insert_codes(data.num_rows()));
        Self { ops, data }
    }

    /// Whether every row is `+I`: one pass OR-ing each code's difference
    /// from `+I` (no early exit, so the compiler vectorizes it; a
    /// short-circuiting `all` ran a byte at a time).
    pub fn all_inserts(&self) -> bool {
        let insert = RowKind::Insert.code();
        self.ops
            .values()
            .iter()
            .fold(0i8, |differs, c| differs | (*c ^ insert))
            == 0
    }

    /// The kind of each row.
    pub fn kinds(&self) -> impl Iterator<Item = RowKind> + '_ {
        self.ops
            .values()
            .iter()
            .map(|c| RowKind::from_code(*c).unwrap_or(RowKind::Insert))
    }

    /// Rows where `mask` is true (NULL counts as false).
    pub fn filter(&self, mask: &BooleanArray) -> Result<Self> {
        let mask = if mask.null_count() > 0 {
            arrow::compute::prep_null_mask_filter(mask)
        } else {
            mask.clone()
        };
        let ops = filter(self.ops.as_ref(), &mask)?;
        let ops = ops_column(ops.as_ref())?;
        Ok(Self {
            ops,
            data: filter_record_batch(&self.data, &mask)?,
        })
    }

    /// The rows at `indices`, in that order.
    pub fn take(&self, indices: &UInt32Array) -> Result<Self> {
        let ops = take(self.ops.as_ref(), indices, None)?;
        let ops = ops_column(ops.as_ref())?;
        Ok(Self {
            ops,
            data: take_record_batch(&self.data, indices)?,
        })
    }

    /// The rows of `batches`, in order, as one batch of `schema`.
    pub fn concat(schema: &arrow::datatypes::SchemaRef, batches: &[ChangeBatch]) -> Result<Self> {
        let ops = batches
            .iter()
            .map(|b| b.ops.as_ref() as &dyn Array)
            .collect::<Vec<_>>();
        let ops = arrow::compute::concat(&ops)?;
        let data = arrow::compute::concat_batches(schema, batches.iter().map(|b| &b.data))?;
        Ok(Self {
            ops: ops_column(ops.as_ref())?,
            data,
        })
    }

    pub fn num_rows(&self) -> usize {
        self.data.num_rows()
    }
}

/// `n` `+I` codes: a slice of a per-thread run that grows to the largest
/// batch seen (doubling), so most calls only bump a reference count.
fn insert_codes(n: usize) -> Int8Array {
    thread_local! {
        static RUN: std::cell::RefCell<Int8Array> = std::cell::RefCell::new(Int8Array::from(Vec::<i8>::new()));
    }
    RUN.with(|run| {
        let mut run = run.borrow_mut();
        if run.len() < n {
            *run = Int8Array::from_value(RowKind::Insert.code(), n.max(2 * run.len()).max(8192));
        }
        run.slice(0, n)
    })
}

/// `array` (an op column a kernel returned) as the `Int8` op codes it is.
fn ops_column(array: &dyn Array) -> Result<Arc<Int8Array>> {
    array
        .as_any()
        .downcast_ref::<Int8Array>()
        .map(|a| Arc::new(a.clone()))
        .ok_or_else(|| {
            datafusion::error::DataFusionError::Internal(format!(
                "a changelog's op column is {}, not Int8",
                array.data_type()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    #[test]
    fn inserts_share_one_run_of_codes() {
        let batch = |n: i64| {
            RecordBatch::try_from_iter([(
                "x",
                Arc::new(Int64Array::from_iter_values(0..n)) as arrow::array::ArrayRef,
            )])
            .unwrap()
        };
        let small = ChangeBatch::inserts(batch(3));
        let large = ChangeBatch::inserts(batch(20_000));
        assert_eq!(small.ops.len(), 3);
        assert_eq!(large.ops.len(), 20_000);
        assert!(small.all_inserts() && large.all_inserts());
        assert!(small.kinds().all(|k| k == RowKind::Insert));
        let mixed = ChangeBatch {
            ops: Arc::new(Int8Array::from(vec![0, RowKind::Delete.code()])),
            data: batch(2),
        };
        assert!(!mixed.all_inserts());
    }
}

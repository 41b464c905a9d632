//! Folding a changelog into the table it describes.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};

use tributary_planner::{Error, ErrorKind, OP_COLUMN, Result, RowKind};

/// Folds changelog batches — each with a leading `op` column (`+I`, `-U`,
/// `+U`, `-D`) — into the rows they leave behind: `+I`/`+U` add a row,
/// `-U`/`-D` remove one equal row. The result has the data columns (no
/// `op`), rows in the order they were first added.
///
/// This is the fold of the cross-mode contract: folding the STREAMING
/// changelog of a query gives its BATCH result.
///
/// # Errors
/// A retraction of a row that is not there (a bug in whoever produced the
/// changelog — never ignored), a batch without the `op` column, or an
/// unknown op.
pub fn fold(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    let data_schema = data_schema(schema)?;
    let fields: Vec<SortField> = data_schema
        .fields()
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields).map_err(arrow_error)?;
    // Each distinct row: (count, batch index, row index of its first copy).
    let mut counts: HashMap<Vec<u8>, (i64, usize, usize, u64)> = HashMap::new();
    let mut seq = 0u64;
    for (b, batch) in batches.iter().enumerate() {
        let ops = op_column(batch)?;
        let data: Vec<ArrayRef> = batch.columns()[1..].to_vec();
        let rows = converter.convert_columns(&data).map_err(arrow_error)?;
        for i in 0..batch.num_rows() {
            let kind = RowKind::from_short_string(ops.value(i)).ok_or_else(|| {
                Error::new(
                    ErrorKind::Execution,
                    format!("unknown changelog op '{}'", ops.value(i)),
                )
            })?;
            let key = rows.row(i).as_ref().to_vec();
            if kind.is_retraction() {
                match counts.get_mut(&key) {
                    Some((n, ..)) if *n > 0 => *n -= 1,
                    _ => {
                        let shown = arrow::util::display::array_value_to_string(batch.column(1), i)
                            .unwrap_or_default();
                        return Err(Error::new(
                            ErrorKind::Execution,
                            format!(
                                "changelog retracts a row that is not there ({kind} at batch {b}, row {i}; first column {shown})"
                            ),
                        ));
                    }
                }
            } else {
                let entry = counts.entry(key).or_insert((0, b, i, seq));
                if entry.0 == 0 {
                    *entry = (0, b, i, seq);
                }
                entry.0 += 1;
                seq += 1;
            }
        }
    }
    let mut live: Vec<(u64, usize, usize, i64)> = counts
        .into_values()
        .filter(|(n, ..)| *n > 0)
        .map(|(n, b, i, s)| (s, b, i, n))
        .collect();
    live.sort_unstable();
    // Gather rows per source batch with `take`, then concatenate.
    let mut parts = Vec::new();
    for (_, b, i, n) in live {
        for _ in 0..n {
            parts.push((b, i as u32));
        }
    }
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < parts.len() {
        let b = parts[start].0;
        let mut end = start;
        while end < parts.len() && parts[end].0 == b {
            end += 1;
        }
        let indices = UInt32Array::from_iter_values(parts[start..end].iter().map(|p| p.1));
        let columns = batches[b].columns()[1..]
            .iter()
            .map(|c| take(c.as_ref(), &indices, None))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(arrow_error)?;
        pieces.push(RecordBatch::try_new(data_schema.clone(), columns).map_err(arrow_error)?);
        start = end;
    }
    arrow::compute::concat_batches(&data_schema, &pieces).map_err(arrow_error)
}

/// The schema of a changelog without its `op` column.
///
/// # Errors
/// If the first column is not `op`.
pub fn data_schema(schema: &SchemaRef) -> Result<SchemaRef> {
    if schema.fields().first().map(|f| f.name().as_str()) != Some(OP_COLUMN) {
        return Err(Error::new(
            ErrorKind::Execution,
            "not a changelog: the first column is not 'op'",
        ));
    }
    Ok(Arc::new(Schema::new(schema.fields()[1..].to_vec())))
}

fn op_column(batch: &RecordBatch) -> Result<&StringArray> {
    batch
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Execution,
                "not a changelog: 'op' is not a string column",
            )
        })
}

fn arrow_error(e: arrow::error::ArrowError) -> Error {
    Error::new(ErrorKind::Execution, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field};

    fn changelog(rows: &[(&str, &str, i64)]) -> (SchemaRef, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("op", DataType::Utf8, false),
            Field::new("k", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap();
        (schema, batch)
    }

    #[test]
    fn folds_updates_and_deletes() {
        let (schema, batch) = changelog(&[
            ("+I", "a", 1),
            ("+I", "b", 1),
            ("-U", "a", 1),
            ("+U", "a", 2),
            ("-D", "b", 1),
            ("+I", "c", 5),
            ("+I", "c", 5),
        ]);
        let folded = fold(&schema, &[batch]).unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&[folded])
            .unwrap()
            .to_string();
        assert_eq!(
            text,
            "+---+---+\n| k | n |\n+---+---+\n| a | 2 |\n| c | 5 |\n| c | 5 |\n+---+---+"
        );
    }

    #[test]
    fn retracting_a_missing_row_is_an_error() {
        let (schema, batch) = changelog(&[("+I", "a", 1), ("-U", "a", 2)]);
        let e = fold(&schema, &[batch]).unwrap_err();
        assert!(
            e.message.contains("retracts a row that is not there"),
            "{e}"
        );
    }
}

//! The table a changelog describes, kept up to date batch by batch.
//!
//! Why not `tributary_engine::changelog::fold` on every batch: that refolds
//! everything received so far, so a live view would cost more with every
//! batch and keep every batch in memory. Here each distinct row is kept once
//! (in arrow's row format, which also turns it back into columns) with how
//! many copies of it the table holds; a batch costs its own size. The rules
//! are `fold`'s: `+I`/`+U` add a copy, `-U`/`-D` remove one, and a
//! retraction of a row that is not there is an error. So is the table, but
//! not always its row order: rows come in the order they were added, except
//! that an update (`-U` removing a row, then `+U` adding a new one) puts the
//! new row in the old one's place, so a live view does not move a row to
//! the bottom each time it changes.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, StringArray};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::row::{OwnedRow, RowConverter, SortField};
use tributary_engine::changelog::data_schema;
use tributary_engine::{Error, ErrorKind, Result};
use tributary_planner::RowKind;

/// The folded table of the changelog received so far.
pub struct FoldedTable {
    data_schema: SchemaRef,
    converter: RowConverter,
    /// Each row in the table: (copies, the sequence number of its place).
    copies: HashMap<OwnedRow, (u64, u64)>,
    /// The rows in the table in the order they were added.
    order: BTreeMap<u64, OwnedRow>,
    next_seq: u64,
    /// The place of the row the last change, a `-U`, removed.
    vacated: Option<u64>,
    rows: u64,
    changes: u64,
}

impl FoldedTable {
    /// An empty table for a changelog of `schema` (with its `op` column).
    ///
    /// # Errors
    /// `schema` is not a changelog's, or has a type arrow cannot compare.
    pub fn new(schema: &SchemaRef) -> Result<Self> {
        let data_schema = data_schema(schema)?;
        let fields = data_schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        let converter = RowConverter::new(fields).map_err(arrow_error)?;
        Ok(Self {
            data_schema,
            converter,
            copies: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            vacated: None,
            rows: 0,
            changes: 0,
        })
    }

    /// How many rows the table has (copies of equal rows counted).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// How many changelog rows have been applied.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Applies a changelog batch.
    ///
    /// # Errors
    /// A batch without a string `op` column, an unknown op, or a retraction
    /// of a row that is not in the table.
    pub fn apply(&mut self, batch: &RecordBatch) -> Result<()> {
        let ops = batch
            .columns()
            .first()
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Execution,
                    "not a changelog: no string 'op' column",
                )
            })?;
        let rows = self
            .converter
            .convert_columns(&batch.columns()[1..])
            .map_err(arrow_error)?;
        for i in 0..batch.num_rows() {
            let op = ops.value(i);
            let kind = RowKind::from_short_string(op).ok_or_else(|| {
                Error::new(ErrorKind::Execution, format!("unknown changelog op '{op}'"))
            })?;
            let row = rows.row(i).owned();
            let vacated = self.vacated.take();
            if kind.is_retraction() {
                let Some((n, seq)) = self.copies.get_mut(&row) else {
                    return Err(Error::new(
                        ErrorKind::Execution,
                        format!(
                            "changelog retracts a row that is not there ({kind} at change {})",
                            self.changes + 1
                        ),
                    ));
                };
                *n -= 1;
                if *n == 0 {
                    let seq = *seq;
                    self.copies.remove(&row);
                    self.order.remove(&seq);
                    self.vacated = (kind == RowKind::UpdateBefore).then_some(seq);
                }
                self.rows -= 1;
            } else {
                let seq = match vacated {
                    Some(seq) if kind == RowKind::UpdateAfter => seq,
                    _ => {
                        self.next_seq += 1;
                        self.next_seq
                    }
                };
                let entry = self.copies.entry(row).or_insert_with_key(|row| {
                    self.order.insert(seq, row.clone());
                    (0, seq)
                });
                entry.0 += 1;
                self.rows += 1;
            }
            self.changes += 1;
        }
        Ok(())
    }

    /// The first `limit` rows of the table (all with `usize::MAX`), without
    /// the `op` column.
    ///
    /// # Errors
    /// Arrow cannot rebuild the columns (not expected).
    pub fn table(&self, limit: usize) -> Result<RecordBatch> {
        let mut picked = Vec::new();
        'rows: for row in self.order.values() {
            let (n, _) = self.copies[row];
            for _ in 0..n {
                if picked.len() >= limit {
                    break 'rows;
                }
                picked.push(row.row());
            }
        }
        let columns = self.converter.convert_rows(picked).map_err(arrow_error)?;
        RecordBatch::try_new(self.data_schema.clone(), columns).map_err(arrow_error)
    }
}

fn arrow_error(e: ArrowError) -> Error {
    Error::new(ErrorKind::Execution, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("op", DataType::Utf8, false),
            Field::new("k", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]))
    }

    fn batch(rows: &[(&str, &str, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap()
    }

    /// `batch`'s rows as text, sorted.
    fn sorted(batch: &RecordBatch) -> Vec<String> {
        let text = arrow::util::pretty::pretty_format_batches(std::slice::from_ref(batch))
            .unwrap()
            .to_string();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines
    }

    #[test]
    fn matches_the_engines_fold() {
        let batches = [
            batch(&[("+I", "a", 1), ("+I", "b", 1), ("+I", "b", 1)]),
            batch(&[("-U", "a", 1), ("+U", "a", 2), ("-D", "b", 1)]),
            batch(&[
                ("+I", "c", 5),
                ("-D", "b", 1),
                ("+I", "b", 7),
                ("-U", "a", 2),
                ("+U", "a", 3),
            ]),
        ];
        let mut folded = FoldedTable::new(&schema()).unwrap();
        for (i, b) in batches.iter().enumerate() {
            folded.apply(b).unwrap();
            let expected = tributary_engine::changelog::fold(&schema(), &batches[..=i]).unwrap();
            assert_eq!(
                sorted(&folded.table(usize::MAX).unwrap()),
                sorted(&expected),
                "after batch {i}"
            );
            assert_eq!(folded.rows(), expected.num_rows() as u64);
        }
        assert_eq!(folded.changes(), 11);
    }

    #[test]
    fn an_updated_row_keeps_its_place() {
        let mut folded = FoldedTable::new(&schema()).unwrap();
        folded
            .apply(&batch(&[("+I", "a", 1), ("+I", "b", 1), ("+I", "c", 1)]))
            .unwrap();
        folded
            .apply(&batch(&[
                ("-U", "a", 1),
                ("+U", "a", 2),
                ("-D", "b", 1),
                ("+I", "b", 5),
            ]))
            .unwrap();
        folded.apply(&batch(&[("-U", "c", 1)])).unwrap();
        folded.apply(&batch(&[("+U", "c", 9)])).unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&[folded.table(usize::MAX).unwrap()])
            .unwrap();
        let rows: Vec<String> = text
            .to_string()
            .lines()
            .skip(3)
            .map(str::to_string)
            .collect();
        assert_eq!(
            rows,
            ["| a | 2 |", "| c | 9 |", "| b | 5 |", "+---+---+"],
            "a delete and insert moves to the end"
        );
        assert_eq!(folded.table(1).unwrap().num_rows(), 1);
    }

    #[test]
    fn copies_of_a_row_count_and_are_cut_by_the_limit() {
        let mut folded = FoldedTable::new(&schema()).unwrap();
        folded
            .apply(&batch(&[("+I", "a", 1), ("+I", "a", 1), ("+I", "b", 2)]))
            .unwrap();
        assert_eq!(folded.rows(), 3);
        assert_eq!(folded.table(usize::MAX).unwrap().num_rows(), 3);
        assert_eq!(folded.table(1).unwrap().num_rows(), 1);
        assert_eq!(folded.table(0).unwrap().num_rows(), 0);
    }

    #[test]
    fn a_retraction_of_a_missing_row_is_an_error() {
        let mut folded = FoldedTable::new(&schema()).unwrap();
        folded.apply(&batch(&[("+I", "a", 1)])).unwrap();
        let e = folded.apply(&batch(&[("-U", "a", 2)])).unwrap_err();
        assert!(
            e.message.contains("retracts a row that is not there"),
            "{e:?}"
        );
        let e = folded.apply(&batch(&[("?", "a", 1)])).unwrap_err();
        assert!(e.message.contains("unknown changelog op"), "{e:?}");
    }

    #[test]
    fn needs_an_op_column() {
        let plain = Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true)]));
        assert!(FoldedTable::new(&plain).is_err());
    }
}

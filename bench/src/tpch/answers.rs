//! Query answers in one engine-neutral form, so that every engine's result
//! of a query can be checked against every other's in the same run — a
//! wrong answer must not look fast.
//!
//! A result is a list of rows of [`Cell`]s: numbers of every Arrow type
//! (integers, floats, decimals) as `f64`, dates and other values as their
//! text (`1995-03-15`), NULL as NULL. [`compare`] sorts both sides (ORDER
//! BY ties may come out in any order) and compares numbers within a
//! relative tolerance (engines compute `AVG` and decimal division at
//! different precisions).

use std::cmp::Ordering;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};
use arrow::record_batch::RecordBatch;

/// One value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// Any number: integer, float or decimal.
    Num(f64),
    /// Text, and dates or timestamps as ISO text.
    Str(String),
}

/// The rows of a result.
pub type Rows = Vec<Vec<Cell>>;

/// Relative tolerance of [`compare`] on numbers (absolute below 1).
pub const TOLERANCE: f64 = 1e-6;

/// The rows of Arrow batches as [`Cell`]s.
///
/// # Errors
/// A column of a type that Arrow cannot cast to text.
pub fn from_batches(batches: &[RecordBatch]) -> Result<Rows, String> {
    let mut rows = Vec::new();
    for batch in batches {
        let mut columns = Vec::with_capacity(batch.num_columns());
        for col in batch.columns() {
            let numeric = col.data_type().is_numeric();
            let target = if numeric {
                DataType::Float64
            } else {
                DataType::Utf8
            };
            let casted = cast(col, &target).map_err(|e| {
                format!(
                    "answer column of type {}: cannot read it as {target}: {e}",
                    col.data_type()
                )
            })?;
            columns.push((numeric, casted));
        }
        for i in 0..batch.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|(numeric, c)| {
                        if c.is_null(i) {
                            Cell::Null
                        } else if *numeric {
                            Cell::Num(c.as_primitive::<Float64Type>().value(i))
                        } else {
                            Cell::Str(c.as_string::<i32>().value(i).to_string())
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok(rows)
}

/// The rows of a JSON array of arrays (as the DuckDB worker sends them):
/// numbers, strings and nulls.
///
/// # Errors
/// Anything but an array of arrays of numbers, strings, booleans and nulls.
pub fn from_json(value: &serde_json::Value) -> Result<Rows, String> {
    let rows = value
        .as_array()
        .ok_or("answer: expected a JSON array of rows")?;
    rows.iter()
        .map(|row| {
            row.as_array()
                .ok_or("answer: expected each row as a JSON array".to_string())?
                .iter()
                .map(|v| match v {
                    serde_json::Value::Null => Ok(Cell::Null),
                    serde_json::Value::Number(n) => n
                        .as_f64()
                        .map(Cell::Num)
                        .ok_or(format!("answer: number {n} out of range")),
                    serde_json::Value::String(s) => Ok(Cell::Str(s.clone())),
                    serde_json::Value::Bool(b) => Ok(Cell::Str(b.to_string())),
                    other => Err(format!("answer: unexpected value {other}")),
                })
                .collect()
        })
        .collect()
}

fn cmp_cell(a: &Cell, b: &Cell) -> Ordering {
    match (a, b) {
        (Cell::Null, Cell::Null) => Ordering::Equal,
        (Cell::Null, _) => Ordering::Less,
        (_, Cell::Null) => Ordering::Greater,
        (Cell::Num(x), Cell::Num(y)) => x.total_cmp(y),
        (Cell::Num(_), Cell::Str(_)) => Ordering::Less,
        (Cell::Str(_), Cell::Num(_)) => Ordering::Greater,
        (Cell::Str(x), Cell::Str(y)) => x.cmp(y),
    }
}

fn cells_match(a: &Cell, b: &Cell) -> bool {
    match (a, b) {
        (Cell::Num(x), Cell::Num(y)) => (x - y).abs() <= TOLERANCE * x.abs().max(y.abs()).max(1.0),
        _ => a == b,
    }
}

/// Checks that two results hold the same rows, in any order, numbers
/// within [`TOLERANCE`].
///
/// # Errors
/// A message naming both sides (`left`, `right`), the row counts and the
/// first row that differs.
pub fn compare(left: &str, a: &Rows, right: &str, b: &Rows) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!(
            "{left} returned {} rows, {right} {} rows (first rows: {left} {:?}, {right} {:?})",
            a.len(),
            b.len(),
            a.first(),
            b.first()
        ));
    }
    let sorted = |rows: &Rows| {
        let mut r = rows.clone();
        r.sort_by(|x, y| {
            x.iter()
                .zip(y)
                .map(|(p, q)| cmp_cell(p, q))
                .find(|o| o.is_ne())
                .unwrap_or(x.len().cmp(&y.len()))
        });
        r
    };
    let (a, b) = (sorted(a), sorted(b));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        if x.len() != y.len() || !x.iter().zip(y).all(|(p, q)| cells_match(p, q)) {
            return Err(format!(
                "{left} and {right} differ at sorted row {i} of {}: {left} {x:?}, {right} {y:?}",
                a.len()
            ));
        }
    }
    Ok(())
}

/// Each row of an answer as a 64-bit digest of its [`Cell`]s, sorted: two
/// answers hold the same rows, in any order, iff their digests are equal
/// (up to hash collisions). For answers of millions of rows, where [`Rows`]
/// of every engine would not fit in memory side by side: 8 bytes a row,
/// read one batch at a time. Numbers count as equal when they agree to 9
/// significant digits (rounded before hashing: a value right on a rounding
/// boundary may still differ between engines).
///
/// # Errors
/// As [`from_batches`].
pub fn row_digests(batches: &[RecordBatch]) -> Result<Vec<u64>, String> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut digests = Vec::new();
    for batch in batches {
        for row in from_batches(std::slice::from_ref(batch))? {
            // DefaultHasher::new() has fixed keys: the same row hashes alike in every engine.
            let mut h = DefaultHasher::new();
            for cell in &row {
                match cell {
                    Cell::Null => 0u8.hash(&mut h),
                    Cell::Num(x) => {
                        1u8.hash(&mut h);
                        // -0.0 and 0.0 are the same number.
                        let x = if *x == 0.0 { 0.0 } else { *x };
                        format!("{x:.8e}").hash(&mut h);
                    }
                    Cell::Str(s) => {
                        2u8.hash(&mut h);
                        s.hash(&mut h);
                    }
                }
            }
            digests.push(h.finish());
        }
    }
    digests.sort_unstable();
    Ok(digests)
}

/// How many rows are in one of two sorted digest lists ([`row_digests`])
/// and not in the other (0: the same rows).
pub fn digest_difference(a: &[u64], b: &[u64]) -> usize {
    let (mut i, mut j, mut differ) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            Ordering::Equal => {
                i += 1;
                j += 1;
            }
            Ordering::Less => {
                differ += 1;
                i += 1;
            }
            Ordering::Greater => {
                differ += 1;
                j += 1;
            }
        }
    }
    differ + (a.len() - i) + (b.len() - j)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, Decimal128Array, Int64Array, StringViewArray};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("k", DataType::Utf8View, true),
            Field::new("n", DataType::Int64, false),
            Field::new("d", DataType::Decimal128(15, 2), false),
            Field::new("day", DataType::Date32, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringViewArray::from(vec![Some("b"), None])),
                Arc::new(Int64Array::from(vec![2, 1])),
                Arc::new(
                    Decimal128Array::from(vec![12345, -5])
                        .with_precision_and_scale(15, 2)
                        .unwrap(),
                ),
                Arc::new(Date32Array::from(vec![9204, 0])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn normalizes_strings_numbers_decimals_and_dates() {
        let rows = from_batches(&[batch()]).unwrap();
        assert_eq!(
            rows[0],
            vec![
                Cell::Str("b".into()),
                Cell::Num(2.0),
                Cell::Num(123.45),
                Cell::Str("1995-03-15".into())
            ]
        );
        assert_eq!(rows[1][0], Cell::Null);
    }

    #[test]
    fn equal_in_any_order_and_within_tolerance() {
        let ours = from_batches(&[batch()]).unwrap();
        let theirs = from_json(&serde_json::json!([
            [null, 1, -0.05, "1970-01-01"],
            ["b", 2, 123.450000001, "1995-03-15"]
        ]))
        .unwrap();
        compare("tributary", &ours, "duckdb", &theirs).unwrap();
    }

    #[test]
    fn a_wrong_value_or_a_missing_row_is_reported() {
        let ours = from_batches(&[batch()]).unwrap();
        let wrong = from_json(&serde_json::json!([
            [null, 1, -0.05, "1970-01-01"],
            ["b", 2, 123.46, "1995-03-15"]
        ]))
        .unwrap();
        let e = compare("tributary", &ours, "duckdb", &wrong).unwrap_err();
        assert!(e.contains("differ at sorted row 1"), "{e}");
        let e = compare("tributary", &ours, "duckdb", &wrong[..1].to_vec()).unwrap_err();
        assert!(e.contains("2 rows, duckdb 1 rows"), "{e}");
    }

    #[test]
    fn digests_ignore_order_and_batching_and_count_differing_rows() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("x", DataType::Float64, false),
        ]));
        let make = |k: Vec<Option<&str>>, x: Vec<f64>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(arrow::array::StringArray::from(k)),
                    Arc::new(arrow::array::Float64Array::from(x)),
                ],
            )
            .unwrap()
        };
        let one =
            row_digests(&[make(vec![Some("a"), None, Some("c")], vec![1.0, 0.0, 2.5])]).unwrap();
        // Other order, two batches, -0.0 for 0.0, a float off in the 12th digit.
        let other = row_digests(&[
            make(vec![Some("c")], vec![2.500000000001]),
            make(vec![None, Some("a")], vec![-0.0, 1.0]),
        ])
        .unwrap();
        assert_eq!(one.len(), 3);
        assert_eq!(one, other);
        assert_eq!(digest_difference(&one, &other), 0);
        let wrong =
            row_digests(&[make(vec![Some("a"), None, Some("c")], vec![1.0, 0.0, 2.6])]).unwrap();
        assert_eq!(digest_difference(&one, &wrong), 2);
        assert_eq!(digest_difference(&one, &one[..2]), 1);
    }
}

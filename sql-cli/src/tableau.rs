//! The `tableau` view of a STREAMING result: changelog rows printed as they
//! arrive, in a table whose column widths are fixed up front.
//!
//! Why fixed widths: a BATCH table is sized from all its rows, but a
//! changelog never ends, so the header is printed before any row and every
//! later row must line up with it. As Flink's SQL client does, each column
//! gets a width from its Arrow type (enough for any value of a number,
//! date or timestamp type; [`TEXT_WIDTH`] for text and other types) and its
//! name; a longer value is cut to the width and ends in `...`.
//!
//! ```text
//! +----+----------------------+----------------------+
//! | op | carrier              |             count(*) |
//! +----+----------------------+----------------------+
//! | +I | UA                   |                    1 |
//! | -U | UA                   |                    1 |
//! | +U | UA                   |                    2 |
//! +----+----------------------+----------------------+
//! Received a total of 3 rows (0.012 sec)
//! ```
//!
//! Numbers are right-aligned, everything else left-aligned; nulls show as
//! `NULL`, values are formatted as in BATCH tables (arrow's display).
//! Control characters (a newline in a string) show as spaces so a row stays
//! on one line. Widths count characters, not terminal cells.

use std::time::Duration;

use arrow::datatypes::{DataType, Schema, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// The width of text columns (and of types without a natural bound).
pub const TEXT_WIDTH: usize = 20;
/// The widest a column gets for the sake of its name.
pub const MAX_NAME_WIDTH: usize = 30;
/// The width of the `op` column: `+I`, `-U`, `+U`, `-D`.
const OP_WIDTH: usize = 2;
/// Nulls print as this, so a nullable column is at least this wide.
const NULL: &str = "NULL";

/// One column of the tableau: its name, width and alignment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    width: usize,
    right: bool,
}

/// A tableau being printed: the fixed layout and the rows printed so far.
#[derive(Debug)]
pub struct Tableau {
    columns: Vec<Column>,
    rows: u64,
}

impl Tableau {
    /// The layout for a changelog of `schema` (the first column is `op`).
    pub fn new(schema: &Schema) -> Self {
        let columns = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let width = if i == 0 {
                    OP_WIDTH
                } else {
                    column_width(f.name(), f.data_type(), f.is_nullable())
                };
                Column {
                    name: f.name().clone(),
                    width,
                    right: is_number(f.data_type()),
                }
            })
            .collect();
        Self { columns, rows: 0 }
    }

    /// The header: a border, the column names, a border.
    pub fn header(&self) -> String {
        let border = self.border();
        let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
        format!("{border}{}{border}", self.line(&names))
    }

    /// The lines of `batch`'s rows.
    ///
    /// # Errors
    /// A column arrow cannot format.
    pub fn rows(&mut self, batch: &RecordBatch) -> Result<String, ArrowError> {
        let options = FormatOptions::default()
            .with_null(NULL)
            .with_display_error(true);
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = String::new();
        let mut cells = Vec::with_capacity(formatters.len());
        for row in 0..batch.num_rows() {
            cells.clear();
            cells.extend(formatters.iter().map(|f| f.value(row).to_string()));
            let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
            out.push_str(&self.line(&cells));
        }
        self.rows += batch.num_rows() as u64;
        Ok(out)
    }

    /// The end: a border and `Received a total of N rows (S sec)`.
    pub fn footer(&self, elapsed: Duration) -> String {
        let noun = if self.rows == 1 { "row" } else { "rows" };
        format!(
            "{}Received a total of {} {noun} ({:.3} sec)\n",
            self.border(),
            self.rows,
            elapsed.as_secs_f64()
        )
    }

    /// `+----+-----+` with the column widths.
    fn border(&self) -> String {
        let mut line = String::from("+");
        for c in &self.columns {
            line.push_str(&"-".repeat(c.width + 2));
            line.push('+');
        }
        line.push('\n');
        line
    }

    /// `| a  |  1 |`: `cells` fitted to the columns.
    fn line(&self, cells: &[&str]) -> String {
        let mut line = String::from("|");
        for (c, cell) in self.columns.iter().zip(cells) {
            let text = fit(cell, c.width);
            let pad = " ".repeat(c.width - text.chars().count());
            if c.right {
                line.push_str(&format!(" {pad}{text} |"));
            } else {
                line.push_str(&format!(" {text}{pad} |"));
            }
        }
        line.push('\n');
        line
    }
}

/// The width of a data column: enough for any value of its type (or
/// [`TEXT_WIDTH`]), for its name (up to [`MAX_NAME_WIDTH`]), and for `NULL`
/// if it is nullable.
pub fn column_width(name: &str, data_type: &DataType, nullable: bool) -> usize {
    let name = name.chars().count().min(MAX_NAME_WIDTH);
    let null = if nullable { NULL.len() } else { 1 };
    type_width(data_type).max(name).max(null)
}

/// The longest text of a value of `data_type`, or [`TEXT_WIDTH`] for types
/// without a useful bound (strings, binary, nested types).
pub fn type_width(data_type: &DataType) -> usize {
    use DataType::*;
    match data_type {
        Null => NULL.len(),
        Boolean => "false".len(),
        Int8 => "-128".len(),
        Int16 => "-32768".len(),
        Int32 => "-2147483648".len(),
        Int64 => "-9223372036854775808".len(),
        UInt8 => "255".len(),
        UInt16 => "65535".len(),
        UInt32 => "4294967295".len(),
        UInt64 => "18446744073709551615".len(),
        Float16 => 10,
        Float32 => 15,
        Float64 => 20,
        Decimal32(p, s) | Decimal64(p, s) => decimal_width(*p, *s),
        Decimal128(p, s) | Decimal256(p, s) => decimal_width(*p, *s),
        Date32 => "2013-01-01".len(),
        Date64 => "2013-01-01T00:00:00".len(),
        Time32(unit) | Time64(unit) => "00:00:00".len() + fraction_width(unit),
        // `2013-01-01T10:00:00.000`, then `+00:00` with a time zone.
        Timestamp(unit, tz) => {
            "2013-01-01T10:00:00".len() + fraction_width(unit) + tz.as_ref().map_or(0, |_| 6)
        }
        _ => TEXT_WIDTH,
    }
}

/// `-` and the digits of DECIMAL(p, s), with the point and a leading `0`
/// when there is no integer digit.
fn decimal_width(precision: u8, scale: i8) -> usize {
    let (p, s) = (usize::from(precision), scale.max(0).unsigned_abs() as usize);
    1 + p + usize::from(s > 0) + usize::from(s >= p)
}

/// The `.123` of a time in `unit`.
fn fraction_width(unit: &TimeUnit) -> usize {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 4,
        TimeUnit::Microsecond => 7,
        TimeUnit::Nanosecond => 10,
    }
}

/// Whether values of `data_type` are numbers (right-aligned).
fn is_number(data_type: &DataType) -> bool {
    data_type.is_numeric()
}

/// `text` on one line, cut to `width` characters with `...` at the end if
/// it is longer.
pub fn fit(text: &str, width: usize) -> String {
    let clean = |c: char| if c.is_control() { ' ' } else { c };
    if text.chars().count() <= width {
        return text.chars().map(clean).collect();
    }
    let ellipsis = "...";
    let keep = width.saturating_sub(ellipsis.len());
    let mut out: String = text.chars().take(keep).map(clean).collect();
    out.extend(ellipsis.chars().take(width - keep));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::Field;

    #[test]
    fn widths_come_from_types_and_names() {
        assert_eq!(type_width(&DataType::Int32), 11);
        assert_eq!(type_width(&DataType::Int64), 20);
        assert_eq!(
            type_width(&DataType::Timestamp(TimeUnit::Millisecond, None)),
            23
        );
        assert_eq!(
            type_width(&DataType::Timestamp(TimeUnit::Second, Some("UTC".into()))),
            25
        );
        assert_eq!(type_width(&DataType::Date32), 10);
        assert_eq!(type_width(&DataType::Utf8), TEXT_WIDTH);
        // -99999999.99, -0.99999, -99999
        assert_eq!(type_width(&DataType::Decimal128(10, 2)), 12);
        assert_eq!(type_width(&DataType::Decimal128(5, 5)), 8);
        assert_eq!(type_width(&DataType::Decimal128(5, 0)), 6);
        assert_eq!(column_width("flag", &DataType::Boolean, false), 5);
        assert_eq!(column_width("b", &DataType::Int8, true), 4, "room for NULL");
        assert_eq!(column_width("b", &DataType::UInt8, false), 3);
        assert_eq!(
            column_width("a_rather_long_name", &DataType::Int32, false),
            18,
            "the name widens"
        );
        assert_eq!(
            column_width(&"n".repeat(50), &DataType::Int32, false),
            MAX_NAME_WIDTH
        );
    }

    #[test]
    fn long_values_are_cut_with_an_ellipsis() {
        assert_eq!(fit("short", 8), "short");
        assert_eq!(fit("exactly8", 8), "exactly8");
        assert_eq!(fit("much too long", 8), "much ...");
        assert_eq!(fit("ééééééééé", 5), "éé...", "characters, not bytes");
        assert_eq!(fit("a\nb", 5), "a b");
        assert_eq!(fit("abcdef", 2), "..");
    }

    fn changelog_batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("op", DataType::Utf8, false),
            Field::new("carrier", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["+I", "-U", "+U"])),
            Arc::new(StringArray::from(vec![
                Some("UA"),
                Some("UA"),
                Some("a carrier with a long name"),
            ])),
            Arc::new(Int64Array::from(vec![1, 1, 22])),
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(1_357_034_400_000),
                None,
                Some(1_357_034_400_123),
            ])),
        ];
        RecordBatch::try_new(schema, columns).unwrap()
    }

    #[test]
    fn rows_line_up_with_the_header() {
        let batch = changelog_batch();
        let mut tableau = Tableau::new(&batch.schema());
        let header = tableau.header();
        let rows = tableau.rows(&batch).unwrap();
        let footer = tableau.footer(Duration::from_millis(1500));
        let text = format!("{header}{rows}{footer}");
        let expected = "\
+----+----------------------+----------------------+-------------------------+
| op | carrier              |                    n | t                       |
+----+----------------------+----------------------+-------------------------+
| +I | UA                   |                    1 | 2013-01-01T10:00:00     |
| -U | UA                   |                    1 | NULL                    |
| +U | a carrier with a ... |                   22 | 2013-01-01T10:00:00.123 |
+----+----------------------+----------------------+-------------------------+
Received a total of 3 rows (1.500 sec)
";
        assert_eq!(text, expected);
    }

    #[test]
    fn one_row_is_a_row() {
        let batch = changelog_batch().slice(0, 1);
        let mut tableau = Tableau::new(&batch.schema());
        tableau.rows(&batch).unwrap();
        assert!(
            tableau
                .footer(Duration::ZERO)
                .ends_with("Received a total of 1 row (0.000 sec)\n")
        );
    }
}

//! Decoding CSV and newline-delimited JSON files into typed Arrow batches,
//! with Flink's parse-error policy (`csv.ignore-parse-errors`,
//! `json.ignore-parse-errors`).
//!
//! Why our own loop instead of DataFusion's CSV/JSON scans: DataFusion stops
//! at the first bad value and its error names neither the file nor a line in
//! it, and it has no way to skip bad rows. Here:
//!
//! * **CSV** records are split by simd-csv, which finds field separators
//!   with SIMD string search (several times the speed of `csv-core`'s
//!   byte-at-a-time state machine, which was two thirds of a CSV scan's CPU
//!   time). The fields are gathered as `Utf8View` columns and cast to the
//!   declared types a batch at a time by Arrow's `cast` kernel, where a value
//!   that is not empty but casts to NULL is malformed. When a record has the
//!   wrong number of fields or a read field is not UTF-8, the file is read
//!   again record by record to report the first bad row (the query fails
//!   either way). With
//!   `csv.ignore-parse-errors`, `csv.escape-character` or
//!   `csv.allow-comments` the file is split by the `csv` crate instead,
//!   which can step over a malformed record and knows escapes and comments;
//!   that slower path runs only when asked for.
//! * **JSON** lines are decoded by arrow-json a chunk of lines at a time; only
//!   a chunk that fails is decoded again line by line, to find the bad line
//!   and keep the good ones.
//!
//! Only the columns a query reads are decoded (the scan's projection, as
//! Flink's filesystem source pushes projections into its formats): a CSV
//! record is still split into all its fields, and its field count checked,
//! but only the projected fields are built into arrays and cast, so a bad
//! value in a column the query does not read is neither an error nor a
//! skipped row. `STRING` columns (`Utf8View`) are built directly, with no
//! cast.
//!
//! Line numbers are 1-based physical lines of the file (the CSV header counts
//! as line 1). For CSV they assume no record spans lines inside quotes.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, StringViewBuilder};
use arrow::compute::kernels::cast::{CastOptions, cast_with_options};
use arrow::compute::{and, filter_record_batch, is_not_null, is_null, not, or};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::ConnectorError;

/// Rows per decoded batch.
pub const BATCH_ROWS: usize = 8192;

/// What to do with a row that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorPolicy {
    /// Stop the query with an error naming the file and line (Flink's default).
    Fail,
    /// Skip the row and count it (`*.ignore-parse-errors = 'true'`).
    Skip,
}

/// CSV dialect options, from Flink's `csv.*` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvDialect {
    /// `csv.field-delimiter`, default `,`.
    pub delimiter: u8,
    /// `csv.quote-character`, default `"`.
    pub quote: u8,
    /// `csv.escape-character`, default none.
    pub escape: Option<u8>,
    /// `csv.allow-comments`: lines starting with `#` are skipped.
    pub allow_comments: bool,
    /// `csv.header`: the first line holds the column names (Tributary's key;
    /// Flink has none). Default true.
    pub header: bool,
}

/// Called with each decoded batch; returns false to stop reading (the
/// consumer went away).
pub type BatchSink<'a> = dyn FnMut(RecordBatch) -> bool + 'a;

/// Which columns of a file's `schema` to decode: indices into it (`None`:
/// all), and the schema of the batches produced.
#[derive(Debug, Clone)]
pub struct Projection {
    /// Indices into the file's schema, in output order.
    pub columns: Vec<usize>,
    /// The file's schema projected to `columns`.
    pub schema: SchemaRef,
}

impl Projection {
    /// `columns` of `schema` (`None`: every column).
    ///
    /// # Errors
    /// An index out of range.
    pub fn new(schema: &SchemaRef, columns: Option<&[usize]>) -> Result<Self, ConnectorError> {
        let columns: Vec<usize> = match columns {
            Some(c) => c.to_vec(),
            None => (0..schema.fields().len()).collect(),
        };
        let schema = Arc::new(schema.project(&columns)?);
        Ok(Self { columns, schema })
    }
}

/// Decodes one CSV file of `schema` into batches of `projection`'s columns,
/// passing each to `sink`. Returns the number of rows skipped under
/// [`ParseErrorPolicy::Skip`].
///
/// # Errors
/// [`ConnectorError::Malformed`] (file and line) for a bad row under
/// [`ParseErrorPolicy::Fail`]; [`ConnectorError::Io`] if the file cannot be read.
pub fn decode_csv_file(
    path: &Path,
    dialect: &CsvDialect,
    schema: &SchemaRef,
    projection: &Projection,
    policy: ParseErrorPolicy,
    sink: &mut BatchSink<'_>,
) -> Result<u64, ConnectorError> {
    match policy {
        ParseErrorPolicy::Skip => {
            decode_csv_records(path, dialect, schema, projection, policy, sink)
        }
        ParseErrorPolicy::Fail => match decode_csv_fast(path, dialect, schema, projection, sink) {
            // The fast path stops at a record with the wrong number of
            // fields before the values of earlier rows in its batch are
            // checked. Report the first bad row of the file: read it again
            // record by record (the query fails either way).
            Err(structural @ ConnectorError::Malformed { .. }) if is_structural(&structural) => {
                decode_csv_records(path, dialect, schema, projection, policy, &mut |_| true)?;
                Err(structural)
            }
            other => other,
        },
    }
}

fn is_structural(e: &ConnectorError) -> bool {
    matches!(e, ConnectorError::Malformed { message, .. } if message.starts_with("malformed CSV row"))
}

/// The fast path, for Flink's default dialect (no escape character, no
/// comment lines): simd-csv finds each record's field separators with SIMD
/// string search, the projected fields are appended to `Utf8View` columns
/// (a value of up to 12 bytes is stored inline, a longer one copied once),
/// and [`cast_checked`] parses a batch of them at a time with the `cast`
/// kernel. A record with the wrong number of fields, or a read field that is
/// not UTF-8, is a structural error, which the caller locates by reading the file again.
fn decode_csv_fast(
    path: &Path,
    dialect: &CsvDialect,
    schema: &SchemaRef,
    projection: &Projection,
    sink: &mut BatchSink<'_>,
) -> Result<u64, ConnectorError> {
    if dialect.escape.is_some() || dialect.allow_comments {
        // simd-csv knows only quote doubling and no comment lines.
        return decode_csv_records(
            path,
            dialect,
            schema,
            projection,
            ParseErrorPolicy::Fail,
            sink,
        );
    }
    let file = File::open(path).map_err(|source| io_error(path, source))?;
    let mut reader = simd_csv::ZeroCopyReaderBuilder::with_capacity(1 << 20)
        .delimiter(dialect.delimiter)
        .quote(dialect.quote)
        .has_headers(dialect.header)
        .flexible(true)
        .from_reader(file);
    let header_lines = u64::from(dialect.header);
    let width = schema.fields().len();
    let raw_schema = as_text_view(&projection.schema);
    let mut columns = text_view_builders(projection);
    let mut rows = 0usize; // records in `columns`
    let mut rows_before = 0u64; // records of this file already handed on
    // Casts the records gathered so far and hands them on; false to stop.
    let mut flush = |columns: &mut Vec<StringViewBuilder>, rows: &mut usize, before: &mut u64| {
        if *rows == 0 {
            return Ok::<bool, ConnectorError>(true);
        }
        let raw = finish_text_views(&raw_schema, columns, *rows)?;
        let first = *before;
        *before += *rows as u64;
        *rows = 0;
        let lines = |row: usize| first + row as u64 + 1 + header_lines;
        let typed = cast_checked(
            &raw,
            &projection.schema,
            path,
            &lines,
            ParseErrorPolicy::Fail,
        )?;
        Ok(typed.batch.num_rows() == 0 || sink(typed.batch))
    };
    loop {
        let record = match reader.read_byte_record() {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(e) => {
                flush(&mut columns, &mut rows, &mut rows_before)?;
                let line = rows_before + 1 + header_lines;
                let message = e.to_string();
                return Err(match e.into_kind() {
                    simd_csv::ErrorKind::Io(source) => io_error(path, source),
                    _ => malformed_csv(path, line, &message),
                });
            }
        };
        let line = rows_before + rows as u64 + 1 + header_lines;
        if record.len() != width {
            let what = format!(
                "incorrect number of fields, expected {width} got {}",
                record.len()
            );
            return Err(malformed_csv(path, line, &what));
        }
        // One check of the whole record is far cheaper than one per field;
        // only when it fails are the read fields checked one by one.
        let text = std::str::from_utf8(record.as_slice()).ok();
        for (builder, &column) in columns.iter_mut().zip(&projection.columns) {
            match record_field(&record, text, column) {
                Some(Ok(field)) if !field.is_empty() => builder.append_value(field),
                Some(Ok(_)) | None => builder.append_null(),
                Some(Err(_)) => return Err(malformed_csv(path, line, "invalid UTF-8")),
            }
        }
        rows += 1;
        if rows == BATCH_ROWS && !flush(&mut columns, &mut rows, &mut rows_before)? {
            return Ok(0);
        }
    }
    flush(&mut columns, &mut rows, &mut rows_before)?;
    Ok(0)
}

/// Field `column` of `record`, unquoted and unescaped (`""` inside quotes
/// is one `"`), as text. `text` is the whole record when it is UTF-8: an
/// unquoted field is then a slice of it, not checked again. Otherwise only
/// the field itself must be UTF-8 (only the fields a query reads are
/// decoded).
fn record_field<'a>(
    record: &'a simd_csv::ZeroCopyByteRecord<'_>,
    text: Option<&'a str>,
    column: usize,
) -> Option<Result<std::borrow::Cow<'a, str>, std::str::Utf8Error>> {
    use std::borrow::Cow;
    Some(match record.unescape(column)? {
        Cow::Borrowed(field) => {
            // `field` lies inside the record's bytes: its offset there.
            let start = field.as_ptr() as usize - record.as_slice().as_ptr() as usize;
            match text.and_then(|t| t.get(start..start + field.len())) {
                Some(field) => Ok(Cow::Borrowed(field)),
                None => std::str::from_utf8(field).map(Cow::Borrowed),
            }
        }
        Cow::Owned(field) => String::from_utf8(field)
            .map(Cow::Owned)
            .map_err(|e| e.utf8_error()),
    })
}

fn text_view_builders(projection: &Projection) -> Vec<StringViewBuilder> {
    projection
        .columns
        .iter()
        .map(|_| StringViewBuilder::with_capacity(BATCH_ROWS))
        .collect()
}

/// The gathered text columns as a batch of `rows` rows of `raw_schema`.
fn finish_text_views(
    raw_schema: &SchemaRef,
    columns: &mut [StringViewBuilder],
    rows: usize,
) -> Result<RecordBatch, ConnectorError> {
    let arrays: Vec<ArrayRef> = columns
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    Ok(RecordBatch::try_new_with_options(
        raw_schema.clone(),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

/// The record-by-record path, for skipping malformed rows: the `csv` crate
/// splits records (it can step over one with the wrong number of fields),
/// the values are still cast a batch at a time.
fn decode_csv_records(
    path: &Path,
    dialect: &CsvDialect,
    schema: &SchemaRef,
    projection: &Projection,
    policy: ParseErrorPolicy,
    sink: &mut BatchSink<'_>,
) -> Result<u64, ConnectorError> {
    let file = File::open(path).map_err(|source| io_error(path, source))?;
    let mut builder = csv::ReaderBuilder::new();
    builder
        .has_headers(dialect.header)
        .delimiter(dialect.delimiter)
        .quote(dialect.quote)
        .escape(dialect.escape)
        .flexible(true);
    if dialect.allow_comments {
        builder.comment(Some(b'#'));
    }
    let mut reader = builder.from_reader(BufReader::with_capacity(1 << 20, file));
    let width = schema.fields().len();
    let raw_schema = as_text_view(&projection.schema);
    let mut columns = text_view_builders(projection);
    let mut lines: Vec<u64> = Vec::with_capacity(BATCH_ROWS);
    let mut record = csv::ByteRecord::new();
    let mut skipped = 0;
    // Casts the rows gathered so far and hands them on; false to stop.
    let mut flush =
        |columns: &mut Vec<StringViewBuilder>, lines: &mut Vec<u64>, skipped: &mut u64| {
            if lines.is_empty() {
                return Ok::<bool, ConnectorError>(true);
            }
            let raw = finish_text_views(&raw_schema, columns, lines.len())?;
            let batch_lines = std::mem::take(lines);
            let typed = cast_checked(
                &raw,
                &projection.schema,
                path,
                &|row| batch_lines[row],
                policy,
            )?;
            *skipped += typed.skipped;
            Ok(typed.batch.num_rows() == 0 || sink(typed.batch))
        };
    loop {
        let line = reader.position().line();
        let more = match reader.read_byte_record(&mut record) {
            Ok(more) => more,
            Err(e) => {
                // An unreadable record (e.g. invalid UTF-8 in a quoted field).
                if policy == ParseErrorPolicy::Fail {
                    flush(&mut columns, &mut lines, &mut skipped)?;
                    return Err(malformed_csv(path, line, &e.to_string()));
                }
                skipped += 1;
                continue;
            }
        };
        if !more {
            flush(&mut columns, &mut lines, &mut skipped)?;
            return Ok(skipped);
        }
        let line = record.position().map(|p| p.line()).unwrap_or(line);
        // Only the fields the query reads must be UTF-8 (as on the fast path).
        let fields: Option<Vec<&str>> = (record.len() == width)
            .then(|| {
                projection
                    .columns
                    .iter()
                    .map(|&c| std::str::from_utf8(&record[c]).ok())
                    .collect()
            })
            .flatten();
        if let Some(fields) = fields {
            for (builder, field) in columns.iter_mut().zip(fields) {
                if field.is_empty() {
                    builder.append_null()
                } else {
                    builder.append_value(field)
                }
            }
            lines.push(line);
            if lines.len() == BATCH_ROWS && !flush(&mut columns, &mut lines, &mut skipped)? {
                return Ok(skipped);
            }
        } else if policy == ParseErrorPolicy::Fail {
            // Rows before this one may hold an earlier error: check them first.
            flush(&mut columns, &mut lines, &mut skipped)?;
            let what = if record.len() == width {
                "invalid UTF-8".to_string()
            } else {
                format!(
                    "incorrect number of fields, expected {width} got {}",
                    record.len()
                )
            };
            return Err(malformed_csv(path, line, &what));
        } else {
            skipped += 1;
        }
    }
}

fn malformed_csv(path: &Path, line: u64, what: &str) -> ConnectorError {
    ConnectorError::Malformed {
        file: path.display().to_string(),
        line,
        message: format!("malformed CSV row: {what}"),
        hint: Some(
            "fix the row, or set 'csv.ignore-parse-errors' = 'true' to skip malformed rows".into(),
        ),
    }
}

/// Decodes one newline-delimited JSON file into batches of `projection`'s
/// columns (other keys of an object are not decoded). Returns the number of
/// rows skipped under [`ParseErrorPolicy::Skip`].
///
/// # Errors
/// [`ConnectorError::Malformed`] (file and line) for a bad line under
/// [`ParseErrorPolicy::Fail`]; [`ConnectorError::Io`] if the file cannot be read.
pub fn decode_json_file(
    path: &Path,
    projection: &Projection,
    policy: ParseErrorPolicy,
    sink: &mut BatchSink<'_>,
) -> Result<u64, ConnectorError> {
    let schema = &projection.schema;
    let file = File::open(path).map_err(|source| io_error(path, source))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut skipped = 0;
    let mut chunk: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut line_ends: Vec<usize> = Vec::with_capacity(BATCH_ROWS); // end offset of each line in `chunk`
    let mut first_line = 1u64; // line number of the chunk's first line
    loop {
        let n = reader
            .read_until(b'\n', &mut chunk)
            .map_err(|source| io_error(path, source))?;
        if n > 0 {
            line_ends.push(chunk.len());
        }
        let full = line_ends.len() == BATCH_ROWS || chunk.len() >= (4 << 20);
        if (n == 0 || full) && !line_ends.is_empty() {
            let batch = decode_json_chunk(
                path,
                schema,
                policy,
                &chunk,
                &line_ends,
                first_line,
                &mut skipped,
            )?;
            if batch.num_rows() > 0 && !sink(batch) {
                return Ok(skipped);
            }
            first_line += line_ends.len() as u64;
            chunk.clear();
            line_ends.clear();
        }
        if n == 0 {
            return Ok(skipped);
        }
    }
}

fn json_decoder(
    schema: &SchemaRef,
    rows: usize,
) -> Result<arrow::json::reader::Decoder, ConnectorError> {
    Ok(arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(rows.max(1))
        .build_decoder()?)
}

/// Decodes the whole chunk at once; if that fails, line by line.
fn decode_json_chunk(
    path: &Path,
    schema: &SchemaRef,
    policy: ParseErrorPolicy,
    chunk: &[u8],
    line_ends: &[usize],
    first_line: u64,
    skipped: &mut u64,
) -> Result<RecordBatch, ConnectorError> {
    let whole = (|| {
        let mut decoder = json_decoder(schema, line_ends.len())?;
        let mut rest = chunk;
        while !rest.is_empty() {
            let used = decoder.decode(rest)?;
            if used == 0 {
                break;
            }
            rest = &rest[used..];
        }
        Ok::<_, ConnectorError>(decoder.flush()?)
    })();
    if let Ok(batch) = whole {
        return Ok(batch.unwrap_or_else(|| RecordBatch::new_empty(schema.clone())));
    }
    // Slow path: find the bad lines.
    let mut good = Vec::new();
    let mut start = 0;
    for (i, &end) in line_ends.iter().enumerate() {
        let line = &chunk[start..end];
        start = end;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let one = (|| {
            let mut decoder = json_decoder(schema, 1)?;
            decoder.decode(line)?;
            if decoder.has_partial_record() {
                return Err(ConnectorError::from(arrow::error::ArrowError::JsonError(
                    "incomplete JSON value".into(),
                )));
            }
            Ok::<_, ConnectorError>(decoder.flush()?)
        })();
        match (one, policy) {
            (Ok(Some(batch)), _) => good.push(batch),
            (Ok(None), _) => {}
            (Err(_), ParseErrorPolicy::Skip) => *skipped += 1,
            (Err(e), ParseErrorPolicy::Fail) => {
                return Err(ConnectorError::Malformed {
                    file: path.display().to_string(),
                    line: first_line + i as u64,
                    message: format!("malformed JSON row: {}", arrow_message(&e)),
                    hint: Some(
                        "set 'json.ignore-parse-errors' = 'true' to skip malformed rows".into(),
                    ),
                });
            }
        }
    }
    Ok(arrow::compute::concat_batches(schema, &good)?)
}

struct Checked {
    batch: RecordBatch,
    skipped: u64,
}

/// Casts each text column of `raw` to its type in `schema`; a value that is
/// not NULL as text but NULL after the cast did not parse.
fn cast_checked(
    raw: &RecordBatch,
    schema: &SchemaRef,
    path: &Path,
    line_of_row: &dyn Fn(usize) -> u64,
    policy: ParseErrorPolicy,
) -> Result<Checked, ConnectorError> {
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    let mut columns = Vec::with_capacity(schema.fields().len());
    let mut bad: Option<BooleanArray> = None;
    // Under Fail: the first bad (row, column), rows first, so the error names
    // the first bad line of the file.
    let mut first_bad: Option<(usize, usize)> = None;
    for (col, (field, text)) in schema.fields().iter().zip(raw.columns()).enumerate() {
        let typed = cast_with_options(text, field.data_type(), &options)?;
        // Only text cast to another type can fail.
        if is_text(text.data_type()) && !is_text(field.data_type()) {
            let failed = and(&is_not_null(text)?, &is_null(&typed)?)?;
            if failed.true_count() > 0 {
                if policy == ParseErrorPolicy::Fail {
                    let row = failed.iter().position(|b| b == Some(true)).unwrap_or(0);
                    if first_bad.is_none_or(|(r, _)| row < r) {
                        first_bad = Some((row, col));
                    }
                }
                bad = Some(match bad {
                    None => failed,
                    Some(b) => or(&b, &failed)?,
                });
            }
        }
        columns.push(typed);
    }
    if let Some((row, col)) = first_bad {
        let field = schema.field(col);
        let value = ArrayFormatter::try_new(raw.column(col).as_ref(), &FormatOptions::default())?
            .value(row)
            .to_string();
        return Err(ConnectorError::Malformed {
            file: path.display().to_string(),
            line: line_of_row(row),
            message: format!(
                "cannot parse '{value}' as {} for column '{}'",
                sql_type_name(field.data_type()),
                field.name()
            ),
            hint: Some(
                "fix the row, or set 'csv.ignore-parse-errors' = 'true' to skip malformed rows"
                    .into(),
            ),
        });
    }
    let batch = RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(raw.num_rows())),
    )?;
    match bad {
        None => Ok(Checked { batch, skipped: 0 }),
        Some(bad) => {
            let skipped = bad.true_count() as u64;
            Ok(Checked {
                batch: filter_record_batch(&batch, &not(&bad)?)?,
                skipped,
            })
        }
    }
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// `schema` with every column as nullable `Utf8View`: the decoded text,
/// before [`cast_checked`] gives each column its type.
fn as_text_view(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), DataType::Utf8View, true))
            .collect::<Vec<_>>(),
    ))
}

fn arrow_message(e: &ConnectorError) -> String {
    let s = e.to_string();
    for prefix in [
        "Arrow error: ",
        "Csv error: ",
        "Json error: ",
        "Parser error: ",
    ] {
        if let Some(rest) = s.strip_prefix(prefix) {
            return rest
                .strip_prefix("Csv error: ")
                .or_else(|| rest.strip_prefix("Json error: "))
                .unwrap_or(rest)
                .to_string();
        }
    }
    s
}

fn io_error(path: &Path, source: std::io::Error) -> ConnectorError {
    ConnectorError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The SQL name of an Arrow type, as `DESCRIBE` and error messages show it
/// (Flink's names: `INT`, `BIGINT`, `STRING`, `TIMESTAMP(3)`, ...).
pub fn sql_type_name(t: &DataType) -> String {
    use arrow::datatypes::TimeUnit;
    match t {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "TINYINT UNSIGNED".into(),
        DataType::UInt16 => "SMALLINT UNSIGNED".into(),
        DataType::UInt32 => "INT UNSIGNED".into(),
        DataType::UInt64 => "BIGINT UNSIGNED".into(),
        DataType::Float16 | DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTES".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Timestamp(unit, tz) => {
            let p = match unit {
                TimeUnit::Second => 0,
                TimeUnit::Millisecond => 3,
                TimeUnit::Microsecond => 6,
                TimeUnit::Nanosecond => 9,
            };
            if tz.is_some() {
                format!("TIMESTAMP_LTZ({p})")
            } else {
                format!("TIMESTAMP({p})")
            }
        }
        DataType::Time32(_) | DataType::Time64(_) => "TIME".into(),
        DataType::Interval(_) | DataType::Duration(_) => "INTERVAL".into(),
        DataType::Null => "NULL".into(),
        other => other.to_string().to_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use std::io::Write;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn write(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    fn dialect() -> CsvDialect {
        CsvDialect {
            delimiter: b',',
            quote: b'"',
            escape: None,
            allow_comments: false,
            header: true,
        }
    }

    fn collect_csv(
        content: &str,
        policy: ParseErrorPolicy,
    ) -> Result<(Vec<RecordBatch>, u64), ConnectorError> {
        collect_projected_csv(content, None, policy)
    }

    fn collect_projected_csv(
        content: &str,
        columns: Option<&[usize]>,
        policy: ParseErrorPolicy,
    ) -> Result<(Vec<RecordBatch>, u64), ConnectorError> {
        decode_csv_with(&schema(), content, columns, policy)
    }

    /// `content` decoded as a CSV file of `schema`: the batches, the rows skipped.
    fn decode_csv_with(
        schema: &SchemaRef,
        content: &str,
        columns: Option<&[usize]>,
        policy: ParseErrorPolicy,
    ) -> Result<(Vec<RecordBatch>, u64), ConnectorError> {
        let f = write(content);
        let mut out = Vec::new();
        let projection = Projection::new(schema, columns)?;
        let skipped = decode_csv_file(
            f.path(),
            &dialect(),
            schema,
            &projection,
            policy,
            &mut |b| {
                out.push(b);
                true
            },
        )?;
        Ok((out, skipped))
    }

    #[test]
    fn csv_projection_decodes_only_the_asked_columns_in_their_order() {
        for policy in [ParseErrorPolicy::Fail, ParseErrorPolicy::Skip] {
            // 'x' is no BIGINT, but `id` is not read: no error, nothing skipped.
            let (batches, skipped) =
                collect_projected_csv("id,name\n1,a\nx,b\n", Some(&[1]), policy).unwrap();
            assert_eq!(skipped, 0);
            let b = &batches[0];
            assert_eq!(b.num_columns(), 1);
            assert_eq!(b.schema().field(0).name(), "name");
            let names = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            assert_eq!(names.iter().collect::<Vec<_>>(), vec![Some("a"), Some("b")]);
            // A record's field count is still checked.
            let err = collect_projected_csv("id,name\n1,a\n2,b,c\n", Some(&[1]), policy);
            match policy {
                ParseErrorPolicy::Fail => {
                    let err = err.unwrap_err().to_string();
                    assert!(err.contains(":3: malformed CSV row"), "{err}");
                }
                ParseErrorPolicy::Skip => assert_eq!(err.unwrap().1, 1),
            }
            // Reordered.
            let (batches, _) =
                collect_projected_csv("id,name\n1,a\n", Some(&[1, 0]), policy).unwrap();
            let ids = batches[0].column(1).as_any().downcast_ref::<Int64Array>();
            assert_eq!(ids.unwrap().value(0), 1);
        }
    }

    #[test]
    fn csv_numbers_and_timestamps_parse_as_the_cast_kernel_does() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, true),
            Field::new(
                "ts",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
                true,
            ),
            Field::new("ok", DataType::Boolean, true),
        ]));
        let decode = |content: &str| {
            decode_csv_with(&schema, content, None, ParseErrorPolicy::Fail).map(|(out, _)| out)
        };
        let batches = decode("x,ts,ok\n1.5,2023-01-01 00:00:00.001,yes\n,,\n").unwrap();
        let b = &batches[0];
        let ts = b
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::TimestampMillisecondArray>()
            .unwrap();
        assert_eq!(
            ts.iter().collect::<Vec<_>>(),
            vec![Some(1672531200001), None]
        );
        let x = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>();
        assert_eq!(x.unwrap().value(0), 1.5);
        // 'yes' is TRUE, as in the cast kernel.
        let ok = b.column(2).as_any().downcast_ref::<BooleanArray>().unwrap();
        assert_eq!(ok.iter().collect::<Vec<_>>(), vec![Some(true), None]);
        let err = decode("x,ts,ok\n1,2023-01-01 00:00:00,no\n2,soon,no\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":3: cannot parse 'soon' as TIMESTAMP(3) for column 'ts'"),
            "{err}"
        );
    }

    #[test]
    fn csv_string_view_columns_are_built_directly() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8View, true),
        ]));
        let (out, _) =
            decode_csv_with(&schema, "id,name\n1,a\n2,\n", None, ParseErrorPolicy::Fail).unwrap();
        let names = out[0]
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::StringViewArray>()
            .unwrap();
        assert_eq!(names.iter().collect::<Vec<_>>(), vec![Some("a"), None]);
    }

    #[test]
    fn csv_quotes_crlf_and_multibyte_text_decode_alike_on_both_paths() {
        // Quoted delimiters and newlines, doubled quotes, an empty quoted
        // field (NULL, as an empty one), CRLF line ends, a blank line,
        // non-ASCII text.
        let content = "id,name\r\n1,\"a,b\"\r\n\r\n\"2\",\"say \"\"hi\"\"\"\r\n3,\"\"\r\n4,\"two\nlines\"\n5,h\u{e9}llo w\u{f6}rld and long enough to be out of line\n";
        let expected = vec![
            (Some(1), Some("a,b")),
            (Some(2), Some("say \"hi\"")),
            (Some(3), None),
            (Some(4), Some("two\nlines")),
            (
                Some(5),
                Some("h\u{e9}llo w\u{f6}rld and long enough to be out of line"),
            ),
        ];
        for policy in [ParseErrorPolicy::Fail, ParseErrorPolicy::Skip] {
            let (batches, skipped) = collect_csv(content, policy).unwrap();
            assert_eq!(skipped, 0);
            let got: Vec<_> = batches
                .iter()
                .flat_map(|b| {
                    let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                    let names = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
                    ids.iter()
                        .zip(names.iter().map(|n| n.map(str::to_string)))
                        .collect::<Vec<_>>()
                })
                .collect();
            let expected: Vec<_> = expected
                .iter()
                .map(|(id, name)| (*id, name.map(str::to_string)))
                .collect();
            assert_eq!(got, expected, "{policy:?}");
        }
    }

    #[test]
    fn csv_invalid_utf8_in_a_read_column_names_the_line() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), b"id,name\n1,a\n2,\xff\xfe\n").unwrap();
        let projection = Projection::new(&schema(), None).unwrap();
        let decode = |policy| {
            decode_csv_file(
                f.path(),
                &dialect(),
                &schema(),
                &projection,
                policy,
                &mut |_| true,
            )
        };
        let err = decode(ParseErrorPolicy::Fail).unwrap_err().to_string();
        assert!(
            err.contains(":3: malformed CSV row: invalid UTF-8"),
            "{err}"
        );
        assert_eq!(decode(ParseErrorPolicy::Skip).unwrap(), 1);
    }

    #[test]
    fn csv_values_are_typed() {
        let (batches, skipped) =
            collect_csv("id,name\n1,a\n2,\n,c\n", ParseErrorPolicy::Fail).unwrap();
        assert_eq!(skipped, 0);
        let b = &batches[0];
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(ids.iter().collect::<Vec<_>>(), vec![Some(1), Some(2), None]);
        let names = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(names.value(0), "a");
    }

    #[test]
    fn csv_bad_value_names_file_and_line() {
        let err = collect_csv("id,name\n1,a\nx,b\n", ParseErrorPolicy::Fail)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":3: cannot parse 'x' as BIGINT for column 'id'"),
            "{err}"
        );
        assert!(err.contains("csv.ignore-parse-errors"), "{err}");
    }

    #[test]
    fn csv_wrong_field_count_names_the_line() {
        let err = collect_csv("id,name\n1,a\n2,b,extra\n", ParseErrorPolicy::Fail)
            .unwrap_err()
            .to_string();
        assert!(err.contains(":3: malformed CSV row"), "{err}");
    }

    #[test]
    fn csv_skip_policy_counts_bad_rows() {
        let (batches, skipped) = collect_csv(
            "id,name\n1,a\nx,b\n3,c,extra\n4,d\n",
            ParseErrorPolicy::Skip,
        )
        .unwrap();
        assert_eq!(skipped, 2);
        let ids: Vec<_> = batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .iter()
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(ids, vec![Some(1), Some(4)]);
    }

    #[test]
    fn json_bad_line_fails_or_is_skipped() {
        let f = write("{\"id\": 1, \"name\": \"a\"}\n{\"id\": \"oops\"}\n{\"id\": 3}\nnot json\n");
        let all = Projection::new(&schema(), None).unwrap();
        let err = decode_json_file(f.path(), &all, ParseErrorPolicy::Fail, &mut |_| true)
            .unwrap_err()
            .to_string();
        assert!(err.contains(":2: malformed JSON row"), "{err}");
        let mut rows = 0;
        let skipped = decode_json_file(f.path(), &all, ParseErrorPolicy::Skip, &mut |b| {
            rows += b.num_rows();
            true
        })
        .unwrap();
        assert_eq!((rows, skipped), (2, 2));
        // Only `name` is decoded: the bad `id` of line 2 is not read, the
        // line that is no JSON object still fails.
        let names = Projection::new(&schema(), Some(&[1])).unwrap();
        let mut rows = 0;
        let skipped = decode_json_file(f.path(), &names, ParseErrorPolicy::Skip, &mut |b| {
            assert_eq!(b.num_columns(), 1);
            rows += b.num_rows();
            true
        })
        .unwrap();
        assert_eq!((rows, skipped), (3, 1));
    }
}

//! Printing statement results in the four output formats of `--format`.
//!
//! * `table`: an aligned table (arrow's pretty printer), then `3 rows in set
//!   (0.012 sec)`, nulls shown as `NULL`; a statement without rows prints its status message
//!   (`Table 't' created.`).
//! * `csv`: a header line, then one line per row.
//! * `json`: one JSON array of objects (`[]` when there are no rows).
//! * `ndjson`: one JSON object per line.
//!
//! An `INSERT` prints how many rows it wrote (`2 rows inserted`), as a
//! status, rather than its one-row `count` table.
//!
//! In the machine-readable formats stdout carries the rows and nothing else:
//! status messages and notices go to stderr, so scripts can pipe stdout into
//! other tools. `csv` and `ndjson` print each batch as it arrives (a long or
//! endless query shows rows at once); `table` and `json` need every row
//! before they can print, so they collect first. JSON objects carry every
//! column, nulls included, so every object has the same keys.

use std::io::{self, Write};
use std::time::Instant;

use arrow::error::ArrowError;
use arrow::json::writer::{JsonArray, JsonFormat, LineDelimited};
use arrow::record_batch::RecordBatch;
use arrow::util::display::FormatOptions;
use futures::StreamExt;
use tributary_engine::{Error, ErrorKind, QueryResult};


/// The output format of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// An aligned table and a row count.
    #[default]
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects.
    Json,
    /// Newline-delimited JSON: one object per line.
    Ndjson,
}

/// Why printing a result stopped.
#[derive(Debug)]
pub enum PrintError {
    /// The query failed (planning or while it ran).
    Query(Error),
    /// Writing the output failed (e.g. stdout was closed).
    Output(io::Error),
}

impl From<io::Error> for PrintError {
    fn from(e: io::Error) -> Self {
        PrintError::Output(e)
    }
}

impl From<ArrowError> for PrintError {
    fn from(e: ArrowError) -> Self {
        match e {
            ArrowError::IoError(_, e) => PrintError::Output(e),
            other => PrintError::Query(Error::new(ErrorKind::Execution, other.to_string())),
        }
    }
}

/// Writes results, messages and errors to an output and an error stream
/// (stdout and stderr in the binary; buffers in tests).
pub struct Printer {
    format: Format,
    out: Box<dyn Write>,
    err: Box<dyn Write>,
}

impl Printer {
    /// A printer of `format` writing rows to `out` and messages to `err`.
    pub fn new(format: Format, out: Box<dyn Write>, err: Box<dyn Write>) -> Self {
        Self { format, out, err }
    }

    /// A printer on the process's stdout (buffered, flushed after every
    /// batch) and stderr.
    pub fn stdio(format: Format) -> Self {
        Self::new(format, Box::new(io::BufWriter::new(io::stdout())), Box::new(io::stderr()))
    }

    /// Writes `text` to the error stream, after flushing the output so the
    /// two interleave in order on a terminal.
    pub fn message(&mut self, text: &str) {
        let _ = self.out.flush();
        let _ = self.err.write_all(text.as_bytes());
        let _ = self.err.flush();
    }

    /// Prints a status line: on the output in the `table` format, else on
    /// the error stream (the output carries only rows).
    fn status(&mut self, line: &str) -> Result<(), PrintError> {
        match self.format {
            Format::Table => {
                self.out.write_all(line.as_bytes())?;
                self.out.flush()?;
            }
            Format::Csv | Format::Json | Format::Ndjson => self.message(line),
        }
        Ok(())
    }

    /// Prints one statement's result (an `INSERT` prints how many rows it
    /// wrote, not a table); `started` is when the statement started, for the
    /// timing of the `table` format.
    ///
    /// # Errors
    /// The query's error, or a failure to write the output.
    pub async fn print(&mut self, mut result: QueryResult, started: Instant) -> Result<(), PrintError> {
        if let Some(status) = result.status_message() {
            let line = format!("{status}\n");
            return self.status(&line);
        }
        if is_insert_count(&result) {
            let inserted = inserted_rows(&collect(&mut result).await?);
            let rows = if inserted == 1 { "row" } else { "rows" };
            let line = match self.format {
                Format::Table => format!("{inserted} {rows} inserted ({:.3} sec)\n", started.elapsed().as_secs_f64()),
                Format::Csv | Format::Json | Format::Ndjson => format!("{inserted} {rows} inserted.\n"),
            };
            self.status(&line)?;
            return self.notices(&result);
        }
        match self.format {
            Format::Table => {
                let batches = collect(&mut result).await?;
                let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
                let schema = result.schema();
                if !schema.fields().is_empty() {
                    // An empty batch still prints the header.
                    let empty = [RecordBatch::new_empty(schema)];
                    let shown = if batches.is_empty() { &empty[..] } else { &batches[..] };
                    let options = FormatOptions::default().with_null("NULL").with_display_error(true);
                    let table = arrow::util::pretty::pretty_format_batches_with_options(shown, &options)?;
                    writeln!(self.out, "{table}")?;
                }
                let secs = started.elapsed().as_secs_f64();
                writeln!(self.out, "{rows} {} in set ({secs:.3} sec)", if rows == 1 { "row" } else { "rows" })?;
            }
            Format::Csv => {
                let mut header = true;
                while let Some(batch) = result.next().await {
                    self.write_csv(&batch.map_err(PrintError::Query)?, header)?;
                    header = false;
                }
                if header {
                    self.write_csv(&RecordBatch::new_empty(result.schema()), true)?;
                }
            }
            Format::Json => {
                let batches = collect(&mut result).await?;
                let mut buffer = Vec::new();
                let mut writer = json_writer::<JsonArray>(&mut buffer);
                for batch in &batches {
                    writer.write(batch)?;
                }
                writer.finish()?;
                buffer.push(b'\n');
                self.out.write_all(&buffer)?;
            }
            Format::Ndjson => {
                while let Some(batch) = result.next().await {
                    let batch = batch.map_err(PrintError::Query)?;
                    let mut buffer = Vec::new();
                    let mut writer = json_writer::<LineDelimited>(&mut buffer);
                    writer.write(&batch)?;
                    writer.finish()?;
                    self.out.write_all(&buffer)?;
                    self.out.flush()?;
                }
            }
        }
        self.out.flush()?;
        self.notices(&result)
    }

    /// Prints the notices of a finished result (`Note: ...`) on the error
    /// stream.
    fn notices(&mut self, result: &QueryResult) -> Result<(), PrintError> {
        for notice in result.notices() {
            self.message(&format!("Note: {notice}\n"));
        }
        Ok(())
    }

    /// Writes one batch as CSV (with the header line first if `header`),
    /// and flushes it.
    fn write_csv(&mut self, batch: &RecordBatch, header: bool) -> Result<(), PrintError> {
        let mut buffer = Vec::new();
        arrow::csv::WriterBuilder::new().with_header(header).build(&mut buffer).write(batch)?;
        self.out.write_all(&buffer)?;
        self.out.flush()?;
        Ok(())
    }
}

/// Whether `result` is the row count of an `INSERT` (a `count` column, after
/// the `op` column in STREAMING), which is shown as a message, not as rows.
fn is_insert_count(result: &QueryResult) -> bool {
    let schema = result.schema();
    result.is_insert() && schema.fields().last().is_some_and(|f| f.name() == "count")
}

/// The sum of the `count` column of an `INSERT`'s result.
fn inserted_rows(batches: &[RecordBatch]) -> u64 {
    let mut total = 0u64;
    for batch in batches {
        let Some(column) = batch.columns().last() else { continue };
        let Ok(counts) = arrow::compute::cast(column, &arrow::datatypes::DataType::UInt64) else { continue };
        if let Some(counts) = counts.as_any().downcast_ref::<arrow::array::UInt64Array>() {
            total = total.saturating_add(counts.iter().flatten().sum::<u64>());
        }
    }
    total
}

/// A JSON writer that writes nulls too, so every object has every column.
fn json_writer<F: JsonFormat>(buffer: &mut Vec<u8>) -> arrow::json::Writer<&mut Vec<u8>, F> {
    arrow::json::WriterBuilder::new().with_explicit_nulls(true).build::<_, F>(buffer)
}

/// Reads the rest of the stream, keeping the result (for its notices).
async fn collect(result: &mut QueryResult) -> Result<Vec<RecordBatch>, PrintError> {
    let mut batches = Vec::new();
    while let Some(batch) = result.next().await {
        batches.push(batch.map_err(PrintError::Query)?);
    }
    Ok(batches)
}

/// A `Write` into shared memory, for tests that read what was printed.
#[cfg(test)]
pub(crate) mod test_support {
    use std::io::{self, Write};
    use std::sync::{Arc, Mutex};

    /// A cloneable in-memory output.
    #[derive(Clone, Default)]
    pub struct SharedBuf(Arc<Mutex<Vec<u8>>>);

    impl SharedBuf {
        /// Everything written so far, as text.
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl Write for SharedBuf {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A printer of `format` and its output and error buffers.
    pub fn printer(format: super::Format) -> (super::Printer, SharedBuf, SharedBuf) {
        let (out, err) = (SharedBuf::default(), SharedBuf::default());
        (super::Printer::new(format, Box::new(out.clone()), Box::new(err.clone())), out, err)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::printer;
    use super::*;
    use tributary_engine::Session;

    async fn print(format: Format, setup: &str, query: &str) -> (String, String) {
        let session = Session::new();
        if !setup.is_empty() {
            session.sql(setup).await.unwrap().collect().await.unwrap();
        }
        let (mut p, out, err) = printer(format);
        let result = session.sql(query).await.unwrap();
        p.print(result, Instant::now()).await.unwrap();
        (out.text(), err.text())
    }

    const SETUP: &str = "CREATE TABLE t (a INT, b STRING); INSERT INTO t VALUES (1, 'x'), (2, NULL)";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn table_with_row_count() {
        let (out, err) = print(Format::Table, SETUP, "SELECT a, b FROM t ORDER BY a").await;
        assert!(out.contains("| a | b    |"), "{out}");
        assert!(out.contains("| 1 | x    |\n| 2 | NULL |"), "{out}");
        let last = out.lines().last().unwrap();
        assert!(last.starts_with("2 rows in set (") && last.ends_with(" sec)"), "{out}");
        assert_eq!(err, "");
        let (out, _) = print(Format::Table, SETUP, "SELECT a FROM t WHERE a = 1").await;
        assert!(out.lines().last().unwrap().starts_with("1 row in set ("), "{out}");
        let (out, _) = print(Format::Table, SETUP, "SELECT a FROM t WHERE a > 5").await;
        assert!(out.contains("| a |"), "empty results keep their header: {out}");
        assert!(out.lines().last().unwrap().starts_with("0 rows in set ("), "{out}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn status_goes_to_stdout_in_table_format_and_to_stderr_otherwise() {
        let (out, err) = print(Format::Table, "", "CREATE TABLE s (a INT)").await;
        assert_eq!((out.as_str(), err.as_str()), ("Table 's' created.\n", ""));
        for format in [Format::Csv, Format::Json, Format::Ndjson] {
            let (out, err) = print(format, "", "CREATE TABLE s (a INT)").await;
            assert_eq!((out.as_str(), err.as_str()), ("", "Table 's' created.\n"), "{format:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inserts_print_a_row_count_message() {
        let create = "CREATE TABLE t (a INT, b STRING)";
        let (out, err) = print(Format::Table, create, "INSERT INTO t VALUES (1, 'x'), (2, 'y')").await;
        assert!(out.starts_with("2 rows inserted (") && out.ends_with(" sec)\n"), "{out}");
        assert_eq!(err, "");
        let (out, err) = print(Format::Csv, create, "INSERT INTO t VALUES (1, 'x')").await;
        assert_eq!((out.as_str(), err.as_str()), ("", "1 row inserted.\n"));
        // A query with a `count` column is a query.
        let (out, _) = print(Format::Csv, SETUP, "SELECT COUNT(*) AS count FROM t").await;
        assert_eq!(out, "count\n2\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn csv_has_a_header_and_nothing_else() {
        let (out, _) = print(Format::Csv, SETUP, "SELECT a, b FROM t ORDER BY a").await;
        assert_eq!(out, "a,b\n1,x\n2,\n");
        let (out, _) = print(Format::Csv, SETUP, "SELECT a, b FROM t WHERE a > 5").await;
        assert_eq!(out, "a,b\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn json_is_one_array_with_nulls() {
        let (out, _) = print(Format::Json, SETUP, "SELECT a, b FROM t ORDER BY a").await;
        assert_eq!(out, "[{\"a\":1,\"b\":\"x\"},{\"a\":2,\"b\":null}]\n");
        let (out, _) = print(Format::Json, SETUP, "SELECT a FROM t WHERE a > 5").await;
        assert_eq!(out, "[]\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ndjson_is_one_object_per_line() {
        let (out, _) = print(Format::Ndjson, SETUP, "SELECT a, b FROM t ORDER BY a").await;
        assert_eq!(out, "{\"a\":1,\"b\":\"x\"}\n{\"a\":2,\"b\":null}\n");
        let (out, _) = print(Format::Ndjson, SETUP, "SELECT a FROM t WHERE a > 5").await;
        assert_eq!(out, "");
    }

    #[test]
    fn arrow_io_errors_are_output_errors() {
        let e = ArrowError::IoError("x".into(), io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(matches!(PrintError::from(e), PrintError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe));
        let e = ArrowError::ComputeError("boom".into());
        assert!(matches!(PrintError::from(e), PrintError::Query(e) if e.kind == ErrorKind::Execution));
    }
}

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
//! endless query shows rows at once); `json` needs every row before it can
//! print, so it collects first. JSON objects carry every column, nulls
//! included, so every object has the same keys.
//!
//! A STREAMING result is a changelog (its first column is `op`) that may
//! never end, so `table` cannot wait for the last row. It shows the result
//! as `sql-client.execution.result-mode` says: `tableau` (the default) and
//! `changelog` print each changelog row as it arrives (see [`crate::tableau`]);
//! `table` shows the folded table, updated in place on a terminal (see
//! [`crate::live_table`]). `csv` and `ndjson` stream the changelog, `op`
//! first, as for any result. A BATCH result prints as described above
//! whatever the result mode.
//!
//! A BATCH query that runs in stages shows a progress bar on stderr (stages
//! done of total, rows) once it has run for a second, in the formats that
//! collect before printing (`table`, `json`), when stderr is a terminal
//! (see [`crate::progress`]).
//!
//! Ctrl-C drops the printing future between batches (see the runner); what
//! a streaming view has shown so far is kept in the printer, so
//! [`Printer::interrupted`] can end it (the tableau's total line).

use std::io::{self, IsTerminal, Write};
use std::time::Instant;

use arrow::error::ArrowError;
use arrow::json::writer::{JsonArray, JsonFormat, LineDelimited};
use arrow::record_batch::RecordBatch;
use arrow::util::display::FormatOptions;
use futures::StreamExt;
use tributary_engine::{Error, ErrorKind, QueryResult, RuntimeMode};
use tributary_planner::OP_COLUMN;
use tributary_planner::config::ResultMode;

use crate::live_table::{LiveTable, terminal_rows};
use crate::progress::Progress;
use crate::tableau::Tableau;

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
    /// Whether `out` is a terminal (the live `table` result mode redraws).
    terminal: bool,
    /// The tableau being printed, and when its statement started.
    tableau: Option<(Tableau, Instant)>,
    /// The live table being shown.
    live_table: Option<LiveTable>,
    /// Whether to show a BATCH query's progress bar (stderr is a terminal).
    progress: bool,
}

impl Printer {
    /// A printer of `format` writing rows to `out` and messages to `err`;
    /// `out` is not taken for a terminal.
    pub fn new(format: Format, out: Box<dyn Write>, err: Box<dyn Write>) -> Self {
        Self {
            format,
            out,
            err,
            terminal: false,
            tableau: None,
            live_table: None,
            progress: false,
        }
    }

    /// A printer on the process's stdout (buffered, flushed after every
    /// batch) and stderr.
    pub fn stdio(format: Format) -> Self {
        let terminal = io::stdout().is_terminal();
        Self::new(
            format,
            Box::new(io::BufWriter::new(io::stdout())),
            Box::new(io::stderr()),
        )
        .with_terminal(terminal)
        .with_progress(io::stderr().is_terminal())
    }

    /// Whether to show the progress bar of a BATCH query that runs in
    /// stages for more than a second (on stderr; see [`crate::progress`]).
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// Whether the output is a terminal.
    pub fn with_terminal(mut self, terminal: bool) -> Self {
        self.terminal = terminal;
        self
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
    /// timing of the `table` format; `result_mode` is how the `table` format
    /// shows a STREAMING result.
    ///
    /// # Errors
    /// The query's error, or a failure to write the output.
    pub async fn print(
        &mut self,
        result: QueryResult,
        started: Instant,
        result_mode: ResultMode,
    ) -> Result<(), PrintError> {
        self.tableau = None;
        self.live_table = None;
        let printed = self.print_result(result, started, result_mode).await;
        if printed.is_err() {
            // Nothing to end at Ctrl-C any more.
            self.tableau = None;
            self.live_table = None;
        }
        printed
    }

    /// Ends the streaming view that Ctrl-C interrupted, if one was being
    /// printed: the tableau's border and total line, or the live table's
    /// last state. Output errors are ignored (the query is over anyway).
    pub fn interrupted(&mut self) {
        let text = if let Some((tableau, started)) = self.tableau.take() {
            Ok(tableau.footer(started.elapsed()))
        } else if let Some(mut live) = self.live_table.take() {
            live.interrupted()
        } else {
            return;
        };
        if let Ok(text) = text {
            let _ = self.out.write_all(text.as_bytes());
        }
        let _ = self.out.flush();
    }

    async fn print_result(
        &mut self,
        mut result: QueryResult,
        started: Instant,
        result_mode: ResultMode,
    ) -> Result<(), PrintError> {
        if let Some(status) = result.status_message() {
            let line = format!("{status}\n");
            return self.status(&line);
        }
        if is_insert_count(&result) {
            let inserted = inserted_rows(&collect(&mut result).await?);
            let rows = if inserted == 1 { "row" } else { "rows" };
            let line = match self.format {
                Format::Table => format!(
                    "{inserted} {rows} inserted ({:.3} sec)\n",
                    started.elapsed().as_secs_f64()
                ),
                Format::Csv | Format::Json | Format::Ndjson => {
                    format!("{inserted} {rows} inserted.\n")
                }
            };
            self.status(&line)?;
            return self.notices(&result);
        }
        match self.format {
            Format::Table if is_changelog(&result) => match result_mode {
                ResultMode::Table => self.print_live_table(&mut result, started).await?,
                ResultMode::Tableau | ResultMode::Changelog => {
                    self.print_tableau(&mut result, started).await?
                }
            },
            Format::Table => {
                let bar = Progress::start(&result, self.progress);
                let batches = collect(&mut result).await?;
                drop(bar);
                let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
                let schema = result.schema();
                if !schema.fields().is_empty() {
                    // An empty batch still prints the header.
                    let empty = [RecordBatch::new_empty(schema)];
                    let shown = if batches.is_empty() {
                        &empty[..]
                    } else {
                        &batches[..]
                    };
                    writeln!(self.out, "{}", pretty_tables(shown)?)?;
                }
                let secs = started.elapsed().as_secs_f64();
                writeln!(
                    self.out,
                    "{rows} {} in set ({secs:.3} sec)",
                    if rows == 1 { "row" } else { "rows" }
                )?;
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
                let bar = Progress::start(&result, self.progress);
                let batches = collect(&mut result).await?;
                drop(bar);
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

    /// Prints a STREAMING result's changelog rows as they arrive, in the
    /// tableau layout.
    async fn print_tableau(
        &mut self,
        result: &mut QueryResult,
        started: Instant,
    ) -> Result<(), PrintError> {
        let (tableau, _) = self
            .tableau
            .insert((Tableau::new(&result.schema()), started));
        self.out.write_all(tableau.header().as_bytes())?;
        self.out.flush()?;
        while let Some(batch) = result.next().await {
            let rows = tableau.rows(&batch.map_err(PrintError::Query)?)?;
            self.out.write_all(rows.as_bytes())?;
            self.out.flush()?;
        }
        if let Some((tableau, started)) = self.tableau.take() {
            self.out
                .write_all(tableau.footer(started.elapsed()).as_bytes())?;
        }
        Ok(())
    }

    /// Shows a STREAMING result as its folded table: redrawn in place on a
    /// terminal as batches arrive, and in full when the stream ends.
    async fn print_live_table(
        &mut self,
        result: &mut QueryResult,
        started: Instant,
    ) -> Result<(), PrintError> {
        let rows = if self.terminal { terminal_rows() } else { None };
        let live = LiveTable::new(&result.schema(), started, self.terminal, rows)
            .map_err(PrintError::Query)?;
        let live = self.live_table.insert(live);
        loop {
            let next = match live.redraw_at() {
                Some(at) if at <= Instant::now() => {
                    self.out.write_all(live.redraw()?.as_bytes())?;
                    self.out.flush()?;
                    continue;
                }
                // Wait for the next batch, or redraw when it is time.
                Some(at) => match tokio::time::timeout_at(at.into(), result.next()).await {
                    Ok(next) => next,
                    Err(_) => continue,
                },
                None => result.next().await,
            };
            let Some(batch) = next else { break };
            live.apply(&batch.map_err(PrintError::Query)?)?;
        }
        if let Some(mut live) = self.live_table.take() {
            self.out.write_all(live.finish()?.as_bytes())?;
        }
        Ok(())
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
        arrow::csv::WriterBuilder::new()
            .with_header(header)
            .build(&mut buffer)
            .write(batch)?;
        self.out.write_all(&buffer)?;
        self.out.flush()?;
        Ok(())
    }
}

/// Whether `result` is a STREAMING changelog: its first column is `op`.
fn is_changelog(result: &QueryResult) -> bool {
    result
        .mode()
        .is_some_and(|m| m.mode == RuntimeMode::Streaming)
        && result
            .schema()
            .fields()
            .first()
            .is_some_and(|f| f.name() == OP_COLUMN)
}

/// `batch` as an aligned table, as the `table` format prints BATCH results
/// (no newline at the end).
///
/// # Errors
/// Arrow cannot format a value.
pub fn pretty_table(batch: &RecordBatch) -> Result<String, PrintError> {
    pretty_tables(std::slice::from_ref(batch))
}

/// `batches` as one aligned table (see [`pretty_table`]).
fn pretty_tables(batches: &[RecordBatch]) -> Result<String, PrintError> {
    let options = FormatOptions::default()
        .with_null("NULL")
        .with_display_error(true);
    Ok(arrow::util::pretty::pretty_format_batches_with_options(batches, &options)?.to_string())
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
        let Some(column) = batch.columns().last() else {
            continue;
        };
        let Ok(counts) = arrow::compute::cast(column, &arrow::datatypes::DataType::UInt64) else {
            continue;
        };
        if let Some(counts) = counts.as_any().downcast_ref::<arrow::array::UInt64Array>() {
            total = total.saturating_add(counts.iter().flatten().sum::<u64>());
        }
    }
    total
}

/// A JSON writer that writes nulls too, so every object has every column.
fn json_writer<F: JsonFormat>(buffer: &mut Vec<u8>) -> arrow::json::Writer<&mut Vec<u8>, F> {
    arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, F>(buffer)
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
        (
            super::Printer::new(format, Box::new(out.clone()), Box::new(err.clone())),
            out,
            err,
        )
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
        p.print(result, Instant::now(), ResultMode::Tableau)
            .await
            .unwrap();
        (out.text(), err.text())
    }

    const SETUP: &str =
        "CREATE TABLE t (a INT, b STRING); INSERT INTO t VALUES (1, 'x'), (2, NULL)";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn table_with_row_count() {
        let (out, err) = print(Format::Table, SETUP, "SELECT a, b FROM t ORDER BY a").await;
        assert!(out.contains("| a | b    |"), "{out}");
        assert!(out.contains("| 1 | x    |\n| 2 | NULL |"), "{out}");
        let last = out.lines().last().unwrap();
        assert!(
            last.starts_with("2 rows in set (") && last.ends_with(" sec)"),
            "{out}"
        );
        assert_eq!(err, "");
        let (out, _) = print(Format::Table, SETUP, "SELECT a FROM t WHERE a = 1").await;
        assert!(
            out.lines().last().unwrap().starts_with("1 row in set ("),
            "{out}"
        );
        let (out, _) = print(Format::Table, SETUP, "SELECT a FROM t WHERE a > 5").await;
        assert!(
            out.contains("| a |"),
            "empty results keep their header: {out}"
        );
        assert!(
            out.lines().last().unwrap().starts_with("0 rows in set ("),
            "{out}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn status_goes_to_stdout_in_table_format_and_to_stderr_otherwise() {
        let (out, err) = print(Format::Table, "", "CREATE TABLE s (a INT)").await;
        assert_eq!((out.as_str(), err.as_str()), ("Table 's' created.\n", ""));
        for format in [Format::Csv, Format::Json, Format::Ndjson] {
            let (out, err) = print(format, "", "CREATE TABLE s (a INT)").await;
            assert_eq!(
                (out.as_str(), err.as_str()),
                ("", "Table 's' created.\n"),
                "{format:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inserts_print_a_row_count_message() {
        let create = "CREATE TABLE t (a INT, b STRING)";
        let (out, err) = print(
            Format::Table,
            create,
            "INSERT INTO t VALUES (1, 'x'), (2, 'y')",
        )
        .await;
        assert!(
            out.starts_with("2 rows inserted (") && out.ends_with(" sec)\n"),
            "{out}"
        );
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

    /// Prints `query` run in STREAMING after `SETUP`, in `result_mode`.
    async fn print_streaming(
        format: Format,
        result_mode: ResultMode,
        query: &str,
    ) -> (String, String) {
        let session = Session::new();
        session.sql(SETUP).await.unwrap().collect().await.unwrap();
        session.set("execution.runtime-mode", "streaming").unwrap();
        let (mut p, out, err) = printer(format);
        let result = session.sql(query).await.unwrap();
        p.print(result, Instant::now(), result_mode).await.unwrap();
        (out.text(), err.text())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_streaming_result_prints_its_changelog_rows_with_the_op_first() {
        for mode in [ResultMode::Tableau, ResultMode::Changelog] {
            let (out, err) =
                print_streaming(Format::Table, mode, "SELECT a, b FROM t WHERE a = 1").await;
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(
                lines[..3],
                [
                    "+----+-------------+----------------------+",
                    "| op |           a | b                    |",
                    "+----+-------------+----------------------+",
                ],
                "{out}"
            );
            assert_eq!(
                lines[3], "| +I |           1 | x                    |",
                "{out}"
            );
            assert_eq!(lines[4], lines[0]);
            assert!(
                lines[5].starts_with("Received a total of 1 row (") && lines[5].ends_with(" sec)"),
                "{out}"
            );
            assert_eq!(lines.len(), 6, "{out}");
            assert_eq!(err, "");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn table_result_mode_prints_the_folded_table_when_not_on_a_terminal() {
        let query = "SELECT b, SUM(a) AS s FROM t GROUP BY b";
        let (out, _) = print_streaming(Format::Table, ResultMode::Table, query).await;
        assert!(!out.contains('\x1b'), "no escape codes: {out:?}");
        assert!(!out.contains("+I"), "{out}");
        assert!(
            out.starts_with("+------+---+\n| b    | s |\n+------+---+\n"),
            "{out}"
        );
        assert!(
            out.contains("| x    | 1 |") && out.contains("| NULL | 2 |"),
            "{out}"
        );
        assert!(
            out.lines()
                .last()
                .unwrap()
                .starts_with("2 rows in set, folded from "),
            "{out}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn machine_formats_write_the_op_column_first() {
        let query = "SELECT a, b FROM t WHERE a = 1";
        let (out, _) = print_streaming(Format::Csv, ResultMode::Tableau, query).await;
        assert_eq!(out, "op,a,b\n+I,1,x\n");
        let (out, _) = print_streaming(Format::Ndjson, ResultMode::Table, query).await;
        assert_eq!(out, "{\"op\":\"+I\",\"a\":1,\"b\":\"x\"}\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batch_results_ignore_the_result_mode() {
        let session = Session::new();
        session.sql(SETUP).await.unwrap().collect().await.unwrap();
        session.set("execution.runtime-mode", "batch").unwrap();
        let (mut p, out, _) = printer(Format::Table);
        let result = session.sql("SELECT a FROM t WHERE a = 1").await.unwrap();
        p.print(result, Instant::now(), ResultMode::Table)
            .await
            .unwrap();
        let out = out.text();
        assert!(
            out.starts_with("+---+\n| a |\n+---+\n| 1 |\n+---+\n1 row in set ("),
            "{out}"
        );
    }

    /// Starts an endless STREAMING query over a slow `datagen` table, prints
    /// it for a while, then drops the printing as Ctrl-C does.
    async fn interrupt_an_endless_query(result_mode: ResultMode) -> String {
        let session = Session::new();
        session
            .sql(
                "CREATE TABLE g (k INT) WITH ('connector' = 'datagen', 'rows-per-second' = '20', \
                 'fields.k.min' = '1', 'fields.k.max' = '3')",
            )
            .await
            .unwrap();
        session.set("execution.runtime-mode", "streaming").unwrap();
        let (mut p, out, _) = printer(Format::Table);
        let result = session
            .sql("SELECT k, COUNT(*) AS n FROM g GROUP BY k")
            .await
            .unwrap();
        let printing = p.print(result, Instant::now(), result_mode);
        let stopped = tokio::time::timeout(std::time::Duration::from_millis(600), printing).await;
        assert!(stopped.is_err(), "an endless query does not end");
        p.interrupted();
        out.text()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_interrupted_tableau_ends_with_its_total() {
        let out = interrupt_an_endless_query(ResultMode::Tableau).await;
        assert!(out.starts_with("+----+"), "{out}");
        assert!(out.contains("| +I |"), "rows printed as they came: {out}");
        assert!(
            out.lines()
                .last()
                .unwrap()
                .starts_with("Received a total of "),
            "{out}"
        );
        let out = interrupt_an_endless_query(ResultMode::Table).await;
        assert!(out.contains("| k | n "), "the table so far: {out}");
        assert!(
            out.lines()
                .last()
                .unwrap()
                .contains(" in set, folded from "),
            "{out}"
        );
    }

    #[test]
    fn arrow_io_errors_are_output_errors() {
        let e = ArrowError::IoError("x".into(), io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(
            matches!(PrintError::from(e), PrintError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
        );
        let e = ArrowError::ComputeError("boom".into());
        assert!(
            matches!(PrintError::from(e), PrintError::Query(e) if e.kind == ErrorKind::Execution)
        );
    }
}

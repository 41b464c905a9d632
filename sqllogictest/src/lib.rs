//! The sqllogictest runner for Tributary's `.slt` suites.
//!
//! Every `test_files/**/*.slt` file runs against a fresh [`Session`] once per
//! runtime mode asked for (in STREAMING, a query's changelog is folded into
//! the table it describes before it is compared). By default every file
//! runs in both BATCH and STREAMING. The mode is also a sqllogictest
//! *label*, so a record can be limited to one mode with the format's own
//! conditions — `onlyif batch`, `skipif streaming` — each with a comment
//! line just above saying why (`# mode limit: ...` for a construct STREAMING
//! refuses, `# TODO(bug): ...` for a disagreement not fixed yet). A
//! directory whose files cannot carry such limits (files imported unedited
//! from other engines) can hold a commented `MODES` file, see
//! [`default_modes`]. A failing record does not stop its file; the run ends
//! with a summary of the files and query records run in each mode.
//!
//! Values are written the way the suites expect them: `NULL` for null, `(empty)`
//! for an empty string, floats rounded to 12 significant digits (so a sum
//! whose rounding depends on the order rows arrive in still compares equal).
//! Files with SQLite's extension `.test` (its sqllogictest corpus, imported
//! unedited under `test_files/standard/`) are read with SQLite's conventions
//! instead, see [`ValueStyle::Sqlite`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use sqllogictest::{DBOutput, DefaultColumnType};

use tributary_engine::changelog::fold;
use tributary_engine::{RuntimeMode, Session};

/// Where the suites live.
pub fn test_files_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test_files")
}

/// How the values of a file's results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueStyle {
    /// Tributary's own suites (`*.slt`): each value as its Arrow type
    /// gives it (see [`format_rows`]); results are never hashed.
    Tributary,
    /// SQLite's sqllogictest (`*.test`), as its runner `sqllogictest.c`
    /// writes them: each value formatted as the type letter the record
    /// declares for its column — `I` an integer (`%lld`; a float
    /// truncated), `R` a float with three decimals (`%.3f`, so the integer
    /// 167 is `167.000`), `T` text (`(empty)` for an empty string, a
    /// character outside `' '..='~'` as `@`); `NULL` for null in every
    /// type, booleans as `1` / `0`. A result of more than 8 values is
    /// compared by the md5 of its values (`N values hashing to <md5>`),
    /// the threshold SQLite's corpus was written with (it holds results of
    /// 8 values written out and of 9 hashed; a file's own `hash-threshold`
    /// line overrides it).
    Sqlite,
}

impl ValueStyle {
    /// The style of a suite file, from its extension: `.test` is SQLite's.
    pub fn of_file(path: &Path) -> Self {
        if path.extension().is_some_and(|x| x == "test") {
            ValueStyle::Sqlite
        } else {
            ValueStyle::Tributary
        }
    }

    /// The `hash-threshold` a file of this style starts with (0: never).
    pub fn hash_threshold(self) -> usize {
        match self {
            ValueStyle::Tributary => 0,
            ValueStyle::Sqlite => 8,
        }
    }
}

/// The column types the record being run declares (`query IIR`), which
/// SQLite's conventions format values by; the runner sets it before each
/// record, the connection reads it.
pub type DeclaredTypes = Arc<std::sync::Mutex<Option<Vec<DefaultColumnType>>>>;

/// One database connection for the runner: a Tributary session in one mode.
pub struct TributaryDb {
    session: Session,
    mode: RuntimeMode,
    /// `Some` for a file read with SQLite's conventions ([`ValueStyle::Sqlite`]).
    sqlite_types: Option<DeclaredTypes>,
}

impl TributaryDb {
    /// A fresh session in `mode`.
    pub fn new(mode: RuntimeMode) -> tributary_engine::Result<Self> {
        Self::with_settings(mode, &[])
    }

    /// A fresh session in `mode` with `settings` (`SET` keys) applied.
    pub fn with_settings(
        mode: RuntimeMode,
        settings: &[(String, String)],
    ) -> tributary_engine::Result<Self> {
        let mut builder = Session::builder().runtime_mode(mode);
        for (k, v) in settings {
            builder = builder.config(k, v);
        }
        Ok(Self {
            session: builder.build()?,
            mode,
            sqlite_types: None,
        })
    }

    /// Formats results with SQLite's conventions, by the column types that
    /// `types` holds for the record being run ([`ValueStyle::Sqlite`]).
    pub fn with_sqlite_values(mut self, types: DeclaredTypes) -> Self {
        self.sqlite_types = Some(types);
        self
    }
}

/// An error from Tributary, as the runner reports it (with the hint).
#[derive(Debug)]
pub struct SltError(pub tributary_engine::Error);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for SltError {}

#[async_trait]
impl sqllogictest::AsyncDB for TributaryDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let result = self.session.sql(sql).await.map_err(SltError)?;
        if result.status_message().is_some() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let mut schema = result.schema();
        let mut batches = result.collect().await.map_err(SltError)?;
        // In STREAMING the result is a changelog: compare what it folds to.
        if self.mode == RuntimeMode::Streaming
            && schema.fields().first().is_some_and(|f| f.name() == "op")
        {
            let folded = fold(&schema, &batches).map_err(SltError)?;
            schema = folded.schema();
            batches = vec![folded];
        }
        let types = schema
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let declared = self
            .sqlite_types
            .as_ref()
            .and_then(|t| t.lock().ok().and_then(|t| t.clone()));
        let rows = match declared {
            Some(declared) => format_rows_sqlite(&batches, &declared),
            None => format_rows(&batches),
        }
        .map_err(|e| {
            SltError(tributary_engine::Error::new(
                tributary_engine::ErrorKind::Execution,
                e.to_string(),
            ))
        })?;
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "tributary"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

/// The sqllogictest column type of an Arrow type: `I` integers, `R` floats
/// and decimals, `T` everything else.
pub fn column_type(t: &DataType) -> DefaultColumnType {
    if t.is_integer() {
        DefaultColumnType::Integer
    } else if t.is_floating() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

/// The rows of `batches` as the suites write them.
pub fn format_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, arrow::error::ArrowError> {
    format_rows_with(batches, |_, col, row, displayed| {
        format_value(col, row, displayed)
    })
}

/// The rows of `batches`, each value written by `value(column index,
/// column, row, Arrow's display of the value)`.
fn format_rows_with(
    batches: &[RecordBatch],
    value: impl Fn(usize, &ArrayRef, usize, &str) -> String,
) -> Result<Vec<Vec<String>>, arrow::error::ArrowError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let mut values = Vec::with_capacity(batch.num_columns());
            for (i, (col, formatter)) in batch.columns().iter().zip(&formatters).enumerate() {
                values.push(value(i, col, row, &formatter.value(row).to_string()));
            }
            rows.push(values);
        }
    }
    Ok(rows)
}

fn format_value(col: &ArrayRef, row: usize, displayed: &str) -> String {
    if col.is_null(row) {
        return "NULL".into();
    }
    match col.data_type() {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let cast = arrow::compute::cast(&col.slice(row, 1), &DataType::Float64);
            match cast.ok().and_then(|a| {
                a.as_any()
                    .downcast_ref::<arrow::array::Float64Array>()
                    .map(|a| a.value(0))
            }) {
                Some(v) => format_float(v),
                None => displayed.to_string(),
            }
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if displayed.is_empty() => {
            "(empty)".into()
        }
        _ => displayed.to_string(),
    }
}

/// The rows of `batches` as SQLite's sqllogictest writes them, each value by
/// the type letter `declared` gives its column ([`ValueStyle::Sqlite`]). A
/// column past the declared ones is written as text.
pub fn format_rows_sqlite(
    batches: &[RecordBatch],
    declared: &[DefaultColumnType],
) -> Result<Vec<Vec<String>>, arrow::error::ArrowError> {
    format_rows_with(batches, |i, col, row, displayed| {
        let declared = declared.get(i).unwrap_or(&DefaultColumnType::Text);
        sqlite_value(col, row, displayed, declared)
    })
}

/// One value as SQLite's sqllogictest writes it for a column declared
/// `declared` (`sqllogictest.c`: `I` through `sqlite3_column_int64` and
/// `%lld`, `R` through `sqlite3_column_double` and `%.3f`, `T` through
/// `sqlite3_column_text`).
fn sqlite_value(
    col: &ArrayRef,
    row: usize,
    displayed: &str,
    declared: &DefaultColumnType,
) -> String {
    if col.is_null(row) {
        return "NULL".into();
    }
    let t = col.data_type();
    // SQLite has no booleans: TRUE is the integer 1.
    let displayed = match t {
        DataType::Boolean => {
            if displayed == "true" {
                "1"
            } else {
                "0"
            }
        }
        _ => displayed,
    };
    let numeric = t.is_numeric() || matches!(t, DataType::Boolean);
    match declared {
        DefaultColumnType::Integer => {
            if t.is_floating() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) {
                // A REAL read as an integer is truncated toward zero.
                let v: f64 = displayed.parse().unwrap_or(0.0);
                format!("{}", v.trunc() as i64)
            } else if numeric {
                displayed.to_string()
            } else {
                // Text read as an integer: its leading integer, else 0.
                leading_integer(displayed).to_string()
            }
        }
        DefaultColumnType::FloatingPoint => {
            let v: f64 = if numeric {
                displayed.parse().unwrap_or(0.0)
            } else {
                leading_float(displayed)
            };
            format!("{v:.3}")
        }
        DefaultColumnType::Text | DefaultColumnType::Any => {
            if displayed.is_empty() {
                "(empty)".into()
            } else {
                displayed
                    .chars()
                    .map(|c| if (' '..='~').contains(&c) { c } else { '@' })
                    .collect()
            }
        }
    }
}

/// The integer at the start of `s` (after blanks), as SQLite's text to
/// integer conversion reads it; 0 if there is none.
fn leading_integer(s: &str) -> i64 {
    let s = s.trim_start();
    let end = s
        .char_indices()
        .take_while(|&(i, c)| c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+')))
        .map(|(i, c)| i + c.len_utf8())
        .last()
        .unwrap_or(0);
    s[..end].parse().unwrap_or(0)
}

/// The number at the start of `s` (after blanks), as SQLite's text to real
/// conversion reads it; 0.0 if there is none.
fn leading_float(s: &str) -> f64 {
    let s = s.trim_start();
    (1..=s.len())
        .rev()
        .filter(|&i| s.is_char_boundary(i))
        .find_map(|i| s[..i].parse::<f64>().ok().filter(|v| v.is_finite()))
        .unwrap_or(0.0)
}

/// A float rounded to 12 significant digits, in its shortest form with one
/// decimal kept: `20.0`, `0.333333333333`, `-1.5`, `4350460790.36`, `NaN`,
/// `inf`. Twelve digits hide the last-bit noise of a sum whose order depends
/// on how rows arrive, and keep every digit a test means.
pub fn format_float(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let rounded: f64 = format!("{v:.11e}").parse().unwrap_or(v);
    if rounded == 0.0 {
        return "0.0".into();
    }
    let s = rounded.to_string();
    if s.contains('.') || s.contains('e') || s.contains("inf") {
        s
    } else {
        format!("{s}.0")
    }
}

/// Options of a runner invocation.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Modes to run every file in; `None`: the file's default modes (both,
    /// unless a `MODES` file says otherwise, see [`default_modes`]).
    pub modes: Option<Vec<RuntimeMode>>,
    /// Only files whose path contains one of these (all files if empty).
    pub filters: Vec<String>,
    /// Rewrite the expected output of every record instead of checking it.
    pub complete: bool,
    /// `SET` keys every session starts with (`--set key=value`), e.g. to
    /// run the BATCH suites pipelined or on one slot.
    pub settings: Vec<(String, String)>,
}

/// The result validator: the sqllogictest crate's (one row a line, values
/// separated by spaces), or else SQLite's layout, in which its corpus writes
/// results: one value a line (`query III` of two rows is six lines).
pub fn validator(
    normalizer: sqllogictest::Normalizer,
    actual: &[Vec<String>],
    expected: &[String],
) -> bool {
    if sqllogictest::default_validator(normalizer, actual, expected) {
        return true;
    }
    let values: Vec<String> = actual.iter().flatten().map(normalizer).collect();
    let expected: Vec<String> = expected.iter().map(normalizer).collect();
    actual.first().is_some_and(|r| r.len() > 1) && values == expected
}

/// Is `p` a suite file: `*.slt`, or `*.test` (the extension of SQLite's
/// sqllogictest corpus, imported unedited under `test_files/standard/`)?
fn is_suite_file(p: &Path) -> bool {
    p.extension().is_some_and(|x| x == "slt" || x == "test")
}

/// Every suite file under `dir`, sorted.
pub fn find_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if is_suite_file(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn mode_label(mode: RuntimeMode) -> &'static str {
    match mode {
        RuntimeMode::Batch => "batch",
        RuntimeMode::Streaming => "streaming",
        RuntimeMode::Automatic => "automatic",
    }
}

/// The modes a file runs in when `--mode` is not given: BATCH and STREAMING,
/// unless a `MODES` file in the file's directory (or the nearest one above
/// it, up to `root`) limits them. A `MODES` file is for a whole directory
/// that cannot carry per-record limits (files imported unedited from other
/// engines); it must say why in `#` comment lines, and holds one line
/// `batch`, `streaming` or `both`. Everywhere else, limit single records
/// with `onlyif batch` / `skipif streaming` and a comment.
pub fn default_modes(file: &Path, root: &Path) -> Result<Vec<RuntimeMode>, String> {
    let mut dir = file.parent();
    while let Some(d) = dir {
        let modes_file = d.join("MODES");
        if modes_file.is_file() {
            let text = std::fs::read_to_string(&modes_file)
                .map_err(|e| format!("{}: {e}", modes_file.display()))?;
            let comments = text
                .lines()
                .filter(|l| l.trim_start().starts_with('#'))
                .count();
            let words: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect();
            if comments == 0 {
                return Err(format!(
                    "{}: a MODES file must say why in a # comment",
                    modes_file.display()
                ));
            }
            return match words.as_slice() {
                ["batch"] => Ok(vec![RuntimeMode::Batch]),
                ["streaming"] => Ok(vec![RuntimeMode::Streaming]),
                ["both"] => Ok(vec![RuntimeMode::Batch, RuntimeMode::Streaming]),
                _ => Err(format!(
                    "{}: expected one line 'batch', 'streaming' or 'both'",
                    modes_file.display()
                )),
            };
        }
        if d == root {
            break;
        }
        dir = d.parent();
    }
    Ok(vec![RuntimeMode::Batch, RuntimeMode::Streaming])
}

/// The mode limits of a suite file that have no comment: every
/// `onlyif` / `skipif` of `batch` or `streaming` must have a `#` line just
/// above it (or above the conditions stacked on it) saying why. Returns the
/// line numbers of those that do not.
pub fn uncommented_mode_limits(text: &str) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let is_condition = |l: &str| l.starts_with("onlyif ") || l.starts_with("skipif ");
    let mut bad = vec![];
    for (i, line) in lines.iter().enumerate() {
        let mut words = line.split_whitespace();
        let (Some(kind), Some(label)) = (words.next(), words.next()) else {
            continue;
        };
        if !matches!(kind, "onlyif" | "skipif") || !matches!(label, "batch" | "streaming") {
            continue;
        }
        let mut j = i;
        while j > 0 && is_condition(lines[j - 1]) {
            j -= 1;
        }
        if j == 0 || !lines[j - 1].trim_start().starts_with('#') {
            bad.push(i + 1);
        }
    }
    bad
}

/// Would a record with `conditions` run under `labels`?
fn runs_under(conditions: &[sqllogictest::Condition], labels: &[&str]) -> bool {
    conditions.iter().all(|c| match c {
        sqllogictest::Condition::OnlyIf { label } => labels.contains(&label.as_str()),
        sqllogictest::Condition::SkipIf { label } => !labels.contains(&label.as_str()),
    })
}

/// What a run did, for the summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// (file, mode) runs that passed / failed.
    pub passed: usize,
    pub failed: usize,
    /// Suite files run.
    pub files: usize,
    /// `query` records run in BATCH / in STREAMING.
    pub batch_queries: usize,
    pub streaming_queries: usize,
    /// `query` records of the files run that this run runs in both modes,
    /// only in BATCH, only in STREAMING, or in neither (limited to other
    /// engines, or to a mode not run).
    pub both: usize,
    pub batch_only: usize,
    pub streaming_only: usize,
    pub neither: usize,
    /// `query` records skipped by `onlyif`/`skipif` in a mode the file runs in.
    pub skipped_batch: usize,
    pub skipped_streaming: usize,
}

/// At most this many failing records are printed per file and mode.
const MAX_ERRORS_SHOWN: usize = 10;

/// Runs the suites and prints each failure with its file, line, SQL,
/// expected and actual. A failing record does not stop its file: every
/// record runs, so one run shows every failure.
pub async fn run(options: &RunOptions) -> Summary {
    let dir = test_files_dir();
    let files: Vec<PathBuf> = find_files(&dir)
        .into_iter()
        .filter(|f| {
            let rel = f
                .strip_prefix(&dir)
                .unwrap_or(f)
                .to_string_lossy()
                .to_string();
            options.filters.is_empty()
                || options.filters.iter().any(|flt| rel.contains(flt.as_str()))
        })
        .collect();
    let mut summary = Summary::default();
    for file in &files {
        let rel = file
            .strip_prefix(dir.parent().unwrap_or(&dir))
            .unwrap_or(file)
            .display()
            .to_string();
        let modes = match &options.modes {
            Some(m) => m.clone(),
            None => match default_modes(file, &dir) {
                Ok(m) => m,
                Err(e) => {
                    summary.failed += 1;
                    println!("FAILED {rel}\n{e}\n");
                    continue;
                }
            },
        };
        summary.files += 1;
        let bad = uncommented_mode_limits(&std::fs::read_to_string(file).unwrap_or_default());
        if !bad.is_empty() {
            summary.failed += 1;
            println!(
                "FAILED {rel}: a mode limit (onlyif/skipif batch/streaming) without a comment line above it saying why, at line(s) {bad:?}\n"
            );
            continue;
        }
        let records = match sqllogictest::parse_file::<DefaultColumnType>(file) {
            Ok(r) => r,
            Err(e) => {
                summary.failed += 1;
                println!("FAILED {rel}\n{e}\n");
                continue;
            }
        };
        // Which query records run in which mode (the engine's name is a
        // label too, as in the sqllogictest runner).
        for r in &records {
            if let sqllogictest::Record::Query { conditions, .. } = r {
                let b = runs_under(conditions, &["batch", "tributary"]);
                let s = runs_under(conditions, &["streaming", "tributary"]);
                let in_batch = b && modes.contains(&RuntimeMode::Batch);
                let in_streaming = s && modes.contains(&RuntimeMode::Streaming);
                match (in_batch, in_streaming) {
                    (true, true) => summary.both += 1,
                    (true, false) => summary.batch_only += 1,
                    (false, true) => summary.streaming_only += 1,
                    (false, false) => summary.neither += 1,
                }
                for &mode in &modes {
                    let runs = if mode == RuntimeMode::Streaming { s } else { b };
                    match (mode, runs) {
                        (RuntimeMode::Streaming, true) => summary.streaming_queries += 1,
                        (RuntimeMode::Streaming, false) => summary.skipped_streaming += 1,
                        (_, true) => summary.batch_queries += 1,
                        (_, false) => summary.skipped_batch += 1,
                    }
                }
            }
        }
        let style = ValueStyle::of_file(file);
        for &mode in &modes {
            let settings = options.settings.clone();
            let declared: DeclaredTypes = Arc::default();
            let declared_for_db = (style == ValueStyle::Sqlite).then(|| Arc::clone(&declared));
            let make = move || {
                let settings = settings.clone();
                let declared = declared_for_db.clone();
                async move {
                    let db = TributaryDb::with_settings(mode, &settings).map_err(SltError)?;
                    Ok(match declared {
                        Some(d) => db.with_sqlite_values(d),
                        None => db,
                    })
                }
            };
            let mut runner = sqllogictest::Runner::new(make);
            runner.add_label(mode_label(mode));
            runner.with_validator(validator);
            runner.with_hash_threshold(style.hash_threshold());
            let errors: Vec<String> = if options.complete {
                match runner
                    .update_test_file(
                        file,
                        " ",
                        validator,
                        sqllogictest::default_normalizer,
                        sqllogictest::default_column_validator,
                    )
                    .await
                {
                    Ok(()) => vec![],
                    Err(e) => vec![e.to_string()],
                }
            } else {
                let mut errors = vec![];
                for record in records.iter().cloned() {
                    if let sqllogictest::Record::Halt { .. } = record {
                        break;
                    }
                    let types = match &record {
                        sqllogictest::Record::Query {
                            expected: sqllogictest::QueryExpect::Results { types, .. },
                            ..
                        } => Some(types.clone()),
                        _ => None,
                    };
                    if let Ok(mut d) = declared.lock() {
                        *d = types;
                    }
                    if let Err(e) = runner.run_async(record).await {
                        errors.push(e.display(true).to_string());
                    }
                }
                errors
            };
            if errors.is_empty() {
                summary.passed += 1;
                println!("ok     [{}] {rel}", mode_label(mode));
            } else {
                summary.failed += 1;
                println!(
                    "FAILED [{}] {rel}: {} record(s)\n",
                    mode_label(mode),
                    errors.len()
                );
                for e in errors.iter().take(MAX_ERRORS_SHOWN) {
                    println!("{e}\n");
                }
                if errors.len() > MAX_ERRORS_SHOWN {
                    println!("... and {} more\n", errors.len() - MAX_ERRORS_SHOWN);
                }
            }
        }
    }
    summary
}

/// Parses the runner's command line: `[--mode batch|streaming|both]
/// [--complete] [FILTER...]`. Flags cargo's test harness passes (such as
/// `--nocapture`) are ignored.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<RunOptions, String> {
    let mut options = RunOptions {
        modes: None,
        filters: vec![],
        complete: false,
        settings: vec![],
    };
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mode" => {
                let m = args.next().ok_or("--mode needs batch, streaming or both")?;
                options.modes = Some(match m.as_str() {
                    "batch" => vec![RuntimeMode::Batch],
                    "streaming" => vec![RuntimeMode::Streaming],
                    "both" => vec![RuntimeMode::Batch, RuntimeMode::Streaming],
                    other => {
                        return Err(format!(
                            "unknown mode '{other}': expected batch, streaming or both"
                        ));
                    }
                })
            }
            "--complete" => options.complete = true,
            "--set" => {
                let kv = args.next().ok_or("--set needs key=value")?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("--set {kv}: expected key=value"))?;
                options
                    .settings
                    .push((k.trim().to_string(), v.trim().to_string()));
            }
            "-h" | "--help" => {
                return Err("usage: tributary-sqllogictest [--mode batch|streaming|both] [--set key=value]... [--complete] [FILTER...]\n\
                            Runs test_files/**/*.slt (and standard/**/*.test) whose path contains a FILTER (all if none).\n\
                            --mode: the modes to run every file in; default: both, except where a MODES file\n\
                            limits a directory. Records are limited with `onlyif batch` / `skipif streaming`.\n\
                            --set: a SET key every session starts with (repeatable), e.g.\n\
                            --set execution.batch-shuffle-mode=ALL_EXCHANGES_PIPELINED --set taskmanager.numberOfTaskSlots=1"
                    .into());
            }
            flag if flag.starts_with('-') => {} // cargo test harness flags
            filter => options.filters.push(filter.to_string()),
        }
    }
    Ok(options)
}

/// The entry point of both the test target and `cargo run`: exits non-zero
/// if any file fails.
pub fn main_with_args(args: impl IntoIterator<Item = String>) {
    let options = match parse_args(args) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    // Paths in the suites (test_files/data/...) are relative to this crate.
    if let Err(e) = std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")) {
        eprintln!("cannot enter {}: {e}", env!("CARGO_MANIFEST_DIR"));
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let s = runtime.block_on(run(&options));
    if !options.settings.is_empty() {
        let set: Vec<String> = options
            .settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "sqllogictest: every session started with {}",
            set.join(", ")
        );
    }
    println!(
        "sqllogictest: {} files; query records run: {} in BATCH, {} in STREAMING; \
         skipped by onlyif / skipif: {} in BATCH, {} in STREAMING",
        s.files, s.batch_queries, s.streaming_queries, s.skipped_batch, s.skipped_streaming
    );
    println!(
        "sqllogictest: query records run in both modes: {}, in BATCH only: {}, \
         in STREAMING only: {}, in neither: {}",
        s.both, s.batch_only, s.streaming_only, s.neither
    );
    println!(
        "sqllogictest: {} passed, {} failed (file, mode) runs",
        s.passed, s.failed
    );
    let (passed, failed) = (s.passed, s.failed);
    if failed > 0 || passed == 0 {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_rounded_and_keep_a_decimal() {
        assert_eq!(format_float(20.0), "20.0");
        assert_eq!(format_float(1.0 / 3.0), "0.333333333333");
        assert_eq!(format_float(4350460790.36), "4350460790.36");
        assert_eq!(format_float(-27.666666666666664), "-27.6666666667");
        assert_eq!(format_float(0.1 + 0.2), "0.3");
        assert_eq!(format_float(-0.0), "0.0");
        assert_eq!(format_float(f64::NAN), "NaN");
    }

    #[test]
    fn sqlite_conventions() {
        use arrow::array::{BooleanArray, Float64Array, Int64Array, StringArray};
        let batch = RecordBatch::try_from_iter([
            (
                "i",
                Arc::new(Int64Array::from(vec![Some(167), None])) as ArrayRef,
            ),
            (
                "f",
                Arc::new(Float64Array::from(vec![Some(-2.9), Some(0.25)])),
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![Some(""), Some("12ab\t")])),
            ),
            (
                "b",
                Arc::new(BooleanArray::from(vec![Some(true), Some(false)])),
            ),
        ])
        .unwrap();
        let (i, r, t) = (
            DefaultColumnType::Integer,
            DefaultColumnType::FloatingPoint,
            DefaultColumnType::Text,
        );
        let rows = format_rows_sqlite(
            &[batch.clone()],
            &[r.clone(), i.clone(), t.clone(), i.clone()],
        )
        .unwrap();
        assert_eq!(rows[0], ["167.000", "-2", "(empty)", "1"]);
        assert_eq!(rows[1], ["NULL", "0", "12ab@", "0"]);
        let rows = format_rows_sqlite(&[batch], &[i, r.clone(), r.clone(), r]).unwrap();
        assert_eq!(rows[0], ["167", "-2.900", "0.000", "1.000"]);
        assert_eq!(rows[1], ["NULL", "0.250", "12.000", "0.000"]);
        assert_eq!(leading_integer(" -12x"), -12);
        assert_eq!(leading_integer("x"), 0);
        assert_eq!(
            ValueStyle::of_file(Path::new("a/select1.test")),
            ValueStyle::Sqlite
        );
        assert_eq!(
            ValueStyle::of_file(Path::new("a/b.slt")),
            ValueStyle::Tributary
        );
    }

    #[test]
    fn sqlite_layout_is_accepted() {
        let n = sqllogictest::default_normalizer;
        let rows = vec![
            vec!["1".to_string(), "10".to_string()],
            vec!["2".into(), "20".into()],
        ];
        let lines = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(validator(n, &rows, &lines(&["1 10", "2 20"])));
        assert!(validator(n, &rows, &lines(&["1", "10", "2", "20"])));
        assert!(!validator(n, &rows, &lines(&["1", "10", "20", "2"])));
        assert!(!validator(n, &rows, &lines(&["1 10"])));
    }

    #[test]
    fn modes_files() {
        let root = std::env::temp_dir().join(format!("slt-modes-{}", std::process::id()));
        let sub = root.join("standard").join("x");
        std::fs::create_dir_all(&sub).unwrap();
        let file = sub.join("a.test");
        let both = vec![RuntimeMode::Batch, RuntimeMode::Streaming];
        assert_eq!(default_modes(&file, &root).unwrap(), both);
        std::fs::write(
            root.join("standard").join("MODES"),
            "# why: ORDER BY everywhere\nbatch\n",
        )
        .unwrap();
        assert_eq!(
            default_modes(&file, &root).unwrap(),
            vec![RuntimeMode::Batch]
        );
        std::fs::write(root.join("standard").join("MODES"), "batch\n").unwrap();
        assert!(
            default_modes(&file, &root).is_err(),
            "a MODES file must say why"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn mode_limits_need_a_comment() {
        assert_eq!(
            uncommented_mode_limits("# why\nonlyif batch\nquery I\nSELECT 1\n"),
            Vec::<usize>::new()
        );
        assert_eq!(
            uncommented_mode_limits("# why\nskipif mysql\nskipif streaming\nquery I\n"),
            Vec::<usize>::new()
        );
        assert_eq!(
            uncommented_mode_limits("\nonlyif batch\nquery I\n"),
            vec![2]
        );
        assert_eq!(uncommented_mode_limits("skipif streaming\n"), vec![1]);
        assert_eq!(
            uncommented_mode_limits("\nskipif mysql\nquery I\n"),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn args() {
        let o = parse_args([
            "--mode".into(),
            "both".into(),
            "joins".into(),
            "--nocapture".into(),
        ])
        .unwrap();
        assert_eq!(o.modes.map(|m| m.len()), Some(2));
        assert_eq!(o.filters, vec!["joins".to_string()]);
        assert!(parse_args(["--mode".into(), "x".into()]).is_err());
        let o = parse_args(["--set".into(), "taskmanager.numberOfTaskSlots=1".into()]).unwrap();
        assert_eq!(
            o.settings,
            vec![("taskmanager.numberOfTaskSlots".into(), "1".into())]
        );
        assert!(parse_args(["--set".into(), "novalue".into()]).is_err());
    }
}

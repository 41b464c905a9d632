//! The sqllogictest runner for Tributary's `.slt` suites.
//!
//! Every `test_files/**/*.slt` file runs against a fresh [`Session`] once per
//! runtime mode asked for (in STREAMING, a query's changelog is folded into
//! the table it describes before it is compared). By default, files under
//! `test_files/cross_mode/` run in both modes and the others in BATCH —
//! until STREAMING runs every construct the other suites use. The mode is also a sqllogictest *label*, so a
//! record or file can be limited to one mode with the format's own
//! conditions — `onlyif batch`, `skipif streaming` — each with a comment
//! saying why.
//!
//! Values are written the way the suites expect them: `NULL` for null, `(empty)`
//! for an empty string, floats rounded to 12 significant digits (so a sum
//! whose rounding depends on the order rows arrive in still compares equal).

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

/// One database connection for the runner: a Tributary session in one mode.
pub struct TributaryDb {
    session: Session,
    mode: RuntimeMode,
}

impl TributaryDb {
    /// A fresh session in `mode`.
    pub fn new(mode: RuntimeMode) -> tributary_engine::Result<Self> {
        Ok(Self {
            session: Session::builder().runtime_mode(mode).build()?,
            mode,
        })
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
        let rows = format_rows(&batches).map_err(|e| {
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
            for (col, formatter) in batch.columns().iter().zip(&formatters) {
                values.push(format_value(col, row, &formatter.value(row).to_string()));
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
    /// Modes to run every file in; `None`: both for `cross_mode/` files,
    /// BATCH for the others.
    pub modes: Option<Vec<RuntimeMode>>,
    /// Only files whose path contains one of these (all files if empty).
    pub filters: Vec<String>,
    /// Rewrite the expected output of every record instead of checking it.
    pub complete: bool,
}

/// Every `.slt` file under `dir`, sorted.
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
            } else if p.extension().is_some_and(|x| x == "slt") {
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

/// Runs the suites; returns (passed, failed) counts of (file, mode) runs
/// and prints each failure with its file, line, SQL, expected and actual.
pub async fn run(options: &RunOptions) -> (usize, usize) {
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
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let rel = file
            .strip_prefix(dir.parent().unwrap_or(&dir))
            .unwrap_or(file)
            .display()
            .to_string();
        let modes = match &options.modes {
            Some(m) => m.clone(),
            None if rel.contains("/cross_mode/") => {
                vec![RuntimeMode::Batch, RuntimeMode::Streaming]
            }
            None => vec![RuntimeMode::Batch],
        };
        for &mode in &modes {
            let make = move || async move { TributaryDb::new(mode).map_err(SltError) };
            let mut runner = sqllogictest::Runner::new(make);
            runner.add_label(mode_label(mode));
            let outcome = if options.complete {
                runner
                    .update_test_file(
                        file,
                        " ",
                        sqllogictest::default_validator,
                        sqllogictest::default_normalizer,
                        sqllogictest::default_column_validator,
                    )
                    .await
                    .map_err(|e| e.to_string())
            } else {
                runner
                    .run_file_async(file)
                    .await
                    .map_err(|e| e.display(true).to_string())
            };
            match outcome {
                Ok(()) => {
                    passed += 1;
                    println!("ok     [{}] {rel}", mode_label(mode));
                }
                Err(e) => {
                    failed += 1;
                    println!("FAILED [{}] {rel}\n{e}\n", mode_label(mode));
                }
            }
        }
    }
    (passed, failed)
}

/// Parses the runner's command line: `[--mode batch|streaming|both]
/// [--complete] [FILTER...]`. Flags cargo's test harness passes (such as
/// `--nocapture`) are ignored.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<RunOptions, String> {
    let mut options = RunOptions {
        modes: None,
        filters: vec![],
        complete: false,
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
            "-h" | "--help" => {
                return Err("usage: tributary-sqllogictest [--mode batch|streaming|both] [--complete] [FILTER...]\n\
                            Runs test_files/**/*.slt whose path contains a FILTER (all if none)."
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
    let (passed, failed) = runtime.block_on(run(&options));
    println!("sqllogictest: {passed} passed, {failed} failed");
    if failed > 0 || passed == 0 {
        std::process::exit(1);
    }
}

#[allow(dead_code)]
fn _arc(_: Arc<()>) {}

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
    }
}

//! Directory watching: the scan of a table with `'source.monitor-interval'`
//! (Flink's continuous filesystem source).
//!
//! The scan is one partition, so the order of its rows is global:
//!
//! 1. At the start it lists the directory (recursively, skipping hidden
//!    files as [`list_files`](super::list_files) does) and reads every file,
//!    in order of modification time, ties by path.
//! 2. Then, every interval, it lists the directory again and reads the files
//!    it has not seen before, in the same order. The order holds within one
//!    listing: a file that shows up in a later listing is read later, even
//!    if its modification time is older (e.g. `mv` keeps the time a file
//!    was written). A file is known by its path and read once, whole: a file
//!    that changes or is replaced under the same name after it was read is
//!    not read again, and a file deleted after it was read takes no rows
//!    back. The paths read are kept for the life of the query (a new query
//!    reads the directory from the start again).
//! 3. The stream never ends; dropping it stops the watching at once (the
//!    polling task is aborted while it waits, and a read in progress stops
//!    at its next batch).
//!
//! Only complete files may be visible under their final name: a writer
//! writes to a hidden name (starting with `.` or `_`) in the same directory
//! and renames the file when it is complete, as Flink's and Hadoop's file
//! sinks do. Staging files of Tributary's own `INSERT INTO` (the local
//! object store writes `name#N` and renames it) are skipped too, and a
//! Parquet table reads only `*.parquet` files, as its bounded scan does.
//!
//! The polling waits on the runtime's timer; listing the directory and
//! decoding a file run on a blocking thread, which sends batches through a
//! bounded channel (two batches), so a slow consumer holds the reader back.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arrow::compute::kernels::cast::{CastOptions, can_cast_types, cast_with_options};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use tokio::sync::mpsc::Sender;

use super::is_hidden;
use super::text_decode::{
    BatchSink, CsvDialect, ParseErrorPolicy, Projection, decode_csv_file, decode_json_file,
};
use crate::ConnectorError;
use crate::options::invalid;

/// The option that turns directory watching on: how often the directory is
/// listed for new files.
pub const MONITOR_INTERVAL_KEY: &str = "source.monitor-interval";

/// What [`parse_monitor_interval`] accepts, for error messages.
const EXPECTED_INTERVAL: &str = "a positive duration: a whole number and a unit, such as '1 s', '500 ms', '10s' or \
     '1 min' (units: ms, s, min, h, d and their long forms; a number alone is milliseconds)";

/// Parses the value of `'source.monitor-interval'`: a positive whole number
/// followed, with or without a space, by a unit — `ms` (`milli`, `millis`,
/// `millisecond(s)`), `s` (`sec`, `secs`, `second(s)`), `min` (`m`,
/// `minute(s)`), `h` (`hour(s)`), `d` (`day(s)`); a number alone is in
/// milliseconds, as in Flink's durations. `'1 s'`, `'500 ms'`, `'10s'` and
/// `'1 min'` are all valid.
///
/// # Errors
/// [`ConnectorError::InvalidOption`] naming `table`, the key and the expected
/// form, for anything else: no number, a fraction, a negative number, zero,
/// an unknown unit, or a duration too large to represent.
pub fn parse_monitor_interval(table: &str, value: &str) -> Result<Duration, ConnectorError> {
    let error = || invalid(table, MONITOR_INTERVAL_KEY, value, EXPECTED_INTERVAL);
    let text = value.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits].parse().map_err(|_| error())?;
    let millis_per_unit: u64 = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return Err(error()),
    };
    match number.checked_mul(millis_per_unit) {
        Some(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(error()),
    }
}

/// The format of a watched directory's files.
#[derive(Debug, Clone)]
pub(super) enum MonitoredFormat {
    Csv(CsvDialect, ParseErrorPolicy),
    Json(ParseErrorPolicy),
    Parquet,
}

/// What a monitored scan reads.
#[derive(Debug, Clone)]
pub(super) struct MonitoredSource {
    /// The table's name, for error messages.
    pub table: String,
    /// The watched directory.
    pub dir: PathBuf,
    /// The table's full schema.
    pub schema: SchemaRef,
    pub format: MonitoredFormat,
    /// The table's skipped-rows counter.
    pub skipped: Arc<AtomicU64>,
    pub interval: Duration,
}

/// Plans the unbounded scan of a watched directory: one partition that
/// produces only the projected columns (Parquet reads only those), under a
/// `StreamingTableExec` marked infinite, which applies `limit`.
pub(super) fn scan(
    source: MonitoredSource,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let columns: Vec<usize> = match projection {
        Some(p) => p.clone(),
        None => (0..source.schema.fields().len()).collect(),
    };
    let projected = Arc::new(source.schema.project(&columns)?);
    let partition = MonitoredPartition {
        source,
        columns,
        projected: projected.clone(),
    };
    Ok(Arc::new(StreamingTableExec::try_new(
        projected,
        vec![Arc::new(partition)],
        None,
        vec![],
        true,
        limit,
    )?))
}

/// The single partition of a monitored scan.
#[derive(Debug)]
struct MonitoredPartition {
    source: MonitoredSource,
    /// The columns to produce, as indices into the table's schema.
    columns: Vec<usize>,
    /// The table's schema projected to `columns`.
    projected: SchemaRef,
}

impl PartitionStream for MonitoredPartition {
    fn schema(&self) -> &SchemaRef {
        &self.projected
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut builder = RecordBatchReceiverStreamBuilder::new(self.projected.clone(), 2);
        let tx = builder.tx();
        let mut watcher = Watcher {
            source: self.source.clone(),
            columns: self.columns.clone(),
            projected: self.projected.clone(),
            batch_size: ctx.session_config().batch_size().max(1),
            seen: HashSet::new(),
            tx: tx.clone(),
        };
        let interval = self.source.interval;
        builder.spawn(async move {
            // Polls start an interval apart; a poll that reads for longer
            // than that is followed by the next one at once.
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = tx.closed() => return Ok(()),
                }
                let polled = tokio::task::spawn_blocking(move || {
                    let flow = watcher.poll();
                    (watcher, flow)
                })
                .await;
                let (w, flow) = match polled {
                    Ok(done) => done,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(e) => return Err(DataFusionError::External(Box::new(e))),
                };
                watcher = w;
                if flow? == Flow::Stop {
                    return Ok(());
                }
            }
        });
        builder.build()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    /// The consumer went away.
    Stop,
}

/// The state of one running monitored scan: the files already read.
struct Watcher {
    source: MonitoredSource,
    columns: Vec<usize>,
    projected: SchemaRef,
    batch_size: usize,
    /// Every file read (or being read) so far, by path.
    seen: HashSet<PathBuf>,
    tx: Sender<Result<RecordBatch>>,
}

impl Watcher {
    /// Lists the directory and reads the files not seen before, in order of
    /// modification time, ties by path. Runs on a blocking thread.
    fn poll(&mut self) -> Result<Flow> {
        let seen = &self.seen;
        let mut new: Vec<(SystemTime, PathBuf)> =
            list_with_mtime(&self.source.dir, &|path| seen.contains(path))
                .map_err(|source| ConnectorError::Io {
                    path: self.source.dir.display().to_string(),
                    source,
                })?
                .into_iter()
                .filter(|(_, path)| self.wanted(path))
                .collect();
        new.sort();
        for (_, file) in new {
            self.seen.insert(file.clone());
            if self.read(&file)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(if self.tx.is_closed() {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }

    /// Whether a listed file is a data file of this table.
    fn wanted(&self, path: &Path) -> bool {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if is_staging(&name) {
            return false;
        }
        match self.source.format {
            MonitoredFormat::Parquet => name.ends_with(".parquet"),
            _ => true,
        }
    }

    /// Reads one file whole, sending its batches; `Stop` if the consumer went
    /// away.
    fn read(&mut self, file: &Path) -> Result<Flow> {
        let tx = &self.tx;
        let schema = &self.source.schema;
        let mut open = true;
        // Every format decodes only the projected columns.
        let mut send = |batch: RecordBatch| {
            open = tx.blocking_send(Ok(batch)).is_ok();
            open
        };
        let skipped = match &self.source.format {
            MonitoredFormat::Csv(dialect, policy) => {
                let projection = Projection::new(schema, Some(&self.columns))?;
                decode_csv_file(file, dialect, schema, &projection, *policy, &mut send)?
            }
            MonitoredFormat::Json(policy) => {
                let projection = Projection::new(schema, Some(&self.columns))?;
                decode_json_file(file, &projection, *policy, &mut send)?
            }
            MonitoredFormat::Parquet => {
                let mut send = |batch: RecordBatch| tx.blocking_send(Ok(batch)).is_ok();
                let table = &self.source.table;
                let complete = read_parquet_file(
                    file,
                    table,
                    schema,
                    &self.projected,
                    self.batch_size,
                    &mut send,
                )?;
                open = complete;
                0
            }
        };
        self.source.skipped.fetch_add(skipped, Ordering::Relaxed);
        Ok(if open { Flow::Continue } else { Flow::Stop })
    }
}

/// A file that the local object store is still writing: `name#N`, renamed
/// to `name` when complete (DataFusion's sinks write through it).
fn is_staging(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Every file under `dir`, recursively, with its modification time, except
/// the ones `known` accepts (files read before, which need no `stat`); the
/// same files as [`list_files`](super::list_files) (hidden names skipped,
/// symbolic links followed), but an entry that vanishes while the directory
/// is listed (a writer renamed or deleted it) is left out instead of failing
/// the listing.
fn list_with_mtime(
    dir: &Path,
    known: &dyn Fn(&Path) -> bool,
) -> std::io::Result<Vec<(SystemTime, PathBuf)>> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && d != dir => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if is_hidden(&entry.file_name().to_string_lossy()) {
                continue;
            }
            let path = entry.path();
            if known(&path) {
                continue;
            }
            let metadata = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if metadata.is_dir() {
                dirs.push(path);
            } else {
                out.push((metadata.modified()?, path));
            }
        }
    }
    Ok(out)
}

/// Reads one Parquet file into batches of `projected` (the table's schema,
/// or a projection of it), matching columns by name and casting each to its
/// declared type with Arrow's `cast` kernel. Only the projected columns are
/// read. Returns false if `sink` asked to stop.
///
/// # Errors
/// [`ConnectorError::Io`] naming the file: it cannot be opened or is not
/// Parquet; a column of `table_schema` is missing from it; a column's type
/// cannot be cast to the declared type, or a value does not fit it.
pub(super) fn read_parquet_file(
    file: &Path,
    table: &str,
    table_schema: &SchemaRef,
    projected: &SchemaRef,
    batch_size: usize,
    sink: &mut BatchSink<'_>,
) -> Result<bool, ConnectorError> {
    let bad = |message: String| ConnectorError::Io {
        path: file.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, message),
    };
    let handle = File::open(file).map_err(|source| ConnectorError::Io {
        path: file.display().to_string(),
        source,
    })?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(handle).map_err(|e| bad(e.to_string()))?;
    let file_schema = builder.schema().clone();
    let missing: Vec<&str> = table_schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|name| file_schema.index_of(name).is_err())
        .collect();
    if !missing.is_empty() {
        let has: Vec<&str> = file_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        return Err(bad(format!(
            "column{} {} of table '{table}' missing from the file (it has: {}); every file of a monitored table must \
             have every declared column",
            if missing.len() == 1 { "" } else { "s" },
            missing
                .iter()
                .map(|m| format!("'{m}'"))
                .collect::<Vec<_>>()
                .join(", "),
            has.join(", "),
        )));
    }
    let mut roots = Vec::with_capacity(projected.fields().len());
    for field in projected.fields() {
        let index = file_schema.index_of(field.name()).expect("checked above");
        let from = file_schema.field(index).data_type();
        if !can_cast_types(from, field.data_type()) {
            return Err(bad(format!(
                "column '{}' is {} in the file, which cannot be cast to its declared type {}",
                field.name(),
                super::text_decode::sql_type_name(from),
                super::text_decode::sql_type_name(field.data_type()),
            )));
        }
        roots.push(index);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(batch_size)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    for batch in reader {
        let batch = batch.map_err(|e| bad(e.to_string()))?;
        let columns = projected
            .fields()
            .iter()
            .map(|field| {
                let column = batch
                    .column_by_name(field.name())
                    .expect("projected column read");
                cast_with_options(column, field.data_type(), &options)
                    .map_err(|e| bad(format!("column '{}': {e}", field.name())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = RecordBatch::try_new_with_options(
            projected.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )
        .map_err(|e| bad(e.to_string()))?;
        if !sink(out) {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filesystem::FileSystemTable;
    use crate::{Boundedness, TableOptions};
    use arrow::array::{Array, Int32Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::catalog::TableProvider;
    use datafusion::prelude::SessionContext;
    use futures::StreamExt;
    use std::time::Instant;

    const INTERVAL_MS: u64 = 400;

    fn interval() -> Duration {
        Duration::from_millis(INTERVAL_MS)
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn options(dir: &Path, format: &str, extra: &[(&str, &str)]) -> TableOptions {
        let mut pairs = vec![
            ("connector".to_string(), "filesystem".to_string()),
            ("path".to_string(), dir.display().to_string()),
            ("format".to_string(), format.to_string()),
            (
                MONITOR_INTERVAL_KEY.to_string(),
                format!("{INTERVAL_MS} ms"),
            ),
        ];
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        TableOptions::new(pairs)
    }

    async fn table(dir: &Path, format: &str, extra: &[(&str, &str)]) -> FileSystemTable {
        FileSystemTable::try_new("watched", Some(schema()), options(dir, format, extra))
            .await
            .unwrap()
    }

    async fn start(
        t: &FileSystemTable,
        projection: Option<Vec<usize>>,
        limit: Option<usize>,
    ) -> (Arc<dyn ExecutionPlan>, SendableRecordBatchStream) {
        let ctx = SessionContext::new();
        let plan = t
            .scan(&ctx.state(), projection.as_ref(), &[], limit)
            .await
            .unwrap();
        assert_eq!(plan.properties().partitioning.partition_count(), 1);
        let stream = plan.execute(0, ctx.task_ctx()).unwrap();
        (plan, stream)
    }

    /// Writes a complete file the way a writer should: under a hidden name,
    /// then renamed.
    fn publish(dir: &Path, name: &str, content: &str) {
        let hidden = dir.join(format!(".{name}.inprogress"));
        std::fs::write(&hidden, content).unwrap();
        std::fs::rename(&hidden, dir.join(name)).unwrap();
    }

    fn set_mtime(path: &Path, t: SystemTime) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    fn ids(batch: &RecordBatch) -> Vec<i64> {
        batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .iter()
            .map(|v| v.unwrap())
            .collect()
    }

    /// The ids of the rows that arrive within `wait`, reading until `n` rows
    /// came; fewer if the time runs out.
    async fn next_ids(
        stream: &mut SendableRecordBatchStream,
        n: usize,
        wait: Duration,
    ) -> Vec<i64> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        while out.len() < n {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(batch)) => out.extend(ids(&batch.unwrap())),
                Ok(None) => panic!("a monitored scan ended"),
                Err(_) => break,
            }
        }
        out
    }

    /// Asserts that no row arrives within `wait`.
    async fn assert_quiet(stream: &mut SendableRecordBatchStream, wait: Duration) {
        if let Ok(item) = tokio::time::timeout(wait, stream.next()).await {
            panic!(
                "expected no rows, got {:?}",
                item.map(|b| b.map(|b| ids(&b)))
            );
        }
    }

    #[test]
    fn interval_forms() {
        let ms = |v: &str| parse_monitor_interval("t", v).unwrap().as_millis();
        assert_eq!(ms("1 s"), 1_000);
        assert_eq!(ms("500 ms"), 500);
        assert_eq!(ms("10s"), 10_000);
        assert_eq!(ms("1 min"), 60_000);
        assert_eq!(ms("250"), 250);
        assert_eq!(ms(" 2 seconds "), 2_000);
        assert_eq!(ms("1 h"), 3_600_000);
        for bad in [
            "",
            "soon",
            "1.5 s",
            "-1 s",
            "0 s",
            "0",
            "1 fortnight",
            "s",
            "1 s 2",
            "99999999999999999999 d",
        ] {
            let err = parse_monitor_interval("t", bad).unwrap_err().to_string();
            assert!(err.contains("table 't'"), "{bad}: {err}");
            assert!(err.contains("'source.monitor-interval'"), "{bad}: {err}");
            assert!(
                err.contains("'1 s', '500 ms', '10s' or '1 min'"),
                "{bad}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn the_option_makes_the_table_unbounded_and_needs_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let t = table(dir.path(), "csv", &[]).await;
        assert_eq!(t.boundedness(), Boundedness::Unbounded);
        assert_eq!(t.monitor_interval(), Some(interval()));

        let plain = TableOptions::new(
            options(dir.path(), "csv", &[])
                .iter()
                .filter(|(k, _)| *k != MONITOR_INTERVAL_KEY)
                .map(|(k, v)| (k.into(), v.into())),
        );
        let bounded = FileSystemTable::try_new("plain", Some(schema()), plain)
            .await
            .unwrap();
        assert_eq!(bounded.boundedness(), Boundedness::Bounded);
        assert_eq!(bounded.monitor_interval(), None);

        let file = dir.path().join("one.csv");
        std::fs::write(&file, "id,name\n1,a\n").unwrap();
        let err = FileSystemTable::try_new("watched", Some(schema()), options(&file, "csv", &[]))
            .await
            .unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains("table 'watched'") && err.contains("'path'"),
            "{err}"
        );
        assert!(
            err.contains("a directory, since 'source.monitor-interval' is set"),
            "{err}"
        );

        let mut bad = options(dir.path(), "csv", &[]);
        bad = TableOptions::new(bad.iter().map(|(k, v)| {
            (
                k.to_string(),
                if k == MONITOR_INTERVAL_KEY {
                    "every second".to_string()
                } else {
                    v.to_string()
                },
            )
        }));
        let err = FileSystemTable::try_new("watched", Some(schema()), bad)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid value 'every second' for option 'source.monitor-interval'"),
            "{err}"
        );

        // A directory that does not exist yet is fine at CREATE TABLE.
        let later = dir.path().join("later");
        let t = FileSystemTable::try_new("watched", Some(schema()), options(&later, "json", &[]))
            .await
            .unwrap();
        assert_eq!(t.boundedness(), Boundedness::Unbounded);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_present_files_by_mtime_then_each_new_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        publish(dir.path(), "a.csv", "id,name\n1,a\n2,a\n");
        publish(dir.path(), "b.csv", "id,name\n3,b\n");
        set_mtime(&dir.path().join("a.csv"), now - Duration::from_secs(10));
        set_mtime(&dir.path().join("b.csv"), now - Duration::from_secs(20));
        let t = table(dir.path(), "csv", &[]).await;
        let (_plan, mut stream) = start(&t, None, None).await;
        assert_eq!(
            next_ids(&mut stream, 3, interval() * 2).await,
            vec![3, 1, 2],
            "b.csv is older"
        );
        assert_quiet(&mut stream, interval() * 2).await;

        let written = Instant::now();
        publish(dir.path(), "c.csv", "id,name\n4,c\n5,c\n");
        assert_eq!(next_ids(&mut stream, 2, interval() * 2).await, vec![4, 5]);
        assert!(
            written.elapsed() <= interval() * 2,
            "{:?}",
            written.elapsed()
        );

        // Read once: touching or rewriting a file read before does nothing.
        set_mtime(&dir.path().join("c.csv"), SystemTime::now());
        std::fs::write(dir.path().join("a.csv"), "id,name\n99,z\n").unwrap();
        assert_quiet(&mut stream, interval() * 3).await;

        // Files in subdirectories too.
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        publish(&dir.path().join("sub"), "d.csv", "id,name\n6,d\n");
        assert_eq!(next_ids(&mut stream, 1, interval() * 2).await, vec![6]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_found_together_are_read_by_mtime_then_path() {
        let dir = tempfile::tempdir().unwrap();
        let t = table(dir.path(), "csv", &[]).await;
        let (_plan, mut stream) = start(&t, None, None).await;
        assert_quiet(&mut stream, interval()).await;
        // Build a batch of files in a hidden directory, then make them all
        // visible in one rename, so that one poll finds all three.
        let staging = dir.path().join("_batch");
        std::fs::create_dir(&staging).unwrap();
        let t0 = SystemTime::now() - Duration::from_secs(60);
        for (name, id, mtime) in [
            ("x.csv", 1, t0 + Duration::from_secs(5)),
            ("z.csv", 3, t0),
            ("y.csv", 2, t0),
        ] {
            let path = staging.join(name);
            std::fs::write(&path, format!("id,name\n{id},{name}\n")).unwrap();
            set_mtime(&path, mtime);
        }
        std::fs::rename(&staging, dir.path().join("batch")).unwrap();
        assert_eq!(
            next_ids(&mut stream, 3, interval() * 2).await,
            vec![2, 3, 1]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hidden_files_are_read_once_renamed() {
        let dir = tempfile::tempdir().unwrap();
        publish(dir.path(), "a.json", "{\"id\": 1, \"name\": \"a\"}\n");
        let t = table(dir.path(), "json", &[]).await;
        let (_plan, mut stream) = start(&t, None, None).await;
        assert_eq!(next_ids(&mut stream, 1, interval() * 2).await, vec![1]);
        std::fs::write(dir.path().join(".b.json"), "{\"id\": 2}\n").unwrap();
        std::fs::write(dir.path().join("_c.json"), "{\"id\": 3}\n").unwrap();
        std::fs::write(dir.path().join("d.json#1"), "{\"id\": 4}\n").unwrap();
        assert_quiet(&mut stream, interval() * 3).await;
        std::fs::rename(dir.path().join(".b.json"), dir.path().join("b.json")).unwrap();
        assert_eq!(next_ids(&mut stream, 1, interval() * 2).await, vec![2]);
        assert_quiet(&mut stream, interval() * 2).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_stream_stops_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        // Many batches, so the reader is blocked on the full channel.
        let rows: String = (0..50_000).map(|i| format!("{i},r\n")).collect();
        publish(dir.path(), "big.csv", &format!("id,name\n{rows}"));
        let mut options = options(dir.path(), "csv", &[]);
        options = TableOptions::new(options.iter().map(|(k, v)| {
            (
                k.to_string(),
                if k == MONITOR_INTERVAL_KEY {
                    "1 min".to_string()
                } else {
                    v.to_string()
                },
            )
        }));
        let t = FileSystemTable::try_new("watched", Some(schema()), options)
            .await
            .unwrap();
        let watching = |t: &FileSystemTable| Arc::strong_count(&t.skipped_rows) > 1;

        let (plan, mut stream) = start(&t, None, None).await;
        assert!(
            !next_ids(&mut stream, 1, Duration::from_secs(5))
                .await
                .is_empty()
        );
        drop(stream);
        drop(plan);
        let deadline = Instant::now() + Duration::from_secs(1);
        while watching(&t) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            !watching(&t),
            "the reader is still running after its stream was dropped"
        );

        // The same while it waits for the next poll.
        std::fs::remove_file(dir.path().join("big.csv")).unwrap();
        publish(dir.path(), "small.csv", "id,name\n1,a\n");
        let (plan, mut stream) = start(&t, None, None).await;
        assert_eq!(
            next_ids(&mut stream, 1, Duration::from_secs(5)).await,
            vec![1]
        );
        assert_quiet(&mut stream, Duration::from_millis(100)).await;
        drop(stream);
        drop(plan);
        let deadline = Instant::now() + Duration::from_secs(1);
        while watching(&t) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            !watching(&t),
            "the polling task is still running after its stream was dropped"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_limit_ends_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        publish(dir.path(), "a.csv", "id,name\n1,a\n2,b\n3,c\n");
        let t = table(dir.path(), "csv", &[]).await;
        let (_plan, stream) = start(&t, None, Some(2)).await;
        let batches: Vec<_> =
            tokio::time::timeout(Duration::from_secs(5), stream.collect::<Vec<_>>())
                .await
                .unwrap();
        let rows: usize = batches.into_iter().map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn malformed_rows_are_skipped_and_counted_or_fail_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        publish(dir.path(), "a.csv", "id,name\n1,a\nx,b\n3,c\n");
        let t = table(dir.path(), "csv", &[("csv.ignore-parse-errors", "true")]).await;
        let (_plan, mut stream) = start(&t, None, None).await;
        // The counter moves once a file has been read to its end, just
        // after its last batch went out.
        let skipped_reaches = async |n: u64| {
            let deadline = Instant::now() + Duration::from_secs(2);
            while t.skipped_rows() < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            t.skipped_rows()
        };
        assert_eq!(next_ids(&mut stream, 2, interval() * 2).await, vec![1, 3]);
        assert_eq!(skipped_reaches(1).await, 1);
        publish(dir.path(), "b.csv", "id,name\n4,d\n5,e,extra\n");
        assert_eq!(next_ids(&mut stream, 1, interval() * 2).await, vec![4]);
        assert_eq!(skipped_reaches(2).await, 2);

        let strict = table(dir.path(), "csv", &[]).await;
        let (_plan, mut stream) = start(&strict, None, None).await;
        let err = tokio::time::timeout(interval() * 2, async {
            loop {
                match stream.next().await {
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return e.to_string(),
                    None => panic!("ended without an error"),
                }
            }
        })
        .await
        .unwrap();
        assert!(
            err.contains("a.csv:3: cannot parse 'x' as BIGINT for column 'id'"),
            "{err}"
        );
    }

    fn write_parquet(path: &Path, batch: &RecordBatch) {
        let hidden =
            path.with_file_name(format!("_{}", path.file_name().unwrap().to_string_lossy()));
        let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(
            File::create(&hidden).unwrap(),
            batch.schema(),
            None,
        )
        .unwrap();
        w.write(batch).unwrap();
        w.close().unwrap();
        std::fs::rename(&hidden, path).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parquet_columns_are_matched_by_name_and_cast() {
        let dir = tempfile::tempdir().unwrap();
        // Other order, a narrower integer type, an extra column.
        let file_schema = Arc::new(Schema::new(vec![
            Field::new("extra", DataType::Utf8, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("id", DataType::Int32, true),
        ]));
        let batch = RecordBatch::try_new(
            file_schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["e1", "e2"])),
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Int32Array::from(vec![1, 2])),
            ],
        )
        .unwrap();
        write_parquet(&dir.path().join("1.parquet"), &batch);
        std::fs::write(dir.path().join("notes.txt"), "not parquet").unwrap();
        let t = table(dir.path(), "parquet", &[]).await;

        let (_plan, mut stream) = start(&t, None, None).await;
        let first = tokio::time::timeout(interval() * 2, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(first.schema(), schema());
        assert_eq!(ids(&first), vec![1, 2]);
        let names = first
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(names.iter().collect::<Vec<_>>(), vec![Some("a"), Some("b")]);

        // A projection reads only the asked columns, in the asked order.
        let (_plan, mut projected) = start(&t, Some(vec![1]), None).await;
        let b = tokio::time::timeout(interval() * 2, projected.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(b.num_columns(), 1);
        assert_eq!(b.schema().field(0).name(), "name");
        // No column at all (COUNT(*)): rows without columns.
        let (_plan, mut counted) = start(&t, Some(vec![]), None).await;
        let b = tokio::time::timeout(interval() * 2, counted.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!((b.num_columns(), b.num_rows()), (0, 2));

        // A later file without the column 'name' fails the scan, naming it.
        let only_id = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![3]))],
        )
        .unwrap();
        write_parquet(&dir.path().join("2.parquet"), &only_id);
        let err = tokio::time::timeout(interval() * 2, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "2.parquet: column 'name' of table 'watched' missing from the file (it has: id)"
            ),
            "{err}"
        );
    }
}

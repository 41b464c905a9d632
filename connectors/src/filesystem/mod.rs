//! The `filesystem` connector: a table over a file or a directory of CSV,
//! newline-delimited JSON or Parquet files (Flink's filesystem connector).
//!
//! ```sql
//! CREATE TABLE flights WITH ('connector' = 'filesystem',
//!   'path' = 'examples/data/flights.parquet', 'format' = 'parquet');
//! CREATE TABLE bids (auction BIGINT, price BIGINT) WITH ('connector' = 'filesystem',
//!   'path' = 'data/bids/', 'format' = 'csv', 'csv.ignore-parse-errors' = 'true');
//! ```
//!
//! Reading: Parquet goes through DataFusion's Parquet scan (projection and
//! predicate pushdown, row-group pruning; a monitored table reads each
//! Parquet file with the `parquet` crate's reader instead, projection only).
//! CSV and JSON go through [`text_decode`], which reports a malformed row
//! with its file and line, or skips and counts it. A directory is read
//! recursively, skipping files whose names start with `.` or `_` (as Flink
//! and Hadoop do).
//!
//! Writing: `INSERT INTO` adds new files to the table's directory, through
//! DataFusion's file sinks, in the table's format.
//!
//! Directory watching (Flink's `'source.monitor-interval'`): with the option
//! set, the table is unbounded. A query reads the files present when it
//! starts, then lists the directory again every interval and reads each file
//! that appeared since, once, in order of modification time (ties by path);
//! its scan never ends. See [`monitor`].
//!
//! ```sql
//! CREATE TABLE events (id BIGINT, ts TIMESTAMP(3),
//!   WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
//! ) WITH ('connector' = 'filesystem', 'path' = '/data/events/', 'format' = 'csv',
//!   'source.monitor-interval' = '1 s');
//! ```
//!
//! A file must be complete when it becomes visible under its final name:
//! **write it under a hidden name (starting with `.` or `_`) in the same
//! directory, then rename it**. A rename within one file system is atomic,
//! and hidden files are never read. A file written in place may be read
//! while it is half written, and its later rows are then never read.

pub mod monitor;
pub mod text_decode;
mod text_scan;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use self::monitor::{
    MONITOR_INTERVAL_KEY, MonitoredFormat, MonitoredSource, parse_monitor_interval,
};
use self::text_decode::{CsvDialect, ParseErrorPolicy};
use crate::options::invalid;
use crate::{Boundedness, ConnectorError, TableOptions};

/// The formats `'format'` accepts.
pub const FORMATS: &[&str] = &["csv", "json", "parquet"];

const COMMON_KEYS: &[&str] = &["connector", "path", "format", MONITOR_INTERVAL_KEY];
const CSV_KEYS: &[&str] = &[
    "csv.field-delimiter",
    "csv.quote-character",
    "csv.escape-character",
    "csv.allow-comments",
    "csv.ignore-parse-errors",
    "csv.header",
];
const JSON_KEYS: &[&str] = &["json.ignore-parse-errors"];
const PARQUET_KEYS: &[&str] = &["parquet.compression"];

/// A file format and its options.
#[derive(Debug, Clone)]
pub enum FileFormatOptions {
    /// `'format' = 'csv'`.
    Csv {
        dialect: CsvDialect,
        policy: ParseErrorPolicy,
    },
    /// `'format' = 'json'`: one JSON object per line.
    Json { policy: ParseErrorPolicy },
    /// `'format' = 'parquet'`; `compression` is the codec for written files
    /// (`parquet.compression`, e.g. `zstd(3)`, `snappy`; DataFusion's default if unset).
    Parquet { compression: Option<String> },
}

impl FileFormatOptions {
    fn from_options(table: &str, options: &TableOptions) -> Result<Self, ConnectorError> {
        let format = options
            .get("format")
            .ok_or_else(|| ConnectorError::MissingOption {
                table: table.into(),
                key: "format".into(),
                hint: format!("add 'format' = '<one of: {}>'", FORMATS.join(", ")),
            })?;
        let format = format.to_ascii_lowercase();
        let keys: Vec<&str> = match format.as_str() {
            "csv" => [COMMON_KEYS, CSV_KEYS].concat(),
            "json" => [COMMON_KEYS, JSON_KEYS].concat(),
            "parquet" => [COMMON_KEYS, PARQUET_KEYS].concat(),
            other => {
                return Err(invalid(
                    table,
                    "format",
                    other,
                    &format!("one of: {}", FORMATS.join(", ")),
                ));
            }
        };
        options.check_keys(table, "filesystem", &keys)?;
        let policy = |key: &str| -> Result<ParseErrorPolicy, ConnectorError> {
            Ok(if options.bool(table, key, false)? {
                ParseErrorPolicy::Skip
            } else {
                ParseErrorPolicy::Fail
            })
        };
        Ok(match format.as_str() {
            "csv" => FileFormatOptions::Csv {
                dialect: CsvDialect {
                    delimiter: options.byte(table, "csv.field-delimiter", b',')?,
                    quote: options.byte(table, "csv.quote-character", b'"')?,
                    escape: match options.get("csv.escape-character") {
                        Some(_) => Some(options.byte(table, "csv.escape-character", b'\\')?),
                        None => None,
                    },
                    allow_comments: options.bool(table, "csv.allow-comments", false)?,
                    header: options.bool(table, "csv.header", true)?,
                },
                policy: policy("csv.ignore-parse-errors")?,
            },
            "json" => FileFormatOptions::Json {
                policy: policy("json.ignore-parse-errors")?,
            },
            _ => FileFormatOptions::Parquet {
                compression: options.get("parquet.compression").map(str::to_string),
            },
        })
    }

    /// DataFusion's file format with the same options, for Parquet scans and
    /// for every format's writes.
    fn datafusion_format(&self) -> Result<Arc<dyn FileFormat>> {
        Ok(match self {
            FileFormatOptions::Csv { dialect, .. } => Arc::new(
                CsvFormat::default()
                    .with_has_header(dialect.header)
                    .with_delimiter(dialect.delimiter)
                    .with_quote(dialect.quote)
                    .with_escape(dialect.escape),
            ),
            FileFormatOptions::Json { .. } => Arc::new(JsonFormat::default()),
            FileFormatOptions::Parquet { compression } => {
                let mut options = datafusion::config::TableParquetOptions::default();
                if let Some(c) = compression {
                    options.global.compression = Some(c.clone());
                }
                Arc::new(ParquetFormat::default().with_options(options))
            }
        })
    }

    fn extension(&self) -> &'static str {
        match self {
            FileFormatOptions::Csv { .. } => ".csv",
            FileFormatOptions::Json { .. } => ".json",
            FileFormatOptions::Parquet { .. } => ".parquet",
        }
    }
}

/// A `filesystem` connector table.
///
/// Schema: the declared columns, or the ones inferred from the first file
/// (Parquet footer; CSV header and the first 1,000 rows; JSON's first 1,000
/// lines). Bounded, unless `'source.monitor-interval'` is set: then a scan
/// watches the directory for new files and never ends (see [`monitor`]).
#[derive(Debug)]
pub struct FileSystemTable {
    name: String,
    path: PathBuf,
    format: FileFormatOptions,
    schema: SchemaRef,
    options: TableOptions,
    /// DataFusion's listing table over the same path and format: it scans
    /// Parquet and writes every format.
    listing: Arc<ListingTable>,
    skipped_rows: Arc<AtomicU64>,
    /// `'source.monitor-interval'`: watch the directory, listing it this often.
    monitor_interval: Option<Duration>,
}

impl FileSystemTable {
    /// Creates the table from its `WITH` options (`path`, `format`,
    /// `source.monitor-interval`, `csv.*`, `json.*`, `parquet.*`). A relative
    /// `path` is taken from the current directory.
    ///
    /// # Errors
    /// A missing `path` or `format`, an unknown option key (listing the valid
    /// ones), an invalid option value (a `source.monitor-interval` that is
    /// not a positive duration, see [`parse_monitor_interval`]), a
    /// `source.monitor-interval` with a `path` that exists and is not a
    /// directory, or — when `schema` is `None` — a path that does not exist
    /// or holds no file to infer the columns from.
    pub async fn try_new(
        name: &str,
        schema: Option<SchemaRef>,
        options: TableOptions,
    ) -> Result<Self, ConnectorError> {
        let format = FileFormatOptions::from_options(name, &options)?;
        let raw_path = options
            .get("path")
            .ok_or_else(|| ConnectorError::MissingOption {
                table: name.into(),
                key: "path".into(),
                hint: "add 'path' = '<file or directory>'".into(),
            })?;
        let path = std::path::absolute(raw_path).map_err(|source| ConnectorError::Io {
            path: raw_path.into(),
            source,
        })?;
        let monitor_interval = match options.get(MONITOR_INTERVAL_KEY) {
            Some(value) => Some(parse_monitor_interval(name, value)?),
            None => None,
        };
        if monitor_interval.is_some() && path.exists() && !path.is_dir() {
            return Err(not_a_directory(name, raw_path));
        }
        let schema = match schema {
            Some(s) => s,
            None => {
                if !path.exists() {
                    return Err(ConnectorError::PathNotFound {
                        table: name.into(),
                        path: raw_path.into(),
                    });
                }
                infer_schema(name, &path, &format, raw_path).await?
            }
        };
        let url = listing_url(&path)?;
        let listing_options = ListingOptions::new(format.datafusion_format()?)
            .with_file_extension(format.extension());
        let config = ListingTableConfig::new(url)
            .with_listing_options(listing_options)
            .with_schema(schema.clone());
        let listing = Arc::new(ListingTable::try_new(config)?);
        Ok(Self {
            name: name.into(),
            path,
            format,
            schema,
            options,
            listing,
            skipped_rows: Arc::new(AtomicU64::new(0)),
            monitor_interval,
        })
    }

    /// The table's name as declared.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `WITH` options as declared.
    pub fn options(&self) -> &TableOptions {
        &self.options
    }

    /// [`Boundedness::Bounded`] (a scan reads the files present when the
    /// query starts), or [`Boundedness::Unbounded`] with
    /// `'source.monitor-interval'` (a scan watches the directory for new
    /// files and never ends).
    pub fn boundedness(&self) -> Boundedness {
        if self.monitor_interval.is_some() {
            Boundedness::Unbounded
        } else {
            Boundedness::Bounded
        }
    }

    /// How often a scan lists the directory for new files
    /// (`'source.monitor-interval'`, millisecond precision); `None` for a
    /// bounded table.
    pub fn monitor_interval(&self) -> Option<Duration> {
        self.monitor_interval
    }

    /// Rows skipped as malformed (under `*.ignore-parse-errors`) by every
    /// scan of this table so far; a query reports the difference.
    pub fn skipped_rows(&self) -> u64 {
        self.skipped_rows.load(Ordering::Relaxed)
    }

    /// The option that made malformed rows be skipped, for reports.
    pub fn ignore_parse_errors_key(&self) -> Option<&'static str> {
        match &self.format {
            FileFormatOptions::Csv { .. } => Some("csv.ignore-parse-errors"),
            FileFormatOptions::Json { .. } => Some("json.ignore-parse-errors"),
            FileFormatOptions::Parquet { .. } => None,
        }
    }

    fn check_exists(&self) -> Result<(), ConnectorError> {
        if self.path.exists() {
            Ok(())
        } else {
            Err(ConnectorError::PathNotFound {
                table: self.name.clone(),
                path: self.options.get("path").unwrap_or_default().into(),
            })
        }
    }
}

#[async_trait]
impl TableProvider for FileSystemTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.check_exists()?;
        if let Some(interval) = self.monitor_interval {
            if !self.path.is_dir() {
                return Err(not_a_directory(
                    &self.name,
                    self.options.get("path").unwrap_or_default(),
                )
                .into());
            }
            let format = match &self.format {
                FileFormatOptions::Csv { dialect, policy } => {
                    MonitoredFormat::Csv(dialect.clone(), *policy)
                }
                FileFormatOptions::Json { policy } => MonitoredFormat::Json(*policy),
                FileFormatOptions::Parquet { .. } => MonitoredFormat::Parquet,
            };
            let source = MonitoredSource {
                table: self.name.clone(),
                dir: self.path.clone(),
                schema: self.schema.clone(),
                format,
                skipped: self.skipped_rows.clone(),
                interval,
            };
            return monitor::scan(source, projection, limit);
        }
        match &self.format {
            FileFormatOptions::Parquet { .. } => {
                self.listing.scan(state, projection, filters, limit).await
            }
            FileFormatOptions::Csv { dialect, policy } => text_scan::scan(
                &self.path,
                self.schema.clone(),
                text_scan::TextFormat::Csv(dialect.clone()),
                *policy,
                self.skipped_rows.clone(),
                state.config().target_partitions(),
                projection,
                limit,
            ),
            FileFormatOptions::Json { policy } => text_scan::scan(
                &self.path,
                self.schema.clone(),
                text_scan::TextFormat::Json,
                *policy,
                self.skipped_rows.clone(),
                state.config().target_partitions(),
                projection,
                limit,
            ),
        }
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        match &self.format {
            FileFormatOptions::Parquet { .. } if self.monitor_interval.is_none() => {
                self.listing.supports_filters_pushdown(filters)
            }
            _ => Ok(vec![
                TableProviderFilterPushDown::Unsupported;
                filters.len()
            ]),
        }
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.path.is_file() {
            return Err(DataFusionError::Plan(format!(
                "cannot INSERT INTO table '{}': its path '{}' is a file; a filesystem sink writes new files into a directory, so point 'path' at a directory",
                self.name,
                self.path.display()
            )));
        }
        if insert_op != InsertOp::Append {
            return Err(DataFusionError::NotImplemented(format!(
                "INSERT OVERWRITE into filesystem table '{}' is not supported; use INSERT INTO to append files",
                self.name
            )));
        }
        std::fs::create_dir_all(&self.path).map_err(|e| DataFusionError::External(Box::new(e)))?;
        self.listing.insert_into(state, input, insert_op).await
    }
}

/// The listing URL of a path: a directory (or a path that does not exist yet,
/// which a sink will create) ends in `/`, so DataFusion treats it as a
/// collection of files.
fn listing_url(path: &Path) -> Result<ListingTableUrl> {
    let mut s = path.display().to_string();
    if !path.is_file() && !s.ends_with('/') {
        s.push('/');
    }
    ListingTableUrl::parse(&s)
}

/// The error for `'source.monitor-interval'` on a path that is not a directory.
fn not_a_directory(table: &str, raw_path: &str) -> ConnectorError {
    invalid(
        table,
        "path",
        raw_path,
        &format!(
            "a directory, since '{MONITOR_INTERVAL_KEY}' is set: a monitored table watches a directory for new files \
             (point 'path' at the directory, or remove '{MONITOR_INTERVAL_KEY}' to read the file once)"
        ),
    )
}

/// Whether a file or directory name is hidden from scans: it starts with `.`
/// or `_`, as in-progress files do (Flink's and Hadoop's convention).
pub(crate) fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

/// Every data file under `path` (the path itself if it is a file), sorted by
/// path, skipping hidden files (names starting with `.` or `_`).
pub fn list_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if is_hidden(&name) {
                continue;
            }
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p)
            } else {
                out.push(p)
            }
        }
    }
    out.sort();
    Ok(out)
}

async fn infer_schema(
    table: &str,
    path: &Path,
    format: &FileFormatOptions,
    raw_path: &str,
) -> Result<SchemaRef, ConnectorError> {
    let files = list_files(path).map_err(|source| ConnectorError::Io {
        path: raw_path.into(),
        source,
    })?;
    let first = files.first().ok_or_else(|| ConnectorError::Inference {
        table: table.into(),
        message: format!("'{raw_path}' holds no data file"),
    })?;
    let io = |source| ConnectorError::Io {
        path: first.display().to_string(),
        source,
    };
    let inference = |e: arrow::error::ArrowError| ConnectorError::Inference {
        table: table.into(),
        message: format!("{}: {e}", first.display()),
    };
    let schema = match format {
        FileFormatOptions::Csv { dialect, .. } => {
            let mut f = arrow::csv::reader::Format::default()
                .with_header(dialect.header)
                .with_delimiter(dialect.delimiter)
                .with_quote(dialect.quote);
            if let Some(e) = dialect.escape {
                f = f.with_escape(e);
            }
            if dialect.allow_comments {
                f = f.with_comment(b'#');
            }
            f.infer_schema(std::fs::File::open(first).map_err(io)?, Some(1000))
                .map_err(inference)?
                .0
        }
        FileFormatOptions::Json { .. } => {
            let reader = std::io::BufReader::new(std::fs::File::open(first).map_err(io)?);
            let schema = arrow::json::reader::infer_json_schema(reader, Some(1000))
                .map_err(inference)?
                .0;
            let mut first_line = String::new();
            let mut reader = std::io::BufReader::new(std::fs::File::open(first).map_err(io)?);
            while first_line.trim().is_empty()
                && std::io::BufRead::read_line(&mut reader, &mut first_line).map_err(io)? > 0
            {
            }
            in_order_of_appearance(schema, &first_line)
        }
        FileFormatOptions::Parquet { .. } => {
            let file = std::fs::File::open(first).map_err(io)?;
            let reader = parquet_schema(file).map_err(|e| ConnectorError::Inference {
                table: table.into(),
                message: format!("{}: {e}", first.display()),
            })?;
            return Ok(reader);
        }
    };
    Ok(Arc::new(schema))
}

/// arrow-json infers fields in name order; put them in the order the first
/// line writes them (fields missing from it keep their place at the end), as
/// a user reading the file expects.
fn in_order_of_appearance(
    schema: arrow::datatypes::Schema,
    line: &str,
) -> arrow::datatypes::Schema {
    let position = |name: &str| line.find(&format!("\"{name}\"")).unwrap_or(usize::MAX);
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    fields.sort_by_key(|f| position(f.name()));
    arrow::datatypes::Schema::new(fields)
}

fn parquet_schema(file: std::fs::File) -> Result<SchemaRef, String> {
    let builder =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| e.to_string())?;
    Ok(builder.schema().clone())
}

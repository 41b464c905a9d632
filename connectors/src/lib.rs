//! Sources and sinks for Tributary.
//!
//! A table declared with `CREATE TABLE t (...) WITH ('connector' = ..., ...)`
//! becomes a DataFusion [`TableProvider`] built here from its `WITH` options.
//! The option keys are Flink's (`connector`, `path`, `format`,
//! `csv.field-delimiter`, `json.ignore-parse-errors`, ...), so a Flink DDL
//! statement works unchanged wherever Tributary supports the connector.
//!
//! Connectors available now:
//!
//! | `connector` | bounded | reads | writes |
//! |---|---|---|---|
//! | `filesystem` | yes, unless `source.monitor-interval` is set (then the directory is watched for new files) | CSV, newline-delimited JSON, Parquet; a file or a directory | `INSERT INTO` adds files to the directory |
//! | `datagen` | with `number-of-rows` or a sequence column | made-up rows: random or sequence values per column, paced at `rows-per-second` | no |
//! | `nexmark` | with `events.num` | the Nexmark benchmark's `person`, `auction` or `bid` events (`nexmark.table`), repeatable | no |
//! | `print` | — | no | prints each row with its op (`+I[1, a]`), any changelog |
//! | `blackhole` | — | no | discards rows, any changelog |
//!
//! Every connector reports its [`Boundedness`], which the planner uses to pick
//! the runtime mode (`execution.runtime-mode = automatic`).
//!
//! [`TableProvider`]: datafusion::catalog::TableProvider

pub mod catalog_table;
pub mod datagen;
pub mod error;
pub mod filesystem;
pub mod nexmark;
pub mod options;
pub mod print;

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;

pub use catalog_table::{CatalogTable, ColumnSource};
pub use datagen::DataGenTable;
pub use error::ConnectorError;
pub use filesystem::FileSystemTable;
pub use filesystem::text_decode::sql_type_name;
pub use nexmark::NexmarkTable;
pub use options::TableOptions;

/// Whether a source ends. Bounded sources can run in BATCH mode; unbounded
/// ones only in STREAMING (Flink's `Boundedness`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundedness {
    /// The source holds a finite set of rows and then ends.
    Bounded,
    /// The source may produce rows forever (e.g. a monitored directory).
    Unbounded,
}

/// The connectors that `'connector' = '...'` accepts, in the order shown in
/// error messages.
pub const CONNECTORS: &[&str] = &["filesystem", "datagen", "nexmark", "print", "blackhole"];

/// Builds the table provider for a `CREATE TABLE ... WITH (...)` statement.
///
/// * `name` – the table's name, used in error messages.
/// * `schema` – the declared columns, or `None` when the column list was left
///   out and must be inferred from the data (Parquet footer, CSV header and
///   sample, JSON sample).
/// * `options` – the `WITH` options; `connector` picks the connector.
///
/// # Errors
/// [`ConnectorError::MissingOption`] without `connector`,
/// [`ConnectorError::UnknownConnector`] for a connector not in [`CONNECTORS`]
/// (the message lists the valid ones), and whatever the connector reports for
/// its own options (unknown or invalid keys, a path that does not exist when
/// the schema must be inferred).
pub async fn create_table(
    name: &str,
    schema: Option<SchemaRef>,
    options: TableOptions,
) -> Result<Arc<dyn TableProvider>, ConnectorError> {
    let connector = options
        .get("connector")
        .ok_or_else(|| ConnectorError::MissingOption {
            table: name.to_string(),
            key: "connector".into(),
            hint: format!(
                "add 'connector' = '<one of: {}>' to the WITH clause",
                CONNECTORS.join(", ")
            ),
        })?;
    match connector.to_ascii_lowercase().as_str() {
        "filesystem" => Ok(Arc::new(
            FileSystemTable::try_new(name, schema, options).await?,
        )),
        "datagen" => Ok(Arc::new(DataGenTable::try_new(name, schema, options)?)),
        "nexmark" => Ok(Arc::new(NexmarkTable::try_new(name, schema, options)?)),
        "print" => Ok(Arc::new(print::PrintTable::try_new(
            name, schema, &options,
        )?)),
        "blackhole" => Ok(Arc::new(print::BlackholeTable::try_new(
            name, schema, &options,
        )?)),
        other => Err(ConnectorError::UnknownConnector {
            table: name.to_string(),
            connector: other.to_string(),
            valid: CONNECTORS.iter().map(|s| s.to_string()).collect(),
        }),
    }
}

/// The connector's own table under a [`CatalogTable`] (computed columns or
/// a primary key declared on top); any other table as it is.
pub fn connector_table(table: &dyn TableProvider) -> &dyn TableProvider {
    match table.downcast_ref::<CatalogTable>() {
        Some(t) => t.inner().as_ref(),
        None => table,
    }
}

/// The boundedness of a table provider built by this crate; tables from
/// elsewhere (in-memory tables, views over them) are bounded.
pub fn boundedness_of(table: &dyn TableProvider) -> Boundedness {
    let table = connector_table(table);
    if let Some(t) = table.downcast_ref::<FileSystemTable>() {
        return t.boundedness();
    }
    if let Some(t) = table.downcast_ref::<DataGenTable>() {
        return t.boundedness();
    }
    if let Some(t) = table.downcast_ref::<NexmarkTable>() {
        return t.boundedness();
    }
    Boundedness::Bounded
}

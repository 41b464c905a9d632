//! The `print` and `blackhole` sinks (Flink's connectors of the same names).
//!
//! * `print` writes every row it receives to standard output (or standard
//!   error with `'standard-error' = 'true'`) as Flink does: `+I[1, Alice]`,
//!   prefixed by `'print-identifier'` and `> ` when set. In STREAMING it takes
//!   an updating changelog and prints each row's op (`-U`, `+U`, `-D`).
//! * `blackhole` swallows every row: for measuring a query without the cost
//!   of writing its result.
//!
//! Both are sinks only: reading from them is an error. Both accept any
//! changelog ([`ChangelogSink`]); `INSERT INTO` returns the rows written.

use std::fmt;
use std::io::Write;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};
use futures::StreamExt;

use crate::{ConnectorError, TableOptions};

/// A sink that takes changelog rows: batches whose first column is `op`
/// (`+I`, `-U`, `+U`, `-D`) followed by the table's columns.
pub trait ChangelogSink: Send + Sync {
    /// Writes one changelog batch.
    ///
    /// # Errors
    /// The sink could not write (e.g. standard output is closed).
    fn write_changelog(&self, batch: &RecordBatch) -> Result<()>;
}

/// The changelog sink of a table, if it takes updating changelogs.
pub fn changelog_sink(table: &Arc<dyn TableProvider>) -> Option<Arc<dyn ChangelogSink>> {
    if let Some(p) = table.downcast_ref::<PrintTable>() {
        return Some(Arc::new(p.clone()));
    }
    if table.downcast_ref::<BlackholeTable>().is_some() {
        return Some(Arc::new(Blackhole));
    }
    None
}

/// `'connector' = 'print'`.
#[derive(Debug, Clone)]
pub struct PrintTable {
    name: String,
    schema: SchemaRef,
    identifier: Option<String>,
    stderr: bool,
}

impl PrintTable {
    /// A print sink for `schema` with options `print-identifier`, `standard-error`.
    ///
    /// # Errors
    /// Missing columns, an unknown option, or an invalid `standard-error`.
    pub fn try_new(
        name: &str,
        schema: Option<SchemaRef>,
        options: &TableOptions,
    ) -> Result<Self, ConnectorError> {
        options.check_keys(
            name,
            "print",
            &["connector", "print-identifier", "standard-error"],
        )?;
        let schema = schema.ok_or_else(|| ConnectorError::Inference {
            table: name.into(),
            message: "a print sink has no data to infer columns from".into(),
        })?;
        Ok(Self {
            name: name.into(),
            schema,
            identifier: options.get("print-identifier").map(str::to_string),
            stderr: options.bool(name, "standard-error", false)?,
        })
    }

    fn print_rows(
        &self,
        ops: Option<&dyn arrow::array::Array>,
        data: &[arrow::array::ArrayRef],
        rows: usize,
    ) -> Result<()> {
        let options = FormatOptions::default().with_null("null");
        let formatters = data
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let op_formatter = ops
            .map(|o| ArrayFormatter::try_new(o, &options))
            .transpose()?;
        let mut text = String::new();
        for row in 0..rows {
            if let Some(id) = &self.identifier {
                text.push_str(id);
                text.push_str("> ");
            }
            match &op_formatter {
                Some(f) => text.push_str(&f.value(row).to_string()),
                None => text.push_str("+I"),
            }
            text.push('[');
            for (i, f) in formatters.iter().enumerate() {
                if i > 0 {
                    text.push_str(", ");
                }
                text.push_str(&f.value(row).to_string());
            }
            text.push_str("]\n");
        }
        let written = if self.stderr {
            std::io::stderr().lock().write_all(text.as_bytes())
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|()| out.flush())
        };
        written.map_err(|e| DataFusionError::Execution(format!("print sink '{}': {e}", self.name)))
    }
}

impl ChangelogSink for PrintTable {
    fn write_changelog(&self, batch: &RecordBatch) -> Result<()> {
        self.print_rows(
            Some(batch.column(0).as_ref()),
            &batch.columns()[1..],
            batch.num_rows(),
        )
    }
}

#[async_trait]
impl DataSink for PrintTable {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let mut rows = 0;
        while let Some(batch) = data.next().await {
            let batch = batch?;
            self.print_rows(None, batch.columns(), batch.num_rows())?;
            rows += batch.num_rows() as u64;
        }
        Ok(rows)
    }
}

impl DisplayAs for PrintTable {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PrintSink: table={}", self.name)
    }
}

/// `'connector' = 'blackhole'`.
#[derive(Debug, Clone)]
pub struct BlackholeTable {
    name: String,
    schema: SchemaRef,
}

impl BlackholeTable {
    /// A sink that discards rows.
    ///
    /// # Errors
    /// Missing columns, or any option but `connector`.
    pub fn try_new(
        name: &str,
        schema: Option<SchemaRef>,
        options: &TableOptions,
    ) -> Result<Self, ConnectorError> {
        options.check_keys(name, "blackhole", &["connector"])?;
        let schema = schema.ok_or_else(|| ConnectorError::Inference {
            table: name.into(),
            message: "a blackhole sink has no data to infer columns from".into(),
        })?;
        Ok(Self {
            name: name.into(),
            schema,
        })
    }
}

struct Blackhole;

impl ChangelogSink for Blackhole {
    fn write_changelog(&self, _batch: &RecordBatch) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl DataSink for BlackholeTable {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let mut rows = 0;
        while let Some(batch) = data.next().await {
            rows += batch?.num_rows() as u64;
        }
        Ok(rows)
    }
}

impl DisplayAs for BlackholeTable {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "BlackholeSink: table={}", self.name)
    }
}

macro_rules! sink_only_table {
    ($t:ty, $what:literal) => {
        #[async_trait]
        impl TableProvider for $t {
            fn schema(&self) -> SchemaRef {
                self.schema.clone()
            }

            fn table_type(&self) -> TableType {
                TableType::Base
            }

            async fn scan(
                &self,
                _state: &dyn Session,
                _projection: Option<&Vec<usize>>,
                _filters: &[Expr],
                _limit: Option<usize>,
            ) -> Result<Arc<dyn ExecutionPlan>> {
                Err(DataFusionError::Plan(format!(
                    "table '{}' is a {} sink: it can be written with INSERT INTO, not read",
                    self.name, $what
                )))
            }

            async fn insert_into(
                &self,
                _state: &dyn Session,
                input: Arc<dyn ExecutionPlan>,
                _insert_op: InsertOp,
            ) -> Result<Arc<dyn ExecutionPlan>> {
                Ok(Arc::new(DataSinkExec::new(
                    input,
                    Arc::new(self.clone()),
                    None,
                )))
            }
        }
    };
}

sink_only_table!(PrintTable, "print");
sink_only_table!(BlackholeTable, "blackhole");

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]))
    }

    #[test]
    fn options_are_checked() {
        let o = TableOptions::new([
            ("connector".to_string(), "print".to_string()),
            ("nope".to_string(), "x".to_string()),
        ]);
        assert!(
            PrintTable::try_new("p", Some(schema()), &o)
                .unwrap_err()
                .to_string()
                .contains("unsupported option 'nope'")
        );
        let o = TableOptions::new([("connector".to_string(), "blackhole".to_string())]);
        assert!(BlackholeTable::try_new("b", None, &o).is_err());
        assert!(BlackholeTable::try_new("b", Some(schema()), &o).is_ok());
    }
}

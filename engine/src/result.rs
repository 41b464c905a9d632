//! The result of a statement: a stream of Arrow record batches.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::execution::SendableRecordBatchStream;
use futures::{Stream, StreamExt};

use tributary_connectors::FileSystemTable;
use tributary_planner::{Error, ResolvedMode, Result};

/// The result of one statement: a `Stream` of `Result<RecordBatch>` with a
/// known [`schema`](QueryResult::schema).
///
/// * A query or `INSERT` yields its rows (`INSERT` yields one row with the
///   column `count`: rows written). [`mode`](QueryResult::mode) says which
///   runtime mode it ran in.
/// * A statement that only changes the session (`CREATE`, `DROP`, `SET 'k' =
///   'v'`, ...) yields no batches, an empty schema, and a
///   [`status`](QueryResult::status) message.
///
/// Dropping the stream cancels the query. After the stream has ended,
/// [`notices`](QueryResult::notices) tells what the user should know about
/// the run (e.g. malformed rows skipped).
pub struct QueryResult {
    schema: SchemaRef,
    stream: Option<SendableRecordBatchStream>,
    status: Option<String>,
    mode: Option<ResolvedMode>,
    watched: Vec<(Arc<dyn TableProvider>, u64)>,
    notices: Vec<String>,
    finished: bool,
    insert: bool,
    metrics: Option<Arc<crate::streaming::StreamMetrics>>,
    batch_run: Option<Arc<crate::batch::run_metrics::BatchRun>>,
}

impl QueryResult {
    /// A result that streams rows.
    pub(crate) fn rows(stream: SendableRecordBatchStream, mode: Option<ResolvedMode>) -> Self {
        Self {
            schema: stream.schema(),
            stream: Some(stream),
            status: None,
            mode,
            watched: vec![],
            notices: vec![],
            finished: false,
            insert: false,
            metrics: None,
            batch_run: None,
        }
    }

    /// A result with fixed, already computed batches.
    pub(crate) fn batches(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        let stream = futures::stream::iter(batches.into_iter().map(Ok));
        let stream =
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, stream);
        Self::rows(Box::pin(stream), None)
    }

    /// A result with only a status message.
    pub(crate) fn status(message: impl Into<String>) -> Self {
        Self {
            schema: Arc::new(Schema::empty()),
            stream: None,
            status: Some(message.into()),
            mode: None,
            watched: vec![],
            notices: vec![],
            finished: true,
            insert: false,
            metrics: None,
            batch_run: None,
        }
    }

    /// Watches the skipped-row counters of the tables a query scans, to
    /// report the rows it skipped.
    pub(crate) fn watch(mut self, tables: Vec<Arc<dyn TableProvider>>) -> Self {
        self.watched = tables
            .into_iter()
            .filter_map(|t| {
                let before = tributary_connectors::connector_table(t.as_ref())
                    .downcast_ref::<FileSystemTable>()?
                    .skipped_rows();
                Some((t, before))
            })
            .collect();
        self
    }

    /// Attaches the counters of a streaming run.
    pub(crate) fn with_metrics(
        mut self,
        metrics: Option<Arc<crate::streaming::StreamMetrics>>,
    ) -> Self {
        self.metrics = metrics;
        self
    }

    /// Attaches the counters of a BATCH run with materialized exchanges.
    pub(crate) fn with_batch_run(
        mut self,
        run: Option<Arc<crate::batch::run_metrics::BatchRun>>,
    ) -> Self {
        self.batch_run = run;
        self
    }

    /// The stages of a BATCH query (blocking shuffle mode) as they run:
    /// stages done of total, rows output so far. `None` for other results.
    pub fn batch_progress(&self) -> Option<crate::batch::run_metrics::BatchProgress> {
        self.batch_run.as_ref().map(|r| r.progress())
    }

    /// The per-stage counters of a BATCH query (blocking shuffle mode):
    /// tasks, task runs, retries, rows, bytes materialized, time.
    pub fn batch_run(&self) -> Option<&Arc<crate::batch::run_metrics::BatchRun>> {
        self.batch_run.as_ref()
    }

    /// Rows that arrived behind the watermark and were dropped, per operator:
    /// `(operator, rows)`; only operators that dropped any. STREAMING only;
    /// counts so far while the stream runs, final once it has ended.
    pub fn late_rows(&self) -> Vec<(String, u64)> {
        self.metrics
            .as_ref()
            .map(|m| m.late_rows())
            .unwrap_or_default()
    }

    /// Marks the result of an `INSERT` (one row, column `count`).
    pub(crate) fn of_insert(mut self) -> Self {
        self.insert = true;
        self
    }

    /// Whether this is the result of an `INSERT`: one row with the column
    /// `count` (UInt64), the rows written.
    pub fn is_insert(&self) -> bool {
        self.insert
    }

    /// The schema of the batches.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The status message of a statement that returns no rows, such as
    /// `Table 't' created.`; `None` for queries.
    pub fn status_message(&self) -> Option<&str> {
        self.status.as_deref()
    }

    /// The runtime mode the statement ran in, for queries and `INSERT`.
    pub fn mode(&self) -> Option<&ResolvedMode> {
        self.mode.as_ref()
    }

    /// What the user should know about the run, available once the stream
    /// has ended: one sentence each, e.g. `3 malformed rows skipped in table
    /// 'bids' ('csv.ignore-parse-errors' = 'true')`.
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    /// Reads the whole stream into memory.
    ///
    /// # Errors
    /// The first error of the query.
    pub async fn collect(mut self) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        while let Some(batch) = self.next().await {
            out.push(batch?);
        }
        Ok(out)
    }

    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let late = self.late_rows();
        for (operator, rows) in &late {
            let why = if operator.starts_with("temporal join") {
                "the rows up to it had been joined, and the versions they met freed"
            } else {
                "their window or frame had been emitted"
            };
            self.notices.push(format!(
                "{rows} late row{} dropped by the {operator}: they arrived after the watermark had passed them ({why})",
                if *rows == 1 { "" } else { "s" }
            ));
        }
        if let Some(metrics) = &self.metrics
            && let Some(query) = metrics.late_rows_query()
            && !late.is_empty()
        {
            let total: u64 = late.iter().map(|(_, n)| n).sum();
            let kept = metrics.late_rows_kept();
            self.notices.push(format!(
                "read them with: SELECT * FROM system.late_rows WHERE query = {query}{}",
                if kept < total {
                    format!(" (the first {kept} are kept)")
                } else {
                    String::new()
                }
            ));
        }
        for (table, before) in &self.watched {
            if let Some(t) = tributary_connectors::connector_table(table.as_ref())
                .downcast_ref::<FileSystemTable>()
            {
                let skipped = t.skipped_rows().saturating_sub(*before);
                if skipped > 0 {
                    self.notices.push(format!(
                        "{skipped} malformed row{} skipped in table '{}' ('{}' = 'true')",
                        if skipped == 1 { "" } else { "s" },
                        t.name(),
                        t.ignore_parse_errors_key().unwrap_or("ignore-parse-errors"),
                    ));
                }
            }
        }
    }
}

impl Stream for QueryResult {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(stream) = self.stream.as_mut() else {
            return Poll::Ready(None);
        };
        match stream.poll_next_unpin(cx) {
            Poll::Ready(None) => {
                self.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(item)) => Poll::Ready(Some(item.map_err(Error::from))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl std::fmt::Debug for QueryResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryResult")
            .field("schema", &self.schema)
            .field("status", &self.status)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

//! Late rows: rows that reach a window operator after the watermark has
//! closed their window. They cannot change a result already emitted, so
//! they are dropped from it — but never silently: each operator counts
//! them (reported when the query ends) and the session keeps them, readable
//! as rows of the system table `system.late_rows`.
//!
//! Flink drops late rows from window aggregates and only counts them (the
//! `numLateRecordsDropped` metric); its DataStream API can route them to a
//! side output. A system table is the SQL-side equivalent: no extra DDL, and
//! the rows can be queried like any table.
//!
//! Shape of `system.late_rows` (one row per late row and window):
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `query` | BIGINT | the STREAMING query of the session that dropped it (1, 2, ...) |
//! | `operator` | STRING | the operator that dropped it, as in the late-row notice |
//! | `watermark` | TIMESTAMP(3) | that operator's watermark when the row arrived |
//! | `row` | STRING | the row as the operator received it, a JSON object (window TVF columns included) |
//!
//! At most [`KEPT_PER_QUERY`] rows are kept per query (the counts stay
//! exact); the notice says when more were dropped than kept.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// The system table's name, schema-qualified.
pub const LATE_ROWS_TABLE: &str = "system.late_rows";

/// The most late rows kept per query (each is counted either way).
pub const KEPT_PER_QUERY: u64 = 10_000;

/// The late rows of a session's STREAMING queries. It lives in the
/// session's config (an extension), so every query of the session finds it.
#[derive(Debug, Default)]
pub struct LateRowLog {
    batches: Mutex<Vec<RecordBatch>>,
    queries: AtomicU64,
}

impl LateRowLog {
    /// The schema of `system.late_rows` (see the module docs).
    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("query", DataType::Int64, false),
            Field::new("operator", DataType::Utf8, false),
            Field::new(
                "watermark",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
            Field::new("row", DataType::Utf8, false),
        ]))
    }

    /// Numbers a new STREAMING query: 1, 2, ...
    pub(crate) fn begin_query(&self) -> u64 {
        self.queries.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Every late row kept so far.
    pub fn rows(&self) -> Vec<RecordBatch> {
        // A panic elsewhere while holding the lock leaves the log as it was:
        // still readable.
        self.batches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn append(&self, batch: RecordBatch) {
        self.batches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(batch);
    }
}

/// One operator's late rows: counts them and keeps them in the session's
/// log (up to the query's share).
#[derive(Debug, Clone)]
pub(crate) struct LateRows {
    operator: Arc<str>,
    count: Arc<AtomicU64>,
    /// Rows kept by every operator of this query.
    kept: Arc<AtomicU64>,
    query: u64,
    log: Option<Arc<LateRowLog>>,
}

impl LateRows {
    pub(crate) fn new(
        operator: Arc<str>,
        count: Arc<AtomicU64>,
        kept: Arc<AtomicU64>,
        query: u64,
        log: Option<Arc<LateRowLog>>,
    ) -> Self {
        Self {
            operator,
            count,
            kept,
            query,
            log,
        }
    }

    /// A recorder that only counts (no log), and its counter (tests).
    #[cfg(test)]
    pub(crate) fn counting() -> (Self, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        let late = Self::new(
            "test".into(),
            count.clone(),
            Arc::new(AtomicU64::new(0)),
            1,
            None,
        );
        (late, count)
    }

    /// Records rows `indices` of `input` as late at `watermark` (ms).
    ///
    /// # Errors
    /// Encoding the rows as JSON failed.
    pub(crate) fn record(
        &self,
        input: &RecordBatch,
        indices: &[u32],
        watermark: i64,
    ) -> Result<()> {
        if indices.is_empty() {
            return Ok(());
        }
        self.count
            .fetch_add(indices.len() as u64, Ordering::Relaxed);
        let Some(log) = &self.log else {
            return Ok(());
        };
        let before = self.kept.fetch_add(indices.len() as u64, Ordering::Relaxed);
        let room = KEPT_PER_QUERY.saturating_sub(before) as usize;
        let indices = &indices[..indices.len().min(room)];
        if indices.is_empty() {
            return Ok(());
        }
        let rows = take_record_batch(input, &UInt32Array::from(indices.to_vec()))?;
        let json = json_lines(&rows)?;
        let n = json.len();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![self.query as i64; n])),
            Arc::new(StringArray::from(vec![self.operator.as_ref(); n])),
            Arc::new(TimestampMillisecondArray::from(vec![
                (watermark != i64::MIN)
                    .then_some(
                        watermark
                    );
                n
            ])),
            Arc::new(StringArray::from(json)),
        ];
        log.append(RecordBatch::try_new(LateRowLog::schema(), columns)?);
        Ok(())
    }
}

/// Each row of `batch` as a JSON object (NULLs written as `null`).
fn json_lines(batch: &RecordBatch) -> Result<Vec<String>> {
    let mut buffer = Vec::new();
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::LineDelimited>(&mut buffer);
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    let text = String::from_utf8(buffer)
        .map_err(|e| DataFusionError::Execution(format!("late row is not UTF-8: {e}")))?;
    Ok(text.lines().map(str::to_string).collect())
}

/// `system.late_rows`: a bounded table over the session's log, read when
/// scanned.
#[derive(Debug)]
pub struct LateRowsTable {
    log: Arc<LateRowLog>,
}

impl LateRowsTable {
    /// The table over `log`.
    pub fn new(log: Arc<LateRowLog>) -> Self {
        Self { log }
    }
}

#[async_trait]
impl TableProvider for LateRowsTable {
    fn schema(&self) -> SchemaRef {
        LateRowLog::schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = self.log.rows();
        Ok(MemorySourceConfig::try_new_exec(
            &[rows],
            LateRowLog::schema(),
            projection.cloned(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use arrow::array::Int32Array;

    #[test]
    fn late_rows_are_counted_and_kept_as_json() {
        let log = Arc::new(LateRowLog::default());
        let query = log.begin_query();
        let count = Arc::new(AtomicU64::new(0));
        let late = LateRows::new(
            "window aggregate".into(),
            count.clone(),
            Arc::new(AtomicU64::new(0)),
            query,
            Some(log.clone()),
        );
        let input = RecordBatch::try_from_iter(vec![
            ("id", Arc::new(Int32Array::from(vec![1, 2, 3])) as ArrayRef),
            (
                "name",
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])) as ArrayRef,
            ),
        ])
        .unwrap();
        late.record(&input, &[0, 1], 5_000).unwrap();
        late.record(&input, &[], 6_000).unwrap();
        assert_eq!(count.load(Ordering::Relaxed), 2);
        let rows = log.rows();
        let text = arrow::util::pretty::pretty_format_batches(&rows)
            .unwrap()
            .to_string();
        assert!(text.contains(r#"{"id":1,"name":"a"}"#), "{text}");
        assert!(text.contains(r#"{"id":2,"name":null}"#), "{text}");
        assert!(text.contains("1970-01-01T00:00:05"), "{text}");
        assert_eq!(rows[0].column(0).len(), 2);
    }

    #[test]
    fn only_so_many_rows_are_kept_per_query_but_all_are_counted() {
        let log = Arc::new(LateRowLog::default());
        let count = Arc::new(AtomicU64::new(0));
        let late = LateRows::new(
            "w".into(),
            count.clone(),
            Arc::new(AtomicU64::new(KEPT_PER_QUERY - 1)),
            1,
            Some(log.clone()),
        );
        let input = RecordBatch::try_from_iter(vec![(
            "id",
            Arc::new(Int32Array::from(vec![1, 2, 3])) as ArrayRef,
        )])
        .unwrap();
        late.record(&input, &[0, 1, 2], 0).unwrap();
        assert_eq!(count.load(Ordering::Relaxed), 3);
        assert_eq!(log.rows().iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    }
}

//! The scan of a CSV or JSON table: files spread over partitions, each
//! partition decoding its files one after another on a blocking thread.
//!
//! Built on DataFusion's `StreamingTableExec`, which applies the limit; the
//! projection is decoded, not applied after ([`text_decode`](super::text_decode)
//! builds only the projected columns).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};

use super::list_files;
use super::text_decode::{
    CsvDialect, ParseErrorPolicy, Projection, decode_csv_file, decode_json_file,
};

/// Which text format a partition decodes.
#[derive(Debug, Clone)]
pub enum TextFormat {
    Csv(CsvDialect),
    Json,
}

/// Plans a scan of every file under `path`, spread over at most
/// `partitions` partitions (largest files first, each to the lightest
/// partition).
#[allow(clippy::too_many_arguments)]
pub fn scan(
    path: &Path,
    schema: SchemaRef,
    format: TextFormat,
    policy: ParseErrorPolicy,
    skipped: Arc<AtomicU64>,
    partitions: usize,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let files = list_files(path).map_err(|e| DataFusionError::External(Box::new(e)))?;
    let projection = Projection::new(&schema, projection.map(Vec::as_slice))
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let projected = projection.schema.clone();
    let mut sized: Vec<(u64, PathBuf)> = files
        .into_iter()
        .map(|f| (std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0), f))
        .collect();
    sized.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let n = partitions.max(1).min(sized.len().max(1));
    let mut groups: Vec<(u64, Vec<PathBuf>)> = vec![(0, Vec::new()); n];
    for (size, file) in sized {
        if let Some(lightest) = groups.iter_mut().min_by_key(|g| g.0) {
            lightest.0 += size;
            lightest.1.push(file);
        }
    }
    let streams: Vec<Arc<dyn PartitionStream>> = groups
        .into_iter()
        .map(|(_, mut files)| {
            files.sort();
            Arc::new(TextFilePartition {
                schema: schema.clone(),
                projection: projection.clone(),
                files,
                format: format.clone(),
                policy,
                skipped: skipped.clone(),
            }) as Arc<dyn PartitionStream>
        })
        .collect();
    Ok(Arc::new(StreamingTableExec::try_new(
        projected,
        streams,
        None,
        vec![],
        false,
        limit,
    )?))
}

/// One partition of a text scan: a list of files read in order.
#[derive(Debug)]
struct TextFilePartition {
    /// The files' schema.
    schema: SchemaRef,
    /// The columns to decode, and the schema of this partition's batches.
    projection: Projection,
    files: Vec<PathBuf>,
    format: TextFormat,
    policy: ParseErrorPolicy,
    skipped: Arc<AtomicU64>,
}

impl PartitionStream for TextFilePartition {
    fn schema(&self) -> &SchemaRef {
        &self.projection.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut builder = RecordBatchReceiverStreamBuilder::new(self.projection.schema.clone(), 2);
        let tx = builder.tx();
        let (schema, projection, files, format, policy, skipped) = (
            self.schema.clone(),
            self.projection.clone(),
            self.files.clone(),
            self.format.clone(),
            self.policy,
            self.skipped.clone(),
        );
        builder.spawn_blocking(move || {
            let mut sink = |batch| tx.blocking_send(Ok(batch)).is_ok();
            for file in &files {
                let n = match &format {
                    TextFormat::Csv(dialect) => {
                        decode_csv_file(file, dialect, &schema, &projection, policy, &mut sink)
                    }
                    TextFormat::Json => decode_json_file(file, &projection, policy, &mut sink),
                }?;
                skipped.fetch_add(n, Ordering::Relaxed);
            }
            Ok(())
        });
        builder.build()
    }
}

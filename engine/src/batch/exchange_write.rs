//! `ExchangeWriteExec`: the root of a producing BATCH stage. Task `t` runs
//! partition `t` of its input and writes it to exchange files, one per
//! output bucket: hash- or round-robin-partitioned into buckets for a
//! repartition (DataFusion's `BatchPartitioner`, so both sides of a join
//! hash alike), or as one file for a coalesce or a sort-preserving merge.
//!
//! The files are Arrow IPC streams, uncompressed by default or compressed
//! with LZ4 frames when `taskmanager.network.blocking-shuffle.compression.enabled`
//! is set (the codec DataFusion's own dependency graph already enables in
//! arrow-ipc): exchange files are local and are read back while they are
//! still in the page cache, where compressing costs CPU and saves nothing
//! (LZ4 was 18 % of the CPU time of TPC-H q7/q9/q18/q21 at SF 1). Rows are
//! coalesced to the session's batch size before they are written — hash
//! buckets get slices of input batches, and a pass-through output may carry
//! the whole string buffers of a few selected rows (the coalescer copies
//! `Utf8View` strings out of sparse buffers). A task
//! writes into a directory of its own attempt and commits its files to the
//! [`Exchanges`] registry only once all are written (see
//! [`exchange_files`](super::exchange_files)); its output stream carries no
//! rows.

use std::fmt;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::compute::BatchCoalescer;
use arrow::datatypes::SchemaRef;
use arrow::ipc::CompressionType;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::repartition::BatchPartitioner;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use futures::StreamExt;

use super::exchange_files::{ExchangeFile, Exchanges, TaskOutput};

/// How a producing stage lays its output out in exchange files.
#[derive(Debug, Clone)]
pub enum ExchangeOutput {
    /// A repartition: every task splits its rows into the buckets of this
    /// partitioning (`Hash(exprs, n)` or `RoundRobinBatch(n)`).
    Partitioned(Partitioning),
    /// A coalesce or sort-preserving merge: every task writes one file, its
    /// own partition (ordered as the input is).
    PassThrough,
}

impl ExchangeOutput {
    /// Buckets (files) each task writes.
    pub fn buckets(&self) -> usize {
        match self {
            ExchangeOutput::Partitioned(p) => p.partition_count(),
            ExchangeOutput::PassThrough => 1,
        }
    }
}

impl fmt::Display for ExchangeOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeOutput::Partitioned(p) => write!(f, "{p}"),
            ExchangeOutput::PassThrough => f.write_str("PassThrough"),
        }
    }
}

/// Writes partition `t` of its input to the exchange files of task `t` of
/// stage `stage`. Output: no rows (schema: the input's); the files are
/// registered in [`Exchanges`].
///
/// # Errors
/// The input's errors, I/O errors writing the files (naming the file), and
/// a failure injected by a test ([`FailureInjector`](super::recovery::FailureInjector)).
#[derive(Debug)]
pub struct ExchangeWriteExec {
    input: Arc<dyn ExecutionPlan>,
    stage: usize,
    output: ExchangeOutput,
    compression: Option<CompressionType>,
    exchanges: Arc<Exchanges>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl ExchangeWriteExec {
    /// The writer of stage `stage` over `input`; `compression`: the IPC
    /// body compression of its files (`None`: uncompressed).
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        stage: usize,
        output: ExchangeOutput,
        compression: Option<CompressionType>,
        exchanges: Arc<Exchanges>,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            input.equivalence_properties().clone(),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            input.pipeline_behavior(),
            input.boundedness(),
        ));
        Self {
            input,
            stage,
            output,
            compression,
            exchanges,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The stage this writer ends.
    pub fn stage(&self) -> usize {
        self.stage
    }

    /// How the output is laid out.
    pub fn output(&self) -> &ExchangeOutput {
        &self.output
    }

    /// The stage's plan below the writer.
    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }
}

impl DisplayAs for ExchangeWriteExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let format = match self.compression {
            Some(CompressionType::LZ4_FRAME) => "arrow-ipc(lz4)",
            Some(CompressionType::ZSTD) => "arrow-ipc(zstd)",
            _ => "arrow-ipc",
        };
        write!(
            f,
            "ExchangeWriteExec: stage={}, output={}, format={format}",
            self.stage, self.output
        )
    }
}

impl ExecutionPlan for ExchangeWriteExec {
    fn name(&self) -> &str {
        "ExchangeWriteExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        match &self.output {
            ExchangeOutput::Partitioned(Partitioning::Hash(exprs, _)) => {
                for e in exprs {
                    if f(e)? == TreeNodeRecursion::Stop {
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            }
            _ => Ok(TreeNodeRecursion::Continue),
        }
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children
            .pop()
            .ok_or_else(|| DataFusionError::Internal("ExchangeWriteExec takes one input".into()))?;
        Ok(Arc::new(Self::new(
            input,
            self.stage,
            self.output.clone(),
            self.compression,
            self.exchanges.clone(),
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = self.input.schema();
        let tasks = self.input.output_partitioning().partition_count();
        let input = self.input.execute(partition, context.clone())?;
        let attempt = self.exchanges.attempt(self.stage, partition);
        let dir = self
            .exchanges
            .dir()?
            .join(format!("stage-{}", self.stage))
            .join(format!("task-{partition}-attempt-{attempt}"));
        let written = MetricBuilder::new(&self.metrics).counter("bytes_written", partition);
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let timer = MetricBuilder::new(&self.metrics).subset_time("repart_time", partition);
        let partitioner = match &self.output {
            ExchangeOutput::Partitioned(p) => Some(BatchPartitioner::try_new(
                p.clone(),
                timer,
                partition,
                tasks.max(1),
            )?),
            ExchangeOutput::PassThrough => None,
        };
        let task = TaskWrite {
            stage: self.stage,
            task: partition,
            attempt,
            dir,
            schema: schema.clone(),
            buckets: self.output.buckets(),
            batch_size: context.session_config().batch_size(),
            compression: self.compression,
            exchanges: self.exchanges.clone(),
        };
        let fut = async move {
            let output = task.run(input, partitioner).await?;
            let (r, b) = output
                .buckets
                .iter()
                .flatten()
                .fold((0, 0), |(r, b), f| (r + f.rows, b + f.bytes));
            rows.add(r as usize);
            written.add(b as usize);
            task.exchanges.commit(task.stage, task.task, output)
        };
        let stream = futures::stream::once(fut).filter_map(|r| {
            futures::future::ready(match r {
                Ok(()) => None,
                Err(e) => Some(Err(e)),
            })
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// One attempt of one task: the writers of its buckets.
struct TaskWrite {
    stage: usize,
    task: usize,
    attempt: usize,
    dir: PathBuf,
    schema: SchemaRef,
    buckets: usize,
    batch_size: usize,
    compression: Option<CompressionType>,
    exchanges: Arc<Exchanges>,
}

/// An open exchange file.
struct BucketFile {
    path: PathBuf,
    writer: StreamWriter<BufWriter<File>>,
    rows: u64,
}

impl TaskWrite {
    async fn run(
        &self,
        mut input: SendableRecordBatchStream,
        mut partitioner: Option<BatchPartitioner>,
    ) -> Result<TaskOutput> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io_error(e, &self.dir))?;
        let mut files: Vec<Option<BucketFile>> = (0..self.buckets).map(|_| None).collect();
        // Hash buckets get slices of input batches, a pass-through output
        // may get small or sparse batches: coalesce them to the batch size
        // before writing (fewer, larger IPC messages; string views compacted).
        let mut coalescers: Vec<Option<BatchCoalescer>> = (0..self.buckets).map(|_| None).collect();
        let failures = self.exchanges.failures();
        let mut batches = 0usize;
        while let Some(batch) = input.next().await {
            let batch = batch?;
            match partitioner.as_mut() {
                Some(p) => {
                    for piece in p.partition_iter(batch)? {
                        let (bucket, piece) = piece?;
                        self.push(&mut files, &mut coalescers, bucket, piece)?;
                    }
                }
                None => self.push(&mut files, &mut coalescers, 0, batch)?,
            }
            batches += 1;
            if let Some(f) = &failures {
                f.check(self.stage, self.task, self.attempt, batches)?;
            }
        }
        for (bucket, coalescer) in coalescers.iter_mut().enumerate() {
            if let Some(c) = coalescer {
                c.finish_buffered_batch()?;
                while let Some(rest) = c.next_completed_batch() {
                    self.write(&mut files, bucket, &rest)?;
                }
            }
        }
        if let Some(f) = &failures {
            f.check(self.stage, self.task, self.attempt, usize::MAX)?;
        }
        let mut output = TaskOutput::default();
        for file in files {
            let Some(mut file) = file else {
                output.buckets.push(None);
                continue;
            };
            file.writer.finish()?;
            let inner = file.writer.into_inner()?;
            let inner = inner
                .into_inner()
                .map_err(|e| io_error(e.into_error(), &file.path))?;
            let bytes = inner.metadata().map_err(|e| io_error(e, &file.path))?.len();
            output.buckets.push(Some(ExchangeFile {
                path: file.path,
                rows: file.rows,
                bytes,
            }));
        }
        Ok(output)
    }

    /// Adds `batch` to `bucket`'s coalescer and writes the batches it
    /// completes.
    fn push(
        &self,
        files: &mut [Option<BucketFile>],
        coalescers: &mut [Option<BatchCoalescer>],
        bucket: usize,
        batch: RecordBatch,
    ) -> Result<()> {
        let coalescer = coalescers[bucket]
            .get_or_insert_with(|| BatchCoalescer::new(self.schema.clone(), self.batch_size));
        coalescer.push_batch(batch)?;
        while let Some(full) = coalescer.next_completed_batch() {
            self.write(files, bucket, &full)?;
        }
        Ok(())
    }

    fn write(
        &self,
        files: &mut [Option<BucketFile>],
        bucket: usize,
        batch: &RecordBatch,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let file = match &mut files[bucket] {
            Some(f) => f,
            slot => {
                let path = self.dir.join(format!("bucket-{bucket}.arrow"));
                let f = File::create(&path).map_err(|e| io_error(e, &path))?;
                let options = IpcWriteOptions::default().try_with_compression(self.compression)?;
                let writer = StreamWriter::try_new_with_options(
                    BufWriter::with_capacity(256 * 1024, f),
                    &self.schema,
                    options,
                )?;
                slot.insert(BucketFile {
                    path,
                    writer,
                    rows: 0,
                })
            }
        };
        file.writer.write(batch)?;
        file.rows += batch.num_rows() as u64;
        Ok(())
    }
}

fn io_error(e: std::io::Error, path: &std::path::Path) -> DataFusionError {
    DataFusionError::IoError(std::io::Error::new(
        e.kind(),
        format!("exchange file {}: {e}", path.display()),
    ))
}

//! `ExchangeReadExec`: a leaf of a consuming BATCH stage that reads what an
//! upstream stage materialized. It stands where the exchange operator stood
//! in DataFusion's plan and keeps that operator's properties (partitioning,
//! ordering), so the operators above it plan and run unchanged.
//!
//! Partition `k` reads, task by task, either buckets `[k·M/P, (k+1)·M/P)` of
//! every upstream task (a repartition written into `M` buckets, read by `P`
//! partitions: `P = M` unless the adaptive batch scheduler chose fewer), or
//! the one file of upstream task `k` (a coalesce or sort-preserving merge,
//! which still runs above this node). Files are read on a blocking thread.

use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::StreamExt;

use super::exchange_files::Exchanges;

/// Which files a partition of an [`ExchangeReadExec`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeInput {
    /// Upstream tasks wrote `buckets` buckets each (a repartition).
    Buckets {
        /// Buckets per upstream task.
        buckets: usize,
    },
    /// Upstream task `k` wrote one file, read by partition `k`.
    PerTask,
}

/// Reads the exchange files of stage `stage`. Output: the upstream stage's
/// schema, in the partitioning and ordering of the exchange it replaces.
///
/// # Errors
/// I/O and IPC decoding errors, naming the file.
#[derive(Debug)]
pub struct ExchangeReadExec {
    stage: usize,
    input: ExchangeInput,
    schema: SchemaRef,
    exchanges: Arc<Exchanges>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl ExchangeReadExec {
    /// A reader of `stage` with the properties of the exchange it replaces.
    pub fn new(
        stage: usize,
        input: ExchangeInput,
        schema: SchemaRef,
        exchanges: Arc<Exchanges>,
        properties: Arc<PlanProperties>,
    ) -> Self {
        Self {
            stage,
            input,
            schema,
            exchanges,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The upstream stage.
    pub fn stage(&self) -> usize {
        self.stage
    }

    /// Which files a partition reads.
    pub fn input(&self) -> ExchangeInput {
        self.input
    }

    /// The same reader with `partitions` partitions (adaptive parallelism:
    /// fewer or more readers of a repartition's buckets, or as many readers
    /// as the upstream stage ended up with tasks); `None` if unchanged.
    pub fn with_partitions(&self, partitions: usize) -> Option<Self> {
        if partitions == self.partitions() {
            return None;
        }
        let partitioning = match &self.properties.partitioning {
            Partitioning::Hash(exprs, _) => Partitioning::Hash(exprs.clone(), partitions),
            Partitioning::RoundRobinBatch(_) => Partitioning::RoundRobinBatch(partitions),
            _ => Partitioning::UnknownPartitioning(partitions),
        };
        let properties = Arc::new(
            self.properties
                .as_ref()
                .clone()
                .with_partitioning(partitioning),
        );
        Some(Self::new(
            self.stage,
            self.input,
            self.schema.clone(),
            self.exchanges.clone(),
            properties,
        ))
    }

    fn partitions(&self) -> usize {
        self.properties.partitioning.partition_count()
    }
}

impl DisplayAs for ExchangeReadExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match self.input {
            ExchangeInput::Buckets { buckets } => write!(
                f,
                "ExchangeReadExec: stage={}, partitioning={}, buckets={buckets}",
                self.stage, self.properties.partitioning
            ),
            ExchangeInput::PerTask => write!(
                f,
                "ExchangeReadExec: stage={}, partitions={} (one per upstream task)",
                self.stage,
                self.partitions()
            ),
        }
    }
}

impl ExecutionPlan for ExchangeReadExec {
    fn name(&self) -> &str {
        "ExchangeReadExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let partitions = self.partitions();
        if partition >= partitions {
            return Err(DataFusionError::Internal(format!(
                "ExchangeReadExec of stage {} has {partitions} partitions, asked for {partition}",
                self.stage
            )));
        }
        let files = match self.input {
            ExchangeInput::Buckets { buckets } => {
                let from = partition * buckets / partitions;
                let to = (partition + 1) * buckets / partitions;
                self.exchanges.files(self.stage, from..to, None)?
            }
            ExchangeInput::PerTask => self.exchanges.files(self.stage, 0..1, Some(partition))?,
        };
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let mut builder = RecordBatchReceiverStreamBuilder::new(self.schema.clone(), 2);
        let tx = builder.tx();
        let schema = self.schema.clone();
        builder.spawn_blocking(move || {
            for file in files {
                let named = |e: &dyn fmt::Display| {
                    DataFusionError::Execution(format!(
                        "reading exchange file {}: {e}",
                        file.path.display()
                    ))
                };
                let f = File::open(&file.path).map_err(|e| named(&e))?;
                let reader = StreamReader::try_new(BufReader::with_capacity(256 * 1024, f), None)
                    .map_err(|e| named(&e))?;
                for batch in reader {
                    let batch = batch.map_err(|e| named(&e))?;
                    let batch = match batch.schema() == schema {
                        true => batch,
                        false => batch.with_schema(schema.clone()).map_err(|e| named(&e))?,
                    };
                    if tx.blocking_send(Ok(batch)).is_err() {
                        return Ok(()); // the consumer is gone
                    }
                }
            }
            Ok(())
        });
        let stream = builder.build();
        let schema = self.schema.clone();
        let counted = stream.map(move |b| {
            let b = b?;
            baseline.record_output(b.num_rows());
            Ok(b)
        });
        Ok(Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, counted),
        ))
    }
}

//! Filter and projection over changelog rows: each row keeps its kind, so
//! they work on append-only and updating streams alike; expressions are
//! DataFusion `PhysicalExpr`s evaluated on whole batches.
//!
//! Consecutive stateless operators are *chained* (Flink's operator
//! chaining): their functions compose into one [`Transform`] that runs in
//! the task of the operator below — inside the source task when that is a
//! source, else in one task per input partition — so a batch crosses no
//! channel (and no thread wake-up) between them.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use tokio::task::JoinSet;

use super::{ChangeBatch, Message, Receiver, channel, send, send_data};
use crate::window_assign::WindowAssigner;

/// What a chain of stateless operators does to one batch.
pub(crate) type Transform = Arc<dyn Fn(ChangeBatch) -> Result<ChangeBatch> + Send + Sync>;

/// `first`, then `then` (either may be absent).
pub(super) fn compose(first: Option<Transform>, then: Transform) -> Transform {
    match first {
        None => then,
        Some(first) => Arc::new(move |change| then(first(change)?)),
    }
}

/// A filter: the rows where `predicate` is true.
pub(super) fn filter(predicate: Arc<dyn PhysicalExpr>) -> Transform {
    Arc::new(move |change: ChangeBatch| {
        let mask = predicate
            .evaluate(&change.data)?
            .into_array(change.num_rows())?;
        let mask = mask
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "filter predicate is {}, not boolean",
                    mask.data_type()
                ))
            })?;
        change.filter(mask)
    })
}

/// A projection onto `exprs`, typed as `schema`.
pub(super) fn project(exprs: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef) -> Transform {
    Arc::new(move |change: ChangeBatch| {
        let rows = change.num_rows();
        // DataFusion's physical expressions may type a result other than
        // the logical plan does (a DECIMAL's precision); the plan's type wins.
        let columns = exprs
            .iter()
            .zip(schema.fields())
            .map(|(e, field)| {
                let column = e.evaluate(&change.data)?.into_array(rows)?;
                if column.data_type() == field.data_type() {
                    Ok(column)
                } else {
                    Ok(arrow::compute::cast(&column, field.data_type())?)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let data = RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        Ok(ChangeBatch {
            ops: change.ops,
            data,
        })
    })
}

/// Window assignment (a window TVF), output typed as `schema`.
pub(super) fn window_assign(assigner: WindowAssigner, schema: SchemaRef) -> Transform {
    Arc::new(move |change: ChangeBatch| {
        let data = assigner.assign(&change.data, &schema)?;
        // Rows are only ever +I here (the planner checks the input is append-only).
        Ok(ChangeBatch::inserts(data))
    })
}

/// Runs `f` over every batch of every input, one task per input;
/// watermarks pass through unchanged.
pub(super) fn map_each(
    inputs: Vec<Receiver>,
    tasks: &mut JoinSet<()>,
    f: Transform,
) -> Vec<Receiver> {
    inputs
        .into_iter()
        .map(|mut input| {
            let (tx, rx) = channel();
            let f = f.clone();
            tasks.spawn(async move {
                while let Some(item) = input.recv().await {
                    let keep_going = match item {
                        Ok(Message::Data(change)) => {
                            let out = f(change);
                            let failed = out.is_err();
                            send_data(&tx, out).await && !failed
                        }
                        other => {
                            let failed = other.is_err();
                            send(&tx, other).await && !failed
                        }
                    };
                    if !keep_going {
                        return;
                    }
                }
            });
            rx
        })
        .collect()
}

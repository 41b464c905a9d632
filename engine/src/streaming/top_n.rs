//! Top-N over a changelog (Flink's `Rank` operator): `ROW_NUMBER() OVER
//! (PARTITION BY p ORDER BY o) AS rn ... WHERE rn <= N`, and with N = 1
//! deduplication (keep-first on `ORDER BY ts`, keep-last on `ORDER BY ts
//! DESC`).
//!
//! Each instance owns a share of the partitions (hash exchange on `p`). A
//! partition keeps its rows in an ordered map keyed by the `ORDER BY` values
//! (arrow-row encoded with their sort options, so byte order is sort order)
//! and then the whole row (ties are broken by the row's bytes, so both modes
//! see a deterministic order among equal keys only up to that choice). For
//! each batch, every partition it touches compares its first N rows before
//! and after: a rank whose row changed emits `-U` old / `+U` new, a rank
//! that fills emits `+I`, one that empties `-D`. The rank is the output's
//! last column (`BIGINT UNSIGNED`, as DataFusion's `row_number`).
//!
//! Over an append-only input a row past rank N can never come back, so only
//! N rows per partition are kept; over an updating input every row is kept
//! (a retraction can bring rank N+1 up). State is not expired.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int8Array, UInt64Array};
use arrow::compute::SortOptions;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use datafusion::common::HashMap as DfHashMap;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use tokio::task::JoinSet;

use tributary_planner::RowKind;

use super::aggregate_input::{decode_rows, key_column};
use super::{ChangeBatch, Message, Receiver, channel, send, send_data};

/// What an instance needs.
#[derive(Debug, Clone)]
pub(super) struct TopNSpec {
    pub partition_by: Vec<Arc<dyn PhysicalExpr>>,
    pub order_by: Vec<(Arc<dyn PhysicalExpr>, SortOptions)>,
    pub limit: usize,
    /// The input never retracts: keep only `limit` rows per partition.
    pub append_only: bool,
    /// The input's schema (the rows kept).
    pub input: SchemaRef,
    /// The output: the input's columns and the rank.
    pub schema: SchemaRef,
}

/// Starts one instance.
pub(super) fn start(
    mut input: Receiver,
    spec: TopNSpec,
    tasks: &mut JoinSet<()>,
) -> Result<Receiver> {
    let (tx, rx) = channel();
    let mut op = if super::deduplicate::applies(&spec) {
        Rank::Deduplicate(super::deduplicate::Deduplicate::try_new(spec)?)
    } else if super::append_only_top_n::applies(&spec) {
        Rank::AppendOnly(super::append_only_top_n::AppendOnlyTopN::try_new(spec)?)
    } else {
        Rank::General(TopN::try_new(spec)?)
    };
    tasks.spawn(async move {
        while let Some(item) = input.recv().await {
            let out = match item {
                Ok(Message::Data(change)) => op.process(&change),
                // A rank has no event time: watermarks stop here.
                Ok(Message::Watermark { .. } | Message::Idle { .. }) => continue,
                Err(e) => Err(e),
            };
            match out {
                Ok(None) => {}
                Ok(Some(out)) => {
                    if !send_data(&tx, Ok(out)).await {
                        return;
                    }
                }
                Err(e) => {
                    let _ = send(&tx, Err(e)).await;
                    return;
                }
            }
        }
    });
    Ok(rx)
}

/// The operator an instance runs: the general Top-N, or deduplication
/// ([`deduplicate`](super::deduplicate)) or the append-only Top-N
/// ([`append_only_top_n`](super::append_only_top_n)) where they apply.
enum Rank {
    General(TopN),
    Deduplicate(super::deduplicate::Deduplicate),
    AppendOnly(super::append_only_top_n::AppendOnlyTopN),
}

impl Rank {
    fn process(&mut self, change: &ChangeBatch) -> Result<Option<ChangeBatch>> {
        match self {
            Rank::General(op) => op.process(change),
            Rank::Deduplicate(op) => op.process(change),
            Rank::AppendOnly(op) => op.process(change),
        }
    }
}

/// One partition's rows: (order key, row) → copies. A row's bytes are
/// shared (`Arc`): the ranks before and after a batch, and the changelog
/// rows, hold them without copying them (a partition's top N is read twice
/// per batch that touches it).
type Partition = BTreeMap<(Box<[u8]>, Arc<[u8]>), u64>;

pub(super) struct TopN {
    spec: TopNSpec,
    /// Encodes the PARTITION BY values (made from the first batch).
    partition_keys: Option<RowConverter>,
    /// Encodes the ORDER BY values with their sort options.
    order_keys: Option<RowConverter>,
    /// Encodes whole input rows.
    rows: RowConverter,
    partitions: DfHashMap<Box<[u8]>, Partition>,
}

impl TopN {
    pub(super) fn try_new(spec: TopNSpec) -> Result<Self> {
        let rows = whole_rows(&spec.input)?;
        Ok(Self {
            spec,
            partition_keys: None,
            order_keys: None,
            rows,
            partitions: DfHashMap::new(),
        })
    }

    /// The first `limit` rows of a partition, in rank order.
    fn top(&self, partition: Option<&Partition>) -> Vec<Arc<[u8]>> {
        let mut out = Vec::with_capacity(self.spec.limit);
        for ((_, row), copies) in partition.into_iter().flatten() {
            for _ in 0..*copies {
                if out.len() == self.spec.limit {
                    return out;
                }
                out.push(row.clone());
            }
        }
        out
    }

    pub(super) fn process(&mut self, change: &ChangeBatch) -> Result<Option<ChangeBatch>> {
        let n = change.num_rows();
        if n == 0 {
            return Ok(None);
        }
        let data = &change.data;
        let partition_columns = self
            .spec
            .partition_by
            .iter()
            .map(|e| e.evaluate(data)?.into_array(n).and_then(key_column))
            .collect::<Result<Vec<_>>>()?;
        let order_columns = self
            .spec
            .order_by
            .iter()
            .map(|(e, _)| e.evaluate(data)?.into_array(n))
            .collect::<Result<Vec<_>>>()?;
        if self.order_keys.is_none() {
            self.partition_keys = Some(RowConverter::new(
                partition_columns
                    .iter()
                    .map(|c| SortField::new(c.data_type().clone()))
                    .collect(),
            )?);
            self.order_keys = Some(RowConverter::new(
                order_columns
                    .iter()
                    .zip(&self.spec.order_by)
                    .map(|(c, (_, options))| {
                        SortField::new_with_options(c.data_type().clone(), *options)
                    })
                    .collect(),
            )?);
        }
        let partition_rows = match (&self.partition_keys, partition_columns.is_empty()) {
            (Some(conv), false) => Some(conv.convert_columns(&partition_columns)?),
            _ => None,
        };
        let order_rows = match &self.order_keys {
            Some(conv) => conv.convert_columns(&order_columns)?,
            None => {
                return Err(DataFusionError::Internal(
                    "Top-N: the order-key converter was not made".into(),
                ));
            }
        };
        // Rows per partition, in input order.
        let mut touched: Vec<(Box<[u8]>, Vec<usize>)> = Vec::new();
        let mut slot_of: DfHashMap<&[u8], usize> = DfHashMap::new();
        for i in 0..n {
            let key: &[u8] = match &partition_rows {
                Some(r) => r.row(i).data(),
                None => &[],
            };
            let slot = *slot_of.entry(key).or_insert_with(|| {
                touched.push((key.into(), Vec::new()));
                touched.len() - 1
            });
            touched[slot].1.push(i);
        }
        drop(slot_of);

        // Over an append-only input, a row can only enter its partition's
        // top N if its order key is at most the N-th smallest of the kept
        // rows' and the batch's (ties kept: whole rows break them); the
        // others are dropped before their whole row is encoded.
        if self.spec.append_only {
            let limit = self.spec.limit.max(1);
            let mut keys: Vec<&[u8]> = Vec::new();
            for (key, indices) in &mut touched {
                keys.clear();
                if let Some(partition) = self.partitions.get(key) {
                    for ((order, _), copies) in partition {
                        for _ in 0..*copies {
                            keys.push(order.as_ref());
                        }
                    }
                }
                keys.extend(indices.iter().map(|i| order_rows.row(*i).data()));
                if keys.len() <= limit {
                    continue;
                }
                let (_, threshold, _) = keys.select_nth_unstable(limit - 1);
                let threshold: &[u8] = threshold;
                indices.retain(|i| order_rows.row(*i).data() <= threshold);
            }
            touched.retain(|(_, indices)| !indices.is_empty());
        }
        // Whole rows are encoded only for the rows that remain.
        let mut kept: Vec<u32> = touched
            .iter()
            .flat_map(|(_, indices)| indices.iter().map(|i| *i as u32))
            .collect();
        kept.sort_unstable();
        let mut position = vec![0usize; if kept.len() == n { 0 } else { n }];
        let rows = if kept.len() == n {
            self.rows.convert_columns(data.columns())?
        } else {
            for (p, i) in kept.iter().enumerate() {
                position[*i as usize] = p;
            }
            let indices = arrow::array::UInt32Array::from(kept);
            let columns = data
                .columns()
                .iter()
                .map(|c| arrow::compute::take(c.as_ref(), &indices, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            self.rows.convert_columns(&columns)?
        };
        let row_at = |i: usize| -> usize { if position.is_empty() { i } else { position[i] } };

        let kinds: Vec<RowKind> = change.kinds().collect();
        let mut out_rows: Vec<Arc<[u8]>> = Vec::new();
        let mut out_ranks: Vec<u64> = Vec::new();
        let mut out_kinds: Vec<RowKind> = Vec::new();
        for (key, indices) in touched {
            let before = self.top(self.partitions.get(&key));
            let partition = self.partitions.entry(key.clone()).or_default();
            for i in indices {
                let entry: (Box<[u8]>, Arc<[u8]>) = (
                    order_rows.row(i).data().into(),
                    rows.row(row_at(i)).data().into(),
                );
                if kinds[i].is_retraction() {
                    match partition.get_mut(&entry) {
                        Some(c) if *c > 1 => *c -= 1,
                        Some(_) => {
                            partition.remove(&entry);
                        }
                        None => {
                            return Err(DataFusionError::Execution(
                                "Top-N received a retraction of a row it does not hold".into(),
                            ));
                        }
                    }
                } else {
                    *partition.entry(entry).or_insert(0) += 1;
                }
            }
            if self.spec.append_only {
                // Rows past rank N never come back without retractions.
                let mut kept = 0u64;
                partition.retain(|_, copies| {
                    let room = (self.spec.limit as u64).saturating_sub(kept);
                    *copies = (*copies).min(room);
                    kept += *copies;
                    *copies > 0
                });
            }
            let empty = partition.is_empty();
            let after = self.top(self.partitions.get(&key));
            if empty {
                self.partitions.remove(&key);
            }
            for rank in 0..before.len().max(after.len()) {
                match (before.get(rank), after.get(rank)) {
                    (Some(old), Some(new)) if old == new => {}
                    (Some(old), Some(new)) => {
                        for (row, kind) in
                            [(old, RowKind::UpdateBefore), (new, RowKind::UpdateAfter)]
                        {
                            out_rows.push(row.clone());
                            out_ranks.push(rank as u64 + 1);
                            out_kinds.push(kind);
                        }
                    }
                    (Some(old), None) => {
                        out_rows.push(old.clone());
                        out_ranks.push(rank as u64 + 1);
                        out_kinds.push(RowKind::Delete);
                    }
                    (None, Some(new)) => {
                        out_rows.push(new.clone());
                        out_ranks.push(rank as u64 + 1);
                        out_kinds.push(RowKind::Insert);
                    }
                    (None, None) => {}
                }
            }
        }
        if out_kinds.is_empty() {
            return Ok(None);
        }
        let parser = self.rows.parser();
        let columns: Vec<ArrayRef> =
            decode_rows(&self.rows, out_rows.iter().map(|r| parser.parse(r)))?;
        rank_output(&self.spec.schema, columns, out_ranks, &out_kinds).map(Some)
    }
}

/// Encodes whole rows of `schema` (default sort options): the tie-break
/// among rows with equal order keys.
///
/// # Errors
/// A type arrow-row cannot encode.
pub(super) fn whole_rows(schema: &SchemaRef) -> Result<RowConverter> {
    Ok(RowConverter::new(
        schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    )?)
}

/// The output of a rank operator: the input's `columns`, then the rank, as
/// `schema` declares them (the rank may be declared other than
/// `BIGINT UNSIGNED`), with `kinds`.
///
/// # Errors
/// A column that cannot be cast to its declared type.
pub(super) fn rank_output(
    schema: &SchemaRef,
    mut columns: Vec<ArrayRef>,
    ranks: Vec<u64>,
    kinds: &[RowKind],
) -> Result<ChangeBatch> {
    columns.push(Arc::new(UInt64Array::from(ranks)));
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c)
            } else {
                Ok(arrow::compute::cast(&c, f.data_type())?)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let data = RecordBatch::try_new(schema.clone(), columns)?;
    let ops = Arc::new(Int8Array::from_iter_values(kinds.iter().map(|k| k.code())));
    Ok(ChangeBatch { ops, data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_expr::expressions::Column;

    fn op(limit: usize, append_only: bool) -> TopN {
        let input = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, false),
        ]));
        let mut fields = input.fields().to_vec();
        fields.push(Arc::new(Field::new("rn", DataType::UInt64, false)));
        TopN::try_new(TopNSpec {
            partition_by: vec![Arc::new(Column::new("k", 0))],
            order_by: vec![(
                Arc::new(Column::new("v", 1)),
                SortOptions {
                    descending: true,
                    nulls_first: true,
                },
            )],
            limit,
            append_only,
            input: input.clone(),
            schema: Arc::new(Schema::new(fields)),
        })
        .unwrap()
    }

    fn batch(rows: &[(&str, i64)], kind: RowKind) -> ChangeBatch {
        let data = RecordBatch::try_from_iter(vec![
            (
                "k",
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
            (
                "v",
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
        ])
        .unwrap();
        ChangeBatch {
            ops: Arc::new(Int8Array::from(vec![kind.code(); rows.len()])),
            data,
        }
    }

    /// Each output row as `op k v rn`.
    fn text(out: Option<ChangeBatch>) -> Vec<String> {
        let Some(out) = out else { return vec![] };
        let k = out
            .data
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let v = out
            .data
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let rn = out
            .data
            .column(2)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap();
        out.kinds()
            .enumerate()
            .map(|(i, kind)| {
                format!(
                    "{} {} {} {}",
                    kind.short_string(),
                    k.value(i),
                    v.value(i),
                    rn.value(i)
                )
            })
            .collect()
    }

    #[test]
    fn a_better_row_pushes_the_ranks_down() {
        let mut t = op(2, true);
        assert_eq!(
            text(
                t.process(&batch(&[("a", 10), ("a", 5), ("b", 1)], RowKind::Insert))
                    .unwrap()
            ),
            ["+I a 10 1", "+I a 5 2", "+I b 1 1"]
        );
        // 7 takes rank 2; 5 leaves the top 2
        assert_eq!(
            text(t.process(&batch(&[("a", 7)], RowKind::Insert)).unwrap()),
            ["-U a 5 2", "+U a 7 2"]
        );
        // below the top 2: nothing changes, and it is not kept
        assert!(text(t.process(&batch(&[("a", 1)], RowKind::Insert)).unwrap()).is_empty());
        // an append-only input keeps at most N rows per partition
        assert!(t.partitions.values().all(|p| p.values().sum::<u64>() <= 2));
    }

    #[test]
    fn append_only_rows_that_cannot_enter_are_dropped_before_encoding() {
        let mut t = op(1, true);
        assert_eq!(
            text(
                t.process(&batch(
                    &[("a", 3), ("a", 9), ("a", 9), ("b", 2), ("a", 1)],
                    RowKind::Insert
                ))
                .unwrap()
            ),
            ["+I a 9 1", "+I b 2 1"]
        );
        // A tie with the kept row and a worse row: nothing changes.
        assert!(
            text(
                t.process(&batch(&[("a", 9), ("a", 2), ("b", 1)], RowKind::Insert))
                    .unwrap()
            )
            .is_empty()
        );
        assert_eq!(
            text(
                t.process(&batch(&[("a", 4), ("a", 10), ("b", 2)], RowKind::Insert))
                    .unwrap()
            ),
            ["-U a 9 1", "+U a 10 1"]
        );
        assert_eq!(t.partitions.values().map(|p| p.len()).sum::<usize>(), 2);
    }

    #[test]
    fn a_retraction_brings_the_next_row_up() {
        let mut t = op(1, false);
        t.process(&batch(&[("a", 10), ("a", 5)], RowKind::Insert))
            .unwrap();
        assert_eq!(
            text(t.process(&batch(&[("a", 10)], RowKind::Delete)).unwrap()),
            ["-U a 10 1", "+U a 5 1"]
        );
        assert_eq!(
            text(t.process(&batch(&[("a", 5)], RowKind::Delete)).unwrap()),
            ["-D a 5 1"]
        );
        assert!(t.process(&batch(&[("a", 5)], RowKind::Delete)).is_err());
    }
}

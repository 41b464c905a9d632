//! Deduplication over an append-only input (Flink's `Deduplicate` operator,
//! keep-first / keep-last on event time): the Top-N of `ROW_NUMBER() OVER
//! (PARTITION BY p ORDER BY t [DESC]) AS rn ... WHERE rn = 1` when the input
//! never retracts and `t` is one integer or timestamp column — Nexmark q18.
//!
//! Why not the general Top-N ([`top_n`](super::top_n)): that one keeps each
//! partition's rows arrow-row encoded in an ordered map, which costs a few
//! allocations per input row. Here, as in the rest of the columnar state:
//!
//! - a DataFusion `GroupValues` interns the PARTITION BY values (vectorized
//!   hashing, no allocation per key);
//! - each partition keeps its winning row's order value (`i64`) and where the
//!   row is: in one of the input batches kept whole, compacted (rows gathered
//!   with `interleave`) when dead rows outnumber live ones;
//! - a batch is scanned once to find each touched partition's best row, and
//!   the output is gathered with `interleave`: `-U` old / `+U` new for a
//!   partition whose winner changed, `+I` for a new partition.
//!
//! The answer is the general Top-N's, row for row: rows are ordered by the
//! order value with its sort options, and rows with equal order values by
//! their arrow-row encoding (both encoded only when such a tie occurs), and
//! a partition emits at most one change per batch.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{SortOptions, interleave, take};
use arrow::datatypes::{DataType, Int64Type};
use arrow::row::RowConverter;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

use tributary_planner::RowKind;

use super::ChangeBatch;
use super::aggregate_input::key_column;
use super::top_n::{TopNSpec, rank_output};

/// No row yet / no candidate in this batch.
const NONE: u32 = u32::MAX;

/// Whether `spec` is a deduplication this operator runs: append-only
/// input, `rn = 1`, a PARTITION BY, one ORDER BY column of an integer or
/// timestamp type (`input` is the type the order expression returns).
pub(super) fn applies(spec: &TopNSpec) -> bool {
    let order_type = spec
        .order_by
        .first()
        .and_then(|(e, _)| e.data_type(&spec.input).ok());
    spec.append_only
        && spec.limit == 1
        && !spec.partition_by.is_empty()
        && spec.order_by.len() == 1
        && matches!(
            order_type,
            Some(DataType::Int64 | DataType::Int32 | DataType::Timestamp(_, _))
        )
}

/// One instance's state.
pub(super) struct Deduplicate {
    spec: TopNSpec,
    options: SortOptions,
    /// PARTITION BY values → partition index (made from the first batch).
    groups: Option<Box<dyn GroupValues>>,
    /// Per partition: its winner's order value (`None`: NULL).
    best_order: Vec<Option<i64>>,
    /// Per partition: its winner's batch in `kept` and row (`NONE`: none).
    best_at: Vec<(u32, u32)>,
    /// Input batches holding winners (and rows that lost since).
    kept: Vec<RecordBatch>,
    /// Rows in `kept`, live or not.
    kept_rows: usize,
    /// Encodes whole rows, only to break ties.
    rows: RowConverter,
    /// Scratch: each row's partition.
    group_of_row: Vec<usize>,
    /// Scratch: per partition, the best row of the current batch (`NONE`).
    batch_best: Vec<u32>,
}

impl Deduplicate {
    /// # Errors
    /// The spec has no ORDER BY (see [`applies`]).
    pub(super) fn try_new(spec: TopNSpec) -> Result<Self> {
        let options = spec
            .order_by
            .first()
            .map(|(_, o)| *o)
            .ok_or_else(|| DataFusionError::Internal("deduplicate: no ORDER BY".into()))?;
        let rows = super::top_n::whole_rows(&spec.input)?;
        Ok(Self {
            spec,
            options,
            groups: None,
            best_order: vec![],
            best_at: vec![],
            kept: vec![],
            kept_rows: 0,
            rows,
            group_of_row: vec![],
            batch_best: vec![],
        })
    }

    /// `a` against `b` in the ORDER BY's order (NULLs placed by its options).
    fn compare(&self, a: Option<i64>, b: Option<i64>) -> Ordering {
        match (a, b) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) if self.options.nulls_first => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) if self.options.nulls_first => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) if self.options.descending => y.cmp(&x),
            (Some(x), Some(y)) => x.cmp(&y),
        }
    }

    /// Whether row `a` of `batch_a` comes before row `b` of `batch_b` by
    /// their whole-row encodings (see [`compare_rows`]).
    fn row_before(
        &self,
        batch_a: &RecordBatch,
        a: usize,
        batch_b: &RecordBatch,
        b: usize,
    ) -> Result<bool> {
        Ok(compare_rows(&self.rows, batch_a, a, batch_b, b)? == Ordering::Less)
    }

    /// Processes one batch of `+I` rows; returns the changes.
    ///
    /// # Errors
    /// A retraction in the input (the planner chose this operator for an
    /// append-only input), or an expression that fails.
    pub(super) fn process(&mut self, change: &ChangeBatch) -> Result<Option<ChangeBatch>> {
        let n = change.num_rows();
        if n == 0 {
            return Ok(None);
        }
        let partitions = intern_partitions(
            "deduplicate",
            &self.spec,
            change,
            &mut self.groups,
            &mut self.group_of_row,
        )?;
        let data = &change.data;
        let order = match self.spec.order_by.first() {
            Some((e, _)) => e.evaluate(data)?.into_array(n)?,
            None => return Err(DataFusionError::Internal("deduplicate: no ORDER BY".into())),
        };
        let order = arrow::compute::cast(&order, &DataType::Int64)?;
        let order = order.as_primitive::<Int64Type>();
        self.best_order.resize(partitions, None);
        self.best_at.resize(partitions, (NONE, NONE));
        self.batch_best.resize(partitions, NONE);

        // Each touched partition's best row of this batch, in first-touch
        // order, beating its kept winner or not yet.
        let mut touched: Vec<usize> = Vec::new();
        for i in 0..n {
            let g = self.group_of_row[i];
            let value = order.is_valid(i).then(|| order.value(i));
            let current = self.batch_best[g];
            if current == NONE {
                touched.push(g);
                self.batch_best[g] = i as u32;
                continue;
            }
            let c = current as usize;
            let best = order.is_valid(c).then(|| order.value(c));
            let better = match self.compare(value, best) {
                Ordering::Less => true,
                Ordering::Greater => false,
                Ordering::Equal => self.row_before(data, i, data, c)?,
            };
            if better {
                self.batch_best[g] = i as u32;
            }
        }

        // Against the kept winners; gather the changes.
        let this_batch = self.kept.len() as u32;
        let mut sources: Vec<(usize, usize)> = Vec::new();
        let mut kinds: Vec<RowKind> = Vec::new();
        for &g in &touched {
            let i = self.batch_best[g] as usize;
            self.batch_best[g] = NONE;
            let value = order.is_valid(i).then(|| order.value(i));
            let (kb, kr) = self.best_at[g];
            if kb == NONE {
                sources.push((this_batch as usize, i));
                kinds.push(RowKind::Insert);
            } else {
                let better = match self.compare(value, self.best_order[g]) {
                    Ordering::Less => true,
                    Ordering::Greater => false,
                    Ordering::Equal => {
                        self.row_before(data, i, &self.kept[kb as usize], kr as usize)?
                    }
                };
                if !better {
                    continue;
                }
                sources.push((kb as usize, kr as usize));
                kinds.push(RowKind::UpdateBefore);
                sources.push((this_batch as usize, i));
                kinds.push(RowKind::UpdateAfter);
            }
            self.best_order[g] = value;
            self.best_at[g] = (this_batch, i as u32);
        }
        if kinds.is_empty() {
            return Ok(None);
        }
        self.kept.push(data.clone());
        self.kept_rows += n;
        let out = self.gather(&sources, &kinds)?;
        if self.kept_rows > 2 * partitions + 65_536 {
            self.compact()?;
        }
        Ok(Some(out))
    }

    /// The output rows at `sources` ((batch in `kept`, row)), rank 1.
    fn gather(&self, sources: &[(usize, usize)], kinds: &[RowKind]) -> Result<ChangeBatch> {
        let mut columns = Vec::with_capacity(self.spec.schema.fields().len());
        for c in 0..self.spec.input.fields().len() {
            let arrays: Vec<&dyn Array> = self.kept.iter().map(|b| b.column(c).as_ref()).collect();
            columns.push(interleave(&arrays, sources)?);
        }
        rank_output(&self.spec.schema, columns, vec![1; sources.len()], kinds)
    }

    /// Keeps only the winners, in one batch.
    fn compact(&mut self) -> Result<()> {
        let live: Vec<(usize, usize)> = self
            .best_at
            .iter()
            .filter(|(b, _)| *b != NONE)
            .map(|&(b, r)| (b as usize, r as usize))
            .collect();
        let mut columns = Vec::with_capacity(self.spec.input.fields().len());
        for c in 0..self.spec.input.fields().len() {
            let arrays: Vec<&dyn Array> = self.kept.iter().map(|b| b.column(c).as_ref()).collect();
            columns.push(interleave(&arrays, &live)?);
        }
        let batch = RecordBatch::try_new(self.spec.input.clone(), columns)?;
        // Copy out of the shared buffers of the batches being dropped.
        let batch = compact_buffers(&batch)?;
        let mut next = 0u32;
        for at in self.best_at.iter_mut().filter(|(b, _)| *b != NONE) {
            *at = (0, next);
            next += 1;
        }
        self.kept_rows = batch.num_rows();
        self.kept = vec![batch];
        Ok(())
    }
}

/// Interns the PARTITION BY values of an all-`+I` batch: each row's
/// partition into `group_of_row` (`groups` is made from the first batch);
/// returns how many partitions there are. `what` names the operator.
///
/// # Errors
/// A retraction in `change` (the operator was chosen for an append-only
/// input), or an expression that fails.
pub(super) fn intern_partitions(
    what: &str,
    spec: &TopNSpec,
    change: &ChangeBatch,
    groups: &mut Option<Box<dyn GroupValues>>,
    group_of_row: &mut Vec<usize>,
) -> Result<usize> {
    if !change.all_inserts() {
        return Err(DataFusionError::Internal(format!(
            "{what}: a retraction in an append-only input"
        )));
    }
    let n = change.num_rows();
    let keys = spec
        .partition_by
        .iter()
        .map(|e| e.evaluate(&change.data)?.into_array(n).and_then(key_column))
        .collect::<Result<Vec<_>>>()?;
    let groups = match groups {
        Some(groups) => groups,
        None => groups.insert(new_group_values(
            super::key_columns_schema(&keys),
            &GroupOrdering::None,
        )?),
    };
    groups.intern(&keys, group_of_row)?;
    Ok(groups.len())
}

/// Row `a` of `batch_a` against row `b` of `batch_b` as their whole-row
/// encodings by `rows` (the general Top-N's tie-break) order them: column
/// by column in arrow-row's order (ascending, NULLs first), values compared
/// in place; a column of a type not compared here falls back to encoding
/// both rows.
pub(super) fn compare_rows(
    rows: &RowConverter,
    batch_a: &RecordBatch,
    a: usize,
    batch_b: &RecordBatch,
    b: usize,
) -> Result<Ordering> {
    for (x, y) in batch_a.columns().iter().zip(batch_b.columns()) {
        match compare_values(x.as_ref(), a, y.as_ref(), b) {
            Some(Ordering::Equal) => continue,
            Some(order) => return Ok(order),
            None => {
                let one = |batch: &RecordBatch, i: usize| -> Vec<ArrayRef> {
                    batch.columns().iter().map(|c| c.slice(i, 1)).collect()
                };
                let ra = rows.convert_columns(&one(batch_a, a))?;
                let rb = rows.convert_columns(&one(batch_b, b))?;
                return Ok(ra.row(0).cmp(&rb.row(0)));
            }
        }
    }
    Ok(Ordering::Equal)
}

/// Value `i` of `a` against value `j` of `b` (same type) as arrow-row
/// orders them with default options: NULLs first, then ascending (floats by
/// total order, strings by bytes); `None` for a type not compared here.
fn compare_values(a: &dyn Array, i: usize, b: &dyn Array, j: usize) -> Option<Ordering> {
    match (a.is_valid(i), b.is_valid(j)) {
        (false, false) => return Some(Ordering::Equal),
        (false, true) => return Some(Ordering::Less),
        (true, false) => return Some(Ordering::Greater),
        (true, true) => {}
    }
    use arrow::datatypes::TimeUnit;
    use arrow::datatypes::{
        Date32Type, Float32Type, Float64Type, Int32Type, TimestampMicrosecondType,
        TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    };
    macro_rules! primitive {
        ($t:ty) => {
            Some(
                a.as_primitive::<$t>()
                    .value(i)
                    .cmp(&b.as_primitive::<$t>().value(j)),
            )
        };
    }
    match a.data_type() {
        DataType::Int64 => primitive!(Int64Type),
        DataType::Int32 => primitive!(Int32Type),
        DataType::Date32 => primitive!(Date32Type),
        DataType::Timestamp(TimeUnit::Second, _) => primitive!(TimestampSecondType),
        DataType::Timestamp(TimeUnit::Millisecond, _) => primitive!(TimestampMillisecondType),
        DataType::Timestamp(TimeUnit::Microsecond, _) => primitive!(TimestampMicrosecondType),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => primitive!(TimestampNanosecondType),
        DataType::Float64 => Some(
            a.as_primitive::<Float64Type>()
                .value(i)
                .total_cmp(&b.as_primitive::<Float64Type>().value(j)),
        ),
        DataType::Float32 => Some(
            a.as_primitive::<Float32Type>()
                .value(i)
                .total_cmp(&b.as_primitive::<Float32Type>().value(j)),
        ),
        DataType::Utf8View => Some(
            a.as_string_view()
                .value(i)
                .as_bytes()
                .cmp(b.as_string_view().value(j).as_bytes()),
        ),
        DataType::Utf8 => Some(
            a.as_string::<i32>()
                .value(i)
                .as_bytes()
                .cmp(b.as_string::<i32>().value(j).as_bytes()),
        ),
        DataType::Boolean => Some(a.as_boolean().value(i).cmp(&b.as_boolean().value(j))),
        _ => None,
    }
}

/// `batch` with its variable-length columns' buffers holding only their own
/// rows (an `interleave` of string views still points into the old buffers).
pub(super) fn compact_buffers(batch: &RecordBatch) -> Result<RecordBatch> {
    let all = UInt32Array::from_iter_values(0..batch.num_rows() as u32);
    let columns = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Utf8View => Ok(Arc::new(c.as_string_view().gc()) as ArrayRef),
            DataType::BinaryView => Ok(Arc::new(c.as_binary_view().gc()) as ArrayRef),
            _ => Ok(take(c.as_ref(), &all, None)?),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// The operator's schema check for tests and callers: the output is the
/// input's columns and the rank.
#[cfg(test)]
fn output_schema(input: &arrow::datatypes::SchemaRef) -> arrow::datatypes::SchemaRef {
    let mut fields = input.fields().to_vec();
    fields.push(Arc::new(arrow::datatypes::Field::new(
        "rn",
        DataType::UInt64,
        false,
    )));
    Arc::new(arrow::datatypes::Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changelog::fold;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::SchemaRef;
    use arrow::datatypes::{Field, Schema};
    use datafusion::physical_expr::expressions::Column;

    fn spec(descending: bool, nulls_first: bool) -> TopNSpec {
        let input: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("t", DataType::Int64, true),
            Field::new("s", DataType::Utf8View, true),
        ]));
        TopNSpec {
            partition_by: vec![Arc::new(Column::new("k", 0))],
            order_by: vec![(
                Arc::new(Column::new("t", 1)),
                SortOptions {
                    descending,
                    nulls_first,
                },
            )],
            limit: 1,
            append_only: true,
            schema: output_schema(&input),
            input,
        }
    }

    fn batch(rows: &[(Option<&str>, Option<i64>, &str)]) -> ChangeBatch {
        let data = RecordBatch::try_from_iter(vec![
            (
                "k",
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
            (
                "t",
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
            ),
            (
                "s",
                Arc::new(arrow::array::StringViewArray::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ),
        ])
        .unwrap();
        ChangeBatch::inserts(data)
    }

    /// Runs both operators over `batches`; their changelogs must be equal
    /// batch by batch (as multisets of (op, row)) and fold to the same table.
    fn same_as_top_n(s: TopNSpec, batches: &[ChangeBatch]) -> RecordBatch {
        let mut dedup = Deduplicate::try_new(s.clone()).unwrap();
        let mut general = super::super::top_n::TopN::try_new(s.clone()).unwrap();
        let mut all = vec![];
        for b in batches {
            let mine = dedup.process(b).unwrap();
            let theirs = general.process(b).unwrap();
            let show = |c: &Option<ChangeBatch>| -> Vec<String> {
                let Some(c) = c else { return vec![] };
                let text = arrow::util::pretty::pretty_format_batches(&[c.data.clone()])
                    .unwrap()
                    .to_string();
                let rows: Vec<&str> = text
                    .lines()
                    .skip(3)
                    .filter(|l| !l.starts_with('+'))
                    .collect();
                let mut out: Vec<String> = c
                    .kinds()
                    .zip(rows)
                    .map(|(k, r)| format!("{k:?} {r}"))
                    .collect();
                out.sort();
                out
            };
            assert_eq!(show(&mine), show(&theirs));
            all.extend(mine);
        }
        let schema = tributary_planner::changelog::changelog_schema(&s.schema);
        let batches: Vec<RecordBatch> = all
            .into_iter()
            .map(|c| super::super::with_op_column(&schema, c).unwrap())
            .collect();
        fold(&schema, &batches).unwrap()
    }

    #[test]
    fn keeps_the_latest_row_per_key_as_the_general_top_n_does() {
        let batches = [
            batch(&[
                (Some("a"), Some(1), "x"),
                (Some("b"), Some(5), "y"),
                (Some("a"), Some(3), "z"),
            ]),
            batch(&[(Some("a"), Some(2), "older"), (Some("b"), Some(9), "newer")]),
            // Ties on the order value: the row encoding decides.
            batch(&[
                (Some("a"), Some(3), "a-tie"),
                (Some("c"), None, "null t"),
                (None, Some(4), "null k"),
            ]),
            batch(&[(Some("c"), Some(1), "c1"), (Some("c"), Some(1), "c0")]),
        ];
        for (descending, nulls_first) in
            [(true, false), (true, true), (false, false), (false, true)]
        {
            let table = same_as_top_n(spec(descending, nulls_first), &batches);
            assert_eq!(table.num_rows(), 4, "{descending} {nulls_first}");
        }
    }

    #[test]
    fn compaction_keeps_the_winners() {
        let s = spec(true, false);
        let mut batches = vec![];
        for round in 0..40i64 {
            let rows: Vec<(Option<&str>, Option<i64>, &str)> = ["a", "b", "c", "d"]
                .iter()
                .cycle()
                .take(2000)
                .enumerate()
                .map(|(i, k)| {
                    (
                        Some(*k),
                        Some(round * 10 + (i as i64 % 7)),
                        "some longer string value",
                    )
                })
                .collect();
            batches.push(batch(&rows));
        }
        let table = same_as_top_n(s, &batches);
        assert_eq!(table.num_rows(), 4);
    }

    #[test]
    fn only_append_only_rn_1_on_one_time_column_applies() {
        let mut s = spec(true, false);
        assert!(applies(&s));
        s.limit = 2;
        assert!(!applies(&s));
        s.limit = 1;
        s.append_only = false;
        assert!(!applies(&s));
        s.append_only = true;
        s.order_by[0].0 = Arc::new(Column::new("s", 2));
        assert!(!applies(&s));
    }
}

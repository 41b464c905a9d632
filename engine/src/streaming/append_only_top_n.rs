//! Top-N over an append-only input with columnar state (Flink's `Rank`
//! operator, its `AppendOnlyTopNFunction`): `ROW_NUMBER() OVER (PARTITION BY
//! p ORDER BY o, ...) AS rn ... WHERE rn <= N` when the input never retracts
//! — Nexmark q19 (top 10 bids per auction by price).
//!
//! Why not the general Top-N ([`top_n`](super::top_n)): that one keeps each
//! partition's rows arrow-row encoded in an ordered map (an order key and a
//! whole row, boxed, per row), so every row that enters costs a few
//! allocations, and the output is decoded from row bytes. Here, as in
//! [`deduplicate`](super::deduplicate) (which stays the operator for
//! `rn = 1` on one time column):
//!
//! - a DataFusion `GroupValues` interns the PARTITION BY values;
//! - each partition keeps at most N entries, sorted: an order key that
//!   compares as the encoded ORDER BY values do (the value itself for one
//!   integer or timestamp column, else the first 8 bytes of the arrow-row
//!   encoding, whose remaining bytes are read from the batch's encoding
//!   when the prefixes are equal), and where the row is: in one of the input
//!   batches kept whole, compacted (rows gathered with `interleave`) when
//!   dead rows outnumber live ones;
//! - a row whose key is past a full partition's N-th is dropped with one
//!   comparison; the others are inserted by binary search;
//! - the output is gathered from the kept batches with `interleave`.
//!
//! The answer is the general Top-N's, row for row and in the same order:
//! rows are ordered by their ORDER BY encoding and then by their whole-row
//! encoding (compared in place, only when order keys tie); for each
//! partition a batch touches (in first-touch order) and each rank whose row
//! changed it emits `-U` old / `+U` new, and `+I` for a rank that fills. The
//! rank is the output's last column.

use std::cmp::Ordering;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{SortOptions, interleave};
use arrow::datatypes::{DataType, Int64Type};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::aggregates::group_values::GroupValues;

use tributary_planner::RowKind;

use super::ChangeBatch;
use super::deduplicate::{compact_buffers, compare_rows, intern_partitions};
use super::top_n::{TopNSpec, rank_output};

/// No slot yet.
const NONE: u32 = u32::MAX;

/// Whether `spec` is a Top-N this operator runs: append-only input, a
/// limit of at least 1, a PARTITION BY and an ORDER BY.
pub(super) fn applies(spec: &TopNSpec) -> bool {
    spec.append_only
        && spec.limit >= 1
        && !spec.partition_by.is_empty()
        && !spec.order_by.is_empty()
}

/// An order key that compares as the encoded ORDER BY values do, up to a
/// tie: (NULL rank, value) for one integer column, (0, first 8 bytes big
/// endian) of the arrow-row encoding otherwise.
type Key = (u8, u64);

/// A kept row: its order key and where it is in the kept batches.
#[derive(Debug, Clone, Copy)]
struct Entry {
    key: Key,
    batch: u32,
    row: u32,
}

/// How order keys are made.
enum Order {
    /// One integer or timestamp column, its value cast to `i64`.
    Integer(SortOptions),
    /// Anything else: arrow-row encoded, kept per kept batch.
    Encoded(RowConverter),
}

/// The kept input batches and what compares their rows.
struct Store {
    /// Input batches holding kept rows (and rows that left since).
    batches: Vec<RecordBatch>,
    /// With [`Order::Encoded`]: each kept batch's ORDER BY encoding.
    order_rows: Vec<Rows>,
    /// Encodes whole rows, only to break ties.
    rows: RowConverter,
}

impl Store {
    /// `a` against `b`: order key, then the whole row.
    fn compare(&self, a: Entry, b: Entry) -> Result<Ordering> {
        match a.key.cmp(&b.key) {
            Ordering::Equal => {}
            order => return Ok(order),
        }
        if !self.order_rows.is_empty() {
            let x = self.order_rows[a.batch as usize].row(a.row as usize);
            let y = self.order_rows[b.batch as usize].row(b.row as usize);
            match x.cmp(&y) {
                Ordering::Equal => {}
                order => return Ok(order),
            }
        }
        compare_rows(
            &self.rows,
            &self.batches[a.batch as usize],
            a.row as usize,
            &self.batches[b.batch as usize],
            b.row as usize,
        )
    }

    /// Whether `a` and `b` hold equal rows.
    fn same(&self, a: Entry, b: Entry) -> Result<bool> {
        if (a.batch, a.row) == (b.batch, b.row) {
            return Ok(true);
        }
        if a.key != b.key {
            return Ok(false);
        }
        Ok(self.compare(a, b)? == Ordering::Equal)
    }

    /// The rows at `sources` ((batch, row)), column by column. Only the
    /// batches they are in are passed to `interleave` (it checks every array
    /// it is given, and string views keep all their buffers).
    fn gather(&self, sources: &[(usize, usize)]) -> Result<Vec<arrow::array::ArrayRef>> {
        let mut at = vec![NONE; self.batches.len()];
        let mut used: Vec<&RecordBatch> = Vec::new();
        let mut local: Vec<(usize, usize)> = Vec::with_capacity(sources.len());
        for &(b, r) in sources {
            if at[b] == NONE {
                at[b] = used.len() as u32;
                used.push(&self.batches[b]);
            }
            local.push((at[b] as usize, r));
        }
        let columns = used.first().map_or(0, |b| b.num_columns());
        (0..columns)
            .map(|c| {
                let arrays: Vec<&dyn Array> = used.iter().map(|b| b.column(c).as_ref()).collect();
                Ok(interleave(&arrays, &local)?)
            })
            .collect()
    }
}

/// A partition the current batch touches.
struct Touched {
    partition: usize,
    /// Its entries before the batch, in `before` (`None`: unchanged so far).
    before: Option<(usize, usize)>,
}

/// One instance's state.
pub(super) struct AppendOnlyTopN {
    spec: TopNSpec,
    order: Order,
    /// PARTITION BY values → partition index (made from the first batch).
    groups: Option<Box<dyn GroupValues>>,
    /// Per partition: its top N, in rank order.
    partitions: Vec<Vec<Entry>>,
    store: Store,
    /// Rows in the kept batches, live or not.
    kept_rows: usize,
    /// Entries in `partitions`.
    live: usize,
    /// Scratch: each row's partition.
    group_of_row: Vec<usize>,
    /// Scratch: per partition, its index in the batch's touched list.
    slot_of: Vec<u32>,
    /// Scratch: each row's order key.
    keys: Vec<Key>,
}

impl AppendOnlyTopN {
    /// # Errors
    /// An ORDER BY type arrow-row cannot encode, or a limit of 0 (see
    /// [`applies`]).
    pub(super) fn try_new(spec: TopNSpec) -> Result<Self> {
        if spec.limit == 0 {
            return Err(DataFusionError::Internal(
                "append-only Top-N: a limit of 0".into(),
            ));
        }
        let types = spec
            .order_by
            .iter()
            .map(|(e, o)| Ok((e.data_type(&spec.input)?, *o)))
            .collect::<Result<Vec<_>>>()?;
        let order = match types.as_slice() {
            [(DataType::Int64 | DataType::Int32 | DataType::Timestamp(_, _), options)] => {
                Order::Integer(*options)
            }
            _ => Order::Encoded(RowConverter::new(
                types
                    .into_iter()
                    .map(|(t, o)| SortField::new_with_options(t, o))
                    .collect(),
            )?),
        };
        let rows = super::top_n::whole_rows(&spec.input)?;
        Ok(Self {
            spec,
            order,
            groups: None,
            partitions: vec![],
            store: Store {
                batches: vec![],
                order_rows: vec![],
                rows,
            },
            kept_rows: 0,
            live: 0,
            group_of_row: vec![],
            slot_of: vec![],
            keys: vec![],
        })
    }

    /// The ORDER BY values of `data`'s rows: their keys into `self.keys`,
    /// and their encoding if keys are encoded.
    fn order_keys(&mut self, data: &RecordBatch) -> Result<Option<Rows>> {
        let n = data.num_rows();
        let columns = self
            .spec
            .order_by
            .iter()
            .map(|(e, _)| e.evaluate(data)?.into_array(n))
            .collect::<Result<Vec<_>>>()?;
        self.keys.clear();
        match &self.order {
            Order::Integer(options) => {
                let Some(column) = columns.first() else {
                    return Err(DataFusionError::Internal(
                        "append-only Top-N: no ORDER BY".into(),
                    ));
                };
                let column = arrow::compute::cast(column, &DataType::Int64)?;
                let values = column.as_primitive::<Int64Type>();
                let flip = if options.descending { u64::MAX } else { 0 };
                self.keys.extend(
                    values
                        .values()
                        .iter()
                        .map(|v| (1u8, (*v as u64 ^ (1 << 63)) ^ flip)),
                );
                if let Some(nulls) = values.nulls() {
                    let null = if options.nulls_first { (0, 0) } else { (2, 0) };
                    for i in nulls.iter().enumerate().filter(|(_, v)| !v).map(|(i, _)| i) {
                        self.keys[i] = null;
                    }
                }
                Ok(None)
            }
            Order::Encoded(converter) => {
                let rows = converter.convert_columns(&columns)?;
                self.keys.extend(rows.iter().map(|r| {
                    let mut prefix = [0u8; 8];
                    let bytes = r.data();
                    let len = bytes.len().min(8);
                    prefix[..len].copy_from_slice(&bytes[..len]);
                    (0u8, u64::from_be_bytes(prefix))
                }));
                Ok(Some(rows))
            }
        }
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
            "append-only Top-N",
            &self.spec,
            change,
            &mut self.groups,
            &mut self.group_of_row,
        )?;
        let data = &change.data;
        self.partitions.resize_with(partitions, Vec::new);
        self.slot_of.resize(partitions, NONE);
        let order_rows = self.order_keys(data)?;

        // The batch is addressed as the last kept one while it is processed.
        let this = self.store.batches.len() as u32;
        self.store.batches.push(data.clone());
        if let Some(rows) = order_rows {
            self.store.order_rows.push(rows);
        }

        let limit = self.spec.limit;
        let mut touched: Vec<Touched> = Vec::new();
        let mut before: Vec<Entry> = Vec::new();
        let mut entered = false;
        for (i, (&g, &key)) in self.group_of_row.iter().zip(&self.keys).enumerate() {
            let slot = match self.slot_of[g] {
                NONE => {
                    self.slot_of[g] = touched.len() as u32;
                    touched.push(Touched {
                        partition: g,
                        before: None,
                    });
                    touched.len() - 1
                }
                slot => slot as usize,
            };
            let part = &mut self.partitions[g];
            if part.len() == limit && part[limit - 1].key < key {
                continue;
            }
            let candidate = Entry {
                key,
                batch: this,
                row: i as u32,
            };
            // After the last entry not greater than the candidate.
            let (mut lo, mut hi) = (0, part.len());
            while lo < hi {
                let mid = (lo + hi) / 2;
                if self.store.compare(candidate, part[mid])? == Ordering::Less {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            if lo >= limit {
                continue;
            }
            let t = &mut touched[slot];
            if t.before.is_none() {
                t.before = Some((before.len(), part.len()));
                before.extend_from_slice(part);
            }
            if part.len() == limit {
                part.pop();
            } else {
                if part.capacity() == 0 {
                    part.reserve_exact(limit.min(16));
                }
                self.live += 1;
            }
            part.insert(lo, candidate);
            entered = true;
        }
        for t in &touched {
            self.slot_of[t.partition] = NONE;
        }
        if !entered {
            self.store.batches.pop();
            if !self.store.order_rows.is_empty() {
                self.store.order_rows.pop();
            }
            return Ok(None);
        }
        self.kept_rows += n;

        // Rank by rank, what changed.
        let mut sources: Vec<(usize, usize)> = Vec::new();
        let mut ranks: Vec<u64> = Vec::new();
        let mut kinds: Vec<RowKind> = Vec::new();
        for t in &touched {
            let Some((start, len)) = t.before else {
                continue;
            };
            let old = &before[start..start + len];
            let new = &self.partitions[t.partition];
            for rank in 0..old.len().max(new.len()) {
                let mut emit = |e: &Entry, kind: RowKind| {
                    sources.push((e.batch as usize, e.row as usize));
                    ranks.push(rank as u64 + 1);
                    kinds.push(kind);
                };
                match (old.get(rank), new.get(rank)) {
                    (Some(o), Some(w)) if self.store.same(*o, *w)? => {}
                    (Some(o), Some(w)) => {
                        emit(o, RowKind::UpdateBefore);
                        emit(w, RowKind::UpdateAfter);
                    }
                    (Some(o), None) => emit(o, RowKind::Delete),
                    (None, Some(w)) => emit(w, RowKind::Insert),
                    (None, None) => {}
                }
            }
        }
        let out = if kinds.is_empty() {
            None
        } else {
            let columns = self.store.gather(&sources)?;
            Some(rank_output(&self.spec.schema, columns, ranks, &kinds)?)
        };
        if self.kept_rows > 2 * self.live + 65_536 {
            self.compact()?;
        }
        Ok(out)
    }

    /// Keeps only the live rows, in one batch.
    fn compact(&mut self) -> Result<()> {
        let live: Vec<(usize, usize)> = self
            .partitions
            .iter()
            .flatten()
            .map(|e| (e.batch as usize, e.row as usize))
            .collect();
        let columns = self.store.gather(&live)?;
        let batch = RecordBatch::try_new(self.spec.input.clone(), columns)?;
        // Copy out of the shared buffers of the batches being dropped.
        let batch = compact_buffers(&batch)?;
        for (next, e) in (0u32..).zip(self.partitions.iter_mut().flatten()) {
            (e.batch, e.row) = (0, next);
        }
        self.kept_rows = batch.num_rows();
        self.store.batches = vec![batch];
        if let Order::Encoded(_) = self.order {
            self.store.order_rows.clear();
            if let Some(batch) = self.store.batches.first().cloned()
                && let Some(rows) = self.order_keys(&batch)?
            {
                self.store.order_rows.push(rows);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray, StringViewArray};
    use arrow::datatypes::{Field, Schema, SchemaRef};
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_expr::expressions::Column;
    use std::sync::Arc;

    fn input() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("t", DataType::Int64, true),
            Field::new("s", DataType::Utf8View, true),
            Field::new("u", DataType::Int32, true),
        ]))
    }

    fn spec(order_by: &[(usize, bool, bool)], limit: usize) -> TopNSpec {
        let input = input();
        let mut fields = input.fields().to_vec();
        fields.push(Arc::new(Field::new("rn", DataType::UInt64, false)));
        TopNSpec {
            partition_by: vec![Arc::new(Column::new("k", 0))],
            order_by: order_by
                .iter()
                .map(|&(c, descending, nulls_first)| {
                    (
                        Arc::new(Column::new(input.field(c).name(), c)) as Arc<dyn PhysicalExpr>,
                        SortOptions {
                            descending,
                            nulls_first,
                        },
                    )
                })
                .collect(),
            limit,
            append_only: true,
            schema: Arc::new(Schema::new(fields)),
            input,
        }
    }

    /// A xorshift generator (no dependency for tests).
    struct Random(u64);

    impl Random {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// `n` rows over `keys` partitions (some NULL), order values from a
    /// small range (ties) with some NULLs, strings from a few values (whole
    /// rows tie too).
    fn batch(r: &mut Random, n: usize, keys: u64, values: u64) -> ChangeBatch {
        let mut k = vec![];
        let mut t = vec![];
        let mut s = vec![];
        let mut u = vec![];
        for _ in 0..n {
            let key = r.below(keys + 1);
            k.push((key < keys).then(|| format!("p{key}")));
            let v = r.below(values + 1);
            t.push((v < values).then_some(v as i64 - values as i64 / 2));
            s.push((r.below(8) > 0).then(|| format!("s{}", r.below(3))));
            let w = r.below(values + 1);
            u.push((w < values).then_some(w as i32));
        }
        let data = RecordBatch::try_new(
            input(),
            vec![
                Arc::new(StringArray::from(k)) as ArrayRef,
                Arc::new(Int64Array::from(t)),
                Arc::new(StringViewArray::from(s)),
                Arc::new(Int32Array::from(u)),
            ],
        )
        .unwrap();
        ChangeBatch::inserts(data)
    }

    /// Each output row as text, in order, with its kind.
    fn show(c: &Option<ChangeBatch>) -> Vec<String> {
        let Some(c) = c else { return vec![] };
        let text = arrow::util::pretty::pretty_format_batches(&[c.data.clone()])
            .unwrap()
            .to_string();
        let rows = text.lines().skip(3).filter(|l| !l.starts_with('+'));
        c.kinds()
            .zip(rows)
            .map(|(k, r)| format!("{k:?} {r}"))
            .collect()
    }

    /// Runs this operator and the general Top-N over `batches`: their
    /// changelogs must be equal, batch by batch and row by row.
    fn same_as_top_n(s: TopNSpec, batches: &[ChangeBatch]) -> usize {
        let mut mine = AppendOnlyTopN::try_new(s.clone()).unwrap();
        let mut general = super::super::top_n::TopN::try_new(s).unwrap();
        let mut rows = 0;
        for (i, b) in batches.iter().enumerate() {
            let ours = show(&mine.process(b).unwrap());
            let theirs = show(&general.process(b).unwrap());
            assert_eq!(ours, theirs, "batch {i}");
            rows += ours.len();
        }
        rows
    }

    #[test]
    fn random_input_gives_the_general_top_ns_changelog() {
        let mut r = Random(0x9e37_79b9_7f4a_7c15);
        // One integer column (both directions, NULLs first and last), an
        // Int32 column, and two columns (encoded keys).
        let orders: [&[(usize, bool, bool)]; 6] = [
            &[(1, true, false)],
            &[(1, false, true)],
            &[(1, true, true)],
            &[(3, false, false)],
            &[(1, true, false), (2, false, true)],
            &[(2, true, false), (3, false, true)],
        ];
        for limit in 1..=10 {
            for order in orders {
                let batches: Vec<ChangeBatch> =
                    (0..6).map(|i| batch(&mut r, 50 + 40 * i, 12, 20)).collect();
                let rows = same_as_top_n(spec(order, limit), &batches);
                assert!(rows > 0, "{limit} {order:?}");
            }
        }
    }

    #[test]
    fn compaction_keeps_the_top_rows() {
        let mut r = Random(7);
        let batches: Vec<ChangeBatch> = (0..40).map(|_| batch(&mut r, 2000, 30, 1000)).collect();
        for order in [
            &[(1, true, false)][..],
            &[(2, false, false), (1, true, true)],
        ] {
            let s = spec(order, 5);
            same_as_top_n(s.clone(), &batches);
            let mut op = AppendOnlyTopN::try_new(s).unwrap();
            for b in &batches {
                op.process(b).unwrap();
            }
            assert!(op.store.batches.len() < 40);
            assert!(op.partitions.iter().all(|p| p.len() <= 5));
        }
    }

    #[test]
    fn applies_to_append_only_inputs_with_a_partition_and_an_order() {
        let mut s = spec(&[(1, true, false)], 3);
        assert!(applies(&s));
        s.append_only = false;
        assert!(!applies(&s));
        s.append_only = true;
        s.partition_by.clear();
        assert!(!applies(&s));
    }
}

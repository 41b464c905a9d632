//! Columnar state for the most common aggregates of an updating `GROUP BY`
//! — `COUNT`, `SUM` and `AVG` over `BIGINT` / `DOUBLE`, and `MIN` / `MAX`
//! of `BIGINT` over an append-only input — indexed by group index, the way
//! DataFusion's `GroupsAccumulator`s keep theirs: one `Vec` per state field,
//! so a million keys cost a few machine words each, not a boxed accumulator
//! (a heap allocation, a vtable and a `DataType`) per key and aggregate.
//!
//! Unlike a `GroupsAccumulator`, a [`NativeColumn`] takes retractions (a
//! row weight of -1) and evaluates any set of groups without consuming
//! them, which an updating aggregate needs to emit `-U` (the old value)
//! and `+U` (the new one) for each key a batch changed.
//!
//! `COUNT(DISTINCT x)` of an integer `x` over an append-only input without
//! a state TTL (no key is ever dropped) is columnar too: a count per group
//! in its [`NativeColumn`], and one [`DistinctSet`] of (group, value) pairs
//! for all groups, shared by every such aggregate over the same `x` (e.g.
//! `COUNT(DISTINCT bidder) FILTER (WHERE price < 10000)` and the same
//! without the filter), as Flink shares distinct state between distinct
//! aggregates that differ only in their `FILTER` (Flink's docs,
//! "Performance Tuning", "Use FILTER Modifier on Distinct Aggregates").
//!
//! Semantics are DataFusion's (so both modes agree): `COUNT` counts
//! non-NULL argument values (`COUNT(*)` is `COUNT(1)`), `SUM` is NULL over
//! no non-NULL value and wraps on `BIGINT` overflow, `AVG` is the `DOUBLE`
//! sum divided by the count, NULL over no value. Every other aggregate
//! keeps DataFusion's accumulator.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::HashMap;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;

/// Which aggregate a [`NativeColumn`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NativeKind {
    Count,
    /// `COUNT(DISTINCT x)`, `x` an integer.
    DistinctInt,
    SumInt,
    SumFloat,
    Avg,
    MinInt,
    MaxInt,
}

impl NativeKind {
    /// The native kind for `expr` over rows of `input`, if it is one of
    /// the aggregates above (MIN/MAX only when `append_only`: retracting
    /// them needs every value; COUNT(DISTINCT) only when `append_only` and
    /// no key is ever dropped, `keys_kept`).
    pub fn for_aggregate(
        expr: &AggregateFunctionExpr,
        input: &arrow::datatypes::Schema,
        append_only: bool,
        keys_kept: bool,
    ) -> Option<Self> {
        if expr.expressions().len() != 1 {
            return None;
        }
        let out = expr.field().data_type().clone();
        if expr.is_distinct() {
            let integer = expr.expressions()[0].data_type(input).ok()?.is_integer();
            let count = expr.fun().name().eq_ignore_ascii_case("count");
            return (count && out == DataType::Int64 && integer && append_only && keys_kept)
                .then_some(Self::DistinctInt);
        }
        match (expr.fun().name().to_ascii_lowercase().as_str(), out) {
            ("count", DataType::Int64) => Some(Self::Count),
            ("sum", DataType::Int64) => Some(Self::SumInt),
            ("sum", DataType::Float64) => Some(Self::SumFloat),
            ("avg" | "mean", DataType::Float64) => Some(Self::Avg),
            ("min", DataType::Int64) if append_only => Some(Self::MinInt),
            ("max", DataType::Int64) if append_only => Some(Self::MaxInt),
            _ => None,
        }
    }

    fn floats(self) -> bool {
        matches!(self, Self::SumFloat | Self::Avg)
    }
}

/// One aggregate's state for every group: `n[g]` non-NULL values seen
/// (inserted minus retracted), and the running sum / extreme in `ints` or
/// `floats` (whichever the kind uses; the other stays empty).
#[derive(Debug)]
pub(super) struct NativeColumn {
    kind: NativeKind,
    n: Vec<i64>,
    ints: Vec<i64>,
    floats: Vec<f64>,
}

impl NativeColumn {
    pub fn new(kind: NativeKind) -> Self {
        Self {
            kind,
            n: Vec::new(),
            ints: Vec::new(),
            floats: Vec::new(),
        }
    }

    /// Makes room for groups `0..groups`, new ones empty.
    pub fn resize(&mut self, groups: usize) {
        self.n.resize(groups, 0);
        match self.kind {
            NativeKind::Count | NativeKind::DistinctInt => {}
            k if k.floats() => self.floats.resize(groups, 0.0),
            _ => self.ints.resize(groups, 0),
        }
    }

    /// Which aggregate this column computes.
    pub fn kind(&self) -> NativeKind {
        self.kind
    }

    /// Empties group `g` (its key was deleted or expired; a `DistinctInt`
    /// column's pairs are its [`DistinctSet`]'s to drop).
    pub fn reset(&mut self, g: usize) {
        self.n[g] = 0;
        if let Some(v) = self.ints.get_mut(g) {
            *v = 0;
        }
        if let Some(v) = self.floats.get_mut(g) {
            *v = 0.0;
        }
    }

    /// Keeps the groups where `keep` is true, in order (after the key
    /// index was compacted the same way).
    pub fn retain(&mut self, keep: &[bool]) {
        retain(&mut self.n, keep);
        retain(&mut self.ints, keep);
        retain(&mut self.floats, keep);
    }

    /// Folds in row `i` of `values` with weight `weights[i]` (+1 add, -1
    /// retract, 0 skip) into group `groups[i]`; NULL values are skipped.
    ///
    /// # Errors
    /// A retraction of MIN/MAX (the planner never plans one here).
    pub fn update(&mut self, values: &ArrayRef, groups: &[usize], weights: &[i8]) -> Result<()> {
        let nulls = values.logical_nulls();
        let valid = |i: usize| nulls.as_ref().is_none_or(|b| b.is_valid(i));
        let rows = groups.iter().zip(weights).enumerate();
        match self.kind {
            NativeKind::Count => {
                for (i, (&g, &w)) in rows {
                    if w != 0 && valid(i) {
                        self.n[g] += i64::from(w);
                    }
                }
            }
            NativeKind::DistinctInt => {
                return Err(DataFusionError::Internal(
                    "COUNT(DISTINCT) is folded by its DistinctSet".into(),
                ));
            }
            NativeKind::SumInt => {
                let values = int64(values)?;
                let values = values.as_primitive::<Int64Type>().values();
                for (i, (&g, &w)) in rows {
                    if w != 0 && valid(i) {
                        self.ints[g] = self.ints[g].wrapping_add(values[i].wrapping_mul(w.into()));
                        self.n[g] += i64::from(w);
                    }
                }
            }
            NativeKind::SumFloat | NativeKind::Avg => {
                let values = float64(values)?;
                let values = values.as_primitive::<Float64Type>().values();
                for (i, (&g, &w)) in rows {
                    if w > 0 && valid(i) {
                        self.floats[g] += values[i];
                        self.n[g] += 1;
                    } else if w < 0 && valid(i) {
                        self.floats[g] -= values[i];
                        self.n[g] -= 1;
                    }
                }
            }
            NativeKind::MinInt | NativeKind::MaxInt => {
                let min = self.kind == NativeKind::MinInt;
                let values = int64(values)?;
                let values = values.as_primitive::<Int64Type>().values();
                for (i, (&g, &w)) in rows {
                    if w < 0 {
                        return Err(DataFusionError::Internal(
                            "MIN/MAX with inline state cannot take retractions".into(),
                        ));
                    }
                    if w > 0 && valid(i) {
                        let v = values[i];
                        let cur = &mut self.ints[g];
                        if self.n[g] == 0 || (min && v < *cur) || (!min && v > *cur) {
                            *cur = v;
                        }
                        self.n[g] += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// How many non-NULL values of each of `groups` a fold of `values` with
    /// `weights` would retract, added per group into `out` (indexed like
    /// `slot_of`): lets a caller under a state TTL skip retractions of
    /// values a group no longer holds.
    pub fn count_retracted(values: &ArrayRef, slots: &[u32], weights: &[i8], out: &mut [i64]) {
        let nulls = values.logical_nulls();
        for (i, (&s, &w)) in slots.iter().zip(weights).enumerate() {
            if w < 0 && nulls.as_ref().is_none_or(|b| b.is_valid(i)) {
                out[s as usize] += 1;
            }
        }
    }

    /// Non-NULL values group `g` holds.
    pub fn count(&self, g: usize) -> i64 {
        self.n[g]
    }

    /// After retractions: a float sum of no value starts again from an
    /// exact zero, not the rounding left over by the subtractions.
    pub fn settle(&mut self, g: usize) {
        if self.n[g] == 0
            && let Some(v) = self.floats.get_mut(g)
        {
            *v = 0.0;
        }
    }

    /// The aggregate's values for `groups`, in that order (`BIGINT` or
    /// `DOUBLE`, as the kind's result).
    pub fn evaluate(&self, groups: &[usize]) -> ArrayRef {
        let n = &self.n;
        match self.kind {
            NativeKind::Count | NativeKind::DistinctInt => {
                Arc::new(Int64Array::from_iter_values(groups.iter().map(|&g| n[g])))
            }
            NativeKind::SumInt | NativeKind::MinInt | NativeKind::MaxInt => Arc::new(
                Int64Array::from_iter(groups.iter().map(|&g| (n[g] > 0).then(|| self.ints[g]))),
            ),
            NativeKind::SumFloat => Arc::new(Float64Array::from_iter(
                groups.iter().map(|&g| (n[g] > 0).then(|| self.floats[g])),
            )),
            NativeKind::Avg => Arc::new(Float64Array::from_iter(
                groups
                    .iter()
                    .map(|&g| (n[g] > 0).then(|| self.floats[g] / n[g] as f64)),
            )),
        }
    }

    /// Bytes held per group (for sizing).
    #[cfg(test)]
    fn groups(&self) -> usize {
        self.n.len()
    }
}

/// The (group, value) pairs counted by the `COUNT(DISTINCT x)` columns
/// ([`NativeKind::DistinctInt`]) of one `GROUP BY` that count the same `x`,
/// each under its own `FILTER`: one hash table for all of them, each pair
/// with a bit per column that has counted it, so a row costs one probe
/// however many of them there are (see the module's header).
#[derive(Debug)]
pub(super) struct DistinctSet {
    /// The sharing aggregates (indices into the `GROUP BY`'s aggregates):
    /// bit `k` of a pair's mask stands for `members[k]`. At most 64.
    members: Vec<usize>,
    seen: HashMap<(usize, i64), u64>,
}

impl DistinctSet {
    /// Most aggregates one set serves (the bits of its masks).
    pub const MAX_MEMBERS: usize = 64;

    pub fn new(first: usize) -> Self {
        Self {
            members: vec![first],
            seen: HashMap::default(),
        }
    }

    pub fn members(&self) -> &[usize] {
        &self.members
    }

    /// Adds aggregate `j`; false if the set is full.
    pub fn join(&mut self, j: usize) -> bool {
        let room = self.members.len() < Self::MAX_MEMBERS;
        if room {
            self.members.push(j);
        }
        room
    }

    /// Folds in the rows of `values`: row `i` counts for member `k` when
    /// `weights[k][i]` is +1 (0: skipped, e.g. by its `FILTER`) and the
    /// value is not NULL; a value new to member `k` in group `groups[i]`
    /// adds one to `columns[k]`'s count of that group. `weights` and
    /// `columns` follow [`Self::members`].
    ///
    /// # Errors
    /// A retraction (weight -1): never planned, the state is append-only.
    pub fn update(
        &mut self,
        values: &ArrayRef,
        groups: &[usize],
        weights: &[Vec<i8>],
        columns: &mut [&mut NativeColumn],
    ) -> Result<()> {
        if weights.iter().any(|w| w.iter().any(|w| *w < 0)) {
            return Err(DataFusionError::Internal(
                "COUNT(DISTINCT) with inline state cannot take retractions".into(),
            ));
        }
        let values = int64(values)?;
        let nulls = values.logical_nulls();
        let values = values.as_primitive::<Int64Type>().values();
        for (i, (&g, &v)) in groups.iter().zip(values.iter()).enumerate() {
            let mut wanted = 0u64;
            for (k, w) in weights.iter().enumerate() {
                wanted |= u64::from(w[i] > 0) << k;
            }
            if wanted == 0 || nulls.as_ref().is_some_and(|b| b.is_null(i)) {
                continue;
            }
            let counted = self.seen.entry((g, v)).or_insert(0);
            let mut new = wanted & !*counted;
            *counted |= new;
            while new != 0 {
                columns[new.trailing_zeros() as usize].n[g] += 1;
                new &= new - 1;
            }
        }
        Ok(())
    }

    /// Drops group `g`'s pairs (its key was deleted; never planned where
    /// a key can be dropped, so correct rather than fast).
    pub fn reset(&mut self, g: usize) {
        self.seen.retain(|(group, _), _| *group != g);
    }

    /// Keeps the pairs of the groups where `keep` is true, renumbered as
    /// [`NativeColumn::retain`] renumbers groups.
    pub fn retain(&mut self, keep: &[bool]) {
        if self.seen.is_empty() {
            return;
        }
        // New group index: the number of kept groups before it.
        let mut new_index = Vec::with_capacity(keep.len());
        let mut next = 0usize;
        for k in keep {
            new_index.push(next);
            next += usize::from(*k);
        }
        self.seen = self
            .seen
            .drain()
            .filter(|((g, _), _)| keep[*g])
            .map(|((g, v), mask)| ((new_index[g], v), mask))
            .collect();
    }
}

/// Keeps `v[i]` where `keep[i]` (an empty `v` stays empty).
pub(super) fn retain<T>(v: &mut Vec<T>, keep: &[bool]) {
    if v.is_empty() {
        return;
    }
    let mut i = 0;
    v.retain(|_| {
        let k = keep[i];
        i += 1;
        k
    });
}

/// `values` as `BIGINT` (DataFusion coerces SUM's and MIN/MAX's integer
/// arguments already; a cast keeps any other integer type correct).
fn int64(values: &ArrayRef) -> Result<ArrayRef> {
    if values.data_type() == &DataType::Int64 {
        Ok(values.clone())
    } else {
        Ok(cast(values, &DataType::Int64)?)
    }
}

/// `values` as `DOUBLE` (AVG of integers averages them as doubles).
fn float64(values: &ArrayRef) -> Result<ArrayRef> {
    if values.data_type() == &DataType::Float64 {
        Ok(values.clone())
    } else {
        Ok(cast(values, &DataType::Float64)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(v: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(v.to_vec()))
    }

    fn show(a: &ArrayRef) -> Vec<String> {
        (0..a.len())
            .map(|i| arrow::util::display::array_value_to_string(a, i).unwrap())
            .collect()
    }

    #[test]
    fn count_sum_avg_add_and_retract_per_group() {
        let mut cols = [
            NativeColumn::new(NativeKind::Count),
            NativeColumn::new(NativeKind::SumInt),
            NativeColumn::new(NativeKind::Avg),
        ];
        for c in &mut cols {
            c.resize(2);
        }
        // Group 0: 4, NULL, 2; group 1: 10.
        let values = ints(&[Some(4), None, Some(10), Some(2)]);
        for c in &mut cols {
            c.update(&values, &[0, 0, 1, 0], &[1, 1, 1, 1]).unwrap();
        }
        let shown: Vec<_> = cols.iter().map(|c| show(&c.evaluate(&[0, 1]))).collect();
        assert_eq!(shown, [["2", "1"], ["6", "10"], ["3.0", "10.0"]]);
        // Retract 4 and 2 from group 0; weight 0 skips the 10.
        let gone = ints(&[Some(4), Some(10), Some(2)]);
        for c in &mut cols {
            c.update(&gone, &[0, 1, 0], &[-1, 0, -1]).unwrap();
            c.settle(0);
        }
        let shown: Vec<_> = cols.iter().map(|c| show(&c.evaluate(&[1, 0]))).collect();
        assert_eq!(
            shown,
            [["1", "0"], ["10", ""], ["10.0", ""]],
            "SUM/AVG of nothing is NULL"
        );
        assert_eq!(cols[0].count(0), 0);
    }

    #[test]
    fn extremes_float_sums_reset_and_retain() {
        let mut lo = NativeColumn::new(NativeKind::MinInt);
        let mut hi = NativeColumn::new(NativeKind::MaxInt);
        let mut fs = NativeColumn::new(NativeKind::SumFloat);
        for c in [&mut lo, &mut hi, &mut fs] {
            c.resize(3);
        }
        let v = ints(&[Some(3), None, Some(-7), Some(9), Some(5)]);
        let g = [0, 0, 0, 0, 2];
        lo.update(&v, &g, &[1; 5]).unwrap();
        hi.update(&v, &g, &[1; 5]).unwrap();
        fs.update(
            &(Arc::new(Float64Array::from(vec![0.5, 0.25, 1.0, 0.0, 2.0])) as ArrayRef),
            &g,
            &[1; 5],
        )
        .unwrap();
        assert_eq!(show(&lo.evaluate(&[0, 1, 2])), ["-7", "", "5"]);
        assert_eq!(show(&hi.evaluate(&[0, 1, 2])), ["9", "", "5"]);
        assert_eq!(show(&fs.evaluate(&[0, 2])), ["1.75", "2.0"]);
        assert!(hi.update(&v, &g, &[-1; 5]).is_err(), "MAX cannot retract");
        // Group 0 deleted, then groups 0 and 1 dropped from the index.
        hi.reset(0);
        assert_eq!(show(&hi.evaluate(&[0])), [""]);
        hi.retain(&[false, false, true]);
        assert_eq!(hi.groups(), 1);
        assert_eq!(show(&hi.evaluate(&[0])), ["5"]);
    }

    #[test]
    fn retracted_values_are_counted_per_slot() {
        let mut out = vec![0i64; 2];
        let v = ints(&[Some(1), None, Some(3), Some(4)]);
        NativeColumn::count_retracted(&v, &[0, 0, 1, 1], &[-1, -1, 1, -1], &mut out);
        assert_eq!(out, [1, 1], "NULLs and insertions are not retracted values");
    }

    #[test]
    fn distinct_counts_per_group_survive_compaction() {
        let mut d = NativeColumn::new(NativeKind::DistinctInt);
        d.resize(3);
        let mut set = DistinctSet::new(0);
        let v = ints(&[Some(1), Some(1), Some(2), None, Some(1), Some(7)]);
        fn fold(
            set: &mut DistinctSet,
            d: &mut NativeColumn,
            v: &ArrayRef,
            g: &[usize],
            w: &[i8],
        ) -> Result<()> {
            set.update(v, g, &[w.to_vec()], &mut [d])
        }
        fold(
            &mut set,
            &mut d,
            &v,
            &[0, 0, 0, 0, 1, 2],
            &[1, 1, 1, 1, 1, 0],
        )
        .unwrap();
        assert_eq!(show(&d.evaluate(&[0, 1, 2])), ["2", "1", "0"]);
        assert!(
            fold(&mut set, &mut d, &v, &[0; 6], &[-1; 6]).is_err(),
            "no retractions"
        );
        // Group 1 dropped: group 2 becomes 1 and keeps its (empty) set.
        d.retain(&[true, false, true]);
        set.retain(&[true, false, true]);
        fold(
            &mut set,
            &mut d,
            &ints(&[Some(2), Some(9)]),
            &[0, 1],
            &[1, 1],
        )
        .unwrap();
        assert_eq!(show(&d.evaluate(&[0, 1])), ["2", "1"]);
        d.reset(0);
        set.reset(0);
        fold(&mut set, &mut d, &ints(&[Some(2)]), &[0], &[1]).unwrap();
        assert_eq!(show(&d.evaluate(&[0, 1])), ["1", "1"]);
    }

    #[test]
    fn distinct_columns_over_one_value_share_pairs_but_count_their_own() {
        // COUNT(DISTINCT x), and COUNT(DISTINCT x) FILTER (WHERE x > 1).
        let mut all = NativeColumn::new(NativeKind::DistinctInt);
        let mut big = NativeColumn::new(NativeKind::DistinctInt);
        all.resize(2);
        big.resize(2);
        let mut set = DistinctSet::new(0);
        assert!(set.join(1));
        assert_eq!(set.members(), [0, 1]);
        let v = ints(&[Some(1), Some(2), Some(2), Some(3), Some(1)]);
        let g = [0, 0, 0, 1, 1];
        let filtered = vec![0, 1, 1, 1, 0];
        set.update(&v, &g, &[vec![1; 5], filtered], &mut [&mut all, &mut big])
            .unwrap();
        assert_eq!(show(&all.evaluate(&[0, 1])), ["2", "2"]);
        assert_eq!(show(&big.evaluate(&[0, 1])), ["1", "1"]);
        // A value first counted by one member only is new to the other.
        set.update(
            &ints(&[Some(1)]),
            &[0],
            &[vec![0], vec![1]],
            &mut [&mut all, &mut big],
        )
        .unwrap();
        assert_eq!(show(&all.evaluate(&[0])), ["2"]);
        assert_eq!(show(&big.evaluate(&[0])), ["2"]);
        assert_eq!(
            set.seen.len(),
            4,
            "one pair per (group, value), not per member"
        );
    }
}

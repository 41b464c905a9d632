//! Recognizes the joins whose state the watermark can free: Flink's
//! *interval join* and *window join*.
//!
//! - **Interval join** (Flink's "Interval Joins"): the join condition bounds
//!   the distance between an event-time attribute of each input on both
//!   sides, e.g. `a.ts BETWEEN b.ts - INTERVAL '5' SECOND AND b.ts + INTERVAL
//!   '10' SECOND`, or the same with `>=` / `>` / `<=` / `<` (DataFusion's
//!   optimizer rewrites `BETWEEN` into those). Read as `a.ts - b.ts ∈
//!   [lower, upper]`, a row of either side can only meet rows of the other
//!   side within a known stretch of event time, so once the watermark has
//!   passed it the row can leave the state.
//! - **Window join** (Flink's "Window Join"): both inputs are window TVFs (or
//!   window aggregates over them) and the equi-join keys include
//!   `window_start = window_start` and `window_end = window_end`. A window's
//!   rows meet only rows of the same window, so they are joined when the
//!   watermark closes the window, and freed.
//!
//! An *event-time attribute* here is a column with a declared watermark
//! (`WATERMARK FOR`) or the `window_end` / `window_time` of a window TVF,
//! read through projections, filters, unions, window TVFs and window
//! aggregates only: below a regular join, a non-windowed aggregate or an
//! OVER window its rows may arrive far behind the watermark, so it is no
//! longer one (Flink likewise materializes time attributes there).
//!
//! - **Range join** (RisingWave's state cleaning by inequality conditions
//!   over watermarked columns): the filter bounds each input's event-time
//!   attribute from above by an expression of the *other* input's row, e.g.
//!   Nexmark q4/q9's `B.dateTime BETWEEN A.dateTime AND A.expires`, i.e.
//!   `A.dateTime <= B.dateTime` and `B.dateTime <= A.expires`. A conjunct
//!   `P.t + c <= f(Q)` (`<` alike; `P.t` an event-time attribute of input
//!   P, `f(Q)` any deterministic TIMESTAMP expression of the other input
//!   Q's columns, no watermark needed) says a stored row q of Q can only
//!   meet rows p with `p.t <= f(q) - c`; a row of P that is not late has
//!   `p.t > watermark`, so q can leave the state once `f(q) - c <=
//!   watermark`: its *expiry*. When both inputs get an expiry this way, the
//!   join is a range join: each row is freed at its own expiry (the least of
//!   its side's expressions) and rows whose bounded time attribute is at or
//!   behind the watermark on arrival are late. Its output rows may carry
//!   times far behind the watermark (a stored auction meets a bid until the
//!   auction expires), so it forwards no watermark until its inputs end.
//!
//! A bound on one side only (`b.ts >= a.ts`, or `B.dateTime BETWEEN
//! A.dateTime AND A.expires` where `B.dateTime` is no time attribute) frees
//! nothing: the join is a regular join, which the streaming planner refuses
//! over unbounded inputs (see [`OneSided`]).

use arrow::datatypes::DataType;
use datafusion::common::{Column, DFSchema, ExprSchema, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Join, LogicalPlan, Operator};

use crate::watermark::WATERMARK_DELAY_MS;
use crate::window_tvf::WINDOW_COLUMN;

/// How the watermark bounds a join's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    /// An interval join: a pair matches only if `left[left_time] -
    /// right[right_time]` (ms) is within `[lower, upper]` (the join's filter
    /// still checks the exact bounds; these are the widest ones, used to
    /// drop state). `left_time` / `right_time` index the event-time columns
    /// in the left / right input.
    Interval {
        left_time: usize,
        right_time: usize,
        lower: i64,
        upper: i64,
    },
    /// A window join: `left_end` / `right_end` index the `window_end`
    /// columns of the two inputs (equal in every matching pair).
    Window { left_end: usize, right_end: usize },
    /// A range join (see the module doc): `left_time` / `right_time` index
    /// the event-time attribute of each input that the other input bounds
    /// from above (a row is late if it is at or behind the watermark on
    /// arrival). Each row's expiry comes from expressions over its own
    /// columns, carried beside this bound ([`JoinTime::Ranged`]).
    Range { left_time: usize, right_time: usize },
}

impl TimeBound {
    /// How far (ms) the join's output watermark trails its input watermark,
    /// so that the event-time columns of its output rows are never behind
    /// the watermark that follows them (Flink's interval join delays its
    /// watermark the same way). 0 for a window join: it emits a window's rows
    /// before the watermark that closed it. None for a range join: no delay
    /// is enough (a stored row meets new rows until its own expiry, which no
    /// constant bounds), so it holds its watermark until its inputs end.
    pub fn watermark_delay_ms(&self) -> Option<i64> {
        match self {
            TimeBound::Interval { lower, upper, .. } => {
                Some(0i64.max(lower.saturating_neg()).max(*upper))
            }
            TimeBound::Window { .. } => Some(0),
            TimeBound::Range { .. } => None,
        }
    }
}

/// A condition with an event-time bound on one side only: what it says, for
/// the error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneSided {
    /// The bounding conjunct, as written by the optimizer.
    pub condition: String,
}

/// What the join's condition says about event time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinTime {
    /// A window or interval join.
    Bounded(TimeBound),
    /// A range join: `bound` is a [`TimeBound::Range`]; `expiries[s]` are
    /// TIMESTAMP expressions over input `s`'s schema (0 left, 1 right), at
    /// least one per input: a row of `s` can leave the state once the
    /// watermark (ms) reaches the least of them (NULL: the row never
    /// matches).
    Ranged {
        bound: TimeBound,
        expiries: [Vec<Expr>; 2],
    },
    /// Event-time attributes of both inputs bounded on one side only.
    OneSided(OneSided),
    /// No bound between event-time attributes: a regular join.
    None,
}

/// Classifies `join` (whose inputs are both append-only).
pub fn classify(join: &Join) -> JoinTime {
    if let Some(bound) = window_join(join) {
        return JoinTime::Bounded(bound);
    }
    match interval_join(join) {
        JoinTime::Bounded(bound) => JoinTime::Bounded(bound),
        other => range_join(join).unwrap_or(other),
    }
}

/// The conjuncts of the join's filter, `BETWEEN` split into `>=` and `<=`.
fn filter_conjuncts(filter: &Expr) -> Vec<Expr> {
    let mut conjuncts: Vec<Expr> = Vec::new();
    for c in datafusion::logical_expr::utils::split_conjunction(filter) {
        match c {
            Expr::Between(b) if !b.negated => {
                conjuncts.push(Expr::BinaryExpr(BinaryExpr::new(
                    b.expr.clone(),
                    Operator::GtEq,
                    b.low.clone(),
                )));
                conjuncts.push(Expr::BinaryExpr(BinaryExpr::new(
                    b.expr.clone(),
                    Operator::LtEq,
                    b.high.clone(),
                )));
            }
            other => conjuncts.push(other.clone()),
        }
    }
    conjuncts
}

/// A range join (see the module doc): every conjunct `P.t + c <= f(Q)` (or
/// `<`, or written the other way round) gives input Q the expiry `f(Q) -
/// c`, `c` rounded down to whole ms so that a row is kept at most 1 ms
/// longer. None unless both inputs get one and both keep their time
/// attributes ([`rowtime_safe`]).
fn range_join(join: &Join) -> Option<JoinTime> {
    let filter = join.filter.as_ref()?;
    let schemas = [join.left.schema().as_ref(), join.right.schema().as_ref()];
    let mut late_time: [Option<usize>; 2] = [None, None];
    let mut expiries: [Vec<Expr>; 2] = [Vec::new(), Vec::new()];
    for conjunct in filter_conjuncts(filter) {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &conjunct else {
            continue;
        };
        // `lo <= hi` (or `<`)
        let (lo, hi) = match op {
            Operator::Lt | Operator::LtEq => (left.as_ref(), right.as_ref()),
            Operator::Gt | Operator::GtEq => (right.as_ref(), left.as_ref()),
            _ => continue,
        };
        let Some((t, c)) = time_term(lo) else {
            continue;
        };
        let Some(p) = (0..2).find(|&s| schemas[s].has_column(t)) else {
            continue;
        };
        let q = 1 - p;
        if schemas[q].has_column(t) || !is_time_attribute(schemas[p], t) {
            continue;
        }
        // `f(Q)`: deterministic, over Q's columns only, a TIMESTAMP.
        let columns = hi.column_refs();
        if columns.is_empty()
            || hi.is_volatile()
            || !columns
                .iter()
                .all(|c| schemas[q].has_column(c) && !schemas[p].has_column(c))
            || !matches!(hi.get_type(schemas[q]), Ok(DataType::Timestamp(..)))
        {
            continue;
        }
        let Ok(t_index) = schemas[p].index_of_column(t) else {
            continue;
        };
        match late_time[p] {
            Some(i) if i != t_index => continue,
            _ => late_time[p] = Some(t_index),
        }
        let c_ms = i64::try_from(c.div_euclid(1_000_000)).ok()?;
        let expiry = if c_ms == 0 {
            hi.clone()
        } else {
            Expr::BinaryExpr(BinaryExpr::new(
                Box::new(hi.clone()),
                Operator::Minus,
                Box::new(Expr::Literal(
                    ScalarValue::new_interval_mdn(0, 0, c_ms.checked_mul(1_000_000)?),
                    None,
                )),
            ))
        };
        if !expiries[q].contains(&expiry) {
            expiries[q].push(expiry);
        }
    }
    let (Some(left_time), Some(right_time)) = (late_time[0], late_time[1]) else {
        return None;
    };
    if expiries.iter().any(Vec::is_empty)
        || !(rowtime_safe(&join.left) && rowtime_safe(&join.right))
    {
        return None;
    }
    Some(JoinTime::Ranged {
        bound: TimeBound::Range {
            left_time,
            right_time,
        },
        expiries,
    })
}

/// `window_start = window_start AND window_end = window_end` among the
/// equi-join keys, over window columns of both inputs.
fn window_join(join: &Join) -> Option<TimeBound> {
    let (ls, rs) = (join.left.schema(), join.right.schema());
    let (mut start, mut end) = (false, None);
    for (l, r) in &join.on {
        let (Expr::Column(l), Expr::Column(r)) = (l, r) else {
            continue;
        };
        let (Some(lr), Some(rr)) = (window_role(ls, l), window_role(rs, r)) else {
            continue;
        };
        match (lr.as_str(), rr.as_str()) {
            ("start", "start") => start = true,
            ("end", "end") => {
                end = Some((ls.index_of_column(l).ok()?, rs.index_of_column(r).ok()?))
            }
            _ => {}
        }
    }
    let (left_end, right_end) = end?;
    (start && rowtime_safe(&join.left) && rowtime_safe(&join.right)).then_some(TimeBound::Window {
        left_end,
        right_end,
    })
}

fn window_role(schema: &DFSchema, c: &Column) -> Option<String> {
    schema
        .field_from_column(c)
        .ok()?
        .metadata()
        .get(WINDOW_COLUMN)
        .cloned()
}

/// Whether `c` is an event-time attribute of `schema` (see the module doc;
/// the caller checks the plan with [`rowtime_safe`]).
fn is_time_attribute(schema: &DFSchema, c: &Column) -> bool {
    let Ok(field) = schema.field_from_column(c) else {
        return false;
    };
    field.metadata().contains_key(WATERMARK_DELAY_MS)
        || matches!(
            field.metadata().get(WINDOW_COLUMN).map(String::as_str),
            Some("end" | "time")
        )
}

/// Whether event-time columns still hold their promise (rows arrive ahead of
/// the watermark) at the output of `plan`.
pub(crate) fn rowtime_safe(plan: &LogicalPlan) -> bool {
    let here = match plan {
        LogicalPlan::Join(_)
        | LogicalPlan::Window(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Distinct(_)
        | LogicalPlan::RecursiveQuery(_) => false,
        LogicalPlan::Aggregate(a) => {
            let roles: Vec<String> = a
                .group_expr
                .iter()
                .filter_map(|e| match e {
                    Expr::Column(c) => window_role(a.input.schema(), c),
                    _ => None,
                })
                .collect();
            roles.iter().any(|r| r == "start") && roles.iter().any(|r| r == "end")
        }
        _ => true,
    };
    here && plan.inputs().into_iter().all(rowtime_safe)
}

/// `column + offset` (ns): a column, plus or minus interval literals.
fn time_term(e: &Expr) -> Option<(&Column, i128)> {
    match e {
        Expr::Column(c) => Some((c, 0)),
        Expr::Cast(cast) => time_term(&cast.expr),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::Plus => match (time_term(left), interval_ns(right)) {
                (Some((c, k)), Some(v)) => Some((c, k + v)),
                _ => {
                    let (c, k) = time_term(right)?;
                    Some((c, k + interval_ns(left)?))
                }
            },
            Operator::Minus => {
                let (c, k) = time_term(left)?;
                Some((c, k - interval_ns(right)?))
            }
            _ => None,
        },
        _ => None,
    }
}

/// A literal interval or duration of fixed length, in ns (none with months).
fn interval_ns(e: &Expr) -> Option<i128> {
    const DAY: i128 = 86_400_000_000_000;
    let Expr::Literal(v, _) = e else {
        return None;
    };
    match v {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            Some(i128::from(v.days) * DAY + i128::from(v.nanoseconds))
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            Some(i128::from(v.days) * DAY + i128::from(v.milliseconds) * 1_000_000)
        }
        ScalarValue::DurationSecond(Some(v)) => Some(i128::from(*v) * 1_000_000_000),
        ScalarValue::DurationMillisecond(Some(v)) => Some(i128::from(*v) * 1_000_000),
        ScalarValue::DurationMicrosecond(Some(v)) => Some(i128::from(*v) * 1_000),
        ScalarValue::DurationNanosecond(Some(v)) => Some(i128::from(*v)),
        _ => None,
    }
}

/// The bounds between event-time attributes in the join's filter.
fn interval_join(join: &Join) -> JoinTime {
    let Some(filter) = &join.filter else {
        return JoinTime::None;
    };
    let (ls, rs) = (join.left.schema(), join.right.schema());
    // (left column, right column) → (lower ns, upper ns, a conjunct)
    let mut pairs: Vec<((usize, usize), Option<i128>, Option<i128>, String)> = Vec::new();
    let conjuncts = filter_conjuncts(filter);
    for conjunct in &conjuncts {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = conjunct else {
            continue;
        };
        if !matches!(
            op,
            Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
        ) {
            continue;
        }
        let (Some((a, ka)), Some((b, kb))) = (time_term(left), time_term(right)) else {
            continue;
        };
        // `L + ka op R + kb`, i.e. `L - R op kb - ka`, with L on the left input.
        let (l, r, op, k) = if ls.has_column(a) && rs.has_column(b) {
            (a, b, *op, kb - ka)
        } else if rs.has_column(a) && ls.has_column(b) {
            match op.swap() {
                Some(op) => (b, a, op, ka - kb),
                None => continue,
            }
        } else {
            continue;
        };
        if !is_time_attribute(ls, l) || !is_time_attribute(rs, r) {
            continue;
        }
        let (Ok(li), Ok(ri)) = (ls.index_of_column(l), rs.index_of_column(r)) else {
            continue;
        };
        let at = match pairs.iter().position(|p| p.0 == (li, ri)) {
            Some(at) => at,
            None => {
                pairs.push(((li, ri), None, None, conjunct.to_string()));
                pairs.len() - 1
            }
        };
        let entry = &mut pairs[at];
        if matches!(op, Operator::Gt | Operator::GtEq) {
            entry.1 = Some(entry.1.map_or(k, |lo| lo.max(k)));
        } else {
            entry.2 = Some(entry.2.map_or(k, |hi| hi.min(k)));
        }
    }
    if !(rowtime_safe(&join.left) && rowtime_safe(&join.right)) {
        return JoinTime::None;
    }
    // Outward to whole ms: state is then kept at most 1 ms longer.
    let floor_ms = |ns: i128| i64::try_from(ns.div_euclid(1_000_000)).ok();
    let ceil_ms = |ns: i128| i64::try_from(-((-ns).div_euclid(1_000_000))).ok();
    for ((left_time, right_time), lower, upper, _) in &pairs {
        if let (Some(lo), Some(hi)) = (lower, upper)
            && let (Some(lower), Some(upper)) = (floor_ms(*lo), ceil_ms(*hi))
        {
            return JoinTime::Bounded(TimeBound::Interval {
                left_time: *left_time,
                right_time: *right_time,
                lower,
                upper,
            });
        }
    }
    match pairs.into_iter().next() {
        Some((_, _, _, condition)) => JoinTime::OneSided(OneSided { condition }),
        None => JoinTime::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_literals_in_ns() {
        let lit = |v| Expr::Literal(v, None);
        let iv = ScalarValue::new_interval_mdn(0, 1, 5_000_000_000);
        assert_eq!(interval_ns(&lit(iv)), Some(86_405_000_000_000));
        assert_eq!(
            interval_ns(&lit(ScalarValue::new_interval_mdn(1, 0, 0))),
            None,
            "months have no fixed length"
        );
        let c = Expr::Column(Column::from_name("ts"));
        let e = c.clone() - lit(ScalarValue::new_interval_mdn(0, 0, 2_000_000_000));
        let (col, k) = time_term(&e).unwrap();
        assert_eq!((col.name.as_str(), k), ("ts", -2_000_000_000));
    }

    #[test]
    fn watermark_delay_covers_both_bounds() {
        let b = |lower, upper| TimeBound::Interval {
            left_time: 0,
            right_time: 0,
            lower,
            upper,
        };
        assert_eq!(b(-5_000, 10_000).watermark_delay_ms(), Some(10_000));
        assert_eq!(b(-5_000, -1_000).watermark_delay_ms(), Some(5_000));
        assert_eq!(b(1_000, 2_000).watermark_delay_ms(), Some(2_000));
        assert_eq!(
            TimeBound::Window {
                left_end: 0,
                right_end: 0
            }
            .watermark_delay_ms(),
            Some(0)
        );
    }
}

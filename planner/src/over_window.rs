//! STREAMING OVER aggregation (Flink's `OverAggregate`): which OVER windows
//! can run incrementally, and what state each keeps.
//!
//! Flink runs an OVER aggregate in streaming only when it is ordered by an
//! event-time attribute, ascending, with a frame that ends at the current
//! row: `ROWS BETWEEN n PRECEDING AND CURRENT ROW`, `RANGE BETWEEN INTERVAL
//! ... PRECEDING AND CURRENT ROW`, or either from `UNBOUNDED PRECEDING`
//! (the default frame of `OVER (PARTITION BY k ORDER BY ts)`). A row's
//! result is final once the watermark passes its time: no later row can
//! fall in its frame. See Flink's "Over Aggregation" page
//! (docs/dev/table/sql/queries/over-agg) for the same rules.
//!
//! What this module decides is the frame's *retention*: which already
//! emitted rows a partition must keep so that the frames of rows still to
//! come can be computed ([`OverRetention`]).

use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::{WindowFunction, WindowFunctionParams};
use datafusion::logical_expr::{
    Expr, WindowFrameBound, WindowFrameUnits, WindowFunctionDefinition,
};

use crate::error::{Error, Result};
use crate::watermark::{interval_to_ms, watermark_delay_ms};

/// The emitted rows of a partition that later rows' frames may still
/// reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverRetention {
    /// `ROWS BETWEEN n PRECEDING`: the last `n` rows of each partition.
    Rows(u64),
    /// `RANGE BETWEEN INTERVAL 'd' PRECEDING`: rows at most `d` ms behind the
    /// watermark.
    RangeMs(i64),
    /// `UNBOUNDED PRECEDING`: every row (the state grows with the input).
    All,
}

impl std::fmt::Display for OverRetention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rows(n) => write!(f, "ROWS {n} PRECEDING"),
            Self::RangeMs(ms) => write!(f, "RANGE {ms}ms PRECEDING"),
            Self::All => write!(f, "UNBOUNDED PRECEDING"),
        }
    }
}

/// What the window expressions of one `LogicalPlan::Window` share, checked
/// against Flink's rules for streaming OVER aggregation.
#[derive(Debug, Clone)]
pub struct OverShape {
    /// The PARTITION BY expressions (over the window's input).
    pub partition_by: Vec<Expr>,
    /// The name of the event-time column the windows are ordered by.
    pub order_column: String,
    /// The most any window of the node needs kept.
    pub retention: OverRetention,
}

/// Checks that `window_expr` can run as a streaming OVER aggregate over an
/// input with `input_schema`, and returns what the operator needs.
///
/// # Errors
/// Not-supported errors that name the rule broken: a ranking function
/// (`ROW_NUMBER` and the like run only as Top-N), windows with different
/// PARTITION BY or ORDER BY, an ORDER BY that is not one ascending
/// event-time column, or a frame that does not end at the current row.
pub fn over_shape(
    window_expr: &[Expr],
    input_schema: &datafusion::common::DFSchema,
) -> Result<OverShape> {
    let mut shape: Option<OverShape> = None;
    for expr in window_expr {
        let Expr::WindowFunction(f) = expr.clone().unalias() else {
            return Err(refuse(format!("{expr} is not a window function")));
        };
        let WindowFunction { fun, params } = f.as_ref();
        if !matches!(fun, WindowFunctionDefinition::AggregateUDF(_)) {
            return Err(Error::not_supported(format!(
                "{}() OVER (...) is not supported in STREAMING mode: ranking and offset functions run only as Top-N",
                fun.name().to_uppercase()
            ))
            .with_hint(
                "keep the first rows per partition with WHERE rn <= N over ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...), \
                 or SET 'execution.runtime-mode' = 'batch'",
            ));
        }
        let this = one_shape(params, input_schema)?;
        shape = Some(match shape {
            None => this,
            Some(s) => {
                if s.partition_by != this.partition_by || s.order_column != this.order_column {
                    return Err(refuse(
                        "the OVER windows of one SELECT have different PARTITION BY or ORDER BY"
                            .into(),
                    ));
                }
                OverShape {
                    retention: wider(s.retention, this.retention),
                    ..s
                }
            }
        });
    }
    shape.ok_or_else(|| refuse("an OVER clause without a window function".into()))
}

fn one_shape(
    params: &WindowFunctionParams,
    input_schema: &datafusion::common::DFSchema,
) -> Result<OverShape> {
    let order_column = match params.order_by.as_slice() {
        [sort] if sort.asc => match &sort.expr {
            Expr::Column(c) => {
                let (_, field) = input_schema.qualified_field_from_column(c)?;
                if watermark_delay_ms(field).is_none() {
                    return Err(refuse(format!(
                        "OVER (... ORDER BY {}) must be ordered by an event-time column (one declared with WATERMARK), and '{}' is not one",
                        c.name, c.name
                    )));
                }
                c.name.clone()
            }
            other => {
                return Err(refuse(format!(
                    "OVER (... ORDER BY {other}) must be ordered by an event-time column, not an expression"
                )));
            }
        },
        [_] => {
            return Err(refuse(
                "OVER (... ORDER BY ts DESC) cannot run incrementally: order by the event-time column ascending".into(),
            ));
        }
        _ => {
            return Err(refuse(
                "an OVER window in STREAMING needs ORDER BY exactly one event-time column".into(),
            ));
        }
    };
    let frame = &params.window_frame;
    if !matches!(frame.end_bound, WindowFrameBound::CurrentRow) {
        return Err(refuse(format!(
            "the frame must end at the CURRENT ROW, not at {}: a row's result would wait on rows after it",
            frame.end_bound
        )));
    }
    let retention = match (&frame.units, &frame.start_bound) {
        (_, WindowFrameBound::Preceding(v)) if v.is_null() => OverRetention::All,
        (WindowFrameUnits::Rows, WindowFrameBound::Preceding(v)) => match v {
            ScalarValue::UInt64(Some(n)) => OverRetention::Rows(*n),
            other => return Err(refuse(format!("ROWS {other} PRECEDING is not a row count"))),
        },
        (WindowFrameUnits::Rows, WindowFrameBound::CurrentRow) => OverRetention::Rows(0),
        (WindowFrameUnits::Range, WindowFrameBound::Preceding(v)) => {
            OverRetention::RangeMs(interval_to_ms(v)?)
        }
        (WindowFrameUnits::Range, WindowFrameBound::CurrentRow) => OverRetention::RangeMs(0),
        (units, start) => {
            return Err(refuse(format!(
                "{units} BETWEEN {start} AND CURRENT ROW cannot run incrementally"
            )));
        }
    };
    Ok(OverShape {
        partition_by: params.partition_by.clone(),
        order_column,
        retention,
    })
}

/// The retention that serves both frames. ROWS and RANGE frames together
/// keep everything: neither bound covers the other.
fn wider(a: OverRetention, b: OverRetention) -> OverRetention {
    use OverRetention::*;
    match (a, b) {
        (Rows(x), Rows(y)) => Rows(x.max(y)),
        (RangeMs(x), RangeMs(y)) => RangeMs(x.max(y)),
        _ => All,
    }
}

fn refuse(why: String) -> Error {
    Error::not_supported(format!(
        "this OVER aggregation cannot run in STREAMING mode: {why}"
    ))
    .with_hint(
        "Flink's streaming OVER aggregation needs ORDER BY <event-time column> ASC and a frame \
             ending at CURRENT ROW (ROWS/RANGE BETWEEN ... PRECEDING AND CURRENT ROW); \
             or SET 'execution.runtime-mode' = 'batch'",
    )
}

#[cfg(test)]
mod tests {
    use super::OverRetention::*;
    use super::*;

    #[test]
    fn mixed_frames_keep_what_both_need() {
        assert_eq!(wider(Rows(2), Rows(5)), Rows(5));
        assert_eq!(wider(RangeMs(10), RangeMs(3)), RangeMs(10));
        assert_eq!(wider(Rows(2), RangeMs(3)), All);
        assert_eq!(wider(All, Rows(1)), All);
        assert_eq!(Rows(3).to_string(), "ROWS 3 PRECEDING");
    }
}

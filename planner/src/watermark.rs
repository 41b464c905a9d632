//! Event time: `WATERMARK FOR ts AS ts - INTERVAL 'n' <unit>` in `CREATE
//! TABLE` (Flink's bounded out-of-orderness strategy).
//!
//! The declaration is kept on the time column itself, as Arrow field
//! metadata, so it travels with the column through DataFusion's plans: the
//! streaming planner finds a source's event-time column and its delay by
//! looking at the scanned schema.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use sqlparser::ast::{BinaryOperator, Expr as SqlExpr, Ident};

use crate::error::{Error, Location, Result};

/// Field metadata key: the watermark delay of an event-time column, in ms.
pub const WATERMARK_DELAY_MS: &str = "tributary.watermark.delay_ms";
/// Field metadata key: the watermark expression as written.
pub const WATERMARK_EXPR: &str = "tributary.watermark.expr";

/// A parsed `WATERMARK FOR column AS expr`.
#[derive(Debug, Clone)]
pub struct WatermarkDef {
    /// The event-time column.
    pub column: Ident,
    /// The watermark expression: `column` or `column - INTERVAL ...`.
    pub expr: SqlExpr,
    /// Where the declaration starts.
    pub location: Location,
}

/// The watermark delay (ms) of an event-time field, if it has one.
pub fn watermark_delay_ms(field: &Field) -> Option<i64> {
    field
        .metadata()
        .get(WATERMARK_DELAY_MS)
        .and_then(|v| v.parse().ok())
}

/// Marks the column of `def` in `schema` as the event-time column.
///
/// # Errors
/// The column does not exist or is not a TIMESTAMP; the expression is not
/// `column` or `column - INTERVAL 'n' unit` with n ≥ 0 (in days or smaller
/// units).
pub fn apply_watermark(
    schema: &SchemaRef,
    def: &WatermarkDef,
    interval_ms: impl Fn(&SqlExpr) -> Result<i64>,
) -> Result<SchemaRef> {
    let at = Some(def.location);
    let name = normalize(&def.column);
    let (idx, field) = schema.column_with_name(&name).ok_or_else(|| {
        Error::plan(format!(
            "WATERMARK FOR {name}: no column '{name}' in the table"
        ))
        .at(at)
        .with_hint(format!(
            "the columns are: {}",
            crate::schema::column_list(schema)
        ))
    })?;
    if !matches!(field.data_type(), DataType::Timestamp(..)) {
        return Err(Error::plan(format!(
            "WATERMARK FOR {name}: the event-time column must be a TIMESTAMP, but '{name}' is {}",
            crate::sql_type(field.data_type())
        ))
        .at(at)
        .with_hint("declare the event-time column as TIMESTAMP(3)"));
    }
    let delay = match &def.expr {
        SqlExpr::Identifier(id) if normalize(id) == name => 0,
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } if matches!(left.as_ref(), SqlExpr::Identifier(id) if normalize(id) == name) => {
            interval_ms(right)?
        }
        other => {
            return Err(Error::plan(format!("unsupported watermark expression '{other}'"))
                .at(at)
                .with_hint(format!("write WATERMARK FOR {name} AS {name} - INTERVAL '5' SECOND (or AS {name} for in-order data)")));
        }
    };
    if delay < 0 {
        return Err(Error::plan(format!(
            "WATERMARK FOR {name}: the delay must not be negative"
        ))
        .at(at));
    }
    let mut metadata: HashMap<String, String> = field.metadata().clone();
    metadata.insert(WATERMARK_DELAY_MS.into(), delay.to_string());
    metadata.insert(WATERMARK_EXPR.into(), def.expr.to_string());
    let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    fields[idx] = Arc::new(field.as_ref().clone().with_metadata(metadata));
    Ok(Arc::new(Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    )))
}

fn normalize(id: &Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_lowercase()
    }
}

/// The length of a constant interval in milliseconds.
///
/// # Errors
/// A value that is not an interval, or has months or years (their length in
/// ms varies).
pub fn interval_to_ms(value: &ScalarValue) -> Result<i64> {
    let ms = match value {
        ScalarValue::IntervalDayTime(Some(v)) => {
            i64::from(v.days) * 86_400_000 + i64::from(v.milliseconds)
        }
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            i64::from(v.days) * 86_400_000 + v.nanoseconds / 1_000_000
        }
        ScalarValue::IntervalYearMonth(_) | ScalarValue::IntervalMonthDayNano(_) => {
            return Err(Error::plan(
                "intervals of months or years are not supported here: their length varies",
            )
            .with_hint("use days, hours, minutes, seconds or milliseconds"));
        }
        ScalarValue::DurationMillisecond(Some(v)) => *v,
        ScalarValue::DurationSecond(Some(v)) => v * 1000,
        ScalarValue::DurationMicrosecond(Some(v)) => v / 1000,
        ScalarValue::DurationNanosecond(Some(v)) => v / 1_000_000,
        other => return Err(Error::plan(format!("expected an INTERVAL, found {other}"))),
    };
    Ok(ms)
}

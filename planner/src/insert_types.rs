//! Type checking of `INSERT`: every column of the query must be implicitly
//! castable to the sink column it goes to, as Flink requires ("Incompatible
//! types for sink column"). DataFusion would insert any cast Arrow can do —
//! a TIMESTAMP into a DOUBLE, a string into an INT that fails only when the
//! row arrives — so a mistake would surface late or not at all.
//!
//! Implicit casts allowed: between numeric types (narrowing included, as
//! `INSERT INTO t SELECT id + 1` must work when `id + 1` widens), between
//! string types, between DATE and TIMESTAMP types, and from NULL. A string
//! *literal* in `VALUES` may go to any column whose type it parses as
//! (`'2024-01-01'` into a DATE), checked here, at plan time.

use arrow::datatypes::DataType;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::expr::Cast;
use datafusion::logical_expr::{DmlStatement, Expr, ExprSchemable, LogicalPlan, WriteOp};

use crate::error::{Error, Result};

/// Checks the column types of an `INSERT`; other DML passes.
///
/// # Errors
/// A plan error naming the sink column, its type and the query's type,
/// with a hint to add a CAST; or, for a string literal that does not parse
/// as its column's type, the literal and its row in `VALUES`.
pub fn check_insert_types(dml: &DmlStatement) -> Result<()> {
    if !matches!(dml.op, WriteOp::Insert(_)) {
        return Ok(());
    }
    check_values_literals(dml)?;
    let LogicalPlan::Projection(projection) = dml.input.as_ref() else {
        return Ok(());
    };
    let input_schema = projection.input.schema();
    for (expr, field) in projection.expr.iter().zip(projection.schema.fields()) {
        let Expr::Cast(Cast {
            expr: inner,
            field: target,
        }) = unalias(expr)
        else {
            continue;
        };
        let target = target.data_type();
        let from = inner.get_type(input_schema)?;
        if castable(&from, target) {
            continue;
        }
        // A string column of VALUES: check each literal.
        if is_string(&from)
            && let (Expr::Column(col), LogicalPlan::Values(values)) =
                (inner.as_ref(), projection.input.as_ref())
            && let Ok(idx) = input_schema.index_of_column(col)
        {
            for (row, exprs) in values.values.iter().enumerate() {
                if let Some(Expr::Literal(value, _)) = exprs.get(idx).map(unalias)
                    && !value.is_null()
                    && value.cast_to(target).is_err()
                {
                    return Err(Error::plan(format!(
                        "type mismatch on INSERT INTO {}: cannot convert {} to {} for column '{}' (row {} of VALUES)",
                        dml.table_name,
                        literal_text(value),
                        sql_type(target),
                        field.name(),
                        row + 1
                    ))
                    .with_hint(format!("write a {} value for column '{}'", sql_type(target), field.name())));
                }
            }
            continue;
        }
        return Err(mismatch(dml, field.name(), &from, target, input_schema));
    }
    Ok(())
}

/// `INSERT INTO t VALUES (...)`: DataFusion casts each literal to its
/// column's type inside the VALUES rows; a literal that cannot be cast is a
/// type mismatch, reported here with its row.
fn check_values_literals(dml: &DmlStatement) -> Result<()> {
    let values = match dml.input.as_ref() {
        LogicalPlan::Values(v) => v,
        LogicalPlan::Projection(p) => match p.input.as_ref() {
            LogicalPlan::Values(v) => v,
            _ => return Ok(()),
        },
        _ => return Ok(()),
    };
    let sink = dml.target.schema();
    for (row, exprs) in values.values.iter().enumerate() {
        for (col, expr) in exprs.iter().enumerate() {
            let Expr::Cast(Cast {
                expr: inner,
                field: target,
            }) = unalias(expr)
            else {
                continue;
            };
            let Expr::Literal(value, _) = unalias(inner) else {
                continue;
            };
            if value.is_null() || value.cast_to(target.data_type()).is_ok() {
                continue;
            }
            let column = sink
                .fields()
                .get(col)
                .map(|f| f.name().clone())
                .unwrap_or_else(|| format!("#{}", col + 1));
            return Err(Error::plan(format!(
                "type mismatch on INSERT INTO {}: cannot convert {} to {} for column '{column}' (row {} of VALUES)",
                dml.table_name,
                literal_text(value),
                sql_type(target.data_type()),
                row + 1
            ))
            .with_hint(format!("write a {} value for column '{column}'", sql_type(target.data_type()))));
        }
    }
    Ok(())
}

fn mismatch(
    dml: &DmlStatement,
    column: &str,
    from: &DataType,
    to: &DataType,
    _schema: &DFSchema,
) -> Error {
    Error::plan(format!(
        "type mismatch on INSERT INTO {}: column '{column}' is {} but the query gives {}",
        dml.table_name,
        sql_type(to),
        sql_type(from)
    ))
    .with_hint(format!(
        "CAST the value to {} if that is what you mean",
        sql_type(to)
    ))
}

fn unalias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => unalias(&a.expr),
        other => other,
    }
}

fn literal_text(v: &ScalarValue) -> String {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => format!("'{s}'"),
        other => other.to_string(),
    }
}

fn sql_type(t: &DataType) -> String {
    tributary_connectors::sql_type_name(t)
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_temporal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
    )
}

/// Whether INSERT casts `from` to `to` implicitly.
pub fn castable(from: &DataType, to: &DataType) -> bool {
    from == to
        || from.is_null()
        || (from.is_numeric() && to.is_numeric())
        || (is_string(from) && is_string(to))
        || (is_temporal(from) && is_temporal(to))
        || (matches!(from, DataType::Dictionary(..)) || matches!(to, DataType::Dictionary(..)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::TimeUnit;

    #[test]
    fn implicit_casts() {
        assert!(castable(&DataType::Int64, &DataType::Int32));
        assert!(castable(&DataType::Int32, &DataType::Float64));
        assert!(castable(&DataType::Null, &DataType::Utf8));
        assert!(castable(
            &DataType::Date32,
            &DataType::Timestamp(TimeUnit::Millisecond, None)
        ));
        assert!(!castable(
            &DataType::Timestamp(TimeUnit::Nanosecond, None),
            &DataType::Float64
        ));
        assert!(!castable(&DataType::Utf8, &DataType::Int32));
        assert!(!castable(&DataType::Int32, &DataType::Utf8));
        assert!(!castable(&DataType::Boolean, &DataType::Int32));
    }
}

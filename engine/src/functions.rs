//! Flink SQL functions that DataFusion does not have, so Flink queries run
//! unchanged. Each is a vectorized DataFusion scalar UDF.
//!
//! | function | meaning (Flink's "System (Built-in) Functions") |
//! |---|---|
//! | `MOD(a, b)` | the remainder of `a / b` for integers, as `a % b`; NULL if either is NULL; an error if `b` is 0 |

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

/// Every function of this module, to register on a session.
pub fn flink_functions() -> Vec<ScalarUDF> {
    vec![modulo()]
}

/// `MOD(a BIGINT, b BIGINT) -> BIGINT` (smaller integer types are widened).
fn modulo() -> ScalarUDF {
    create_udf(
        "mod",
        vec![DataType::Int64, DataType::Int64],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let rows = args.iter().find_map(|a| match a {
                ColumnarValue::Array(a) => Some(a.len()),
                ColumnarValue::Scalar(_) => None,
            });
            let arrays: Vec<ArrayRef> = args
                .iter()
                .map(|a| a.to_array(rows.unwrap_or(1)))
                .collect::<Result<_>>()?;
            let result = arrow::compute::kernels::numeric::rem(&arrays[0], &arrays[1])
                .map_err(|e| DataFusionError::Execution(format!("MOD: {e}")))?;
            Ok(match rows {
                Some(_) => ColumnarValue::Array(result),
                None => ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(
                    &result, 0,
                )?),
            })
        }),
    )
}

#[cfg(test)]
mod tests {
    use crate::Session;

    #[tokio::test]
    async fn mod_is_the_integer_remainder() {
        let s = Session::new();
        let batches = s
            .sql("SELECT MOD(17, 5) AS a, MOD(-7, 3) AS b, MOD(x, 4) AS c FROM (VALUES (10), (NULL)) t(x)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(text.contains("| 2 | -1 | 2 |"), "{text}");
        assert!(text.contains("| 2 | -1 |   |"), "{text}");
        let e = s.sql("SELECT MOD(1, 0)").await;
        let e = match e {
            Ok(r) => r.collect().await.unwrap_err(),
            Err(e) => e,
        };
        assert!(e.message.contains("Divide by zero"), "{e}");
    }
}

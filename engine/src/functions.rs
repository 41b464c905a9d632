//! Flink SQL functions that DataFusion does not have, so Flink queries run
//! unchanged. Each is a vectorized DataFusion scalar UDF.
//!
//! | function | meaning (Flink's "System (Built-in) Functions") |
//! |---|---|
//! | `MOD(a, b)` | the remainder of `a / b`, as `a % b`, in the arguments' common numeric type (integers, unsigned, decimals, floats); negative only when `a` is; NULL if either is NULL; an error if `b` is an integer or decimal 0 |
//! | `SPLIT_INDEX(s, sep, i)` | `s` split by the string `sep`, the `i`-th part (0-based); NULL if `i` is negative or past the last part, or any argument is NULL |
//! | `REGEXP_EXTRACT(s, regex, i)` | group `i` (0 = the whole match) of the first match of the Java-style `regex` in `s`; NULL if there is no match, no such group, or any argument is NULL; an invalid regex is an error |

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::type_coercion::binary::binary_numeric_coercion;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, create_udf,
};

/// Every function of this module, to register on a session.
pub fn flink_functions() -> Vec<ScalarUDF> {
    vec![modulo(), split_index(), regexp_extract()]
}

/// The rows of a string function's arguments: `(strings, strings, indices)`
/// as arrays of `rows` (scalars repeated), and whether all were scalars.
fn string_args(args: &[ColumnarValue]) -> Result<(ArrayRef, ArrayRef, ArrayRef, bool)> {
    let rows = args.iter().find_map(|a| match a {
        ColumnarValue::Array(a) => Some(a.len()),
        ColumnarValue::Scalar(_) => None,
    });
    let n = rows.unwrap_or(1);
    let arrays = args
        .iter()
        .map(|a| a.to_array(n))
        .collect::<Result<Vec<_>>>()?;
    Ok((
        arrays[0].clone(),
        arrays[1].clone(),
        arrays[2].clone(),
        rows.is_none(),
    ))
}

/// A string result, as a scalar when every argument was one.
fn string_result(values: arrow::array::StringArray, scalar: bool) -> Result<ColumnarValue> {
    let values: ArrayRef = Arc::new(values);
    Ok(if scalar {
        ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&values, 0)?)
    } else {
        ColumnarValue::Array(values)
    })
}

/// `SPLIT_INDEX(s STRING, sep STRING, i INT) -> STRING` (Flink): the
/// `i`-th (from 0) field of `s` split at `sep`; NULL past the last field or
/// for a negative `i`. Splitting has no Arrow kernel, so it goes row by row.
fn split_index() -> ScalarUDF {
    create_udf(
        "split_index",
        vec![DataType::Utf8, DataType::Utf8, DataType::Int64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            use arrow::array::{Array, AsArray};
            use arrow::datatypes::Int64Type;
            let (s, sep, i, scalar) = string_args(args)?;
            let (s, sep, i) = (
                s.as_string::<i32>(),
                sep.as_string::<i32>(),
                i.as_primitive::<Int64Type>(),
            );
            let out: arrow::array::StringArray = (0..s.len())
                .map(|r| {
                    if s.is_null(r) || sep.is_null(r) || i.is_null(r) {
                        return None;
                    }
                    let index = usize::try_from(i.value(r)).ok()?;
                    let sep = sep.value(r);
                    if sep.is_empty() {
                        return (index == 0).then(|| s.value(r));
                    }
                    // One ASCII byte (the usual '/', ',', ...): a plain scan
                    // that stops at the field (fields are short: a memchr
                    // call per field costs more than it saves); other
                    // separators need the general substring search.
                    match sep.as_bytes() {
                        [byte] => nth_field(s.value(r), *byte, index),
                        _ => s.value(r).split(sep).nth(index),
                    }
                })
                .collect();
            string_result(out, scalar)
        }),
    )
}

/// The `index`-th (from 0) field of `s` split at the ASCII byte `sep`
/// (None past the last field). Any slice at an ASCII byte is on a
/// character boundary.
fn nth_field(s: &str, sep: u8, index: usize) -> Option<&str> {
    let mut start = 0;
    let mut field = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if b == sep {
            if field == index {
                return s.get(start..i);
            }
            field += 1;
            start = i + 1;
        }
    }
    if field == index { s.get(start..) } else { None }
}

/// `REGEXP_EXTRACT(s STRING, regex STRING, i INT) -> STRING` (Flink). The
/// regex is compiled once per distinct pattern in a batch (usually once).
fn regexp_extract() -> ScalarUDF {
    create_udf(
        "regexp_extract",
        vec![DataType::Utf8, DataType::Utf8, DataType::Int64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            use arrow::array::{Array, AsArray};
            use arrow::datatypes::Int64Type;
            let (s, pattern, i, scalar) = string_args(args)?;
            let (s, pattern, i) = (
                s.as_string::<i32>(),
                pattern.as_string::<i32>(),
                i.as_primitive::<Int64Type>(),
            );
            let mut compiled: Option<(String, regex::Regex)> = None;
            let mut out = arrow::array::StringBuilder::with_capacity(s.len(), 0);
            for r in 0..s.len() {
                if s.is_null(r) || pattern.is_null(r) || i.is_null(r) {
                    out.append_null();
                    continue;
                }
                let p = pattern.value(r);
                let re = match &mut compiled {
                    Some((text, re)) if text == p => re,
                    _ => {
                        let re = regex::Regex::new(p).map_err(|e| {
                            DataFusionError::Execution(format!(
                                "REGEXP_EXTRACT: invalid regular expression '{p}': {e}"
                            ))
                        })?;
                        &mut compiled.insert((p.to_string(), re)).1
                    }
                };
                let group = usize::try_from(i.value(r)).ok();
                let found = group.and_then(|g| re.captures(s.value(r))?.get(g));
                match found {
                    Some(m) => out.append_value(m.as_str()),
                    None => out.append_null(),
                }
            }
            string_result(out.finish(), scalar)
        }),
    )
}

/// `MOD(a, b)` (Flink): the remainder of `a / b`, of the two numeric
/// arguments' common type (DataFusion's numeric coercion, as for `%`:
/// `MOD(BIGINT UNSIGNED, BIGINT)` is a `DECIMAL(20, 0)`, `MOD(DECIMAL, INT)` a decimal).
fn modulo() -> ScalarUDF {
    ScalarUDF::new_from_impl(Modulo {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Modulo {
    signature: Signature,
}

impl ScalarUDFImpl for Modulo {
    fn name(&self) -> &str {
        "mod"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Both arguments to their common numeric type; an error naming the
    /// types when either is not a number.
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [a, b] = arg_types else {
            return Err(DataFusionError::Plan(format!(
                "MOD takes 2 arguments, got {}",
                arg_types.len()
            )));
        };
        let common = match (a, b) {
            (DataType::Null, DataType::Null) => DataType::Int64,
            (DataType::Null, t) | (t, DataType::Null) => t.clone(),
            _ => binary_numeric_coercion(a, b).ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "MOD needs two numbers, got MOD({a}, {b}); cast the arguments to a numeric type"
                ))
            })?,
        };
        Ok(vec![common.clone(), common])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        arg_types
            .first()
            .cloned()
            .ok_or_else(|| DataFusionError::Plan("MOD takes 2 arguments, got none".to_string()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.args.iter().find_map(|a| match a {
            ColumnarValue::Array(a) => Some(a.len()),
            ColumnarValue::Scalar(_) => None,
        });
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows.unwrap_or(1)))
            .collect::<Result<_>>()?;
        let result = arrow::compute::kernels::numeric::rem(&arrays[0], &arrays[1])
            .map_err(|e| DataFusionError::Execution(format!("MOD: {e}")))?;
        Ok(match rows {
            Some(_) => ColumnarValue::Array(result),
            None => {
                ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&result, 0)?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::Session;
    use arrow::record_batch::RecordBatch;

    /// The batches of `sql` and their pretty-printed text.
    async fn run(s: &Session, sql: &str) -> (Vec<RecordBatch>, String) {
        let batches = s.sql(sql).await.unwrap().collect().await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        (batches, text)
    }

    #[tokio::test]
    async fn mod_is_the_integer_remainder() {
        let s = Session::new();
        let (_, text) = run(&s, "SELECT MOD(17, 5) AS a, MOD(-7, 3) AS b, MOD(x, 4) AS c FROM (VALUES (10), (NULL)) t(x)").await;
        assert!(text.contains("| 2 | -1 | 2 |"), "{text}");
        assert!(text.contains("| 2 | -1 |   |"), "{text}");
        let e = s.sql("SELECT MOD(1, 0)").await;
        let e = match e {
            Ok(r) => r.collect().await.unwrap_err(),
            Err(e) => e,
        };
        assert!(e.message.contains("Divide by zero"), "{e}");
    }

    #[tokio::test]
    async fn mod_takes_any_two_numbers_in_their_common_type() {
        let s = Session::new();
        let batches = s
            .sql(
                "SELECT MOD(CAST(17 AS BIGINT UNSIGNED), 5) AS u, MOD(CAST(7.5 AS DECIMAL(4, 1)), 2) AS d,
                        MOD(CAST(-7.5 AS DOUBLE), 2) AS f, MOD(CAST(9 AS TINYINT), CAST(4 AS SMALLINT)) AS t",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let schema = batches[0].schema();
        let types: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| f.data_type().to_string())
            .collect();
        // As `%` types them: an unsigned and a signed BIGINT meet in
        // DECIMAL(20, 0), a decimal and a BIGINT in a wider decimal.
        assert_eq!(
            types,
            ["Decimal128(20, 0)", "Decimal128(21, 1)", "Float64", "Int16"]
        );
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(text.contains("| 2 | 1.5 | -1.5 | 1 |"), "{text}");
        let e = s.sql("SELECT MOD('a', 2)").await.unwrap_err();
        assert!(e.message.contains("MOD needs two numbers"), "{e}");
    }

    #[tokio::test]
    async fn split_index_and_regexp_extract_follow_flink() {
        use arrow::array::Array;
        let s = Session::new();
        let (batches, text) = run(&s, "SELECT SPLIT_INDEX(u, '/', 3) AS a, SPLIT_INDEX(u, '/', 9) AS b, SPLIT_INDEX(u, '/', -1) AS c,
                        REGEXP_EXTRACT(u, '(&|^|\\?)channel_id=([^&]*)', 2) AS d, REGEXP_EXTRACT(u, 'x(y)', 1) AS e
                 FROM (VALUES ('https://www.nexmark.com/abc/def/item.htm?query=1&channel_id=1234')) t(u)",).await;
        assert!(text.contains("| abc |   |   | 1234 |   |"), "{text}");
        // b and c (index past the end, negative) and e (no match) are NULL
        for column in [1, 2, 4] {
            assert!(batches[0].column(column).is_null(0), "{text}");
        }
        // A separator of several characters, and one of several bytes.
        let (_, text) = run(&s, "SELECT SPLIT_INDEX('a::b::c', '::', 1) AS m, SPLIT_INDEX('x→y→z', '→', 2) AS u, SPLIT_INDEX('p/q', '/', 0) AS f").await;
        assert!(text.contains("| b | z | p |"), "{text}");
        assert_eq!(super::nth_field("/a//b/", b'/', 0), Some(""));
        assert_eq!(super::nth_field("/a//b/", b'/', 2), Some(""));
        assert_eq!(super::nth_field("/a//b/", b'/', 3), Some("b"));
        assert_eq!(super::nth_field("/a//b/", b'/', 4), Some(""));
        assert_eq!(super::nth_field("/a//b/", b'/', 5), None);
        assert_eq!(super::nth_field("", b'/', 0), Some(""));
        let e = s.sql("SELECT REGEXP_EXTRACT('a', '(', 0)").await;
        let e = match e {
            Ok(r) => r.collect().await.unwrap_err(),
            Err(e) => e,
        };
        assert!(e.message.contains("invalid regular expression"), "{e}");
    }
}

//! `to_char(ts, format)` (alias `date_format`) as DataFusion computes it,
//! with the common case made cheap: a `TIMESTAMP` (no time zone) or `DATE`
//! column and a constant format.
//!
//! Why: DataFusion's `to_char` hands each value to Arrow's display code,
//! which passes the format *string* to chrono, so every row parses the
//! format again; in Nexmark q15 / q17 (`to_char(datetime, '%Y-%m-%d')` over
//! every bid) that was a fifth of the query's CPU time. Here the format is
//! parsed once per batch into chrono items, and when it shows nothing finer
//! than the day (or the minute), a run of rows in the same day (minute) is
//! formatted once — event times arrive nearly in order, so most rows reuse
//! the previous row's text.
//!
//! Every other case (a time zone, a format column, time or duration input,
//! a format chrono cannot parse) goes to DataFusion's own `to_char`, so the
//! results and the errors are its own: the fast path formats with the same
//! chrono items Arrow's display code would parse from the string.

use std::fmt::Write;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use chrono::NaiveDateTime;
use chrono::format::{Fixed, Item, Numeric, StrftimeItems};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};

/// The `to_char` UDF to register in place of DataFusion's (same name,
/// aliases, signature and results).
pub fn to_char() -> ScalarUDF {
    ScalarUDF::new_from_impl(ToChar {
        inner: datafusion::functions::datetime::to_char(),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ToChar {
    /// DataFusion's `to_char`, for everything the fast path does not take.
    inner: Arc<ScalarUDF>,
}

impl ScalarUDFImpl for ToChar {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let [ColumnarValue::Array(values), ColumnarValue::Scalar(format)] = args.args.as_slice()
            && let ScalarValue::Utf8(Some(format))
            | ScalarValue::Utf8View(Some(format))
            | ScalarValue::LargeUtf8(Some(format)) = format
            && let Some(out) = format_column(values, format)
        {
            return Ok(ColumnarValue::Array(out));
        }
        self.inner.invoke_with_args(args)
    }
}

/// `values` formatted with `format`, or None when the fast path does not
/// apply (the caller then asks DataFusion).
fn format_column(values: &ArrayRef, format: &str) -> Option<ArrayRef> {
    let items: Vec<Item<'_>> = StrftimeItems::new(format).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return None;
    }
    let coarsest = granularity(&items)?;
    // Units of the column per second; a date-only format reads a date as
    // its midnight in milliseconds (`Date64`), so one path formats both.
    let units_per_second: i64 = match values.data_type() {
        DataType::Timestamp(TimeUnit::Second, None) => 1,
        DataType::Timestamp(TimeUnit::Millisecond, None) => 1_000,
        DataType::Timestamp(TimeUnit::Microsecond, None) => 1_000_000,
        DataType::Timestamp(TimeUnit::Nanosecond, None) => 1_000_000_000,
        DataType::Date32 if coarsest == Some(86_400) => 1_000,
        _ => return None,
    };
    let values = match values.data_type() {
        DataType::Date32 => cast(values, &DataType::Date64).ok()?,
        _ => values.clone(),
    };
    // A timestamp's (or `Date64`'s) units as plain integers (no copy).
    let units = cast(&values, &DataType::Int64).ok()?;
    let units = units.as_primitive::<Int64Type>();
    let mut out = StringBuilder::with_capacity(units.len(), units.len() * (format.len() + 8));
    // The granule (day or minute number) of the last formatted row; `text`
    // is its text.
    let mut last: Option<i64> = None;
    let mut text = String::new();
    for value in units.iter() {
        let Some(value) = value else {
            out.append_null();
            continue;
        };
        let granule = coarsest.map(|seconds| value.div_euclid(seconds * units_per_second));
        if granule.is_none() || granule != last {
            let at = datetime(value, units_per_second)?;
            text.clear();
            write!(text, "{}", at.format_with_items(items.iter())).ok()?;
            last = granule;
        }
        out.append_value(&text);
    }
    Some(Arc::new(out.finish()))
}

/// `value` units of `1 / units_per_second` s since the epoch, as a naive
/// date-time (None out of chrono's range).
fn datetime(value: i64, units_per_second: i64) -> Option<NaiveDateTime> {
    let secs = value.div_euclid(units_per_second);
    let sub = value.rem_euclid(units_per_second);
    let nanos = sub * (1_000_000_000 / units_per_second);
    chrono::DateTime::from_timestamp(secs, u32::try_from(nanos).ok()?).map(|d| d.naive_utc())
}

/// The span (s) within which `items` show the same text — 86,400 when they
/// show only the date, 60 when nothing finer than the minute — or
/// `Some(None)` for finer formats; None for an item the fast path does not
/// know.
fn granularity(items: &[Item<'_>]) -> Option<Option<i64>> {
    let mut span = 86_400;
    for item in items {
        let item_span = match item {
            Item::Literal(_) | Item::OwnedLiteral(_) | Item::Space(_) | Item::OwnedSpace(_) => {
                86_400
            }
            Item::Numeric(n, _) => match n {
                Numeric::Year
                | Numeric::YearDiv100
                | Numeric::YearMod100
                | Numeric::IsoYear
                | Numeric::IsoYearDiv100
                | Numeric::IsoYearMod100
                | Numeric::Month
                | Numeric::Day
                | Numeric::WeekFromSun
                | Numeric::WeekFromMon
                | Numeric::IsoWeek
                | Numeric::NumDaysFromSun
                | Numeric::WeekdayFromMon
                | Numeric::Ordinal => 86_400,
                Numeric::Hour | Numeric::Hour12 | Numeric::Minute => 60,
                _ => 0,
            },
            Item::Fixed(f) => match f {
                Fixed::ShortMonthName
                | Fixed::LongMonthName
                | Fixed::ShortWeekdayName
                | Fixed::LongWeekdayName => 86_400,
                Fixed::LowerAmPm | Fixed::UpperAmPm => 60,
                _ => 0,
            },
            _ => return None,
        };
        span = span.min(item_span);
    }
    Some((span > 0).then_some(span))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, TimestampMillisecondArray, TimestampSecondArray};
    use arrow::datatypes::Field;
    use datafusion::config::ConfigOptions;

    fn call(udf: &ScalarUDF, values: ArrayRef, format: &str) -> Result<ArrayRef> {
        let rows = values.len();
        let args = ScalarFunctionArgs {
            arg_fields: vec![
                Arc::new(Field::new("v", values.data_type().clone(), true)),
                Arc::new(Field::new("f", DataType::Utf8, false)),
            ],
            args: vec![
                ColumnarValue::Array(values),
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(format.into()))),
            ],
            number_rows: rows,
            return_field: Arc::new(Field::new("out", DataType::Utf8, true)),
            config_options: Arc::new(ConfigOptions::default()),
        };
        udf.invoke_with_args(args)?.into_array(rows)
    }

    /// Ours and DataFusion's `to_char` give the same column (or both fail).
    fn assert_same(values: ArrayRef, format: &str) {
        let ours = call(&to_char(), values.clone(), format);
        let theirs = call(&datafusion::functions::datetime::to_char(), values, format);
        match (ours, theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a.as_ref(), b.as_ref(), "format {format:?}"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("format {format:?}: ours {a:?}, DataFusion's {b:?}"),
        }
    }

    #[test]
    fn timestamps_and_dates_format_as_datafusion_does() {
        // Runs within a minute and a day, day and minute boundaries,
        // before the epoch, NULLs, out of order.
        let ms: Vec<Option<i64>> = vec![
            Some(1_672_531_200_000),
            Some(1_672_531_200_001),
            Some(1_672_531_259_999),
            Some(1_672_531_260_000),
            None,
            Some(1_672_617_599_999),
            Some(1_672_617_600_000),
            Some(1_672_531_200_500),
            Some(-1),
            Some(-86_400_001),
            Some(0),
        ];
        let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(ms.clone()));
        let secs: ArrayRef = Arc::new(TimestampSecondArray::from(
            ms.iter().map(|v| v.map(|v| v / 1000)).collect::<Vec<_>>(),
        ));
        let dates: ArrayRef = Arc::new(Date32Array::from(vec![
            Some(19_358),
            Some(19_358),
            None,
            Some(-1),
            Some(0),
            Some(19_359),
        ]));
        for format in [
            "%Y-%m-%d",
            "%H:%M",
            "%Y-%m-%d %H:%M:%S%.3f",
            "%A, %d %B %Y (day %j, week %U)",
            "%I:%M %p",
            "plain text",
            "%s",
            "%Q is not a specifier",
        ] {
            assert_same(ts.clone(), format);
            assert_same(secs.clone(), format);
            assert_same(dates.clone(), format);
        }
    }

    #[test]
    fn only_date_and_minute_formats_reuse_the_previous_rows_text() {
        fn items(f: &str) -> Vec<Item<'_>> {
            StrftimeItems::new(f).collect()
        }
        assert_eq!(granularity(&items("%Y-%m-%d")), Some(Some(86_400)));
        assert_eq!(granularity(&items("%d %b %H:%M")), Some(Some(60)));
        assert_eq!(granularity(&items("%H:%M:%S")), Some(None));
        assert_eq!(granularity(&items("%Y %Z")), Some(None));
    }
}

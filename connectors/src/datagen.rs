//! The `datagen` connector: a source that makes up rows, with Flink's
//! options (<https://nightlies.apache.org/flink/flink-docs-stable/docs/connectors/table/datagen/>).
//!
//! ```sql
//! CREATE TABLE orders (id BIGINT, customer STRING, price DECIMAL(10, 2), ts TIMESTAMP(3))
//! WITH (
//!   'connector' = 'datagen',
//!   'rows-per-second' = '1000',
//!   'number-of-rows' = '100000',
//!   'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '100000',
//!   'fields.customer.length' = '8',
//!   'fields.price.min' = '1.00', 'fields.price.max' = '500.00',
//!   'fields.ts.max-past' = '10 min'
//! );
//! ```
//!
//! Why: examples, demos, benchmarks and tests need data of a given shape and
//! rate without files or a message broker, and a Flink DDL statement that
//! uses `datagen` should work here unchanged.
//!
//! # Options
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `rows-per-second` | `10000` | rows emitted per second of wall-clock time (a positive integer) |
//! | `number-of-rows` | unset (unbounded) | emit exactly this many rows, then end |
//! | `seed` | unset (new each scan) | **Tributary's own**: seed of the random values, so a scan repeats |
//! | `fields.<col>.kind` | `random` | `random` or `sequence` |
//! | `fields.<col>.start`, `.end` | required for `sequence` | the sequence is `start..=end`, each value once |
//! | `fields.<col>.min`, `.max` | the type's range | bounds (inclusive) of random numbers |
//! | `fields.<col>.length` | `100` | length of random strings, in characters |
//! | `fields.<col>.var-len` | `false` | random strings of a random length in `1..=length` |
//! | `fields.<col>.null-rate` | `0` | the share of NULLs in a random column, in `[0, 1]` |
//! | `fields.<col>.max-past` | `0` | random timestamps fall in `[now - max-past, now]` |
//!
//! Which `fields.<col>.*` keys a column takes depends on its type and kind,
//! and any other key is an error that lists the valid ones (as Flink rejects
//! an option no generator consumed).
//!
//! # Types and values
//!
//! * TINYINT, SMALLINT, INT, BIGINT (also UNSIGNED): uniform in `[min, max]`,
//!   by default the type's whole range; a sequence counts up by one.
//! * FLOAT, DOUBLE: uniform in `[min, max]`; Flink's defaults, the smallest
//!   positive value to the largest finite one. A sequence counts up by one;
//!   its ends must be exact in the type (at most 2^24 / 2^53 in magnitude).
//! * DECIMAL(p, s), p ≤ 38: uniform over the multiples of 10^-s in
//!   `[min, max]`, by default `[0, 10^(p-s) - 10^-s]` (Flink's default starts
//!   at `Double.MIN_VALUE`, which rounds to 0).
//! * BOOLEAN: true or false with equal chance.
//! * STRING / VARCHAR / CHAR: `length` random lower-case hex digits (Flink's
//!   generator also writes hex); a sequence writes the number in decimal.
//!   The Arrow type is the declared one (Utf8, LargeUtf8 or Utf8View).
//! * TIMESTAMP(p) and TIMESTAMP_LTZ(p), any precision: uniform in
//!   `[now - max-past, now]` (UTC wall clock at the time the batch is made).
//!   No sequence (Flink has none for timestamps).
//! * DATE: the UTC date of a random instant in `[now - max-past, now]`
//!   (Flink always writes today; `max-past` on a DATE is Tributary's).
//!
//! Any other type is an error at `CREATE TABLE`.
//!
//! # Boundedness
//!
//! The source ends after `number-of-rows` rows, or when the shortest
//! sequence column is exhausted, whichever comes first (as Flink's source
//! does); without either it never ends. [`DataGenTable::boundedness`]
//! reports exactly that: bounded iff `number-of-rows` is set or some column
//! is a sequence. (Flink's planner only calls the table bounded when
//! `number-of-rows` is set, although its source ends with a sequence too;
//! we report what the source does, so a query over a sequence can run in
//! BATCH mode.)
//!
//! # Execution
//!
//! One partition (the rate is a per-table rate, and each sequence value is
//! emitted exactly once without coordination between partitions). Batches
//! are built column by column, up to `datafusion.execution.batch_size` rows
//! and at most `rows-per-second` rows each, so the pacing stays smooth: the
//! batch holding row `k` is released no earlier than `k / rows-per-second`
//! seconds after the first poll (`tokio::time`). Only the projected columns
//! are generated. The stream does its work when polled, so dropping it (a
//! satisfied `LIMIT`, a cancelled query) stops the generator at once; a
//! `LIMIT` pushed into the scan also caps the rows the generator makes.
//!
//! Random values come from a splitmix64 generator per column (one stream for
//! values, one for nulls) seeded from `seed` and the column's position, so a
//! column's values depend neither on the projection nor on the batch size.
//! Timestamps and dates are relative to the wall clock, so they repeat only
//! in their distance from "now".

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::array::{
    ArrayRef, BooleanArray, GenericStringArray, OffsetSizeTrait, PrimitiveArray, RecordBatch,
    RecordBatchOptions, StringViewArray,
};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal32Type, Decimal64Type, Decimal128Type, Float32Type,
    Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, SchemaRef, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};

use crate::options::invalid;
use crate::{Boundedness, ConnectorError, TableOptions, sql_type_name};

/// `rows-per-second` when the option is not set (Flink's default).
pub const DEFAULT_ROWS_PER_SECOND: u64 = 10_000;

/// `fields.<col>.length` when the option is not set (Flink's default), in characters.
pub const DEFAULT_STRING_LENGTH: usize = 100;

/// The table-level option keys.
const TABLE_KEYS: &[&str] = &["connector", "rows-per-second", "number-of-rows", "seed"];

/// The types a datagen column can have, for error messages.
const SUPPORTED_TYPES: &str = "TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, DECIMAL(p, s) with p <= 38, BOOLEAN, STRING/VARCHAR, DATE, TIMESTAMP(p)";

/// At most this many bytes of string data per column per batch, so one batch
/// of long strings stays of a sane size (and within i32 offsets).
const MAX_STRING_BYTES_PER_BATCH: usize = 64 << 20;

const NANOS_PER_DAY: i128 = 86_400_000_000_000;

/// A `datagen` connector table: rows made up from the declared columns'
/// types and the `fields.<col>.*` options.
///
/// Schema: the declared columns (required). One partition. Bounded iff
/// `number-of-rows` is set or a column is a sequence (see the module docs).
#[derive(Debug)]
pub struct DataGenTable {
    name: String,
    schema: SchemaRef,
    options: TableOptions,
    rows_per_second: u64,
    number_of_rows: Option<u64>,
    seed: Option<u64>,
    columns: Vec<ColumnGen>,
}

/// How one column is generated.
#[derive(Debug, Clone)]
struct ColumnGen {
    data_type: DataType,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// `start..=end`, one value per row, in order.
    Sequence { start: i64, end: i64 },
    /// Independent random values, NULL with probability `null_rate`.
    Random { null_rate: f64, spec: RandomSpec },
}

#[derive(Debug, Clone)]
enum RandomSpec {
    /// Integers in `[min, max]`; for decimals the unscaled values.
    Integer {
        min: i128,
        max: i128,
    },
    /// Floats in `[min, max]`.
    Float {
        min: f64,
        max: f64,
    },
    Bool,
    /// Hex strings of `length` characters (`1..=length` with `var_len`).
    Str {
        length: usize,
        var_len: bool,
    },
    /// Instants in `[now - max_past_ns, now]`, written as a timestamp or a date.
    Time {
        max_past_ns: i64,
    },
}

/// What a column's type allows.
#[derive(Debug, Clone, Copy, PartialEq)]
enum TypeClass {
    /// An integer type and its range.
    Integer {
        min: i128,
        max: i128,
    },
    /// FLOAT or DOUBLE; `exact` is the largest magnitude up to which every
    /// integer is exact (for sequences).
    Float {
        exact: i64,
        max: f64,
        min_positive: f64,
    },
    /// A decimal: precision and scale.
    Decimal {
        precision: u8,
        scale: i8,
    },
    Bool,
    Str,
    Timestamp,
    Date,
}

impl TypeClass {
    fn of(t: &DataType) -> Option<Self> {
        let int = |min: i128, max: i128| Some(TypeClass::Integer { min, max });
        match t {
            DataType::Int8 => int(i8::MIN.into(), i8::MAX.into()),
            DataType::Int16 => int(i16::MIN.into(), i16::MAX.into()),
            DataType::Int32 => int(i32::MIN.into(), i32::MAX.into()),
            DataType::Int64 => int(i64::MIN.into(), i64::MAX.into()),
            DataType::UInt8 => int(0, u8::MAX.into()),
            DataType::UInt16 => int(0, u16::MAX.into()),
            DataType::UInt32 => int(0, u32::MAX.into()),
            DataType::UInt64 => int(0, u64::MAX.into()),
            DataType::Float32 => Some(TypeClass::Float {
                exact: 1 << f32::MANTISSA_DIGITS,
                max: f32::MAX.into(),
                min_positive: 1e-45,
            }),
            DataType::Float64 => Some(TypeClass::Float {
                exact: 1 << f64::MANTISSA_DIGITS,
                max: f64::MAX,
                min_positive: 5e-324,
            }),
            DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s)
                if *s >= 0 =>
            {
                Some(TypeClass::Decimal {
                    precision: *p,
                    scale: *s,
                })
            }
            DataType::Boolean => Some(TypeClass::Bool),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(TypeClass::Str),
            DataType::Timestamp(_, _) => Some(TypeClass::Timestamp),
            DataType::Date32 | DataType::Date64 => Some(TypeClass::Date),
            _ => None,
        }
    }

    fn allows_sequence(self) -> bool {
        !matches!(
            self,
            TypeClass::Bool | TypeClass::Timestamp | TypeClass::Date
        )
    }

    /// The `fields.<col>.*` properties of a random column of this class.
    fn random_properties(self) -> &'static [&'static str] {
        match self {
            TypeClass::Integer { .. } | TypeClass::Float { .. } | TypeClass::Decimal { .. } => {
                &["min", "max", "null-rate"]
            }
            TypeClass::Str => &["length", "var-len", "null-rate"],
            TypeClass::Timestamp | TypeClass::Date => &["max-past", "null-rate"],
            TypeClass::Bool => &["null-rate"],
        }
    }
}

impl DataGenTable {
    /// Creates the table from its declared columns and `WITH` options (see
    /// the module docs for the options and their defaults).
    ///
    /// # Errors
    /// * [`ConnectorError::Inference`] when `schema` is `None`: datagen has no
    ///   data to infer columns from, so they must be declared.
    /// * A [`DataFusionError::NotImplemented`] (wrapped) for a column type
    ///   datagen cannot generate, naming the column and the supported types.
    /// * [`ConnectorError::UnknownOption`] for a key that is not a table
    ///   option nor a `fields.<col>.<property>` valid for that column's type
    ///   and kind (including unknown column names), with the nearest valid key
    ///   and the list of all valid keys.
    /// * [`ConnectorError::InvalidOption`] for a value that does not parse or
    ///   is out of range: `rows-per-second` not a positive integer, a kind
    ///   other than `random` / `sequence` (or `sequence` on a BOOLEAN, DATE or
    ///   TIMESTAMP column), `min > max`, `start > end`, a bound outside the
    ///   column's type, `null-rate` outside `[0, 1]`, a malformed `max-past`.
    /// * [`ConnectorError::MissingOption`] for a sequence column without
    ///   `fields.<col>.start` or `fields.<col>.end`.
    pub fn try_new(
        name: &str,
        schema: Option<SchemaRef>,
        options: TableOptions,
    ) -> Result<Self, ConnectorError> {
        let schema = schema.ok_or_else(|| ConnectorError::Inference {
            table: name.into(),
            message: "the datagen connector generates values for declared columns and has no data to read them from"
                .into(),
        })?;
        let classes = schema
            .fields()
            .iter()
            .map(|f| {
                TypeClass::of(f.data_type()).ok_or_else(|| {
                    ConnectorError::DataFusion(DataFusionError::NotImplemented(format!(
                        "table '{name}': column '{}' has type {}, which the datagen connector cannot generate; supported types: {SUPPORTED_TYPES}",
                        f.name(),
                        sql_type_name(f.data_type())
                    )))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let options = canonical_keys(&options, &schema);
        let o = Opts {
            table: name,
            options: &options,
        };

        // Kinds first: which other keys are valid depends on them.
        let mut sequence = Vec::with_capacity(classes.len());
        for (field, class) in schema.fields().iter().zip(&classes) {
            let key = field_key(field.name(), "kind");
            let is_sequence = match options.get(&key) {
                None => false,
                Some(v) if v.eq_ignore_ascii_case("random") => false,
                Some(v) if v.eq_ignore_ascii_case("sequence") => {
                    if !class.allows_sequence() {
                        return Err(invalid(
                            name,
                            &key,
                            v,
                            &format!(
                                "'random': a {} column cannot be a sequence (sequences are for numbers and strings)",
                                sql_type_name(field.data_type())
                            ),
                        ));
                    }
                    true
                }
                Some(v) => return Err(invalid(name, &key, v, "'random' or 'sequence'")),
            };
            sequence.push(is_sequence);
        }

        let mut valid: Vec<String> = TABLE_KEYS.iter().map(|s| s.to_string()).collect();
        for ((field, class), is_sequence) in schema.fields().iter().zip(&classes).zip(&sequence) {
            let properties: &[&str] = if *is_sequence {
                &["start", "end"]
            } else {
                class.random_properties()
            };
            valid.push(field_key(field.name(), "kind"));
            valid.extend(properties.iter().map(|p| field_key(field.name(), p)));
        }
        options.check_keys(
            name,
            "datagen",
            &valid.iter().map(String::as_str).collect::<Vec<_>>(),
        )?;

        let rows_per_second = match options.get("rows-per-second") {
            None => DEFAULT_ROWS_PER_SECOND,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(invalid(
                        name,
                        "rows-per-second",
                        v,
                        "a positive integer (rows emitted per second)",
                    ));
                }
            },
        };
        let number_of_rows = o.parse_opt::<u64>(
            "number-of-rows",
            "a non-negative integer (the rows to emit)",
        )?;
        let seed = o.parse_opt::<u64>("seed", "an unsigned 64-bit integer")?;

        let mut columns = Vec::with_capacity(classes.len());
        for ((field, class), is_sequence) in schema.fields().iter().zip(classes).zip(sequence) {
            let kind = if is_sequence {
                o.sequence(field.name(), class)?
            } else {
                Kind::Random {
                    null_rate: o.null_rate(field.name())?,
                    spec: o.random_spec(field.name(), field.data_type(), class)?,
                }
            };
            columns.push(ColumnGen {
                data_type: field.data_type().clone(),
                kind,
            });
        }

        Ok(Self {
            name: name.into(),
            schema,
            options,
            rows_per_second,
            number_of_rows,
            seed,
            columns,
        })
    }

    /// The table's name as declared.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `WITH` options as declared (keys naming a column in another case
    /// are rewritten to the column's name).
    pub fn options(&self) -> &TableOptions {
        &self.options
    }

    /// Rows emitted per second of wall-clock time.
    pub fn rows_per_second(&self) -> u64 {
        self.rows_per_second
    }

    /// The rows a full scan emits before it ends: the smaller of
    /// `number-of-rows` and the length of the shortest sequence column, or
    /// `None` when the source never ends.
    pub fn total_rows(&self) -> Option<u64> {
        let sequences = self.columns.iter().filter_map(|c| match c.kind {
            Kind::Sequence { start, end } => {
                Some(u64::try_from(i128::from(end) - i128::from(start) + 1).unwrap_or(u64::MAX))
            }
            Kind::Random { .. } => None,
        });
        sequences.chain(self.number_of_rows).min()
    }

    /// [`Boundedness::Bounded`] iff `number-of-rows` is set or some column is
    /// a sequence (the source then ends, see [`Self::total_rows`]); else
    /// [`Boundedness::Unbounded`].
    pub fn boundedness(&self) -> Boundedness {
        if self.total_rows().is_some() {
            Boundedness::Bounded
        } else {
            Boundedness::Unbounded
        }
    }
}

#[async_trait]
impl TableProvider for DataGenTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// One partition generating only the projected columns, in batches of at
    /// most `datafusion.execution.batch_size` and `rows-per-second` rows. A
    /// `limit` caps the rows generated (and makes the plan bounded, so
    /// DataFusion accepts pipeline breakers above it). Numeric sequence
    /// columns are declared sorted ascending.
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.columns.len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&indices)?);
        let total_rows = match (self.total_rows(), limit) {
            (Some(t), Some(l)) => Some(t.min(l as u64)),
            (t, l) => t.or(l.map(|l| l as u64)),
        };
        let mut orderings = Vec::new();
        for (position, &index) in indices.iter().enumerate() {
            let column = &self.columns[index];
            if matches!(column.kind, Kind::Sequence { .. })
                && !matches!(TypeClass::of(&column.data_type), Some(TypeClass::Str))
            {
                let expr = Arc::new(Column::new(schema.field(position).name(), position));
                orderings.extend(LexOrdering::new([PhysicalSortExpr::new_default(expr)]));
            }
        }
        let partition = DataGenPartition {
            schema: schema.clone(),
            columns: indices
                .iter()
                .map(|&i| (i, self.columns[i].clone()))
                .collect(),
            rows_per_second: self.rows_per_second,
            total_rows,
            batch_size: state.config().batch_size().max(1),
            seed: self.seed,
        };
        let infinite = total_rows.is_none();
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            vec![Arc::new(partition)],
            None,
            orderings,
            infinite,
            limit,
        )?))
    }
}

/// `fields.<column>.<property>`.
fn field_key(column: &str, property: &str) -> String {
    format!("fields.{column}.{property}")
}

/// The options with every `fields.<col>.<property>` key whose column matches
/// a declared column only ignoring case rewritten to the declared name (SQL
/// folds unquoted names to lower case, Flink's keys keep the DDL's case).
/// Keys that match no column, or more than one, are left as written.
fn canonical_keys(options: &TableOptions, schema: &SchemaRef) -> TableOptions {
    TableOptions::new(options.iter().map(|(key, value)| {
        let canonical = key
            .strip_prefix("fields.")
            .and_then(|rest| rest.rsplit_once('.'))
            .and_then(|(col, prop)| {
                if schema.fields().iter().any(|f| f.name() == col) {
                    return None;
                }
                let mut matches = schema
                    .fields()
                    .iter()
                    .filter(|f| f.name().eq_ignore_ascii_case(col));
                match (matches.next(), matches.next()) {
                    (Some(f), None) => Some(field_key(f.name(), prop)),
                    _ => None,
                }
            });
        (
            canonical.unwrap_or_else(|| key.to_string()),
            value.to_string(),
        )
    }))
}

/// Typed access to the options, with errors naming the key.
struct Opts<'a> {
    table: &'a str,
    options: &'a TableOptions,
}

impl Opts<'_> {
    fn parse_opt<T: std::str::FromStr>(
        &self,
        key: &str,
        expected: &str,
    ) -> Result<Option<T>, ConnectorError> {
        match self.options.get(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<T>()
                .map(Some)
                .map_err(|_| invalid(self.table, key, v, expected)),
        }
    }

    fn sequence(&self, column: &str, class: TypeClass) -> Result<Kind, ConnectorError> {
        let (start_key, end_key) = (field_key(column, "start"), field_key(column, "end"));
        let (lo, hi, range) = match class {
            TypeClass::Integer { min, max } => {
                let (lo, hi) = (
                    min.max(i64::MIN.into()) as i64,
                    max.min(i64::MAX.into()) as i64,
                );
                (lo, hi, format!("an integer in [{lo}, {hi}]"))
            }
            TypeClass::Float { exact, .. } => (
                -exact,
                exact,
                format!(
                    "an integer in [-{exact}, {exact}], where every value is exact in the type"
                ),
            ),
            TypeClass::Decimal { precision, scale } => {
                let max = (0..precision - scale as u8).fold(1i128, |a, _| a.saturating_mul(10)) - 1;
                let max = max.min(i64::MAX.into()) as i64;
                (
                    -max,
                    max,
                    format!(
                        "an integer in [-{max}, {max}], so that it fits DECIMAL({precision}, {scale})"
                    ),
                )
            }
            _ => (i64::MIN, i64::MAX, "an integer".to_string()),
        };
        let get = |key: &str| -> Result<i64, ConnectorError> {
            let v = self.options.get(key).ok_or_else(|| ConnectorError::MissingOption {
                table: self.table.into(),
                key: key.into(),
                hint: format!("a sequence column needs '{start_key}' and '{end_key}' (the sequence is start..=end)"),
            })?;
            match v.trim().parse::<i64>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(n),
                _ => Err(invalid(self.table, key, v, &range)),
            }
        };
        let (start, end) = (get(&start_key)?, get(&end_key)?);
        if start > end {
            let v = self.options.get(&end_key).unwrap_or_default();
            return Err(invalid(
                self.table,
                &end_key,
                v,
                &format!("an integer no less than '{start_key}' ({start})"),
            ));
        }
        Ok(Kind::Sequence { start, end })
    }

    fn null_rate(&self, column: &str) -> Result<f64, ConnectorError> {
        let key = field_key(column, "null-rate");
        match self.options.get(&key) {
            None => Ok(0.0),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(invalid(
                    self.table,
                    &key,
                    v,
                    "a number between 0 and 1 (the share of NULLs)",
                )),
            },
        }
    }

    fn random_spec(
        &self,
        column: &str,
        data_type: &DataType,
        class: TypeClass,
    ) -> Result<RandomSpec, ConnectorError> {
        let (min_key, max_key) = (field_key(column, "min"), field_key(column, "max"));
        let type_name = sql_type_name(data_type);
        Ok(match class {
            TypeClass::Integer { min, max } => {
                let expected = format!("an integer in [{min}, {max}] (the range of {type_name})");
                let bound = |key: &str, default: i128| -> Result<i128, ConnectorError> {
                    match self.options.get(key) {
                        None => Ok(default),
                        Some(v) => match v.trim().parse::<i128>() {
                            Ok(n) if (min..=max).contains(&n) => Ok(n),
                            _ => Err(invalid(self.table, key, v, &expected)),
                        },
                    }
                };
                let (lo, hi) = (bound(&min_key, min)?, bound(&max_key, max)?);
                self.check_order(&min_key, &max_key, lo > hi, &lo.to_string())?;
                RandomSpec::Integer { min: lo, max: hi }
            }
            TypeClass::Float {
                max, min_positive, ..
            } => {
                let expected = format!("a finite number within the range of {type_name}");
                let bound = |key: &str, default: f64| -> Result<f64, ConnectorError> {
                    match self.options.get(key) {
                        None => Ok(default),
                        Some(v) => match v.trim().parse::<f64>() {
                            Ok(n) if n.is_finite() && n.abs() <= max => Ok(n),
                            _ => Err(invalid(self.table, key, v, &expected)),
                        },
                    }
                };
                let (lo, hi) = (bound(&min_key, min_positive)?, bound(&max_key, max)?);
                self.check_order(&min_key, &max_key, lo > hi, &lo.to_string())?;
                RandomSpec::Float { min: lo, max: hi }
            }
            TypeClass::Decimal { precision, scale } => {
                let largest = (0..precision).fold(1i128, |a, _| a.saturating_mul(10)) - 1;
                let expected = format!("a decimal number that fits {type_name}");
                let bound = |key: &str, default: i128| -> Result<i128, ConnectorError> {
                    match self.options.get(key) {
                        None => Ok(default),
                        Some(v) => match arrow::compute::kernels::cast_utils::parse_decimal::<
                            Decimal128Type,
                        >(v.trim(), precision, scale)
                        {
                            Ok(n) if (-largest..=largest).contains(&n) => Ok(n),
                            _ => Err(invalid(self.table, key, v, &expected)),
                        },
                    }
                };
                let (lo, hi) = (bound(&min_key, 0)?, bound(&max_key, largest)?);
                let shown = self.options.get(&min_key).unwrap_or("0").to_string();
                self.check_order(&min_key, &max_key, lo > hi, &shown)?;
                RandomSpec::Integer { min: lo, max: hi }
            }
            TypeClass::Bool => RandomSpec::Bool,
            TypeClass::Str => {
                let key = field_key(column, "length");
                let length = match self.options.get(&key) {
                    None => DEFAULT_STRING_LENGTH,
                    Some(v) => match v.trim().parse::<usize>() {
                        Ok(n) if n <= i32::MAX as usize => n,
                        _ => {
                            return Err(invalid(
                                self.table,
                                &key,
                                v,
                                "a non-negative integer (characters)",
                            ));
                        }
                    },
                };
                RandomSpec::Str {
                    length,
                    var_len: self
                        .options
                        .bool(self.table, &field_key(column, "var-len"), false)?,
                }
            }
            TypeClass::Timestamp | TypeClass::Date => {
                let key = field_key(column, "max-past");
                let max_past_ns = match self.options.get(&key) {
                    None => 0,
                    Some(v) => parse_duration_ns(v).ok_or_else(|| {
                        invalid(
                            self.table,
                            &key,
                            v,
                            "a duration such as '5000' (milliseconds), '30 s', '10 min', '1 h' or '7 d'",
                        )
                    })?,
                };
                RandomSpec::Time { max_past_ns }
            }
        })
    }

    /// Errors on `min > max`, naming the `max` key.
    fn check_order(
        &self,
        min_key: &str,
        max_key: &str,
        reversed: bool,
        min_shown: &str,
    ) -> Result<(), ConnectorError> {
        if reversed {
            let v = self.options.get(max_key).unwrap_or_default();
            return Err(invalid(
                self.table,
                max_key,
                v,
                &format!("a value no less than '{min_key}' ({min_shown})"),
            ));
        }
        Ok(())
    }
}

/// A Flink duration: a non-negative integer with an optional unit (`ns`,
/// `us`, `ms`, `s`, `min`/`m`, `h`, `d` and their long forms; no unit means
/// milliseconds), in nanoseconds; `None` if malformed or beyond `i64` nanoseconds.
fn parse_duration_ns(text: &str) -> Option<i64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: i64 = text[..digits].parse().ok()?;
    let factor: i64 = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "ns" | "nano" | "nanos" | "nanosecond" | "nanoseconds" => 1,
        "us" | "µs" | "micro" | "micros" | "microsecond" | "microseconds" => 1_000,
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1_000_000,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000_000_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000_000_000,
        "h" | "hour" | "hours" => 3_600_000_000_000,
        "d" | "day" | "days" => 86_400_000_000_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// The splitmix64 generator (Steele, Lea, Flood 2014): tiny, fast, and good
/// enough for test data; not for anything secret.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    /// The stream `stream` of column `column` under `seed`.
    fn for_column(seed: u64, column: usize, stream: u64) -> Self {
        let mut mix = SplitMix64(
            seed ^ (column as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)
                ^ stream.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7),
        );
        SplitMix64(mix.next_u64())
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, max]` (rejection sampling under a bit mask: unbiased,
    /// fewer than two draws on average).
    fn up_to(&mut self, max: u128) -> u128 {
        if max == 0 {
            return 0;
        }
        if max <= u64::MAX as u128 {
            let max = max as u64;
            let mask = u64::MAX >> max.leading_zeros();
            loop {
                let r = self.next_u64() & mask;
                if r <= max {
                    return r as u128;
                }
            }
        }
        let mask = u128::MAX >> max.leading_zeros();
        loop {
            let r = ((self.next_u64() as u128) << 64 | self.next_u64() as u128) & mask;
            if r <= max {
                return r;
            }
        }
    }

    /// Uniform in `[min, max]`.
    fn between(&mut self, min: i128, max: i128) -> i128 {
        let span = max.wrapping_sub(min) as u128;
        (min as u128).wrapping_add(self.up_to(span)) as i128
    }
}

/// A seed for a scan without `seed`: different for every scan.
fn fresh_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    SplitMix64(
        nanos
            ^ COUNTER
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0xA24B_AED4_963E_E407),
    )
    .next_u64()
}

/// The one partition of a datagen scan.
#[derive(Debug)]
struct DataGenPartition {
    /// The projected schema.
    schema: SchemaRef,
    /// The projected columns with their position in the table.
    columns: Vec<(usize, ColumnGen)>,
    rows_per_second: u64,
    /// Rows to emit, `None` for no end.
    total_rows: Option<u64>,
    batch_size: usize,
    seed: Option<u64>,
}

impl PartitionStream for DataGenPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let seed = self.seed.unwrap_or_else(fresh_seed);
        let string_bytes_per_row = self
            .columns
            .iter()
            .map(|(_, c)| match c.kind {
                Kind::Random {
                    spec: RandomSpec::Str { length, .. },
                    ..
                } => length,
                Kind::Sequence { .. } if TypeClass::of(&c.data_type) == Some(TypeClass::Str) => 20,
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        let batch_rows = self
            .batch_size
            .min(usize::try_from(self.rows_per_second).unwrap_or(usize::MAX))
            .min((MAX_STRING_BYTES_PER_BATCH / string_bytes_per_row.max(1)).max(1));
        let generator = Generator {
            schema: self.schema.clone(),
            columns: self
                .columns
                .iter()
                .map(|(i, c)| {
                    (
                        c.clone(),
                        SplitMix64::for_column(seed, *i, 0),
                        SplitMix64::for_column(seed, *i, 1),
                    )
                })
                .collect(),
            rows_per_second: self.rows_per_second,
            total_rows: self.total_rows,
            batch_rows,
            emitted: 0,
            started: None,
        };
        let stream = futures::stream::unfold(generator, |mut g| async move {
            let batch = g.next_batch().await?;
            Some((batch, g))
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

/// The state of one running scan.
struct Generator {
    schema: SchemaRef,
    /// Each column with its value stream and its null stream.
    columns: Vec<(ColumnGen, SplitMix64, SplitMix64)>,
    rows_per_second: u64,
    total_rows: Option<u64>,
    batch_rows: usize,
    emitted: u64,
    started: Option<tokio::time::Instant>,
}

impl Generator {
    /// The next batch, once its time has come; `None` at the end.
    async fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
        let remaining = self.total_rows.map(|t| t - self.emitted);
        let n = match remaining {
            Some(0) => return None,
            Some(r) => self
                .batch_rows
                .min(usize::try_from(r).unwrap_or(usize::MAX)),
            None => self.batch_rows,
        };
        let now = tokio::time::Instant::now();
        let started = *self.started.get_or_insert(now);
        let due = started
            + Duration::from_nanos(
                u64::try_from(
                    u128::from(self.emitted) * 1_000_000_000 / u128::from(self.rows_per_second),
                )
                .unwrap_or(u64::MAX),
            );
        if due > now {
            tokio::time::sleep_until(due).await;
        }
        let batch = self.make_batch(n);
        self.emitted += n as u64;
        Some(batch)
    }

    /// `n` rows, column by column.
    fn make_batch(&mut self, n: usize) -> Result<RecordBatch> {
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or_default();
        let first_row = self.emitted;
        let arrays = self
            .columns
            .iter_mut()
            .map(|(column, values, nulls)| generate(column, values, nulls, first_row, n, now_ns))
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?)
    }
}

/// `n` values of `column`, rows `first_row..first_row + n` of the scan.
fn generate(
    column: &ColumnGen,
    values: &mut SplitMix64,
    nulls: &mut SplitMix64,
    first_row: u64,
    n: usize,
    now_ns: i128,
) -> Result<ArrayRef> {
    let t = &column.data_type;
    match &column.kind {
        Kind::Sequence { start, .. } => {
            let first = i128::from(*start) + i128::from(first_row);
            let seq = (0..n as i128).map(move |i| first + i);
            match TypeClass::of(t) {
                Some(TypeClass::Decimal { scale, .. }) => {
                    let unit = 10i128.pow(scale as u32);
                    integer_array(t, seq.map(|v| v * unit), None)
                }
                Some(TypeClass::Float { .. }) => Ok(float_array(t, seq.map(|v| v as f64), None)),
                Some(TypeClass::Str) => string_array(t, n, None, {
                    let mut seq = seq;
                    move |out: &mut Vec<u8>| {
                        use std::io::Write;
                        let _ = write!(out, "{}", seq.next().unwrap_or_default());
                    }
                }),
                _ => integer_array(t, seq, None),
            }
        }
        Kind::Random { null_rate, spec } => {
            let validity = (*null_rate > 0.0).then(|| {
                NullBuffer::new(BooleanBuffer::collect_bool(n, |_| {
                    nulls.unit_f64() >= *null_rate
                }))
            });
            match spec {
                RandomSpec::Integer { min, max } => {
                    integer_array(t, (0..n).map(|_| values.between(*min, *max)), validity)
                }
                RandomSpec::Float { min, max } => Ok(float_array(
                    t,
                    (0..n).map(|_| {
                        let u = values.unit_f64();
                        // Written so that it cannot overflow, even over the whole range of the type.
                        (min * (1.0 - u) + max * u).clamp(*min, *max)
                    }),
                    validity,
                )),
                RandomSpec::Bool => Ok(Arc::new(BooleanArray::new(
                    BooleanBuffer::collect_bool(n, |_| values.next_u64() >> 63 == 1),
                    validity,
                ))),
                RandomSpec::Str { length, var_len } => {
                    let (length, var_len) = (*length, *var_len);
                    string_array(t, n, validity, move |out: &mut Vec<u8>| {
                        let len = if var_len && length > 0 {
                            values.between(1, length as i128) as usize
                        } else {
                            length
                        };
                        hex(values, len, out)
                    })
                }
                RandomSpec::Time { max_past_ns } => {
                    let instants =
                        (0..n).map(|_| now_ns - values.between(0, (*max_past_ns).into()));
                    integer_array(t, instants.map(|ns| from_nanos(t, ns)), validity)
                }
            }
        }
    }
}

/// An instant in nanoseconds since the epoch as a value of `t` (a timestamp
/// in its unit, or a date).
fn from_nanos(t: &DataType, ns: i128) -> i128 {
    match t {
        DataType::Timestamp(TimeUnit::Second, _) => ns.div_euclid(1_000_000_000),
        DataType::Timestamp(TimeUnit::Millisecond, _) => ns.div_euclid(1_000_000),
        DataType::Timestamp(TimeUnit::Microsecond, _) => ns.div_euclid(1_000),
        DataType::Date32 => ns.div_euclid(NANOS_PER_DAY),
        DataType::Date64 => ns.div_euclid(NANOS_PER_DAY) * 86_400_000,
        _ => ns,
    }
}

/// `len` random lower-case hex digits appended to `out`.
fn hex(rng: &mut SplitMix64, len: usize, out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(len);
    let mut left = len;
    while left > 0 {
        let mut bits = rng.next_u64();
        for _ in 0..left.min(16) {
            out.push(DIGITS[(bits & 0xf) as usize]);
            bits >>= 4;
        }
        left -= left.min(16);
    }
}

/// A primitive array of type `t` (an integer, decimal, date or timestamp
/// type) from values that fit it.
fn integer_array(
    t: &DataType,
    values: impl Iterator<Item = i128>,
    nulls: Option<NullBuffer>,
) -> Result<ArrayRef> {
    macro_rules! array {
        ($arrow:ty, $native:ty) => {
            Arc::new(
                PrimitiveArray::<$arrow>::new(
                    values
                        .map(|v| v as $native)
                        .collect::<ScalarBuffer<$native>>(),
                    nulls,
                )
                .with_data_type(t.clone()),
            ) as ArrayRef
        };
    }
    Ok(match t {
        DataType::Int8 => array!(Int8Type, i8),
        DataType::Int16 => array!(Int16Type, i16),
        DataType::Int32 => array!(Int32Type, i32),
        DataType::Int64 => array!(Int64Type, i64),
        DataType::UInt8 => array!(UInt8Type, u8),
        DataType::UInt16 => array!(UInt16Type, u16),
        DataType::UInt32 => array!(UInt32Type, u32),
        DataType::UInt64 => array!(UInt64Type, u64),
        DataType::Decimal32(..) => array!(Decimal32Type, i32),
        DataType::Decimal64(..) => array!(Decimal64Type, i64),
        DataType::Decimal128(..) => array!(Decimal128Type, i128),
        DataType::Date32 => array!(Date32Type, i32),
        DataType::Date64 => array!(Date64Type, i64),
        DataType::Timestamp(TimeUnit::Second, _) => array!(TimestampSecondType, i64),
        DataType::Timestamp(TimeUnit::Millisecond, _) => array!(TimestampMillisecondType, i64),
        DataType::Timestamp(TimeUnit::Microsecond, _) => array!(TimestampMicrosecondType, i64),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => array!(TimestampNanosecondType, i64),
        other => {
            return Err(DataFusionError::Internal(format!(
                "datagen: no integer generator for {other}"
            )));
        }
    })
}

/// A FLOAT or DOUBLE array.
fn float_array(
    t: &DataType,
    values: impl Iterator<Item = f64>,
    nulls: Option<NullBuffer>,
) -> ArrayRef {
    match t {
        DataType::Float32 => Arc::new(PrimitiveArray::<Float32Type>::new(
            values.map(|v| v as f32).collect(),
            nulls,
        )),
        _ => Arc::new(PrimitiveArray::<Float64Type>::new(values.collect(), nulls)),
    }
}

/// A string array of type `t` (Utf8, LargeUtf8 or Utf8View) of `n` values,
/// each written by `write`.
fn string_array(
    t: &DataType,
    n: usize,
    nulls: Option<NullBuffer>,
    mut write: impl FnMut(&mut Vec<u8>),
) -> Result<ArrayRef> {
    let mut bytes = Vec::new();
    let mut ends = Vec::with_capacity(n);
    for _ in 0..n {
        write(&mut bytes);
        ends.push(bytes.len());
    }
    fn build<O: OffsetSizeTrait>(
        ends: &[usize],
        bytes: Vec<u8>,
        nulls: Option<NullBuffer>,
    ) -> Result<GenericStringArray<O>> {
        let mut offsets = Vec::with_capacity(ends.len() + 1);
        offsets.push(O::usize_as(0));
        for &end in ends {
            offsets.push(O::from_usize(end).ok_or_else(|| {
                DataFusionError::Execution(
                    "datagen: a batch of strings is too large for its offsets".into(),
                )
            })?);
        }
        Ok(GenericStringArray::<O>::try_new(
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Buffer::from_vec(bytes),
            nulls,
        )?)
    }
    Ok(match t {
        DataType::LargeUtf8 => Arc::new(build::<i64>(&ends, bytes, nulls)?),
        DataType::Utf8View => Arc::new(StringViewArray::from(&build::<i32>(&ends, bytes, nulls)?)),
        _ => Arc::new(build::<i32>(&ends, bytes, nulls)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Field, Schema};
    use datafusion::prelude::{SessionConfig, SessionContext};
    use futures::StreamExt;

    fn opts(pairs: &[(&str, &str)]) -> TableOptions {
        let mut all = vec![("connector".to_string(), "datagen".to_string())];
        all.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        TableOptions::new(all)
    }

    fn schema(cols: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(
            cols.iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    fn table(cols: &[(&str, DataType)], pairs: &[(&str, &str)]) -> DataGenTable {
        DataGenTable::try_new("t", Some(schema(cols)), opts(pairs)).unwrap()
    }

    fn error(cols: &[(&str, DataType)], pairs: &[(&str, &str)]) -> String {
        DataGenTable::try_new("t", Some(schema(cols)), opts(pairs))
            .unwrap_err()
            .to_string()
    }

    async fn collect(
        t: DataGenTable,
        projection: Option<Vec<usize>>,
        limit: Option<usize>,
    ) -> Vec<RecordBatch> {
        collect_with(t, projection, limit, SessionConfig::new()).await
    }

    async fn collect_with(
        t: DataGenTable,
        projection: Option<Vec<usize>>,
        limit: Option<usize>,
        config: SessionConfig,
    ) -> Vec<RecordBatch> {
        let ctx = SessionContext::new_with_config(config);
        let plan = t
            .scan(&ctx.state(), projection.as_ref(), &[], limit)
            .await
            .unwrap();
        datafusion::physical_plan::collect(plan, ctx.task_ctx())
            .await
            .unwrap()
    }

    fn rows(batches: &[RecordBatch]) -> usize {
        batches.iter().map(RecordBatch::num_rows).sum()
    }

    fn column(batches: &[RecordBatch], i: usize) -> Vec<&ArrayRef> {
        batches.iter().map(|b| b.column(i)).collect()
    }

    #[tokio::test]
    async fn sequence_emits_each_value_once_in_order_then_ends() {
        let t = table(
            &[("id", DataType::Int64)],
            &[
                ("fields.id.kind", "sequence"),
                ("fields.id.start", "1"),
                ("fields.id.end", "100"),
            ],
        );
        assert_eq!(t.boundedness(), Boundedness::Bounded);
        assert_eq!(t.total_rows(), Some(100));
        let config = SessionConfig::new().with_batch_size(7);
        let batches = collect_with(t, None, None, config).await;
        assert!(batches.iter().all(|b| b.num_rows() <= 7));
        let ids: Vec<i64> = batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(ids, (1..=100).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn number_of_rows_and_sequences_end_the_source_at_the_first_limit() {
        let seq = [
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "10"),
            ("fields.id.end", "19"),
        ];
        let t = table(
            &[("id", DataType::Int32), ("v", DataType::Int64)],
            &[seq[0], seq[1], seq[2], ("number-of-rows", "4")],
        );
        assert_eq!(t.total_rows(), Some(4));
        let batches = collect(t, None, None).await;
        let ids = batches[0]
            .column(0)
            .as_primitive::<Int32Type>()
            .values()
            .to_vec();
        assert_eq!(ids, vec![10, 11, 12, 13]);
        let t = table(
            &[("id", DataType::Int32)],
            &[seq[0], seq[1], seq[2], ("number-of-rows", "1000")],
        );
        assert_eq!(rows(&collect(t, None, None).await), 10);
        // The sequence bounds the scan even when it is not projected.
        let t = table(
            &[("id", DataType::Int32), ("v", DataType::Int64)],
            &[seq[0], seq[1], seq[2]],
        );
        assert_eq!(rows(&collect(t, Some(vec![1]), None).await), 10);
        let t = table(&[("v", DataType::Int64)], &[("number-of-rows", "0")]);
        assert_eq!(rows(&collect(t, None, None).await), 0);
    }

    #[tokio::test]
    async fn sequences_of_every_type() {
        let types = [
            DataType::Int8,
            DataType::UInt16,
            DataType::Float32,
            DataType::Float64,
            DataType::Decimal128(6, 2),
            DataType::Utf8,
            DataType::Utf8View,
        ];
        let cols: Vec<(String, DataType)> = types
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("c{i}"), t.clone()))
            .collect();
        let keys: Vec<(String, String)> = (0..types.len())
            .flat_map(|i| {
                [("kind", "sequence"), ("start", "98"), ("end", "101")]
                    .map(|(p, v)| (field_key(&format!("c{i}"), p), v.to_string()))
            })
            .collect();
        let cols_ref: Vec<(&str, DataType)> =
            cols.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
        let keys_ref: Vec<(&str, &str)> =
            keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let batches = collect(table(&cols_ref, &keys_ref), None, None).await;
        let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let text: Vec<String> = (0..batch.num_columns())
            .map(|c| {
                (0..4)
                    .map(|r| {
                        arrow::util::display::array_value_to_string(batch.column(c), r).unwrap()
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert_eq!(text[0], "98 99 100 101");
        assert_eq!(text[1], "98 99 100 101");
        assert_eq!(text[2], "98.0 99.0 100.0 101.0");
        assert_eq!(text[4], "98.00 99.00 100.00 101.00");
        assert_eq!(text[5], "98 99 100 101");
        assert_eq!(batch.column(6).data_type(), &DataType::Utf8View);
        assert_eq!(text[6], "98 99 100 101");
    }

    #[tokio::test]
    async fn random_numbers_stay_within_bounds() {
        let t = table(
            &[
                ("i", DataType::Int16),
                ("f", DataType::Float64),
                ("d", DataType::Decimal128(5, 2)),
                ("u", DataType::UInt64),
            ],
            &[
                ("number-of-rows", "5000"),
                ("fields.i.min", "-3"),
                ("fields.i.max", "3"),
                ("fields.f.min", "-0.5"),
                ("fields.f.max", "0.25"),
                ("fields.d.min", "-1.5"),
                ("fields.d.max", "2.25"),
                ("seed", "7"),
            ],
        );
        let batches = collect(t, None, None).await;
        assert_eq!(rows(&batches), 5000);
        let mut seen_i = std::collections::BTreeSet::new();
        for b in &batches {
            for v in b.column(0).as_primitive::<Int16Type>().values() {
                assert!((-3..=3).contains(v));
                seen_i.insert(*v);
            }
            for v in b.column(1).as_primitive::<Float64Type>().values() {
                assert!((-0.5..=0.25).contains(v));
            }
            for v in b.column(2).as_primitive::<Decimal128Type>().values() {
                assert!((-150..=225).contains(v));
            }
            assert_eq!(b.column(2).data_type(), &DataType::Decimal128(5, 2));
        }
        assert_eq!(seen_i.len(), 7, "every value of a small range shows up");
        // The whole range of BIGINT UNSIGNED by default: values above i64::MAX appear.
        let high = column(&batches, 3)
            .iter()
            .flat_map(|a| a.as_primitive::<UInt64Type>().values().to_vec())
            .filter(|v| *v > i64::MAX as u64)
            .count();
        assert!(high > 1000, "{high}");
    }

    #[tokio::test]
    async fn null_rate_and_booleans() {
        let t = table(
            &[
                ("all", DataType::Int64),
                ("half", DataType::Boolean),
                ("none", DataType::Utf8),
            ],
            &[
                ("number-of-rows", "4000"),
                ("fields.all.null-rate", "1.0"),
                ("fields.half.null-rate", "0.5"),
            ],
        );
        let batches = collect(t, None, None).await;
        let nulls = |c: usize| {
            column(&batches, c)
                .iter()
                .map(|a| a.null_count())
                .sum::<usize>()
        };
        assert_eq!(nulls(0), 4000);
        assert!((1600..2400).contains(&nulls(1)), "{}", nulls(1));
        assert_eq!(nulls(2), 0);
        let trues: usize = column(&batches, 1)
            .iter()
            .map(|a| a.as_boolean().true_count())
            .sum();
        assert!((600..1400).contains(&trues), "{trues}");
    }

    #[tokio::test]
    async fn strings_have_the_asked_length_and_declared_type() {
        let t = table(
            &[
                ("s", DataType::Utf8),
                ("v", DataType::Utf8View),
                ("l", DataType::LargeUtf8),
                ("r", DataType::Utf8),
            ],
            &[
                ("number-of-rows", "300"),
                ("fields.s.length", "10"),
                ("fields.r.length", "5"),
                ("fields.r.var-len", "true"),
            ],
        );
        let batches = collect(t, None, None).await;
        let b = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(b.column(1).data_type(), &DataType::Utf8View);
        assert_eq!(b.column(2).data_type(), &DataType::LargeUtf8);
        assert!(
            b.column(0)
                .as_string::<i32>()
                .iter()
                .all(|s| s.unwrap().len() == 10)
        );
        assert!(
            b.column(0)
                .as_string::<i32>()
                .iter()
                .all(|s| s.unwrap().bytes().all(|c| c.is_ascii_hexdigit()))
        );
        assert!(
            b.column(1)
                .as_string_view()
                .iter()
                .all(|s| s.unwrap().len() == DEFAULT_STRING_LENGTH)
        );
        assert!(
            b.column(2)
                .as_string::<i64>()
                .iter()
                .all(|s| s.unwrap().len() == DEFAULT_STRING_LENGTH)
        );
        let lens: std::collections::BTreeSet<usize> = b
            .column(3)
            .as_string::<i32>()
            .iter()
            .map(|s| s.unwrap().len())
            .collect();
        assert_eq!(lens, (1..=5).collect());
    }

    #[tokio::test]
    async fn timestamps_and_dates_fall_between_now_minus_max_past_and_now() {
        let cols = [
            ("ms", DataType::Timestamp(TimeUnit::Millisecond, None)),
            (
                "ns",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            ),
            ("s", DataType::Timestamp(TimeUnit::Second, None)),
            ("d", DataType::Date32),
        ];
        let t = table(
            &cols,
            &[
                ("number-of-rows", "1000"),
                ("fields.ms.max-past", "1 h"),
                ("fields.d.max-past", "3 d"),
            ],
        );
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let batches = collect(t, None, None).await;
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let (lo, hi) = (
            before.as_millis() as i64 - 3_600_000,
            after.as_millis() as i64,
        );
        let ms: Vec<i64> = column(&batches, 0)
            .iter()
            .flat_map(|a| {
                a.as_primitive::<TimestampMillisecondType>()
                    .values()
                    .to_vec()
            })
            .collect();
        assert!(ms.iter().all(|v| (lo..=hi).contains(v)));
        assert!(ms.iter().any(|v| *v < hi - 60_000), "spread over the hour");
        let ns: Vec<i64> = column(&batches, 1)
            .iter()
            .flat_map(|a| {
                a.as_primitive::<TimestampNanosecondType>()
                    .values()
                    .to_vec()
            })
            .collect();
        assert!(
            ns.iter()
                .all(|v| (before.as_nanos() as i64..=after.as_nanos() as i64).contains(v)),
            "max-past 0: now"
        );
        assert_eq!(
            batches[0].column(1).data_type(),
            &DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
        );
        let s: Vec<i64> = column(&batches, 2)
            .iter()
            .flat_map(|a| a.as_primitive::<TimestampSecondType>().values().to_vec())
            .collect();
        assert!(
            s.iter()
                .all(|v| (before.as_secs() as i64..=after.as_secs() as i64).contains(v))
        );
        let today = (after.as_secs() / 86_400) as i32;
        let d: Vec<i32> = column(&batches, 3)
            .iter()
            .flat_map(|a| a.as_primitive::<Date32Type>().values().to_vec())
            .collect();
        assert!(d.iter().all(|v| (today - 4..=today).contains(v)));
    }

    #[tokio::test]
    async fn a_seed_repeats_the_rows_whatever_the_projection_and_batch_size() {
        let cols = [
            ("a", DataType::Int64),
            ("b", DataType::Utf8),
            ("c", DataType::Float64),
        ];
        let pairs = [
            ("number-of-rows", "500"),
            ("seed", "42"),
            ("fields.b.length", "6"),
            ("fields.a.null-rate", "0.3"),
        ];
        let full = collect(table(&cols, &pairs), None, None).await;
        let small = collect_with(
            table(&cols, &pairs),
            Some(vec![2, 0]),
            None,
            SessionConfig::new().with_batch_size(33),
        )
        .await;
        let full = arrow::compute::concat_batches(&full[0].schema(), &full).unwrap();
        let small = arrow::compute::concat_batches(&small[0].schema(), &small).unwrap();
        assert_eq!(full.column(0), small.column(1));
        assert_eq!(full.column(2), small.column(0));
        let other = collect(
            table(&cols, &[("number-of-rows", "500"), ("seed", "43")]),
            None,
            None,
        )
        .await;
        assert_ne!(full.column(2), other[0].column(2));
        // Without a seed, every scan differs.
        let a = collect(table(&cols, &[("number-of-rows", "10")]), None, None).await;
        let b = collect(table(&cols, &[("number-of-rows", "10")]), None, None).await;
        assert_ne!(a[0].column(0), b[0].column(0));
    }

    #[tokio::test]
    async fn count_star_projects_no_column() {
        let t = table(
            &[("a", DataType::Int64)],
            &[("number-of-rows", "20000"), ("rows-per-second", "1000000")],
        );
        let batches = collect(t, Some(vec![]), None).await;
        assert_eq!(rows(&batches), 20000);
        assert_eq!(batches[0].num_columns(), 0);
    }

    #[tokio::test]
    async fn rows_are_paced_at_rows_per_second() {
        // 150 rows at 100 rows/s: 100 rows at once, the last 50 one second later.
        let t = table(
            &[("a", DataType::Int64)],
            &[("number-of-rows", "150"), ("rows-per-second", "100")],
        );
        let started = std::time::Instant::now();
        let batches = collect(t, None, None).await;
        let elapsed = started.elapsed();
        assert_eq!(
            batches
                .iter()
                .map(RecordBatch::num_rows)
                .collect::<Vec<_>>(),
            vec![100, 50]
        );
        assert!(
            elapsed >= Duration::from_millis(950) && elapsed < Duration::from_secs(5),
            "{elapsed:?}"
        );
    }

    #[tokio::test]
    async fn limit_over_an_unbounded_table_ends() {
        let t = table(
            &[("a", DataType::Int64), ("s", DataType::Utf8)],
            &[("rows-per-second", "1000000")],
        );
        assert_eq!(t.boundedness(), Boundedness::Unbounded);
        assert_eq!(t.total_rows(), None);
        let ctx = SessionContext::new();
        // Through scan with a pushed limit.
        let plan = t.scan(&ctx.state(), None, &[], Some(5)).await.unwrap();
        let batches = tokio::time::timeout(
            Duration::from_secs(10),
            datafusion::physical_plan::collect(plan, ctx.task_ctx()),
        )
        .await
        .expect("a LIMIT ends the scan")
        .unwrap();
        assert_eq!(rows(&batches), 5);
        // An unbounded scan, dropped after a few batches.
        let plan = t.scan(&ctx.state(), None, &[], None).await.unwrap();
        assert_eq!(
            plan.properties().boundedness,
            datafusion::physical_plan::execution_plan::Boundedness::Unbounded {
                requires_infinite_memory: false
            }
        );
        let mut stream = plan.execute(0, ctx.task_ctx()).unwrap();
        for _ in 0..3 {
            assert!(stream.next().await.unwrap().unwrap().num_rows() > 0);
        }
        drop(stream);
        // Through SQL: DataFusion's own LIMIT over the table.
        ctx.register_table("t", Arc::new(t)).unwrap();
        let df = ctx.sql("SELECT a FROM t LIMIT 7").await.unwrap();
        let batches = tokio::time::timeout(Duration::from_secs(10), df.collect())
            .await
            .expect("ends")
            .unwrap();
        assert_eq!(rows(&batches), 7);
        let df = ctx
            .sql("SELECT COUNT(*) FROM (SELECT * FROM t LIMIT 12345)")
            .await
            .unwrap();
        let batches = tokio::time::timeout(Duration::from_secs(10), df.collect())
            .await
            .expect("ends")
            .unwrap();
        assert_eq!(
            batches[0].column(0).as_primitive::<Int64Type>().value(0),
            12345
        );
    }

    #[tokio::test]
    async fn sql_aggregates_over_a_sequence() {
        let t = table(
            &[("id", DataType::Int64), ("v", DataType::Int32)],
            &[
                ("fields.id.kind", "sequence"),
                ("fields.id.start", "1"),
                ("fields.id.end", "1000"),
                ("fields.v.min", "1"),
                ("fields.v.max", "1"),
            ],
        );
        let ctx = SessionContext::new();
        ctx.register_table("t", Arc::new(t)).unwrap();
        let batches = ctx
            .sql("SELECT COUNT(*), MIN(id), MAX(id), SUM(id), SUM(v) FROM t")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let b = &batches[0];
        let get = |i: usize| b.column(i).as_primitive::<Int64Type>().value(0);
        assert_eq!(
            (get(0), get(1), get(2), get(3), get(4)),
            (1000, 1, 1000, 500_500, 1000)
        );
    }

    #[test]
    fn keys_may_name_a_column_in_another_case() {
        let t = table(
            &[("id", DataType::Int64)],
            &[
                ("fields.ID.kind", "sequence"),
                ("fields.Id.start", "1"),
                ("fields.id.end", "3"),
            ],
        );
        assert_eq!(t.total_rows(), Some(3));
        assert_eq!(t.options().get("fields.id.start"), Some("1"));
    }

    #[test]
    fn boundedness_is_reported_through_the_crate() {
        let t: Arc<dyn TableProvider> = Arc::new(table(&[("a", DataType::Int64)], &[]));
        assert_eq!(crate::boundedness_of(t.as_ref()), Boundedness::Unbounded);
        let t: Arc<dyn TableProvider> =
            Arc::new(table(&[("a", DataType::Int64)], &[("number-of-rows", "1")]));
        assert_eq!(crate::boundedness_of(t.as_ref()), Boundedness::Bounded);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns("5000"), Some(5_000_000_000));
        assert_eq!(parse_duration_ns("30 s"), Some(30_000_000_000));
        assert_eq!(parse_duration_ns("10min"), Some(600_000_000_000));
        assert_eq!(parse_duration_ns("1 H"), Some(3_600_000_000_000));
        assert_eq!(parse_duration_ns("2 days"), Some(2 * 86_400_000_000_000));
        assert_eq!(parse_duration_ns("-1"), None);
        assert_eq!(parse_duration_ns("5 fortnights"), None);
        assert_eq!(parse_duration_ns("1.5 s"), None);
        assert_eq!(parse_duration_ns("999999999999 d"), None);
    }

    #[test]
    fn random_ranges_are_uniform_enough_and_cover_the_ends() {
        let mut r = SplitMix64::for_column(1, 0, 0);
        let mut counts = [0u32; 5];
        for _ in 0..50_000 {
            counts[(r.between(-2, 2) + 2) as usize] += 1;
        }
        assert!(
            counts.iter().all(|c| (9_000..11_000).contains(c)),
            "{counts:?}"
        );
        let big = (0..1000)
            .map(|_| r.between(i128::from(i64::MIN), i128::from(i64::MAX)))
            .collect::<Vec<_>>();
        assert!(big.iter().any(|v| *v < 0) && big.iter().any(|v| *v > 0));
        let max = 10i128.pow(38) - 1;
        let dec = (0..1000).map(|_| r.between(-max, max)).collect::<Vec<_>>();
        assert!(dec.iter().all(|v| (-max..=max).contains(v)));
        assert!(dec.iter().any(|v| *v < -max / 2) && dec.iter().any(|v| *v > max / 2));
    }

    #[test]
    fn columns_must_be_declared() {
        let e = DataGenTable::try_new("t", None, opts(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("table 't': cannot infer the columns")
                && e.contains("declare them in CREATE TABLE"),
            "{e}"
        );
    }

    #[test]
    fn unsupported_types_are_rejected() {
        let e = error(
            &[
                ("a", DataType::Int64),
                ("t", DataType::Time64(TimeUnit::Microsecond)),
            ],
            &[],
        );
        assert!(
            e.contains("column 't' has type TIME, which the datagen connector cannot generate"),
            "{e}"
        );
        assert!(e.contains("supported types: TINYINT"), "{e}");
        let e = error(&[("d", DataType::Decimal256(50, 2))], &[]);
        assert!(e.contains("DECIMAL(50, 2)"), "{e}");
        let e = error(
            &[(
                "l",
                DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
            )],
            &[],
        );
        assert!(e.contains("column 'l'"), "{e}");
    }

    #[test]
    fn unknown_keys_and_columns_list_the_valid_ones() {
        let cols = [("id", DataType::Int64), ("name", DataType::Utf8)];
        let e = error(&cols, &[("rows-per-secnd", "5")]);
        assert!(
            e.contains("unsupported option 'rows-per-secnd' for connector 'datagen' (did you mean 'rows-per-second'?)"),
            "{e}"
        );
        assert!(
            e.contains("valid options are: connector, rows-per-second, number-of-rows, seed, fields.id.kind, fields.id.min, fields.id.max, fields.id.null-rate, fields.name.kind, fields.name.length"),
            "{e}"
        );
        let e = error(&cols, &[("fields.nme.length", "5")]);
        assert!(
            e.contains("unsupported option 'fields.nme.length'")
                && e.contains("did you mean 'fields.name.length'"),
            "{e}"
        );
        // A property that the column's type or kind does not take.
        let e = error(&cols, &[("fields.id.length", "5")]);
        assert!(e.contains("unsupported option 'fields.id.length'"), "{e}");
        let e = error(
            &cols,
            &[
                ("fields.id.kind", "sequence"),
                ("fields.id.start", "1"),
                ("fields.id.end", "2"),
                ("fields.id.min", "1"),
            ],
        );
        assert!(
            e.contains("unsupported option 'fields.id.min'")
                && e.contains("fields.id.start, fields.id.end"),
            "{e}"
        );
        let e = error(&cols, &[("fields.name.max-past", "5")]);
        assert!(
            e.contains("unsupported option 'fields.name.max-past'"),
            "{e}"
        );
        let e = error(&cols, &[("scan.parallelism", "2")]);
        assert!(e.contains("unsupported option 'scan.parallelism'"), "{e}");
    }

    #[test]
    fn invalid_values_name_the_key_and_what_is_expected() {
        let i = [("v", DataType::Int8)];
        type Case<'a> = (&'a [(&'a str, DataType)], &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (
                &i,
                &[("rows-per-second", "fast")],
                "invalid value 'fast' for option 'rows-per-second': expected a positive integer",
            ),
            (
                &i,
                &[("rows-per-second", "0")],
                "invalid value '0' for option 'rows-per-second': expected a positive integer",
            ),
            (
                &i,
                &[("number-of-rows", "-1")],
                "invalid value '-1' for option 'number-of-rows': expected a non-negative integer",
            ),
            (
                &i,
                &[("seed", "x")],
                "invalid value 'x' for option 'seed': expected an unsigned 64-bit integer",
            ),
            (
                &i,
                &[("fields.v.kind", "randm")],
                "invalid value 'randm' for option 'fields.v.kind': expected 'random' or 'sequence'",
            ),
            (
                &i,
                &[("fields.v.min", "abc")],
                "invalid value 'abc' for option 'fields.v.min': expected an integer in [-128, 127] (the range of TINYINT)",
            ),
            (
                &i,
                &[("fields.v.max", "300")],
                "invalid value '300' for option 'fields.v.max': expected an integer in [-128, 127]",
            ),
            (
                &i,
                &[("fields.v.min", "5"), ("fields.v.max", "4")],
                "invalid value '4' for option 'fields.v.max': expected a value no less than 'fields.v.min' (5)",
            ),
            (
                &i,
                &[("fields.v.null-rate", "1.5")],
                "invalid value '1.5' for option 'fields.v.null-rate': expected a number between 0 and 1",
            ),
            (
                &i,
                &[("fields.v.kind", "sequence"), ("fields.v.end", "5")],
                "missing option 'fields.v.start'; a sequence column needs 'fields.v.start' and 'fields.v.end'",
            ),
            (
                &i,
                &[("fields.v.kind", "sequence"), ("fields.v.start", "5")],
                "missing option 'fields.v.end'",
            ),
            (
                &i,
                &[
                    ("fields.v.kind", "sequence"),
                    ("fields.v.start", "5"),
                    ("fields.v.end", "1"),
                ],
                "invalid value '1' for option 'fields.v.end': expected an integer no less than 'fields.v.start' (5)",
            ),
            (
                &i,
                &[
                    ("fields.v.kind", "sequence"),
                    ("fields.v.start", "0"),
                    ("fields.v.end", "1000"),
                ],
                "invalid value '1000' for option 'fields.v.end': expected an integer in [-128, 127]",
            ),
            (
                &[("d", DataType::Decimal128(4, 2))],
                &[("fields.d.max", "123.45")],
                "invalid value '123.45' for option 'fields.d.max': expected a decimal number that fits DECIMAL(4, 2)",
            ),
            (
                &[("d", DataType::Decimal128(4, 2))],
                &[("fields.d.min", "1.5"), ("fields.d.max", "1.25")],
                "expected a value no less than 'fields.d.min' (1.5)",
            ),
            (
                &[("f", DataType::Float32)],
                &[("fields.f.max", "1e39")],
                "invalid value '1e39' for option 'fields.f.max': expected a finite number within the range of FLOAT",
            ),
            (
                &[("f", DataType::Float64)],
                &[("fields.f.min", "NaN")],
                "invalid value 'NaN' for option 'fields.f.min'",
            ),
            (
                &[("s", DataType::Utf8)],
                &[("fields.s.length", "-2")],
                "invalid value '-2' for option 'fields.s.length': expected a non-negative integer",
            ),
            (
                &[("s", DataType::Utf8)],
                &[("fields.s.var-len", "maybe")],
                "invalid value 'maybe' for option 'fields.s.var-len': expected 'true' or 'false'",
            ),
            (
                &[("ts", DataType::Timestamp(TimeUnit::Millisecond, None))],
                &[("fields.ts.max-past", "ages")],
                "invalid value 'ages' for option 'fields.ts.max-past': expected a duration",
            ),
            (
                &[("ts", DataType::Timestamp(TimeUnit::Millisecond, None))],
                &[("fields.ts.kind", "sequence")],
                "invalid value 'sequence' for option 'fields.ts.kind': expected 'random': a TIMESTAMP(3) column cannot be a sequence",
            ),
            (
                &[("b", DataType::Boolean)],
                &[("fields.b.kind", "sequence")],
                "a BOOLEAN column cannot be a sequence",
            ),
        ];
        for (cols, pairs, expected) in cases {
            let e = error(cols, pairs);
            assert!(e.contains(expected), "{pairs:?}: {e}");
            assert!(e.starts_with("table 't': "), "{e}");
        }
    }
}

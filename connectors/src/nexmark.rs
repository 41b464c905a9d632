//! The `nexmark` connector: the events of the Nexmark benchmark (people,
//! auctions and bids of an online auction house), made by the `nexmark`
//! crate (RisingWave's port of the Beam/Flink generator), as flat tables.
//!
//! ```sql
//! CREATE TABLE bid (
//!   auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
//!   dateTime TIMESTAMP(3), extra STRING,
//!   WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
//! ) WITH (
//!   'connector' = 'nexmark',
//!   'nexmark.table' = 'bid',
//!   'first-event.rate' = '10000000',
//!   'events.num' = '100000000'
//! );
//! ```
//!
//! Why: the Nexmark queries are the common yardstick of streaming SQL
//! engines, and running them needs their data at a known rate, repeatably,
//! without a message broker.
//!
//! Flink's Nexmark connector (<https://github.com/nexmark/nexmark>) gives one
//! table with a ROW column per event kind, and views `person`, `auction` and
//! `bid` unpack it. Here one connector table is one of those three views
//! directly, chosen by `'nexmark.table'`, with the columns of the Nexmark
//! queries.
//!
//! # Tables and columns
//!
//! | `nexmark.table` | columns |
//! |---|---|
//! | `person` | `id BIGINT, name STRING, emailAddress STRING, creditCard STRING, city STRING, state STRING, dateTime TIMESTAMP(3), extra STRING` |
//! | `auction` | `id BIGINT, itemName STRING, description STRING, initialBid BIGINT, reserve BIGINT, dateTime TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra STRING` |
//! | `bid` | `auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, dateTime TIMESTAMP(3), extra STRING` |
//!
//! SQL folds unquoted names to lower case, so the columns are named
//! `emailaddress`, `datetime`, `itemname`, ... and `SELECT dateTime FROM bid`
//! finds them. Without a column list the connector supplies these columns
//! (strings as `Utf8View`, what `STRING` means in DataFusion). With a column
//! list, it must name each of the table's columns once, in any order and
//! ignoring case, with a matching type: `BIGINT` for the numbers, any string
//! type (`STRING`, `VARCHAR`, ...) for the strings, any `TIMESTAMP(p)` for the
//! times. The declared schema, with its metadata (such as a `WATERMARK`), is
//! the table's schema.
//!
//! # Options
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `nexmark.table` | required | **Tributary's own**: `person`, `auction` or `bid` |
//! | `events.num` | unset (unbounded) | generate this many events (of all kinds together), then end; `0` means unbounded, as in Flink |
//! | `first-event.rate` | `10000000` | events per second (at most 2147483647): sets the spacing of the event times, and the pace when rate-limited. Flink's connector defaults to 10000; its benchmark runs at 10000000 |
//! | `rate.limited` | `false` | emit at `first-event.rate` events per second of wall-clock time; else as fast as possible |
//! | `first-event.number` | `0` | **Tributary's own**: the number of the first event; the table holds events `first-event.number ..` of the same stream, values and times alike (so the first event is `first-event.number / first-event.rate` seconds after `base-time`) |
//! | `base-time` | `1672531200000` (2023-01-01T00:00:00Z) | **Tributary's own**: the time of event 0, in ms since the epoch or as a timestamp such as `'2024-06-01 12:00:00'` (UTC) |
//!
//! Any other key is an error that lists the valid ones.
//!
//! # Events
//!
//! Events are numbered `0, 1, 2, ...`; the number decides the kind and seeds
//! the values, so a table repeats exactly from run to run (the base time is
//! fixed, not the wall clock). Out of every 50 consecutive events, 1 is a
//! person, 3 are auctions and 46 are bids (numbers `50k`, `50k+1..=50k+3`,
//! `50k+4..=50k+49`), so with `events.num` = N a `person` table holds about
//! N/50 rows, `auction` 3N/50 and `bid` 46N/50; the three tables with the
//! same options together hold exactly N events. Event `n` happens at
//! `base-time + n / first-event.rate` seconds (rounded to the millisecond),
//! so at the default rate 10 000 events share a millisecond. Ids start at
//! 1000 (people and auctions), categories at 10; bids refer to recent
//! auctions and people, auctions to recent people, as the crate generates
//! them (a reference may run up to 10 ids ahead of the last person or
//! auction generated so far, as in the benchmark).
//!
//! # Boundedness
//!
//! Bounded iff `events.num` is set and not 0, as in Flink.
//!
//! # Execution
//!
//! The event numbers are cut into chunks of whole 50-event blocks, sized so
//! that a chunk holds at most `datafusion.execution.batch_size` rows of the
//! table (and, when rate-limited, about a tenth of a second of events, at
//! least one block), and the chunks are dealt round-robin to
//! `datafusion.execution.target_partitions` partitions (fewer for a small
//! bounded table). Each chunk makes one batch (cut in `batch_size` pieces if
//! a single block holds more rows than that).
//! The rows of a table are thus the same whatever the partitions and the
//! batch size; only their order and batching differ. Within a partition the
//! event times never decrease. When rate-limited, the chunk starting at
//! event `k` is released no earlier than `k / first-event.rate` seconds
//! after the partition's first poll (`tokio::time`), so all partitions
//! together emit at the rate. Only the events of the table's kind are
//! generated, and only the projected columns are built; `COUNT(*)` builds
//! none. The stream works when polled, so a satisfied `LIMIT` or a dropped
//! query stops it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, Int64Array, LargeStringBuilder, RecordBatch, RecordBatchOptions, StringBuilder,
    StringViewBuilder, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use nexmark::EventGenerator;
use nexmark::config::NexmarkConfig;
use nexmark::event::{Auction, Bid, Event, Person};

use crate::options::{invalid, nearest};
use crate::{Boundedness, ConnectorError, TableOptions, sql_type_name};

/// `first-event.rate` when the option is not set, in events per second (the
/// rate of Flink's Nexmark benchmark configuration).
pub const DEFAULT_FIRST_EVENT_RATE: u64 = 10_000_000;

/// The largest `first-event.rate`: Flink's option is an `int`.
pub const MAX_FIRST_EVENT_RATE: u64 = i32::MAX as u64;

/// `base-time` when the option is not set: 2023-01-01T00:00:00Z in ms.
pub const DEFAULT_BASE_TIME_MS: u64 = 1_672_531_200_000;

/// The largest `first-event.number + events.num`: far beyond any run, and
/// small enough that the generator's arithmetic on event numbers and ids
/// cannot overflow.
pub const MAX_EVENT_NUMBER: u64 = 1 << 60;

/// The option keys, in the order shown in error messages.
const KEYS: &[&str] = &[
    "connector",
    "nexmark.table",
    "events.num",
    "first-event.rate",
    "rate.limited",
    "first-event.number",
    "base-time",
];

/// The `nexmark.table` values.
const TABLES: &str = "'person', 'auction' or 'bid'";

/// The kinds of Nexmark events, one per table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NexmarkKind {
    /// New people (`nexmark.table` = `person`).
    Person,
    /// New auctions (`nexmark.table` = `auction`).
    Auction,
    /// Bids on auctions (`nexmark.table` = `bid`).
    Bid,
}

/// The SQL type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnType {
    BigInt,
    Str,
    Timestamp,
}

impl ColumnType {
    fn sql(self) -> &'static str {
        match self {
            ColumnType::BigInt => "BIGINT",
            ColumnType::Str => "STRING",
            ColumnType::Timestamp => "TIMESTAMP(3)",
        }
    }

    fn default_arrow(self) -> DataType {
        match self {
            ColumnType::BigInt => DataType::Int64,
            ColumnType::Str => DataType::Utf8View,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
        }
    }

    fn accepts(self, t: &DataType) -> bool {
        match self {
            ColumnType::BigInt => *t == DataType::Int64,
            ColumnType::Str => {
                matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
            }
            ColumnType::Timestamp => matches!(t, DataType::Timestamp(..)),
        }
    }
}

use ColumnType::{BigInt, Str, Timestamp};

const PERSON_COLUMNS: &[(&str, ColumnType)] = &[
    ("id", BigInt),
    ("name", Str),
    ("emailaddress", Str),
    ("creditcard", Str),
    ("city", Str),
    ("state", Str),
    ("datetime", Timestamp),
    ("extra", Str),
];

const AUCTION_COLUMNS: &[(&str, ColumnType)] = &[
    ("id", BigInt),
    ("itemname", Str),
    ("description", Str),
    ("initialbid", BigInt),
    ("reserve", BigInt),
    ("datetime", Timestamp),
    ("expires", Timestamp),
    ("seller", BigInt),
    ("category", BigInt),
    ("extra", Str),
];

const BID_COLUMNS: &[(&str, ColumnType)] = &[
    ("auction", BigInt),
    ("bidder", BigInt),
    ("price", BigInt),
    ("channel", Str),
    ("url", Str),
    ("datetime", Timestamp),
    ("extra", Str),
];

impl NexmarkKind {
    /// The kind named by a `nexmark.table` value (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "person" => Some(NexmarkKind::Person),
            "auction" => Some(NexmarkKind::Auction),
            "bid" => Some(NexmarkKind::Bid),
            _ => None,
        }
    }

    /// The `nexmark.table` value of this kind.
    pub fn name(self) -> &'static str {
        match self {
            NexmarkKind::Person => "person",
            NexmarkKind::Auction => "auction",
            NexmarkKind::Bid => "bid",
        }
    }

    fn columns(self) -> &'static [(&'static str, ColumnType)] {
        match self {
            NexmarkKind::Person => PERSON_COLUMNS,
            NexmarkKind::Auction => AUCTION_COLUMNS,
            NexmarkKind::Bid => BID_COLUMNS,
        }
    }

    /// The table's columns as the connector supplies them when none are
    /// declared.
    pub fn schema(self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns()
                .iter()
                .map(|(name, t)| Field::new(*name, t.default_arrow(), true))
                .collect::<Vec<_>>(),
        ))
    }

    /// `name TYPE, ...` for error messages.
    fn column_list(self) -> String {
        self.columns()
            .iter()
            .map(|(n, t)| format!("{n} {}", t.sql()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where each kind sits in a block of events: `(first position, count)` out
/// of `denominator` events, as the crate lays them out (people first, then
/// auctions, then bids).
#[derive(Debug, Clone, Copy)]
struct Proportions {
    person: u64,
    auction: u64,
    bid: u64,
}

impl Proportions {
    fn of(config: &NexmarkConfig) -> Self {
        Self {
            person: config.person_proportion as u64,
            auction: config.auction_proportion as u64,
            bid: config.bid_proportion as u64,
        }
    }

    fn denominator(self) -> u64 {
        self.person + self.auction + self.bid
    }

    /// `(first position in the block, events per block)` of `kind`.
    fn span(self, kind: NexmarkKind) -> (u64, u64) {
        match kind {
            NexmarkKind::Person => (0, self.person),
            NexmarkKind::Auction => (self.person, self.auction),
            NexmarkKind::Bid => (self.person + self.auction, self.bid),
        }
    }

    /// Whether event number `n` is of `kind`.
    fn is(self, kind: NexmarkKind, n: u64) -> bool {
        let (first, count) = self.span(kind);
        (first..first + count).contains(&(n % self.denominator()))
    }

    /// How many of the events `0..n` are of `kind`.
    fn count_below(self, kind: NexmarkKind, n: u64) -> u64 {
        let (first, count) = self.span(kind);
        let d = self.denominator();
        (n / d) * count + (n % d).saturating_sub(first).min(count)
    }
}

/// A `nexmark` connector table: the people, auctions or bids of the
/// Nexmark event stream (see the module docs).
#[derive(Debug)]
pub struct NexmarkTable {
    name: String,
    schema: SchemaRef,
    options: TableOptions,
    kind: NexmarkKind,
    /// For each field of `schema`, its index in the kind's columns.
    columns: Vec<usize>,
    events_num: Option<u64>,
    first_event_rate: u64,
    rate_limited: bool,
    first_event_number: u64,
    base_time_ms: u64,
}

impl NexmarkTable {
    /// Creates the table from its declared columns (or `None` for the
    /// connector's own) and `WITH` options.
    ///
    /// # Errors
    /// * [`ConnectorError::UnknownOption`] for a key the connector does not
    ///   know, with the nearest valid key and the list of all.
    /// * [`ConnectorError::MissingOption`] without `nexmark.table`.
    /// * [`ConnectorError::InvalidOption`] for a value that does not parse or
    ///   is out of range.
    /// * A planning error (wrapped [`DataFusionError::Plan`]) when declared
    ///   columns do not match the table's: an unknown or repeated column, a
    ///   missing one, a column of another type.
    pub fn try_new(
        name: &str,
        schema: Option<SchemaRef>,
        options: TableOptions,
    ) -> Result<Self, ConnectorError> {
        options.check_keys(name, "nexmark", KEYS)?;
        let kind = match options.get("nexmark.table") {
            None => {
                return Err(ConnectorError::MissingOption {
                    table: name.into(),
                    key: "nexmark.table".into(),
                    hint: "add 'nexmark.table' = 'bid' (or 'auction', 'person') to the WITH clause"
                        .into(),
                });
            }
            Some(v) => {
                NexmarkKind::parse(v).ok_or_else(|| invalid(name, "nexmark.table", v, TABLES))?
            }
        };
        let parse_u64 = |key: &str, expected: &str| -> Result<Option<u64>, ConnectorError> {
            match options.get(key) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n <= MAX_EVENT_NUMBER => Ok(Some(n)),
                    _ => Err(invalid(name, key, v, expected)),
                },
            }
        };
        let events_num = parse_u64(
            "events.num",
            &format!("a non-negative integer (the events to generate, at most {MAX_EVENT_NUMBER}; 0 for no end)"),
        )?
        .filter(|n| *n > 0);
        let first_event_number = parse_u64(
            "first-event.number",
            &format!(
                "a non-negative integer (the number of the first event, at most {MAX_EVENT_NUMBER})"
            ),
        )?
        .unwrap_or(0);
        if let Some(n) = events_num
            && first_event_number + n > MAX_EVENT_NUMBER
        {
            let v = options.get("events.num").unwrap_or_default();
            return Err(invalid(
                name,
                "events.num",
                v,
                &format!(
                    "at most {} after 'first-event.number' ({first_event_number})",
                    MAX_EVENT_NUMBER - first_event_number
                ),
            ));
        }
        let first_event_rate = match options.get("first-event.rate") {
            None => DEFAULT_FIRST_EVENT_RATE,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 && n <= MAX_FIRST_EVENT_RATE => n,
                _ => {
                    return Err(invalid(
                        name,
                        "first-event.rate",
                        v,
                        &format!(
                            "a positive integer (events per second, at most {MAX_FIRST_EVENT_RATE})"
                        ),
                    ));
                }
            },
        };
        let rate_limited = options.bool(name, "rate.limited", false)?;
        let base_time_ms = match options.get("base-time") {
            None => DEFAULT_BASE_TIME_MS,
            Some(v) => parse_base_time(v).ok_or_else(|| {
                invalid(
                    name,
                    "base-time",
                    v,
                    "milliseconds since 1970-01-01T00:00:00Z, or a timestamp such as '2023-01-01 00:00:00' (UTC), from 1970 to 9999",
                )
            })?,
        };

        let (schema, columns) = match schema {
            None => (kind.schema(), (0..kind.columns().len()).collect()),
            Some(schema) => {
                let columns = match_columns(name, kind, &schema)?;
                (schema, columns)
            }
        };
        Ok(Self {
            name: name.into(),
            schema,
            options,
            kind,
            columns,
            events_num,
            first_event_rate,
            rate_limited,
            first_event_number,
            base_time_ms,
        })
    }

    /// The table's name as declared.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `WITH` options as declared.
    pub fn options(&self) -> &TableOptions {
        &self.options
    }

    /// Which events the table holds.
    pub fn kind(&self) -> NexmarkKind {
        self.kind
    }

    /// The events generated (of all kinds together) before the source ends,
    /// or `None` when it never ends.
    pub fn events_num(&self) -> Option<u64> {
        self.events_num
    }

    /// The rows a full scan emits (the events of the table's kind among the
    /// events generated), or `None` when the source never ends.
    pub fn total_rows(&self) -> Option<u64> {
        let p = Proportions::of(&self.config());
        self.events_num.map(|n| {
            let (from, to) = (self.first_event_number, self.first_event_number + n);
            p.count_below(self.kind, to) - p.count_below(self.kind, from)
        })
    }

    /// [`Boundedness::Bounded`] iff `events.num` is set (and not 0).
    pub fn boundedness(&self) -> Boundedness {
        if self.events_num.is_some() {
            Boundedness::Bounded
        } else {
            Boundedness::Unbounded
        }
    }

    /// The crate's configuration for these options.
    fn config(&self) -> NexmarkConfig {
        // The rest are the crate's (and Flink's) defaults: proportions 1:3:46,
        // 1000 active people, 100 auctions in flight, hot sellers 4, hot
        // auctions 2, hot bidders 4, hot channels 2.
        NexmarkConfig {
            first_rate: self.first_event_rate as usize,
            next_rate: self.first_event_rate as usize,
            base_time: self.base_time_ms,
            first_event_number: self.first_event_number as usize,
            first_event_id: 0,
            ..NexmarkConfig::default()
        }
    }
}

/// `base-time`: ms since the epoch, or a timestamp (UTC unless it says
/// otherwise), from 1970 to the end of year 9999.
fn parse_base_time(v: &str) -> Option<u64> {
    const MAX_MS: u64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    let v = v.trim();
    let ms = match v.parse::<u64>() {
        Ok(ms) => ms,
        Err(_) => {
            let ns = arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(v).ok()?;
            u64::try_from(ns.div_euclid(1_000_000)).ok()?
        }
    };
    (ms <= MAX_MS).then_some(ms)
}

/// For each declared field, the index of the kind's column it names.
fn match_columns(
    table: &str,
    kind: NexmarkKind,
    schema: &SchemaRef,
) -> Result<Vec<usize>, ConnectorError> {
    let plan = |message: String| ConnectorError::DataFusion(DataFusionError::Plan(message));
    let known = kind.columns();
    let mut seen = vec![false; known.len()];
    let mut indices = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let Some(index) = known
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(field.name()))
        else {
            let hint = nearest(field.name(), known.iter().map(|(n, _)| *n))
                .map(|s| format!(" (did you mean '{s}'?)"))
                .unwrap_or_default();
            return Err(plan(format!(
                "table '{table}': column '{}' is not a column of the nexmark {} table{hint}; its columns are: {}",
                field.name(),
                kind.name(),
                kind.column_list()
            )));
        };
        let (column, column_type) = known[index];
        if std::mem::replace(&mut seen[index], true) {
            return Err(plan(format!(
                "table '{table}': column '{column}' is declared twice"
            )));
        }
        if !column_type.accepts(field.data_type()) {
            return Err(plan(format!(
                "table '{table}': column '{}' is declared {}, but the nexmark {} table's column '{column}' is {}",
                field.name(),
                sql_type_name(field.data_type()),
                kind.name(),
                column_type.sql()
            )));
        }
        indices.push(index);
    }
    let missing: Vec<&str> = known
        .iter()
        .zip(&seen)
        .filter(|(_, s)| !**s)
        .map(|((n, _), _)| *n)
        .collect();
    if !missing.is_empty() {
        return Err(plan(format!(
            "table '{table}': missing column{} {} of the nexmark {} table; declare all its columns ({}) or leave the column list out",
            if missing.len() > 1 { "s" } else { "" },
            missing
                .iter()
                .map(|m| format!("'{m}'"))
                .collect::<Vec<_>>()
                .join(", "),
            kind.name(),
            kind.column_list()
        )));
    }
    Ok(indices)
}

#[async_trait]
impl TableProvider for NexmarkTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// `target_partitions` partitions (fewer for a small bounded table), each
    /// generating every so many chunks of events and building only the
    /// projected columns. A `limit` stops each partition after that many rows
    /// (and makes the plan bounded, so DataFusion accepts pipeline breakers
    /// above it).
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
        let config = self.config();
        let proportions = Proportions::of(&config);
        let denominator = proportions.denominator();
        let (_, per_block) = proportions.span(self.kind);
        let batch_size = state.config().batch_size().max(1) as u64;
        let mut blocks = (batch_size / per_block).max(1);
        if self.rate_limited {
            // About a tenth of a second of events per chunk (at least a block), so the pace stays smooth.
            blocks = blocks.min((self.first_event_rate / (denominator * 10)).max(1));
        }
        let chunk_events = blocks * denominator;
        let mut partitions = state.config().target_partitions().max(1) as u64;
        if let Some(n) = self.events_num {
            partitions = partitions.min(n.div_ceil(chunk_events)).max(1);
        }
        let columns: Vec<(usize, DataType)> = indices
            .iter()
            .map(|&i| (self.columns[i], self.schema.field(i).data_type().clone()))
            .collect();
        let streams = (0..partitions)
            .map(|p| {
                Arc::new(NexmarkPartition {
                    schema: schema.clone(),
                    kind: self.kind,
                    columns: columns.clone(),
                    config: config.clone(),
                    proportions,
                    first_chunk: p,
                    chunk_step: partitions,
                    chunk_events,
                    events_num: self.events_num,
                    rate: self.rate_limited.then_some(self.first_event_rate),
                    batch_size: batch_size as usize,
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        let infinite = self.events_num.is_none() && limit.is_none();
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            streams,
            None,
            [],
            infinite,
            limit,
        )?))
    }
}

/// One partition of a nexmark scan: the chunks `first_chunk`,
/// `first_chunk + chunk_step`, ... of the event numbers.
#[derive(Debug)]
struct NexmarkPartition {
    /// The projected schema.
    schema: SchemaRef,
    kind: NexmarkKind,
    /// The projected columns: index in the kind's columns and the output type.
    columns: Vec<(usize, DataType)>,
    config: NexmarkConfig,
    proportions: Proportions,
    first_chunk: u64,
    chunk_step: u64,
    /// Events per chunk: a whole number of blocks.
    chunk_events: u64,
    /// Events to generate overall (from the first event number), `None` for no end.
    events_num: Option<u64>,
    /// Events per second when rate-limited.
    rate: Option<u64>,
    /// At most this many rows per batch.
    batch_size: usize,
}

impl PartitionStream for NexmarkPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let generator = Generator {
            schema: self.schema.clone(),
            kind: self.kind,
            columns: self.columns.clone(),
            // Only made when a column is projected: `COUNT(*)` needs no events.
            events: None,
            config: self.config.clone(),
            proportions: self.proportions,
            next_chunk: self.first_chunk,
            chunk_step: self.chunk_step,
            chunk_events: self.chunk_events,
            events_num: self.events_num,
            rate: self.rate,
            batch_size: self.batch_size,
            pending: VecDeque::new(),
            started: None,
        };
        let stream = futures::stream::unfold(generator, |mut g| async move {
            let batch = g.next_batch().await?;
            Some((batch, g))
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

/// The state of one running partition.
struct Generator {
    schema: SchemaRef,
    kind: NexmarkKind,
    columns: Vec<(usize, DataType)>,
    events: Option<EventGenerator>,
    config: NexmarkConfig,
    proportions: Proportions,
    next_chunk: u64,
    chunk_step: u64,
    chunk_events: u64,
    events_num: Option<u64>,
    rate: Option<u64>,
    batch_size: usize,
    /// Batches made but not yet emitted: the rest of a chunk of more than
    /// `batch_size` rows (one block of bids when `batch_size` < 46).
    pending: VecDeque<RecordBatch>,
    started: Option<tokio::time::Instant>,
}

impl Generator {
    /// The batch of the next chunk that holds a row, once its time has come;
    /// `None` at the end.
    async fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
        if let Some(batch) = self.pending.pop_front() {
            return Some(Ok(batch));
        }
        loop {
            let start = self.next_chunk.checked_mul(self.chunk_events)?;
            let end = match self.events_num {
                Some(n) if start >= n => return None,
                Some(n) => n.min(start + self.chunk_events),
                None => start.checked_add(self.chunk_events)?,
            };
            self.next_chunk += self.chunk_step;
            if let Some(rate) = self.rate {
                let now = tokio::time::Instant::now();
                let started = *self.started.get_or_insert(now);
                let due = started
                    + Duration::from_nanos(
                        u64::try_from(u128::from(start) * 1_000_000_000 / u128::from(rate))
                            .unwrap_or(u64::MAX),
                    );
                if due > now {
                    tokio::time::sleep_until(due).await;
                }
            }
            match self.make_batch(start, end) {
                Ok(batch) if batch.num_rows() == 0 => continue,
                Ok(batch) if batch.num_rows() > self.batch_size => {
                    let mut offset = 0;
                    while offset < batch.num_rows() {
                        let len = self.batch_size.min(batch.num_rows() - offset);
                        self.pending.push_back(batch.slice(offset, len));
                        offset += len;
                    }
                    return self.pending.pop_front().map(Ok);
                }
                other => return Some(other),
            }
        }
    }

    /// The rows of the events `start..end` (offsets from the first event
    /// number) of the table's kind.
    fn make_batch(&mut self, start: u64, end: u64) -> Result<RecordBatch> {
        let first = self.config.first_event_number as u64;
        let (kind, proportions) = (self.kind, self.proportions);
        let offsets = (start..end).filter(move |off| proportions.is(kind, first + off));
        if self.columns.is_empty() {
            let rows = offsets.count();
            return Ok(RecordBatch::try_new_with_options(
                self.schema.clone(),
                vec![],
                &RecordBatchOptions::new().with_row_count(Some(rows)),
            )?);
        }
        let capacity = (end - start) as usize / self.proportions.denominator() as usize
            * self.proportions.span(kind).1 as usize;
        let mut builders: Vec<ColumnBuilder> = self
            .columns
            .iter()
            .map(|(_, t)| ColumnBuilder::new(t, capacity))
            .collect();
        let mut events = match self.events.take() {
            Some(g) => g,
            None => EventGenerator::new(self.config.clone()),
        };
        for off in offsets {
            // The generator makes event `first_event_number + offset`.
            events = events.with_offset(off);
            let Some(event) = events.next() else { break };
            if event_kind(&event) != kind {
                return Err(DataFusionError::Internal(format!(
                    "nexmark: event {} is not of kind {}",
                    first + off,
                    kind.name()
                )));
            }
            for ((column, _), builder) in self.columns.iter().zip(builders.iter_mut()) {
                let value = match &event {
                    Event::Person(p) => person_value(p, *column),
                    Event::Auction(a) => auction_value(a, *column),
                    Event::Bid(b) => bid_value(b, *column),
                };
                builder.append(value);
            }
        }
        self.events = Some(events);
        let arrays = builders
            .into_iter()
            .map(ColumnBuilder::finish)
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), arrays)?)
    }
}

fn event_kind(event: &Event) -> NexmarkKind {
    match event {
        Event::Person(_) => NexmarkKind::Person,
        Event::Auction(_) => NexmarkKind::Auction,
        Event::Bid(_) => NexmarkKind::Bid,
    }
}

/// One value of an event's column.
enum Value<'a> {
    Int(usize),
    Str(&'a str),
    /// Milliseconds since the epoch.
    Time(u64),
}

fn person_value(p: &Person, column: usize) -> Value<'_> {
    match column {
        0 => Value::Int(p.id),
        1 => Value::Str(&p.name),
        2 => Value::Str(&p.email_address),
        3 => Value::Str(&p.credit_card),
        4 => Value::Str(&p.city),
        5 => Value::Str(&p.state),
        6 => Value::Time(p.date_time),
        _ => Value::Str(&p.extra),
    }
}

fn auction_value(a: &Auction, column: usize) -> Value<'_> {
    match column {
        0 => Value::Int(a.id),
        1 => Value::Str(&a.item_name),
        2 => Value::Str(&a.description),
        3 => Value::Int(a.initial_bid),
        4 => Value::Int(a.reserve),
        5 => Value::Time(a.date_time),
        6 => Value::Time(a.expires),
        7 => Value::Int(a.seller),
        8 => Value::Int(a.category),
        _ => Value::Str(&a.extra),
    }
}

fn bid_value(b: &Bid, column: usize) -> Value<'_> {
    match column {
        0 => Value::Int(b.auction),
        1 => Value::Int(b.bidder),
        2 => Value::Int(b.price),
        3 => Value::Str(&b.channel),
        4 => Value::Str(&b.url),
        5 => Value::Time(b.date_time),
        _ => Value::Str(&b.extra),
    }
}

/// The values of one output column of a batch.
enum ColumnBuilder {
    Int(Vec<i64>),
    /// Milliseconds, written in the declared timestamp type at the end.
    Time(Vec<i64>, DataType),
    Utf8(StringBuilder),
    LargeUtf8(LargeStringBuilder),
    Utf8View(StringViewBuilder),
}

impl ColumnBuilder {
    fn new(t: &DataType, capacity: usize) -> Self {
        match t {
            DataType::Int64 => ColumnBuilder::Int(Vec::with_capacity(capacity)),
            DataType::Timestamp(..) => ColumnBuilder::Time(Vec::with_capacity(capacity), t.clone()),
            DataType::Utf8 => {
                ColumnBuilder::Utf8(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            DataType::LargeUtf8 => {
                ColumnBuilder::LargeUtf8(LargeStringBuilder::with_capacity(capacity, capacity * 16))
            }
            _ => ColumnBuilder::Utf8View(StringViewBuilder::with_capacity(capacity)),
        }
    }

    /// Appends `value`; its kind matches the column's (checked when the table
    /// is created).
    fn append(&mut self, value: Value<'_>) {
        match (self, value) {
            (ColumnBuilder::Int(v), Value::Int(x)) => v.push(x as i64),
            (ColumnBuilder::Time(v, _), Value::Time(ms)) => v.push(ms as i64),
            (ColumnBuilder::Utf8(b), Value::Str(s)) => b.append_value(s),
            (ColumnBuilder::LargeUtf8(b), Value::Str(s)) => b.append_value(s),
            (ColumnBuilder::Utf8View(b), Value::Str(s)) => b.append_value(s),
            _ => unreachable!(
                "nexmark: a column's type is checked against its values when the table is created"
            ),
        }
    }

    fn finish(self) -> Result<ArrayRef> {
        Ok(match self {
            ColumnBuilder::Int(v) => Arc::new(Int64Array::from(v)),
            ColumnBuilder::Time(ms, t) => {
                let scale = |f: &dyn Fn(i64) -> Option<i64>| -> Result<Vec<i64>> {
                    ms.iter()
                        .map(|v| {
                            f(*v).ok_or_else(|| {
                                DataFusionError::Execution(format!(
                                    "nexmark: the time {v} ms since the epoch does not fit {}",
                                    sql_type_name(&t)
                                ))
                            })
                        })
                        .collect()
                };
                let tz = match &t {
                    DataType::Timestamp(_, tz) => tz.clone(),
                    _ => None,
                };
                match &t {
                    DataType::Timestamp(TimeUnit::Second, _) => Arc::new(
                        TimestampSecondArray::from(
                            ms.iter().map(|v| v.div_euclid(1000)).collect::<Vec<_>>(),
                        )
                        .with_timezone_opt(tz),
                    ) as ArrayRef,
                    DataType::Timestamp(TimeUnit::Millisecond, _) => {
                        Arc::new(TimestampMillisecondArray::from(ms).with_timezone_opt(tz))
                    }
                    DataType::Timestamp(TimeUnit::Microsecond, _) => Arc::new(
                        TimestampMicrosecondArray::from(scale(&|v| v.checked_mul(1_000))?)
                            .with_timezone_opt(tz),
                    ),
                    _ => Arc::new(
                        TimestampNanosecondArray::from(scale(&|v| v.checked_mul(1_000_000))?)
                            .with_timezone_opt(tz),
                    ),
                }
            }
            ColumnBuilder::Utf8(mut b) => Arc::new(b.finish()),
            ColumnBuilder::LargeUtf8(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8View(mut b) => Arc::new(b.finish()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int64Type, TimestampMillisecondType};
    use datafusion::prelude::{SessionConfig, SessionContext};
    use futures::StreamExt;
    use std::collections::HashMap;

    fn opts(pairs: &[(&str, &str)]) -> TableOptions {
        let mut all = vec![("connector".to_string(), "nexmark".to_string())];
        all.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        TableOptions::new(all)
    }

    fn table(pairs: &[(&str, &str)]) -> NexmarkTable {
        NexmarkTable::try_new("t", None, opts(pairs)).unwrap()
    }

    fn error(schema: Option<SchemaRef>, pairs: &[(&str, &str)]) -> String {
        NexmarkTable::try_new("t", schema, opts(pairs))
            .unwrap_err()
            .to_string()
    }

    async fn collect_with(
        t: NexmarkTable,
        projection: Option<Vec<usize>>,
        config: SessionConfig,
    ) -> Vec<RecordBatch> {
        let ctx = SessionContext::new_with_config(config);
        let plan = t
            .scan(&ctx.state(), projection.as_ref(), &[], None)
            .await
            .unwrap();
        datafusion::physical_plan::collect(plan, ctx.task_ctx())
            .await
            .unwrap()
    }

    async fn collect(t: NexmarkTable) -> RecordBatch {
        let batches = collect_with(t, None, SessionConfig::new()).await;
        let schema = batches[0].schema();
        arrow::compute::concat_batches(&schema, &batches).unwrap()
    }

    fn rows(batches: &[RecordBatch]) -> usize {
        batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Every row as text, sorted: the rows as a multiset, whatever their order.
    fn sorted_rows(batch: &RecordBatch) -> Vec<String> {
        let mut out: Vec<String> = (0..batch.num_rows())
            .map(|r| {
                (0..batch.num_columns())
                    .map(|c| {
                        arrow::util::display::array_value_to_string(batch.column(c), r).unwrap()
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        out.sort();
        out
    }

    fn ints(batch: &RecordBatch, name: &str) -> Vec<i64> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    }

    fn times(batch: &RecordBatch, name: &str) -> Vec<i64> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_primitive::<TimestampMillisecondType>()
            .values()
            .to_vec()
    }

    #[tokio::test]
    async fn events_num_is_split_1_3_46_across_the_three_tables_as_the_crate_generates() {
        let mut counts = HashMap::new();
        for kind in ["person", "auction", "bid"] {
            let t = table(&[("nexmark.table", kind), ("events.num", "1000")]);
            assert_eq!(t.boundedness(), Boundedness::Bounded);
            let expected = t.total_rows().unwrap();
            let n = collect(t).await.num_rows() as u64;
            assert_eq!(n, expected);
            counts.insert(kind, n);
        }
        assert_eq!(
            (counts["person"], counts["auction"], counts["bid"]),
            (20, 60, 920)
        );
        assert_eq!(counts.values().sum::<u64>(), 1000);
        // The crate's own generator, run over the same 1000 events.
        let config = NexmarkConfig {
            base_time: DEFAULT_BASE_TIME_MS,
            first_rate: DEFAULT_FIRST_EVENT_RATE as usize,
            next_rate: DEFAULT_FIRST_EVENT_RATE as usize,
            ..NexmarkConfig::default()
        };
        let events: Vec<Event> = EventGenerator::new(config).take(1000).collect();
        let crate_bids: Vec<&Bid> = events
            .iter()
            .filter_map(|e| match e {
                Event::Bid(b) => Some(b),
                _ => None,
            })
            .collect();
        assert_eq!(crate_bids.len(), 920);
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, Event::Person(_)))
                .count(),
            20
        );
        // The same bids, value for value (one partition keeps their order).
        let config = SessionConfig::new().with_target_partitions(1);
        let batches = collect_with(
            table(&[("nexmark.table", "bid"), ("events.num", "1000")]),
            None,
            config,
        )
        .await;
        let bids = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(
            ints(&bids, "price"),
            crate_bids
                .iter()
                .map(|b| b.price as i64)
                .collect::<Vec<_>>()
        );
        assert_eq!(
            ints(&bids, "auction"),
            crate_bids
                .iter()
                .map(|b| b.auction as i64)
                .collect::<Vec<_>>()
        );
        assert_eq!(
            times(&bids, "datetime"),
            crate_bids
                .iter()
                .map(|b| b.date_time as i64)
                .collect::<Vec<_>>()
        );
        let urls: Vec<String> = bids
            .column_by_name("url")
            .unwrap()
            .as_string_view()
            .iter()
            .map(|s| s.unwrap().to_string())
            .collect();
        assert_eq!(
            urls,
            crate_bids.iter().map(|b| b.url.clone()).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn total_rows_counts_the_events_of_the_kind_in_any_range() {
        let count = |kind: &str, first: &str, n: &str| {
            table(&[
                ("nexmark.table", kind),
                ("events.num", n),
                ("first-event.number", first),
            ])
            .total_rows()
            .unwrap()
        };
        assert_eq!(count("person", "0", "1"), 1);
        assert_eq!(count("auction", "0", "1"), 0);
        assert_eq!(count("auction", "0", "4"), 3);
        assert_eq!(count("bid", "0", "5"), 1);
        assert_eq!(count("person", "49", "2"), 1);
        assert_eq!(count("bid", "3", "50"), 46);
        for (first, n) in [("7", "333"), ("1234", "10001"), ("50", "49")] {
            let total: u64 = ["person", "auction", "bid"]
                .iter()
                .map(|k| count(k, first, n))
                .sum();
            assert_eq!(total, n.parse::<u64>().unwrap());
        }
        // And the scan emits exactly that many rows.
        for kind in ["person", "auction", "bid"] {
            let t = table(&[
                ("nexmark.table", kind),
                ("events.num", "333"),
                ("first-event.number", "7"),
            ]);
            let expected = t.total_rows().unwrap() as usize;
            assert_eq!(collect(t).await.num_rows(), expected, "{kind}");
        }
    }

    #[tokio::test]
    async fn runs_repeat_whatever_the_partitions_and_batch_size() {
        for kind in ["person", "auction", "bid"] {
            let pairs = [("nexmark.table", kind), ("events.num", "20000")];
            let a = collect(table(&pairs)).await;
            let b = collect(table(&pairs)).await;
            assert_eq!(a, b, "{kind}: the same rows in the same order");
            let config = SessionConfig::new()
                .with_target_partitions(3)
                .with_batch_size(37);
            let batches = collect_with(table(&pairs), None, config).await;
            assert!(batches.iter().all(|b| b.num_rows() <= 37));
            let c = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
            assert_eq!(
                sorted_rows(&a),
                sorted_rows(&c),
                "{kind}: the same rows in other partitions"
            );
            let config = SessionConfig::new()
                .with_target_partitions(1)
                .with_batch_size(100_000);
            let batches = collect_with(table(&pairs), None, config).await;
            assert_eq!(batches.len(), 1, "{kind}: one chunk of events");
            assert_eq!(sorted_rows(&a), sorted_rows(&batches[0]));
        }
    }

    #[tokio::test]
    async fn times_start_at_base_time_and_follow_the_rate() {
        let t = collect(table(&[
            ("nexmark.table", "person"),
            ("events.num", "10000"),
        ]))
        .await;
        let ts = times(&t, "datetime");
        assert_eq!(ts.iter().min(), Some(&(DEFAULT_BASE_TIME_MS as i64)));
        // 10 000 000 events per second: 10 000 events per millisecond.
        assert!(
            ts.iter().all(|v| *v <= DEFAULT_BASE_TIME_MS as i64 + 1),
            "{ts:?}"
        );
        // 1000 events per second: event n at base + n ms.
        let pairs = [
            ("nexmark.table", "bid"),
            ("events.num", "2000"),
            ("first-event.rate", "1000"),
            ("base-time", "2024-06-01 12:00:00"),
        ];
        let base = 1_717_243_200_000_i64;
        let config = SessionConfig::new().with_target_partitions(1);
        let batches = collect_with(table(&pairs), None, config).await;
        let b = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let ts = times(&b, "datetime");
        assert_eq!(ts.first(), Some(&(base + 4)), "the first bid is event 4");
        assert_eq!(ts.last(), Some(&(base + 1999)));
        assert!(ts.windows(2).all(|w| w[0] < w[1]));
        // base-time also takes milliseconds and ISO timestamps.
        assert_eq!(
            table(&[("nexmark.table", "bid"), ("base-time", "1717243200000")]).base_time_ms,
            base as u64
        );
        assert_eq!(
            table(&[
                ("nexmark.table", "bid"),
                ("base-time", "2024-06-01T12:00:00Z")
            ])
            .base_time_ms,
            base as u64
        );
        // Auctions expire after they start.
        let a = collect(table(&[
            ("nexmark.table", "auction"),
            ("events.num", "5000"),
            ("first-event.rate", "1000"),
        ]))
        .await;
        let (start, expires) = (times(&a, "datetime"), times(&a, "expires"));
        assert!(start.iter().zip(&expires).all(|(s, e)| s < e));
    }

    #[tokio::test]
    async fn values_are_in_the_benchmark_ranges() {
        let p = collect(table(&[
            ("nexmark.table", "person"),
            ("events.num", "10000"),
        ]))
        .await;
        assert_eq!(ints(&p, "id"), (1000..1200).collect::<Vec<_>>());
        let states: std::collections::BTreeSet<String> = p
            .column_by_name("state")
            .unwrap()
            .as_string_view()
            .iter()
            .map(|s| s.unwrap().to_string())
            .collect();
        assert!(
            states
                .iter()
                .all(|s| ["az", "ca", "id", "or", "wa", "wy"].contains(&s.as_str())),
            "{states:?}"
        );
        let a = collect(table(&[
            ("nexmark.table", "auction"),
            ("events.num", "10000"),
        ]))
        .await;
        assert_eq!(ints(&a, "id"), (1000..1600).collect::<Vec<_>>());
        assert!(ints(&a, "category").iter().all(|c| (10..15).contains(c)));
        assert!(ints(&a, "seller").iter().all(|s| (1000..1210).contains(s)));
        assert!(
            ints(&a, "initialbid")
                .iter()
                .zip(ints(&a, "reserve"))
                .all(|(i, r)| *i > 0 && r >= *i)
        );
        let b = collect(table(&[("nexmark.table", "bid"), ("events.num", "10000")])).await;
        assert!(ints(&b, "auction").iter().all(|a| (1000..1610).contains(a)));
        assert!(ints(&b, "bidder").iter().all(|a| (1000..1210).contains(a)));
        assert!(
            ints(&b, "price")
                .iter()
                .all(|p| (100..=100_000_000).contains(p))
        );
    }

    #[tokio::test]
    async fn first_event_number_continues_the_same_stream() {
        let all = collect(table(&[("nexmark.table", "bid"), ("events.num", "1000")])).await;
        let tail = table(&[
            ("nexmark.table", "bid"),
            ("events.num", "500"),
            ("first-event.number", "500"),
        ]);
        assert_eq!(tail.total_rows(), Some(460));
        let tail = collect(tail).await;
        let config = SessionConfig::new().with_target_partitions(1);
        let head = collect_with(
            table(&[("nexmark.table", "bid"), ("events.num", "500")]),
            None,
            config,
        )
        .await;
        let head = arrow::compute::concat_batches(&head[0].schema(), &head).unwrap();
        let mut both = sorted_rows(&head);
        both.extend(sorted_rows(&tail));
        both.sort();
        assert_eq!(both, sorted_rows(&all));
    }

    #[tokio::test]
    async fn projection_and_count_star() {
        let pairs = [("nexmark.table", "auction"), ("events.num", "5000")];
        let full = collect(table(&pairs)).await;
        let batches = collect_with(table(&pairs), Some(vec![8, 0]), SessionConfig::new()).await;
        let some = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(some.schema().field(0).name(), "category");
        assert_eq!(some.column(0), full.column(8));
        assert_eq!(some.column(1), full.column(0));
        let batches = collect_with(table(&pairs), Some(vec![]), SessionConfig::new()).await;
        assert_eq!(rows(&batches), 300);
        assert_eq!(batches[0].num_columns(), 0);
    }

    #[tokio::test]
    async fn limit_over_an_unbounded_table_ends() {
        let t = table(&[("nexmark.table", "bid")]);
        assert_eq!(t.boundedness(), Boundedness::Unbounded);
        assert_eq!(t.total_rows(), None);
        let ctx = SessionContext::new();
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
        ctx.register_table("bid", Arc::new(t)).unwrap();
        for (sql, expected) in [
            ("SELECT * FROM bid LIMIT 7", 7),
            ("SELECT price FROM (SELECT * FROM bid LIMIT 20000)", 20000),
        ] {
            let df = ctx.sql(sql).await.unwrap();
            let batches = tokio::time::timeout(Duration::from_secs(30), df.collect())
                .await
                .expect("ends")
                .unwrap();
            assert_eq!(rows(&batches), expected, "{sql}");
        }
        // 'events.num' = '0' is Flink's "no end".
        assert_eq!(
            table(&[("nexmark.table", "bid"), ("events.num", "0")]).boundedness(),
            Boundedness::Unbounded
        );
        let t: Arc<dyn TableProvider> =
            Arc::new(table(&[("nexmark.table", "person"), ("events.num", "10")]));
        assert_eq!(crate::boundedness_of(t.as_ref()), Boundedness::Bounded);
        let t: Arc<dyn TableProvider> = Arc::new(table(&[("nexmark.table", "person")]));
        assert_eq!(crate::boundedness_of(t.as_ref()), Boundedness::Unbounded);
    }

    #[tokio::test]
    async fn rate_limited_events_are_paced() {
        // 1500 events at 1000 per second, in chunks of 100 events: the last
        // chunk (events 1400..1500) is due 1.4 s after the start.
        let pairs = [
            ("nexmark.table", "bid"),
            ("events.num", "1500"),
            ("first-event.rate", "1000"),
            ("rate.limited", "true"),
        ];
        let started = std::time::Instant::now();
        let batches = collect_with(
            table(&pairs),
            None,
            SessionConfig::new().with_target_partitions(2),
        )
        .await;
        let elapsed = started.elapsed();
        assert_eq!(rows(&batches), 1380);
        assert!(batches.len() >= 15, "{}", batches.len());
        assert!(
            elapsed >= Duration::from_millis(1350) && elapsed < Duration::from_secs(10),
            "{elapsed:?}"
        );
        // The rows do not depend on the pacing.
        let unpaced = collect(table(&pairs[..3])).await;
        let paced = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(sorted_rows(&paced), sorted_rows(&unpaced));
    }

    fn field(name: &str, t: DataType) -> Field {
        Field::new(name, t, true)
    }

    #[tokio::test]
    async fn declared_columns_in_any_order_and_case_keep_their_types_and_metadata() {
        let ts_us = DataType::Timestamp(TimeUnit::Microsecond, None);
        let watermark = HashMap::from([(
            "tributary.watermark.delay_ms".to_string(),
            "4000".to_string(),
        )]);
        let schema = Arc::new(Schema::new(vec![
            field("extra", DataType::Utf8),
            field("dateTime", ts_us.clone()).with_metadata(watermark.clone()),
            field("url", DataType::LargeUtf8),
            field("channel", DataType::Utf8View),
            field("price", DataType::Int64),
            field("bidder", DataType::Int64),
            field("auction", DataType::Int64),
        ]));
        let t = NexmarkTable::try_new(
            "t",
            Some(schema.clone()),
            opts(&[("nexmark.table", "bid"), ("events.num", "100")]),
        )
        .unwrap();
        assert_eq!(t.schema(), schema);
        let b = collect(t).await;
        assert_eq!(b.schema().field(1).metadata(), &watermark);
        assert_eq!(b.column(1).data_type(), &ts_us);
        assert_eq!(b.column(2).data_type(), &DataType::LargeUtf8);
        let default = collect(table(&[("nexmark.table", "bid"), ("events.num", "100")])).await;
        let us = b
            .column(1)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
            .values();
        assert_eq!(
            us.iter().map(|v| v / 1000).collect::<Vec<_>>(),
            times(&default, "datetime")
        );
        assert_eq!(b.column(4), default.column(2));
        assert_eq!(
            b.column(0).as_string::<i32>().value(5),
            default.column(6).as_string_view().value(5)
        );
    }

    #[test]
    fn declared_columns_must_match_the_table() {
        let bid = |fields: Vec<Field>| Some(Arc::new(Schema::new(fields)) as SchemaRef);
        let all = || -> Vec<Field> {
            NexmarkKind::Bid
                .schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect::<Vec<_>>()
        };
        let o = [("nexmark.table", "bid")];
        let mut fields = all();
        fields[2] = field("prise", DataType::Int64);
        let e = error(bid(fields), &o);
        assert!(
            e.contains("table 't': column 'prise' is not a column of the nexmark bid table (did you mean 'price'?)"),
            "{e}"
        );
        assert!(e.contains("its columns are: auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, datetime TIMESTAMP(3), extra STRING"), "{e}");
        let mut fields = all();
        fields.truncate(5);
        let e = error(bid(fields), &o);
        assert!(
            e.contains(
                "table 't': missing columns 'datetime', 'extra' of the nexmark bid table; declare all its columns"
            ),
            "{e}"
        );
        assert!(e.contains("or leave the column list out"), "{e}");
        let mut fields = all();
        fields.push(field("PRICE", DataType::Int64));
        let e = error(bid(fields), &o);
        assert!(e.contains("column 'price' is declared twice"), "{e}");
        let mut fields = all();
        fields[2] = field("price", DataType::Int32);
        let e = error(bid(fields), &o);
        assert!(
            e.contains("column 'price' is declared INT, but the nexmark bid table's column 'price' is BIGINT"),
            "{e}"
        );
        let mut fields = all();
        fields[5] = field("datetime", DataType::Utf8);
        let e = error(bid(fields), &o);
        assert!(
            e.contains(
                "is declared STRING, but the nexmark bid table's column 'datetime' is TIMESTAMP(3)"
            ),
            "{e}"
        );
        // The person and auction tables have their own columns.
        let e = error(bid(all()), &[("nexmark.table", "person")]);
        assert!(
            e.contains("column 'auction' is not a column of the nexmark person table"),
            "{e}"
        );
        assert!(e.contains("id BIGINT, name STRING, emailaddress STRING, creditcard STRING, city STRING, state STRING, datetime TIMESTAMP(3), extra STRING"), "{e}");
    }

    #[test]
    fn options_are_checked() {
        let e = error(None, &[("nexmark.table", "bid"), ("events-num", "5")]);
        assert!(
            e.contains("unsupported option 'events-num' for connector 'nexmark' (did you mean 'events.num'?)"),
            "{e}"
        );
        assert!(e.contains("valid options are: connector, nexmark.table, events.num, first-event.rate, rate.limited, first-event.number, base-time"), "{e}");
        let e = error(None, &[("rate-limited", "true"), ("nexmark.table", "bid")]);
        assert!(e.contains("did you mean 'rate.limited'?"), "{e}");
        let e = error(None, &[]);
        assert!(
            e.contains("table 't': missing option 'nexmark.table'; add 'nexmark.table' = 'bid'"),
            "{e}"
        );
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("nexmark.table", "bids")],
                "invalid value 'bids' for option 'nexmark.table': expected 'person', 'auction' or 'bid'",
            ),
            (
                &[("nexmark.table", "bid"), ("events.num", "-1")],
                "invalid value '-1' for option 'events.num': expected a non-negative integer",
            ),
            (
                &[("nexmark.table", "bid"), ("events.num", "1e6")],
                "invalid value '1e6' for option 'events.num'",
            ),
            (
                &[("nexmark.table", "bid"), ("first-event.rate", "0")],
                "invalid value '0' for option 'first-event.rate': expected a positive integer (events per second, at most 2147483647)",
            ),
            (
                &[("nexmark.table", "bid"), ("first-event.rate", "fast")],
                "invalid value 'fast' for option 'first-event.rate'",
            ),
            (
                &[("nexmark.table", "bid"), ("first-event.rate", "2147483648")],
                "invalid value '2147483648' for option 'first-event.rate'",
            ),
            (
                &[("nexmark.table", "bid"), ("rate.limited", "yes")],
                "invalid value 'yes' for option 'rate.limited': expected 'true' or 'false'",
            ),
            (
                &[("nexmark.table", "bid"), ("first-event.number", "x")],
                "invalid value 'x' for option 'first-event.number': expected a non-negative integer",
            ),
            (
                &[
                    ("nexmark.table", "bid"),
                    ("first-event.number", "1152921504606846976"),
                    ("events.num", "1"),
                ],
                "invalid value '1' for option 'events.num': expected at most 0 after 'first-event.number'",
            ),
            (
                &[("nexmark.table", "bid"), ("base-time", "yesterday")],
                "invalid value 'yesterday' for option 'base-time': expected milliseconds since 1970-01-01T00:00:00Z, or a timestamp",
            ),
            (
                &[("nexmark.table", "bid"), ("base-time", "-5")],
                "invalid value '-5' for option 'base-time'",
            ),
        ];
        for (pairs, expected) in cases {
            let e = error(None, pairs);
            assert!(e.contains(expected), "{pairs:?}: {e}");
            assert!(e.starts_with("table 't': "), "{e}");
        }
        // Table names in any case.
        assert_eq!(
            table(&[("nexmark.table", "Person")]).kind(),
            NexmarkKind::Person
        );
    }
}

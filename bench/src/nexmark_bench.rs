//! Nexmark queries over the same bids in three engines, in one run:
//! plain DataFusion (batch), Tributary BATCH and Tributary STREAMING.
//!
//! ```sh
//! cargo run --release -p tributary-bench --bin nexmark-bench -- [--events 10000000] [--queries q0,q1,...] [--parallelism 2] \
//!     [--engines datafusion,batch,streaming] [--repeat N] [--no-check] [--set table.exec.mini-batch.enabled=true ...]
//! ```
//!
//! The events come from Tributary's `nexmark` connector (the `nexmark`
//! crate's generator) and are materialized in memory first, so generation is
//! outside every measured time. Each engine then reads the same Arrow
//! batches from an in-memory table. Times are wall-clock seconds of running
//! the query to its end (STREAMING: draining the whole changelog); STREAMING
//! throughput is events (all kinds, as in Nexmark) per second, and per core
//! (divided by `--parallelism`, one task slot a core); STREAMING's memory
//! is how far the process's resident set peaked during the STREAMING runs
//! above where it stood when they started (`VmHWM`, reset then, less
//! `VmRSS` then), in MiB: the generated events and memory the allocator
//! kept from earlier queries are not counted, and state that reuses the
//! latter is undercounted. Queries are
//! Flink's Nexmark SQL (<https://github.com/nexmark/nexmark>) with DataFusion
//! spellings: `DATE_FORMAT(ts, 'yyyy-MM-dd')` → `to_char(ts, '%Y-%m-%d')`,
//! `HOUR(ts)` → `EXTRACT(HOUR FROM ts)`, the `count_char` UDF of q14 → string
//! length arithmetic; q11's SESSION window has no DataFusion form, and q21 /
//! q22 use Flink functions DataFusion lacks (`REGEXP_EXTRACT`,
//! `SPLIT_INDEX`), so those columns are empty.
//!
//! Answers are checked in the same run (unless `--no-check`): after the
//! timed runs, each engine runs the query once more, untimed, and its rows
//! — STREAMING's changelog folded into the table it describes — are
//! compared with Tributary BATCH's, in any order, as row digests
//! (`tpch::answers::row_digests`; numbers to 9 significant digits).
//! DataFusion is compared where its form has the same columns. A difference
//! is printed as `DIFFERENT` in the table and makes the exit status 3.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::StringArray;
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use tributary_bench::process_memory::{cpu_seconds, reset_peak, status_mib};
use tributary_bench::tpch::answers;
use tributary_engine::changelog;
use tributary_engine::{RuntimeMode, Session};

/// (name, Tributary SQL, DataFusion SQL if it has a form).
const QUERIES: &[(&str, &str, Option<&str>)] = &[
    ("q0", "SELECT auction, bidder, price, datetime, extra FROM bid", Some("same")),
    ("q1", "SELECT auction, bidder, 0.908 * price AS price, datetime, extra FROM bid", Some("same")),
    ("q2", "SELECT auction, price FROM bid WHERE auction % 123 = 0", Some("same")),
    (
        "q3",
        "SELECT P.name, P.city, P.state, A.id
         FROM auction AS A INNER JOIN person AS P ON A.seller = P.id
         WHERE A.category = 10 AND (P.state = 'or' OR P.state = 'id' OR P.state = 'ca')",
        Some("same"),
    ),
    (
        "q4",
        "SELECT Q.category, AVG(Q.final) AS avg_final FROM (
           SELECT MAX(B.price) AS final, A.category
           FROM auction A, bid B
           WHERE A.id = B.auction AND B.datetime BETWEEN A.datetime AND A.expires
           GROUP BY A.id, A.category) Q
         GROUP BY Q.category",
        Some("same"),
    ),
    (
        "q20",
        "SELECT auction, bidder, price, channel, url, B.datetime, B.extra,
           itemname, description, initialbid, reserve, A.datetime AS a_datetime, expires, seller, category, A.extra AS a_extra
         FROM bid AS B INNER JOIN auction AS A ON B.auction = A.id
         WHERE A.category = 10",
        Some("same"),
    ),
    (
        "q5",
        "SELECT AuctionBids.auction, AuctionBids.num
         FROM (
           SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime
           FROM TABLE(HOP(TABLE bid, DESCRIPTOR(datetime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
           GROUP BY auction, window_start, window_end
         ) AS AuctionBids
         JOIN (
           SELECT max(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime
           FROM (
             SELECT count(*) AS num, window_start AS starttime, window_end AS endtime
             FROM TABLE(HOP(TABLE bid, DESCRIPTOR(datetime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
             GROUP BY auction, window_start, window_end
           ) AS CountBids
           GROUP BY CountBids.starttime, CountBids.endtime
         ) AS MaxBids
         ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.endtime = MaxBids.endtime
            AND AuctionBids.num >= MaxBids.maxn",
        None,
    ),
    (
        "q7",
        "SELECT B.auction, B.price, B.bidder, B.datetime, B.extra
         FROM bid B
         JOIN (
           SELECT MAX(price) AS maxprice, window_end AS datetime
           FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(datetime), INTERVAL '10' SECOND))
           GROUP BY window_start, window_end
         ) B1
         ON B.price = B1.maxprice
         WHERE B.datetime BETWEEN B1.datetime - INTERVAL '10' SECOND AND B1.datetime",
        Some(
            "SELECT B.auction, B.price, B.bidder, B.datetime, B.extra
             FROM bid B
             JOIN (
               SELECT MAX(price) AS maxprice, date_bin(INTERVAL '10 seconds', datetime) + INTERVAL '10 seconds' AS datetime
               FROM bid GROUP BY date_bin(INTERVAL '10 seconds', datetime)
             ) B1
             ON B.price = B1.maxprice
             WHERE B.datetime BETWEEN B1.datetime - INTERVAL '10 seconds' AND B1.datetime",
        ),
    ),
    (
        "q8",
        "SELECT P.id, P.name, P.starttime
         FROM (
           SELECT id, name, window_start AS starttime, window_end AS endtime
           FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(datetime), INTERVAL '10' SECOND))
           GROUP BY id, name, window_start, window_end
         ) P
         JOIN (
           SELECT seller, window_start AS starttime, window_end AS endtime
           FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(datetime), INTERVAL '10' SECOND))
           GROUP BY seller, window_start, window_end
         ) A
         ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime",
        Some(
            "SELECT P.id, P.name, P.starttime
             FROM (
               SELECT id, name, date_bin(INTERVAL '10 seconds', datetime) AS starttime
               FROM person GROUP BY id, name, date_bin(INTERVAL '10 seconds', datetime)
             ) P
             JOIN (
               SELECT seller, date_bin(INTERVAL '10 seconds', datetime) AS starttime
               FROM auction GROUP BY seller, date_bin(INTERVAL '10 seconds', datetime)
             ) A
             ON P.id = A.seller AND P.starttime = A.starttime",
        ),
    ),
    (
        "q9",
        "SELECT id, itemname, description, initialbid, reserve, datetime, expires, seller, category, extra,
           auction, bidder, price, bid_datetime, bid_extra
         FROM (
           SELECT A.*, B.auction, B.bidder, B.price, B.datetime AS bid_datetime, B.extra AS bid_extra,
             ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.datetime ASC) AS rownum
           FROM auction A, bid B
           WHERE A.id = B.auction AND B.datetime BETWEEN A.datetime AND A.expires)
         WHERE rownum <= 1",
        Some("same"),
    ),
    (
        "q11",
        "SELECT bidder, COUNT(*) AS bid_count, window_start, window_end
         FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(datetime), INTERVAL '10' SECOND))
         GROUP BY bidder, window_start, window_end",
        None,
    ),
    (
        "q14",
        "SELECT auction, bidder, 0.908 * price AS price,
           CASE WHEN EXTRACT(HOUR FROM datetime) >= 8 AND EXTRACT(HOUR FROM datetime) <= 18 THEN 'dayTime'
                WHEN EXTRACT(HOUR FROM datetime) <= 6 OR EXTRACT(HOUR FROM datetime) >= 20 THEN 'nightTime'
                ELSE 'otherTime' END AS bidTimeType,
           datetime, extra, LENGTH(extra) - LENGTH(REPLACE(extra, 'c', '')) AS c_counts
         FROM bid WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000",
        Some("same"),
    ),
    (
        "q15",
        "SELECT to_char(datetime, '%Y-%m-%d') AS day,
           COUNT(*) AS total_bids,
           COUNT(*) FILTER (WHERE price < 10000) AS rank1_bids,
           COUNT(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
           COUNT(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
           COUNT(DISTINCT bidder) AS total_bidders,
           COUNT(DISTINCT bidder) FILTER (WHERE price < 10000) AS rank1_bidders,
           COUNT(DISTINCT bidder) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bidders,
           COUNT(DISTINCT bidder) FILTER (WHERE price >= 1000000) AS rank3_bidders,
           COUNT(DISTINCT auction) AS total_auctions,
           COUNT(DISTINCT auction) FILTER (WHERE price < 10000) AS rank1_auctions,
           COUNT(DISTINCT auction) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_auctions,
           COUNT(DISTINCT auction) FILTER (WHERE price >= 1000000) AS rank3_auctions
         FROM bid GROUP BY to_char(datetime, '%Y-%m-%d')",
        Some("same"),
    ),
    (
        "q17",
        "SELECT auction, to_char(datetime, '%Y-%m-%d') AS day,
           COUNT(*) AS total_bids,
           COUNT(*) FILTER (WHERE price < 10000) AS rank1_bids,
           COUNT(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
           COUNT(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
           MIN(price) AS min_price, MAX(price) AS max_price, AVG(price) AS avg_price, SUM(price) AS sum_price
         FROM bid GROUP BY auction, to_char(datetime, '%Y-%m-%d')",
        Some("same"),
    ),
    (
        "tumble10s",
        "SELECT auction, window_start, window_end, COUNT(*) AS bids
         FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(datetime), INTERVAL '10' SECOND))
         GROUP BY auction, window_start, window_end",
        Some(
            "SELECT auction, date_bin(INTERVAL '10 seconds', datetime) AS window_start, COUNT(*) AS bids
             FROM bid GROUP BY auction, date_bin(INTERVAL '10 seconds', datetime)",
        ),
    ),
    (
        "q16",
        "SELECT channel, to_char(datetime, '%Y-%m-%d') AS day, MAX(to_char(datetime, '%H:%M')) AS minute,
           COUNT(*) AS total_bids,
           COUNT(*) FILTER (WHERE price < 10000) AS rank1_bids,
           COUNT(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
           COUNT(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
           COUNT(DISTINCT bidder) AS total_bidders,
           COUNT(DISTINCT bidder) FILTER (WHERE price < 10000) AS rank1_bidders,
           COUNT(DISTINCT bidder) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bidders,
           COUNT(DISTINCT bidder) FILTER (WHERE price >= 1000000) AS rank3_bidders,
           COUNT(DISTINCT auction) AS total_auctions,
           COUNT(DISTINCT auction) FILTER (WHERE price < 10000) AS rank1_auctions,
           COUNT(DISTINCT auction) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_auctions,
           COUNT(DISTINCT auction) FILTER (WHERE price >= 1000000) AS rank3_auctions
         FROM bid GROUP BY channel, to_char(datetime, '%Y-%m-%d')",
        Some("same"),
    ),
    (
        "q18",
        "SELECT auction, bidder, price, channel, url, datetime, extra FROM (
           SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY datetime DESC) AS rank_number FROM bid)
         WHERE rank_number <= 1",
        Some("same"),
    ),
    (
        "q19",
        "SELECT * FROM (
           SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number FROM bid)
         WHERE rank_number <= 10",
        Some("same"),
    ),
    (
        "q21",
        "SELECT auction, bidder, price, channel,
           CASE
             WHEN lower(channel) = 'apple' THEN '0'
             WHEN lower(channel) = 'google' THEN '1'
             WHEN lower(channel) = 'facebook' THEN '2'
             WHEN lower(channel) = 'baidu' THEN '3'
             ELSE REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2)
           END AS channel_id
         FROM bid
         WHERE REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2) IS NOT NULL
            OR lower(channel) IN ('apple', 'google', 'facebook', 'baidu')",
        None,
    ),
    (
        "q22",
        "SELECT auction, bidder, price, channel,
           SPLIT_INDEX(url, '/', 3) AS dir1, SPLIT_INDEX(url, '/', 4) AS dir2, SPLIT_INDEX(url, '/', 5) AS dir3
         FROM bid",
        None,
    ),
];

/// The columns an answer is checked on, for the queries whose ROW_NUMBER
/// ORDER BY can tie (bids of the same millisecond, or of the same price): the
/// engines may keep different rows of a tie, alike in these columns only.
/// Read by bench/flink/nexmark_queries.py too.
const TIE_FREE_COLUMNS: &[(&str, &[&str])] = &[
    // The latest bid per (bidder, auction): several may share the latest datetime.
    ("q18", &["auction", "bidder", "datetime"]),
    // The 10 highest bids per auction: which of equal prices is kept, and
    // which rank each of them gets, may differ; the prices at each rank do not.
    ("q19", &["auction", "price", "rank_number"]),
    // The highest bid per auction, earliest first: equal price and time tie.
    (
        "q9",
        &[
            "id",
            "itemname",
            "description",
            "initialbid",
            "reserve",
            "datetime",
            "expires",
            "seller",
            "category",
            "extra",
            "price",
            "bid_datetime",
        ],
    ),
];

/// The columns of an answer that are checked (see [`TIE_FREE_COLUMNS`]).
fn checked_columns(query: &str, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, String> {
    let Some((_, columns)) = TIE_FREE_COLUMNS.iter().find(|(q, _)| *q == query) else {
        return Ok(batches);
    };
    batches
        .iter()
        .map(|b| {
            let indices = columns
                .iter()
                .map(|c| b.schema().index_of(c).map_err(|e| format!("{query}: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            b.project(&indices).map_err(|e| e.to_string())
        })
        .collect()
}

struct Args {
    events: u64,
    queries: Vec<String>,
    parallelism: usize,
    /// `--set key=value`: Tributary settings for both Tributary runs.
    settings: Vec<(String, String)>,
    /// `--engines datafusion,batch,streaming`: which engines run (all by
    /// default; one alone keeps a profile of it clean).
    engines: Vec<String>,
    /// `--repeat N`: runs of each query per engine; the median time is
    /// reported (a profile of N runs also drowns out the data generation).
    repeat: usize,
    /// Compare the engines' answers (`--no-check` skips it, e.g. for a profile).
    check: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        events: 10_000_000,
        queries: vec![],
        parallelism: 2,
        settings: vec![],
        engines: vec!["datafusion".into(), "batch".into(), "streaming".into()],
        repeat: 1,
        check: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--events" => a.events = value()?.parse().map_err(|e| format!("--events: {e}"))?,
            "--queries" => a.queries = value()?.split(',').map(str::to_string).collect(),
            "--parallelism" => {
                a.parallelism = value()?
                    .parse()
                    .map_err(|e| format!("--parallelism: {e}"))?
            }
            "--engines" => {
                a.engines = value()?.split(',').map(str::to_string).collect();
                if let Some(e) = a
                    .engines
                    .iter()
                    .find(|e| !["datafusion", "batch", "streaming"].contains(&e.as_str()))
                {
                    return Err(format!(
                        "--engines: unknown engine {e} (datafusion, batch, streaming)"
                    ));
                }
            }
            "--repeat" => {
                a.repeat = value()?.parse().map_err(|e| format!("--repeat: {e}"))?;
                if a.repeat == 0 {
                    return Err("--repeat: at least 1".into());
                }
            }
            "--no-check" => a.check = false,
            "--set" => {
                let kv = value()?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or(format!("--set {kv}: expected key=value"))?;
                a.settings.push((k.to_string(), v.to_string()));
            }
            "-h" | "--help" => {
                return Err(
                    "usage: nexmark-bench [--events N] [--queries q0,q1,...] [--parallelism P] [--engines datafusion,batch,streaming] [--repeat N] [--no-check] [--set key=value ...]"
                        .into(),
                );
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

/// The run with the median time of `runs` (not empty).
fn median(mut runs: Vec<(f64, u64)>) -> (f64, u64) {
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    runs[runs.len() / 2]
}

/// Runs a query to its end; returns (seconds, rows).
/// Runs `sql` to the end; its wall time (s) and row count. Each run's wall
/// and CPU time go to stderr (`label`), since the CPU time stays meaningful
/// on a busy machine.
async fn time_tributary(session: &Session, sql: &str, label: &str) -> Result<(f64, u64), String> {
    let cpu = cpu_seconds();
    let start = Instant::now();
    let mut result = session.sql(sql).await.map_err(|e| e.to_string())?;
    let mut rows = 0;
    while let Some(b) = result.next().await {
        rows += b.map_err(|e| e.to_string())?.num_rows() as u64;
    }
    let wall = start.elapsed().as_secs_f64();
    eprintln!("{label}: {wall:.3} s, {:.2} CPU-s", cpu_seconds() - cpu);
    Ok((wall, rows))
}

async fn time_datafusion(ctx: &SessionContext, sql: &str) -> Result<(f64, u64), String> {
    let start = Instant::now();
    let mut stream = ctx
        .sql(sql)
        .await
        .map_err(|e| e.to_string())?
        .execute_stream()
        .await
        .map_err(|e| e.to_string())?;
    let mut rows = 0;
    while let Some(b) = stream.next().await {
        rows += b.map_err(|e| e.to_string())?.num_rows() as u64;
    }
    Ok((start.elapsed().as_secs_f64(), rows))
}

/// A query's answer in Tributary: its rows (a STREAMING changelog folded
/// into the table it describes) and its number of columns.
async fn tributary_answer(
    session: &Session,
    sql: &str,
) -> Result<(Vec<RecordBatch>, usize), String> {
    let result = session.sql(sql).await.map_err(|e| e.to_string())?;
    let schema = result.schema();
    let batches = result.collect().await.map_err(|e| e.to_string())?;
    let Ok(data_schema) = changelog::data_schema(&schema) else {
        return Ok((batches, schema.fields().len()));
    };
    let columns = data_schema.fields().len();
    let inserts_only = batches.iter().all(|b| {
        b.column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .is_some_and(|ops| ops.iter().all(|op| op == Some("+I")))
    });
    if !inserts_only {
        let folded = changelog::fold(&schema, &batches).map_err(|e| e.to_string())?;
        return Ok((vec![folded], columns));
    }
    // An append-only changelog is its own table: no need for fold's map of every row.
    let rows = batches
        .iter()
        .map(|b| {
            RecordBatch::try_new(data_schema.clone(), b.columns()[1..].to_vec())
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    Ok((rows, columns))
}

/// Each engine's answer compared with Tributary BATCH's: "equal", or what
/// differs. `answers`: (engine, its rows' digests, its column count).
fn compare_answers(answers: &[(&str, Vec<u64>, usize)]) -> Result<String, String> {
    let Some((reference, expected, columns)) = answers.iter().find(|(e, _, _)| *e == "BATCH")
    else {
        return Ok("–".into());
    };
    let mut differences = Vec::new();
    for (engine, digests, cols) in answers {
        if engine == reference {
            continue;
        }
        if cols != columns {
            // DataFusion's tumble10s has no window_end: not the same answer to compare.
            continue;
        }
        let differ = answers::digest_difference(expected, digests);
        if differ > 0 {
            differences.push(format!(
                "{engine} {} rows vs BATCH {}, {differ} rows in one only",
                digests.len(),
                expected.len()
            ));
        }
    }
    if differences.is_empty() {
        Ok("equal".into())
    } else {
        Err(format!("DIFFERENT: {}", differences.join("; ")))
    }
}

#[tokio::main]
async fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// One Nexmark table generated in memory: its schema (with the
/// watermark on `datetime`, as `WATERMARK FOR datetime AS datetime -
/// INTERVAL '4' SECOND` declares it), the same without, and its batches
/// split into `parallelism` partitions.
struct Generated {
    name: &'static str,
    schema: Arc<Schema>,
    with_watermark: Arc<Schema>,
    partitions: Vec<Vec<RecordBatch>>,
}

async fn generate(args: &Args, name: &'static str) -> Result<Generated, String> {
    let generate = Session::builder()
        .runtime_mode(RuntimeMode::Batch)
        .parallelism(args.parallelism)
        .build()
        .map_err(|e| e.to_string())?;
    let ddl = format!(
        "CREATE TABLE gen WITH ('connector' = 'nexmark', 'nexmark.table' = '{name}', 'events.num' = '{}')",
        args.events
    );
    generate.sql(&ddl).await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let batches: Vec<RecordBatch> = generate
        .sql("SELECT * FROM gen")
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    eprintln!(
        "generated {} events ({rows} {name} rows) in {:.2} s",
        args.events,
        started.elapsed().as_secs_f64()
    );
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or(format!("no {name} rows generated"))?;
    let mut partitions = vec![Vec::new(); args.parallelism.max(1)];
    for (i, b) in batches.into_iter().enumerate() {
        partitions[i % args.parallelism.max(1)].push(b);
    }
    let fields: Vec<Arc<Field>> = schema
        .fields()
        .iter()
        .map(|f| {
            if f.name() == "datetime" {
                let mut m = f.metadata().clone();
                m.insert("tributary.watermark.delay_ms".into(), "4000".into());
                m.insert(
                    "tributary.watermark.expr".into(),
                    "datetime - INTERVAL '4' SECOND".into(),
                );
                Arc::new(f.as_ref().clone().with_metadata(m))
            } else {
                f.clone()
            }
        })
        .collect();
    Ok(Generated {
        name,
        schema: schema.clone(),
        with_watermark: Arc::new(Schema::new(fields)),
        partitions,
    })
}

async fn run(args: Args) -> Result<(), String> {
    // Generate once, outside the measured times.
    let mut tables = vec![generate(&args, "bid").await?];
    let needs = |table: &str| {
        QUERIES.iter().any(|(name, sql, _)| {
            (args.queries.is_empty() || args.queries.iter().any(|q| q == name))
                && sql.contains(table)
        })
    };
    for name in ["auction", "person"] {
        if needs(name) {
            tables.push(generate(&args, name).await?);
        }
    }
    let tributary_session = |mode: RuntimeMode| -> Result<Session, String> {
        let mut builder = Session::builder()
            .runtime_mode(mode)
            .parallelism(args.parallelism);
        for (k, v) in &args.settings {
            builder = builder.config(k, v);
        }
        let s = builder.build().map_err(|e| e.to_string())?;
        for t in &tables {
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    p.iter()
                        .map(|b| b.clone().with_schema(t.with_watermark.clone()))
                        .collect::<Result<Vec<RecordBatch>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}", t.name))?;
            let table =
                MemTable::try_new(t.with_watermark.clone(), parts).map_err(|e| e.to_string())?;
            s.context()
                .register_table(t.name, Arc::new(table))
                .map_err(|e| e.to_string())?;
        }
        Ok(s)
    };
    let batch = tributary_session(RuntimeMode::Batch)?;
    let streaming = tributary_session(RuntimeMode::Streaming)?;
    let datafusion = SessionContext::new_with_config(
        SessionConfig::new().with_target_partitions(args.parallelism),
    );
    for t in &tables {
        datafusion
            .register_table(
                t.name,
                Arc::new(
                    MemTable::try_new(t.schema.clone(), t.partitions.clone())
                        .map_err(|e| e.to_string())?,
                ),
            )
            .map_err(|e| e.to_string())?;
    }

    // The generated events stay resident; a query's peak is measured above
    // that baseline.
    let baseline = status_mib("VmRSS");
    println!("events held in memory: {baseline:.0} MiB resident before the queries");
    println!(
        "| query | DataFusion s | Tributary BATCH s | Tributary STREAMING s | STREAMING events/s | events/s per core | STREAMING / BATCH | STREAMING / DataFusion | STREAMING peak RSS growth MiB | changelog rows | answers |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut wrong = Vec::new();
    for (name, sql, df_sql) in QUERIES {
        if !args.queries.is_empty() && !args.queries.iter().any(|q| q == name) {
            continue;
        }
        let runs = |engine: &str| args.engines.iter().any(|e| e == engine);
        let df = match df_sql {
            Some(s) if runs("datafusion") => {
                let s = if *s == "same" { sql } else { s };
                let mut times = Vec::new();
                for _ in 0..args.repeat {
                    times.push(time_datafusion(&datafusion, s).await?);
                }
                Some(median(times))
            }
            _ => None,
        };
        let b = match runs("batch") {
            true => {
                let mut times = Vec::new();
                for _ in 0..args.repeat {
                    times.push(time_tributary(&batch, sql, &format!("{name} BATCH")).await?);
                }
                Some(median(times).0)
            }
            false => None,
        };
        reset_peak();
        let before = status_mib("VmRSS");
        let streamed = match runs("streaming") {
            true => {
                let mut times = Vec::new();
                for _ in 0..args.repeat {
                    times
                        .push(time_tributary(&streaming, sql, &format!("{name} STREAMING")).await?);
                }
                Some(median(times))
            }
            false => None,
        };
        let peak = status_mib("VmHWM") - before;
        let seconds = |t: Option<f64>| t.map_or_else(|| "–".into(), |t| format!("{t:.3}"));
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "–".into());
        let ratio = |over: Option<f64>| {
            or_dash(
                streamed
                    .zip(over)
                    .map(|((s, _), over)| format!("{:.2}", s / over)),
            )
        };
        let events_per_second = streamed.map(|(s, _)| args.events as f64 / s);
        let checked = if args.check {
            let df_sql = df_sql.map(|s| if s == "same" { *sql } else { s });
            let mut got = Vec::new();
            if let (Some(s), true) = (df_sql, runs("datafusion")) {
                let frame = datafusion.sql(s).await.map_err(|e| e.to_string())?;
                let cols = frame.schema().fields().len();
                let rows = frame.collect().await.map_err(|e| e.to_string())?;
                let rows = checked_columns(name, rows)?;
                got.push(("DataFusion", answers::row_digests(&rows)?, cols));
            }
            for (engine, session, on) in [
                ("BATCH", &batch, runs("batch")),
                ("STREAMING", &streaming, runs("streaming")),
            ] {
                if on {
                    let (rows, cols) = tributary_answer(session, sql).await?;
                    let rows = checked_columns(name, rows)?;
                    got.push((engine, answers::row_digests(&rows)?, cols));
                }
            }
            compare_answers(&got).unwrap_or_else(|e| {
                eprintln!("ANSWER MISMATCH in {name}: {e}");
                wrong.push(name.to_string());
                format!("**{e}**")
            })
        } else {
            "–".into()
        };
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {checked} |",
            seconds(df.map(|(d, _)| d)),
            seconds(b),
            seconds(streamed.map(|(s, _)| s)),
            or_dash(events_per_second.map(|e| format!("{e:.0}"))),
            or_dash(events_per_second.map(|e| format!("{:.0}", e / args.parallelism as f64))),
            ratio(b),
            ratio(df.map(|(d, _)| d)),
            or_dash(streamed.map(|_| format!("{peak:.0}"))),
            or_dash(streamed.map(|(_, rows)| rows.to_string())),
        );
    }
    if !wrong.is_empty() {
        eprintln!("answers differ between engines in: {}", wrong.join(", "));
        std::process::exit(3);
    }
    Ok(())
}

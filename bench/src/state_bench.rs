//! Memory of STREAMING state, measured as the process's resident memory
//! (`VmRSS` / `VmHWM` from `/proc/self/status`, Linux), in two runs:
//!
//! ```sh
//! # an updating aggregate over N distinct keys (default 1,000,000): peak RSS,
//! # next to plain DataFusion running the same aggregate in batch
//! cargo run --release -p tributary-bench --bin state-bench -- keys [N]
//!
//! # a 10-second tumbling window over an unbounded datagen source for S
//! # seconds (default 3600): RSS sampled every 10 s; flat when window state
//! # is freed as windows close
//! cargo run --release -p tributary-bench --bin state-bench -- soak [S] [rows-per-second]
//!
//! # an interval join (bids with their auction's first 10 s) or a window
//! # join (Nexmark q8: new people and new sellers per 10-second window)
//! # over unbounded, rate-limited `nexmark` sources for S seconds (default
//! # 3600): RSS sampled every 10 s; flat when the watermark frees join state
//! cargo run --release -p tributary-bench --bin state-bench -- join-soak interval|window [S] [events-per-second]
//! ```
//!
//! Both write their result rows into a `blackhole` table, so the result is
//! not held in memory: what grows is operator state.

use std::time::{Duration, Instant};

use datafusion::prelude::SessionContext;
use futures::StreamExt;
use tributary_bench::process_memory::{reset_peak, status_mib};
use tributary_engine::{RuntimeMode, Session};

async fn drain(session: &Session, sql: &str) -> Result<u64, String> {
    let mut result = session.sql(sql).await.map_err(|e| e.to_string())?;
    let mut rows = 0;
    while let Some(b) = result.next().await {
        rows += b.map_err(|e| e.to_string())?.num_rows() as u64;
    }
    Ok(rows)
}

/// The updating aggregate over `keys` distinct keys (each key twice, so
/// every key is updated once).
async fn keys(keys: u64) -> Result<(), String> {
    let rows = keys * 2;
    let query = "SELECT k, COUNT(*) AS n, SUM(v) AS total, AVG(v) AS mean, MAX(v) AS top FROM gen GROUP BY k";
    let ddl = format!(
        "CREATE TABLE gen (i BIGINT, v BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '{rows}', 'rows-per-second' = '1000000000',
           'fields.i.kind' = 'sequence', 'fields.i.start' = '1', 'fields.i.end' = '{rows}',
           'fields.v.min' = '1', 'fields.v.max' = '1000', 'seed' = '7');
         CREATE VIEW keyed AS SELECT i % {keys} AS k, v FROM gen;
         CREATE TABLE sink (k BIGINT, n BIGINT, total BIGINT, mean DOUBLE, top BIGINT) WITH ('connector' = 'blackhole')"
    );
    let query = query.replace("FROM gen", "FROM keyed");

    // Plain DataFusion, batch, over the same generated rows (materialized
    // by Tributary's datagen table first, outside the measured part).
    let session = Session::builder()
        .runtime_mode(RuntimeMode::Batch)
        .parallelism(2)
        .build()
        .map_err(|e| e.to_string())?;
    session.sql(&ddl).await.map_err(|e| e.to_string())?;
    let batches = session
        .sql("SELECT * FROM gen")
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let before = status_mib("VmRSS");
    let ctx = SessionContext::new();
    let schema = batches.first().ok_or("no rows generated")?.schema();
    ctx.register_table(
        "gen",
        std::sync::Arc::new(
            datafusion::datasource::MemTable::try_new(schema, vec![batches])
                .map_err(|e| e.to_string())?,
        ),
    )
    .map_err(|e| e.to_string())?;
    ctx.sql(&format!(
        "CREATE VIEW keyed AS SELECT i % {keys} AS k, v FROM gen"
    ))
    .await
    .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let df_rows = ctx
        .sql(&query)
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|b| b.num_rows())
        .sum::<usize>();
    println!(
        "datafusion batch: {df_rows} groups in {:.2} s, RSS before {before:.0} MiB, peak {:.0} MiB",
        started.elapsed().as_secs_f64(),
        status_mib("VmHWM")
    );
    drop(ctx);
    drop(session);
    reset_peak();

    // Tributary STREAMING, generating as it goes (the datagen source), into
    // a blackhole: only the aggregate's state is held.
    let streaming = Session::builder()
        .runtime_mode(RuntimeMode::Streaming)
        .parallelism(2)
        .build()
        .map_err(|e| e.to_string())?;
    streaming.sql(&ddl).await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    drain(&streaming, &format!("INSERT INTO sink {query}")).await?;
    println!(
        "tributary streaming: {keys} keys, {rows} rows in {:.2} s, RSS now {:.0} MiB, peak since DataFusion's run {:.0} MiB",
        started.elapsed().as_secs_f64(),
        status_mib("VmRSS"),
        status_mib("VmHWM")
    );
    Ok(())
}

/// A windowed query over an unbounded source for `seconds`.
async fn soak(seconds: u64, rows_per_second: u64) -> Result<(), String> {
    let ddl = format!(
        "CREATE TABLE events (user_id BIGINT, amount DOUBLE, ts TIMESTAMP(3),
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
         WITH ('connector' = 'datagen', 'rows-per-second' = '{rows_per_second}',
           'fields.user_id.min' = '1', 'fields.user_id.max' = '100000');
         CREATE TABLE sink (window_start TIMESTAMP(3), user_id BIGINT, n BIGINT, total DOUBLE)
           WITH ('connector' = 'blackhole')"
    );
    let insert = "INSERT INTO sink SELECT window_start, user_id, COUNT(*), SUM(amount)
         FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND))
         GROUP BY window_start, window_end, user_id";
    sample_rss(&ddl, insert, seconds, &format!("rows/s {rows_per_second}")).await
}

/// A join over unbounded, rate-limited Nexmark sources for `seconds`: an
/// interval join (`interval`) or a window join (`window`, Nexmark q8).
async fn join_soak(kind: &str, seconds: u64, events_per_second: u64) -> Result<(), String> {
    // The connector's columns, with Flink's Nexmark watermark.
    let source = |name: &str| {
        let columns = match name {
            "bid" => {
                "auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
                 dateTime TIMESTAMP(3), extra STRING"
            }
            "auction" => {
                "id BIGINT, itemName STRING, description STRING, initialBid BIGINT,
                 reserve BIGINT, dateTime TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT,
                 category BIGINT, extra STRING"
            }
            _ => {
                "id BIGINT, name STRING, emailAddress STRING, creditCard STRING, city STRING,
                 state STRING, dateTime TIMESTAMP(3), extra STRING"
            }
        };
        format!(
            "CREATE TABLE {name} ({columns},
               WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND)
             WITH ('connector' = 'nexmark', 'nexmark.table' = '{name}',
               'first-event.rate' = '{events_per_second}', 'rate.limited' = 'true');"
        )
    };
    let (ddl, insert) = match kind {
        "interval" => (
            format!(
                "{}{}
                 CREATE TABLE sink (auction BIGINT, price BIGINT, category BIGINT, datetime TIMESTAMP(3))
                   WITH ('connector' = 'blackhole')",
                source("bid"),
                source("auction")
            ),
            "INSERT INTO sink SELECT B.auction, B.price, A.category, B.datetime
             FROM bid B JOIN auction A ON B.auction = A.id
             AND B.datetime BETWEEN A.datetime AND A.datetime + INTERVAL '10' SECOND",
        ),
        "window" => (
            format!(
                "{}{}
                 CREATE TABLE sink (id BIGINT, name STRING, starttime TIMESTAMP(3))
                   WITH ('connector' = 'blackhole')",
                source("person"),
                source("auction")
            ),
            "INSERT INTO sink SELECT P.id, P.name, P.starttime
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
        ),
        other => return Err(format!("join-soak: '{other}' is not a join kind; use interval or window")),
    };
    sample_rss(
        &ddl,
        insert,
        seconds,
        &format!("{kind} join, events/s {events_per_second}"),
    )
    .await
}

/// Runs `ddl`, then the unbounded `insert` for `seconds`, printing the RSS
/// every 10 s (CSV: `elapsed_s,rss_mib`) and, at the end, the mean RSS of
/// the second minute against the last minute's, labelled `label`.
///
/// # Errors
/// A statement fails, or the unbounded query ends before `seconds`.
async fn sample_rss(ddl: &str, insert: &str, seconds: u64, label: &str) -> Result<(), String> {
    let session = Session::builder()
        .runtime_mode(RuntimeMode::Streaming)
        .parallelism(2)
        .build()
        .map_err(|e| e.to_string())?;
    session.sql(ddl).await.map_err(|e| e.to_string())?;
    let mut result = session.sql(insert).await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let run = tokio::spawn(async move {
        while let Some(b) = result.next().await {
            if let Err(e) = b {
                return Err(e.to_string());
            }
        }
        Ok(())
    });
    println!("elapsed_s,rss_mib");
    let mut samples = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        if run.is_finished() {
            return Err("the unbounded query ended".into());
        }
        let rss = status_mib("VmRSS");
        samples.push(rss);
        println!("{},{rss:.0}", started.elapsed().as_secs());
    }
    run.abort();
    // Compare the second minute with the last one: flat memory means the
    // state does not grow with the number of windows closed.
    if samples.len() >= 12 {
        let early = samples[6..12].iter().sum::<f64>() / 6.0;
        let late = samples[samples.len() - 6..].iter().sum::<f64>() / 6.0;
        println!(
            "{label}: mean RSS in minute 2 {early:.0} MiB, in the last minute {late:.0} MiB ({:+.1}%)",
            (late - early) / early * 100.0
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u64| {
        args.get(i)
            .map(|s| s.parse::<u64>().map_err(|e| format!("'{s}': {e}")))
            .unwrap_or(Ok(default))
    };
    let result = match args.first().map(String::as_str) {
        Some("keys") => match number(1, 1_000_000) {
            Ok(n) => keys(n).await,
            Err(e) => Err(e),
        },
        Some("soak") => match (number(1, 3600), number(2, 100_000)) {
            (Ok(s), Ok(r)) => soak(s, r).await,
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        Some("join-soak") => match (number(2, 3600), number(3, 100_000)) {
            (Ok(s), Ok(r)) => join_soak(args.get(1).map_or("", String::as_str), s, r).await,
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        _ => Err("usage: state-bench keys [N] | soak [seconds] [rows-per-second] | join-soak interval|window [seconds] [events-per-second]".into()),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

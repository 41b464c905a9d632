//! The cross-mode contract on the flight data: folding the STREAMING
//! changelog of a query gives exactly its BATCH result, whatever the
//! parallelism.

use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use tributary_engine::changelog::fold;
use tributary_engine::{RuntimeMode, Session};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

async fn session(mode: RuntimeMode, parallelism: usize) -> Session {
    let ddl = std::fs::read_to_string(root().join("examples/flights_tables.sql")).unwrap();
    let ddl = ddl.replace(
        "'examples/data/",
        &format!("'{}/examples/data/", root().display()),
    );
    let session = Session::builder()
        .runtime_mode(mode)
        .parallelism(parallelism)
        .build()
        .unwrap();
    session.sql(&ddl).await.unwrap().collect().await.unwrap();
    session
}

/// Rows as sorted text; floats rounded to 9 significant digits, since a sum
/// depends on the order rows arrive in.
fn sorted_rows(batch: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for b in batch {
        let fmts: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            let cells: Vec<String> = fmts
                .iter()
                .zip(b.columns())
                .map(|(f, c)| {
                    let s = f.value(r).to_string();
                    if c.data_type().is_floating() {
                        s.parse::<f64>().map(|v| format!("{v:.9e}")).unwrap_or(s)
                    } else {
                        s
                    }
                })
                .collect();
            rows.push(cells.join("|"));
        }
    }
    rows.sort();
    rows
}

async fn check(sql: &str) {
    let batch = session(RuntimeMode::Batch, 2).await;
    let expected = sorted_rows(&batch.sql(sql).await.unwrap().collect().await.unwrap());
    assert!(!expected.is_empty(), "{sql}: BATCH gave no rows");
    for parallelism in [1, 4] {
        let streaming = session(RuntimeMode::Streaming, parallelism).await;
        let result = streaming.sql(sql).await.unwrap();
        assert_eq!(result.mode().unwrap().mode, RuntimeMode::Streaming);
        let schema = result.schema();
        assert_eq!(schema.field(0).name(), "op");
        let changelog = result.collect().await.unwrap();
        let folded = fold(&schema, &changelog).unwrap();
        assert_eq!(
            sorted_rows(&[folded]),
            expected,
            "{sql}: STREAMING at parallelism {parallelism}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projection_and_filter() {
    check("SELECT carrier, flight, dep_delay * 60 AS delay_s, UPPER(dest) FROM flights WHERE month = 3 AND dep_delay > 120").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updating_aggregate_per_carrier() {
    check(
        "SELECT carrier, COUNT(*) AS flights, COUNT(dep_time) AS departed, SUM(distance) AS miles,
                AVG(arr_delay) AS avg_delay, MIN(dep_delay) AS best, MAX(dep_delay) AS worst
         FROM flights GROUP BY carrier",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_clause_having_and_expressions_of_keys() {
    check(
        "SELECT origin, month % 4 AS season, COUNT(*) FILTER (WHERE dep_time IS NULL) AS cancelled
         FROM flights GROUP BY origin, month % 4 HAVING COUNT(*) > 1000",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_over_an_updating_aggregate() {
    // How many carriers fly each number of distinct destinations: the inner
    // counts change as rows arrive, and the outer count takes the retractions.
    check(
        "SELECT n, COUNT(*) AS carriers, MIN(carrier) AS first, MAX(carrier) AS last
         FROM (SELECT carrier, COUNT(DISTINCT dest) AS n FROM flights GROUP BY carrier) GROUP BY n",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_union_all_and_global_aggregates() {
    check("SELECT DISTINCT origin, carrier FROM flights WHERE month = 1").await;
    check("SELECT origin AS airport FROM flights WHERE day = 1 UNION ALL SELECT dest FROM flights WHERE day = 2").await;
    check("SELECT COUNT(*), SUM(air_time), MAX(time_hour) FROM flights").await;
    check("SELECT COUNT(*), SUM(air_time) FROM flights WHERE carrier = 'none'").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regular_joins_agree() {
    // Append-only INNER join, aggregated.
    check(
        "SELECT a.name, COUNT(*) AS flights, SUM(f.distance) AS miles
         FROM flights f JOIN airlines a ON f.carrier = a.carrier GROUP BY a.name",
    )
    .await;
    // Outer join over an updating aggregate; NULL-padded airports.
    check(
        "SELECT p.faa, p.name, t.n FROM airports p
         LEFT JOIN (SELECT dest, COUNT(*) AS n FROM flights WHERE month = 1 GROUP BY dest) t ON p.faa = t.dest
         WHERE p.tz = -5",
    )
    .await;
    // Semi and anti joins with a correlated non-equi condition.
    check(
        "SELECT tailnum, year FROM planes p WHERE EXISTS
           (SELECT 1 FROM flights f WHERE f.tailnum = p.tailnum AND f.dep_delay > 300)",
    )
    .await;
    check(
        "SELECT COUNT(*) FROM planes p WHERE NOT EXISTS
           (SELECT 1 FROM flights f WHERE f.tailnum = p.tailnum AND f.month = 12)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_insert_appends_and_updating_insert_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(RuntimeMode::Streaming, 2).await;
    let ddl = format!(
        "CREATE TABLE very_late (carrier STRING, flight INT, dep_delay DOUBLE) WITH ('connector' = 'filesystem', 'path' = '{}/very_late/', 'format' = 'csv')",
        dir.path().display()
    );
    s.sql(&ddl).await.unwrap().collect().await.unwrap();
    let result = s.sql("INSERT INTO very_late SELECT carrier, flight, dep_delay FROM flights WHERE dep_delay > 600").await.unwrap();
    assert!(result.is_insert());
    let schema = result.schema();
    let folded = fold(&schema, &result.collect().await.unwrap()).unwrap();
    assert_eq!(sorted_rows(&[folded]), vec!["40"]);
    // The files are there for BATCH to read.
    let b = session(RuntimeMode::Batch, 2).await;
    b.sql(&ddl).await.unwrap().collect().await.unwrap();
    let n = b
        .sql("SELECT COUNT(*), MIN(dep_delay) FROM very_late")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(sorted_rows(&n), vec!["40|6.020000000e2"]);

    s.sql("CREATE TABLE per_carrier (carrier STRING, n BIGINT)")
        .await
        .unwrap();
    let e = s
        .sql("INSERT INTO per_carrier SELECT carrier, COUNT(*) FROM flights GROUP BY carrier")
        .await
        .unwrap_err();
    assert!(e.message.contains("produces an updating changelog"), "{e}");
    assert!(e.hint.unwrap().contains("BATCH"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_constructs_name_themselves_and_suggest_batch() {
    let s = session(RuntimeMode::Streaming, 2).await;
    for (sql, construct) in [
        ("SELECT carrier FROM flights ORDER BY carrier", "ORDER BY"),
        (
            "SELECT carrier, ROW_NUMBER() OVER (ORDER BY dep_delay) FROM flights",
            "ROW_NUMBER() OVER (...)",
        ),
        (
            "SELECT carrier, SUM(dep_delay) OVER (PARTITION BY carrier ORDER BY dep_delay) FROM flights",
            "this OVER aggregation cannot run in STREAMING mode: OVER (... ORDER BY dep_delay) must be ordered by an event-time column",
        ),
    ] {
        let e = s.sql(sql).await.unwrap_err();
        assert!(e.message.starts_with(construct), "{sql}: {e}");
        assert!(
            e.message.contains("not supported in STREAMING mode")
                || e.message.contains("cannot run in STREAMING mode"),
            "{e}"
        );
        assert!(
            e.hint
                .unwrap()
                .contains("'execution.runtime-mode' = 'batch'")
        );
    }
}

/// A session with `flights_stream` (event time `time_hour`, watermark
/// `time_hour - delay`), from `examples/flights_stream_tables.sql`.
async fn stream_session(mode: RuntimeMode, parallelism: usize, delay: &str) -> Session {
    let s = session(mode, parallelism).await;
    let ddl = std::fs::read_to_string(root().join("examples/flights_stream_tables.sql")).unwrap();
    let ddl = ddl
        .replace(
            "'examples/data/",
            &format!("'{}/examples/data/", root().display()),
        )
        .replace("INTERVAL '3' HOUR", delay);
    s.sql(&ddl).await.unwrap().collect().await.unwrap();
    s
}

/// Folded STREAMING rows and the late rows it reported.
async fn streaming_run(parallelism: usize, delay: &str, sql: &str) -> (Vec<String>, u64) {
    let s = stream_session(RuntimeMode::Streaming, parallelism, delay).await;
    let mut result = s.sql(sql).await.unwrap();
    let schema = result.schema();
    let mut batches = Vec::new();
    while let Some(b) = futures::StreamExt::next(&mut result).await {
        batches.push(b.unwrap());
    }
    let late = result.late_rows().iter().map(|(_, n)| n).sum();
    (sorted_rows(&[fold(&schema, &batches).unwrap()]), late)
}

const TUMBLE_PER_ORIGIN: &str =
    "SELECT window_start, window_end, origin, COUNT(*) AS departures, SUM(distance) AS miles
    FROM TABLE(TUMBLE(TABLE flights_stream, DESCRIPTOR(time_hour), INTERVAL '1' HOUR))
    GROUP BY window_start, window_end, origin";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_tvfs_agree_when_no_row_is_late() {
    // A watermark a day behind: no flight is that late, so nothing is dropped.
    let day = "INTERVAL '1' DAY";
    for sql in [
        TUMBLE_PER_ORIGIN,
        "SELECT window_start, window_end, carrier, COUNT(*), MAX(dep_delay), AVG(arr_delay)
         FROM TABLE(HOP(TABLE flights_stream, DESCRIPTOR(time_hour), INTERVAL '6' HOUR, INTERVAL '1' DAY))
         WHERE origin = 'LGA' GROUP BY window_start, window_end, carrier",
        "SELECT window_start, window_end, COUNT(*) FILTER (WHERE dep_time IS NULL) AS cancelled, COUNT(*) AS n
         FROM TABLE(CUMULATE(TABLE flights_stream, DESCRIPTOR(time_hour), INTERVAL '6' HOUR, INTERVAL '1' DAY))
         GROUP BY window_start, window_end",
    ] {
        let b = stream_session(RuntimeMode::Batch, 2, day).await;
        let expected = sorted_rows(&b.sql(sql).await.unwrap().collect().await.unwrap());
        assert!(expected.len() > 100, "{sql}");
        for parallelism in [1, 4] {
            let (rows, late) = streaming_run(parallelism, day, sql).await;
            assert_eq!(late, 0, "{sql}");
            assert_eq!(rows, expected, "{sql}: parallelism {parallelism}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_rows_are_exactly_what_streaming_misses() {
    // A watermark 10 minutes behind: flights delayed past their window's end
    // arrive late. Folded STREAMING + late rows = BATCH, window by window.
    let delay = "INTERVAL '10' MINUTE";
    let sql = "SELECT window_start, window_end, origin, COUNT(*) AS departures
        FROM TABLE(TUMBLE(TABLE flights_stream, DESCRIPTOR(time_hour), INTERVAL '1' HOUR))
        GROUP BY window_start, window_end, origin";
    let b = stream_session(RuntimeMode::Batch, 2, delay).await;
    let batch: std::collections::HashMap<String, i64> =
        sorted_rows(&b.sql(sql).await.unwrap().collect().await.unwrap())
            .into_iter()
            .map(|r| {
                let (k, n) = r.rsplit_once('|').unwrap();
                (k.to_string(), n.parse().unwrap())
            })
            .collect();
    let total: i64 = batch.values().sum();
    for parallelism in [1, 4] {
        let (rows, late) = streaming_run(parallelism, delay, sql).await;
        assert!(late > 0, "the test needs late rows");
        let mut seen = 0;
        for r in rows {
            let (k, n) = r.rsplit_once('|').unwrap();
            let n: i64 = n.parse().unwrap();
            let full = batch
                .get(k)
                .copied()
                .unwrap_or_else(|| panic!("window {k} is not in BATCH"));
            assert!(n <= full, "window {k}: STREAMING {n} > BATCH {full}");
            seen += n;
        }
        assert_eq!(
            seen + late as i64,
            total,
            "parallelism {parallelism}: every row is counted once, in a window or as late"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_rows_can_be_read_back_and_complete_each_window() {
    // The rows a STREAMING window aggregate drops as late are kept in
    // `system.late_rows`: adding them back to their windows gives BATCH,
    // window by window.
    let delay = "INTERVAL '2' MINUTE";
    let sql = "SELECT window_start, window_end, origin, COUNT(*) AS departures
        FROM TABLE(TUMBLE(TABLE flights_stream, DESCRIPTOR(time_hour), INTERVAL '1' HOUR))
        WHERE month = 1
        GROUP BY window_start, window_end, origin";
    let b = stream_session(RuntimeMode::Batch, 2, delay).await;
    let expected = sorted_rows(&b.sql(sql).await.unwrap().collect().await.unwrap());

    let s = stream_session(RuntimeMode::Streaming, 2, delay).await;
    let mut result = s.sql(sql).await.unwrap();
    let schema = result.schema();
    let mut batches = Vec::new();
    while let Some(b) = futures::StreamExt::next(&mut result).await {
        batches.push(b.unwrap());
    }
    let late: u64 = result.late_rows().iter().map(|(_, n)| n).sum();
    assert!(late > 0, "the test needs late rows");
    assert!(
        result
            .notices()
            .iter()
            .any(|n| n.contains("SELECT * FROM system.late_rows WHERE query = 1")),
        "{:?}",
        result.notices()
    );
    let mut windows: std::collections::BTreeMap<String, i64> =
        sorted_rows(&[fold(&schema, &batches).unwrap()])
            .into_iter()
            .map(|r| {
                let (k, n) = r.rsplit_once('|').unwrap();
                (k.to_string(), n.parse().unwrap())
            })
            .collect();

    s.set("execution.runtime-mode", "batch").unwrap();
    let kept = s
        .sql("SELECT row FROM system.late_rows WHERE query = 1")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut read_back = 0;
    for row in sorted_rows(&kept) {
        let row: serde_json::Value = serde_json::from_str(&row).unwrap();
        let field = |name: &str| row[name].as_str().unwrap().replace(' ', "T");
        let key = format!(
            "{}|{}|{}",
            field("window_start"),
            field("window_end"),
            row["origin"].as_str().unwrap()
        );
        *windows.entry(key).or_default() += 1;
        read_back += 1;
    }
    assert_eq!(read_back, late, "every late row is kept");
    let completed: Vec<String> = windows
        .into_iter()
        .map(|(k, n)| format!("{k}|{n}"))
        .collect();
    assert_eq!(completed, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_windows_agree_across_batches_and_parallelism() {
    // Each plane's days: departures less than 3 hours apart form a session.
    // Rows of a session arrive in many batches, so sessions merge as they grow.
    let day = "INTERVAL '1' DAY";
    let sql = "SELECT tailnum, window_start, window_end, COUNT(*) AS legs, SUM(distance) AS miles
        FROM TABLE(SESSION(TABLE flights_stream PARTITION BY tailnum, DESCRIPTOR(time_hour), INTERVAL '3' HOUR))
        WHERE tailnum IS NOT NULL
        GROUP BY tailnum, window_start, window_end";
    let b = stream_session(RuntimeMode::Batch, 2, day).await;
    let expected = sorted_rows(&b.sql(sql).await.unwrap().collect().await.unwrap());
    assert!(expected.len() > 10_000);
    for parallelism in [1, 3] {
        let (rows, late) = streaming_run(parallelism, day, sql).await;
        assert_eq!(late, 0);
        assert_eq!(rows.len(), expected.len(), "parallelism {parallelism}");
        assert_eq!(rows, expected, "parallelism {parallelism}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mini_batches_shrink_the_changelog_not_the_result() {
    // With Flink's mini-batch options an updating aggregate applies many
    // input batches at once: far fewer -U/+U rows, the same folded table.
    let sql = "SELECT carrier, COUNT(*) AS n, AVG(dep_delay) AS delay, MAX(distance) AS longest
        FROM flights GROUP BY carrier";
    let b = session(RuntimeMode::Batch, 2).await;
    let expected = sorted_rows(&b.sql(sql).await.unwrap().collect().await.unwrap());
    let mut changelog_rows = Vec::new();
    for mini_batch in [false, true] {
        let s = session(RuntimeMode::Streaming, 2).await;
        s.set("datafusion.execution.batch_size", "4096").unwrap();
        if mini_batch {
            s.set("table.exec.mini-batch.enabled", "true").unwrap();
            s.set("table.exec.mini-batch.size", "100000").unwrap();
            s.set("table.exec.mini-batch.allow-latency", "1 min")
                .unwrap();
        }
        let mut result = s.sql(sql).await.unwrap();
        let schema = result.schema();
        let mut batches = Vec::new();
        while let Some(b) = futures::StreamExt::next(&mut result).await {
            batches.push(b.unwrap());
        }
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        changelog_rows.push(rows);
        assert_eq!(
            sorted_rows(&[fold(&schema, &batches).unwrap()]),
            expected,
            "mini-batch {mini_batch}"
        );
    }
    assert!(
        changelog_rows[1] * 10 < changelog_rows[0],
        "changelog rows without / with mini-batches: {changelog_rows:?}"
    );
}

/// The statements of `examples/flights_weather.sql` without its `SET`s (the
/// mode and the result mode are the test's): the views to create first and
/// the queries.
fn flights_weather_example(session: &Session) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(root().join("examples/flights_weather.sql")).unwrap();
    let (mut setup, mut queries) = (Vec::new(), Vec::new());
    for s in session.parse(&text).unwrap() {
        let upper = s.text.trim_start().to_uppercase();
        if upper.starts_with("SELECT") {
            queries.push(s.text);
        } else if !upper.starts_with("SET") {
            setup.push(s.text);
        }
    }
    (setup, queries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_join_example_flights_with_weather_agrees() {
    // examples/flights_weather.sql: each flight with the weather at its
    // origin as of its departure time, row by row for one morning and
    // aggregated over the year. A watermark a day behind: no flight is late,
    // so folded STREAMING equals BATCH.
    let day = "INTERVAL '1' DAY";
    let b = stream_session(RuntimeMode::Batch, 2, day).await;
    let (setup, queries) = flights_weather_example(&b);
    assert_eq!(queries.len(), 2, "the example's queries");
    for sql in &setup {
        b.sql(sql).await.unwrap().collect().await.unwrap();
    }
    for sql in &queries {
        let expected = sorted_rows(&b.sql(sql).await.unwrap().collect().await.unwrap());
        assert!(expected.len() >= 12, "{sql}: {expected:?}");
        for parallelism in [1, 4] {
            let s = stream_session(RuntimeMode::Streaming, parallelism, day).await;
            for v in &setup {
                s.sql(v).await.unwrap().collect().await.unwrap();
            }
            let mut result = s.sql(sql).await.unwrap();
            assert_eq!(result.mode().unwrap().mode, RuntimeMode::Streaming);
            let schema = result.schema();
            let mut batches = Vec::new();
            while let Some(b) = futures::StreamExt::next(&mut result).await {
                batches.push(b.unwrap());
            }
            assert!(result.late_rows().is_empty(), "{sql}");
            let folded = sorted_rows(&[fold(&schema, &batches).unwrap()]);
            assert_eq!(
                folded, expected,
                "{sql}: STREAMING at parallelism {parallelism}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_join_late_flights_are_exactly_what_streaming_misses() {
    // The example's 3-hour watermark: a flight that left more than about 3
    // hours late is behind the watermark when it arrives, so the temporal
    // join drops it and counts it. Every other flight meets the same
    // observation as in BATCH.
    let delay = "INTERVAL '3' HOUR";
    let sql = "SELECT f.carrier, f.flight, f.time_hour, f.origin, f.dest, w.time_hour, w.temp
        FROM flights_stream AS f
        JOIN weather_stream FOR SYSTEM_TIME AS OF f.time_hour AS w ON f.origin = w.origin";
    let b = stream_session(RuntimeMode::Batch, 2, delay).await;
    let expected = sorted_rows(&b.sql(sql).await.unwrap().collect().await.unwrap());
    assert!(expected.len() > 300_000);
    let (rows, late) = streaming_run(2, delay, sql).await;
    assert!(late > 0, "the example's watermark makes some flights late");
    assert_eq!(rows.len() as u64 + late, expected.len() as u64);
    let expected: std::collections::HashSet<&String> = expected.iter().collect();
    assert!(rows.iter().all(|r| expected.contains(r)));
}

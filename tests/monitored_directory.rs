//! A filesystem table with `'source.monitor-interval'` is unbounded: a query
//! over it runs in STREAMING mode, keeps running, and picks up each file
//! written into the directory (under a hidden name, then renamed) within two
//! monitor intervals; files that move the watermark close event-time windows.

use std::path::Path;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::StreamExt;
use tributary_engine::changelog::fold;
use tributary_engine::{QueryResult, RuntimeMode, Session};

const INTERVAL: Duration = Duration::from_millis(500);

/// Writes a file the way a writer must for a monitored table: complete,
/// under a hidden name, then renamed into place.
fn publish(dir: &Path, name: &str, content: &str) {
    let hidden = dir.join(format!(".{name}.inprogress"));
    std::fs::write(&hidden, content).unwrap();
    std::fs::rename(&hidden, dir.join(name)).unwrap();
}

async fn session_with_table(dir: &Path, columns: &str) -> Session {
    let session = Session::builder().parallelism(2).build().unwrap();
    let ddl = format!(
        "CREATE TABLE monitored ({columns}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv', \
         'source.monitor-interval' = '{} ms')",
        dir.display(),
        INTERVAL.as_millis()
    );
    session.sql(&ddl).await.unwrap().collect().await.unwrap();
    session
}

/// Each row as `a|b|c`, the `op` column first.
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            out.push(
                fmts.iter()
                    .map(|f| f.value(r).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    out
}

/// Reads the result until it has given `n` more rows or `within` has
/// passed; the batches read. Panics if the stream ends or fails: a query
/// over a monitored table never ends.
async fn read_rows(result: &mut QueryResult, n: usize, within: Duration) -> Vec<RecordBatch> {
    let deadline = tokio::time::Instant::now() + within;
    let mut batches = Vec::new();
    let mut count = 0;
    while count < n {
        match tokio::time::timeout_at(deadline, result.next()).await {
            Ok(Some(batch)) => {
                let batch = batch.unwrap();
                count += batch.num_rows();
                batches.push(batch);
            }
            Ok(None) => panic!("the query over a monitored table ended"),
            Err(_) => break,
        }
    }
    batches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_query_picks_up_files_as_they_arrive() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "1.csv", "id,name\n1,ann\n2,bob\n");
    let session = session_with_table(dir.path(), "id BIGINT, name STRING").await;

    let mut result = session
        .sql("SELECT id, UPPER(name) AS name FROM monitored WHERE id <> 3")
        .await
        .unwrap();
    assert_eq!(
        result.mode().unwrap().mode,
        RuntimeMode::Streaming,
        "automatic picks STREAMING for a monitored table"
    );
    let schema = result.schema();
    assert_eq!(schema.field(0).name(), "op");

    let mut changelog = read_rows(&mut result, 2, INTERVAL * 4).await;
    assert_eq!(rows(&changelog), vec!["+I|1|ANN", "+I|2|BOB"]);
    // Still running, with nothing new.
    assert!(read_rows(&mut result, 1, INTERVAL * 2).await.is_empty());

    let written = Instant::now();
    publish(dir.path(), "2.csv", "id,name\n3,cy\n4,dee\n");
    let more = read_rows(&mut result, 1, INTERVAL * 2).await;
    assert!(
        written.elapsed() <= INTERVAL * 2,
        "took {:?}",
        written.elapsed()
    );
    assert_eq!(
        rows(&more),
        vec!["+I|4|DEE"],
        "the second file's rows, within two intervals"
    );
    changelog.extend(more);
    // Read once: nothing more comes.
    assert!(read_rows(&mut result, 1, INTERVAL * 3).await.is_empty());

    let folded = fold(&schema, &changelog).unwrap();
    assert_eq!(folded.num_rows(), 3);
    drop(result);

    // BATCH over a monitored table is refused.
    session.set("execution.runtime-mode", "batch").unwrap();
    let err = session
        .sql("SELECT * FROM monitored")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Querying an unbounded table"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_close_when_a_later_file_moves_the_watermark() {
    let dir = tempfile::tempdir().unwrap();
    publish(
        dir.path(),
        "1.csv",
        "id,ts\n1,2024-01-01 10:00:01\n2,2024-01-01 10:00:04\n3,2024-01-01 10:00:08\n",
    );
    let session = session_with_table(
        dir.path(),
        "id BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND",
    )
    .await;
    let mut result = session
        .sql(
            "SELECT window_start, window_end, COUNT(*) AS n, SUM(id) AS ids
             FROM TABLE(TUMBLE(TABLE monitored, DESCRIPTOR(ts), INTERVAL '10' SECOND))
             GROUP BY window_start, window_end",
        )
        .await
        .unwrap();
    assert_eq!(result.mode().unwrap().mode, RuntimeMode::Streaming);

    // The first file moves the watermark to 10:00:07: no window has ended.
    assert!(read_rows(&mut result, 1, INTERVAL * 3).await.is_empty());

    // The second moves it to 10:00:24: the windows ending at :10 and :20
    // close; the one ending at :30 stays open.
    let written = Instant::now();
    publish(
        dir.path(),
        "2.csv",
        "id,ts\n4,2024-01-01 10:00:12\n5,2024-01-01 10:00:25\n",
    );
    let mut closed = rows(&read_rows(&mut result, 2, INTERVAL * 2).await);
    assert!(
        written.elapsed() <= INTERVAL * 2,
        "took {:?}",
        written.elapsed()
    );
    closed.sort();
    assert_eq!(
        closed,
        vec![
            "+I|2024-01-01T10:00:00|2024-01-01T10:00:10|3|6",
            "+I|2024-01-01T10:00:10|2024-01-01T10:00:20|1|4",
        ]
    );
    assert!(read_rows(&mut result, 1, INTERVAL * 2).await.is_empty());

    // A third file closes the window ending at :30.
    publish(dir.path(), "3.csv", "id,ts\n6,2024-01-01 10:00:41\n");
    assert_eq!(
        rows(&read_rows(&mut result, 1, INTERVAL * 2).await),
        vec!["+I|2024-01-01T10:00:20|2024-01-01T10:00:30|1|5"]
    );
}

/// Two monitored directories feed one window through `UNION ALL`; one
/// never gets a file. Without `table.exec.source.idle-timeout` its source
/// holds the minimum watermark back and no window closes; with it, the
/// quiet source is marked idle and the other one's watermark closes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_source_stops_holding_windows_back_after_the_idle_timeout() {
    for idle_timeout in [None, Some("300 ms")] {
        let busy = tempfile::tempdir().unwrap();
        let quiet = tempfile::tempdir().unwrap();
        publish(
            busy.path(),
            "1.csv",
            "id,ts\n1,2024-01-01 10:00:01\n2,2024-01-01 10:00:04\n3,2024-01-01 10:00:15\n",
        );
        let session = Session::builder().parallelism(1).build().unwrap();
        if let Some(timeout) = idle_timeout {
            session
                .set("table.exec.source.idle-timeout", timeout)
                .unwrap();
        }
        for (name, dir) in [("busy", busy.path()), ("quiet", quiet.path())] {
            let ddl = format!(
                "CREATE TABLE {name} (id BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
                 WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv', 'source.monitor-interval' = '{} ms')",
                dir.display(),
                INTERVAL.as_millis()
            );
            session.sql(&ddl).await.unwrap().collect().await.unwrap();
        }
        session
            .sql("CREATE VIEW both_dirs AS SELECT * FROM busy UNION ALL SELECT * FROM quiet")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut result = session
            .sql(
                "SELECT window_start, COUNT(*) AS n
                 FROM TABLE(TUMBLE(TABLE both_dirs, DESCRIPTOR(ts), INTERVAL '10' SECOND))
                 GROUP BY window_start, window_end",
            )
            .await
            .unwrap();
        let fired = rows(&read_rows(&mut result, 1, INTERVAL * 4).await);
        match idle_timeout {
            None => assert!(
                fired.is_empty(),
                "the quiet source holds the watermark back: {fired:?}"
            ),
            Some(_) => assert_eq!(fired, vec!["+I|2024-01-01T10:00:00|2"]),
        }
    }
}

/// A mini-batch that never fills is applied when its allowed latency is up,
/// so an updating aggregate over a quiet unbounded source still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mini_batch_is_applied_when_its_latency_is_up() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "1.csv", "id,name\n1,ann\n2,bob\n3,ann\n");
    let session = session_with_table(dir.path(), "id BIGINT, name STRING").await;
    session
        .set("table.exec.mini-batch.enabled", "true")
        .unwrap();
    session
        .set("table.exec.mini-batch.size", "1000000")
        .unwrap();
    session
        .set("table.exec.mini-batch.allow-latency", "200 ms")
        .unwrap();
    let mut result = session
        .sql("SELECT name, COUNT(*) AS n FROM monitored GROUP BY name")
        .await
        .unwrap();
    let mut got = rows(&read_rows(&mut result, 2, INTERVAL * 4).await);
    got.sort();
    assert_eq!(got, vec!["+I|ann|2", "+I|bob|1"]);
}

/// `table.exec.state.ttl` (processing time): a key of an updating aggregate
/// and a row of a regular join that stay idle for longer than the TTL are
/// forgotten, so the result differs from BATCH's, as documented. The second
/// file is written only after the first one's output was read and the TTL
/// has passed, so the pause is at least the TTL however loaded the machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_idle_for_the_ttl_is_forgotten() {
    const TTL: Duration = Duration::from_millis(300);
    for ttl in [None, Some(TTL)] {
        let dir = tempfile::tempdir().unwrap();
        publish(dir.path(), "1.csv", "k,side,v\n1,L,5\n3,L,1\n3,R,1\n");
        // One instance per operator: every key meets in one join instance,
        // so the matching pair of the second file shows it was applied.
        let session = Session::builder().parallelism(1).build().unwrap();
        let ddl = format!(
            "CREATE TABLE monitored (k BIGINT, side STRING, v BIGINT) WITH ('connector' = 'filesystem', \
             'path' = '{}', 'format' = 'csv', 'source.monitor-interval' = '{} ms')",
            dir.path().display(),
            INTERVAL.as_millis()
        );
        session.sql(&ddl).await.unwrap().collect().await.unwrap();
        if let Some(ttl) = ttl {
            session
                .set("table.exec.state.ttl", &format!("{} ms", ttl.as_millis()))
                .unwrap();
        }
        let mut sums = session
            .sql("SELECT k, SUM(v) AS s FROM monitored GROUP BY k")
            .await
            .unwrap();
        let mut joined = session
            .sql(
                "SELECT l.k, l.v AS lv, r.v AS rv FROM monitored l JOIN monitored r
                 ON l.k = r.k AND l.side = 'L' AND r.side = 'R'",
            )
            .await
            .unwrap();
        // Both queries have applied the first file before the pause.
        let mut got = rows(&read_rows(&mut sums, 2, INTERVAL * 20).await);
        got.sort();
        assert_eq!(got, vec!["+I|1|5", "+I|3|2"]);
        assert_eq!(
            rows(&read_rows(&mut joined, 1, INTERVAL * 20).await),
            vec!["+I|3|1|1"]
        );
        tokio::time::sleep(TTL * 2).await;
        publish(
            dir.path(),
            "2.csv",
            "k,side,v\n1,R,7\n2,L,1\n2,R,2\n1,L,3\n",
        );
        let expected = if ttl.is_none() { 3 } else { 2 };
        let mut got = rows(&read_rows(&mut sums, expected, INTERVAL * 20).await);
        got.sort();
        match ttl {
            // Key 1 continues from 5.
            None => assert_eq!(got, vec!["+I|2|3", "+U|1|15", "-U|1|5"]),
            // Key 1 was forgotten: it starts again from +I.
            Some(_) => assert_eq!(got, vec!["+I|1|10", "+I|2|3"]),
        }
        let mut got = rows(&read_rows(&mut joined, expected, INTERVAL * 20).await);
        got.sort();
        match ttl {
            None => assert_eq!(got, vec!["+I|1|3|7", "+I|1|5|7", "+I|2|1|2"]),
            // The left row 1|5 was forgotten before 1|R|7 came: no match.
            Some(_) => assert_eq!(got, vec!["+I|1|3|7", "+I|2|1|2"]),
        }
    }
}

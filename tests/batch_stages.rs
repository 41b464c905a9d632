//! The BATCH runtime with materialized exchanges, end to end through
//! [`Session`]: the stage graph, results equal across shuffle modes and slot
//! counts, recovery of a failed task without re-running upstream stages,
//! the working directory removed on success, error and cancel, spilling
//! under a memory limit, and adaptive parallelism.

use std::path::Path;
use std::sync::atomic::Ordering;

use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use tributary_engine::batch::recovery::FailPoint;
use tributary_engine::{RuntimeMode, Session};

/// Writes `files` CSV files of `rows` rows each (`k` in 0..keys, `v`, `s`)
/// under `dir` and returns a session with table `t` over them.
async fn session_with_table(dir: &Path, files: usize, rows: usize, keys: usize) -> Session {
    let data = dir.join("t");
    std::fs::create_dir_all(&data).unwrap();
    for f in 0..files {
        let mut text = String::from("k,v,s\n");
        for i in 0..rows {
            let n = f * rows + i;
            text.push_str(&format!("{},{},name-{}\n", n % keys, n % 1000, n % 97));
        }
        std::fs::write(data.join(format!("part-{f}.csv")), text).unwrap();
    }
    let s = Session::builder()
        .runtime_mode(RuntimeMode::Batch)
        .parallelism(2)
        .config("io.tmp.dirs", dir.join("work").to_str().unwrap())
        .build()
        .unwrap();
    std::fs::create_dir_all(dir.join("work")).unwrap();
    s.sql(&format!(
        "CREATE TABLE t (k BIGINT, v BIGINT, s STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
        data.display()
    ))
    .await
    .unwrap();
    s
}

/// `sql`'s rows; a query that has not finished in 120 s fails the test
/// (naming it) rather than hanging the run.
async fn rows(s: &Session, sql: &str) -> Vec<RecordBatch> {
    let query = async { s.sql(sql).await?.collect().await };
    tokio::time::timeout(std::time::Duration::from_secs(120), query)
        .await
        .unwrap_or_else(|_| panic!("did not finish in 120 s: {sql}"))
        .unwrap()
}

fn text(batches: &[RecordBatch]) -> String {
    arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string()
}

fn explain(batches: &[RecordBatch], row: &str) -> String {
    let batch = &batches[0];
    let types = batch
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .unwrap();
    let plans = batch
        .column(1)
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .unwrap();
    (0..batch.num_rows())
        .find(|&i| types.value(i) == row)
        .map(|i| plans.value(i).to_string())
        .unwrap_or_else(|| panic!("no {row} row in {}", text(batches)))
}

fn working_dirs(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("work"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect()
}

const AGG: &str = "SELECT k, SUM(v) AS v, COUNT(*) AS n FROM t GROUP BY k ORDER BY k";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_the_stage_graph() {
    let dir = tempfile::tempdir().unwrap();
    let s = session_with_table(dir.path(), 2, 100, 10).await;
    let out = rows(&s, &format!("EXPLAIN {AGG}")).await;
    let graph = explain(&out, "stage_graph");
    assert!(
        graph.contains("Stage 1: 2 tasks, writes Hash([k@0], 2) to stage 2"),
        "{graph}"
    );
    assert!(graph.contains("ExchangeWriteExec: stage=1"), "{graph}");
    assert!(
        graph.contains("Stage 2: 2 tasks, reads stage 1, writes PassThrough to stage 3"),
        "{graph}"
    );
    assert!(
        graph.contains("ExchangeReadExec: stage=1, partitioning=Hash([k@0], 2), buckets=2"),
        "{graph}"
    );
    assert!(
        graph.contains("Stage 3 (final): 1 task, reads stage 2"),
        "{graph}"
    );
    assert!(graph.contains("SortPreservingMergeExec"), "{graph}");
    // Pipelined: one stage, said so.
    s.set("execution.batch-shuffle-mode", "ALL_EXCHANGES_PIPELINED")
        .unwrap();
    let out = rows(&s, &format!("EXPLAIN {AGG}")).await;
    assert!(explain(&out, "stage_graph").starts_with("Pipelined: one stage"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_whose_only_exchange_is_the_final_gather_is_one_stage() {
    let dir = tempfile::tempdir().unwrap();
    let s = session_with_table(dir.path(), 2, 100, 10).await;
    let sql = "SELECT k, v FROM t WHERE v % 7 = 0 ORDER BY v, k";
    let expected = text(&rows(&s, sql).await);
    // Both files' rows with v = 0, 7, ..., 196 (v = n % 1000 over n < 200).
    assert_eq!(expected.lines().count(), 29 + 4, "{expected}");
    let graph = explain(&rows(&s, &format!("EXPLAIN {sql}")).await, "stage_graph");
    assert!(graph.starts_with("Stage 1 (final): 1 task\n"), "{graph}");
    assert!(!graph.contains("ExchangeWriteExec"), "{graph}");
    assert!(graph.contains("SortPreservingMergeExec"), "{graph}");
    let report = explain(
        &rows(&s, &format!("EXPLAIN ANALYZE {sql}")).await,
        "stage_graph_analyzed",
    );
    assert!(report.contains("bytes_materialized=0"), "{report}");
    s.set("execution.batch-shuffle-mode", "ALL_EXCHANGES_PIPELINED")
        .unwrap();
    assert_eq!(text(&rows(&s, sql).await), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_analyze_reports_rows_bytes_time_and_retries_per_stage() {
    let dir = tempfile::tempdir().unwrap();
    let s = session_with_table(dir.path(), 2, 1000, 10).await;
    let out = rows(&s, &format!("EXPLAIN ANALYZE {AGG}")).await;
    let report = explain(&out, "stage_graph_analyzed");
    assert!(report.starts_with("10 rows in "), "{report}");
    // Stage 1 materialized one partial-aggregate row per key and task.
    assert!(
        report.contains(
            "Stage 1: 2 tasks, writes Hash([k@0], 2) to stage 2 | rows=20, bytes_materialized="
        ),
        "{report}"
    );
    assert!(report.contains("task_runs=2, retries=0"), "{report}");
    assert!(
        report.contains("Stage 3 (final): 1 task, reads stage 2 | rows=10,"),
        "{report}"
    );
    assert!(working_dirs(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_agree_across_shuffle_modes_and_slots() {
    let dir = tempfile::tempdir().unwrap();
    let s = session_with_table(dir.path(), 3, 2000, 50).await;
    let queries = [
        AGG,
        "SELECT a.k, COUNT(*) AS n, MAX(b.s) AS m FROM t a JOIN (SELECT k, MIN(s) AS s FROM t GROUP BY k) b ON a.k = b.k GROUP BY a.k ORDER BY a.k",
        "SELECT s, COUNT(DISTINCT k) AS d FROM t WHERE v < 500 GROUP BY s ORDER BY d DESC, s LIMIT 5",
        "SELECT k, v, ROW_NUMBER() OVER (PARTITION BY k ORDER BY v, s) AS rn FROM t ORDER BY k, v, s, rn LIMIT 20",
    ];
    for q in queries {
        let blocking = text(&rows(&s, q).await);
        s.set("execution.batch-shuffle-mode", "ALL_EXCHANGES_PIPELINED")
            .unwrap();
        let pipelined = text(&rows(&s, q).await);
        s.set("execution.batch-shuffle-mode", "ALL_EXCHANGES_BLOCKING")
            .unwrap();
        s.set("taskmanager.numberOfTaskSlots", "1").unwrap();
        let one_slot = text(&rows(&s, q).await);
        s.reset(Some("taskmanager.numberOfTaskSlots")).unwrap();
        assert_eq!(blocking, pipelined, "{q}");
        assert_eq!(blocking, one_slot, "{q}");
    }
    assert!(working_dirs(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_in_the_middle_stage_reruns_alone() {
    let dir = tempfile::tempdir().unwrap();
    let s = session_with_table(dir.path(), 2, 5000, 100).await;
    let q = "SELECT k, SUM(v) AS v FROM t GROUP BY k";
    let graph = explain(&rows(&s, &format!("EXPLAIN {q}")).await, "stage_graph");
    // Three stages: scan + partial aggregate, final aggregate, collect.
    assert!(graph.contains("Stage 1: 2 tasks, writes Hash"), "{graph}");
    assert!(graph.contains("Stage 2: 2 tasks, reads stage 1"), "{graph}");
    assert!(graph.contains("Stage 3 (final)"), "{graph}");
    assert!(!graph.contains("Stage 4"), "{graph}");
    let expected = sorted(text(&rows(&s, q).await));

    // Task 1 of stage 2 dies after its first output batch, its exchange
    // files half written.
    let injector = s
        .inject_batch_failures(Some(vec![FailPoint {
            stage: 2,
            task: 1,
            attempt: 0,
            after_batches: 1,
        }]))
        .unwrap();
    let result = s.sql(q).await.unwrap();
    let run = result.batch_run().unwrap().clone();
    let got = sorted(text(&result.collect().await.unwrap()));
    assert!(injector.pending().is_empty(), "the failure fired");
    assert_eq!(got, expected);
    let stage1 = &run.stages[0];
    assert_eq!(
        stage1.attempts.load(Ordering::Relaxed),
        2,
        "stage 1 ran once per task"
    );
    assert_eq!(stage1.retries.load(Ordering::Relaxed), 0);
    let stage2 = &run.stages[1];
    assert_eq!(
        stage2.attempts.load(Ordering::Relaxed),
        3,
        "one task of stage 2 re-ran"
    );
    assert_eq!(stage2.retries.load(Ordering::Relaxed), 1);
    let log = stage2.retry_log.lock().unwrap().clone();
    assert!(
        log[0].contains("stage 2 task 1 attempt 0 failed")
            && log[0].contains("injected failure of task 1 in stage 2"),
        "{log:?}"
    );

    // Shown by EXPLAIN ANALYZE too.
    s.inject_batch_failures(Some(vec![FailPoint {
        stage: 2,
        task: 0,
        attempt: 0,
        after_batches: 1,
    }]));
    let report = explain(
        &rows(&s, &format!("EXPLAIN ANALYZE {q}")).await,
        "stage_graph_analyzed",
    );
    assert!(report.contains("task_runs=3, retries=1"), "{report}");
    assert!(
        report.contains("re-ran: stage 2 task 0 attempt 0 failed"),
        "{report}"
    );

    // More failures than restart-strategy.fixed-delay.attempts: the query fails.
    s.inject_batch_failures(Some(vec![
        FailPoint {
            stage: 2,
            task: 0,
            attempt: 0,
            after_batches: 1,
        },
        FailPoint {
            stage: 2,
            task: 0,
            attempt: 1,
            after_batches: 1,
        },
    ]));
    let e = s.sql(q).await.unwrap().collect().await.unwrap_err();
    assert!(e.message.contains("injected failure"), "{e}");
    s.inject_batch_failures(None);
    assert!(
        working_dirs(dir.path()).is_empty(),
        "{:?}",
        working_dirs(dir.path())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_final_stage_reruns_when_it_fails_before_returning_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let s = session_with_table(dir.path(), 2, 5000, 100).await;
    let q = "SELECT k, SUM(v) AS v FROM t GROUP BY k";
    let expected = sorted(text(&rows(&s, q).await));

    // Stage 3, the final one, fails on its first batch: nothing has reached
    // the caller, so it re-runs from stage 2's files; stages 1 and 2 do not.
    let injector = s
        .inject_batch_failures(Some(vec![FailPoint {
            stage: 3,
            task: 0,
            attempt: 0,
            after_batches: 1,
        }]))
        .unwrap();
    let result = s.sql(q).await.unwrap();
    let run = result.batch_run().unwrap().clone();
    let got = sorted(text(&result.collect().await.unwrap()));
    assert!(injector.pending().is_empty(), "the failure fired");
    assert_eq!(got, expected);
    assert_eq!(run.stages[0].attempts.load(Ordering::Relaxed), 2);
    assert_eq!(run.stages[1].attempts.load(Ordering::Relaxed), 2);
    let last = &run.stages[2];
    assert_eq!(
        last.attempts.load(Ordering::Relaxed),
        2,
        "the final stage re-ran"
    );
    assert_eq!(last.retries.load(Ordering::Relaxed), 1);
    let log = last.retry_log.lock().unwrap().clone();
    assert!(
        log[0].contains("stage 3 task 0 attempt 0 failed")
            && log[0].contains("injected failure of task 0 in stage 3"),
        "{log:?}"
    );

    // After a row has gone out, a failure fails the query and says why
    // (small batches, so the final stage returns several).
    s.set("datafusion.execution.batch_size", "10").unwrap();
    s.inject_batch_failures(Some(vec![FailPoint {
        stage: 3,
        task: 0,
        attempt: 0,
        after_batches: 2,
    }]));
    let mut result = s.sql(q).await.unwrap();
    let run = result.batch_run().unwrap().clone();
    let first = result.next().await.unwrap().unwrap();
    assert!(first.num_rows() > 0);
    let mut failure = None;
    while let Some(next) = result.next().await {
        if let Err(e) = next {
            failure = Some(e.to_string());
        }
    }
    s.inject_batch_failures(None);
    let failure = failure.expect("the query failed");
    assert!(failure.contains("injected failure"), "{failure}");
    let last = &run.stages[2];
    assert_eq!(
        last.attempts.load(Ordering::Relaxed),
        1,
        "no re-run after a row"
    );
    assert_eq!(last.retries.load(Ordering::Relaxed), 0);
    assert!(working_dirs(dir.path()).is_empty());
}

fn sorted(text: String) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_working_directory_is_removed_on_error_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let s = session_with_table(dir.path(), 2, 5000, 100).await;
    // Error: division by zero in the second stage.
    let e = s
        .sql("SELECT k, SUM(v) / (MIN(v) - MIN(v)) AS x FROM t GROUP BY k")
        .await
        .unwrap()
        .collect()
        .await;
    assert!(e.is_err());
    assert!(working_dirs(dir.path()).is_empty());
    // Cancel: read one batch of a running query, then drop the result.
    let mut r = s.sql(AGG).await.unwrap();
    let first = r.next().await.unwrap().unwrap();
    assert!(first.num_rows() > 0);
    assert_eq!(
        working_dirs(dir.path()).len(),
        1,
        "the query's working directory exists while it runs"
    );
    drop(r);
    // Aborted tasks release the directory as the runtime drops them.
    for _ in 0..100 {
        if working_dirs(dir.path()).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(working_dirs(dir.path()).is_empty());
    // Cancel while the first stages run (one slot: they take a while).
    s.set("taskmanager.numberOfTaskSlots", "1").unwrap();
    let mut r = s.sql(AGG).await.unwrap();
    let early = tokio::time::timeout(std::time::Duration::from_millis(20), r.next()).await;
    drop(early);
    drop(r);
    for _ in 0..100 {
        if working_dirs(dir.path()).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(working_dirs(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_parallelism_follows_materialized_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let s = session_with_table(dir.path(), 2, 1000, 10).await;
    let expected = text(&rows(&s, AGG).await);
    s.set("execution.batch.adaptive.auto-parallelism.enabled", "true")
        .unwrap();
    s.set(
        "execution.batch.adaptive.auto-parallelism.max-parallelism",
        "8",
    )
    .unwrap();
    let report = explain(
        &rows(&s, &format!("EXPLAIN ANALYZE {AGG}")).await,
        "stage_graph_analyzed",
    );
    // A few hundred bytes materialized: one task, not 8.
    assert!(
        report.contains("Stage 2: 1 task, reads stage 1"),
        "{report}"
    );
    assert!(report.contains("adaptive: parallelism 1"), "{report}");
    assert_eq!(text(&rows(&s, AGG).await), expected);
    // One byte per task: as many tasks as max-parallelism allows.
    s.set(
        "execution.batch.adaptive.auto-parallelism.avg-data-volume-per-task",
        "1",
    )
    .unwrap();
    let report = explain(
        &rows(&s, &format!("EXPLAIN ANALYZE {AGG}")).await,
        "stage_graph_analyzed",
    );
    assert!(
        report.contains("Stage 2: 8 tasks, reads stage 1"),
        "{report}"
    );
    assert_eq!(text(&rows(&s, AGG).await), expected);
}

/// A table of `rows` rows with a distinct key each and a 60-byte string.
async fn big_table(s: &Session, dir: &Path, name: &str, rows: usize, files: usize) {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    let pad = "x".repeat(50);
    for f in 0..files {
        let mut text = String::from("k,v,s\n");
        for i in (f..rows).step_by(files) {
            text.push_str(&format!("{i},{},{pad}-{:08}\n", i % 1000, i * 7 % rows));
        }
        std::fs::write(data.join(format!("part-{f}.csv")), text).unwrap();
    }
    s.sql(&format!(
        "CREATE TABLE {name} (k BIGINT, v BIGINT, s STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
        data.display()
    ))
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregation_and_join_over_four_times_the_memory_limit_spill_and_finish() {
    let dir = tempfile::tempdir().unwrap();
    let s = session_with_table(dir.path(), 1, 10, 1).await;
    big_table(&s, dir.path(), "big", 800_000, 2).await;
    big_table(&s, dir.path(), "big2", 800_000, 2).await;
    let limit: usize = 16 << 20;
    let input: usize = rows(&s, "SELECT * FROM big")
        .await
        .iter()
        .map(|b| b.get_array_memory_size())
        .sum();
    assert!(
        input >= 4 * limit,
        "input {input} bytes is not 4x the limit"
    );
    let agg = "SELECT COUNT(*) AS groups, SUM(n) AS n, MAX(m) AS m FROM \
               (SELECT k, COUNT(*) AS n, MAX(s) AS m FROM big GROUP BY k)";
    // A hash join probing the whole input with a build side that fits.
    // (the left side builds: CSV files carry no statistics to swap by)
    let hash_join = "SELECT COUNT(*) AS n, SUM(a.v + b.v) AS v, MIN(a.s) AS s \
                     FROM (SELECT k, v FROM big2 WHERE k % 50 = 0) b JOIN big a ON a.k = b.k";
    // Both sides whole: a sort-merge join, whose sorts spill.
    let merge_join = "SELECT COUNT(*) AS n, SUM(a.v + b.v) AS v, MIN(b.s) AS s FROM big a JOIN big2 b ON a.k = b.k";
    // Expected: no limit.
    s.set("taskmanager.memory.managed.size", "0").unwrap();
    let agg_expected = text(&rows(&s, agg).await);
    assert!(
        agg_expected.contains("| 800000 | 800000 |"),
        "{agg_expected}"
    );
    let hash_expected = text(&rows(&s, hash_join).await);
    assert!(hash_expected.contains("| 16000 |"), "{hash_expected}");
    let merge_expected = text(&rows(&s, merge_join).await);
    assert!(merge_expected.contains("| 800000 |"), "{merge_expected}");
    s.set(
        "datafusion.execution.sort_spill_reservation_bytes",
        "1048576",
    )
    .unwrap();
    // Merging spilled runs holds a batch per run: smaller batches, less memory.
    s.set("datafusion.execution.batch_size", "1024").unwrap();
    // Two slots of 8 mb each, whatever the machine's cores.
    s.set("taskmanager.numberOfTaskSlots", "2").unwrap();
    s.set("taskmanager.memory.managed.size", "16 mb").unwrap();
    for mode in ["ALL_EXCHANGES_BLOCKING", "ALL_EXCHANGES_PIPELINED"] {
        s.set("execution.batch-shuffle-mode", mode).unwrap();
        let report = explain(
            &rows(&s, &format!("EXPLAIN ANALYZE {agg}")).await,
            "stage_graph_analyzed",
        );
        assert!(spilled(&report), "{report}");
        assert_eq!(text(&rows(&s, agg).await), agg_expected, "{mode}");
        assert_eq!(text(&rows(&s, hash_join).await), hash_expected, "{mode}");
    }
    // The sort-merge join spills and finishes with materialized exchanges
    // (pipelined, DataFusion's in-memory repartitions hold too much at 16 mb
    // and the merge of the spilled runs fails: see docs/architecture.md).
    s.set("execution.batch-shuffle-mode", "ALL_EXCHANGES_BLOCKING")
        .unwrap();
    s.set("datafusion.optimizer.prefer_hash_join", "false")
        .unwrap();
    let report = explain(
        &rows(&s, &format!("EXPLAIN ANALYZE {merge_join}")).await,
        "stage_graph_analyzed",
    );
    assert!(report.contains("SortMergeJoin"), "{report}");
    assert!(spilled(&report), "{report}");
    assert_eq!(text(&rows(&s, merge_join).await), merge_expected);
    assert!(working_dirs(dir.path()).is_empty());
}

/// Whether an operator of the analyzed plan spilled.
fn spilled(report: &str) -> bool {
    report
        .split("spill_count=")
        .skip(1)
        .any(|rest| !rest.starts_with('0'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_cannot_fit_names_the_setting_to_raise() {
    let dir = tempfile::tempdir().unwrap();
    let s = session_with_table(dir.path(), 1, 10, 1).await;
    big_table(&s, dir.path(), "big", 200_000, 1).await;
    big_table(&s, dir.path(), "big2", 200_000, 1).await;
    s.set("taskmanager.numberOfTaskSlots", "2").unwrap();
    s.set("taskmanager.memory.managed.size", "2 mb").unwrap();
    // A hash join's build side must fit in memory.
    let e = s
        .sql("SELECT COUNT(*), MAX(a.s), MAX(b.s) FROM big a JOIN big2 b ON a.k = b.k")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert!(
        e.message
            .contains("'taskmanager.memory.managed.size' = '2 mb'"),
        "{e}"
    );
    assert!(
        e.message
            .contains("SET 'taskmanager.memory.managed.size' = '8 mb'"),
        "{e}"
    );
    // Each of the session's two slots gets half (Flink splits managed
    // memory among slots), and the message says so.
    assert!(
        e.message.contains("(1 mb for each of its 2 task slots)"),
        "{e}"
    );
    assert!(
        e.message
            .contains("SET 'taskmanager.numberOfTaskSlots' = '1'"),
        "{e}"
    );
    assert!(working_dirs(dir.path()).is_empty());
}

/// The `Stage n...` header line whose stage plan holds `operator`.
fn stage_of<'a>(graph: &'a str, operator: &str) -> &'a str {
    let mut header = "";
    for line in graph.lines() {
        if line.starts_with("Stage ") {
            header = line;
        } else if line.contains(operator) {
            return header;
        }
    }
    panic!("no {operator} in {graph}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_under_the_broadcast_threshold_does_not_exchange_its_probe_side() {
    let dir = tempfile::tempdir().unwrap();
    let s = session_with_table(dir.path(), 2, 5000, 100).await;
    // Parquet tables: their footers give the row counts and sizes that
    // table.optimizer.join.broadcast-threshold is compared with. fact in
    // two files, so its scan has two partitions of its own.
    for (name, columns, select, files) in [
        ("fact", "k BIGINT, v BIGINT", "SELECT k, v FROM t", 2),
        (
            "dim",
            "k BIGINT, w BIGINT",
            "SELECT k, MIN(v) % 7 FROM t GROUP BY k",
            1,
        ),
    ] {
        let path = dir.path().join(name);
        rows(
            &s,
            &format!(
                "CREATE TABLE {name} ({columns}) WITH ('connector' = 'filesystem', 'path' = '{}/', 'format' = 'parquet')",
                path.display()
            ),
        )
        .await;
        for _ in 0..files {
            rows(&s, &format!("INSERT INTO {name} {select}")).await;
        }
    }
    let q = "SELECT d.w, COUNT(*) AS n, SUM(f.v) AS v FROM fact f JOIN dim d ON f.k = d.k \
             GROUP BY d.w ORDER BY d.w";

    // Default (10 mb): dim is broadcast; fact is scanned in the join's own
    // stage, and only dim's rows (collected once) are exchanged.
    let graph = explain(&rows(&s, &format!("EXPLAIN {q}")).await, "stage_graph");
    assert!(graph.contains("HashJoinExec: mode=CollectLeft"), "{graph}");
    assert!(!graph.contains("mode=Partitioned"), "{graph}");
    let join_stage = stage_of(&graph, "HashJoinExec");
    let probe_scan = graph
        .lines()
        .skip_while(|l| !l.starts_with(join_stage))
        .skip(1)
        .take_while(|l| !l.starts_with("Stage "))
        .any(|l| l.contains("DataSourceExec") && l.contains("fact"));
    assert!(probe_scan, "fact is scanned in the join's stage: {graph}");
    let broadcast = text(&rows(&s, q).await);

    // -1: no broadcast; both inputs are hash-partitioned on the key.
    s.set("table.optimizer.join.broadcast-threshold", "-1")
        .unwrap();
    let graph = explain(&rows(&s, &format!("EXPLAIN {q}")).await, "stage_graph");
    assert!(graph.contains("HashJoinExec: mode=Partitioned"), "{graph}");
    assert!(graph.contains("writes Hash([k@0], 2)"), "{graph}");
    assert_eq!(text(&rows(&s, q).await), broadcast);
    // And with compressed exchange files, and pipelined.
    s.set(
        "taskmanager.network.blocking-shuffle.compression.enabled",
        "true",
    )
    .unwrap();
    let graph = explain(&rows(&s, &format!("EXPLAIN {q}")).await, "stage_graph");
    assert!(graph.contains("format=arrow-ipc(lz4)"), "{graph}");
    assert_eq!(text(&rows(&s, q).await), broadcast);
    s.set("execution.batch-shuffle-mode", "ALL_EXCHANGES_PIPELINED")
        .unwrap();
    assert_eq!(text(&rows(&s, q).await), broadcast);
    // A size under the build side's (fixed-width columns: their Parquet
    // footers give a byte size): partitioned again; reset: broadcast.
    s.reset(Some("execution.batch-shuffle-mode")).unwrap();
    s.set("table.optimizer.join.broadcast-threshold", "16")
        .unwrap();
    let graph = explain(&rows(&s, &format!("EXPLAIN {q}")).await, "stage_graph");
    assert!(graph.contains("HashJoinExec: mode=Partitioned"), "{graph}");
    s.reset(Some("table.optimizer.join.broadcast-threshold"))
        .unwrap();
    let graph = explain(&rows(&s, &format!("EXPLAIN {q}")).await, "stage_graph");
    assert!(graph.contains("HashJoinExec: mode=CollectLeft"), "{graph}");
    let count = "SELECT COUNT(*) AS n FROM fact f JOIN dim d ON f.k = d.k";
    assert!(text(&rows(&s, count).await).contains("| 20000 |"));
    assert!(working_dirs(dir.path()).is_empty());
}

//! Quick mode of the TPC-H benchmark, in the test suite so that it does
//! not rot: TPC-H at scale factor 0.01, all 22 queries once through each
//! Tributary BATCH variant (blocking and pipelined exchanges, one slot) and
//! plain DataFusion, every answer compared. No timing is
//! asserted (figures come from `tpch-bench run` in release).

use tributary_bench::tpch::{datagen, queries, runner};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_22_queries_agree_between_tributary_batch_and_datafusion() {
    let dir = tempfile::tempdir().unwrap();
    datagen::generate(dir.path(), 0.01, 2).unwrap();
    let cfg = runner::RunConfig {
        data: dir.path().to_path_buf(),
        queries: queries::QUERIES.to_vec(),
        variants: runner::default_variants(),
        settings: vec![],
        datafusion: true,
        duckdb: None,
        parallelism: 2,
        warmup: 0,
        repetitions: 1,
    };
    let report = runner::run(&cfg, |_| {}).await.unwrap();
    assert_eq!(report.queries.len(), 22);
    assert_eq!(report.errors(), Vec::<String>::new());
    assert_eq!(report.mismatches(), Vec::<String>::new());
    assert_eq!(report.complete_queries().len(), 22);
    let rows = |q: &str| report.queries.iter().find(|r| r.query == q).unwrap().rows;
    // Known shapes of the answers (TPC-H at any scale factor): Q1 has the
    // four (returnflag, linestatus) groups, Q4 the five priorities, Q5 the
    // five nations of ASIA at most, Q6/Q14/Q17/Q19 one aggregate row, Q7
    // two nation pairs over 1995 and 1996.
    assert_eq!(rows("q1"), 4);
    assert_eq!(rows("q4"), 5);
    assert!((1..=5).contains(&rows("q5")));
    for q in ["q6", "q14", "q17", "q19"] {
        assert_eq!(rows(q), 1, "{q}");
    }
    assert_eq!(rows("q7"), 4);
    assert_eq!(rows("q3"), 10);
    assert!(rows("q13") > 1);
}

#[tokio::test]
async fn a_variant_with_an_unknown_setting_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    datagen::generate(dir.path(), 0.01, 1).unwrap();
    let cfg = runner::RunConfig {
        data: dir.path().to_path_buf(),
        queries: queries::select(&["q6".into()]).unwrap(),
        variants: vec![runner::parse_variant("bad:execution.no-such-key=1").unwrap()],
        settings: vec![],
        datafusion: false,
        duckdb: None,
        parallelism: 1,
        warmup: 0,
        repetitions: 1,
    };
    let e = runner::run(&cfg, |_| {}).await.err().unwrap();
    assert!(
        e.contains("bad") && e.contains("execution.no-such-key"),
        "{e}"
    );
}

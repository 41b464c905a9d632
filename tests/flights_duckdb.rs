//! Tributary's aggregates on the flight data equal DuckDB's.
//!
//! `tests/duckdb_expected.py` ran each query of `tests/expected/*.sql` in
//! DuckDB over `examples/data/*.parquet` and wrote the figures beside it
//! (`*.csv`); CI re-runs it with `--check`. Here Tributary runs the same SQL
//! over the same files, declared by `examples/flights_tables.sql`, and every
//! value must match: integers and strings exactly, floats to 1e-9 relative.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use tributary_engine::Session;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

async fn flights_session() -> Session {
    let ddl = std::fs::read_to_string(root().join("examples/flights_tables.sql")).unwrap();
    let ddl = ddl.replace(
        "'examples/data/",
        &format!("'{}/examples/data/", root().display()),
    );
    let session = Session::new();
    session.sql(&ddl).await.unwrap().collect().await.unwrap();
    session
}

fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("");
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            out.push(fmts.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    out
}

fn same(expected: &str, actual: &str) -> bool {
    if expected == actual {
        return true;
    }
    match (expected.parse::<f64>(), actual.parse::<f64>()) {
        (Ok(e), Ok(a)) => (e - a).abs() <= 1e-9 * e.abs().max(a.abs()).max(1.0),
        _ => false,
    }
}

async fn check(name: &str) {
    let dir = root().join("tests/expected");
    let sql = std::fs::read_to_string(dir.join(format!("{name}.sql"))).unwrap();
    let expected = std::fs::read_to_string(dir.join(format!("{name}.csv"))).unwrap();
    let mut reader = csv::ReaderBuilder::new().from_reader(expected.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let expected: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();

    let session = flights_session().await;
    let result = session.sql(&sql).await.unwrap();
    let names: Vec<String> = result
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, header, "{name}: columns");
    let actual = rows(&result.collect().await.unwrap());
    assert_eq!(actual.len(), expected.len(), "{name}: row count");
    for (i, (e, a)) in expected.iter().zip(&actual).enumerate() {
        for (col, (ev, av)) in e.iter().zip(a).enumerate() {
            assert!(
                same(ev, av),
                "{name}: row {i}, column '{}': DuckDB {ev}, Tributary {av}",
                header[col]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_counts() {
    check("row_counts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carrier_counts() {
    check("carrier_counts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_per_carrier() {
    check("delay_per_carrier").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_per_carrier() {
    check("cancelled_per_carrier").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_by_origin_month() {
    check("delay_by_origin_month").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_with_names() {
    check("routes_with_names").await;
}

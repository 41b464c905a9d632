//! Quick mode of nexmark-bench, in the test suite so that it does not rot:
//! every query of its list over 20,000 events in plain DataFusion,
//! Tributary BATCH and Tributary STREAMING, and the answers checked against
//! each other (STREAMING's changelog folded). No timing is asserted.

use std::process::Command;

#[test]
fn every_query_gives_the_same_answer_in_every_engine() {
    let out = Command::new(env!("CARGO_BIN_EXE_nexmark-bench"))
        .args(["--events", "20000", "--parallelism", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| query"))
        .collect();
    assert_eq!(rows.len(), 20, "{stdout}");
    for row in rows {
        assert!(row.trim_end().ends_with("| equal |"), "{row}");
    }
}

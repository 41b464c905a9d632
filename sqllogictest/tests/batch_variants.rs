//! Runs every `.slt` suite in BATCH mode in the variants of the BATCH
//! runtime that the default run (`sqllogictests`, blocking exchanges on as
//! many slots as cores) does not cover: pipelined exchanges
//! (`execution.batch-shuffle-mode = ALL_EXCHANGES_PIPELINED`), and blocking
//! exchanges on a single slot with adaptive parallelism (3 buckets per
//! repartition, a task per KiB materialized: stages run 1 to 3 tasks,
//! reading uneven bucket ranges), LZ4-compressed exchange files, and no
//! broadcast joins (every join whose inputs have statistics is
//! hash-partitioned).

fn main() {
    if std::env::var_os("TRIBUTARY_SLT_VARIANT").is_some() {
        tributary_sqllogictest::main_with_args(std::env::args().skip(1));
        return;
    }
    let variants: [&[&str]; 2] = [
        &["execution.batch-shuffle-mode=ALL_EXCHANGES_PIPELINED"],
        &[
            "taskmanager.numberOfTaskSlots=1",
            "execution.batch.adaptive.auto-parallelism.enabled=true",
            "execution.batch.adaptive.auto-parallelism.max-parallelism=3",
            "execution.batch.adaptive.auto-parallelism.avg-data-volume-per-task=1 kb",
            "taskmanager.network.blocking-shuffle.compression.enabled=true",
            "table.optimizer.join.broadcast-threshold=-1",
        ],
    ];
    let exe = std::env::current_exe().expect("test binary path");
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = vec![];
    for settings in variants {
        // One process per variant: the runner exits when its run ends.
        let mut cmd = std::process::Command::new(&exe);
        cmd.env("TRIBUTARY_SLT_VARIANT", "1");
        cmd.args(["--mode", "batch"]);
        for s in settings {
            cmd.args(["--set", s]);
        }
        cmd.args(&filters);
        let status = cmd.status().expect("run a variant");
        if !status.success() {
            failed.push(settings.join(" "));
        }
    }
    if !failed.is_empty() {
        eprintln!("BATCH variants failed: {}", failed.join("; "));
        std::process::exit(1);
    }
}

//! TPC-H in BATCH, side by side: Tributary (one or more variants of
//! settings), plain DataFusion and DuckDB over the same Parquet files,
//! interleaved, with every engine's answers compared in the same run.
//!
//! ```sh
//! # data only (tpchgen's generator, in-process; /var/tmp/tpch-parquet/sf1)
//! cargo run --release -p tributary-bench --bin tpch-bench -- generate --sf 1
//! # the comparison (generates the data first if missing)
//! cargo run --release -p tributary-bench --bin tpch-bench -- run --sf 1 --repetitions 5 \
//!     [--queries q1,q3] [--variant label:key=value,key=value ...] [--set key=value ...] \
//!     [--no-datafusion] [--no-duckdb] [--python python3] [--json results.json] [--markdown table.md]
//! # quick mode: SF 0.01 in a temporary directory, one repetition, no warm-up
//! cargo run -p tributary-bench --bin tpch-bench -- quick
//! ```
//!
//! Exit status: 0 when every answer agreed and no engine failed, 3 when an
//! answer differed or an engine failed a query, 1 on a setup error, 2 on a
//! usage error.

use std::path::PathBuf;

use tributary_bench::tpch::{datagen, engines, queries, runner};

const USAGE: &str = "usage: tpch-bench generate --sf SF [--data DIR] [--parts N]
       tpch-bench run [--sf SF] [--data DIR] [--queries q1,q2,...] [--repetitions N] [--warmup N]
                      [--parallelism P] [--variant label[:key=value,...]]... [--set key=value]...
                      [--no-datafusion] [--no-duckdb] [--python PY] [--duckdb-worker FILE]
                      [--json FILE] [--markdown FILE]
       tpch-bench quick [same options as run; defaults --sf 0.01 --repetitions 1 --warmup 0 --no-duckdb]";

struct Args {
    command: String,
    sf: f64,
    data: Option<PathBuf>,
    parts: usize,
    cfg: runner::RunConfig,
    duckdb: bool,
    python: String,
    worker: PathBuf,
    json: Option<PathBuf>,
    markdown: Option<PathBuf>,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let command = it.next().ok_or(USAGE)?;
    let quick = command == "quick";
    if !matches!(command.as_str(), "generate" | "run" | "quick") {
        return Err(format!("unknown command {command}\n{USAGE}"));
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut a = Args {
        command,
        sf: if quick { 0.01 } else { 1.0 },
        data: None,
        parts: cores,
        cfg: runner::RunConfig {
            data: PathBuf::new(),
            queries: queries::QUERIES.to_vec(),
            variants: runner::default_variants(),
            settings: vec![],
            datafusion: true,
            duckdb: None,
            parallelism: cores,
            warmup: if quick { 0 } else { 1 },
            repetitions: if quick { 1 } else { 5 },
        },
        duckdb: !quick,
        python: "python3".into(),
        worker: engines::default_duckdb_worker(),
        json: None,
        markdown: None,
    };
    let mut variants_given = false;
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        let num =
            |v: String, what: &str| v.parse::<usize>().map_err(|e| format!("{what} {v}: {e}"));
        match flag.as_str() {
            "--sf" => {
                let v = value()?;
                a.sf = v.parse().map_err(|e| format!("--sf {v}: {e}"))?;
            }
            "--data" => a.data = Some(PathBuf::from(value()?)),
            "--parts" => a.parts = num(value()?, "--parts")?,
            "--queries" => {
                let names: Vec<String> = value()?.split(',').map(str::to_string).collect();
                a.cfg.queries = queries::select(&names)?;
            }
            "--repetitions" => a.cfg.repetitions = num(value()?, "--repetitions")?,
            "--warmup" => a.cfg.warmup = num(value()?, "--warmup")?,
            "--parallelism" => a.cfg.parallelism = num(value()?, "--parallelism")?,
            "--variant" => {
                if !variants_given {
                    a.cfg.variants.clear();
                    variants_given = true;
                }
                a.cfg.variants.push(runner::parse_variant(&value()?)?);
            }
            "--set" => {
                let kv = value()?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or(format!("--set {kv}: expected key=value"))?;
                a.cfg.settings.push((k.to_string(), v.to_string()));
            }
            "--no-datafusion" => a.cfg.datafusion = false,
            "--no-duckdb" => a.duckdb = false,
            "--duckdb" => a.duckdb = true,
            "--python" => a.python = value()?,
            "--duckdb-worker" => a.worker = PathBuf::from(value()?),
            "--json" => a.json = Some(PathBuf::from(value()?)),
            "--markdown" => a.markdown = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if a.cfg.parallelism == 0 || a.parts == 0 {
        return Err("--parallelism and --parts must be at least 1".into());
    }
    Ok(a)
}

#[tokio::main]
async fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    match main_inner(args).await {
        Ok(clean) => std::process::exit(if clean { 0 } else { 3 }),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

async fn main_inner(mut a: Args) -> Result<bool, String> {
    // Quick mode without --data: a temporary directory, removed at the end.
    let tmp;
    let data = match (&a.data, a.command.as_str()) {
        (Some(d), _) => d.clone(),
        (None, "quick") => {
            tmp = std::env::temp_dir().join(format!("tpch-quick-{}", std::process::id()));
            tmp.clone()
        }
        (None, _) => PathBuf::from(format!("/var/tmp/tpch-parquet/sf{}", a.sf)),
    };
    if a.command == "generate" || !datagen::is_complete(&data, a.sf) {
        let start = std::time::Instant::now();
        let g = datagen::generate(&data, a.sf, a.parts)?;
        eprintln!(
            "generated TPC-H SF {} into {} in {:.1} s: {}",
            a.sf,
            data.display(),
            start.elapsed().as_secs_f64(),
            g.rows
                .iter()
                .map(|(t, n)| format!("{t} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if a.command == "generate" {
        return Ok(true);
    }
    a.cfg.data = data.clone();
    if a.duckdb {
        a.cfg.duckdb = Some((a.python.clone(), a.worker.clone()));
    }
    let mut report = runner::run(&a.cfg, |line| eprintln!("{line}")).await?;
    report
        .context
        .insert("scale_factor".into(), serde_json::json!(a.sf));
    let md = report.to_markdown();
    println!("{md}");
    if let Some(p) = &a.json {
        let text = serde_json::to_string_pretty(&report.to_json()).map_err(|e| e.to_string())?;
        std::fs::write(p, text + "\n").map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &a.markdown {
        std::fs::write(p, &md).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if a.command == "quick" && a.data.is_none() {
        let _ = std::fs::remove_dir_all(&data);
    }
    let problems: Vec<String> = report
        .mismatches()
        .into_iter()
        .chain(report.errors())
        .collect();
    for p in &problems {
        eprintln!("PROBLEM: {p}");
    }
    Ok(problems.is_empty())
}

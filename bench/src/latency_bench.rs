//! Window emit latency in STREAMING (see `tributary_bench::latency` for the
//! measurement): first the maximum sustained rate of a tumbling-window
//! aggregate, then the same query fed at half that rate; p50 / p99 / max of
//! the time from a window's end (the watermark passing it) to its last row
//! reaching the sink.
//!
//! ```sh
//! cargo run --release -p tributary-bench --bin latency-bench -- \
//!     [--seconds 60] [--window-ms 200] [--keys 1000] [--parallelism 2] \
//!     [--rate N | --max-rows 20000000] [--json FILE]
//! ```

use tributary_bench::latency::{self, Config, quantile};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let mut cfg = Config {
        rate: 0,
        window_ms: 200,
        keys: 1000,
        seconds: 60.0,
        parallelism: std::thread::available_parallelism().map_or(2, |n| n.get()),
        skip_windows: 5,
    };
    let mut max_rows: u64 = 20_000_000;
    let mut json = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        let int = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--seconds" => cfg.seconds = v.parse().map_err(|e| format!("--seconds {v}: {e}"))?,
            "--window-ms" => cfg.window_ms = int(&v)?,
            "--keys" => cfg.keys = int(&v)?,
            "--parallelism" => cfg.parallelism = int(&v)? as usize,
            "--rate" => cfg.rate = int(&v)?,
            "--max-rows" => max_rows = int(&v)?,
            "--json" => json = Some(v),
            other => {
                return Err(format!(
                    "unknown option {other}; usage: latency-bench [--seconds S] [--window-ms MS] [--keys K] [--parallelism P] [--rate N | --max-rows N] [--json FILE]"
                ));
            }
        }
    }
    let mut max = None;
    if cfg.rate == 0 {
        let m = latency::max_rate(max_rows, cfg.window_ms, cfg.keys, cfg.parallelism).await?;
        eprintln!("maximum sustained rate: {m:.0} rows/s ({max_rows} rows unthrottled)");
        max = Some(m);
        cfg.rate = (m / 2.0) as u64;
    }
    eprintln!(
        "feeding {} rows/s for {} s, {} ms windows, {} keys",
        cfg.rate, cfg.seconds, cfg.window_ms, cfg.keys
    );
    let m = latency::run(&cfg).await?;
    let q = |xs: &[f64], p| quantile(xs, p).unwrap_or(f64::NAN);
    println!(
        "| rate rows/s | max sustained rows/s | windows | p50 ms | p99 ms | max ms | first-row p50 ms | batch interval ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
        cfg.rate,
        max.map_or("–".into(), |m| format!("{m:.0}")),
        m.last_row_ms.len(),
        q(&m.last_row_ms, 0.5),
        q(&m.last_row_ms, 0.99),
        q(&m.last_row_ms, 1.0),
        q(&m.first_row_ms, 0.5),
        m.batch_interval_ms(cfg.rate),
    );
    if let Some(path) = json {
        let j = serde_json::json!({
            "query": latency::QUERY.replace("{window_ms}", &cfg.window_ms.to_string()),
            "rate_rows_per_s": cfg.rate,
            "max_sustained_rows_per_s": max,
            "max_rate_rows": max_rows,
            "seconds": cfg.seconds,
            "window_ms": cfg.window_ms,
            "keys": cfg.keys,
            "parallelism": cfg.parallelism,
            "skipped_windows": cfg.skip_windows,
            "batch_rows": m.batch_rows,
            "batch_interval_ms": m.batch_interval_ms(cfg.rate),
            "windows": m.last_row_ms.len(),
            "last_row_ms": { "p50": q(&m.last_row_ms, 0.5), "p99": q(&m.last_row_ms, 0.99), "max": q(&m.last_row_ms, 1.0) },
            "first_row_ms": { "p50": q(&m.first_row_ms, 0.5), "p99": q(&m.first_row_ms, 0.99) },
            "rows_per_window_mean": m.rows_per_window.iter().sum::<i64>() as f64 / m.rows_per_window.len().max(1) as f64,
        });
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&j).map_err(|e| e.to_string())? + "\n",
        )
        .map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

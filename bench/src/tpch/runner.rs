//! The interleaved TPC-H run: per query, every engine runs `warmup`
//! untimed times, then `repetitions` timed rounds in which each engine runs
//! once — the order rotating from round to round, so that no engine always
//! runs first (cold) or last. Every answer of every engine, warm-up
//! included, is compared with the first answer of the query; a difference
//! is recorded as a mismatch and printed at once.

use std::path::PathBuf;

use serde_json::json;

use super::answers;
use super::engines::{DuckDbWorker, Engine};
use super::report::{QueryResult, Report};

/// The Tributary BATCH variants run by default: `(label, settings)`. Adding
/// a variant is one line here. The first variant is the reference that
/// every ratio divides by: the default, materialized (blocking) exchanges;
/// then DataFusion's in-memory (pipelined) exchanges, and the blocking
/// runtime on a single slot (issue 6: the same answers in both shuffle
/// modes, with one slot and with several).
pub const VARIANTS: &[(&str, &[(&str, &str)])] = &[
    (
        "tributary-blocking",
        &[("execution.batch-shuffle-mode", "ALL_EXCHANGES_BLOCKING")],
    ),
    (
        "tributary-pipelined",
        &[("execution.batch-shuffle-mode", "ALL_EXCHANGES_PIPELINED")],
    ),
    (
        "tributary-1-slot",
        &[
            ("execution.batch-shuffle-mode", "ALL_EXCHANGES_BLOCKING"),
            ("taskmanager.numberOfTaskSlots", "1"),
        ],
    ),
];

/// One Tributary BATCH configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Its name in tables and results.
    pub label: String,
    /// Settings, as `SET 'key' = 'value'` takes them.
    pub settings: Vec<(String, String)>,
}

/// [`VARIANTS`] as [`Variant`]s.
pub fn default_variants() -> Vec<Variant> {
    VARIANTS
        .iter()
        .map(|(label, settings)| Variant {
            label: label.to_string(),
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
        .collect()
}

/// Parses `label` or `label:key=value,key=value` (the `--variant` option).
///
/// # Errors
/// An empty label or a setting without `=`.
pub fn parse_variant(s: &str) -> Result<Variant, String> {
    let (label, rest) = s.split_once(':').unwrap_or((s, ""));
    if label.trim().is_empty() {
        return Err(format!(
            "--variant {s}: expected label or label:key=value,key=value"
        ));
    }
    let settings = rest
        .split(',')
        .filter(|kv| !kv.trim().is_empty())
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or(format!("--variant {s}: setting {kv:?} is not key=value"))
        })
        .collect::<Result<_, _>>()?;
    Ok(Variant {
        label: label.trim().to_string(),
        settings,
    })
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The data directory ([`super::datagen::generate`]'s layout).
    pub data: PathBuf,
    /// `(name, SQL)` of the queries, in run order.
    pub queries: Vec<(&'static str, &'static str)>,
    /// Tributary BATCH variants; the first is the reference.
    pub variants: Vec<Variant>,
    /// Settings added to every variant (`--set`).
    pub settings: Vec<(String, String)>,
    /// Run plain DataFusion.
    pub datafusion: bool,
    /// Run DuckDB: `(python interpreter, worker script)`.
    pub duckdb: Option<(String, PathBuf)>,
    /// Cores each engine may use: Tributary's `parallelism.default`,
    /// DataFusion's `target_partitions`, DuckDB's `threads`.
    pub parallelism: usize,
    /// Untimed runs per engine and query.
    pub warmup: usize,
    /// Timed rounds per query.
    pub repetitions: usize,
}

/// Runs the comparison; `progress` gets one line per query.
///
/// # Errors
/// An engine that cannot be set up (bad setting, missing data, DuckDB not
/// installed). Errors of single queries are recorded in the report, not
/// returned.
pub async fn run(cfg: &RunConfig, mut progress: impl FnMut(&str)) -> Result<Report, String> {
    if cfg.variants.is_empty() {
        return Err("no Tributary variant to run".into());
    }
    if cfg.repetitions == 0 {
        return Err("repetitions: must be at least 1".into());
    }
    let mut engines = Vec::new();
    let mut variants = serde_json::Map::new();
    for v in &cfg.variants {
        let mut settings = v.settings.clone();
        settings.extend(cfg.settings.iter().cloned());
        variants.insert(v.label.clone(), json!(settings));
        engines.push(Engine::tributary(&v.label, &cfg.data, cfg.parallelism, &settings).await?);
    }
    if cfg.datafusion {
        engines.push(Engine::datafusion(&cfg.data, cfg.parallelism).await?);
    }
    let mut duckdb_version = None;
    if let Some((python, script)) = &cfg.duckdb {
        let worker = DuckDbWorker::start(python, script, &cfg.data, cfg.parallelism)?;
        duckdb_version = Some(worker.version.clone());
        engines.push(Engine::DuckDb(worker));
    }
    let labels: Vec<String> = engines.iter().map(|e| e.label().to_string()).collect();
    let mut context = serde_json::Map::new();
    context.insert("data".into(), json!(cfg.data.display().to_string()));
    context.insert("parallelism".into(), json!(cfg.parallelism));
    context.insert("warmup".into(), json!(cfg.warmup));
    context.insert("repetitions".into(), json!(cfg.repetitions));
    context.insert("tributary_variants".into(), json!(variants));
    if let Some(v) = duckdb_version {
        context.insert("duckdb_version".into(), json!(v));
    }
    let mut report = Report {
        engines: labels.clone(),
        queries: Vec::new(),
        context,
    };
    let n = engines.len();
    for (name, sql) in &cfg.queries {
        let mut result = QueryResult {
            query: name.to_string(),
            times: vec![Ok(Vec::new()); n],
            mismatches: Vec::new(),
            rows: 0,
        };
        let mut first: Option<(String, answers::Rows)> = None;
        let mut mismatched = vec![false; n];
        let rounds = cfg.warmup + cfg.repetitions;
        for round in 0..rounds {
            for k in 0..n {
                let i = (k + round) % n;
                if result.times[i].is_err() {
                    continue;
                }
                match engines[i].run(sql).await {
                    Ok(t) => {
                        if round >= cfg.warmup
                            && let Ok(times) = &mut result.times[i]
                        {
                            times.push(t.seconds);
                        }
                        match &first {
                            None => {
                                result.rows = t.rows.len();
                                first = Some((labels[i].clone(), t.rows));
                            }
                            Some((label, rows)) => {
                                if !mismatched[i]
                                    && let Err(e) =
                                        answers::compare(label, rows, &labels[i], &t.rows)
                                {
                                    mismatched[i] = true;
                                    eprintln!("ANSWER MISMATCH in {name}: {e}");
                                    result.mismatches.push(e);
                                }
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("ERROR in {name}: {e}");
                        result.times[i] = Err(e);
                    }
                }
            }
        }
        let medians: Vec<String> = (0..n)
            .map(|i| match result.median(i) {
                Some(m) => format!("{} {m:.3} s", labels[i]),
                None => format!("{} error", labels[i]),
            })
            .collect();
        progress(&format!(
            "{name} ({} rows): {}{}",
            result.rows,
            medians.join(", "),
            if result.mismatches.is_empty() {
                ""
            } else {
                " — ANSWERS DIFFER"
            }
        ));
        report.queries.push(result);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_variants() {
        assert_eq!(
            parse_variant("pipelined:execution.batch-shuffle-mode=ALL_EXCHANGES_PIPELINED, a=b")
                .unwrap(),
            Variant {
                label: "pipelined".into(),
                settings: vec![
                    (
                        "execution.batch-shuffle-mode".into(),
                        "ALL_EXCHANGES_PIPELINED".into()
                    ),
                    ("a".into(), "b".into())
                ]
            }
        );
        assert_eq!(parse_variant("plain").unwrap().settings, vec![]);
        assert!(parse_variant(":a=b").is_err());
        assert!(
            parse_variant("x:novalue")
                .unwrap_err()
                .contains("not key=value")
        );
        assert_eq!(default_variants()[0].label, "tributary-blocking");
    }
}

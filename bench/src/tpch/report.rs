//! What a TPC-H run measured, and its summaries: per query and engine the
//! median of the repetitions, Tributary's time divided by each engine's
//! (the ratio the targets are stated in: ≤ 1.05 against DataFusion means
//! Tributary is at most 5 % slower), geometric means over the queries every
//! engine answered, and the answer checks. Written as JSON (the results
//! file the chart script reads) and as a Markdown table.

use serde_json::{Value, json};

/// One query's measurements in every engine.
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    /// `q1` … `q22`.
    pub query: String,
    /// Per engine (in [`Report::engines`] order): the seconds of each timed
    /// repetition, or the error that stopped it.
    pub times: Vec<Result<Vec<f64>, String>>,
    /// Answer mismatches between engines (empty: all equal).
    pub mismatches: Vec<String>,
    /// Rows of the first answer.
    pub rows: usize,
}

impl QueryResult {
    /// The median seconds of engine `i`, if it answered.
    pub fn median(&self, i: usize) -> Option<f64> {
        self.times.get(i)?.as_ref().ok().and_then(|t| median(t))
    }
}

/// A whole run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Engine labels; the first is the reference (Tributary's first variant).
    pub engines: Vec<String>,
    /// Per query, in run order.
    pub queries: Vec<QueryResult>,
    /// Context for the results file: scale factor, parallelism, repetitions,
    /// versions, settings of each variant, ...
    pub context: serde_json::Map<String, Value>,
}

/// The median of `xs` (mean of the middle two for an even count).
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The geometric mean of positive `xs`.
pub fn geomean(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() || xs.iter().any(|x| *x <= 0.0) {
        return None;
    }
    Some((xs.iter().map(|x| x.ln()).sum::<f64>() / xs.len() as f64).exp())
}

impl Report {
    /// The queries every engine answered (the geometric means run over these).
    pub fn complete_queries(&self) -> Vec<&QueryResult> {
        self.queries
            .iter()
            .filter(|q| (0..self.engines.len()).all(|i| q.median(i).is_some()))
            .collect()
    }

    /// Geometric mean of engine `i`'s median seconds over [`Self::complete_queries`].
    pub fn geomean_seconds(&self, i: usize) -> Option<f64> {
        let xs: Vec<f64> = self
            .complete_queries()
            .iter()
            .filter_map(|q| q.median(i))
            .collect();
        geomean(&xs)
    }

    /// Reference seconds ÷ engine `i` seconds for one query.
    pub fn ratio(&self, q: &QueryResult, i: usize) -> Option<f64> {
        Some(q.median(0)? / q.median(i)?)
    }

    /// Geometric mean of [`Self::ratio`] over [`Self::complete_queries`]
    /// (equal to the ratio of the geometric means).
    pub fn geomean_ratio(&self, i: usize) -> Option<f64> {
        let xs: Vec<f64> = self
            .complete_queries()
            .iter()
            .filter_map(|q| self.ratio(q, i))
            .collect();
        geomean(&xs)
    }

    /// Every answer mismatch of the run, as `query: message`.
    pub fn mismatches(&self) -> Vec<String> {
        self.queries
            .iter()
            .flat_map(|q| {
                q.mismatches
                    .iter()
                    .map(move |m| format!("{}: {m}", q.query))
            })
            .collect()
    }

    /// Every engine error of the run, as `query: engine: message`.
    pub fn errors(&self) -> Vec<String> {
        self.queries
            .iter()
            .flat_map(|q| {
                q.times.iter().zip(&self.engines).filter_map(move |(t, e)| {
                    t.as_ref().err().map(|m| format!("{}: {e}: {m}", q.query))
                })
            })
            .collect()
    }

    /// The results file's JSON.
    pub fn to_json(&self) -> Value {
        let reference = self.engines.first().cloned().unwrap_or_default();
        let queries: Vec<Value> = self
            .queries
            .iter()
            .map(|q| {
                let mut times = serde_json::Map::new();
                let mut medians = serde_json::Map::new();
                let mut ratios = serde_json::Map::new();
                let mut errors = serde_json::Map::new();
                for (i, e) in self.engines.iter().enumerate() {
                    match &q.times[i] {
                        Ok(t) => {
                            times.insert(e.clone(), json!(t));
                        }
                        Err(m) => {
                            errors.insert(e.clone(), json!(m));
                        }
                    }
                    if let Some(m) = q.median(i) {
                        medians.insert(e.clone(), json!(m));
                    }
                    if i > 0
                        && let Some(r) = self.ratio(q, i)
                    {
                        ratios.insert(e.clone(), json!(r));
                    }
                }
                json!({
                    "query": q.query,
                    "seconds": times,
                    "median_seconds": medians,
                    "reference_over_engine": ratios,
                    "errors": errors,
                    "rows": q.rows,
                    "answers_equal": q.mismatches.is_empty(),
                    "mismatches": q.mismatches,
                })
            })
            .collect();
        let mut geo = serde_json::Map::new();
        let mut geo_ratio = serde_json::Map::new();
        for (i, e) in self.engines.iter().enumerate() {
            if let Some(g) = self.geomean_seconds(i) {
                geo.insert(e.clone(), json!(g));
            }
            if i > 0
                && let Some(r) = self.geomean_ratio(i)
            {
                geo_ratio.insert(e.clone(), json!(r));
            }
        }
        json!({
            "benchmark": "tpch",
            "context": self.context,
            "engines": self.engines,
            "reference": reference,
            "ratio": format!("{reference} median seconds / engine median seconds (above 1: {reference} slower)"),
            "queries": queries,
            "geomean_over": self.complete_queries().iter().map(|q| q.query.clone()).collect::<Vec<_>>(),
            "geomean_seconds": geo,
            "geomean_reference_over_engine": geo_ratio,
            "mismatches": self.mismatches(),
            "errors": self.errors(),
        })
    }

    /// A Markdown table: per query each engine's median seconds, the
    /// reference's ratio to each other engine, and the answer check; then
    /// the geometric means.
    pub fn to_markdown(&self) -> String {
        let reference = self.engines.first().cloned().unwrap_or_default();
        let others = &self.engines[1.min(self.engines.len())..];
        let mut s = String::from("| query |");
        for e in &self.engines {
            s += &format!(" {e} s |");
        }
        for e in others {
            s += &format!(" {reference} / {e} |");
        }
        s += " answers |\n|---|";
        s += &"---|".repeat(self.engines.len() + others.len() + 1);
        s += "\n";
        let cell = |x: Option<f64>, digits: usize| {
            x.map(|v| format!("{v:.digits$}"))
                .unwrap_or_else(|| "–".into())
        };
        for q in &self.queries {
            s += &format!("| {} |", q.query);
            for (i, t) in q.times.iter().enumerate() {
                match t {
                    Ok(_) => s += &format!(" {} |", cell(q.median(i), 3)),
                    Err(_) => s += " error |",
                }
            }
            for i in 1..self.engines.len() {
                s += &format!(" {} |", cell(self.ratio(q, i), 2));
            }
            s += if q.mismatches.is_empty() {
                " equal |\n"
            } else {
                " **MISMATCH** |\n"
            };
        }
        s += "| geometric mean |";
        for i in 0..self.engines.len() {
            s += &format!(" {} |", cell(self.geomean_seconds(i), 3));
        }
        for i in 1..self.engines.len() {
            s += &format!(" {} |", cell(self.geomean_ratio(i), 2));
        }
        s += &format!(
            " {} of {} queries |\n",
            self.complete_queries().len(),
            self.queries.len()
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_geomean() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let g = geomean(&[1.0, 4.0]).unwrap();
        assert!((g - 2.0).abs() < 1e-12);
        assert_eq!(geomean(&[0.0, 1.0]), None);
    }

    #[test]
    fn ratios_skip_queries_an_engine_failed() {
        let r = Report {
            engines: vec!["tributary".into(), "datafusion".into()],
            queries: vec![
                QueryResult {
                    query: "q1".into(),
                    times: vec![Ok(vec![2.0, 2.2, 1.8]), Ok(vec![1.0])],
                    mismatches: vec![],
                    rows: 4,
                },
                QueryResult {
                    query: "q2".into(),
                    times: vec![Ok(vec![1.0]), Err("boom".into())],
                    mismatches: vec!["rows differ".into()],
                    rows: 1,
                },
            ],
            context: Default::default(),
        };
        assert_eq!(r.complete_queries().len(), 1);
        assert_eq!(r.geomean_ratio(1), Some(2.0));
        assert_eq!(r.errors(), ["q2: datafusion: boom"]);
        assert_eq!(r.mismatches(), ["q2: rows differ"]);
        let md = r.to_markdown();
        assert!(md.contains("| q1 | 2.000 | 1.000 | 2.00 | equal |"), "{md}");
        assert!(md.contains("**MISMATCH**"), "{md}");
        let j = r.to_json();
        assert_eq!(j["geomean_reference_over_engine"]["datafusion"], 2.0);
    }
}

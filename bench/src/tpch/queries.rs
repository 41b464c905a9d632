//! The 22 TPC-H queries, `bench/tpch/queries/q1.sql` … `q22.sql`, compiled
//! in: the standard texts with the specification's default substitution
//! parameters (its validation values), in a dialect that Tributary,
//! DataFusion and DuckDB all read. Q15's view is a `WITH` clause.

/// `(name, SQL)` for q1 … q22, in order.
pub const QUERIES: [(&str, &str); 22] = [
    ("q1", include_str!("../../tpch/queries/q1.sql")),
    ("q2", include_str!("../../tpch/queries/q2.sql")),
    ("q3", include_str!("../../tpch/queries/q3.sql")),
    ("q4", include_str!("../../tpch/queries/q4.sql")),
    ("q5", include_str!("../../tpch/queries/q5.sql")),
    ("q6", include_str!("../../tpch/queries/q6.sql")),
    ("q7", include_str!("../../tpch/queries/q7.sql")),
    ("q8", include_str!("../../tpch/queries/q8.sql")),
    ("q9", include_str!("../../tpch/queries/q9.sql")),
    ("q10", include_str!("../../tpch/queries/q10.sql")),
    ("q11", include_str!("../../tpch/queries/q11.sql")),
    ("q12", include_str!("../../tpch/queries/q12.sql")),
    ("q13", include_str!("../../tpch/queries/q13.sql")),
    ("q14", include_str!("../../tpch/queries/q14.sql")),
    ("q15", include_str!("../../tpch/queries/q15.sql")),
    ("q16", include_str!("../../tpch/queries/q16.sql")),
    ("q17", include_str!("../../tpch/queries/q17.sql")),
    ("q18", include_str!("../../tpch/queries/q18.sql")),
    ("q19", include_str!("../../tpch/queries/q19.sql")),
    ("q20", include_str!("../../tpch/queries/q20.sql")),
    ("q21", include_str!("../../tpch/queries/q21.sql")),
    ("q22", include_str!("../../tpch/queries/q22.sql")),
];

/// The queries named in `names` (`q1`, `Q1` or `1`), in the order given;
/// all 22 if `names` is empty.
///
/// # Errors
/// A name that is not one of q1 … q22.
pub fn select(names: &[String]) -> Result<Vec<(&'static str, &'static str)>, String> {
    if names.is_empty() {
        return Ok(QUERIES.to_vec());
    }
    names
        .iter()
        .map(|n| {
            let n = n.trim().to_ascii_lowercase();
            let n = if n.starts_with('q') {
                n
            } else {
                format!("q{n}")
            };
            QUERIES
                .iter()
                .find(|(q, _)| *q == n)
                .copied()
                .ok_or(format!("unknown TPC-H query {n}: expected q1 … q22"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_is_one_select_statement() {
        for (name, sql) in QUERIES {
            let body: String = sql.lines().filter(|l| !l.starts_with("--")).collect();
            let lower = body.trim().to_ascii_lowercase();
            assert!(
                lower.starts_with("select") || lower.starts_with("with"),
                "{name}"
            );
            assert_eq!(body.matches(';').count(), 1, "{name}");
        }
    }

    #[test]
    fn selects_by_name_or_number() {
        let q = select(&["3".into(), "Q15".into()]).unwrap();
        assert_eq!(q.iter().map(|(n, _)| *n).collect::<Vec<_>>(), ["q3", "q15"]);
        assert!(select(&["q23".into()]).unwrap_err().contains("q1 … q22"));
    }
}

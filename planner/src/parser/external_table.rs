//! DataFusion's and DuckDB users' `CREATE EXTERNAL TABLE`, read as a
//! `filesystem` connector table.
//!
//! ```sql
//! CREATE EXTERNAL TABLE lineitem STORED AS PARQUET LOCATION 'tpch/lineitem/';
//! CREATE EXTERNAL TABLE bids (auction BIGINT, price BIGINT)
//!   STORED AS CSV LOCATION 'bids.csv' OPTIONS ('format.has_header' 'false');
//! ```
//!
//! Why: people who come from DataFusion (`datafusion-cli`) type this form
//! first, and it says the same as Flink's
//! `CREATE TABLE t WITH ('connector' = 'filesystem', 'path' = …, 'format' = …)`.
//! So it becomes exactly that table — one code path for reading files, with
//! its error reporting, late-row and malformed-row counting — instead of
//! DataFusion's `ListingTable` behind our back.
//!
//! The syntax is DataFusion's
//! (<https://datafusion.apache.org/user-guide/sql/ddl.html#create-external-table>):
//! `CREATE EXTERNAL TABLE [IF NOT EXISTS] name [(columns)] STORED AS format
//! [OPTIONS ('key' 'value', …)] LOCATION 'path'`, clauses in any order.
//! `STORED AS` takes `PARQUET`, `CSV`, `JSON` or `NDJSON`. `OPTIONS` keys
//! are DataFusion's `format.*` keys where the filesystem connector has the
//! same option (`format.has_header`, `format.delimiter`, `format.quote`,
//! `format.escape`, `format.compression` for Parquet) or the connector's own
//! keys (`csv.ignore-parse-errors`, `source.monitor-interval`, …); the
//! connector rejects any other key when the table is created, listing the
//! valid ones. The column list takes a `WATERMARK` and computed columns like
//! `CREATE TABLE`. `UNBOUNDED`, `PARTITIONED BY` and `WITH ORDER` are refused
//! with a hint.

use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan};

use super::{
    ColumnListExtensions, CreateConnectorTable, TableHead, expect_end,
    extract_column_list_extensions, keyword, loc, parse_table_head, parser,
};
use crate::error::{Error, Result};

/// DataFusion's `OPTIONS` keys and the filesystem connector keys they mean.
const DATAFUSION_KEYS: &[(&str, &str)] = &[
    ("format.has_header", "csv.header"),
    ("format.delimiter", "csv.field-delimiter"),
    ("format.quote", "csv.quote-character"),
    ("format.escape", "csv.escape-character"),
    ("format.compression", "parquet.compression"),
];

/// Parses `CREATE [UNBOUNDED] EXTERNAL TABLE …` (the tokens of one statement,
/// whitespace removed) into a `filesystem` connector table; `None` when the
/// statement is not one.
///
/// # Errors
/// A syntax error with its position: a missing `STORED AS` or `LOCATION`, a
/// format other than Parquet, CSV, JSON or NDJSON, an option without a
/// quoted value; `UNBOUNDED`, `PARTITIONED BY` and `WITH ORDER` as not
/// supported, each with the Tributary form to use instead.
pub(super) fn try_parse_external_table(
    tokens: &[TokenWithSpan],
) -> Result<Option<CreateConnectorTable>> {
    let mut i = 1;
    if keyword(tokens.get(i)) == Some(Keyword::UNBOUNDED) {
        return Err(Error::not_supported("CREATE UNBOUNDED EXTERNAL TABLE")
            .at(tokens.get(i).map(loc))
            .with_hint(
                "a directory becomes an unbounded source with 'source.monitor-interval': \
                 CREATE EXTERNAL TABLE t STORED AS CSV LOCATION 'dir/' OPTIONS ('source.monitor-interval' '1 s')",
            ));
    }
    if keyword(tokens.get(i)) != Some(Keyword::EXTERNAL) {
        return Ok(None);
    }
    i += 1;
    if keyword(tokens.get(i)) != Some(Keyword::TABLE) {
        return Ok(None);
    }
    let (tokens, extensions) = extract_column_list_extensions(tokens)?;
    let ColumnListExtensions {
        watermark,
        computed,
    } = extensions;
    let mut parser = parser(tokens[i + 1..].to_vec());
    let TableHead {
        if_not_exists,
        name_location,
        name,
        columns,
        constraints,
    } = parse_table_head(&mut parser)?;
    let mut format: Option<String> = None;
    let mut path: Option<String> = None;
    let mut options: Vec<(String, String)> = Vec::new();
    loop {
        let clause = parser.peek_token();
        if clause.token == Token::EOF {
            break;
        }
        if parser.parse_keywords(&[Keyword::STORED, Keyword::AS]) {
            let format_token = parser.next_token();
            let name = match &format_token.token {
                Token::Word(w) => w.value.to_ascii_lowercase(),
                other => {
                    return Err(Error::syntax(format!(
                        "expected a file format after STORED AS, found '{other}'"
                    ))
                    .at(Some(loc(&format_token)))
                    .with_hint("STORED AS PARQUET, CSV, JSON or NDJSON"));
                }
            };
            format = Some(match name.as_str() {
                "parquet" | "csv" | "json" => name,
                "ndjson" => "json".to_string(),
                _ => {
                    return Err(Error::not_supported(format!(
                        "STORED AS {}: the filesystem connector reads Parquet, CSV and \
                         newline-delimited JSON",
                        name.to_ascii_uppercase()
                    ))
                    .at(Some(loc(&format_token)))
                    .with_hint("STORED AS PARQUET, CSV, JSON or NDJSON"));
                }
            });
        } else if parser.parse_keyword(Keyword::LOCATION) {
            path = Some(parser.parse_literal_string()?);
        } else if parser.parse_keyword(Keyword::OPTIONS) {
            options.extend(parse_options(&mut parser)?);
        } else if parser.parse_keywords(&[Keyword::PARTITIONED, Keyword::BY])
            || parser.parse_keywords(&[Keyword::WITH, Keyword::ORDER])
        {
            return Err(Error::not_supported(
                "PARTITIONED BY and WITH ORDER in CREATE EXTERNAL TABLE",
            )
            .at(Some(loc(&clause)))
            .with_hint(
                "leave the clause out: the directory is read recursively, and ORDER BY in the query sorts",
            ));
        } else {
            return Err(Error::syntax(format!(
                "unexpected '{}' in CREATE EXTERNAL TABLE",
                clause.token
            ))
            .at(Some(loc(&clause)))
            .with_hint("the clauses are STORED AS <format>, LOCATION '<path>' and OPTIONS ('key' 'value', ...)"));
        }
    }
    expect_end(&parser)?;
    let end = tokens.last().map(loc);
    let format = format.ok_or_else(|| {
        Error::syntax("CREATE EXTERNAL TABLE needs STORED AS <format>")
            .at(end)
            .with_hint("add STORED AS PARQUET, CSV, JSON or NDJSON")
    })?;
    let path = path.ok_or_else(|| {
        Error::syntax("CREATE EXTERNAL TABLE needs LOCATION '<path>'")
            .at(end)
            .with_hint("add LOCATION '<a file or a directory>'")
    })?;
    let mut all = vec![
        ("connector".to_string(), "filesystem".to_string()),
        ("path".to_string(), path),
        ("format".to_string(), format),
    ];
    all.extend(options);
    Ok(Some(CreateConnectorTable {
        name,
        columns,
        constraints,
        options: all,
        if_not_exists,
        temporary: false,
        watermark,
        computed,
        name_location,
    }))
}

/// `( 'key' ['='] 'value' [, …] )`, DataFusion's option list, with
/// DataFusion's `format.*` keys renamed to the connector's.
fn parse_options(parser: &mut sqlparser::parser::Parser<'static>) -> Result<Vec<(String, String)>> {
    parser.expect_token(&Token::LParen)?;
    let mut out = Vec::new();
    loop {
        let key_token = parser.next_token();
        let key = match &key_token.token {
            Token::SingleQuotedString(s) => s.clone(),
            Token::Word(w) => w.value.clone(),
            other => {
                return Err(
                    Error::syntax(format!("expected an option key, found '{other}'"))
                        .at(Some(loc(&key_token)))
                        .with_hint(
                            "options are written 'key' 'value', e.g. 'format.has_header' 'true'",
                        ),
                );
            }
        };
        let _ = parser.consume_token(&Token::Eq);
        let value_token = parser.next_token();
        let value = match &value_token.token {
            Token::SingleQuotedString(s) => s.clone(),
            Token::Number(n, _) => n.clone(),
            Token::Word(w) if matches!(w.keyword, Keyword::TRUE | Keyword::FALSE) => {
                w.value.to_ascii_lowercase()
            }
            other => {
                return Err(Error::syntax(format!(
                    "expected a quoted value for option '{key}', found '{other}'"
                ))
                .at(Some(loc(&value_token)))
                .with_hint(format!("write '{key}' '<value>'")));
            }
        };
        let key = DATAFUSION_KEYS
            .iter()
            .find(|(datafusion, _)| datafusion.eq_ignore_ascii_case(&key))
            .map_or(key, |(_, ours)| (*ours).to_string());
        out.push((key, value));
        let sep = parser.next_token();
        match sep.token {
            Token::Comma => continue,
            Token::RParen => return Ok(out),
            ref other => {
                return Err(Error::syntax(format!(
                    "expected ',' or ')' in OPTIONS, found '{other}'"
                ))
                .at(Some(loc(&sep))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::parser::{Statement, parse_sql};

    fn options(sql: &str) -> Vec<(String, String)> {
        let mut v = parse_sql(sql).unwrap();
        let Statement::CreateConnectorTable(c) = v.remove(0).statement else {
            panic!("not a connector table: {sql}")
        };
        c.options
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn becomes_a_filesystem_table() {
        assert_eq!(
            options("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 'data/t/'"),
            pairs(&[
                ("connector", "filesystem"),
                ("path", "data/t/"),
                ("format", "parquet")
            ])
        );
    }

    #[test]
    fn clauses_in_any_order_and_datafusion_keys_renamed() {
        assert_eq!(
            options(
                "CREATE EXTERNAL TABLE IF NOT EXISTS t (a BIGINT, b STRING) LOCATION 'x.csv' \
                 OPTIONS ('format.has_header' 'false', 'format.delimiter' = ';', 'csv.ignore-parse-errors' 'true') STORED AS csv"
            ),
            pairs(&[
                ("connector", "filesystem"),
                ("path", "x.csv"),
                ("format", "csv"),
                ("csv.header", "false"),
                ("csv.field-delimiter", ";"),
                ("csv.ignore-parse-errors", "true"),
            ])
        );
        assert_eq!(
            options("CREATE EXTERNAL TABLE t STORED AS NDJSON LOCATION 'x.json'")[2],
            ("format".to_string(), "json".to_string())
        );
    }

    #[test]
    fn keeps_the_watermark_and_the_columns() {
        let mut v = parse_sql(
            "CREATE EXTERNAL TABLE t (id BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
             STORED AS CSV LOCATION 'dir/'",
        )
        .unwrap();
        let Statement::CreateConnectorTable(c) = v.remove(0).statement else {
            panic!()
        };
        assert_eq!(c.columns.len(), 2);
        assert!(c.watermark.is_some());
    }

    #[test]
    fn errors_say_what_is_missing_and_where() {
        let message = |sql: &str| parse_sql(sql).unwrap_err().to_string();
        let e = message("CREATE EXTERNAL TABLE t LOCATION 'x'");
        assert!(e.contains("needs STORED AS"), "{e}");
        let e = message("CREATE EXTERNAL TABLE t STORED AS PARQUET");
        assert!(e.contains("needs LOCATION"), "{e}");
        let e = message("CREATE EXTERNAL TABLE t STORED AS AVRO LOCATION 'x'");
        assert!(
            e.contains("STORED AS AVRO") && e.contains("column 35"),
            "{e}"
        );
        let e = message("CREATE UNBOUNDED EXTERNAL TABLE t STORED AS CSV LOCATION 'x'");
        assert!(e.contains("source.monitor-interval"), "{e}");
        let e = message("CREATE EXTERNAL TABLE t STORED AS CSV PARTITIONED BY (a) LOCATION 'x'");
        assert!(e.contains("PARTITIONED BY"), "{e}");
    }
}

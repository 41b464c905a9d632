//! Tributary's SQL front end: splits a text into statements and parses each.
//!
//! sqlparser (with DataFusion's generic dialect) parses the statements
//! DataFusion plans: queries, `INSERT`, `CREATE TABLE` without `WITH`, `CREATE
//! TABLE AS`, `CREATE VIEW`, `DROP`. The statements that take Flink's forms,
//! which sqlparser does not parse as Flink writes them, are recognised here by
//! their leading keywords and parsed with sqlparser's own `Parser` methods on
//! the same tokens:
//!
//! * `CREATE [TEMPORARY] TABLE [IF NOT EXISTS] t [(cols)] WITH ('k' = 'v', ...)`
//! * DataFusion's `CREATE EXTERNAL TABLE t STORED AS f LOCATION 'p'`, read as
//!   a `filesystem` table ([`external_table`])
//! * `SET`, `SET 'key' = 'value'`, `RESET`, `RESET 'key'`
//! * `SHOW TABLES`, `SHOW VIEWS`, `DESCRIBE t` / `DESC t`
//! * `EXPLAIN [ANALYZE | PLAN FOR] <statement>`
//!
//! Every token keeps its line and column in the whole text, so errors point
//! into the text the user typed, whichever statement they are in.

mod external_table;

use sqlparser::ast::{
    ColumnDef, Expr as SqlExpr, Ident, ObjectName, Statement as SqlStatement, TableConstraint,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::error::{Error, Location, Result};
use crate::watermark::WatermarkDef;

/// A computed column `name AS expr` of a CREATE TABLE (Flink's computed
/// column): not stored by the connector, computed from the other columns
/// each time the table is read.
#[derive(Debug, Clone)]
pub struct ComputedColumnDef {
    /// The column's name.
    pub name: Ident,
    /// The expression over the table's physical columns.
    pub expr: SqlExpr,
    /// Its 0-based position among all the table's columns, as declared.
    pub position: usize,
    /// Where the declaration starts.
    pub location: Location,
}

/// One parsed statement and where it starts in the text.
#[derive(Debug, Clone)]
pub struct ParsedStatement {
    /// The statement.
    pub statement: Statement,
    /// Line and column of its first token.
    pub location: Location,
    /// The statement's text, without the trailing `;`.
    pub text: String,
}

/// A statement of Tributary's dialect.
#[derive(Debug, Clone)]
pub enum Statement {
    /// `CREATE TABLE ... WITH (...)`: a connector table.
    CreateConnectorTable(CreateConnectorTable),
    /// `SET` (list every key) or `SET 'key' = 'value'`.
    Set {
        key: Option<String>,
        value: Option<String>,
    },
    /// `RESET` (every key) or `RESET 'key'`.
    Reset { key: Option<String> },
    /// `SHOW TABLES`: tables and views.
    ShowTables,
    /// `SHOW VIEWS`.
    ShowViews,
    /// `DESCRIBE t`.
    Describe { name: ObjectName },
    /// `EXPLAIN [ANALYZE | PLAN FOR] <statement>`. With `ANALYZE` the
    /// statement runs and the plan shows what it did (per BATCH stage: rows,
    /// bytes materialized, time, retries).
    Explain {
        statement: Box<ParsedStatement>,
        analyze: bool,
    },
    /// Any other statement, planned by DataFusion.
    Sql(Box<SqlStatement>),
}

/// `CREATE [TEMPORARY] TABLE [IF NOT EXISTS] name [(columns [, WATERMARK FOR c AS e])] [WITH (options)]`:
/// a connector table, or (without `WITH`) an in-memory table with a watermark.
#[derive(Debug, Clone)]
pub struct CreateConnectorTable {
    /// The table's name.
    pub name: ObjectName,
    /// The declared columns; empty when left out (inferred from the data).
    pub columns: Vec<ColumnDef>,
    /// Table constraints (`PRIMARY KEY (...) NOT ENFORCED`).
    pub constraints: Vec<TableConstraint>,
    /// The `WITH` options in the order written; empty for an in-memory table.
    pub options: Vec<(String, String)>,
    /// `IF NOT EXISTS`.
    pub if_not_exists: bool,
    /// `TEMPORARY` (every table lives as long as its session either way).
    pub temporary: bool,
    /// `WATERMARK FOR column AS expr`, if declared.
    pub watermark: Option<WatermarkDef>,
    /// Computed columns `name AS expr` (Flink), in declaration order.
    pub computed: Vec<ComputedColumnDef>,
    /// Where the table name is.
    pub name_location: Location,
}

/// Parses `sql` into its statements, in order. Empty statements (`;;`) and
/// comments are skipped.
///
/// # Errors
/// The first syntax error, with its line and column in `sql`.
pub fn parse_sql(sql: &str) -> Result<Vec<ParsedStatement>> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .with_unescape(true)
        .tokenize_with_location()?;
    let mut out = Vec::new();
    for chunk in tokens.split(|t| t.token == Token::SemiColon) {
        let Some(first) = chunk.iter().find(|t| !is_trivia(&t.token)) else {
            continue;
        };
        let last = chunk
            .iter()
            .rev()
            .find(|t| !is_trivia(&t.token))
            .unwrap_or(first);
        let location = loc(first);
        let text = slice(
            sql,
            location,
            Location {
                line: last.span.end.line,
                column: last.span.end.column,
            },
        );
        let end = Location {
            line: last.span.end.line,
            column: last.span.end.column,
        };
        // An error at the end of input (sqlparser's EOF has no position)
        // points just past the statement's last token.
        let statement = parse_statement(
            chunk
                .iter()
                .filter(|t| !is_trivia(&t.token))
                .cloned()
                .collect(),
        )
        .map_err(|e| e.at(Some(end)))?;
        out.push(ParsedStatement {
            statement,
            location,
            text,
        });
    }
    Ok(out)
}

fn is_trivia(t: &Token) -> bool {
    matches!(t, Token::Whitespace(_))
}

fn loc(t: &TokenWithSpan) -> Location {
    Location {
        line: t.span.start.line,
        column: t.span.start.column,
    }
}

/// The text between two locations (end exclusive).
fn slice(sql: &str, start: Location, end: Location) -> String {
    let offset = |l: Location| -> usize {
        let mut line_start = 0;
        for _ in 1..l.line {
            line_start += sql[line_start..]
                .find('\n')
                .map(|i| i + 1)
                .unwrap_or(sql.len() - line_start);
        }
        let rest = &sql[line_start..];
        line_start
            + rest
                .char_indices()
                .nth(l.column.saturating_sub(1) as usize)
                .map(|(i, _)| i)
                .unwrap_or(rest.len())
    };
    let (a, b) = (offset(start), offset(end));
    sql.get(a..b.max(a)).unwrap_or_default().to_string()
}

fn keyword(t: Option<&TokenWithSpan>) -> Option<Keyword> {
    match t.map(|t| &t.token) {
        Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.keyword),
        _ => None,
    }
}

/// Parses the tokens of one statement (whitespace removed).
fn parse_statement(tokens: Vec<TokenWithSpan>) -> Result<Statement> {
    let kw = |i: usize| keyword(tokens.get(i));
    match kw(0) {
        Some(Keyword::SET) => parse_set(&tokens[1..]),
        Some(Keyword::RESET) => {
            let key = if tokens.len() > 1 {
                Some(setting_text(&tokens[1..]))
            } else {
                None
            };
            Ok(Statement::Reset { key })
        }
        Some(Keyword::SHOW) => match kw(1) {
            Some(Keyword::TABLES) if tokens.len() == 2 => Ok(Statement::ShowTables),
            Some(Keyword::VIEWS) if tokens.len() == 2 => Ok(Statement::ShowViews),
            _ => Err(Error::not_supported("this SHOW statement is not supported")
                .at(tokens.get(1).map(loc))
                .with_hint("supported: SHOW TABLES, SHOW VIEWS")),
        },
        Some(Keyword::DESCRIBE) | Some(Keyword::DESC) => {
            let mut parser = parser(tokens[1..].to_vec());
            let name = parser.parse_object_name(false)?;
            expect_end(&parser)?;
            Ok(Statement::Describe { name })
        }
        Some(Keyword::EXPLAIN) => {
            let mut rest = 1;
            let mut analyze = false;
            if kw(1) == Some(Keyword::PLAN) && kw(2) == Some(Keyword::FOR) {
                rest = 3;
            } else if kw(1) == Some(Keyword::ANALYZE) {
                rest = 2;
                analyze = true;
            }
            let inner_tokens = tokens[rest..].to_vec();
            let Some(first) = inner_tokens.first() else {
                return Err(Error::syntax("EXPLAIN needs a statement to explain")
                    .at(tokens.last().map(loc)));
            };
            let location = loc(first);
            let inner = parse_statement(inner_tokens)?;
            if matches!(inner, Statement::Explain { .. }) {
                return Err(Error::syntax("EXPLAIN of an EXPLAIN").at(Some(location)));
            }
            Ok(Statement::Explain {
                statement: Box::new(ParsedStatement {
                    statement: inner,
                    location,
                    text: String::new(),
                }),
                analyze,
            })
        }
        Some(Keyword::CREATE) => {
            if let Some(create) = external_table::try_parse_external_table(&tokens)? {
                return Ok(Statement::CreateConnectorTable(create));
            }
            if let Some(create) = try_parse_connector_table(&tokens)? {
                return Ok(Statement::CreateConnectorTable(create));
            }
            parse_datafusion(tokens)
        }
        _ => parse_datafusion(tokens),
    }
}

fn parser(tokens: Vec<TokenWithSpan>) -> Parser<'static> {
    static DIALECT: GenericDialect = GenericDialect {};
    Parser::new(&DIALECT).with_tokens_with_locations(tokens)
}

fn expect_end(parser: &Parser) -> Result<()> {
    expect_end_of(parser, "after the end of the statement")
}

/// The parser is at the end of its tokens; else a syntax error naming the
/// token found and `place` ("in the WATERMARK clause", ...).
fn expect_end_of(parser: &Parser, place: &str) -> Result<()> {
    let next = parser.peek_token();
    if next.token == Token::EOF {
        Ok(())
    } else {
        Err(Error::syntax(format!("unexpected '{}' {place}", next.token)).at(Some(loc(&next))))
    }
}

fn parse_datafusion(tokens: Vec<TokenWithSpan>) -> Result<Statement> {
    let mut parser = if has_system_time_as_of(&tokens) {
        static VERSIONING: crate::dialect::VersioningDialect =
            crate::dialect::VersioningDialect::new();
        Parser::new(&VERSIONING).with_tokens_with_locations(drop_tvf_table_keyword(tokens))
    } else {
        parser(drop_tvf_table_keyword(tokens))
    };
    let mut statement = parser.parse_statement()?;
    expect_end(&parser)?;
    // Every table lives as long as the session, so TEMPORARY changes nothing;
    // DataFusion refuses the keyword, so drop it.
    match &mut statement {
        SqlStatement::CreateTable(create) => create.temporary = false,
        SqlStatement::CreateView(view) => view.temporary = false,
        _ => {}
    }
    crate::subquery_names::name_scalar_subqueries(&mut statement);
    Ok(Statement::Sql(Box::new(statement)))
}

/// Whether the statement has `FOR SYSTEM_TIME AS OF` (a temporal join), which
/// only [`crate::dialect::VersioningDialect`] parses.
fn has_system_time_as_of(tokens: &[TokenWithSpan]) -> bool {
    const WORDS: [Keyword; 4] = [Keyword::FOR, Keyword::SYSTEM_TIME, Keyword::AS, Keyword::OF];
    tokens.windows(4).any(|w| {
        w.iter()
            .zip(WORDS)
            .all(|(t, k)| keyword(Some(t)) == Some(k))
    })
}

/// `TUMBLE(TABLE t, ...)` → `TUMBLE((SELECT * FROM t), ...)`: sqlparser
/// cannot parse `TABLE t` as a function argument, and a subquery keeps `t` a
/// table reference that DataFusion resolves before planning. The window TVF
/// planner plans the subquery as the TVF's input (see `window_tvf`).
fn drop_tvf_table_keyword(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len() + 8);
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        let after_tvf_paren = out.len() >= 2
            && out[out.len() - 1].token == Token::LParen
            && matches!(&out[out.len() - 2].token, Token::Word(w) if w.quote_style.is_none()
                && crate::window_tvf::WINDOW_TVFS.iter().any(|f| w.value.eq_ignore_ascii_case(f)));
        if after_tvf_paren && keyword(Some(t)) == Some(Keyword::TABLE) {
            // The (possibly dotted) name that follows; PARTITION BY is not a name.
            let mut end = i + 1;
            while end < tokens.len()
                && matches!(tokens[end].token, Token::Word(_) | Token::Period)
                && keyword(tokens.get(end)) != Some(Keyword::PARTITION)
            {
                end += 1;
            }
            let at = |token: Token| TokenWithSpan {
                token,
                span: t.span,
            };
            let word = |w: &str| at(Token::make_word(w, None));
            out.extend([
                at(Token::LParen),
                word("SELECT"),
                at(Token::Mul),
                word("FROM"),
            ]);
            out.extend_from_slice(&tokens[i + 1..end]);
            out.push(at(Token::RParen));
            i = end;
            // SESSION(TABLE t PARTITION BY k | (k1, k2), ...) → ..., PARTITION_BY(k1, k2), ...
            if keyword(tokens.get(i)) == Some(Keyword::PARTITION)
                && keyword(tokens.get(i + 1)) == Some(Keyword::BY)
            {
                let mut j = i + 2;
                let mut depth = 0;
                let start = j;
                while j < tokens.len() {
                    match tokens[j].token {
                        Token::LParen => depth += 1,
                        Token::RParen if depth == 0 => break,
                        Token::RParen => depth -= 1,
                        Token::Comma if depth == 0 => break,
                        _ => {}
                    }
                    j += 1;
                }
                let mut keys = &tokens[start..j];
                if keys.first().is_some_and(|k| k.token == Token::LParen)
                    && keys.last().is_some_and(|k| k.token == Token::RParen)
                {
                    keys = &keys[1..keys.len() - 1];
                }
                out.extend([at(Token::Comma), word("PARTITION_BY"), at(Token::LParen)]);
                out.extend_from_slice(keys);
                out.push(at(Token::RParen));
                i = j;
            }
            continue;
        }
        out.push(t.clone());
        i += 1;
    }
    out
}

/// `SET` / `SET 'k' = 'v'` / `SET k = v` / `SET k TO v`.
fn parse_set(tokens: &[TokenWithSpan]) -> Result<Statement> {
    if tokens.is_empty() {
        return Ok(Statement::Set {
            key: None,
            value: None,
        });
    }
    let split = tokens
        .iter()
        .position(|t| t.token == Token::Eq || keyword(Some(t)) == Some(Keyword::TO))
        .ok_or_else(|| {
            Error::syntax("expected SET 'key' = 'value'")
                .at(tokens.last().map(loc))
                .with_hint("e.g. SET 'execution.runtime-mode' = 'batch'")
        })?;
    if split == 0 || split + 1 >= tokens.len() {
        return Err(Error::syntax("expected SET 'key' = 'value'")
            .at(Some(loc(&tokens[split.min(tokens.len() - 1)])))
            .with_hint("e.g. SET 'execution.runtime-mode' = 'batch'"));
    }
    Ok(Statement::Set {
        key: Some(setting_text(&tokens[..split])),
        value: Some(setting_text(&tokens[split + 1..])),
    })
}

/// The text of a key or value: a quoted string's content, or the tokens
/// joined (so `datafusion.execution.batch_size` and `8192` work unquoted).
fn setting_text(tokens: &[TokenWithSpan]) -> String {
    match tokens {
        [t] => match &t.token {
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s.clone(),
            Token::Word(w) => w.value.clone(),
            other => other.to_string(),
        },
        _ => tokens.iter().map(|t| t.token.to_string()).collect(),
    }
}

/// Parses `CREATE [TEMPORARY] TABLE [IF NOT EXISTS] name [(cols)] WITH (...)`;
/// `None` if the statement is some other CREATE (left to DataFusion).
fn try_parse_connector_table(tokens: &[TokenWithSpan]) -> Result<Option<CreateConnectorTable>> {
    let mut i = 1;
    let temporary = matches!(
        keyword(tokens.get(i)),
        Some(Keyword::TEMPORARY) | Some(Keyword::TEMP)
    );
    if temporary {
        i += 1;
    }
    if keyword(tokens.get(i)) != Some(Keyword::TABLE) {
        return Ok(None);
    }
    let (tokens, extensions) = extract_column_list_extensions(tokens)?;
    let ColumnListExtensions {
        watermark,
        computed,
    } = extensions;
    // A WITH followed by '(' and a quoted key makes this a connector table;
    // a WATERMARK makes it ours too (DataFusion has no such clause).
    let has_with = tokens.windows(3).any(|w| {
        keyword(Some(&w[0])) == Some(Keyword::WITH)
            && w[1].token == Token::LParen
            && matches!(w[2].token, Token::SingleQuotedString(_))
    });
    if !has_with && watermark.is_none() && computed.is_empty() {
        return Ok(None);
    }
    let mut parser = parser(tokens[i + 1..].to_vec());
    let TableHead {
        if_not_exists,
        name_location,
        name,
        columns,
        constraints,
    } = parse_table_head(&mut parser)?;
    let mut options = Vec::new();
    if !has_with {
        expect_end(&parser)?;
        if columns.is_empty() {
            return Err(
                Error::syntax("an in-memory table needs its columns declared")
                    .at(Some(name_location)),
            );
        }
        return Ok(Some(CreateConnectorTable {
            name,
            columns,
            constraints,
            options,
            if_not_exists,
            temporary,
            name_location,
            watermark,
            computed,
        }));
    }
    parser.expect_keyword(Keyword::WITH)?;
    parser.expect_token(&Token::LParen)?;
    loop {
        let key_token = parser.next_token();
        let key = match key_token.token.clone() {
            Token::SingleQuotedString(s) => s,
            other => {
                return Err(Error::syntax(format!(
                    "expected a quoted option key, found '{other}'"
                ))
                .at(Some(loc(&key_token)))
                .with_hint(
                    "options are written 'key' = 'value', e.g. 'connector' = 'filesystem'",
                ));
            }
        };
        parser.expect_token(&Token::Eq)?;
        let value_token = parser.next_token();
        let value = match value_token.token.clone() {
            Token::SingleQuotedString(s) => s,
            Token::Number(n, _) => n,
            Token::Word(w)
                if w.quote_style.is_none()
                    && matches!(w.keyword, Keyword::TRUE | Keyword::FALSE) =>
            {
                w.value
            }
            other => {
                return Err(Error::syntax(format!(
                    "expected a quoted value for option '{key}', found '{other}'"
                ))
                .at(Some(loc(&value_token)))
                .with_hint(format!("write '{key}' = '<value>'")));
            }
        };
        options.push((key, value));
        let sep = parser.next_token();
        match sep.token.clone() {
            Token::Comma => continue,
            Token::RParen => break,
            other => {
                return Err(Error::syntax(format!(
                    "expected ',' or ')' in the WITH options, found '{other}'"
                ))
                .at(Some(loc(&sep))));
            }
        }
    }
    expect_end(&parser)?;
    Ok(Some(CreateConnectorTable {
        name,
        columns,
        constraints,
        options,
        if_not_exists,
        temporary,
        name_location,
        watermark,
        computed,
    }))
}

/// What follows `CREATE [TEMPORARY | EXTERNAL] TABLE`: `[IF NOT EXISTS] name
/// [(columns, constraints)]`.
struct TableHead {
    if_not_exists: bool,
    name_location: Location,
    name: ObjectName,
    columns: Vec<ColumnDef>,
    constraints: Vec<TableConstraint>,
}

/// Parses a [`TableHead`]; the parser then stands after the column list.
fn parse_table_head(parser: &mut Parser<'static>) -> Result<TableHead> {
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name_location = loc(&parser.peek_token());
    let name = parser.parse_object_name(false)?;
    let (columns, constraints) = if parser.peek_token().token == Token::LParen {
        parser.parse_columns()?
    } else {
        (vec![], vec![])
    };
    Ok(TableHead {
        if_not_exists,
        name_location,
        name,
        columns,
        constraints,
    })
}

/// The parts of a CREATE TABLE column list that sqlparser does not know,
/// taken out of it: Flink's `WATERMARK FOR column AS expr` and computed
/// columns `name AS expr`.
#[derive(Debug, Default)]
struct ColumnListExtensions {
    watermark: Option<WatermarkDef>,
    computed: Vec<ComputedColumnDef>,
}

/// Takes the watermark and computed columns out of a CREATE TABLE's column
/// list and parses them; returns the remaining tokens (the list without
/// them, which sqlparser parses).
fn extract_column_list_extensions(
    tokens: &[TokenWithSpan],
) -> Result<(Vec<TokenWithSpan>, ColumnListExtensions)> {
    let mut found = ColumnListExtensions::default();
    let Some(open) = tokens.iter().position(|t| t.token == Token::LParen) else {
        return Ok((tokens.to_vec(), found));
    };
    // The column list must come right after the name (not `AS SELECT (...)`).
    if tokens[..open]
        .iter()
        .any(|t| keyword(Some(t)) == Some(Keyword::AS))
    {
        return Ok((tokens.to_vec(), found));
    }
    // The elements of the list at depth 1, as token ranges without commas.
    let mut depth = 0;
    let mut element_start = open + 1;
    let mut elements: Vec<(usize, usize)> = Vec::new();
    let mut close = None;
    for (j, t) in tokens.iter().enumerate().skip(open) {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    elements.push((element_start, j));
                    close = Some(j);
                    break;
                }
            }
            Token::Comma if depth == 1 => {
                elements.push((element_start, j));
                element_start = j + 1;
            }
            _ => {}
        }
    }
    let Some(close) = close else {
        return Ok((tokens.to_vec(), found));
    };
    let mut kept: Vec<&[TokenWithSpan]> = Vec::new();
    let mut position = 0; // columns (physical and computed) so far
    for &(start, end) in &elements {
        let element: Vec<TokenWithSpan> = tokens[start..end]
            .iter()
            .filter(|t| !is_trivia(&t.token))
            .cloned()
            .collect();
        if is_watermark(&element) {
            let def = parse_watermark(element)?;
            if let Some(first) = &found.watermark {
                return Err(Error::syntax("a table can declare only one WATERMARK")
                    .at(Some(def.location))
                    .with_hint(format!(
                        "keep one of the WATERMARK clauses (the first is at line {}, column {})",
                        first.location.line, first.location.column
                    )));
            }
            found.watermark = Some(def);
        } else if is_computed_column(&element) {
            found
                .computed
                .push(parse_computed_column(element, position)?);
            position += 1;
        } else {
            if !is_table_constraint(&element) {
                position += 1;
            }
            kept.push(&tokens[start..end]);
        }
    }
    if found.watermark.is_none() && found.computed.is_empty() {
        return Ok((tokens.to_vec(), found));
    }
    let mut remaining = tokens[..=open].to_vec();
    for (i, element) in kept.iter().enumerate() {
        if i > 0 {
            remaining.push(TokenWithSpan::wrap(Token::Comma));
        }
        remaining.extend_from_slice(element);
    }
    remaining.extend_from_slice(&tokens[close..]);
    Ok((remaining, found))
}

/// Parses `WATERMARK FOR column AS expr`.
fn parse_watermark(element: Vec<TokenWithSpan>) -> Result<WatermarkDef> {
    let location = loc(&element[0]);
    let mut p = parser(element);
    p.next_token(); // WATERMARK
    p.expect_keyword(Keyword::FOR)?;
    let column = p.parse_identifier()?;
    p.expect_keyword(Keyword::AS)?;
    let expr = p.parse_expr()?;
    expect_end_of(&p, "in the WATERMARK clause")?;
    Ok(WatermarkDef {
        column,
        expr,
        location,
    })
}

/// Parses a computed column `name AS expr`.
fn parse_computed_column(
    element: Vec<TokenWithSpan>,
    position: usize,
) -> Result<ComputedColumnDef> {
    let location = loc(&element[0]);
    let mut p = parser(element);
    let name = p.parse_identifier()?;
    p.expect_keyword(Keyword::AS)?;
    let expr = p.parse_expr()?;
    expect_end_of(&p, &format!("after the computed column '{name}'")).map_err(|e| {
        e.with_hint(format!(
            "a computed column is written `{name} AS <expression>`"
        ))
    })?;
    Ok(ComputedColumnDef {
        name,
        expr,
        position,
        location,
    })
}

/// `name AS ...`: a computed column (a physical column has a type there).
fn is_computed_column(element: &[TokenWithSpan]) -> bool {
    matches!(element.first().map(|t| &t.token), Some(Token::Word(_)))
        && keyword(element.get(1)) == Some(Keyword::AS)
}

/// A table constraint element (`PRIMARY KEY (...)`, `CONSTRAINT n ...`, ...).
fn is_table_constraint(element: &[TokenWithSpan]) -> bool {
    matches!(
        keyword(element.first()),
        Some(
            Keyword::PRIMARY
                | Keyword::CONSTRAINT
                | Keyword::UNIQUE
                | Keyword::FOREIGN
                | Keyword::CHECK
        )
    )
}

fn is_watermark(element: &[TokenWithSpan]) -> bool {
    matches!(element.first().map(|t| &t.token), Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("WATERMARK"))
        && keyword(element.get(1)) == Some(Keyword::FOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Statement {
        let mut v = parse_sql(sql).unwrap();
        assert_eq!(v.len(), 1, "{sql}");
        v.remove(0).statement
    }

    #[test]
    fn splits_statements_and_keeps_locations() {
        let v = parse_sql("SELECT 1;\n-- a comment\n  SELECT ';' ;;").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].location, Location { line: 3, column: 3 });
        assert_eq!(v[1].text, "SELECT ';'");
    }

    #[test]
    fn connector_table_with_and_without_columns() {
        let Statement::CreateConnectorTable(c) = one(
            "CREATE TEMPORARY TABLE IF NOT EXISTS t (a BIGINT, b STRING) WITH ('connector' = 'filesystem', 'path' = '/x')",
        ) else {
            panic!()
        };
        assert_eq!(c.name.to_string(), "t");
        assert_eq!(c.columns.len(), 2);
        assert!(c.if_not_exists && c.temporary);
        assert_eq!(c.options[1], ("path".to_string(), "/x".to_string()));
        let Statement::CreateConnectorTable(c) = one("CREATE TABLE f WITH ('format' = 'parquet')")
        else {
            panic!()
        };
        assert!(c.columns.is_empty());
    }

    #[test]
    fn watermark_is_taken_out_of_the_column_list() {
        let Statement::CreateConnectorTable(c) = one(
            "CREATE TABLE bids (auction BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '4' SECOND, price BIGINT) WITH ('connector' = 'x')",
        ) else {
            panic!()
        };
        assert_eq!(
            c.columns
                .iter()
                .map(|c| c.name.value.as_str())
                .collect::<Vec<_>>(),
            ["auction", "ts", "price"]
        );
        let w = c.watermark.unwrap();
        assert_eq!(w.column.value, "ts");
        assert_eq!(w.expr.to_string(), "ts - INTERVAL '4' SECOND");
        assert_eq!(
            w.location,
            Location {
                line: 1,
                column: 53
            }
        );
        // last element, and an in-memory table
        let Statement::CreateConnectorTable(c) =
            one("CREATE TABLE t (ts TIMESTAMP(3), WATERMARK FOR ts AS ts)")
        else {
            panic!()
        };
        assert!(c.options.is_empty() && c.columns.len() == 1 && c.watermark.is_some());
    }

    #[test]
    fn computed_columns_are_taken_out_with_their_positions() {
        let Statement::CreateConnectorTable(c) = one(
            "CREATE TABLE t (a BIGINT, b AS a * 2, ts AS TO_TIMESTAMP(a), c STRING, WATERMARK FOR ts AS ts, PRIMARY KEY (a) NOT ENFORCED) WITH ('connector' = 'x')",
        ) else {
            panic!()
        };
        let names: Vec<_> = c.columns.iter().map(|c| c.name.value.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        let computed: Vec<_> = c
            .computed
            .iter()
            .map(|c| (c.name.value.as_str(), c.expr.to_string(), c.position))
            .collect();
        assert_eq!(
            computed,
            [
                ("b", "a * 2".to_string(), 1),
                ("ts", "TO_TIMESTAMP(a)".to_string(), 2)
            ]
        );
        assert_eq!(c.constraints.len(), 1);
        assert_eq!(c.watermark.unwrap().column.value, "ts");
        assert_eq!(
            c.computed[0].location,
            Location {
                line: 1,
                column: 27
            }
        );
        let err =
            parse_sql("CREATE TABLE t (a INT, b AS a + ) WITH ('connector' = 'x')").unwrap_err();
        assert!(err.location.is_some(), "{err}");
        let err = parse_sql(
            "CREATE TABLE t (ts TIMESTAMP(3), WATERMARK FOR ts AS ts, WATERMARK FOR ts AS ts)",
        )
        .unwrap_err();
        assert!(err.to_string().contains("only one WATERMARK"), "{err}");
    }

    #[test]
    fn plain_create_table_goes_to_datafusion() {
        assert!(matches!(one("CREATE TABLE t (a INT)"), Statement::Sql(_)));
        assert!(matches!(
            one("CREATE TEMPORARY TABLE t AS SELECT 1"),
            Statement::Sql(_)
        ));
    }

    #[test]
    fn set_forms() {
        let s = |sql| match one(sql) {
            Statement::Set { key, value } => (key, value),
            _ => panic!(),
        };
        assert_eq!(s("SET"), (None, None));
        assert_eq!(
            s("SET 'execution.runtime-mode' = 'batch'"),
            (Some("execution.runtime-mode".into()), Some("batch".into()))
        );
        assert_eq!(
            s("SET datafusion.execution.batch_size = 100"),
            (
                Some("datafusion.execution.batch_size".into()),
                Some("100".into())
            )
        );
        assert!(matches!(one("RESET 'a.b'"), Statement::Reset { key: Some(k) } if k == "a.b"));
    }

    #[test]
    fn explain_plan_for() {
        let Statement::Explain { statement, .. } = one("EXPLAIN PLAN FOR SELECT 1") else {
            panic!()
        };
        assert!(matches!(statement.statement, Statement::Sql(_)));
    }

    #[test]
    fn syntax_error_has_location() {
        let e = parse_sql("SELECT 1;\nSELEC 2").unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Syntax);
        assert_eq!(e.location.map(|l| l.line), Some(2));
        let e = parse_sql("CREATE TABLE t (a INT) WITH ('k' = v)").unwrap_err();
        assert!(
            e.message.contains("expected a quoted value for option 'k'"),
            "{e}"
        );
        assert_eq!(
            e.location,
            Some(Location {
                line: 1,
                column: 36
            })
        );
    }
}

//! Tab completion in the REPL: SQL keywords and the session's table names.
//!
//! The word under the cursor is completed from a static list of keywords
//! (in the case the user is typing: `sel` → `select`, `SEL` → `SELECT`) and
//! from the table names the session has at the moment Tab is pressed. After
//! a word that introduces a table (`FROM`, `JOIN`, `INTO`, `TABLE`, ...),
//! table names come first. Completion never fails: if the session cannot
//! list its tables, only keywords are offered.

use rustyline::completion::{Completer, Pair};
use rustyline::{Context, Helper, Highlighter, Hinter, Validator};
use tributary_engine::Session;

/// Keywords offered for completion.
#[rustfmt::skip]
const KEYWORDS: &[&str] = &[
    "ALL", "ALTER", "AND", "AS", "ASC", "AUTOMATIC", "BATCH", "BETWEEN", "BIGINT", "BOOLEAN", "BY", "CASE", "CAST",
    "COUNT", "CREATE", "CROSS", "CUMULATE", "CURRENT_TIMESTAMP", "DATE", "DECIMAL", "DELETE", "DESC", "DESCRIBE",
    "DESCRIPTOR", "DISTINCT", "DOUBLE", "DROP", "ELSE", "END", "EXCEPT", "EXISTS", "EXPLAIN", "FALSE", "FLOAT",
    "FOR", "FROM", "FULL", "GROUP", "HAVING", "HOP", "IF", "IN", "INNER", "INSERT", "INT", "INTEGER", "INTERSECT",
    "INTERVAL", "INTO", "IS", "JOIN", "LEFT", "LIKE", "LIMIT", "MAX", "MIN", "NOT", "NULL", "OFFSET", "ON", "OR",
    "ORDER", "OUTER", "OVER", "PARTITION", "RESET", "RIGHT", "SECOND", "SELECT", "SESSION", "SET", "SHOW",
    "SMALLINT", "STREAMING", "STRING", "SUM", "TABLE", "TABLES", "THEN", "TIMESTAMP", "TINYINT", "TRUE", "TUMBLE",
    "UNION", "VALUES", "VARCHAR", "VIEW", "VIEWS", "WATERMARK", "WHEN", "WHERE", "WINDOW", "WITH",
];

/// Keywords after which a table name is expected.
const BEFORE_TABLE: &[&str] = &[
    "FROM", "JOIN", "INTO", "TABLE", "DESCRIBE", "DESC", "UPDATE", "VIEW",
];

/// The rustyline helper of the REPL: completion from the session; no hints,
/// highlighting or validation (the REPL finds statement ends itself).
#[derive(Helper, Hinter, Highlighter, Validator)]
pub struct SqlHelper {
    session: Session,
}

impl SqlHelper {
    /// A helper completing the tables of `session`.
    pub fn new(session: Session) -> Self {
        Self { session }
    }
}

impl Completer for SqlHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let tables = self.session.table_names(false).unwrap_or_default();
        let (start, words) = complete(line, pos, &tables);
        Ok((
            start,
            words
                .into_iter()
                .map(|w| Pair {
                    display: w.clone(),
                    replacement: w,
                })
                .collect(),
        ))
    }
}

/// The start of the word before `pos` in `line` and its completions.
pub fn complete(line: &str, pos: usize, tables: &[String]) -> (usize, Vec<String>) {
    let pos = floor_char_boundary(line, pos);
    let before = &line[..pos];
    let start = before.rfind(|c: char| !is_word_char(c)).map_or(0, |i| {
        i + before[i..].chars().next().map_or(1, char::len_utf8)
    });
    let prefix = &before[start..];
    if prefix.is_empty() || !crate::sql_text::ends_in_code(before) {
        return (pos, vec![]);
    }
    let lower = prefix.to_lowercase();
    let matching_tables = tables
        .iter()
        .filter(|t| t.to_lowercase().starts_with(&lower) && t.as_str() != prefix);
    let matching_keywords = KEYWORDS
        .iter()
        .filter(|k| k.to_lowercase().starts_with(&lower) && !k.eq_ignore_ascii_case(prefix))
        .map(|k| in_case_of(prefix, k));
    let table_expected = previous_word(&before[..start])
        .is_some_and(|w| BEFORE_TABLE.iter().any(|k| k.eq_ignore_ascii_case(w)));
    let mut words: Vec<String> = if table_expected {
        matching_tables.cloned().chain(matching_keywords).collect()
    } else {
        matching_keywords.chain(matching_tables.cloned()).collect()
    };
    let mut seen = std::collections::HashSet::new();
    words.retain(|w| seen.insert(w.clone()));
    (start, words)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The largest char boundary ≤ `pos`.
fn floor_char_boundary(line: &str, pos: usize) -> usize {
    let mut pos = pos.min(line.len());
    while !line.is_char_boundary(pos) {
        pos -= 1;
    }
    pos
}

/// The word before the blanks at the end of `text`, if any.
fn previous_word(text: &str) -> Option<&str> {
    let trimmed = text.trim_end();
    let start = trimmed
        .rfind(|c: char| !is_word_char(c))
        .map_or(0, |i| i + 1);
    let word = &trimmed[start..];
    (!word.is_empty()).then_some(word)
}

/// `keyword` in the case of what the user typed: all lower case if the
/// prefix has no upper-case letter, else upper case.
fn in_case_of(prefix: &str, keyword: &str) -> String {
    if prefix.chars().any(char::is_uppercase) {
        keyword.to_uppercase()
    } else {
        keyword.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> Vec<String> {
        ["airlines", "airports", "flights", "selections"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn keywords_keep_the_case_typed() {
        assert_eq!(complete("SEL", 3, &[]), (0, vec!["SELECT".to_string()]));
        assert_eq!(complete("sel", 3, &[]), (0, vec!["select".to_string()]));
        assert_eq!(complete("Sel", 3, &[]), (0, vec!["SELECT".to_string()]));
        assert_eq!(
            complete("SELECT a FR", 11, &[]),
            (9, vec!["FROM".to_string()])
        );
        assert_eq!(
            complete("select a fRo", 12, &[]),
            (9, vec!["FROM".to_string()])
        );
    }

    #[test]
    fn tables_complete_and_come_first_after_from() {
        assert_eq!(
            complete("SELECT * FROM air", 17, &tables()),
            (14, vec!["airlines".to_string(), "airports".to_string()])
        );
        assert_eq!(
            complete("SELECT * FROM fl", 16, &tables()),
            (14, vec!["flights".to_string(), "float".to_string()])
        );
        assert_eq!(
            complete("SELECT fl", 9, &tables()),
            (7, vec!["float".to_string(), "flights".to_string()])
        );
        assert_eq!(
            complete("sel", 3, &tables()),
            (0, vec!["select".to_string(), "selections".to_string()])
        );
    }

    #[test]
    fn completes_the_word_at_the_cursor() {
        assert_eq!(
            complete("SELECT * FROM fli WHERE", 17, &tables()),
            (14, vec!["flights".to_string()])
        );
    }

    #[test]
    fn nothing_for_an_empty_word_a_string_or_a_comment() {
        assert_eq!(complete("SELECT ", 7, &tables()), (7, vec![]));
        assert_eq!(complete("SELECT 'fl", 10, &tables()), (10, vec![]));
        assert_eq!(complete("SELECT 1 -- fl", 14, &tables()), (14, vec![]));
        assert_eq!(
            complete("SELECT '--' AS x, fli", 21, &tables()),
            (18, vec!["flights".to_string()])
        );
    }

    #[test]
    fn complete_words_are_not_offered_again() {
        assert_eq!(complete("SELECT", 6, &[]), (0, vec![]));
        assert_eq!(complete("FROM flights", 12, &tables()), (5, vec![]));
    }

    #[test]
    fn positions_inside_multibyte_text_do_not_panic() {
        let line = "SELECT 'é";
        for pos in 0..=line.len() + 2 {
            let _ = complete(line, pos, &tables());
        }
    }
}

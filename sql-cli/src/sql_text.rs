//! Lexical scanning of SQL text, without parsing it.
//!
//! The shell needs three answers the parser cannot give on incomplete input:
//! has the user finished a statement (the REPL keeps reading lines until a
//! line ends with `;` outside quotes and comments), is the buffer only blanks
//! and comments, and where do the statements before a syntax error end (so
//! that, as in a script, the statements before the error still run). The
//! scanner knows the lexical forms of the engine's dialect (sqlparser's
//! generic dialect): `'...'`, `"..."`, `` `...` ``, `$$...$$` / `$tag$...$tag$`,
//! `-- ...` and nested `/* ... */`.

use tributary_engine::Location;

/// What the scanner is inside of at a point of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Normal,
    /// Inside a quoted string or identifier closed by this character.
    Quoted(char),
    LineComment,
    /// Inside a block comment, at this nesting depth (≥ 1).
    BlockComment(u32),
    /// Inside a dollar-quoted string with this tag (`$tag$`, tag maybe empty).
    Dollar(String),
}

/// The result of scanning a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Byte offsets just past each top-level `;`.
    pub statement_ends: Vec<usize>,
    /// The last token outside comments is a top-level `;`.
    pub ends_with_semicolon: bool,
    /// There is at least one token outside comments (`;` included).
    pub has_tokens: bool,
    /// The text ends inside a quoted string, identifier or block comment.
    pub unterminated: bool,
    /// The text ends inside a quoted string, identifier or comment of any
    /// kind (a `-- line comment` included).
    pub ends_in_literal_or_comment: bool,
}

/// Scans `text`.
pub fn scan(text: &str) -> Scan {
    let bytes = text.as_bytes();
    let mut state = State::Normal;
    let mut out = Scan {
        statement_ends: vec![],
        ends_with_semicolon: false,
        has_tokens: false,
        unterminated: false,
        ends_in_literal_or_comment: false,
    };
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let c = rest.chars().next().unwrap_or_default();
        let len = c.len_utf8();
        match &mut state {
            State::Normal => {
                if rest.starts_with("--") {
                    state = State::LineComment;
                    i += 2;
                    continue;
                }
                if rest.starts_with("/*") {
                    state = State::BlockComment(1);
                    i += 2;
                    continue;
                }
                if c.is_whitespace() {
                    i += len;
                    continue;
                }
                out.has_tokens = true;
                out.ends_with_semicolon = c == ';';
                match c {
                    ';' => out.statement_ends.push(i + 1),
                    '\'' | '"' | '`' => state = State::Quoted(c),
                    '$' => {
                        if let Some(tag) = dollar_tag(rest) {
                            i += tag.len() + 2;
                            state = State::Dollar(tag.to_string());
                            continue;
                        }
                    }
                    _ => {}
                }
                i += len;
            }
            State::Quoted(q) => {
                if c == *q {
                    // A doubled quote ('') closes and reopens: same effect.
                    state = State::Normal;
                }
                i += len;
            }
            State::LineComment => {
                if c == '\n' {
                    state = State::Normal;
                }
                i += len;
            }
            State::BlockComment(depth) => {
                if rest.starts_with("/*") {
                    *depth += 1;
                    i += 2;
                } else if rest.starts_with("*/") {
                    *depth -= 1;
                    if *depth == 0 {
                        state = State::Normal;
                    }
                    i += 2;
                } else {
                    i += len;
                }
            }
            State::Dollar(tag) => {
                let close = format!("${tag}$");
                if rest.starts_with(&close) {
                    i += close.len();
                    state = State::Normal;
                } else {
                    i += len;
                }
            }
        }
    }
    out.unterminated = matches!(
        state,
        State::Quoted(_) | State::BlockComment(_) | State::Dollar(_)
    );
    out.ends_in_literal_or_comment = state != State::Normal;
    out
}

/// The tag of a dollar quote opening at the start of `rest` (`$$` → `""`,
/// `$fn$` → `"fn"`); `None` for a placeholder such as `$1`.
fn dollar_tag(rest: &str) -> Option<&str> {
    let body = rest.strip_prefix('$')?;
    let end = body.find('$')?;
    let tag = &body[..end];
    let valid = tag
        .chars()
        .next()
        .is_none_or(|c| c.is_alphabetic() || c == '_')
        && tag.chars().all(|c| c.is_alphanumeric() || c == '_');
    valid.then_some(tag)
}

/// The text holds at least one complete statement and ends with `;` (outside
/// quotes and comments; a trailing `-- comment` is allowed).
pub fn is_complete(text: &str) -> bool {
    let s = scan(text);
    !s.unterminated && s.ends_with_semicolon
}

/// The text is only whitespace and comments (and not inside a block
/// comment), so there is nothing to run.
pub fn is_blank(text: &str) -> bool {
    let s = scan(text);
    !s.unterminated && !s.has_tokens
}

/// The end of the text is outside quotes and comments (where a keyword or
/// a name could be typed).
pub fn ends_in_code(text: &str) -> bool {
    !scan(text).ends_in_literal_or_comment
}

/// The byte offset where every statement ending at or before `offset` ends
/// (just past its `;`), if any statement does.
pub fn statements_end_before(text: &str, offset: usize) -> Option<usize> {
    scan(text)
        .statement_ends
        .into_iter()
        .take_while(|&end| end <= offset)
        .last()
}

/// The byte offset of a 1-based line and column (columns count characters),
/// if the text has that line. A column past the end of the line gives the
/// end of the line.
pub fn byte_offset(text: &str, location: Location) -> Option<usize> {
    let mut line_start = 0;
    for _ in 1..location.line.max(1) {
        line_start += text[line_start..].find('\n')? + 1;
    }
    let line = &text[line_start..];
    let line_len = line.find('\n').unwrap_or(line.len());
    let column = location.column.saturating_sub(1) as usize;
    let within = line[..line_len]
        .char_indices()
        .nth(column)
        .map_or(line_len, |(i, _)| i);
    Some(line_start + within)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_when_the_last_token_is_a_semicolon() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1;  "));
        assert!(is_complete("SELECT 1;\n"));
        assert!(is_complete("SELECT 1; -- done"));
        assert!(is_complete("SELECT 1; /* done */"));
        assert!(is_complete("SELECT\n  1\n;"));
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT 1; SELECT 2"));
        assert!(!is_complete(""));
    }

    #[test]
    fn semicolons_inside_quotes_and_comments_do_not_end_a_statement() {
        assert!(!is_complete("SELECT ';"));
        assert!(!is_complete("SELECT ';'"));
        assert!(is_complete("SELECT ';';"));
        assert!(is_complete("SELECT 'it''s;';"));
        assert!(!is_complete("SELECT \"a;"));
        assert!(!is_complete("SELECT `a;"));
        assert!(!is_complete("SELECT 1 -- ;"));
        assert!(!is_complete("SELECT 1 /* ; */"));
        assert!(!is_complete("SELECT 1 /* /* */ ; */"));
        assert!(is_complete("SELECT 1 /* /* */ */;"));
        assert!(!is_complete("SELECT $$ ; $$"));
        assert!(is_complete("SELECT $$ ; $$;"));
        assert!(!is_complete("SELECT $fn$ ; $$ ; $fn$"));
        assert!(is_complete("SELECT $fn$ ; $$ ; $fn$;"));
    }

    #[test]
    fn placeholders_are_not_dollar_quotes() {
        assert!(is_complete("SELECT $1;"));
        assert_eq!(dollar_tag("$1$"), None);
        assert_eq!(dollar_tag("$$"), Some(""));
        assert_eq!(dollar_tag("$a_1$"), Some("a_1"));
    }

    #[test]
    fn blank_text_is_only_whitespace_and_comments() {
        assert!(is_blank(""));
        assert!(is_blank("  \n "));
        assert!(is_blank("-- a comment"));
        assert!(is_blank("/* a */ -- b\n"));
        assert!(!is_blank("/* open"));
        assert!(!is_blank(";"));
        assert!(!is_blank("SELECT"));
    }

    #[test]
    fn code_ends_outside_quotes_and_comments() {
        assert!(ends_in_code("SELECT a"));
        assert!(ends_in_code("SELECT 'a' "));
        assert!(!ends_in_code("SELECT 'a"));
        assert!(!ends_in_code("SELECT 1 -- a"));
        assert!(ends_in_code("SELECT 1 -- a\n"));
        assert!(!ends_in_code("SELECT /* a"));
    }

    #[test]
    fn statement_ends_before_an_offset() {
        let text = "SELECT 1; SELECT 2;\nSELEC 3;";
        assert_eq!(scan(text).statement_ends, vec![9, 19, 28]);
        assert_eq!(statements_end_before(text, 21), Some(19));
        assert_eq!(statements_end_before(text, 9), Some(9));
        assert_eq!(statements_end_before(text, 3), None);
    }

    #[test]
    fn byte_offsets_of_lines_and_columns() {
        let text = "SELECT 1;\nSELECT é, x\nFROM t";
        assert_eq!(byte_offset(text, Location { line: 1, column: 1 }), Some(0));
        assert_eq!(byte_offset(text, Location { line: 2, column: 8 }), Some(17));
        // 'é' is two bytes: column 11 ('x') is at byte 10 + 11.
        assert_eq!(
            byte_offset(
                text,
                Location {
                    line: 2,
                    column: 11
                }
            ),
            Some(21)
        );
        assert_eq!(&text[21..22], "x");
        assert_eq!(
            byte_offset(
                text,
                Location {
                    line: 2,
                    column: 99
                }
            ),
            Some(22)
        );
        assert_eq!(byte_offset(text, Location { line: 3, column: 6 }), Some(28));
        assert_eq!(byte_offset(text, Location { line: 4, column: 1 }), None);
    }
}

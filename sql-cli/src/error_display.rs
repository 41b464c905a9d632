//! Rendering of engine errors for people: what went wrong, where, and how to
//! fix it.
//!
//! ```text
//! Error: planning error: table 'fligths' not found
//!   --> line 1, column 15
//!  1 | SELECT * FROM fligths
//!    |               ^
//! hint: did you mean 'flights'?
//! ```
//!
//! The engine's `Display` puts the location in words on the first line; the
//! shell instead shows the SQL line itself with a caret under the column, as
//! rustc does, so the rendering is built here from the error's fields. The
//! location is relative to the text given to `Session::parse`, which is why
//! the caller passes that text in; for a file the arrow names it
//! (`--> examples/x.sql:3:15`).

use std::fmt::Write as _;
use std::path::PathBuf;

use tributary_engine::{Error, Location};

/// Where a piece of SQL text came from: decides how a location is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A `-c` argument.
    Command,
    /// A `-f` or `-i` file.
    File(PathBuf),
    /// A statement typed in the REPL.
    Repl,
    /// SQL piped into the shell's standard input.
    Stdin,
}

/// The full, multi-line rendering of `error`, ending with a newline.
/// `source` is the text the error's location refers to, if any.
pub fn render(error: &Error, source: Option<&str>, origin: &Origin) -> String {
    let mut out = format!("Error: {}: {}\n", error.kind, error.message);
    if let Some(location) = error.location {
        out.push_str(&render_location(location, source, origin));
    }
    if let Some(hint) = &error.hint {
        let _ = writeln!(out, "hint: {hint}");
    }
    out
}

/// A one-line error that has no SQL behind it (a file that cannot be read,
/// stdout closed, ...), ending with a newline.
pub fn render_plain(message: impl std::fmt::Display) -> String {
    format!("Error: {message}\n")
}

/// The `-->` line and, when the line exists in `source`, the SQL line with a
/// caret under the column.
fn render_location(location: Location, source: Option<&str>, origin: &Origin) -> String {
    let line_text = source.and_then(|s| nth_line(s, location.line));
    let number = location.line.to_string();
    let gutter = " ".repeat(number.len());
    let mut out = String::new();
    let place = match origin {
        Origin::File(path) => format!("{}:{}:{}", path.display(), location.line, location.column),
        Origin::Command | Origin::Repl | Origin::Stdin => {
            format!("line {}, column {}", location.line, location.column)
        }
    };
    let _ = writeln!(out, "{gutter} --> {place}");
    if let Some(text) = line_text {
        let _ = writeln!(out, " {number} | {text}");
        let _ = writeln!(out, " {gutter} | {}^", caret_padding(text, location.column));
    }
    out
}

/// Line `n` (1-based) of `source`, without its line ending.
fn nth_line(source: &str, n: u64) -> Option<&str> {
    let index = usize::try_from(n.checked_sub(1)?).ok()?;
    source
        .split('\n')
        .nth(index)
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
}

/// Blanks that put a caret under `column` (1-based, in characters) of
/// `line`; tabs stay tabs so the caret lines up whatever the tab width. A
/// column past the end of the line (an error at the end of the input) puts
/// the caret just after the line.
fn caret_padding(line: &str, column: u64) -> String {
    let before = usize::try_from(column.saturating_sub(1)).unwrap_or(usize::MAX);
    line.chars()
        .take(before)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_engine::ErrorKind;

    fn error(location: Option<(u64, u64)>, hint: Option<&str>) -> Error {
        let mut e = Error::new(ErrorKind::Plan, "table 'fligths' not found");
        e.location = location.map(|(line, column)| Location { line, column });
        e.hint = hint.map(str::to_string);
        e
    }

    #[test]
    fn renders_the_line_a_caret_and_the_hint() {
        let e = error(Some((1, 15)), Some("did you mean 'flights'?"));
        let text = render(&e, Some("SELECT * FROM fligths"), &Origin::Command);
        assert_eq!(
            text,
            "Error: planning error: table 'fligths' not found\n\
             \x20 --> line 1, column 15\n\
             \x201 | SELECT * FROM fligths\n\
             \x20  |               ^\n\
             hint: did you mean 'flights'?\n"
        );
    }

    #[test]
    fn names_the_file_and_picks_the_right_line() {
        let e = error(Some((12, 3)), None);
        let source = format!("{}x\tyz\r\n", "\n".repeat(11));
        let text = render(&e, Some(&source), &Origin::File("examples/x.sql".into()));
        assert_eq!(
            text,
            "Error: planning error: table 'fligths' not found\n\
             \x20  --> examples/x.sql:12:3\n\
             \x2012 | x\tyz\n\
             \x20   |  \t^\n"
        );
    }

    #[test]
    fn without_a_location_only_the_message() {
        let e = error(None, Some("h"));
        assert_eq!(
            render(&e, Some("SELECT 1"), &Origin::Repl),
            "Error: planning error: table 'fligths' not found\nhint: h\n"
        );
    }

    #[test]
    fn a_location_outside_the_text_shows_no_snippet() {
        let e = error(Some((3, 1)), None);
        let text = render(&e, Some("SELECT 1"), &Origin::Stdin);
        assert!(text.ends_with("  --> line 3, column 1\n"), "{text}");
        assert!(!text.contains('|'));
    }

    #[test]
    fn a_column_past_the_end_points_just_after_the_line() {
        let e = error(Some((1, 20)), None);
        let text = render(&e, Some("SELECT"), &Origin::Command);
        assert!(text.ends_with(" 1 | SELECT\n   |       ^\n"), "{text}");
    }
}

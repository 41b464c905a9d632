//! Tributary's error type: what went wrong, where, and how to fix it.

use std::fmt;

use datafusion::error::DataFusionError;

use tributary_connectors::ConnectorError;

/// A position in the SQL text given to `Session::sql`: 1-based line and
/// column (columns count characters, as sqlparser does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The kind of an [`Error`], for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The SQL text does not parse.
    Syntax,
    /// The statement parses but cannot be planned (unknown table or column,
    /// type mismatch, unsupported construct).
    Plan,
    /// A configuration key or value (`SET`) is not valid.
    Config,
    /// A connector rejected its options, or failed to read or write data.
    Connector,
    /// The query failed while running.
    Execution,
    /// The construct is valid SQL but Tributary does not support it (yet).
    NotSupported,
    /// The query was cancelled.
    Cancelled,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Syntax => "syntax error",
            ErrorKind::Plan => "planning error",
            ErrorKind::Config => "configuration error",
            ErrorKind::Connector => "connector error",
            ErrorKind::Execution => "execution error",
            ErrorKind::NotSupported => "not supported",
            ErrorKind::Cancelled => "cancelled",
        })
    }
}

/// An error from Tributary: a kind, a message, where in the SQL text it
/// happened (when known) and a hint on how to fix it (when there is one).
///
/// `Display` gives `"<kind>: <message>"` and, on a second line, `"hint: ..."`.
/// The shell adds the SQL line with a caret under [`Error::location`].
#[derive(Debug, Clone)]
pub struct Error {
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// What went wrong.
    pub message: String,
    /// Where in the SQL text, if known.
    pub location: Option<Location>,
    /// How to fix it, if Tributary can tell.
    pub hint: Option<String>,
}

/// Tributary's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            location: None,
            hint: None,
        }
    }

    /// A planning error.
    pub fn plan(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Plan, message)
    }

    /// A syntax error.
    pub fn syntax(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Syntax, message)
    }

    /// A configuration error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// A not-supported error.
    pub fn not_supported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotSupported, message)
    }

    /// Sets the location (keeps an existing one).
    pub fn at(mut self, location: Option<Location>) -> Self {
        if self.location.is_none() {
            self.location = location;
        }
        self
    }

    /// Sets the hint (keeps an existing one).
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        if self.hint.is_none() {
            self.hint = Some(hint.into());
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if let Some(loc) = self.location {
            write!(f, " (at line {}, column {})", loc.line, loc.column)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<sqlparser::parser::ParserError> for Error {
    fn from(e: sqlparser::parser::ParserError) -> Self {
        // sqlparser writes "sql parser error: <msg> at Line: L, Column: C".
        let text = e.to_string();
        let text = text
            .strip_prefix("sql parser error: ")
            .unwrap_or(&text)
            .to_string();
        let (message, location) = split_sqlparser_location(&text);
        Error::syntax(message).at(location)
    }
}

impl From<sqlparser::tokenizer::TokenizerError> for Error {
    fn from(e: sqlparser::tokenizer::TokenizerError) -> Self {
        Error::syntax(e.message.clone()).at(Some(Location {
            line: e.location.line,
            column: e.location.column,
        }))
    }
}

/// Splits "msg at Line: 3, Column: 7" into the message and the location.
fn split_sqlparser_location(text: &str) -> (String, Option<Location>) {
    if let Some(idx) = text.rfind(" at Line: ") {
        let tail = &text[idx + " at Line: ".len()..];
        let mut parts = tail.split(", Column: ");
        let line = parts.next().and_then(|s| s.trim().parse().ok());
        let column = parts.next().and_then(|s| s.trim().parse().ok());
        if let (Some(line), Some(column)) = (line, column) {
            return (text[..idx].to_string(), Some(Location { line, column }));
        }
    }
    (text.to_string(), None)
}

impl From<ConnectorError> for Error {
    fn from(e: ConnectorError) -> Self {
        match e {
            ConnectorError::DataFusion(e) => e.into(),
            other => Error::new(ErrorKind::Connector, other.to_string()),
        }
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        let location = e.diagnostic().and_then(|d| d.span).map(|s| Location {
            line: s.start.line,
            column: s.start.column,
        });
        let help = e
            .diagnostic()
            .and_then(|d| d.helps.first().map(|h| h.message.clone()));
        let root = e.find_root();
        let kind = match root {
            DataFusionError::SQL(..) => ErrorKind::Syntax,
            DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => ErrorKind::Plan,
            DataFusionError::NotImplemented(_) => ErrorKind::NotSupported,
            DataFusionError::Configuration(_) => ErrorKind::Config,
            DataFusionError::External(inner)
                if inner.downcast_ref::<ConnectorError>().is_some() =>
            {
                ErrorKind::Connector
            }
            _ => ErrorKind::Execution,
        };
        let message = match root {
            DataFusionError::External(inner) => match inner.downcast_ref::<ConnectorError>() {
                Some(c) => c.to_string(),
                None => inner.to_string(),
            },
            DataFusionError::SQL(e, _) => {
                let (m, loc) = split_sqlparser_location(&e.to_string());
                let mut err = Error::new(
                    ErrorKind::Syntax,
                    m.trim_start_matches("sql parser error: ").to_string(),
                );
                err.location = loc.or(location);
                return err;
            }
            DataFusionError::Context(..) => root.to_string(),
            other => strip_datafusion_prefix(&other.to_string()),
        };
        // Our own errors (a connector's malformed row) carry their hint in the message.
        let mut err = Error::new(kind, message).at(location);
        if let Some(h) = help {
            err = err.with_hint(h);
        }
        err
    }
}

/// DataFusion prefixes its messages with the error variant ("Error during
/// planning: ", "Schema error: ", ...); the kind already says that.
fn strip_datafusion_prefix(s: &str) -> String {
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "This feature is not implemented: ",
        "Execution error: ",
        "Arrow error: ",
        "Invalid or Unsupported Configuration: ",
        "Optimizer rule ",
    ] {
        if let Some(rest) = s.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_error_location_is_extracted() {
        let e = Error::from(sqlparser::parser::ParserError::ParserError(
            "Expected: an expression, found: FROM at Line: 2, Column: 8".into(),
        ));
        assert_eq!(e.kind, ErrorKind::Syntax);
        assert_eq!(e.location, Some(Location { line: 2, column: 8 }));
        assert_eq!(e.message, "Expected: an expression, found: FROM");
    }

    #[test]
    fn display_has_kind_location_and_hint() {
        let e = Error::plan("table 'x' not found")
            .at(Some(Location {
                line: 1,
                column: 15,
            }))
            .with_hint("did you mean 'y'?");
        assert_eq!(
            e.to_string(),
            "planning error: table 'x' not found (at line 1, column 15)\nhint: did you mean 'y'?"
        );
    }
}

//! Errors of connector creation and of reading and writing data.

use thiserror::Error;

/// What went wrong in a connector, with enough context to fix it: the table,
/// the option key, the file and line.
#[derive(Debug, Error)]
pub enum ConnectorError {
    /// `'connector' = 'x'` names no connector Tributary has.
    #[error("table '{table}': unknown connector '{connector}'; valid connectors are: {}", valid.join(", "))]
    UnknownConnector {
        table: String,
        connector: String,
        valid: Vec<String>,
    },

    /// A required `WITH` option is missing.
    #[error("table '{table}': missing option '{key}'; {hint}")]
    MissingOption {
        table: String,
        key: String,
        hint: String,
    },

    /// A `WITH` option the connector does not know.
    #[error("table '{table}': unsupported option '{key}' for connector '{connector}'{}; valid options are: {}",
        suggestion.as_ref().map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default(), valid.join(", "))]
    UnknownOption {
        table: String,
        connector: String,
        key: String,
        suggestion: Option<String>,
        valid: Vec<String>,
    },

    /// A `WITH` option with a value the connector cannot use.
    #[error("table '{table}': invalid value '{value}' for option '{key}': expected {expected}")]
    InvalidOption {
        table: String,
        key: String,
        value: String,
        expected: String,
    },

    /// The table's `path` does not exist.
    #[error(
        "table '{table}': path '{path}' does not exist; create it or fix the table's 'path' option"
    )]
    PathNotFound { table: String, path: String },

    /// The data cannot be decoded: a malformed row, with file and line.
    #[error("{file}:{line}: {message}{}", hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    Malformed {
        file: String,
        line: u64,
        message: String,
        hint: Option<String>,
    },

    /// The schema could not be inferred from the data.
    #[error("table '{table}': cannot infer the columns: {message}; declare them in CREATE TABLE")]
    Inference { table: String, message: String },

    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },

    /// An error from DataFusion or Arrow.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

impl From<arrow::error::ArrowError> for ConnectorError {
    fn from(e: arrow::error::ArrowError) -> Self {
        ConnectorError::DataFusion(e.into())
    }
}

impl From<ConnectorError> for datafusion::error::DataFusionError {
    fn from(e: ConnectorError) -> Self {
        match e {
            ConnectorError::DataFusion(e) => e,
            other => datafusion::error::DataFusionError::External(Box::new(other)),
        }
    }
}

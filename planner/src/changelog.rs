//! The changelog vocabulary: row kinds and changelog modes (Flink's `RowKind`
//! and `ChangelogMode`).
//!
//! In STREAMING every result batch has a leading column [`OP_COLUMN`]
//! (`+I`, `-U`, `+U`, `-D`); folding the changelog into a table gives the
//! result BATCH computes over the same input.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// The name of the changelog's leading column.
pub const OP_COLUMN: &str = "op";

/// What a changelog row does (Flink's `RowKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum RowKind {
    /// `+I`: a new row.
    Insert = 0,
    /// `-U`: the old value of an updated row, retracted.
    UpdateBefore = 1,
    /// `+U`: the new value of an updated row.
    UpdateAfter = 2,
    /// `-D`: a deleted row, retracted.
    Delete = 3,
}

impl RowKind {
    /// All kinds, by code.
    pub const ALL: [RowKind; 4] = [
        RowKind::Insert,
        RowKind::UpdateBefore,
        RowKind::UpdateAfter,
        RowKind::Delete,
    ];

    /// The kind's code in the runtime's `Int8` op arrays.
    pub fn code(self) -> i8 {
        self as i8
    }

    /// The kind of a code.
    pub fn from_code(code: i8) -> Option<RowKind> {
        RowKind::ALL.get(usize::try_from(code).ok()?).copied()
    }

    /// Flink's short string: `+I`, `-U`, `+U`, `-D`.
    pub fn short_string(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    /// Parses a short string.
    pub fn from_short_string(s: &str) -> Option<RowKind> {
        RowKind::ALL.into_iter().find(|k| k.short_string() == s)
    }

    /// Whether the row is removed from the result (`-U`, `-D`).
    pub fn is_retraction(self) -> bool {
        matches!(self, RowKind::UpdateBefore | RowKind::Delete)
    }
}

impl fmt::Display for RowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_string())
    }
}

/// Which row kinds a stream may carry (Flink's `ChangelogMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangelogMode {
    /// Only `+I`: rows are never changed once emitted.
    AppendOnly,
    /// `+I`, `-U`, `+U`, `-D`: earlier rows may be retracted.
    Updating,
}

impl fmt::Display for ChangelogMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangelogMode::AppendOnly => "[I]",
            ChangelogMode::Updating => "[I,UB,UA,D]",
        })
    }
}

/// `schema` with the changelog's leading `op` column (Utf8, not null).
pub fn changelog_schema(schema: &Schema) -> SchemaRef {
    let mut fields = vec![Arc::new(Field::new(OP_COLUMN, DataType::Utf8, false))];
    fields.extend(schema.fields().iter().cloned());
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_kinds_round_trip() {
        for k in RowKind::ALL {
            assert_eq!(RowKind::from_code(k.code()), Some(k));
            assert_eq!(RowKind::from_short_string(k.short_string()), Some(k));
        }
        assert!(RowKind::Delete.is_retraction() && !RowKind::UpdateAfter.is_retraction());
        assert_eq!(ChangelogMode::Updating.to_string(), "[I,UB,UA,D]");
    }
}

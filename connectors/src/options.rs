//! The `WITH (...)` options of a connector table.

use std::collections::BTreeMap;

use crate::ConnectorError;

/// The `WITH ('key' = 'value', ...)` options of a table, keys as written
/// (Flink's keys are case-sensitive and lower-case). Kept in key order so
/// `SHOW CREATE TABLE`-style output and error messages are stable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableOptions {
    entries: BTreeMap<String, String>,
}

impl TableOptions {
    /// Options from `(key, value)` pairs; a later duplicate key wins.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            entries: pairs.into_iter().collect(),
        }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// Every `(key, value)` in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Checks that every key is one of `valid` (exact keys) or starts with one
    /// of `valid_prefixes`.
    ///
    /// # Errors
    /// [`ConnectorError::UnknownOption`] for the first unknown key, with the
    /// nearest valid key as a suggestion and the full list of valid keys.
    pub fn check_keys(
        &self,
        table: &str,
        connector: &str,
        valid: &[&str],
    ) -> Result<(), ConnectorError> {
        for key in self.entries.keys() {
            if !valid.contains(&key.as_str()) {
                return Err(ConnectorError::UnknownOption {
                    table: table.into(),
                    connector: connector.into(),
                    key: key.clone(),
                    suggestion: nearest(key, valid.iter().copied()),
                    valid: valid.iter().map(|s| s.to_string()).collect(),
                });
            }
        }
        Ok(())
    }

    /// A boolean option (`'true'` / `'false'`, any case), or `default`.
    ///
    /// # Errors
    /// [`ConnectorError::InvalidOption`] for any other value.
    pub fn bool(&self, table: &str, key: &str, default: bool) -> Result<bool, ConnectorError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(invalid(table, key, v, "'true' or 'false'")),
        }
    }

    /// A single-byte character option (a delimiter or quote), or `default`.
    /// Accepts `'\t'` for a tab, as Flink does.
    ///
    /// # Errors
    /// [`ConnectorError::InvalidOption`] unless the value is one ASCII character.
    pub fn byte(&self, table: &str, key: &str, default: u8) -> Result<u8, ConnectorError> {
        match self.get(key) {
            None => Ok(default),
            Some("\\t") => Ok(b'\t'),
            Some(v) if v.len() == 1 && v.is_ascii() => Ok(v.as_bytes()[0]),
            Some(v) => Err(invalid(
                table,
                key,
                v,
                "a single ASCII character, such as ',' or '\\t'",
            )),
        }
    }
}

/// An invalid-option error.
pub fn invalid(table: &str, key: &str, value: &str, expected: &str) -> ConnectorError {
    ConnectorError::InvalidOption {
        table: table.into(),
        key: key.into(),
        value: value.into(),
        expected: expected.into(),
    }
}

/// The candidate closest to `name` by edit distance, if any is close enough
/// to be a plausible typo (distance at most a third of the name, at least 2).
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let name_lower = name.to_lowercase();
    let limit = (name.len() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(&name_lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> TableOptions {
        TableOptions::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn unknown_key_names_the_nearest_and_all_valid_keys() {
        let err = opts(&[("connector", "filesystem"), ("formt", "csv")])
            .check_keys("t", "filesystem", &["connector", "format", "path"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported option 'formt'"), "{err}");
        assert!(err.contains("did you mean 'format'"), "{err}");
        assert!(err.contains("connector, format, path"), "{err}");
    }

    #[test]
    fn bool_and_byte_options() {
        let o = opts(&[("a", "TRUE"), ("b", "maybe"), ("d", "\\t"), ("e", ";;")]);
        assert!(o.bool("t", "a", false).unwrap());
        assert!(!o.bool("t", "missing", false).unwrap());
        assert!(
            o.bool("t", "b", false)
                .unwrap_err()
                .to_string()
                .contains("'true' or 'false'")
        );
        assert_eq!(o.byte("t", "d", b',').unwrap(), b'\t');
        assert_eq!(o.byte("t", "missing", b',').unwrap(), b',');
        assert!(o.byte("t", "e", b',').is_err());
    }

    #[test]
    fn nearest_ignores_far_names() {
        assert_eq!(
            nearest("flihgts", ["flights", "weather"]),
            Some("flights".into())
        );
        assert_eq!(nearest("zzz", ["flights", "weather"]), None);
    }
}

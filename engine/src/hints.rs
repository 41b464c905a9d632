//! Hints for planning errors: the nearest table or column name.

use tributary_planner::Error;

use crate::Session;

/// The candidate nearest to `name` by edit distance, if close enough to be a
/// plausible typo.
pub(crate) fn nearest(name: &str, candidates: &[String]) -> Option<String> {
    tributary_connectors::options::nearest(name, candidates.iter().map(String::as_str))
}

/// Reworks DataFusion's messages into message + hint and adds the nearest
/// table name to "table not found".
pub(crate) fn add_hints(mut e: Error, session: &Session) -> Error {
    // DataFusion puts extra sentences after the first line or after ". ";
    // keep the first sentence as the message, the rest as the hint.
    if let Some((first, rest)) = e.message.split_once('\n') {
        let rest = rest.trim().to_string();
        e.message = first.trim_end_matches('.').to_string();
        if !rest.is_empty() && e.hint.is_none() {
            e.hint = Some(rest);
        }
    }
    if let Some((first, rest)) = e.message.split_once(". Did you mean ") {
        let rest = format!("did you mean {}", rest);
        e.message = first.to_string();
        e.hint = Some(match e.hint.take() {
            Some(h) => format!("{rest} {h}"),
            None => rest,
        });
    }
    if e.message.starts_with("No field named ") {
        let name = e
            .message
            .trim_start_matches("No field named ")
            .trim_end_matches('.')
            .to_string();
        let name = if name.starts_with('"') || name.starts_with('\'') {
            name
        } else {
            format!("'{name}'")
        };
        e.message = format!("column {name} not found");
    }
    if let Some(name) = e
        .message
        .strip_prefix("table '")
        .and_then(|s| s.strip_suffix("' not found"))
    {
        let table = name.rsplit('.').next().unwrap_or(name).to_string();
        let names = session.table_names(false).unwrap_or_default();
        let hint = match nearest(&table, &names) {
            Some(n) => format!("did you mean '{n}'?"),
            None if names.is_empty() => "no tables exist yet; create one with CREATE TABLE".into(),
            None => format!("SHOW TABLES lists the tables: {}", names.join(", ")),
        };
        e.message = format!("table '{table}' not found");
        e = e.with_hint(hint);
    }
    e
}

//! Runtime modes and their resolution from source boundedness
//! (Flink's `execution.runtime-mode`, FLIP-134).

use std::fmt;
use std::str::FromStr;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::LogicalPlan;

use tributary_connectors::{Boundedness, boundedness_of};

use crate::error::{Error, Result};

/// The mode a user asks for with `execution.runtime-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeMode {
    /// Run over complete, bounded input and emit final results only.
    Batch,
    /// Run incrementally and emit a changelog as input arrives.
    Streaming,
    /// BATCH when every source of the statement is bounded, else STREAMING.
    Automatic,
}

impl fmt::Display for RuntimeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuntimeMode::Batch => "batch",
            RuntimeMode::Streaming => "streaming",
            RuntimeMode::Automatic => "automatic",
        })
    }
}

impl FromStr for RuntimeMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "batch" => Ok(RuntimeMode::Batch),
            "streaming" => Ok(RuntimeMode::Streaming),
            "automatic" => Ok(RuntimeMode::Automatic),
            _ => Err(Error::config(format!(
                "invalid value '{s}' for 'execution.runtime-mode': expected 'batch', 'streaming' or 'automatic'"
            ))),
        }
    }
}

/// The mode a statement runs in, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedMode {
    /// BATCH or STREAMING (never AUTOMATIC).
    pub mode: RuntimeMode,
    /// Why this mode, in a sentence (shown by `EXPLAIN`).
    pub reason: String,
}

/// Resolves `requested` for `plan`: AUTOMATIC becomes BATCH when every table
/// the plan scans is bounded, else STREAMING.
///
/// # Errors
/// BATCH over an unbounded table (Flink: "Querying an unbounded table ... in
/// batch mode is not allowed").
pub fn resolve_mode(requested: RuntimeMode, plan: &LogicalPlan) -> Result<ResolvedMode> {
    let unbounded = unbounded_tables(plan);
    let resolved = match requested {
        RuntimeMode::Batch => {
            if let Some(t) = unbounded.first() {
                return Err(Error::plan(format!(
                    "Querying an unbounded table '{t}' in batch mode is not allowed"
                ))
                .with_hint(
                    "SET 'execution.runtime-mode' = 'streaming', or make the source bounded",
                ));
            }
            ResolvedMode {
                mode: RuntimeMode::Batch,
                reason: "execution.runtime-mode = batch".into(),
            }
        }
        RuntimeMode::Automatic if unbounded.is_empty() => ResolvedMode {
            mode: RuntimeMode::Batch,
            reason: "execution.runtime-mode = automatic and every source is bounded".into(),
        },
        RuntimeMode::Automatic => ResolvedMode {
            mode: RuntimeMode::Streaming,
            reason: format!(
                "execution.runtime-mode = automatic and table '{}' is unbounded",
                unbounded[0]
            ),
        },
        RuntimeMode::Streaming => ResolvedMode {
            mode: RuntimeMode::Streaming,
            reason: "execution.runtime-mode = streaming".into(),
        },
    };
    Ok(resolved)
}

/// The names of the unbounded tables `plan` scans, in plan order.
pub fn unbounded_tables(plan: &LogicalPlan) -> Vec<String> {
    let mut out = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
            && boundedness_of(provider.as_ref()) == Boundedness::Unbounded
        {
            out.push(scan.table_name.to_string());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::LogicalPlanBuilder;

    #[test]
    fn parses_modes() {
        assert_eq!("Batch".parse::<RuntimeMode>().unwrap(), RuntimeMode::Batch);
        assert!(
            "fast"
                .parse::<RuntimeMode>()
                .unwrap_err()
                .to_string()
                .contains("'batch', 'streaming' or 'automatic'")
        );
    }

    #[test]
    fn automatic_over_bounded_input_is_batch() {
        let plan = LogicalPlanBuilder::empty(true).build().unwrap();
        let r = resolve_mode(RuntimeMode::Automatic, &plan).unwrap();
        assert_eq!(r.mode, RuntimeMode::Batch);
        assert!(r.reason.contains("every source is bounded"));
    }

    #[test]
    fn streaming_is_streaming() {
        let plan = LogicalPlanBuilder::empty(true).build().unwrap();
        let r = resolve_mode(RuntimeMode::Streaming, &plan).unwrap();
        assert_eq!(r.mode, RuntimeMode::Streaming);
    }
}

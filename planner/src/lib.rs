//! Tributary's planner: the SQL dialect, runtime-mode resolution and the
//! mode-aware physical planner.
//!
//! ```text
//! SQL text ─ parser::parse_sql ─▶ Statement
//!   └─ DataFusion SqlToRel ─▶ LogicalPlan
//!        └─ physical::create_physical_plan(mode) ─▶ PhysicalQuery { mode, plan }
//!             ├─ BATCH: DataFusion's ExecutionPlan
//!             └─ STREAMING: streaming::StreamPlan (incremental operators)
//! ```
//!
//! The planner never runs anything: the engine (`tributary-engine`) owns the
//! session and execution.

pub mod changelog;
pub mod config;
pub mod decorrelated_aggregate_prefilter;
pub mod dialect;
pub mod error;
pub mod insert_types;
pub mod mode;
pub mod not_in;
pub mod over_window;
pub mod parser;
pub mod physical;
pub mod recoerce;
pub mod scalar_subquery_domain_join;
pub mod schema;
pub mod session_distinct;
pub mod streaming;
pub mod subquery_names;
pub mod temporal_join;
pub mod time_join;
pub mod watermark;
pub mod window_tvf;

pub use changelog::{ChangelogMode, OP_COLUMN, RowKind};
pub use config::TributaryConfig;
pub use error::{Error, ErrorKind, Location, Result};
pub use mode::{ResolvedMode, RuntimeMode, resolve_mode};
pub use parser::{ParsedStatement, Statement, parse_sql};
pub use physical::{PhysicalQuery, QueryPlan, create_physical_plan};
pub use streaming::StreamPlan;

/// The SQL name of an Arrow type (`BIGINT`, `STRING`, `TIMESTAMP(3)`, ...).
pub fn sql_type(t: &arrow::datatypes::DataType) -> String {
    tributary_connectors::sql_type_name(t)
}

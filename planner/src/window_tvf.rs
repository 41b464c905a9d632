//! Window table-valued functions in Flink's syntax:
//!
//! ```sql
//! SELECT window_start, window_end, auction, COUNT(*) FROM TABLE(
//!   TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND [, offset]))
//! GROUP BY window_start, window_end, auction;
//! -- HOP(TABLE t, DESCRIPTOR(ts), slide, size [, offset])
//! -- CUMULATE(TABLE t, DESCRIPTOR(ts), step, size [, offset])
//! -- SESSION(TABLE t [PARTITION BY k | (k1, k2)], DESCRIPTOR(ts), gap)
//! ```
//!
//! Semantics: Flink's "Windowing TVF" page
//! (<https://nightlies.apache.org/flink/flink-docs-stable/docs/dev/table/sql/queries/window-tvf/>).
//! Each row is returned once per window it falls in, with three columns
//! added: `window_start`, `window_end` (exclusive) and `window_time`
//! (`window_end` - 1 ms), all `TIMESTAMP(3)`.
//!
//! Planning: the parser drops the `TABLE` keyword before the table argument
//! (sqlparser cannot parse it as a function argument); the
//! [`WindowTvfPlanner`] (DataFusion's `RelationPlanner` hook) turns
//! `TABLE(TUMBLE(...))` into a [`WindowTvfNode`], a logical extension node.
//! BATCH runs it with the engine's window-assignment operator; STREAMING
//! lowers it to the same assignment and lets the windows' ends, carried as
//! field metadata, tell a following `GROUP BY` to close windows by watermark.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::common::{DFSchema, DFSchemaRef, TableReference};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::planner::{
    PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNodeCore};
use sqlparser::ast::{
    Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, TableFactor,
};

use crate::watermark::interval_to_ms;

/// Field metadata key on the columns a window TVF adds: `start`, `end` or `time`.
pub const WINDOW_COLUMN: &str = "tributary.window";

/// The window functions.
pub const WINDOW_TVFS: &[&str] = &["TUMBLE", "HOP", "CUMULATE", "SESSION"];

/// Which windows a row falls in. All lengths in milliseconds, all > 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `size`.
    Tumble { size: i64 },
    /// Windows of `size` starting every `slide`.
    Hop { slide: i64, size: i64 },
    /// Windows growing by `step` from each `size`-aligned start up to `size`.
    Cumulate { step: i64, size: i64 },
    /// Sessions: rows of a partition less than `gap` apart share a window,
    /// which starts at its first row and ends `gap` after its last.
    Session { gap: i64 },
}

impl fmt::Display for WindowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowKind::Tumble { size } => write!(f, "TUMBLE(size={size}ms)"),
            WindowKind::Hop { slide, size } => write!(f, "HOP(slide={slide}ms, size={size}ms)"),
            WindowKind::Cumulate { step, size } => {
                write!(f, "CUMULATE(step={step}ms, size={size}ms)")
            }
            WindowKind::Session { gap } => write!(f, "SESSION(gap={gap}ms)"),
        }
    }
}

/// A window TVF applied to its input.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WindowTvfNode {
    /// The table or query the windows are assigned over.
    pub input: LogicalPlan,
    /// The name of the time column (`DESCRIPTOR(col)`).
    pub time_column: String,
    /// The windows.
    pub kind: WindowKind,
    /// Where windows are aligned, ms from the epoch (Flink's `offset`).
    pub offset: i64,
    /// SESSION's `PARTITION BY` columns (sessions are per key).
    pub partition_by: Vec<String>,
    schema: DFSchemaRef,
}

impl PartialOrd for WindowTvfNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.input.partial_cmp(&other.input) {
            Some(Ordering::Equal) => match self.time_column.partial_cmp(&other.time_column) {
                Some(Ordering::Equal) => match self.kind.partial_cmp(&other.kind) {
                    Some(Ordering::Equal) => match self.offset.partial_cmp(&other.offset) {
                        Some(Ordering::Equal) => self.partition_by.partial_cmp(&other.partition_by),
                        o => o,
                    },
                    o => o,
                },
                o => o,
            },
            o => o,
        }
    }
}

impl WindowTvfNode {
    /// The node over `input`, windows on `time_column`.
    ///
    /// # Errors
    /// The time column is missing or not a TIMESTAMP.
    pub fn try_new(
        input: LogicalPlan,
        time_column: &str,
        kind: WindowKind,
        offset: i64,
        partition_by: Vec<String>,
    ) -> DFResult<Self> {
        let in_schema = input.schema();
        for key in &partition_by {
            if in_schema.index_of_column_by_name(None, key).is_none() {
                return Err(DataFusionError::Plan(format!(
                    "window TVF: PARTITION BY {key} names no column of its table; the columns are: {}",
                    in_schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let (_, field) = in_schema.qualified_field_with_unqualified_name(time_column).map_err(|_| {
            DataFusionError::Plan(format!(
                "window TVF: DESCRIPTOR({time_column}) names no column of its table; the columns are: {}",
                in_schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let tz = match field.data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            other => {
                return Err(DataFusionError::Plan(format!(
                    "window TVF: the time column '{time_column}' must be a TIMESTAMP, but it is {}",
                    crate::sql_type(other)
                )));
            }
        };
        let window_field = |name: &str, role: &str| {
            Arc::new(
                Field::new(
                    name,
                    DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
                    false,
                )
                .with_metadata(HashMap::from([(
                    WINDOW_COLUMN.to_string(),
                    role.to_string(),
                )])),
            )
        };
        let mut fields: Vec<(Option<TableReference>, Arc<Field>)> = in_schema
            .iter()
            .map(|(q, f)| (q.cloned(), f.clone()))
            .collect();
        for (name, role) in [
            ("window_start", "start"),
            ("window_end", "end"),
            ("window_time", "time"),
        ] {
            if fields.iter().any(|(_, f)| f.name() == name) {
                return Err(DataFusionError::Plan(format!(
                    "window TVF: its input already has a column '{name}'"
                )));
            }
            fields.push((None, window_field(name, role)));
        }
        let schema = Arc::new(DFSchema::new_with_metadata(
            fields,
            in_schema.metadata().clone(),
        )?);
        Ok(Self {
            input,
            time_column: time_column.to_string(),
            kind,
            offset,
            partition_by,
            schema,
        })
    }

    /// The indices of the `PARTITION BY` columns in the input's schema.
    pub fn partition_indices(&self) -> DFResult<Vec<usize>> {
        self.partition_by
            .iter()
            .map(|k| {
                self.input
                    .schema()
                    .index_of_column_by_name(None, k)
                    .ok_or_else(|| {
                        DataFusionError::Plan(format!(
                            "window TVF: PARTITION BY column '{k}' no longer in its input"
                        ))
                    })
            })
            .collect()
    }

    /// The index of the time column in the input's schema.
    pub fn time_index(&self) -> DFResult<usize> {
        self.input
            .schema()
            .index_of_column_by_name(None, &self.time_column)
            .ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "window TVF: time column '{}' no longer in its input",
                    self.time_column
                ))
            })
    }
}

impl UserDefinedLogicalNodeCore for WindowTvfNode {
    fn name(&self) -> &str {
        "WindowTVF"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "WindowTVF: {} on {}, offset={}ms",
            self.kind, self.time_column, self.offset
        )?;
        if !self.partition_by.is_empty() {
            write!(f, ", partition by [{}]", self.partition_by.join(", "))?;
        }
        Ok(())
    }

    /// Projection push-down through the TVF: of its input it needs the
    /// columns asked of its output, the time column and the `PARTITION BY`
    /// columns (the window columns it computes itself). Without this, every
    /// column of the table — wide strings included — flows through window
    /// assignment and the exchange in front of the window aggregate.
    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        let width = self.input.schema().fields().len();
        let mut needed: Vec<usize> = output_columns
            .iter()
            .copied()
            .filter(|i| *i < width)
            .collect();
        needed.push(self.time_index().ok()?);
        needed.extend(self.partition_indices().ok()?);
        needed.sort_unstable();
        needed.dedup();
        Some(vec![needed])
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> DFResult<Self> {
        let input = inputs
            .pop()
            .ok_or_else(|| DataFusionError::Internal("WindowTVF takes one input".into()))?;
        Self::try_new(
            input,
            &self.time_column,
            self.kind,
            self.offset,
            self.partition_by.clone(),
        )
    }
}

/// The `RelationPlanner` for `TABLE(TUMBLE|HOP|CUMULATE(...))`.
#[derive(Debug, Default)]
pub struct WindowTvfPlanner;

impl RelationPlanner for WindowTvfPlanner {
    fn plan_relation(
        &self,
        relation: TableFactor,
        context: &mut dyn RelationPlannerContext,
    ) -> DFResult<RelationPlanning> {
        let TableFactor::TableFunction {
            expr: SqlExpr::Function(function),
            alias,
        } = &relation
        else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let name = function.name.to_string().to_uppercase();
        if !WINDOW_TVFS.contains(&name.as_str()) {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        }
        let usage = match name.as_str() {
            "TUMBLE" => "TUMBLE(TABLE t, DESCRIPTOR(ts), size [, offset])",
            "HOP" => "HOP(TABLE t, DESCRIPTOR(ts), slide, size [, offset])",
            "SESSION" => "SESSION(TABLE t [PARTITION BY key], DESCRIPTOR(ts), gap)",
            _ => "CUMULATE(TABLE t, DESCRIPTOR(ts), step, size [, offset])",
        };
        let wrong =
            |what: String| DataFusionError::Plan(format!("{name}: {what}; expected {usage}"));
        let args: Vec<&SqlExpr> = match &function.args {
            FunctionArguments::List(list) => list
                .args
                .iter()
                .map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
                    other => Err(wrong(format!("unsupported argument '{other}'"))),
                })
                .collect::<DFResult<_>>()?,
            _ => return Err(wrong("missing arguments".into())),
        };
        // SESSION's PARTITION BY arrives as a PARTITION_BY(k, ...) argument.
        let mut args = args;
        let mut partition_by = Vec::new();
        if let Some(SqlExpr::Function(f)) = args.get(1)
            && f.name.to_string().eq_ignore_ascii_case("PARTITION_BY")
        {
            if name != "SESSION" {
                return Err(wrong("only SESSION takes PARTITION BY".into()));
            }
            if let FunctionArguments::List(list) = &f.args {
                for a in &list.args {
                    match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Identifier(id))) => {
                            partition_by.push(context.normalize_ident(id.clone()))
                        }
                        other => {
                            return Err(wrong(format!(
                                "PARTITION BY takes column names, not '{other}'"
                            )));
                        }
                    }
                }
            }
            args.remove(1);
        }
        let intervals = if name == "TUMBLE" || name == "SESSION" {
            1
        } else {
            2
        };
        let max_args = if name == "SESSION" { 3 } else { 3 + intervals };
        if args.len() < 2 + intervals || args.len() > max_args {
            return Err(wrong(format!("{} arguments given", args.len())));
        }
        // The table: the parser turned `TABLE t` into `(SELECT * FROM t)`.
        let input = match args[0] {
            SqlExpr::Subquery(query) => context.plan(TableFactor::Derived {
                lateral: false,
                subquery: query.clone(),
                alias: None,
                sample: None,
            })?,
            other => {
                return Err(wrong(format!(
                    "the first argument must be TABLE <name>, not '{other}'"
                )));
            }
        };
        // DESCRIPTOR(col)
        let time_column = match args[1] {
            SqlExpr::Function(f) if f.name.to_string().eq_ignore_ascii_case("DESCRIPTOR") => {
                match &f.args {
                    FunctionArguments::List(list) if list.args.len() == 1 => match &list.args[0] {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Identifier(id))) => {
                            context.normalize_ident(id.clone())
                        }
                        other => {
                            return Err(wrong(format!(
                                "DESCRIPTOR takes one column name, not '{other}'"
                            )));
                        }
                    },
                    _ => return Err(wrong("DESCRIPTOR takes one column name".into())),
                }
            }
            other => {
                return Err(wrong(format!(
                    "the second argument must be DESCRIPTOR(<time column>), not '{other}'"
                )));
            }
        };
        let empty = DFSchema::empty();
        let mut lengths = Vec::new();
        for (i, e) in args[2..].iter().enumerate() {
            let what = match (name.as_str(), i) {
                (_, n) if n == intervals => "offset",
                ("SESSION", _) => "gap",
                ("TUMBLE", _) => "size",
                ("HOP", 0) => "slide",
                ("CUMULATE", 0) => "step",
                _ => "size",
            };
            let value = match context.sql_to_expr((*e).clone(), &empty)? {
                Expr::Literal(v, _) => v,
                other => {
                    return Err(wrong(format!(
                        "the {what} must be a constant INTERVAL, not '{other}'"
                    )));
                }
            };
            let ms =
                interval_to_ms(&value).map_err(|e| wrong(format!("the {what}: {}", e.message)))?;
            if what != "offset" && ms <= 0 {
                return Err(wrong(format!(
                    "the {what} must be a positive interval, not {ms} ms"
                )));
            }
            lengths.push(ms);
        }
        let kind = match name.as_str() {
            "TUMBLE" => WindowKind::Tumble { size: lengths[0] },
            "SESSION" => WindowKind::Session { gap: lengths[0] },
            "HOP" => WindowKind::Hop {
                slide: lengths[0],
                size: lengths[1],
            },
            _ => {
                if lengths[1] % lengths[0] != 0 {
                    return Err(wrong(format!(
                        "the size ({} ms) must be a multiple of the step ({} ms)",
                        lengths[1], lengths[0]
                    )));
                }
                WindowKind::Cumulate {
                    step: lengths[0],
                    size: lengths[1],
                }
            }
        };
        let offset = lengths.get(intervals).copied().unwrap_or(0);
        let node = WindowTvfNode::try_new(input, &time_column, kind, offset, partition_by)
            .map_err(|e| match e {
                DataFusionError::Plan(m) => {
                    DataFusionError::Plan(m.replacen("window TVF", &name, 1))
                }
                other => other,
            })?;
        let plan = LogicalPlan::Extension(Extension {
            node: Arc::new(node),
        });
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
            plan,
            alias.clone(),
        ))))
    }
}

//! Turns the column list of a `CREATE TABLE` into the table's schema: the
//! physical columns the connector reads and writes, the computed columns
//! (`c AS expr`) with the types their expressions give, the event-time
//! column's watermark, and the `PRIMARY KEY (...) NOT ENFORCED`.
//!
//! Semantics follow Flink's `CREATE TABLE`: a primary key must be declared
//! `NOT ENFORCED` (the engine does not own the data, so it cannot check it)
//! and its columns become `NOT NULL`; a computed column may be the
//! event-time column of a watermark.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::{Constraint, Constraints, DFSchema};
use datafusion::execution::SessionState;
use datafusion::logical_expr::ExprSchemable;
use sqlparser::ast::{ColumnOption, Expr as SqlExpr, TableConstraint};

use tributary_connectors::ColumnSource;
use tributary_planner::parser::CreateConnectorTable;
use tributary_planner::schema::{column_list, columns_to_schema, constant};
use tributary_planner::watermark::{apply_watermark, interval_to_ms};
use tributary_planner::{Error, Result};

/// A `CREATE TABLE`'s columns, resolved.
#[derive(Debug)]
pub(crate) struct TableDeclaration {
    /// Every declared column in order (watermark metadata included).
    pub schema: SchemaRef,
    /// The physical columns only: what the connector sees.
    pub physical: SchemaRef,
    /// Where each column of `schema` comes from.
    pub columns: Vec<ColumnSource>,
    /// The primary key, as indices into `schema`.
    pub primary_key: Option<Vec<usize>>,
}

impl TableDeclaration {
    /// Whether the connector's table must be wrapped in a `CatalogTable`.
    pub fn needs_catalog_table(&self) -> bool {
        self.primary_key.is_some()
            || self
                .columns
                .iter()
                .any(|c| matches!(c, ColumnSource::Computed { .. }))
    }

    /// The constraints to give DataFusion.
    pub fn constraints(&self) -> Constraints {
        Constraints::new_unverified(
            self.primary_key
                .iter()
                .map(|k| Constraint::PrimaryKey(k.clone()))
                .collect(),
        )
    }
}

/// Resolves the declared columns of `create`; `None` when it declares none
/// (the connector infers them).
///
/// # Errors
/// A computed column whose expression does not plan (unknown column or
/// function), a computed column without physical columns, a primary key
/// that is not `NOT ENFORCED` or names an unknown column, other table
/// constraints (`UNIQUE`, `CHECK`, `FOREIGN KEY`), and watermark errors —
/// each pointing at the declaration.
pub(crate) fn resolve(
    state: &SessionState,
    create: &CreateConnectorTable,
) -> Result<Option<TableDeclaration>> {
    let options = state.config().options();
    if create.columns.is_empty() {
        if let Some(c) = create.computed.first() {
            return Err(Error::plan(format!(
                "computed column '{}' needs the physical columns declared",
                c.name.value
            ))
            .at(Some(c.location))
            .with_hint("list the table's physical columns with their types"));
        }
        if let Some(def) = &create.watermark {
            return Err(Error::plan("WATERMARK needs the columns declared")
                .at(Some(def.location))
                .with_hint("list the table's columns before the WATERMARK clause"));
        }
        return Ok(None);
    }
    let physical = columns_to_schema(&create.columns, options)?;
    let physical_df = DFSchema::try_from(physical.as_ref().clone())?;

    // Physical and computed columns in declared order.
    let total = create.columns.len() + create.computed.len();
    let mut computed = create.computed.iter().peekable();
    let mut next_physical = 0;
    let mut fields: Vec<Arc<Field>> = Vec::with_capacity(total);
    let mut columns = Vec::with_capacity(total);
    for position in 0..total {
        if let Some(c) = computed.next_if(|c| c.position == position) {
            let at = Some(c.location);
            // Errors point at the column's declaration, not into the
            // expression's own text.
            let in_column = |e: datafusion::error::DataFusionError| {
                let mut err = Error::from(e);
                err.message = format!("computed column '{}': {}", c.name.value, err.message);
                err.location = at;
                err.with_hint(
                    "a computed column's expression may use the table's physical columns and any function",
                )
            };
            let expr = state
                .create_logical_expr(&c.expr.to_string(), &physical_df)
                .map_err(in_column)?;
            let (_, field) = expr.to_field(&physical_df).map_err(in_column)?;
            fields.push(Arc::new(
                Field::new(
                    &c.name.value,
                    field.data_type().clone(),
                    field.is_nullable(),
                )
                .with_metadata(field.metadata().clone()),
            ));
            columns.push(ColumnSource::Computed {
                expr,
                sql: c.expr.to_string(),
            });
        } else {
            fields.push(physical.fields()[next_physical].clone());
            columns.push(ColumnSource::Physical(next_physical));
            next_physical += 1;
        }
    }
    let mut schema: SchemaRef = Arc::new(Schema::new(fields));

    let primary_key = primary_key(create, &schema)?;
    if let Some(key) = &primary_key {
        // Flink: the columns of a primary key are NOT NULL.
        let fields = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if key.contains(&i) {
                    Arc::new(f.as_ref().clone().with_nullable(false))
                } else {
                    f.clone()
                }
            })
            .collect::<Vec<_>>();
        schema = Arc::new(Schema::new(fields));
    }
    if let Some(def) = &create.watermark {
        let interval_ms = |e: &SqlExpr| -> Result<i64> {
            interval_to_ms(&constant(e, options).map_err(|err| err.at(Some(def.location)))?)
                .map_err(|err| err.at(Some(def.location)))
        };
        schema = apply_watermark(&schema, def, interval_ms)?;
    }
    let physical_fields = columns
        .iter()
        .zip(schema.fields())
        .filter(|(c, _)| matches!(c, ColumnSource::Physical(_)))
        .map(|(_, f)| f.clone())
        .collect::<Vec<_>>();
    Ok(Some(TableDeclaration {
        physical: Arc::new(Schema::new(physical_fields)),
        schema,
        columns,
        primary_key,
    }))
}

/// The declared primary key (table constraint or column option) as column
/// indices into `schema`.
fn primary_key(create: &CreateConnectorTable, schema: &Schema) -> Result<Option<Vec<usize>>> {
    let at = Some(create.name_location);
    let mut keys: Vec<(Vec<String>, Option<bool>)> = Vec::new();
    for c in &create.constraints {
        match c {
            TableConstraint::PrimaryKey(pk) => keys.push((
                pk.columns
                    .iter()
                    .map(|c| c.column.expr.to_string())
                    .collect(),
                pk.characteristics.and_then(|c| c.enforced),
            )),
            other => {
                return Err(Error::not_supported(format!(
                    "table constraint '{other}' is not supported"
                ))
                .at(at)
                .with_hint("only PRIMARY KEY (...) NOT ENFORCED can be declared, as in Flink"));
            }
        }
    }
    for column in &create.columns {
        for option in &column.options {
            match &option.option {
                ColumnOption::PrimaryKey(pk) => keys.push((
                    vec![column.name.value.clone()],
                    pk.characteristics.and_then(|c| c.enforced),
                )),
                ColumnOption::Unique(_) | ColumnOption::Check(_) | ColumnOption::ForeignKey(_) => {
                    return Err(Error::not_supported(format!(
                        "column constraint '{}' on '{}' is not supported",
                        option.option, column.name.value
                    ))
                    .at(at)
                    .with_hint("only PRIMARY KEY ... NOT ENFORCED can be declared, as in Flink"));
                }
                _ => {}
            }
        }
    }
    let Some((names, enforced)) = keys.pop() else {
        return Ok(None);
    };
    if !keys.is_empty() {
        return Err(Error::plan("a table can have only one PRIMARY KEY")
            .at(at)
            .with_hint("declare the key once, as PRIMARY KEY (col, ...) NOT ENFORCED"));
    }
    if enforced != Some(false) {
        return Err(Error::plan(
            "PRIMARY KEY must be declared NOT ENFORCED: Tributary does not own the data, so it cannot check the key",
        )
        .at(at)
        .with_hint(format!(
            "write PRIMARY KEY ({}) NOT ENFORCED",
            names.join(", ")
        )));
    }
    names
        .iter()
        .map(|name| {
            let normalized = normalize(name);
            schema.index_of(&normalized).map_err(|_| {
                Error::plan(format!(
                    "PRIMARY KEY column '{normalized}' is not a column of the table"
                ))
                .at(at)
                .with_hint(format!("the columns are: {}", column_list(schema)))
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// An identifier as written, folded to lower case unless quoted.
fn normalize(name: &str) -> String {
    match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(quoted) => quoted.to_string(),
        None => name.to_ascii_lowercase(),
    }
}

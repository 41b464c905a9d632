//! A table as its `CREATE TABLE` declares it, on top of the connector's
//! table: Flink's computed columns (`c AS expr`, evaluated each time the
//! table is read and never stored) and its `PRIMARY KEY (...) NOT ENFORCED`.
//!
//! The connector only ever sees the physical columns: a scan reads them and
//! a projection computes the others in declared order; an `INSERT` drops
//! the computed columns before the connector writes (Flink: computed
//! columns are not writable). The primary key is not checked (Tributary
//! does not own the data, as in Flink); it is metadata the planner may rely
//! on, e.g. for functional dependencies in `GROUP BY`.
//!
//! Semantics: Flink's "CREATE TABLE" reference, sections "Computed Columns"
//! and "PRIMARY KEY".

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Constraints, DFSchema};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};

/// Where a column of a [`CatalogTable`] comes from.
#[derive(Debug, Clone)]
pub enum ColumnSource {
    /// The connector's column at this index of its schema.
    Physical(usize),
    /// A computed column: `expr` over the connector's columns, written
    /// `sql` in the declaration.
    Computed { expr: Expr, sql: String },
}

/// A connector table with computed columns and/or a declared primary key.
///
/// Its schema is the declared one: physical and computed columns in
/// declaration order (field metadata such as the watermark kept).
#[derive(Debug)]
pub struct CatalogTable {
    inner: Arc<dyn TableProvider>,
    schema: SchemaRef,
    columns: Vec<ColumnSource>,
    constraints: Constraints,
}

impl CatalogTable {
    /// Wraps `inner`, whose schema holds the physical columns. `schema` and
    /// `columns` list every declared column, in order, with where it comes
    /// from; `constraints` index into `schema`.
    pub fn new(
        inner: Arc<dyn TableProvider>,
        schema: SchemaRef,
        columns: Vec<ColumnSource>,
        constraints: Constraints,
    ) -> Self {
        Self {
            inner,
            schema,
            columns,
            constraints,
        }
    }

    /// The connector's table (physical columns only).
    pub fn inner(&self) -> &Arc<dyn TableProvider> {
        &self.inner
    }

    /// Each computed column with its expression as declared: `(name, sql)`.
    pub fn computed_columns(&self) -> Vec<(&str, &str)> {
        self.columns
            .iter()
            .zip(self.schema.fields())
            .filter_map(|(c, f)| match c {
                ColumnSource::Computed { sql, .. } => Some((f.name().as_str(), sql.as_str())),
                ColumnSource::Physical(_) => None,
            })
            .collect()
    }

    /// The physical expression that reads or computes column `i`.
    fn column_expr(
        &self,
        state: &dyn Session,
        inner_schema: &DFSchema,
        i: usize,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        match &self.columns[i] {
            ColumnSource::Physical(p) => {
                Ok(Arc::new(Column::new(inner_schema.field(*p).name(), *p)))
            }
            ColumnSource::Computed { expr, .. } => {
                state.create_physical_expr(expr.clone(), inner_schema)
            }
        }
    }
}

#[async_trait]
impl TableProvider for CatalogTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn constraints(&self) -> Option<&Constraints> {
        Some(&self.constraints)
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = self.inner.scan(state, None, &[], limit).await?;
        let inner_schema = DFSchema::try_from(self.inner.schema())?;
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let projection = projection.unwrap_or(&all);
        let exprs = projection
            .iter()
            .map(|&i| {
                Ok(ProjectionExpr {
                    expr: self.column_expr(state, &inner_schema, i)?,
                    alias: self.schema.field(i).name().clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let projected = self.schema.project(projection)?;
        Ok(Arc::new(ProjectionExec::try_new_with_schema_metadata(
            exprs, input, &projected,
        )?))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }

    /// Writes the physical columns; the values given for computed columns
    /// are dropped (they are computed on read).
    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input_schema = input.schema();
        let exprs = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c, ColumnSource::Physical(_)))
            .map(|(i, _)| ProjectionExpr {
                expr: Arc::new(Column::new(input_schema.field(i).name(), i)),
                alias: self.schema.field(i).name().clone(),
            })
            .collect::<Vec<_>>();
        let physical = Arc::new(ProjectionExec::try_new(exprs, input)?);
        self.inner.insert_into(state, physical, insert_op).await
    }
}

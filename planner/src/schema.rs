//! Column definitions to Arrow schemas, with DataFusion's own type mapping
//! (so `CREATE TABLE t (...) WITH (...)` types a column exactly as
//! `CREATE TABLE t (...)` does).

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::TableReference;
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::planner::ContextProvider;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, TableSource, WindowUDF};
use datafusion::sql::planner::{ParserOptions, SqlToRel};
use sqlparser::ast::ColumnDef;

use crate::error::Result;

/// The Arrow schema of declared columns. Column names are normalized as
/// DataFusion normalizes identifiers (unquoted names lower-cased).
///
/// # Errors
/// A column type DataFusion does not support.
pub fn columns_to_schema(columns: &[ColumnDef], options: &ConfigOptions) -> Result<SchemaRef> {
    let provider = TypesOnly {
        options: options.clone(),
    };
    let parser_options = ParserOptions::from(&options.sql_parser);
    let planner = SqlToRel::new_with_options(&provider, parser_options);
    Ok(Arc::new(planner.build_schema(columns.to_vec())?))
}

/// The value of a constant SQL expression such as `INTERVAL '4' SECOND`.
///
/// # Errors
/// An expression that is not a literal constant.
pub fn constant(
    expr: &sqlparser::ast::Expr,
    options: &ConfigOptions,
) -> Result<datafusion::common::ScalarValue> {
    let provider = TypesOnly {
        options: options.clone(),
    };
    let planner = SqlToRel::new_with_options(&provider, ParserOptions::from(&options.sql_parser));
    let schema = datafusion::common::DFSchema::empty();
    let logical = planner.sql_to_expr(
        expr.clone(),
        &schema,
        &mut datafusion::sql::planner::PlannerContext::new(),
    )?;
    match logical {
        datafusion::logical_expr::Expr::Literal(value, _) => Ok(value),
        other => Err(crate::Error::plan(format!(
            "expected a constant, found '{other}'"
        ))),
    }
}

/// A context provider that knows no tables or functions: enough to map
/// column types.
struct TypesOnly {
    options: ConfigOptions,
}

impl ContextProvider for TypesOnly {
    fn get_table_source(&self, name: TableReference) -> DFResult<Arc<dyn TableSource>> {
        Err(DataFusionError::Plan(format!("table '{name}' not found")))
    }
    fn get_function_meta(&self, _name: &str) -> Option<Arc<ScalarUDF>> {
        None
    }
    fn get_higher_order_meta(
        &self,
        _name: &str,
    ) -> Option<Arc<datafusion::logical_expr::HigherOrderUDF>> {
        None
    }
    fn get_aggregate_meta(&self, _name: &str) -> Option<Arc<AggregateUDF>> {
        None
    }
    fn get_window_meta(&self, _name: &str) -> Option<Arc<WindowUDF>> {
        None
    }
    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }
    fn options(&self) -> &ConfigOptions {
        &self.options
    }
    fn udf_names(&self) -> Vec<String> {
        vec![]
    }
    fn udaf_names(&self) -> Vec<String> {
        vec![]
    }
    fn udwf_names(&self) -> Vec<String> {
        vec![]
    }
    fn higher_order_function_names(&self) -> Vec<String> {
        vec![]
    }
}

/// The names of `schema`'s columns, comma-separated, for hints such as
/// "the columns are: a, b, ts".
pub fn column_list(schema: &arrow::datatypes::Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::TimeUnit;

    #[test]
    fn maps_types_like_datafusion() {
        let Ok(crate::parser::Statement::CreateConnectorTable(c)) = crate::parser::parse_sql(
            "CREATE TABLE t (Id BIGINT NOT NULL, name STRING, ts TIMESTAMP(3), price DECIMAL(10, 2)) WITH ('a' = 'b')",
        )
        .map(|mut v| v.remove(0).statement) else {
            panic!()
        };
        let schema = columns_to_schema(&c.columns, &ConfigOptions::default()).unwrap();
        assert_eq!(schema.field(0).name(), "id");
        assert!(!schema.field(0).is_nullable());
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        assert_eq!(
            schema.field(2).data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, None)
        );
        assert_eq!(schema.field(3).data_type(), &DataType::Decimal128(10, 2));
    }
}

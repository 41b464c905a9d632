//! The session: a catalog of tables and views, the configuration, and the
//! entry point that runs SQL.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::config::ConfigOptions;
use datafusion::datasource::{TableType, source_as_provider};
use datafusion::execution::SessionState;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use tributary_planner::window_tvf::WindowTvfPlanner;

use crate::batch::recovery::{FailPoint, FailureInjector};
use crate::batch::{BatchOptions, BatchPlan};
use crate::streaming::late_rows::{LateRowLog, LateRowsTable};
use crate::window_assign::TributaryExtensionPlanner;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DFStatement;
use sqlparser::ast::ObjectName;

use tributary_connectors::{CatalogTable, TableOptions, sql_type_name};
use tributary_planner::parser::CreateConnectorTable;
use tributary_planner::watermark::WATERMARK_EXPR;
use tributary_planner::{
    Error, ErrorKind, Location, ParsedStatement, PhysicalQuery, QueryPlan, Result, RuntimeMode,
    Statement, TributaryConfig, create_physical_plan, parse_sql,
};

use crate::QueryResult;
use crate::hints::{add_hints, nearest};

/// The catalog and database every table lives in (Flink's default names).
pub const DEFAULT_CATALOG: &str = "default_catalog";
/// See [`DEFAULT_CATALOG`].
pub const DEFAULT_DATABASE: &str = "default_database";

/// Builds a [`Session`] with configuration set up front.
///
/// ```
/// # use tributary_engine::{Session, RuntimeMode};
/// let session = Session::builder()
///     .runtime_mode(RuntimeMode::Batch)
///     .parallelism(2)
///     .config("datafusion.execution.batch_size", "4096")
///     .build()
///     .unwrap();
/// ```
#[derive(Debug, Default)]
pub struct SessionBuilder {
    settings: Vec<(String, String)>,
}

impl SessionBuilder {
    /// Sets `execution.runtime-mode`.
    pub fn runtime_mode(self, mode: RuntimeMode) -> Self {
        self.config(tributary_planner::config::RUNTIME_MODE, &mode.to_string())
    }

    /// Sets `parallelism.default` (tasks per operator, ≥ 1).
    pub fn parallelism(self, n: usize) -> Self {
        self.config(tributary_planner::config::PARALLELISM, &n.to_string())
    }

    /// Sets any key `SET` accepts (Tributary's or a `datafusion.*` key).
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.settings.push((key.to_string(), value.to_string()));
        self
    }

    /// Builds the session.
    ///
    /// # Errors
    /// An unknown key or an invalid value, as [`Session::set`] reports it.
    pub fn build(self) -> Result<Session> {
        let session = Session::new();
        for (k, v) in &self.settings {
            session.set(k, v)?;
        }
        Ok(session)
    }
}

/// A Tributary session: tables, views and settings, and [`Session::sql`] to
/// run statements.
///
/// A session is cheap to clone; clones share the catalog and settings.
#[derive(Clone)]
pub struct Session {
    ctx: SessionContext,
    config: Arc<std::sync::RwLock<TributaryConfig>>,
    failures: Arc<std::sync::Mutex<Option<Arc<FailureInjector>>>>,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("config", &self.tributary_config())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session with the default settings: `execution.runtime-mode =
    /// automatic`, `parallelism.default` = the number of cores.
    pub fn new() -> Self {
        let config = TributaryConfig::default();
        let late_rows = Arc::new(LateRowLog::default());
        let mut df = SessionConfig::new()
            .with_default_catalog_and_schema(DEFAULT_CATALOG, DEFAULT_DATABASE)
            .with_information_schema(true)
            .with_target_partitions(config.parallelism)
            // The planners read Tributary's settings from here.
            .with_extension(Arc::new(config.clone()))
            // STREAMING queries keep their late rows here.
            .with_extension(late_rows.clone());
        tributary_defaults(df.options_mut());
        apply_broadcast_threshold(df.options_mut(), &config);
        let planner = DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(
            TributaryExtensionPlanner,
        )]);
        // DataFusion's physical optimizer without two DataFusion 55 rules
        // that give wrong answers: `aggregate_statistics` breaks an aggregate
        // with FILTER over a global aggregate (regressions.slt, fifth case;
        // all it saves is reading COUNT(*)/MIN/MAX from file statistics),
        // and the pre-optimization `FilterPushdown` moves a WHERE on an outer
        // join's NULL-padded side into the other input (eighth case; the
        // logical optimizer still pushes filters into scans, and the
        // post-optimization pass with join/TopK dynamic filters stays).
        let physical_rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new()
            .rules
            .into_iter()
            .filter(|r| r.name() != "aggregate_statistics" && r.name() != "FilterPushdown")
            .collect();
        let state = SessionStateBuilder::new()
            .with_config(df)
            .with_default_features()
            .with_physical_optimizer_rules(physical_rules)
            .with_optimizer_rules(logical_rules())
            .with_query_planner(Arc::new(TributaryQueryPlanner(planner)))
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.register_relation_planner(Arc::new(WindowTvfPlanner))
            .expect("registering a relation planner cannot fail");
        ctx.register_relation_planner(Arc::new(
            tributary_planner::temporal_join::TemporalTablePlanner,
        ))
        .expect("registering a relation planner cannot fail");
        for f in crate::functions::flink_functions() {
            ctx.register_udf(f);
        }
        // Replaces DataFusion's `to_char` (same results, format parsed once).
        ctx.register_udf(crate::to_char::to_char());
        register_system_tables(&ctx, late_rows);
        Self {
            ctx,
            config: Arc::new(std::sync::RwLock::new(config)),
            failures: Arc::default(),
        }
    }

    /// Test-only hook: the next BATCH queries (blocking shuffle mode) fail
    /// the tasks `points` name, once each, as a crashed task would
    /// (`None` removes the hook). Returns the injector, to see which points
    /// fired.
    #[doc(hidden)]
    pub fn inject_batch_failures(
        &self,
        points: Option<Vec<FailPoint>>,
    ) -> Option<Arc<FailureInjector>> {
        let injector = points.map(|p| Arc::new(FailureInjector::new(p)));
        if let Ok(mut f) = self.failures.lock() {
            *f = injector.clone();
        }
        injector
    }

    fn batch_options(&self) -> BatchOptions {
        let mut options = BatchOptions::from_config(&self.tributary_config());
        options.failures = self.failures.lock().ok().and_then(|f| f.clone());
        options
    }

    /// A [`SessionBuilder`].
    pub fn builder() -> SessionBuilder {
        SessionBuilder::default()
    }

    /// The DataFusion context underneath, for registering functions or
    /// tables from Rust.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Tributary's own settings now.
    pub fn tributary_config(&self) -> TributaryConfig {
        self.config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Runs every statement in `sql`, in order, and returns the result of the
    /// last one. Results of earlier statements are run to completion and
    /// dropped (use [`Session::parse`] and [`Session::execute`] to see each).
    ///
    /// # Errors
    /// A syntax error anywhere in `sql` (nothing runs then), or the first
    /// statement that fails (the ones before it have run). Errors carry the
    /// line and column in `sql` where known.
    pub async fn sql(&self, sql: &str) -> Result<QueryResult> {
        let statements = self.parse(sql)?;
        let count = statements.len();
        let mut last = None;
        for (i, statement) in statements.into_iter().enumerate() {
            let result = self.execute(&statement).await?;
            if i + 1 < count {
                result.collect().await?;
            } else {
                last = Some(result);
            }
        }
        Ok(last.unwrap_or_else(|| QueryResult::status("No statement to run.")))
    }

    /// Splits `sql` into statements and parses them, without running any.
    ///
    /// # Errors
    /// The first syntax error, with its location.
    pub fn parse(&self, sql: &str) -> Result<Vec<ParsedStatement>> {
        parse_sql(sql)
    }

    /// Runs one parsed statement.
    ///
    /// # Errors
    /// Planning errors (unknown table or column, with the nearest name as a
    /// hint), connector errors, configuration errors; execution errors come
    /// through the returned stream.
    pub async fn execute(&self, statement: &ParsedStatement) -> Result<QueryResult> {
        let at = Some(statement.location);
        let result = match &statement.statement {
            Statement::CreateConnectorTable(create) => self.create_connector_table(create).await,
            Statement::Set { key: None, .. } => self.list_settings(),
            Statement::Set {
                key: Some(k),
                value,
            } => self
                .set(k, value.as_deref().unwrap_or_default())
                .map(|()| QueryResult::status(format!("Set '{k}'."))),
            Statement::Reset { key } => self
                .reset(key.as_deref())
                .map(|()| QueryResult::status("Reset.")),
            Statement::ShowTables => self.show_tables(false),
            Statement::ShowViews => self.show_tables(true),
            Statement::Describe { name } => self.describe(name).await,
            Statement::Explain { statement, analyze } => self.explain(statement, *analyze).await,
            Statement::Sql(sql) => self.run_datafusion((**sql).clone()).await,
        };
        result.map_err(|e| add_hints(e, self).at(at))
    }

    /// Sets a configuration key, as `SET 'key' = 'value'` does: Tributary's
    /// keys (`execution.runtime-mode`, `parallelism.default`) or any
    /// DataFusion key (`datafusion.execution.batch_size`, ...).
    ///
    /// # Errors
    /// An unknown key (with the nearest known key) or an invalid value.
    pub fn set(&self, key: &str, value: &str) -> Result<()> {
        let mut config = self
            .config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if config.set(key, value)? {
            let state = self.ctx.state_ref();
            let mut state = state.write();
            if key == tributary_planner::config::BROADCAST_THRESHOLD {
                apply_broadcast_threshold(state.config_mut().options_mut(), &config);
            }
            publish(&mut state, &config);
            return Ok(());
        }
        if key.starts_with("datafusion.") {
            let state = self.ctx.state_ref();
            let mut state = state.write();
            return state
                .config_mut()
                .options_mut()
                .set(key, value)
                .map_err(|e| {
                    let mut err = Error::from(e);
                    err.kind = ErrorKind::Config;
                    err
                });
        }
        Err(unknown_key(key))
    }

    /// Resets one key (or every key, with `None`) to its default.
    ///
    /// # Errors
    /// An unknown key.
    pub fn reset(&self, key: Option<&str>) -> Result<()> {
        let mut config = self
            .config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let state = self.ctx.state_ref();
        let mut state = state.write();
        match key {
            None => {
                *config = TributaryConfig::default();
                let defaults = SessionConfig::new();
                let options = state.config_mut().options_mut();
                for entry in defaults.options().entries() {
                    if let Some(v) = entry.value {
                        let _ = options.set(&entry.key, &v);
                    }
                }
                tributary_defaults(options);
                apply_broadcast_threshold(options, &config);
                options.execution.target_partitions = config.parallelism;
                options.catalog.information_schema = true;
                publish(&mut state, &config);
            }
            Some(k) if config.reset(k) => {
                if k == tributary_planner::config::BROADCAST_THRESHOLD {
                    apply_broadcast_threshold(state.config_mut().options_mut(), &config);
                }
                publish(&mut state, &config)
            }
            Some(k) if k.starts_with("datafusion.") => {
                let default = ConfigOptions::default()
                    .entries()
                    .into_iter()
                    .find(|e| e.key == k)
                    .ok_or_else(|| unknown_key(k))?;
                if let Some(v) = default.value {
                    state.config_mut().options_mut().set(k, &v)?;
                }
            }
            Some(k) => return Err(unknown_key(k)),
        }
        Ok(())
    }

    fn list_settings(&self) -> Result<QueryResult> {
        let mut entries = self.tributary_config().entries();
        let state = self.ctx.state();
        let defaults: std::collections::HashMap<String, Option<String>> = ConfigOptions::default()
            .entries()
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect();
        for e in state.config().options().entries() {
            let ours = matches!(
                e.key.as_str(),
                "datafusion.sql_parser.collect_spans"
                    | "datafusion.catalog.information_schema"
                    | "datafusion.catalog.default_catalog"
                    | "datafusion.catalog.default_schema"
                    | "datafusion.execution.target_partitions"
                    | "datafusion.execution.skip_physical_aggregate_schema_check"
                    | "datafusion.optimizer.hash_join_single_partition_threshold"
                    | "datafusion.optimizer.hash_join_single_partition_threshold_rows"
            );
            if !ours && defaults.get(&e.key) != Some(&e.value) {
                entries.insert(e.key, e.value.unwrap_or_default());
            }
        }
        let (keys, values): (Vec<_>, Vec<_>) = entries.into_iter().unzip();
        string_batch(&["key", "value"], vec![keys, values])
    }

    async fn create_connector_table(&self, create: &CreateConnectorTable) -> Result<QueryResult> {
        let at = Some(create.name_location);
        let name = table_reference(&create.name);
        if self.ctx.table_exist(name.clone())? {
            if create.if_not_exists {
                return Ok(QueryResult::status(format!(
                    "Table '{name}' already exists."
                )));
            }
            return Err(Error::plan(format!("table '{name}' already exists"))
                .at(at)
                .with_hint("DROP TABLE it first, or use CREATE TABLE IF NOT EXISTS"));
        }
        let state = self.ctx.state();
        let declaration = crate::table_declaration::resolve(&state, create)?;
        let provider: Arc<dyn TableProvider> = if create.options.is_empty() {
            let Some(declared) = &declaration else {
                return Err(Error::syntax("an in-memory table needs its columns declared").at(at));
            };
            Arc::new(datafusion::datasource::MemTable::try_new(
                declared.physical.clone(),
                vec![vec![]],
            )?)
        } else {
            let options = TableOptions::new(create.options.iter().cloned());
            tributary_connectors::create_table(
                name.table(),
                declaration.as_ref().map(|d| d.physical.clone()),
                options,
            )
            .await
            .map_err(|e| Error::from(e).at(at))?
        };
        let provider = match declaration {
            Some(d) if d.needs_catalog_table() => {
                let constraints = d.constraints();
                Arc::new(CatalogTable::new(
                    provider,
                    d.schema,
                    d.columns,
                    constraints,
                ))
            }
            _ => provider,
        };
        self.ctx.register_table(name.clone(), provider)?;
        Ok(QueryResult::status(format!("Table '{name}' created.")))
    }

    /// The names of the tables (or only the views), sorted.
    pub fn table_names(&self, views_only: bool) -> Result<Vec<String>> {
        let catalog = self
            .ctx
            .catalog(DEFAULT_CATALOG)
            .ok_or_else(|| Error::plan("default catalog missing"))?;
        let schema = catalog
            .schema(DEFAULT_DATABASE)
            .ok_or_else(|| Error::plan("default database missing"))?;
        let mut names = Vec::new();
        for name in schema.table_names() {
            // The in-memory schema answers at once; no runtime is needed to wait.
            let is_view = futures::executor::block_on(schema.table_type(&name))
                .ok()
                .flatten()
                == Some(TableType::View);
            if !views_only || is_view {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn show_tables(&self, views_only: bool) -> Result<QueryResult> {
        let names = self.table_names(views_only)?;
        let column = if views_only {
            "view_name"
        } else {
            "table_name"
        };
        string_batch(&[column], vec![names])
    }

    async fn describe(&self, name: &ObjectName) -> Result<QueryResult> {
        let reference = table_reference(name);
        let table = self
            .ctx
            .table_provider(reference.clone())
            .await
            .map_err(|_| table_not_found(self, &reference))?;
        let schema = table.schema();
        // Flink's DESCRIBE: name, type, null, key, extras, watermark.
        let key: Vec<usize> = table
            .constraints()
            .into_iter()
            .flat_map(|c| c.iter())
            .find_map(|c| match c {
                datafusion::common::Constraint::PrimaryKey(k) => Some(k.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let key_text = format!(
            "PRI({})",
            key.iter()
                .map(|&i| schema.field(i).name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let computed: Vec<(String, String)> = table
            .downcast_ref::<CatalogTable>()
            .map(|t| {
                t.computed_columns()
                    .into_iter()
                    .map(|(name, sql)| (name.to_string(), sql.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let mut cols: Vec<Vec<String>> = vec![vec![]; 6];
        for (i, f) in schema.fields().iter().enumerate() {
            cols[0].push(f.name().clone());
            let watermark = f.metadata().get(WATERMARK_EXPR);
            // Flink marks an event-time column's type with *ROWTIME*.
            cols[1].push(format!(
                "{}{}",
                sql_type_name(f.data_type()),
                if watermark.is_some() {
                    " *ROWTIME*"
                } else {
                    ""
                }
            ));
            cols[2].push(if f.is_nullable() { "TRUE" } else { "FALSE" }.into());
            cols[3].push(if key.contains(&i) {
                key_text.clone()
            } else {
                String::new()
            });
            cols[4].push(
                computed
                    .iter()
                    .find(|(name, _)| name == f.name())
                    .map(|(_, expr)| format!("AS {expr}"))
                    .unwrap_or_default(),
            );
            cols[5].push(watermark.cloned().unwrap_or_default());
        }
        string_batch(
            &["name", "type", "null", "key", "extras", "watermark"],
            cols,
        )
    }

    async fn explain(&self, inner: &ParsedStatement, analyze: bool) -> Result<QueryResult> {
        let Statement::Sql(sql) = &inner.statement else {
            return Err(
                Error::not_supported("EXPLAIN supports queries and INSERT statements")
                    .at(Some(inner.location)),
            );
        };
        let plan = self.logical_plan((**sql).clone()).await?;
        if matches!(plan, LogicalPlan::Ddl(_) | LogicalPlan::Statement(_)) {
            return Err(
                Error::not_supported("EXPLAIN supports queries and INSERT statements")
                    .at(Some(inner.location)),
            );
        }
        let query = self.physical_plan(&plan).await?;
        let physical = match &query.plan {
            QueryPlan::Batch(plan) => datafusion::physical_plan::displayable(plan.as_ref())
                .indent(true)
                .to_string(),
            QueryPlan::Streaming(plan) => plan.display_indent(),
        };
        let mut stages = None;
        if let QueryPlan::Batch(plan) = &query.plan {
            let options = self.batch_options();
            let batch = BatchPlan::new(plan.clone(), &options);
            if analyze {
                stages = Some((
                    "stage_graph_analyzed",
                    self.analyze_batch(&batch, &options).await?,
                ));
            } else {
                stages = Some(("stage_graph", batch.display()));
            }
        } else if analyze {
            return Err(Error::not_supported(
                "EXPLAIN ANALYZE runs BATCH queries only: a STREAMING query may never end",
            )
            .at(Some(inner.location))
            .with_hint("SET 'execution.runtime-mode' = 'batch' to analyze it over bounded input"));
        }
        let mut rows = vec![
            (
                "runtime_mode",
                format!(
                    "{} ({})",
                    query.mode.mode.to_string().to_uppercase(),
                    query.mode.reason
                ),
            ),
            ("logical_plan", query.logical.display_indent().to_string()),
            ("physical_plan", physical.trim_end().to_string()),
        ];
        if let Some((name, text)) = stages {
            rows.push((name, text.trim_end().to_string()));
        }
        let (types, plans): (Vec<_>, Vec<_>) =
            rows.into_iter().map(|(a, b)| (a.to_string(), b)).unzip();
        string_batch(&["plan_type", "plan"], vec![types, plans])
    }

    /// Runs `batch` to the end (its rows are dropped) and reports what each
    /// stage did.
    async fn analyze_batch(&self, batch: &BatchPlan, options: &BatchOptions) -> Result<String> {
        let started = std::time::Instant::now();
        let execution = crate::batch::execute(batch, self.ctx.task_ctx(), options)?;
        let mut stream = execution.stream;
        let mut rows = 0usize;
        while let Some(b) = futures::StreamExt::next(&mut stream).await {
            rows += b?.num_rows();
        }
        let elapsed = started.elapsed();
        Ok(match (batch, execution.run) {
            (BatchPlan::Staged(graph), Some(run)) => format!(
                "{rows} rows in {:.3}s ({})\n{}",
                elapsed.as_secs_f64(),
                options.shuffle_mode,
                crate::batch::analyze_report(graph, &run)
            ),
            (BatchPlan::Pipelined { plan, reason }, _) => format!(
                "{rows} rows in {:.3}s (pipelined: {reason})\n{}",
                elapsed.as_secs_f64(),
                datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(
                    plan.as_ref()
                )
                .indent(true)
            ),
            (BatchPlan::Staged(graph), None) => graph.display(),
        })
    }

    async fn logical_plan(&self, statement: sqlparser::ast::Statement) -> Result<LogicalPlan> {
        let state = self.ctx.state();
        Ok(state
            .statement_to_plan(DFStatement::Statement(Box::new(statement)))
            .await?)
    }

    async fn physical_plan(&self, plan: &LogicalPlan) -> Result<PhysicalQuery> {
        let state: SessionState = self.ctx.state();
        let mode = self.tributary_config().runtime_mode;
        create_physical_plan(&state, plan, mode).await
    }

    async fn run_datafusion(&self, statement: sqlparser::ast::Statement) -> Result<QueryResult> {
        let plan = self.logical_plan(statement).await?;
        match plan {
            LogicalPlan::Ddl(mut ddl) => {
                let status = ddl_status(&ddl);
                // CREATE TABLE AS runs its query to completion, in BATCH: a
                // temporal join in it takes its BATCH plan. (A view keeps
                // the clause, planned in the mode of the query that reads it.)
                if let datafusion::logical_expr::DdlStatement::CreateMemoryTable(create) = &mut ddl
                {
                    create.input =
                        Arc::new(tributary_planner::temporal_join::lower_temporal_joins(
                            &create.input,
                            RuntimeMode::Batch,
                        )?);
                }
                self.ctx
                    .execute_logical_plan(LogicalPlan::Ddl(ddl))
                    .await?
                    .collect()
                    .await?;
                Ok(QueryResult::status(status))
            }
            LogicalPlan::Statement(_) => Err(Error::not_supported(
                "this statement is not supported by Tributary",
            )),
            plan => {
                let query = self.physical_plan(&plan).await?;
                let tables = scanned_tables(&query.logical);
                let is_insert = matches!(&plan, LogicalPlan::Dml(_));
                let mut metrics = None;
                let mut batch_run = None;
                let stream = match &query.plan {
                    QueryPlan::Batch(plan) => {
                        let options = self.batch_options();
                        let batch = BatchPlan::new(plan.clone(), &options);
                        let execution =
                            crate::batch::execute(&batch, self.ctx.task_ctx(), &options)?;
                        batch_run = execution.run;
                        execution.stream
                    }
                    QueryPlan::Streaming(plan) => {
                        let state = self.ctx.state();
                        let (stream, stream_metrics) = crate::streaming::execute(
                            plan,
                            &state,
                            self.ctx.task_ctx(),
                            self.tributary_config().parallelism,
                        )
                        .await?;
                        metrics = Some(stream_metrics);
                        stream
                    }
                };
                let result = QueryResult::rows(stream, Some(query.mode))
                    .watch(tables)
                    .with_metrics(metrics)
                    .with_batch_run(batch_run);
                Ok(if is_insert {
                    result.of_insert()
                } else {
                    result
                })
            }
        }
    }
}

/// DataFusion's physical planner with Tributary's extension planners
/// (window TVFs) for BATCH.
struct TributaryQueryPlanner(DefaultPhysicalPlanner);

impl std::fmt::Debug for TributaryQueryPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TributaryQueryPlanner")
    }
}

#[async_trait::async_trait]
impl QueryPlanner for TributaryQueryPlanner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn datafusion::catalog::Session,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        self.0.create_physical_plan(plan, session).await
    }
}

/// Registers the schema `system` with its tables: `system.late_rows`.
/// DataFusion's logical optimizer rules with two of Tributary's: a correlated
/// `NOT IN` becomes the equivalent `NOT EXISTS` before DataFusion
/// decorrelates subqueries (its null-aware anti join is wrong for a
/// correlated one: cross_mode/join_semi_anti.slt), and after every rewrite
/// types coerced before it line up again (regressions.slt, sixth case).
fn logical_rules() -> Vec<Arc<dyn datafusion::optimizer::OptimizerRule + Send + Sync>> {
    let mut rules = datafusion::optimizer::Optimizer::new().rules;
    let at = rules
        .iter()
        .position(|r| r.name() == "decorrelate_predicate_subquery")
        .unwrap_or(0);
    rules.insert(
        at,
        Arc::new(tributary_planner::not_in::CorrelatedNotInToNotExists),
    );
    // DISTINCT aggregates over a SESSION window TVF stay as they are (both
    // modes run them; STREAMING cannot run DataFusion's rewrite of them).
    if let Some(rule) = rules
        .iter_mut()
        .find(|r| r.name() == "single_distinct_aggregation_to_group_by")
    {
        *rule = Arc::new(
            tributary_planner::session_distinct::SingleDistinctToGroupByExceptSession::default(),
        );
    }
    // Correlated scalar subqueries DataFusion's `scalar_subquery_to_join`
    // leaves (a non-equality correlation) are decorrelated right after it.
    let at = rules
        .iter()
        .position(|r| r.name() == "scalar_subquery_to_join")
        .map_or(rules.len(), |i| i + 1);
    rules.insert(
        at,
        Arc::new(tributary_planner::scalar_subquery_domain_join::ScalarSubqueryToDomainJoin),
    );
    rules.push(Arc::new(tributary_planner::recoerce::RecoerceTypes));
    rules
}

/// The DataFusion options Tributary sets differently from DataFusion.
fn tributary_defaults(options: &mut ConfigOptions) {
    // Spans on identifiers let planning errors point at the SQL text.
    options.sql_parser.collect_spans = true;
    // DataFusion 55 can infer a CASE to be never NULL in the logical plan
    // while its physical CASE says nullable; the aggregate's schema check
    // then refuses a correct plan ("Physical input schema should be the same
    // as the one converted from logical input schema ... field nullability").
    // DataFusion's own switch for such false alarms (regressions.slt,
    // seventh case).
    options.execution.skip_physical_aggregate_schema_check = true;
}

/// `table.optimizer.join.broadcast-threshold` as DataFusion's `JoinSelection`
/// reads it: a hash join whose smaller input is estimated under the
/// threshold (bytes; rows under DataFusion's row threshold when the byte
/// size is unknown) collects that input once and becomes a `CollectLeft`
/// join (a broadcast join: in blocking shuffle mode the other input is not
/// exchanged at all). `-1` sets both thresholds to 0: no join is collected
/// for its size.
fn apply_broadcast_threshold(options: &mut ConfigOptions, config: &TributaryConfig) {
    let defaults = ConfigOptions::default();
    let optimizer = &mut options.optimizer;
    match config.broadcast_threshold {
        Some(bytes) => {
            optimizer.hash_join_single_partition_threshold =
                usize::try_from(bytes).unwrap_or(usize::MAX);
            optimizer.hash_join_single_partition_threshold_rows =
                defaults.optimizer.hash_join_single_partition_threshold_rows;
        }
        None => {
            optimizer.hash_join_single_partition_threshold = 0;
            optimizer.hash_join_single_partition_threshold_rows = 0;
        }
    }
}

fn register_system_tables(ctx: &SessionContext, late_rows: Arc<LateRowLog>) {
    use datafusion::catalog::SchemaProvider;
    let schema = Arc::new(datafusion::catalog::MemorySchemaProvider::new());
    let _ = schema.register_table(
        "late_rows".to_string(),
        Arc::new(LateRowsTable::new(late_rows)),
    );
    if let Some(catalog) = ctx.catalog(DEFAULT_CATALOG) {
        let _ = catalog.register_schema("system", schema);
    }
}

/// Makes Tributary's settings visible to DataFusion and to the planners:
/// the parallelism as DataFusion's target partitions, the whole config as a
/// session-config extension.
fn publish(state: &mut SessionState, config: &TributaryConfig) {
    let df = state.config_mut();
    df.options_mut().execution.target_partitions = config.parallelism;
    df.set_extension(Arc::new(config.clone()));
}

fn ddl_status(ddl: &datafusion::logical_expr::DdlStatement) -> String {
    use datafusion::logical_expr::DdlStatement as D;
    match ddl {
        D::CreateMemoryTable(t) => format!("Table '{}' created.", t.name),
        D::CreateView(v) => format!("View '{}' created.", v.name),
        D::DropTable(t) => format!("Table '{}' dropped.", t.name),
        D::DropView(v) => format!("View '{}' dropped.", v.name),
        other => format!("{} succeeded.", other.name()),
    }
}

/// The table providers `plan` scans (views already inlined by the analyzer).
fn scanned_tables(plan: &LogicalPlan) -> Vec<Arc<dyn TableProvider>> {
    let mut out = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(p) = source_as_provider(&scan.source)
        {
            out.push(p);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

/// A table reference from an SQL name, normalized as DataFusion does
/// (unquoted parts lower-cased).
pub(crate) fn table_reference(name: &ObjectName) -> TableReference {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p.as_ident() {
            Some(id) if id.quote_style.is_some() => id.value.clone(),
            Some(id) => id.value.to_lowercase(),
            None => p.to_string(),
        })
        .collect();
    match parts.as_slice() {
        [t] => TableReference::bare(t.clone()),
        [s, t] => TableReference::partial(s.clone(), t.clone()),
        [c, s, t] => TableReference::full(c.clone(), s.clone(), t.clone()),
        _ => TableReference::bare(name.to_string()),
    }
}

pub(crate) fn table_not_found(session: &Session, name: &TableReference) -> Error {
    let mut e = Error::plan(format!("table '{name}' not found"));
    let names = session.table_names(false).unwrap_or_default();
    e.hint = Some(match nearest(name.table(), &names) {
        Some(n) => format!("did you mean '{n}'?"),
        None if names.is_empty() => "no tables exist yet; create one with CREATE TABLE".into(),
        None => format!("SHOW TABLES lists the tables: {}", names.join(", ")),
    });
    e
}

fn unknown_key(key: &str) -> Error {
    let ours: Vec<String> = tributary_planner::config::KEYS
        .iter()
        .map(|k| k.key.to_string())
        .collect();
    let mut all = ours.clone();
    all.extend(
        ConfigOptions::default()
            .entries()
            .into_iter()
            .map(|e| e.key),
    );
    let e = Error::config(format!("unknown configuration key '{key}'"));
    match nearest(key, &all) {
        Some(n) => e.with_hint(format!(
            "did you mean '{n}'? Tributary's keys: {}",
            ours.join(", ")
        )),
        None => e.with_hint(format!(
            "Tributary's keys: {}; DataFusion's keys start with 'datafusion.'",
            ours.join(", ")
        )),
    }
}

/// A batch of string columns.
fn string_batch(names: &[&str], columns: Vec<Vec<String>>) -> Result<QueryResult> {
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays)
        .map_err(datafusion::error::DataFusionError::from)?;
    Ok(QueryResult::batches(schema, vec![batch]))
}

#[allow(dead_code)]
fn _location_is_public(_: Location) {}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    async fn rows(session: &Session, sql: &str) -> Vec<RecordBatch> {
        session.sql(sql).await.unwrap().collect().await.unwrap()
    }

    fn text(batches: &[RecordBatch]) -> String {
        arrow::util::pretty::pretty_format_batches(batches)
            .unwrap()
            .to_string()
    }

    /// A session in STREAMING mode with the defaults otherwise.
    fn streaming_session() -> Session {
        Session::builder()
            .runtime_mode(RuntimeMode::Streaming)
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn statements_run_in_order_and_the_last_result_is_returned() {
        let s = Session::new();
        let out = rows(
            &s,
            "CREATE TABLE t (a INT); INSERT INTO t VALUES (1), (2); SELECT SUM(a) AS s FROM t",
        )
        .await;
        assert!(text(&out).contains("| 3 |"), "{}", text(&out));
        let status = s.sql("DROP TABLE t").await.unwrap();
        assert_eq!(status.status_message(), Some("Table 't' dropped."));
        assert_eq!(status.schema().fields().len(), 0);
    }

    #[tokio::test]
    async fn result_stream_has_schema_and_mode() {
        let s = Session::new();
        let mut r = s.sql("SELECT 1 AS one, 'x' AS two").await.unwrap();
        assert_eq!(r.schema().field(0).name(), "one");
        assert_eq!(r.mode().unwrap().mode, RuntimeMode::Batch);
        let batch = r.next().await.unwrap().unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert!(r.next().await.is_none());
    }

    #[tokio::test]
    async fn explain_names_the_mode_and_why() {
        let s = Session::new();
        let out = text(
            &rows(
                &s,
                "CREATE TABLE t (a INT); EXPLAIN SELECT a, COUNT(*) FROM t GROUP BY a",
            )
            .await,
        );
        assert!(
            out.contains("BATCH (execution.runtime-mode = automatic and every source is bounded)"),
            "{out}"
        );
        assert!(out.contains("AggregateExec"), "{out}");
        let out = text(
            &rows(
                &s,
                "SET 'execution.runtime-mode' = 'batch'; EXPLAIN PLAN FOR SELECT 1",
            )
            .await,
        );
        assert!(
            out.contains("BATCH (execution.runtime-mode = batch)"),
            "{out}"
        );
    }

    #[tokio::test]
    async fn a_window_tvf_reads_only_the_columns_its_query_uses() {
        let s = streaming_session();
        let out = text(
            &rows(
                &s,
                "CREATE TABLE bids (auction BIGINT, url STRING, extra STRING, ts TIMESTAMP(3),
                   WATERMARK FOR ts AS ts - INTERVAL '1' SECOND);
                 EXPLAIN SELECT auction, window_start, window_end, COUNT(*) AS n
                 FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND))
                 GROUP BY auction, window_start, window_end",
            )
            .await,
        );
        assert!(out.contains("WindowAggregate: "), "{out}");
        // The scan reads the key and the time column, not the strings.
        assert!(
            out.contains("TableScan: bids projection=[auction, ts]"),
            "{out}"
        );
    }

    #[tokio::test]
    async fn explain_shows_a_streaming_join_with_its_type_keys_and_changelog_mode() {
        let s = streaming_session();
        let out = text(
            &rows(
                &s,
                "CREATE TABLE l (k INT, v INT); CREATE TABLE r (k INT, w INT);
                 EXPLAIN SELECT l.v, r.w FROM l LEFT JOIN r ON l.k = r.k AND l.v < r.w",
            )
            .await,
        );
        assert!(
            out.contains("Join: type=Left, on=[k@0 = k@0], filter=v@1 < w@3, state=unbounded, changelogMode=[I,UB,UA,D]"),
            "{out}"
        );
        assert!(out.contains("Source: table=l"), "{out}");
        assert!(out.contains("Source: table=r"), "{out}");
        let out = text(&rows(&s, "EXPLAIN SELECT l.v, r.w FROM l JOIN r ON l.k = r.k").await);
        assert!(
            out.contains("Join: type=Inner, on=[k@0 = k@0], state=unbounded, changelogMode=[I]"),
            "{out}"
        ); // Every operator that keeps state forever says so.
        let out = text(&rows(&s, "EXPLAIN SELECT k, COUNT(*) FROM l GROUP BY k").await);
        assert!(
            out.contains("GroupAggregate: group=[k@0], aggregates=[count(Int64(1))], state=unbounded, changelogMode=[I,UB,UA,D]"),
            "{out}"
        );
    }

    #[tokio::test]
    async fn explain_shows_a_repeated_sub_query_run_once() {
        let s = streaming_session();
        let out = text(
            &rows(
                &s,
                "CREATE TABLE t (k INT, v INT);
                 EXPLAIN SELECT a.k FROM (SELECT k, COUNT(*) AS n FROM t GROUP BY k) a
                 JOIN (SELECT k, COUNT(*) AS n FROM t GROUP BY k) b ON a.k = b.k AND a.n = b.n",
            )
            .await,
        );
        assert_eq!(out.matches("GroupAggregate:").count(), 1, "{out}");
        assert_eq!(
            out.matches("Reused: id=1, run once, its output copied to each use")
                .count(),
            1,
            "{out}"
        );
        assert_eq!(
            out.matches("Reused: id=1, run once (shown above)").count(),
            1,
            "{out}"
        );
        // Sub-queries that differ are not shared.
        let out = text(
            &rows(
                &s,
                "EXPLAIN SELECT a.k, a.n, b.n FROM (SELECT k, COUNT(*) AS n FROM t GROUP BY k) a
                 JOIN (SELECT k, MAX(v) AS n FROM t GROUP BY k) b ON a.k = b.k",
            )
            .await,
        );
        assert!(!out.contains("Reused"), "{out}");
        assert_eq!(out.matches("GroupAggregate:").count(), 2, "{out}");
    }

    #[tokio::test]
    async fn explain_shows_the_state_ttl_of_joins_and_updating_aggregates() {
        let s = streaming_session();
        let out = text(
            &rows(
                &s,
                "CREATE TABLE l (k INT, v INT); CREATE TABLE r (k INT, w INT);
                 SET 'table.exec.state.ttl' = '90 min';
                 EXPLAIN SELECT l.v, r.w FROM l LEFT JOIN r ON l.k = r.k",
            )
            .await,
        );
        assert!(
            out.contains(
                "Join: type=Left, on=[k@0 = k@0], state=ttl 90 min, changelogMode=[I,UB,UA,D]"
            ),
            "{out}"
        );
        let out = text(&rows(&s, "EXPLAIN SELECT k, COUNT(*) FROM l GROUP BY k").await);
        assert!(
            out.contains(
                "GroupAggregate: group=[k@0], aggregates=[count(Int64(1))], state=ttl 90 min"
            ),
            "{out}"
        );
        // A global aggregate holds one key: nothing to expire.
        let out = text(&rows(&s, "EXPLAIN SELECT COUNT(*) FROM l").await);
        assert!(out.contains("state=unbounded"), "{out}");
        assert!(!out.contains("state=ttl"), "{out}");
        // NOT IN needs every right row: no TTL.
        let out = text(
            &rows(
                &s,
                "EXPLAIN SELECT v FROM l WHERE k NOT IN (SELECT k FROM r)",
            )
            .await,
        );
        assert!(out.contains("NOT IN (null-aware)"), "{out}");
        assert!(out.contains("state=unbounded"), "{out}");
        // 0 turns it off again.
        let out = text(
            &rows(
                &s,
                "SET 'table.exec.state.ttl' = '0'; EXPLAIN SELECT k, COUNT(*) FROM l GROUP BY k",
            )
            .await,
        );
        assert!(out.contains("state=unbounded"), "{out}");
    }

    #[tokio::test]
    async fn explain_shows_interval_and_window_joins_freed_by_the_watermark() {
        let s = streaming_session();
        let out = text(
            &rows(
                &s,
                "CREATE TABLE l (k INT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND);
                 CREATE TABLE r (k INT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND);
                 EXPLAIN SELECT l.k FROM l JOIN r ON l.k = r.k
                   AND r.ts BETWEEN l.ts - INTERVAL '1' SECOND AND l.ts + INTERVAL '5' SECOND",
            )
            .await,
        );
        assert!(
            out.contains("IntervalJoin: type=Inner, on=[k@0 = k@0]"),
            "{out}"
        );
        assert!(
            out.contains("left column 1 - right column 1 in [-5000ms, 1000ms], emit=on match, watermark delay=5000ms, state=freed by watermark, changelogMode=[I]"),
            "{out}"
        );
        let out = text(
            &rows(
                &s,
                "EXPLAIN SELECT L.k FROM TABLE(TUMBLE(TABLE l, DESCRIPTOR(ts), INTERVAL '10' SECOND)) L
                 LEFT JOIN TABLE(TUMBLE(TABLE r, DESCRIPTOR(ts), INTERVAL '10' SECOND)) R
                 ON L.window_start = R.window_start AND L.window_end = R.window_end AND L.k = R.k",
            )
            .await,
        );
        assert!(out.contains("WindowJoin: type=Left"), "{out}");
        assert!(
            out.contains("emit=on watermark, state=freed by watermark, changelogMode=[I]"),
            "{out}"
        );
        // Each time bounded from above by the other side's row (Nexmark
        // q4's form): a range join, each row freed at its own expiry.
        let out = text(
            &rows(
                &s,
                "CREATE TABLE a (id INT, ts TIMESTAMP(3), expires TIMESTAMP(3),
                   WATERMARK FOR ts AS ts - INTERVAL '1' SECOND);
                 EXPLAIN SELECT a.id FROM a JOIN r ON a.id = r.k AND r.ts BETWEEN a.ts AND a.expires",
            )
            .await,
        );
        assert!(
            out.contains("RangeJoin: type=Inner, on=[id@0 = k@0]"),
            "{out}"
        );
        assert!(
            out.contains("late if left column 1 / right column 1 <= watermark, left rows expire at least([expires@2]), right rows expire at least([ts@1]), emit=on match, watermark=held until end of input, state=freed by watermark, changelogMode=[I]"),
            "{out}"
        );
        // A bound on one side only over bounded tables: a regular join.
        let out = text(
            &rows(
                &s,
                "EXPLAIN SELECT l.k FROM l JOIN r ON l.k = r.k AND r.ts >= l.ts",
            )
            .await,
        );
        assert!(out.contains("Join: type=Inner"), "{out}");
        assert!(out.contains("state=unbounded"), "{out}");
    }

    #[tokio::test]
    async fn explain_shows_the_temporal_join_in_both_modes() {
        let s = streaming_session();
        let query =
            "EXPLAIN SELECT o.id, r.rate FROM o JOIN r FOR SYSTEM_TIME AS OF o.ts ON o.k = r.k";
        let out = text(
            &rows(
                &s,
                &format!(
                    "CREATE TABLE o (id INT, k INT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND);
                     CREATE TABLE r (k INT, rate INT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts,
                       PRIMARY KEY (k) NOT ENFORCED);
                     {query}"
                ),
            )
            .await,
        );
        assert!(
            out.contains("TemporalJoin: type=Inner, on=[k@1 = k@0], right column 2 AS OF left column 2, emit=on watermark"),
            "{out}"
        );
        assert!(out.contains("changelogMode=[I]"), "{out}");
        // BATCH: standard operators, no regular join that ignores AS OF.
        s.set("execution.runtime-mode", "batch").unwrap();
        let out = text(&rows(&s, query).await);
        assert!(out.contains("WindowAggr"), "{out}");
        assert!(out.contains("__tributary_valid_from = r.ts"), "{out}");
    }

    #[tokio::test]
    async fn streaming_returns_a_changelog_and_refuses_what_it_cannot_run() {
        let s = streaming_session();
        let r = s.sql("SELECT 1 AS one").await.unwrap();
        assert_eq!(r.mode().unwrap().mode, RuntimeMode::Streaming);
        assert_eq!(r.schema().field(0).name(), "op");
        assert!(text(&r.collect().await.unwrap()).contains("| +I | 1   |"));
        let e = s.sql("SELECT 1 ORDER BY 1").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotSupported);
        assert!(
            e.hint
                .unwrap()
                .contains("'execution.runtime-mode' = 'batch'")
        );
    }

    #[tokio::test]
    async fn unknown_table_points_at_the_name_and_suggests_one() {
        let s = Session::new();
        rows(&s, "CREATE TABLE flights (carrier STRING)").await;
        let e = s.sql("SELECT carrier\nFROM fligths").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Plan);
        assert_eq!(e.location, Some(Location { line: 2, column: 6 }));
        assert_eq!(e.hint.as_deref(), Some("did you mean 'flights'?"));
    }

    #[tokio::test]
    async fn unknown_column_suggests_the_nearest() {
        let s = Session::new();
        rows(
            &s,
            "CREATE TABLE flights (carrier STRING, dep_delay DOUBLE)",
        )
        .await;
        let e = s.sql("SELECT dep_dlay FROM flights").await.unwrap_err();
        assert!(e.message.contains("column 'dep_dlay' not found"), "{e}");
        assert_eq!(e.location, Some(Location { line: 1, column: 8 }));
        assert!(e.hint.unwrap().contains("dep_delay"));
    }

    #[tokio::test]
    async fn syntax_error_anywhere_runs_nothing() {
        let s = Session::new();
        let e = s.sql("CREATE TABLE t (a INT);\nSELEC 1").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Syntax);
        assert_eq!(e.location.map(|l| l.line), Some(2));
        assert!(s.table_names(false).unwrap().is_empty());
    }

    #[tokio::test]
    async fn set_passes_datafusion_keys_through_and_rejects_unknown_ones() {
        let s = Session::new();
        s.set("datafusion.execution.batch_size", "100").unwrap();
        assert_eq!(s.context().state().config().batch_size(), 100);
        let e = s.set("parallelism.defualt", "2").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(
            e.hint
                .unwrap()
                .contains("did you mean 'parallelism.default'")
        );
        s.set("parallelism.default", "3").unwrap();
        assert_eq!(s.context().state().config().target_partitions(), 3);
    }

    #[tokio::test]
    async fn skipped_malformed_rows_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, "a,b\n1,2\nzz,3\n4,5\n").unwrap();
        let s = Session::new();
        let sql = format!(
            "CREATE TABLE x (a INT, b INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv', 'csv.ignore-parse-errors' = 'true')",
            path.display()
        );
        rows(&s, &sql).await;
        let mut r = s.sql("SELECT SUM(a) AS s FROM x").await.unwrap();
        let mut batches = vec![];
        while let Some(b) = r.next().await {
            batches.push(b.unwrap());
        }
        assert!(text(&batches).contains("| 5 |"));
        assert_eq!(
            r.notices(),
            ["1 malformed row skipped in table 'x' ('csv.ignore-parse-errors' = 'true')"]
        );
    }
}

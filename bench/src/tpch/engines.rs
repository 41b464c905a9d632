//! The engines of the TPC-H comparison behind one call, [`Engine::run`]:
//! run one query text to its end and return the wall time and the answer.
//!
//! - Tributary BATCH: a `tributary_engine::Session` with a variant's
//!   settings, the tables declared with Tributary's DDL
//!   (`CREATE TABLE t WITH ('connector' = 'filesystem', 'format' = 'parquet', ...)`).
//! - Plain DataFusion: a `SessionContext` of the same DataFusion version with
//!   only `target_partitions` set and the same files registered with
//!   `register_parquet` — no Tributary layer.
//! - DuckDB: `bench/tpch/duckdb_worker.py`, a Python process (PyPI
//!   `duckdb`) that answers one query per JSON line, with views over the
//!   same files (`read_parquet`).
//!
//! Every engine reads the Parquet files in every query (no engine caches
//! tables in memory), plans the query, and materializes the whole result;
//! the time covers all of it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use tributary_engine::{RuntimeMode, Session};

use super::answers::{self, Rows};
use super::datagen::{TABLES, table_dir};

/// The outcome of one run of one query.
#[derive(Debug, Clone)]
pub struct Timed {
    /// Wall-clock seconds from submitting the SQL text to the last row.
    pub seconds: f64,
    /// The answer.
    pub rows: Rows,
}

/// One engine of the comparison.
pub enum Engine {
    /// Tributary BATCH with one variant's settings.
    Tributary {
        /// Name in tables and results (`tributary`, `tributary-pipelined`, ...).
        label: String,
        /// The session with the tables declared.
        session: Session,
    },
    /// Plain DataFusion.
    DataFusion {
        /// The context with the files registered.
        ctx: SessionContext,
    },
    /// DuckDB in a Python worker process.
    DuckDb(DuckDbWorker),
}

impl Engine {
    /// Tributary BATCH at `parallelism` with `settings` (any key `SET`
    /// takes) over the tables under `data`.
    ///
    /// # Errors
    /// A setting Tributary rejects (unknown key or bad value), or a table
    /// it cannot declare.
    pub async fn tributary(
        label: &str,
        data: &Path,
        parallelism: usize,
        settings: &[(String, String)],
    ) -> Result<Engine, String> {
        let mut builder = Session::builder()
            .runtime_mode(RuntimeMode::Batch)
            .parallelism(parallelism);
        for (k, v) in settings {
            builder = builder.config(k, v);
        }
        let session = builder
            .build()
            .map_err(|e| format!("{label}: settings {settings:?}: {e}"))?;
        for t in TABLES {
            let path = table_dir(data, t);
            let ddl = format!(
                "CREATE TABLE {t} WITH ('connector' = 'filesystem', 'path' = '{}/', 'format' = 'parquet')",
                path.display()
            );
            session
                .sql(&ddl)
                .await
                .map_err(|e| format!("{label}: {ddl}: {e}"))?
                .collect()
                .await
                .map_err(|e| format!("{label}: {ddl}: {e}"))?;
        }
        Ok(Engine::Tributary {
            label: label.to_string(),
            session,
        })
    }

    /// Plain DataFusion at `parallelism` (`target_partitions`) over the
    /// tables under `data`.
    ///
    /// # Errors
    /// A table DataFusion cannot register.
    pub async fn datafusion(data: &Path, parallelism: usize) -> Result<Engine, String> {
        let ctx = SessionContext::new_with_config(
            SessionConfig::new().with_target_partitions(parallelism),
        );
        for t in TABLES {
            let path = format!("{}/", table_dir(data, t).display());
            ctx.register_parquet(t, &path, ParquetReadOptions::default())
                .await
                .map_err(|e| format!("datafusion: register {t} at {path}: {e}"))?;
        }
        Ok(Engine::DataFusion { ctx })
    }

    /// The engine's name in tables and results.
    pub fn label(&self) -> &str {
        match self {
            Engine::Tributary { label, .. } => label,
            Engine::DataFusion { .. } => "datafusion",
            Engine::DuckDb(_) => "duckdb",
        }
    }

    /// Runs `sql` to its end.
    ///
    /// # Errors
    /// The engine's error, prefixed with its name.
    pub async fn run(&mut self, sql: &str) -> Result<Timed, String> {
        let label = self.label().to_string();
        let err = |e: &dyn std::fmt::Display| format!("{label}: {e}");
        let start = Instant::now();
        let batches = match self {
            Engine::Tributary { session, .. } => session
                .sql(sql)
                .await
                .map_err(|e| err(&e))?
                .collect()
                .await
                .map_err(|e| err(&e))?,
            Engine::DataFusion { ctx } => ctx
                .sql(sql)
                .await
                .map_err(|e| err(&e))?
                .collect()
                .await
                .map_err(|e| err(&e))?,
            Engine::DuckDb(worker) => return worker.run(sql).map_err(|e| err(&e)),
        };
        let seconds = start.elapsed().as_secs_f64();
        Ok(Timed {
            seconds,
            rows: answers::from_batches(&batches)?,
        })
    }
}

/// DuckDB in a Python process running `duckdb_worker.py`: one JSON line in
/// (`{"sql": ...}`), one JSON line out (`{"seconds": s, "rows": [[...]]}`
/// or `{"error": ...}`). The worker times the query itself (execute and
/// fetch), so the pipe's cost is outside the time.
pub struct DuckDbWorker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// DuckDB's version, as the worker reports it.
    pub version: String,
}

/// The worker script in this source tree.
pub fn default_duckdb_worker() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tpch/duckdb_worker.py")
}

impl DuckDbWorker {
    /// Starts `python script --data data --threads threads` and waits for
    /// its `{"ready": version}` line.
    ///
    /// # Errors
    /// The process cannot start, or it fails before it is ready (e.g. the
    /// `duckdb` package is missing: `pip install duckdb`).
    pub fn start(
        python: &str,
        script: &Path,
        data: &Path,
        threads: usize,
    ) -> Result<DuckDbWorker, String> {
        let mut child = Command::new(python)
            .arg(script)
            .arg("--data")
            .arg(data)
            .arg("--threads")
            .arg(threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("duckdb: cannot start {python} {}: {e}", script.display()))?;
        let stdin = child.stdin.take().ok_or("duckdb: no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("duckdb: no stdout")?);
        let mut worker = DuckDbWorker {
            child,
            stdin,
            stdout,
            version: String::new(),
        };
        let ready = worker.read_line().map_err(|e| {
            format!("duckdb: the worker did not start ({e}); is the `duckdb` package installed (pip install duckdb)?")
        })?;
        worker.version = ready
            .get("ready")
            .and_then(|v| v.as_str())
            .ok_or(format!("duckdb: unexpected first line {ready}"))?
            .to_string();
        Ok(worker)
    }

    fn read_line(&mut self) -> Result<serde_json::Value, String> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .map_err(|e| format!("reading the worker: {e}"))?;
        if n == 0 {
            return Err("the worker exited".into());
        }
        serde_json::from_str(&line).map_err(|e| format!("worker sent {line:?}: {e}"))
    }

    /// Runs one query in DuckDB.
    ///
    /// # Errors
    /// DuckDB's error, or a broken worker.
    pub fn run(&mut self, sql: &str) -> Result<Timed, String> {
        let request = serde_json::json!({ "sql": sql });
        writeln!(self.stdin, "{request}")
            .and_then(|_| self.stdin.flush())
            .map_err(|e| format!("writing to the worker: {e}"))?;
        let reply = self.read_line()?;
        if let Some(e) = reply.get("error") {
            return Err(e.as_str().unwrap_or("error").to_string());
        }
        let seconds = reply
            .get("seconds")
            .and_then(|s| s.as_f64())
            .ok_or(format!("no seconds in the reply {reply}"))?;
        let rows = answers::from_json(reply.get("rows").unwrap_or(&serde_json::Value::Null))?;
        Ok(Timed { seconds, rows })
    }
}

impl Drop for DuckDbWorker {
    fn drop(&mut self) {
        // Closing stdin ends the worker's loop.
        let _ = self.stdin.flush();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

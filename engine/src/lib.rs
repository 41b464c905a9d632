//! Tributary's engine: the [`Session`] API that runs SQL and returns Arrow
//! record batch streams.
//!
//! ```
//! use tributary_engine::Session;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> tributary_engine::Result<()> {
//! let session = Session::new();
//! let batches = session
//!     .sql(
//!         "CREATE TABLE trips (city STRING, km DOUBLE);
//!          INSERT INTO trips VALUES ('Lyon', 12.5), ('Lyon', 7.5), ('Nantes', 3.0);
//!          SELECT city, SUM(km) AS km FROM trips GROUP BY city ORDER BY city",
//!     )
//!     .await?
//!     .collect()
//!     .await?;
//! let text = arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
//! assert!(text.contains("| Lyon   | 20.0 |"));
//! assert!(text.contains("| Nantes | 3.0  |"));
//! # Ok(())
//! # }
//! ```
//!
//! A [`QueryResult`] is a `Stream<Item = Result<RecordBatch>>` with a
//! [`schema`](QueryResult::schema); dropping it cancels the query. Statements
//! take Flink's SQL forms where Flink has one (`CREATE TABLE ... WITH
//! ('connector' = ...)`, `SET 'key' = 'value'`) and DataFusion's elsewhere.
//!
//! Runtime modes (`execution.runtime-mode`): `batch`, and `automatic` (the
//! default), which picks BATCH when every source is bounded. `streaming` is
//! refused with a clear error until the STREAMING runtime lands.

pub mod batch;
pub mod changelog;
pub mod functions;
mod hints;
mod result;
mod session;
pub mod session_window;
pub mod streaming;
mod table_declaration;
mod to_char;
pub mod window_assign;

pub use result::QueryResult;
pub use session::{DEFAULT_CATALOG, DEFAULT_DATABASE, Session, SessionBuilder};
pub use tributary_planner::{
    Error, ErrorKind, Location, ParsedStatement, ResolvedMode, Result, RuntimeMode, Statement,
};

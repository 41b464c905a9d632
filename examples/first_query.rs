//! A first query from Rust: declare the flight tables, run an aggregate and
//! print the result.
//!
//! Run from the repository root:
//! `cargo run -p tributary-engine --example first_query`

use futures::StreamExt;
use tributary_engine::Session;

#[tokio::main]
async fn main() -> Result<(), tributary_engine::Error> {
    let session = Session::new();
    // Statements in one text run in order.
    session
        .sql(
            &std::fs::read_to_string("examples/flights_tables.sql")
                .expect("run from the repository root"),
        )
        .await?;

    let mut result = session
        .sql(
            "SELECT carrier, COUNT(*) AS flights, ROUND(AVG(arr_delay), 2) AS avg_arr_delay_min
             FROM flights GROUP BY carrier ORDER BY flights DESC LIMIT 5",
        )
        .await?;
    println!(
        "schema: {:?}",
        result
            .schema()
            .fields()
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
    );
    // The result is a stream of Arrow record batches.
    let mut batches = Vec::new();
    while let Some(batch) = result.next().await {
        batches.push(batch?);
    }
    println!(
        "{}",
        arrow::util::pretty::pretty_format_batches(&batches).expect("printable")
    );
    Ok(())
}

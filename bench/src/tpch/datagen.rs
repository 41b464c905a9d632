//! TPC-H data as Parquet, generated in-process by `tpchgen` — the
//! generator that `tpchgen-cli` runs — through `tpchgen-arrow`'s Arrow
//! batches, written with the `parquet` crate (Snappy-compressed). The rows
//! are the generator's, so they are the rows `tpchgen-cli --scale-factor SF`
//! generates (not checked byte for byte against its files: its writer's
//! row groups and compression may differ).
//!
//! Layout: `<dir>/<table>/part-<i>.parquet`, each table split into `parts`
//! files (generated on that many threads), plus `<dir>/.complete` holding
//! the scale factor, so a finished directory is reused and a half-written
//! one is not.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

/// The eight TPC-H tables, in the order they are generated.
pub const TABLES: [&str; 8] = [
    "nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem",
];

/// One part of one table as an iterator of Arrow batches.
type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

fn batches(table: &str, sf: f64, part: i32, parts: i32) -> Result<(SchemaRef, Batches), String> {
    Ok(match table {
        "nation" => (
            NationArrow::schema_ref(),
            Box::new(NationArrow::new(NationGenerator::new(sf, part, parts))),
        ),
        "region" => (
            RegionArrow::schema_ref(),
            Box::new(RegionArrow::new(RegionGenerator::new(sf, part, parts))),
        ),
        "part" => (
            PartArrow::schema_ref(),
            Box::new(PartArrow::new(PartGenerator::new(sf, part, parts))),
        ),
        "supplier" => (
            SupplierArrow::schema_ref(),
            Box::new(SupplierArrow::new(SupplierGenerator::new(sf, part, parts))),
        ),
        "partsupp" => (
            PartSuppArrow::schema_ref(),
            Box::new(PartSuppArrow::new(PartSuppGenerator::new(sf, part, parts))),
        ),
        "customer" => (
            CustomerArrow::schema_ref(),
            Box::new(CustomerArrow::new(CustomerGenerator::new(sf, part, parts))),
        ),
        "orders" => (
            OrderArrow::schema_ref(),
            Box::new(OrderArrow::new(OrderGenerator::new(sf, part, parts))),
        ),
        "lineitem" => (
            LineItemArrow::schema_ref(),
            Box::new(LineItemArrow::new(LineItemGenerator::new(sf, part, parts))),
        ),
        other => return Err(format!("unknown TPC-H table {other}")),
    })
}

/// Rows written per table, as [`generate`] reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The directory holding one subdirectory per table.
    pub dir: PathBuf,
    /// `(table, rows)` in [`TABLES`] order.
    pub rows: Vec<(String, u64)>,
}

/// The path of one table's directory under `dir`.
pub fn table_dir(dir: &Path, table: &str) -> PathBuf {
    dir.join(table)
}

/// Whether `dir` holds a complete data set of scale factor `sf`.
pub fn is_complete(dir: &Path, sf: f64) -> bool {
    std::fs::read_to_string(dir.join(".complete"))
        .map(|s| s.trim() == sf.to_string())
        .unwrap_or(false)
}

/// Generates the eight tables at scale factor `sf` into `dir` (created;
/// any earlier content of the table directories is removed), each table as
/// `parts` Parquet files written by `parts` threads.
///
/// # Errors
/// A scale factor that is not positive, `parts` of 0, or an I/O or Parquet
/// error (with the file's path).
pub fn generate(dir: &Path, sf: f64, parts: usize) -> Result<Generated, String> {
    if !(sf > 0.0 && sf.is_finite()) {
        return Err(format!(
            "scale factor {sf}: must be a positive number, e.g. 1 or 0.01"
        ));
    }
    if parts == 0 {
        return Err("parts: must be at least 1".into());
    }
    let _ = std::fs::remove_file(dir.join(".complete"));
    let mut rows = Vec::new();
    for table in TABLES {
        let tdir = table_dir(dir, table);
        if tdir.exists() {
            std::fs::remove_dir_all(&tdir).map_err(|e| format!("{}: {e}", tdir.display()))?;
        }
        std::fs::create_dir_all(&tdir).map_err(|e| format!("{}: {e}", tdir.display()))?;
        // nation and region are fixed tiny tables: one file.
        let n = if matches!(table, "nation" | "region") {
            1
        } else {
            parts
        };
        let written: Result<Vec<u64>, String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .map(|i| {
                    let path = tdir.join(format!("part-{i}.parquet"));
                    s.spawn(move || write_part(table, sf, i as i32 + 1, n as i32, &path))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| format!("{table}: generator thread panicked"))?
                })
                .collect()
        });
        rows.push((table.to_string(), written?.iter().sum()));
    }
    std::fs::write(dir.join(".complete"), sf.to_string())
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(Generated {
        dir: dir.to_path_buf(),
        rows,
    })
}

/// Writes part `part` (1-based) of `parts` of `table` to `path`; returns its rows.
fn write_part(table: &str, sf: f64, part: i32, parts: i32, path: &Path) -> Result<u64, String> {
    let at = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let (schema, batches) = batches(table, sf, part, parts)?;
    let file = File::create(path).map_err(|e| at(&e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer =
        ArrowWriter::try_new(file, Arc::clone(&schema), Some(props)).map_err(|e| at(&e))?;
    let mut rows = 0;
    for batch in batches {
        let batch = batch.map_err(|e| at(&e))?;
        rows += batch.num_rows() as u64;
        writer.write(&batch).map_err(|e| at(&e))?;
    }
    writer.close().map_err(|e| at(&e))?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_the_eight_tables_with_the_spec_row_counts() {
        let dir = tempfile::tempdir().unwrap();
        let g = generate(dir.path(), 0.01, 2).unwrap();
        let rows: std::collections::HashMap<_, _> = g.rows.into_iter().collect();
        // TPC-H's cardinalities at SF 0.01 (lineitem varies around 60,000).
        assert_eq!(rows["nation"], 25);
        assert_eq!(rows["region"], 5);
        assert_eq!(rows["part"], 2_000);
        assert_eq!(rows["supplier"], 100);
        assert_eq!(rows["partsupp"], 8_000);
        assert_eq!(rows["customer"], 1_500);
        assert_eq!(rows["orders"], 15_000);
        assert!(
            (55_000..65_000).contains(&rows["lineitem"]),
            "{}",
            rows["lineitem"]
        );
        assert!(is_complete(dir.path(), 0.01));
        assert!(!is_complete(dir.path(), 1.0));
        assert!(dir.path().join("lineitem/part-1.parquet").exists());
    }

    #[test]
    fn rejects_a_bad_scale_factor() {
        let dir = tempfile::tempdir().unwrap();
        let e = generate(dir.path(), 0.0, 1).unwrap_err();
        assert!(e.contains("positive"), "{e}");
    }
}

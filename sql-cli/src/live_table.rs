//! The `table` result mode of a STREAMING result: the folded table, redrawn
//! in place as the changelog arrives.
//!
//! Why: a changelog shows how a result changes; often one wants the result
//! itself, as Flink's SQL client shows it in its `table` result mode. The
//! table is kept with [`FoldedTable`] (incrementally), and on a terminal
//! redrawn after each batch: the previous drawing is erased by moving the
//! cursor up over its lines and clearing to the end of the screen
//! (`ESC[<n>A`, `ESC[J`), with line wrap off while drawing (`ESC[?7l`) so a
//! line wider than the terminal is cut instead of taking two lines the
//! count would miss. Redraws are at most [`REDRAW_INTERVAL`] apart (a fast
//! stream would otherwise spend its time redrawing); a batch that arrives
//! sooner is drawn when the interval is up. A drawing shows at most
//! [`MAX_ROWS`] rows (fewer on a short terminal, so the cursor can move back
//! over all of it) and a status line:
//!
//! ```text
//! +---------+----------+
//! | carrier | count(*) |
//! +---------+----------+
//! | UA      | 58665    |
//! +---------+----------+
//! 1 row, 1268 changes received (0.106 sec); Ctrl-C stops the query
//! ```
//!
//! When the stream ends, the last drawing is replaced by the whole table,
//! as a BATCH table, and `16 rows in set, folded from 1268 changes (0.106
//! sec)`. When stdout is not a terminal, only that final table is printed,
//! without escape codes (also when Ctrl-C stops the query; on a terminal
//! the last drawing stays).

use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::folded::FoldedTable;
use crate::output::{PrintError, pretty_table};

/// The most rows a live drawing shows.
pub const MAX_ROWS: usize = 50;
/// The least time between two redraws.
pub const REDRAW_INTERVAL: Duration = Duration::from_millis(100);
/// Lines of a drawing besides its rows: three borders, the header, the
/// status line, and one for the line the cursor is left on.
const FRAME_LINES: usize = 6;

/// A STREAMING result shown as its folded table.
pub struct LiveTable {
    table: FoldedTable,
    started: Instant,
    /// Whether to redraw in place (stdout is a terminal).
    terminal: bool,
    max_rows: usize,
    /// Lines of the drawing on screen, to erase before the next.
    drawn_lines: usize,
    last_draw: Option<Instant>,
    /// Whether the table changed since it was last drawn.
    stale: bool,
}

impl LiveTable {
    /// A live table for a changelog of `schema`, started at `started`;
    /// `terminal` says whether to redraw in place, and `terminal_rows` is
    /// the terminal's height, if known.
    ///
    /// # Errors
    /// `schema` is not a changelog's.
    pub fn new(
        schema: &SchemaRef,
        started: Instant,
        terminal: bool,
        terminal_rows: Option<usize>,
    ) -> tributary_engine::Result<Self> {
        let max_rows = terminal_rows.map_or(MAX_ROWS, |rows| {
            rows.saturating_sub(FRAME_LINES).clamp(1, MAX_ROWS)
        });
        Ok(Self {
            table: FoldedTable::new(schema)?,
            started,
            terminal,
            max_rows,
            drawn_lines: 0,
            last_draw: None,
            // On a terminal, show the (empty) table at once.
            stale: terminal,
        })
    }

    /// Applies a changelog batch.
    ///
    /// # Errors
    /// An invalid changelog (see [`FoldedTable::apply`]).
    pub fn apply(&mut self, batch: &RecordBatch) -> Result<(), PrintError> {
        self.table.apply(batch).map_err(PrintError::Query)?;
        self.stale = self.terminal;
        Ok(())
    }

    /// When the pending redraw is due; `None` if none is pending (or not on
    /// a terminal).
    pub fn redraw_at(&self) -> Option<Instant> {
        if !self.stale {
            return None;
        }
        Some(self.last_draw.map_or(self.started, |t| t + REDRAW_INTERVAL))
    }

    /// The text that erases the current drawing and draws the table as it
    /// is now.
    ///
    /// # Errors
    /// Arrow cannot format a value.
    pub fn redraw(&mut self) -> Result<String, PrintError> {
        let shown = self.table.table(self.max_rows).map_err(PrintError::Query)?;
        let mut drawing = pretty_table(&shown)?;
        drawing.push('\n');
        let (rows, changes) = (self.table.rows(), self.table.changes());
        let secs = self.started.elapsed().as_secs_f64();
        let count = if (shown.num_rows() as u64) < rows {
            format!("{} of {rows} rows shown", shown.num_rows())
        } else {
            plural(rows, "row")
        };
        drawing.push_str(&format!(
            "{count}, {} received ({secs:.3} sec); Ctrl-C stops the query\n",
            plural(changes, "change")
        ));
        let text = format!("\x1b[?7l{}{drawing}\x1b[?7h", self.erase());
        self.drawn_lines = drawing.lines().count();
        self.last_draw = Some(Instant::now());
        self.stale = false;
        Ok(text)
    }

    /// The text that ends the view: the current drawing erased, the whole
    /// table, and the row count.
    ///
    /// # Errors
    /// Arrow cannot format a value.
    pub fn finish(&mut self) -> Result<String, PrintError> {
        let table = self.table.table(usize::MAX).map_err(PrintError::Query)?;
        let mut text = self.erase();
        if table.num_columns() > 0 {
            text.push_str(&pretty_table(&table)?);
            text.push('\n');
        }
        let rows = self.table.rows();
        let secs = self.started.elapsed().as_secs_f64();
        let in_set = if rows == 1 {
            "row in set"
        } else {
            "rows in set"
        };
        text.push_str(&format!(
            "{rows} {in_set}, folded from {} ({secs:.3} sec)\n",
            plural(self.table.changes(), "change")
        ));
        self.drawn_lines = 0;
        self.stale = false;
        Ok(text)
    }

    /// The text to print when Ctrl-C stopped the query: on a terminal the
    /// latest changes drawn (the drawing stays), else the final table.
    ///
    /// # Errors
    /// Arrow cannot format a value.
    pub fn interrupted(&mut self) -> Result<String, PrintError> {
        if !self.terminal {
            return self.finish();
        }
        if self.stale {
            self.redraw()
        } else {
            Ok(String::new())
        }
    }

    /// Escape codes that erase the drawing on screen (none if there is
    /// none): up to its first line, then clear to the end of the screen.
    fn erase(&self) -> String {
        if self.drawn_lines == 0 {
            String::new()
        } else {
            format!("\x1b[{}A\r\x1b[J", self.drawn_lines)
        }
    }
}

/// `1 row`, `2 rows`.
fn plural(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// The terminal's height in lines, if stdout is a terminal. (rustyline
/// already knows how to ask, on every platform; its editor does nothing to
/// the terminal until it reads a line.)
pub fn terminal_rows() -> Option<usize> {
    let mut editor = rustyline::DefaultEditor::new().ok()?;
    editor.dimensions().map(|(_, rows)| usize::from(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("op", DataType::Utf8, false),
            Field::new("k", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]))
    }

    fn batch(rows: &[(&str, &str, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap()
    }

    #[test]
    fn without_a_terminal_only_the_final_table() {
        let mut live = LiveTable::new(&schema(), Instant::now(), false, None).unwrap();
        assert_eq!(live.redraw_at(), None);
        live.apply(&batch(&[("+I", "a", 1), ("+I", "b", 3)]))
            .unwrap();
        live.apply(&batch(&[("-U", "a", 1), ("+U", "a", 3)]))
            .unwrap();
        assert_eq!(live.redraw_at(), None, "no redraws");
        let text = live.finish().unwrap();
        assert!(!text.contains('\x1b'), "{text:?}");
        let (table, last) = text.trim_end().rsplit_once('\n').unwrap();
        assert_eq!(
            table,
            "+---+---+\n| k | n |\n+---+---+\n| a | 3 |\n| b | 3 |\n+---+---+"
        );
        assert!(
            last.starts_with("2 rows in set, folded from 4 changes (") && last.ends_with(" sec)"),
            "{last}"
        );
    }

    #[test]
    fn an_empty_result_keeps_its_header() {
        let mut live = LiveTable::new(&schema(), Instant::now(), false, None).unwrap();
        let text = live.finish().unwrap();
        assert!(text.starts_with(
            "+---+---+\n| k | n |\n+---+---+\n+---+---+\n0 rows in set, folded from 0 changes ("
        ));
    }

    #[test]
    fn on_a_terminal_each_drawing_erases_the_last() {
        let mut live = LiveTable::new(&schema(), Instant::now(), true, None).unwrap();
        assert!(
            live.redraw_at().is_some(),
            "the empty table is drawn at once"
        );
        let first = live.redraw().unwrap();
        assert!(
            first.starts_with("\x1b[?7l+---+---+\n| k | n |\n"),
            "{first:?}"
        );
        assert!(
            first.contains("\n0 rows, 0 changes received ("),
            "{first:?}"
        );
        assert_eq!(live.redraw_at(), None);
        live.apply(&batch(&[("+I", "a", 1)])).unwrap();
        let due = live.redraw_at().unwrap();
        assert!(due >= live.last_draw.unwrap() + REDRAW_INTERVAL);
        let second = live.redraw().unwrap();
        // Four lines of the empty table and its status line.
        assert!(
            second.starts_with("\x1b[?7l\x1b[5A\r\x1b[J+---+---+\n"),
            "{second:?}"
        );
        assert!(
            second.contains("| a | 1 |\n+---+---+\n1 row, 1 change received ("),
            "{second:?}"
        );
        assert!(
            second.ends_with("Ctrl-C stops the query\n\x1b[?7h"),
            "{second:?}"
        );
        let last = live.finish().unwrap();
        assert!(last.starts_with("\x1b[6A\r\x1b[J+---+---+\n"), "{last:?}");
        assert!(
            last.contains("1 row in set, folded from 1 change ("),
            "{last:?}"
        );
    }

    #[test]
    fn a_drawing_shows_at_most_the_rows_that_fit() {
        let mut live = LiveTable::new(&schema(), Instant::now(), true, Some(9)).unwrap();
        live.apply(&batch(&[
            ("+I", "a", 1),
            ("+I", "b", 2),
            ("+I", "c", 3),
            ("+I", "d", 4),
        ]))
        .unwrap();
        let drawing = live.redraw().unwrap();
        assert!(
            drawing.contains("| b | 2 |\n| c | 3 |\n+---+---+\n3 of 4 rows shown, 4 changes"),
            "{drawing:?}"
        );
        assert!(!drawing.contains("| d |"), "{drawing:?}");
        assert!(
            live.finish().unwrap().contains("| d | 4 |"),
            "the final table has every row"
        );
        let big = LiveTable::new(&schema(), Instant::now(), true, Some(1000)).unwrap();
        assert_eq!(big.max_rows, MAX_ROWS);
    }

    #[test]
    fn ctrl_c_keeps_the_drawing_on_a_terminal_and_prints_the_table_otherwise() {
        let mut live = LiveTable::new(&schema(), Instant::now(), true, None).unwrap();
        live.redraw().unwrap();
        assert_eq!(live.interrupted().unwrap(), "");
        live.apply(&batch(&[("+I", "a", 1)])).unwrap();
        assert!(
            live.interrupted().unwrap().contains("| a | 1 |"),
            "pending changes are drawn"
        );
        let mut piped = LiveTable::new(&schema(), Instant::now(), false, None).unwrap();
        piped.apply(&batch(&[("+I", "a", 1)])).unwrap();
        assert!(
            piped
                .interrupted()
                .unwrap()
                .contains("| a | 1 |\n+---+---+\n1 row in set")
        );
    }
}

//! Running a piece of SQL text (a `-c` argument, a `-f`/`-i` file, a REPL
//! entry) statement by statement, stopping at the first error.
//!
//! The text is parsed as a whole, so every error location is relative to it
//! and the error display can show the offending line. When the text has a
//! syntax error, the complete statements before the error still run first,
//! as they would in a SQL client that sends one statement at a time: "the
//! statements before the error have run" holds for syntax errors too.
//!
//! Each statement, from planning to its last printed row, races Ctrl-C:
//! when Ctrl-C wins, the statement's future is dropped, which drops the
//! result stream and so cancels the query, and the runner prints `Query
//! cancelled.`. The race covers the printing loop too, so Ctrl-C stops a
//! STREAMING query that prints as it goes (it waits for the next batch, or
//! for the next redraw, between prints); the printer then ends the view it
//! was printing (a tableau's total line).

use std::future::Future;
use std::time::Instant;

use tributary_engine::{QueryResult, Result, Session};

use crate::error_display::{Origin, render, render_plain};
use crate::output::{PrintError, Printer};
use crate::sql_text::{byte_offset, statements_end_before};

/// How running a text ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every statement ran.
    Success,
    /// A statement failed; the error was printed.
    Failed,
    /// The user pressed Ctrl-C while a statement ran.
    Cancelled,
}

/// Runs SQL text on a session and prints the results.
pub struct Runner {
    session: Session,
    printer: Printer,
    cancel_on_ctrl_c: bool,
}

impl Runner {
    /// A runner on `session` printing with `printer`; when
    /// `cancel_on_ctrl_c`, Ctrl-C cancels the running statement (the binary
    /// always sets it; tests leave it off so no signal handler is installed).
    pub fn new(session: Session, printer: Printer, cancel_on_ctrl_c: bool) -> Self {
        Self {
            session,
            printer,
            cancel_on_ctrl_c,
        }
    }

    /// Prints a one-line error that has no SQL text behind it.
    pub fn report_plain(&mut self, message: impl std::fmt::Display) {
        self.printer.message(&render_plain(message));
    }

    /// Prints `error` with the line of `text` it points at.
    pub fn report(&mut self, error: &tributary_engine::Error, text: &str, origin: &Origin) {
        self.printer.message(&render(error, Some(text), origin));
    }

    /// Runs every statement of `text` in order, printing each result; stops
    /// at the first error (printed to the error stream) or at Ctrl-C.
    pub async fn run(&mut self, text: &str, origin: &Origin) -> Outcome {
        let (statements, syntax_error) = match self.session.parse(text) {
            Ok(statements) => (statements, None),
            Err(error) => {
                // Run the complete statements before the syntax error.
                let before = error
                    .location
                    .and_then(|l| byte_offset(text, l))
                    .and_then(|offset| statements_end_before(text, offset));
                let statements = before
                    .and_then(|end| self.session.parse(&text[..end]).ok())
                    .unwrap_or_default();
                (statements, Some(error))
            }
        };
        for statement in &statements {
            let session = self.session.clone();
            let outcome = self
                .run_statement(session.execute(statement), text, origin)
                .await;
            if outcome != Outcome::Success {
                return outcome;
            }
        }
        match syntax_error {
            Some(error) => {
                self.report(&error, text, origin);
                Outcome::Failed
            }
            None => Outcome::Success,
        }
    }

    /// Runs one statement (`execute` plans and starts it) and prints its
    /// result, unless Ctrl-C comes first. `text`
    /// is the whole text the statement came from, for error locations.
    async fn run_statement(
        &mut self,
        execute: impl Future<Output = Result<QueryResult>>,
        text: &str,
        origin: &Origin,
    ) -> Outcome {
        let started = Instant::now();
        let printer = &mut self.printer;
        let session = &self.session;
        let work = async move {
            let result = execute.await.map_err(PrintError::Query)?;
            let result_mode = session.tributary_config().result_mode;
            printer.print(result, started, result_mode).await
        };
        // `biased`: the Ctrl-C future is polled first, so its handler is in
        // place before the statement can print a row; otherwise a Ctrl-C
        // right after the first row could meet the default action and end
        // the shell without "Query cancelled." (seen under load).
        let finished = tokio::select! {
            biased;
            () = interrupted(self.cancel_on_ctrl_c) => None,
            r = work => Some(r),
        };
        match finished {
            Some(Ok(())) => Outcome::Success,
            Some(Err(PrintError::Query(error))) => {
                self.report(&error, text, origin);
                Outcome::Failed
            }
            // Whoever closed our stdout (`| head`) does not want more, nor
            // an error message about it.
            Some(Err(PrintError::Output(e))) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                Outcome::Failed
            }
            Some(Err(PrintError::Output(e))) => {
                self.report_plain(format_args!("cannot write the output: {e}"));
                Outcome::Failed
            }
            None => {
                self.printer.interrupted();
                self.printer.message("\nQuery cancelled.\n");
                Outcome::Cancelled
            }
        }
    }
}

/// Completes when the user presses Ctrl-C, if `enabled`; never otherwise
/// (nor when the signal handler cannot be installed).
async fn interrupted(enabled: bool) {
    if enabled && tokio::signal::ctrl_c().await.is_ok() {
        return;
    }
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;
    use crate::output::test_support::{SharedBuf, printer};

    fn runner(format: Format) -> (Runner, SharedBuf, SharedBuf) {
        let (p, out, err) = printer(format);
        (Runner::new(Session::new(), p, false), out, err)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_every_statement_in_order() {
        let (mut r, out, err) = runner(Format::Csv);
        let text =
            "CREATE TABLE t (a INT); INSERT INTO t VALUES (1), (2);\nSELECT a FROM t ORDER BY a;";
        assert_eq!(r.run(text, &Origin::Command).await, Outcome::Success);
        assert_eq!(out.text(), "a\n1\n2\n");
        assert_eq!(err.text(), "Table 't' created.\n2 rows inserted.\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stops_at_the_first_error_and_shows_where() {
        let (mut r, out, err) = runner(Format::Csv);
        let text = "CREATE TABLE flights (a INT);\nSELECT * FROM fligths;\nSELECT 1 AS never;";
        assert_eq!(
            r.run(text, &Origin::File("q.sql".into())).await,
            Outcome::Failed
        );
        assert_eq!(out.text(), "");
        let err = err.text();
        assert!(
            err.starts_with(
                "Table 'flights' created.\nError: planning error: table 'fligths' not found\n"
            ),
            "{err}"
        );
        assert!(
            err.contains(" --> q.sql:2:15\n 2 | SELECT * FROM fligths;\n   |               ^\n"),
            "{err}"
        );
        assert!(err.contains("hint: did you mean 'flights'?"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn statements_before_a_syntax_error_run() {
        let (mut r, out, err) = runner(Format::Csv);
        let text = "SELECT 1 AS one;\nSELEC 2;";
        assert_eq!(r.run(text, &Origin::Command).await, Outcome::Failed);
        assert_eq!(out.text(), "one\n1\n");
        let err = err.text();
        assert!(err.starts_with("Error: syntax error: "), "{err}");
        assert!(
            err.contains(" --> line 2, column 1\n 2 | SELEC 2;\n   | ^\n"),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blank_text_does_nothing() {
        let (mut r, out, err) = runner(Format::Table);
        assert_eq!(
            r.run("  -- nothing\n", &Origin::Repl).await,
            Outcome::Success
        );
        assert_eq!((out.text(), err.text()), (String::new(), String::new()));
    }
}

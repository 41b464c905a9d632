//! The interactive loop: read lines until a statement ends with `;`, run it,
//! print the result, and again.
//!
//! Lines come from a [`LineReader`]: rustyline in the binary (prompts,
//! editing, history in `<data dir>/tributary/history`, Tab completion), a
//! scripted list in tests. The loop keeps its own buffer rather than a
//! rustyline `Validator` so the continuation prompt (`        -> `) shows on
//! every line after the first. `readline` blocks, so the loop runs on the
//! main thread and enters the tokio runtime (`block_on`) only to run a
//! statement; the runtime's worker threads execute the query meanwhile.
//!
//! Keys: Ctrl-C at the prompt drops the statement being typed; Ctrl-C while
//! a statement runs cancels it (see the runner); Ctrl-D, `quit` or `exit`
//! leave.

use std::path::PathBuf;

use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{CompletionType, Config};
use tokio::runtime::Runtime;
use tributary_engine::Session;

use crate::completion::SqlHelper;
use crate::error_display::Origin;
use crate::runner::Runner;
use crate::sql_text::{is_blank, is_complete};

/// The prompt for the first line of a statement.
pub const PROMPT: &str = "tributary> ";
/// The prompt for the following lines.
pub const CONTINUATION_PROMPT: &str = "        -> ";

/// What a [`LineReader`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A line (or, recalled from history, several), without its newline.
    Line(String),
    /// Ctrl-C.
    Interrupted,
    /// Ctrl-D, or the end of the input.
    Eof,
}

/// A source of input lines.
pub trait LineReader {
    /// Shows `prompt` and reads a line.
    ///
    /// # Errors
    /// The terminal failed; the REPL ends.
    fn read_line(&mut self, prompt: &str) -> Result<Input, String>;

    /// Records a complete statement in the history.
    fn add_history(&mut self, entry: &str);
}

/// The rustyline editor with SQL completion and a persistent history.
pub struct Editor {
    editor: rustyline::Editor<SqlHelper, DefaultHistory>,
    history: Option<PathBuf>,
}

impl Editor {
    /// An editor completing `session`'s tables, with the history of earlier
    /// sessions loaded (if there is one).
    ///
    /// # Errors
    /// The terminal cannot be set up.
    pub fn new(session: Session) -> rustyline::Result<Self> {
        let config = Config::builder()
            .auto_add_history(false)
            .completion_type(CompletionType::List)
            .max_history_size(10_000)?
            .history_ignore_dups(true)?
            .build();
        let mut editor = rustyline::Editor::with_config(config)?;
        editor.set_helper(Some(SqlHelper::new(session)));
        let history = history_path();
        if let Some(path) = &history {
            // No history yet is the normal first run.
            let _ = editor.load_history(path);
        }
        Ok(Self { editor, history })
    }
}

/// `<data dir>/tributary/history`, creating the directory; `None` when there
/// is no data directory or it cannot be created.
fn history_path() -> Option<PathBuf> {
    let dir = dirs::data_dir()?.join("tributary");
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir.join("history"))
}

impl LineReader for Editor {
    fn read_line(&mut self, prompt: &str) -> Result<Input, String> {
        match self.editor.readline(prompt) {
            Ok(line) => Ok(Input::Line(line)),
            Err(ReadlineError::Interrupted) => Ok(Input::Interrupted),
            Err(ReadlineError::Eof) => Ok(Input::Eof),
            Err(e) => Err(e.to_string()),
        }
    }

    fn add_history(&mut self, entry: &str) {
        // History is a convenience: failing to keep it must not stop the shell.
        let _ = self.editor.add_history_entry(entry);
        if let Some(path) = &self.history {
            let _ = self.editor.append_history(path);
        }
    }
}

/// Whether `line` asks to leave: `quit` or `exit`, with or without `;`.
pub fn is_exit_command(line: &str) -> bool {
    let word = line.trim().trim_end_matches(';').trim_end();
    word.eq_ignore_ascii_case("quit") || word.eq_ignore_ascii_case("exit")
}

/// Reads and runs statements until the user leaves.
pub fn run(runtime: &Runtime, runner: &mut Runner, reader: &mut dyn LineReader) {
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            PROMPT
        } else {
            CONTINUATION_PROMPT
        };
        let line = match reader.read_line(prompt) {
            Ok(Input::Line(line)) => line,
            Ok(Input::Interrupted) => {
                buffer.clear();
                continue;
            }
            Ok(Input::Eof) => break,
            Err(e) => {
                runner.report_plain(format_args!("cannot read the input: {e}"));
                break;
            }
        };
        if buffer.is_empty() && is_exit_command(&line) {
            break;
        }
        if !buffer.is_empty() {
            buffer.push('\n');
        }
        buffer.push_str(&line);
        if is_blank(&buffer) {
            buffer.clear();
        } else if is_complete(&buffer) {
            reader.add_history(&buffer);
            runtime.block_on(runner.run(&buffer, &Origin::Repl));
            buffer.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;
    use crate::output::test_support::printer;

    /// Plays back inputs and records prompts and history.
    struct Script {
        inputs: std::vec::IntoIter<Input>,
        prompts: Vec<String>,
        history: Vec<String>,
    }

    impl Script {
        fn new(inputs: Vec<Input>) -> Self {
            Self {
                inputs: inputs.into_iter(),
                prompts: vec![],
                history: vec![],
            }
        }
    }

    impl LineReader for Script {
        fn read_line(&mut self, prompt: &str) -> Result<Input, String> {
            self.prompts.push(prompt.to_string());
            Ok(self.inputs.next().unwrap_or(Input::Eof))
        }
        fn add_history(&mut self, entry: &str) {
            self.history.push(entry.to_string());
        }
    }

    fn line(s: &str) -> Input {
        Input::Line(s.to_string())
    }

    fn play(inputs: Vec<Input>) -> (Script, String, String) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (p, out, err) = printer(Format::Csv);
        let mut runner = Runner::new(Session::new(), p, false);
        let mut script = Script::new(inputs);
        run(&runtime, &mut runner, &mut script);
        (script, out.text(), err.text())
    }

    #[test]
    fn statements_span_lines_until_a_semicolon() {
        let (script, out, _) = play(vec![
            line("SELECT 1"),
            line("  AS one"),
            line(";"),
            line("SELECT 2 AS two;"),
        ]);
        assert_eq!(out, "one\n1\ntwo\n2\n");
        assert_eq!(
            script.prompts,
            [
                PROMPT,
                CONTINUATION_PROMPT,
                CONTINUATION_PROMPT,
                PROMPT,
                PROMPT
            ]
        );
        assert_eq!(
            script.history,
            ["SELECT 1\n  AS one\n;", "SELECT 2 AS two;"]
        );
    }

    #[test]
    fn ctrl_c_at_the_prompt_drops_the_typed_statement() {
        let (script, out, _) = play(vec![
            line("SELECT 1 AS one"),
            Input::Interrupted,
            line("SELECT 2 AS two;"),
        ]);
        assert_eq!(out, "two\n2\n");
        assert_eq!(
            script.prompts,
            [PROMPT, CONTINUATION_PROMPT, PROMPT, PROMPT]
        );
    }

    #[test]
    fn quit_and_exit_leave() {
        for word in ["quit", "exit", "QUIT;", " exit ; "] {
            let (script, out, _) = play(vec![line(word), line("SELECT 1 AS one;")]);
            assert_eq!(out, "", "{word}");
            assert_eq!(script.prompts.len(), 1, "{word}");
        }
        // Inside a statement `quit` is just text.
        let (_, _, err) = play(vec![line("SELECT"), line("quit;")]);
        assert!(err.contains("Error:"), "{err}");
    }

    #[test]
    fn errors_return_to_the_prompt() {
        let (script, out, err) = play(vec![line("SELECT * FROM nope;"), line("SELECT 1 AS one;")]);
        assert!(err.contains("table 'nope' not found"), "{err}");
        assert!(err.contains(" 1 | SELECT * FROM nope;"), "{err}");
        assert_eq!(out, "one\n1\n");
        assert_eq!(script.prompts, [PROMPT, PROMPT, PROMPT]);
    }

    #[test]
    fn blank_lines_and_comments_keep_the_first_prompt() {
        let (script, out, _) = play(vec![
            line(""),
            line("-- a comment"),
            line("SELECT 1 AS one;"),
        ]);
        assert_eq!(out, "one\n1\n");
        assert_eq!(script.prompts, [PROMPT, PROMPT, PROMPT, PROMPT]);
    }

    #[test]
    fn exit_commands() {
        assert!(is_exit_command("quit"));
        assert!(is_exit_command("Exit;"));
        assert!(!is_exit_command("quitter"));
        assert!(!is_exit_command("SELECT quit;"));
    }
}

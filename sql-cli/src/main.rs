//! `tributary`, Tributary's SQL shell: the command line, and what runs in
//! which order.
//!
//! ```text
//! tributary [-i FILE] [-c SQL | -f FILE]... [--format table|csv|json|ndjson]
//!           [--mode batch|streaming|automatic]
//! ```
//!
//! The init script (`-i`) runs first. Then the `-c` and `-f` arguments run
//! in the order they appear on the command line (interleaved; clap keeps
//! each value's index, which gives the order back). The first error is
//! printed to stderr and ends the shell with exit code 1; the statements
//! before it have run. Without `-c`/`-f` the shell is interactive, or, when
//! stdin is not a terminal, runs the SQL read from stdin as a script.
//!
//! Exit codes: 0 success, 1 an SQL or I/O error, 2 bad arguments (clap),
//! 130 a statement cancelled with Ctrl-C.

mod completion;
mod error_display;
mod folded;
mod live_table;
mod output;
mod progress;
mod repl;
mod runner;
mod sql_text;
mod tableau;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};
use tributary_engine::Session;

use crate::error_display::{Origin, render, render_plain};
use crate::output::{Format, Printer};
use crate::runner::{Outcome, Runner};

/// Tributary's SQL shell: run SQL interactively, from the command line, or
/// from files.
#[derive(Debug, Parser)]
#[command(name = "tributary", version)]
struct Args {
    /// Run this SQL file first (e.g. the CREATE TABLE statements of a
    /// project), then the -c/-f arguments or the interactive shell.
    #[arg(short = 'i', long = "init", value_name = "FILE")]
    init: Option<PathBuf>,

    /// Run these SQL statements (separated by ';') and exit. Repeatable; -c
    /// and -f run in the order given.
    #[arg(
        short = 'c',
        long = "command",
        value_name = "SQL",
        allow_hyphen_values = true
    )]
    command: Vec<String>,

    /// Run the SQL statements of this file and exit. Repeatable; -c and -f
    /// run in the order given.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Vec<PathBuf>,

    /// How to print query results. csv, json and ndjson print only the rows
    /// on stdout; messages go to stderr.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,

    /// The runtime mode (sets 'execution.runtime-mode').
    #[arg(long, value_enum, value_name = "MODE")]
    mode: Option<Mode>,
}

/// `--mode`: the values of `execution.runtime-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Batch,
    Streaming,
    Automatic,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Batch => "batch",
            Mode::Streaming => "streaming",
            Mode::Automatic => "automatic",
        }
    }
}

/// One `-c` or `-f` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Command(String),
    File(PathBuf),
}

/// The `-c` and `-f` arguments in command-line order.
fn ordered_sources(matches: &ArgMatches) -> Vec<Source> {
    let mut indexed: Vec<(usize, Source)> = Vec::new();
    if let (Some(values), Some(indices)) = (
        matches.get_many::<String>("command"),
        matches.indices_of("command"),
    ) {
        indexed.extend(indices.zip(values.map(|v| Source::Command(v.clone()))));
    }
    if let (Some(values), Some(indices)) = (
        matches.get_many::<PathBuf>("file"),
        matches.indices_of("file"),
    ) {
        indexed.extend(indices.zip(values.map(|v| Source::File(v.clone()))));
    }
    indexed.sort_by_key(|(i, _)| *i);
    indexed.into_iter().map(|(_, s)| s).collect()
}

fn main() -> ExitCode {
    let matches = Args::command().get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    let sources = ordered_sources(&matches);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprint!(
                "{}",
                render_plain(format_args!("cannot start the runtime: {e}"))
            );
            return ExitCode::FAILURE;
        }
    };
    let code = run(&args, sources, &runtime);
    // Do not wait for blocking tasks of a cancelled query.
    runtime.shutdown_background();
    code
}

/// Runs the shell as `args` say; returns the exit code.
fn run(args: &Args, sources: Vec<Source>, runtime: &tokio::runtime::Runtime) -> ExitCode {
    let session = Session::new();
    if let Some(mode) = args.mode
        && let Err(e) = session.set("execution.runtime-mode", mode.as_str())
    {
        eprint!("{}", render(&e, None, &Origin::Command));
        return ExitCode::FAILURE;
    }
    let mut runner = Runner::new(session.clone(), Printer::stdio(args.format), true);
    if let Some(init) = &args.init {
        let outcome = run_file(runtime, &mut runner, init);
        if outcome != Outcome::Success {
            return exit_code(outcome);
        }
    }
    if !sources.is_empty() {
        for source in sources {
            let outcome = match source {
                Source::Command(sql) => runtime.block_on(runner.run(&sql, &Origin::Command)),
                Source::File(path) => run_file(runtime, &mut runner, &path),
            };
            if outcome != Outcome::Success {
                return exit_code(outcome);
            }
        }
        return ExitCode::SUCCESS;
    }
    if !std::io::stdin().is_terminal() {
        let mut sql = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut sql) {
            runner.report_plain(format_args!("cannot read stdin: {e}"));
            return ExitCode::FAILURE;
        }
        return exit_code(runtime.block_on(runner.run(&sql, &Origin::Stdin)));
    }
    println!(
        "Tributary {} — type SQL ending in ';', Ctrl-D to exit",
        env!("CARGO_PKG_VERSION")
    );
    match repl::Editor::new(session) {
        Ok(mut editor) => {
            repl::run(runtime, &mut runner, &mut editor);
            ExitCode::SUCCESS
        }
        Err(e) => {
            runner.report_plain(format_args!("cannot start the interactive shell: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Reads and runs an SQL file.
fn run_file(runtime: &tokio::runtime::Runtime, runner: &mut Runner, path: &PathBuf) -> Outcome {
    match std::fs::read_to_string(path) {
        Ok(sql) => runtime.block_on(runner.run(&sql, &Origin::File(path.clone()))),
        Err(e) => {
            runner.report_plain(format_args!("cannot read '{}': {e}", path.display()));
            Outcome::Failed
        }
    }
}

fn exit_code(outcome: Outcome) -> ExitCode {
    match outcome {
        Outcome::Success => ExitCode::SUCCESS,
        Outcome::Failed => ExitCode::FAILURE,
        Outcome::Cancelled => ExitCode::from(130),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> (Args, Vec<Source>) {
        let matches = Args::command().try_get_matches_from(argv).unwrap();
        (
            Args::from_arg_matches(&matches).unwrap(),
            ordered_sources(&matches),
        )
    }

    #[test]
    fn commands_and_files_keep_their_order() {
        let (_, sources) = parse(&[
            "tributary",
            "-f",
            "a.sql",
            "-c",
            "SELECT 1",
            "--file",
            "b.sql",
            "--command",
            "SELECT 2",
        ]);
        assert_eq!(
            sources,
            [
                Source::File("a.sql".into()),
                Source::Command("SELECT 1".into()),
                Source::File("b.sql".into()),
                Source::Command("SELECT 2".into()),
            ]
        );
    }

    #[test]
    fn defaults_and_options() {
        let (args, sources) = parse(&["tributary"]);
        assert!(sources.is_empty());
        assert_eq!(
            (args.format, args.mode, args.init),
            (Format::Table, None, None)
        );
        let (args, _) = parse(&[
            "tributary",
            "-i",
            "init.sql",
            "--format",
            "ndjson",
            "--mode",
            "batch",
        ]);
        assert_eq!(
            (args.format, args.mode, args.init),
            (Format::Ndjson, Some(Mode::Batch), Some("init.sql".into()))
        );
        assert_eq!(Mode::Streaming.as_str(), "streaming");
    }

    #[test]
    fn a_command_may_start_with_a_comment() {
        let (_, sources) = parse(&["tributary", "-c", "-- note\nSELECT 1"]);
        assert_eq!(sources, [Source::Command("-- note\nSELECT 1".into())]);
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(
            Args::command()
                .try_get_matches_from(["tributary", "--format", "xml"])
                .is_err()
        );
        assert!(
            Args::command()
                .try_get_matches_from(["tributary", "--mode", "fast"])
                .is_err()
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }
}

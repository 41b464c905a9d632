//! End-to-end tests of the `tributary` shell: the binary is run as a user
//! would run it (`-c`, `-f`, `-i`, `--format`, stdin) with the workspace root
//! as its working directory, and its stdout, stderr and exit code checked.
//!
//! Finding the binary: `CARGO_BIN_EXE_tributary` exists only in the tests of
//! the crate that owns the binary, and a binary cannot be a dependency, so
//! the test locates it itself. The test executable lives in
//! `<target>/<profile>/deps/`; the binary is `<target>/<profile>/tributary`.
//! `cargo test -p tributary-tests` does not rebuild the binary, so before
//! the first run the tests call `cargo build -p tributary-cli` (with the
//! same profile; a no-op when it is up to date), so they never test a stale
//! binary. If that build fails (no cargo, offline), an existing binary is
//! used. `TRIBUTARY_BIN` overrides all of this with a path.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The path of the `tributary` binary, built if needed (once per run).
fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("TRIBUTARY_BIN") {
            return PathBuf::from(path);
        }
        let exe = std::env::current_exe().expect("the test executable's path");
        let profile_dir = exe
            .parent()
            .filter(|d| d.ends_with("deps"))
            .and_then(Path::parent)
            .expect("the test executable is in <target>/<profile>/deps")
            .to_path_buf();
        let binary = profile_dir.join(format!("tributary{}", std::env::consts::EXE_SUFFIX));
        let target_dir = profile_dir.parent().expect("<target>").to_path_buf();
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("debug");
        let mut build = Command::new(env!("CARGO"));
        build.current_dir(workspace_root()).args([
            "build",
            "--quiet",
            "-p",
            "tributary-cli",
            "--bin",
            "tributary",
        ]);
        build.arg("--target-dir").arg(&target_dir);
        if profile != "debug" {
            build.args(["--profile", profile]);
        }
        let built = build.status().map(|s| s.success()).unwrap_or(false);
        assert!(
            built || binary.exists(),
            "cannot build tributary and no binary at {}",
            binary.display()
        );
        binary
    })
}

/// The workspace root, where the shell runs (so `examples/...` resolves).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// Runs `tributary` with `args` (and `stdin`, if any).
fn tributary_with_stdin(args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(binary());
    command
        .args(args)
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = command.spawn().expect("tributary starts");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("tributary runs")
}

fn tributary(args: &[&str]) -> Output {
    tributary_with_stdin(args, None)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the run succeeded, showing its output otherwise.
fn assert_success(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

/// A temporary SQL file with `text`.
fn sql_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(".sql")
        .tempfile()
        .expect("temp file");
    file.write_all(text.as_bytes()).expect("write temp file");
    file
}

const SETUP: &str = "CREATE TABLE t (a INT, b STRING); INSERT INTO t VALUES (1,'x'),(2,'y')";
const QUERY: &str = "SELECT a, b FROM t ORDER BY a";

#[test]
fn table_format_prints_a_table_and_the_row_count() {
    let o = tributary(&["-c", SETUP, "-c", QUERY]);
    assert_success(&o);
    let out = stdout(&o);
    assert!(out.contains("Table 't' created.\n"), "{out}");
    assert!(out.contains("2 rows inserted ("), "{out}");
    assert!(out.contains("| a | b |"), "{out}");
    assert!(out.contains("| 1 | x |\n| 2 | y |"), "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("2 rows in set (") && last.ends_with(" sec)"),
        "{out}"
    );
    let o = tributary(&[
        "-c",
        SETUP,
        "-c",
        "SELECT a FROM t WHERE a = 2",
        "--format",
        "table",
    ]);
    assert!(
        stdout(&o)
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("1 row in set ("),
        "{}",
        stdout(&o)
    );
}

#[test]
fn csv_format_prints_only_the_rows() {
    let o = tributary(&["-c", SETUP, "-c", QUERY, "--format", "csv"]);
    assert_success(&o);
    assert_eq!(stdout(&o), "a,b\n1,x\n2,y\n");
    let err = stderr(&o);
    assert!(
        err.contains("Table 't' created."),
        "status messages go to stderr: {err}"
    );
}

#[test]
fn json_format_prints_one_array() {
    let o = tributary(&["-c", SETUP, "-c", QUERY, "--format", "json"]);
    assert_success(&o);
    let value: serde_json::Value =
        serde_json::from_str(&stdout(&o)).expect("stdout is one JSON document");
    let rows = value.as_array().expect("an array");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0], serde_json::json!({"a": 1, "b": "x"}));
    assert_eq!(rows[1], serde_json::json!({"a": 2, "b": "y"}));
    let o = tributary(&[
        "-c",
        SETUP,
        "-c",
        "SELECT a FROM t WHERE a > 9",
        "--format",
        "json",
    ]);
    assert_eq!(stdout(&o).trim(), "[]");
}

#[test]
fn ndjson_format_prints_one_object_per_line() {
    let o = tributary(&["-c", SETUP, "-c", QUERY, "--format", "ndjson"]);
    assert_success(&o);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for (line, a) in lines.iter().zip([1, 2]) {
        let value: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        assert_eq!(value["a"], a);
    }
}

#[test]
fn init_runs_first_then_commands_and_files_in_order() {
    let init = sql_file("-- the schema\nCREATE TABLE t (a INT, b STRING);\n");
    let file = sql_file("INSERT INTO t VALUES (2, 'from file');\nSELECT 'file' AS step;\n");
    let init_path = init.path().to_str().unwrap();
    let file_path = file.path().to_str().unwrap();
    // -i comes last on the command line but runs first.
    let o = tributary(&[
        "-c",
        "INSERT INTO t VALUES (1, 'from command'); SELECT 'command 1' AS step",
        "-f",
        file_path,
        "--command",
        "SELECT b FROM t ORDER BY a",
        "--format",
        "csv",
        "--init",
        init_path,
    ]);
    assert_success(&o);
    assert_eq!(
        stdout(&o),
        "step\ncommand 1\nstep\nfile\nb\nfrom command\nfrom file\n"
    );
}

#[test]
fn an_error_stops_the_run_and_shows_where_and_how_to_fix_it() {
    let o = tributary(&[
        "-c",
        "CREATE TABLE flights (a INT); SELECT 1 AS before_error",
        "-c",
        "SELECT * FROM fligths",
        "-c",
        "SELECT 2 AS after_error",
        "--format",
        "csv",
    ]);
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "before_error\n1\n",
        "statements before the error ran, none after"
    );
    let err = stderr(&o);
    assert!(
        err.contains("Error: planning error: table 'fligths' not found\n"),
        "{err}"
    );
    assert!(err.contains("  --> line 1, column 15\n"), "{err}");
    assert!(err.contains(" 1 | SELECT * FROM fligths\n"), "{err}");
    assert!(err.contains("\n   |               ^\n"), "{err}");
    assert!(err.contains("hint: did you mean 'flights'?"), "{err}");
}

#[test]
fn an_error_in_a_file_names_the_file() {
    let file = sql_file("CREATE TABLE flights (a INT);\n\nSELECT a\nFROM fligths;\n");
    let path = file.path().to_str().unwrap();
    let o = tributary(&["-f", path]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains(&format!("  --> {path}:4:6\n")), "{err}");
    assert!(err.contains(" 4 | FROM fligths;\n   |      ^\n"), "{err}");
}

#[test]
fn a_syntax_error_shows_line_and_column() {
    let o = tributary(&["-c", "SELECT 1 AS one;\nSELEC 2 AS two", "--format", "csv"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o),
        "one\n1\n",
        "the statement before the syntax error ran"
    );
    let err = stderr(&o);
    assert!(err.starts_with("Error: syntax error: "), "{err}");
    assert!(
        err.contains("  --> line 2, column 1\n 2 | SELEC 2 AS two\n   | ^\n"),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_an_error() {
    let o = tributary(&["-f", "no/such/file.sql"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("Error: cannot read 'no/such/file.sql': "),
        "{}",
        stderr(&o)
    );
}

#[test]
fn sql_piped_into_stdin_runs_as_a_script() {
    let o = tributary_with_stdin(
        &["--format", "csv"],
        Some("SELECT 1 AS one;\nSELECT 'two' AS two;\n"),
    );
    assert_success(&o);
    assert_eq!(stdout(&o), "one\n1\ntwo\ntwo\n");
}

#[test]
fn mode_sets_the_runtime_mode() {
    let o = tributary(&["--mode", "batch", "-c", "SET", "--format", "csv"]);
    assert_success(&o);
    assert!(
        stdout(&o).contains("execution.runtime-mode,batch"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn help_lists_the_flags() {
    let o = tributary(&["--help"]);
    assert_success(&o);
    let out = stdout(&o);
    for flag in [
        "-i, --init <FILE>",
        "-c, --command <SQL>",
        "-f, --file <FILE>",
        "--format <FORMAT>",
        "--mode <MODE>",
    ] {
        assert!(out.contains(flag), "{flag} missing in:\n{out}");
    }
    let o = tributary(&["--format", "xml"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn flights_by_carrier_on_the_example_data() {
    let root = workspace_root();
    if !root.join("examples/flights_tables.sql").exists() {
        eprintln!("skipped: examples/flights_tables.sql does not exist yet");
        return;
    }
    let o = tributary(&[
        "-i",
        "examples/flights_tables.sql",
        "-c",
        "SELECT carrier, COUNT(*) AS n FROM flights GROUP BY carrier ORDER BY n DESC",
        "--format",
        "csv",
    ]);
    assert_success(&o);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"carrier,n"), "{out}");
    assert_eq!(lines.len(), 17, "a header and 16 carriers: {out}");
    // Figures from DuckDB on the same Parquet file.
    assert_eq!(lines[1], "UA,58665");
}

/// The STREAMING tests' table: two updates of key `a`.
const STREAM_SETUP: &str =
    "CREATE TABLE t (k STRING, v INT); INSERT INTO t VALUES ('a',1),('a',2),('b',3)";
const STREAM_QUERY: &str = "SELECT k, SUM(v) FROM t GROUP BY k";

#[test]
fn streaming_csv_is_the_changelog_with_the_op_first() {
    let o = tributary(&[
        "--mode",
        "streaming",
        "-c",
        STREAM_SETUP,
        "-c",
        STREAM_QUERY,
        "--format",
        "csv",
    ]);
    assert_success(&o);
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("op,k,sum(t.v)"), "{out}");
    // Fold the changelog: +I/+U add a row, -U/-D remove it.
    let mut table: Vec<(String, String)> = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 3, "{out}");
        let row = (fields[1].to_string(), fields[2].to_string());
        match fields[0] {
            "+I" | "+U" => table.push(row),
            "-U" | "-D" => {
                let at = table
                    .iter()
                    .position(|r| *r == row)
                    .expect("a retraction of a row that is there");
                table.remove(at);
            }
            op => panic!("unknown op {op} in {out}"),
        }
    }
    table.sort();
    assert_eq!(
        table,
        [("a".into(), "3".into()), ("b".into(), "3".into())],
        "{out}"
    );
}

#[test]
fn streaming_table_format_prints_the_changelog_as_a_tableau() {
    let o = tributary(&[
        "--mode",
        "streaming",
        "-c",
        STREAM_SETUP,
        "-c",
        STREAM_QUERY,
    ]);
    assert_success(&o);
    let out = stdout(&o);
    assert!(
        out.contains("| op | k                    |             sum(t.v) |\n"),
        "{out}"
    );
    assert!(
        out.contains("| +I | a                    |                    3 |\n"),
        "{out}"
    );
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("Received a total of 2 rows (") && last.ends_with(" sec)"),
        "{out}"
    );
    // BATCH output is unchanged.
    let o = tributary(&["--mode", "batch", "-c", STREAM_SETUP, "-c", STREAM_QUERY]);
    assert!(
        !stdout(&o).contains("Received a total of"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn table_result_mode_prints_the_final_table_when_piped() {
    let o = tributary(&[
        "--mode",
        "streaming",
        "-c",
        STREAM_SETUP,
        "-c",
        "SET 'sql-client.execution.result-mode' = 'table'",
        "-c",
        STREAM_QUERY,
    ]);
    assert_success(&o);
    let out = stdout(&o);
    assert!(
        !out.contains('\x1b'),
        "no escape codes when stdout is not a terminal: {out:?}"
    );
    assert!(
        out.contains("+---+----------+\n| k | sum(t.v) |\n+---+----------+\n"),
        "{out}"
    );
    assert!(
        out.contains("| a | 3        |\n") && out.contains("| b | 3        |\n"),
        "{out}"
    );
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("2 rows in set, folded from "), "{out}");
}

/// An endless STREAMING query prints its rows as they come, and Ctrl-C
/// (SIGINT) stops it with the total line and exit code 130.
#[cfg(unix)]
#[test]
fn an_endless_streaming_query_prints_as_it_goes_until_ctrl_c() {
    use std::io::{BufRead, BufReader};
    use std::time::Duration;

    let mut child = Command::new(binary())
        .args([
            "--mode",
            "streaming",
            "-c",
            "CREATE TABLE g (k INT) WITH ('connector' = 'datagen', 'rows-per-second' = '50', \
             'fields.k.min' = '1', 'fields.k.max' = '5')",
            "-c",
            "SELECT k, COUNT(*) FROM g GROUP BY k",
        ])
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tributary starts");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let first_row = loop {
        match lines_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.starts_with("| +I |") => break Some(line),
            Ok(line) => seen.push(line),
            Err(_) => break None,
        }
    };
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    if first_row.is_none() || !interrupted.is_ok_and(|s| s.success()) {
        let _ = child.kill();
    }
    let status = child.wait().expect("tributary ends");
    reader.join().expect("the reader ends");
    seen.extend(lines_rx.try_iter());
    let out = seen.join("\n");
    assert!(first_row.is_some(), "no row within a minute: {out}");
    assert_eq!(status.code(), Some(130), "{out}");
    assert!(
        out.lines()
            .last()
            .unwrap_or_default()
            .starts_with("Received a total of "),
        "{out}"
    );
}

#[test]
fn print_sink_prints_each_changelog_row_and_blackhole_swallows_them() {
    let setup = "CREATE TABLE t (k STRING, v INT); INSERT INTO t VALUES ('a', 1), ('b', 2), ('a', 3);
        CREATE TABLE p (k STRING, n BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'sink');
        CREATE TABLE bh (k STRING, n BIGINT) WITH ('connector' = 'blackhole');
        SET 'datafusion.execution.batch_size' = '1'; SET 'parallelism.default' = '1'";
    let o = tributary(&[
        "--mode",
        "streaming",
        "-c",
        setup,
        "-c",
        "INSERT INTO p SELECT k, COUNT(*) FROM t GROUP BY k",
        "-c",
        "INSERT INTO bh SELECT k, COUNT(*) FROM t GROUP BY k",
    ]);
    assert_success(&o);
    let out = stdout(&o);
    let printed: Vec<&str> = out.lines().filter(|l| l.starts_with("sink> ")).collect();
    assert_eq!(
        printed,
        [
            "sink> +I[a, 1]",
            "sink> +I[b, 1]",
            "sink> -U[a, 1]",
            "sink> +U[a, 2]"
        ],
        "{out}"
    );
    // BATCH prints only the final rows; a print table cannot be read.
    let o = tributary(&[
        "--mode",
        "batch",
        "-c",
        setup,
        "-c",
        "INSERT INTO p SELECT k, COUNT(*) FROM t GROUP BY k",
    ]);
    assert_success(&o);
    let mut printed: Vec<String> = stdout(&o)
        .lines()
        .filter(|l| l.starts_with("sink> "))
        .map(String::from)
        .collect();
    printed.sort();
    assert_eq!(printed, ["sink> +I[a, 2]", "sink> +I[b, 1]"]);
    let o = tributary(&["-c", setup, "-c", "SELECT * FROM p"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is a print sink: it can be written with INSERT INTO, not read"),
        "{}",
        stderr(&o)
    );
}

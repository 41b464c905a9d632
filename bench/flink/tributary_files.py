"""Tributary over the same CSV files as Flink, through the CLI (`tributary`).

For each query of nexmark-bench's list (nexmark_queries.queries), in each mode:

- timing: a fresh `tributary --mode streaming|batch` process declares the
  three tables over the files (same WATERMARK as Flink), a `blackhole` sink
  with the query's columns (found by `DESCRIBE` of a view of the query), and
  runs `INSERT INTO sink <query>`. The time is the CLI's own timing of the
  INSERT (planning + reading the files + running to the end), without process
  start; the process's wall time and peak resident memory (`ru_maxrss`) are
  recorded too;
- answer summary (`--summaries`): the query wrapped in `SELECT COUNT(*),
  SUM/MIN/MAX(...) FROM (<query>)`, printed as CSV. In STREAMING that
  aggregate consumes the query's changelog, so its last `+I`/`+U` row is the
  summary of the folded table.

Every process gets --timeout seconds; past that it is killed and recorded as
"timeout". With --repeat N each timing runs N times and the median run (by
the CLI's time) is recorded, with every run's time in "runs".

    python3 tributary_files.py --cli PATH --path DIR --events N --json OUT.json \
        [--modes streaming,batch] [--queries q0,q2] [--repeat N] [--summaries OUT-PREFIX]
"""

import argparse
import csv
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

import nexmark_queries as nq


def run_cli(cli, mode, sql, timeout, fmt=None):
    """Runs the CLI; returns (stdout, wall seconds, peak RSS MiB).

    Raises TimeoutError past `timeout` s, RuntimeError on a failure."""
    cmd = [cli, "--mode", mode] + (["--format", fmt] if fmt else []) + ["-c", sql]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        # wait4, not wait: the child's own rusage (its peak RSS), not all children's.
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - start
        timed_out = not timer.is_alive()
        timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        if timed_out:
            raise TimeoutError(f"killed after {timeout} s")
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if p.returncode != 0:
        raise RuntimeError((stderr or stdout).strip()[:400])
    return stdout, wall, usage.ru_maxrss / 1024


def tables(path):
    return ";\n".join(nq.table_ddl(t, path, flink=False) for t in nq.TABLES) + ";\n"


def columns(cli, ddl, sql, timeout):
    """[(name, type)] of the query's answer, from DESCRIBE of a view of it."""
    out, _, _ = run_cli(cli, "batch", f"{ddl} CREATE VIEW answer_view AS {sql}; DESCRIBE answer_view;",
                        timeout, "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    # A time attribute prints as `TIMESTAMP(3) *ROWTIME*`; a sink column is plain TIMESTAMP(3).
    return [(r["name"], r["type"].replace(" *ROWTIME*", "").replace(" *PROCTIME*", "")) for r in rows]


def summary(cli, mode, ddl, name, sql, cols, timeout):
    """{column: value} of the answer's summary in `mode` (STREAMING: the last +I/+U row)."""
    out, _, _ = run_cli(cli, mode, ddl + nq.summary_sql(name, sql, cols, flink=False), timeout, "csv")
    rows = list(csv.reader(io.StringIO(out)))
    if len(rows) < 2:
        raise RuntimeError(f"no summary row in {out[:200]!r}")
    header, body = rows[0], rows[1:]
    if header[0] == "op":
        body = [r[1:] for r in body if r[0] in ("+I", "+U")]
        header = header[1:]
    if not body:
        raise RuntimeError("no +I/+U summary row")
    return dict(zip(header, body[-1]))


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--cli", required=True)
    a.add_argument("--path", required=True, help="directory with person/, auction/, bid/ as CSV")
    a.add_argument("--events", type=int, required=True)
    a.add_argument("--modes", default="streaming,batch")
    a.add_argument("--queries", default="")
    a.add_argument("--timeout", type=float, default=600, help="seconds per process")
    a.add_argument("--repeat", type=int, default=1, help="runs per timing; the median is recorded")
    a.add_argument("--json", required=True, help="timings out")
    a.add_argument("--summaries", help="write answer summaries to PREFIX-batch.json and PREFIX-streaming.json")
    args = a.parse_args()
    ddl = tables(args.path)
    modes = args.modes.split(",")
    res = {}
    sums = {m: {} for m in modes}
    for name, sql in nq.select(args.queries):
        res[name] = {}
        try:
            cols = columns(args.cli, ddl, sql, args.timeout)
        except (RuntimeError, TimeoutError) as e:
            print(f"{name}: no columns: {e}", file=sys.stderr)
            res[name] = {m: {"error": str(e)} for m in modes}
            continue
        sink = ", ".join(f'"{c}" {t}' for c, t in cols)
        for mode in modes:
            script = (f"{ddl} CREATE TABLE sink ({sink}) WITH ('connector' = 'blackhole');\n"
                      f"INSERT INTO sink {sql};")
            try:
                runs = []
                for _ in range(max(args.repeat, 1)):
                    out, wall, rss = run_cli(args.cli, mode, script, args.timeout)
                    m = re.search(r"\(([\d.]+) sec\)", out.strip().splitlines()[-1])
                    runs.append({"seconds": float(m.group(1)) if m else wall, "wall": wall, "rss_mib": rss})
                runs.sort(key=lambda r: r["seconds"])
                res[name][mode] = dict(runs[len(runs) // 2])
                if len(runs) > 1:
                    res[name][mode]["runs"] = [r["seconds"] for r in runs]
            except TimeoutError:
                res[name][mode] = {"timeout": args.timeout}
            except RuntimeError as e:
                res[name][mode] = {"error": str(e)}
            print(f"[tributary {mode}] {name}: {res[name][mode]}", file=sys.stderr, flush=True)
            if args.summaries and "seconds" in res[name][mode]:
                try:
                    sums[mode][name] = {"mode": mode, "summary": summary(args.cli, mode, ddl, name, sql, cols,
                                                                        args.timeout)}
                except (RuntimeError, TimeoutError) as e:
                    sums[mode][name] = {"mode": mode, "error": str(e) or "timeout"}
    with open(args.json, "w") as f:
        json.dump({"events": args.events, "queries": res}, f, indent=1)
        f.write("\n")
    if args.summaries:
        for mode in modes:
            nq.write_summaries(f"{args.summaries}-{mode}.json", sums[mode])

    cell = nq.time_cell
    print(f"Tributary CLI over the same CSV files ({args.events} events)")
    print()
    print("| query | Tributary STREAMING s | Tributary BATCH s | STREAMING events/s | "
          "STREAMING wall s (process) | STREAMING peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for name, r in res.items():
        s, b = r.get("streaming"), r.get("batch")
        ok = s is not None and "seconds" in s
        print(f"| {name} | {cell(s)} | {cell(b)} | {args.events / s['seconds']:.0f} | {s['wall']:.3f} | "
              f"{s['rss_mib']:.0f} |" if ok else f"| {name} | {cell(s)} | {cell(b)} | – | – | – |")


if __name__ == "__main__":
    main()

"""Nexmark queries in Apache Flink (PyFlink Table API), STREAMING and BATCH.

Reads the person, auction and bid tables that Tributary's `nexmark` connector
generated and wrote once as CSV (see run.sh), so both engines see the same
events. The queries are nexmark-bench's list (nexmark_queries.queries) in
Flink's spelling (nexmark_queries.flink_sql). Each query runs as `INSERT INTO`
a `blackhole` sink on a local mini-cluster (parallelism 2, all servers on
127.0.0.1) and is timed from submission (`execute_sql`, which also plans the
job) to the job's end (`.wait()`), after one warm-up query per mode. A job
still running after --timeout seconds is cancelled and recorded as "timeout".

With --summaries, each query's answer summary (nexmark_queries.summary_sql)
is collected from Flink BATCH, or from STREAMING where BATCH cannot run the
query (the last +I/+U row of the summary's changelog is the summary of the
folded answer; mini-batch keeps that changelog short).

    python nexmark_flink.py --path DIR --events N --json OUT.json [--summaries OUT.json]
        [--queries q0,q2] [--modes streaming,batch] [--timeout 600]
"""

import argparse
import json
import os
import sys
import threading
import time

os.environ.setdefault("_python_worker_execution_mode", "process")

from pyflink.common import RowKind  # noqa: E402
from pyflink.table import EnvironmentSettings, TableEnvironment  # noqa: E402

import nexmark_queries as nq  # noqa: E402


def make_env(mode, parallelism, path, extra=()):
    settings = (EnvironmentSettings.in_streaming_mode() if mode == "streaming"
                else EnvironmentSettings.in_batch_mode())
    t_env = TableEnvironment.create(settings)
    conf = t_env.get_config()
    for k, v in [
        ("parallelism.default", str(parallelism)),
        ("rest.bind-address", "127.0.0.1"),
        ("rest.address", "127.0.0.1"),
        ("jobmanager.bind-host", "127.0.0.1"),
        ("taskmanager.bind-host", "127.0.0.1"),
        ("taskmanager.host", "127.0.0.1"),
        ("jobmanager.rpc.address", "127.0.0.1"),
        ("table.local-time-zone", "UTC"),
        ("pipeline.name", "nexmark"),
        *extra,
    ]:
        conf.set(k, v)
    for table in nq.TABLES:
        t_env.execute_sql(nq.table_ddl(table, path, flink=True))
    return t_env


def columns(t_env, sql):
    """[(name, type)] of the query's answer; time attributes as plain TIMESTAMP(3)."""
    schema = t_env.sql_query(sql).get_schema()
    return [(n, str(ty).replace(" *ROWTIME*", "").replace(" *PROCTIME*", ""))
            for n, ty in zip(schema.get_field_names(), schema.get_field_data_types())]


def run_query(t_env, name, sql, timeout):
    """Seconds from submission to the job's end; TimeoutError past `timeout` (job cancelled)."""
    sink = f"sink_{name}_{int(time.time() * 1000)}"
    cols = ", ".join(f"`{n}` {ty}" for n, ty in columns(t_env, sql))
    t_env.execute_sql(f"CREATE TEMPORARY TABLE {sink} ({cols}) WITH ('connector' = 'blackhole')")
    start = time.perf_counter()
    result = t_env.execute_sql(f"INSERT INTO {sink} {sql}")
    try:
        result.wait(int(timeout * 1000))
    except Exception as e:  # noqa: BLE001 -- py4j wraps Java's TimeoutException
        if "TimeoutException" in str(e):
            result.get_job_client().cancel().result()
            raise TimeoutError(f"cancelled after {timeout} s") from None
        raise
    return time.perf_counter() - start


def first_lines(e):
    return " ".join(str(e).strip().splitlines()[:3])[:400]


def time_mode(mode, args, selected):
    t_env = make_env(mode, args.parallelism, args.path)
    # Warm-up: one query, not timed (JIT, class loading, mini-cluster start).
    run_query(t_env, "warmup", "SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0", args.timeout)
    out = {}
    for name, sql in selected:
        try:
            out[name] = {"seconds": run_query(t_env, name, nq.flink_sql(sql), args.timeout)}
        except TimeoutError:
            out[name] = {"timeout": args.timeout}
        except Exception as e:  # noqa: BLE001 -- report and go on with the next query
            # "unsupported": Flink refuses the query in this mode (e.g. SESSION in BATCH).
            kind = "unsupported" if "not supported" in str(e) else "error"
            out[name] = {kind: first_lines(e)}
        print(f"[flink {mode}] {name}: {out[name]}", file=sys.stderr, flush=True)
    return out


def collect_summary(t_env, sql, timeout):
    """The summary row of `sql`'s answer: the last +I/+U row collected."""
    result = t_env.execute_sql(sql)
    client = result.get_job_client()
    # collect() has no timeout: cancel the job from a timer, which ends the iteration.
    timer = threading.Timer(timeout, lambda: client.cancel())
    timer.start()
    try:
        names = result.get_table_schema().get_field_names()
        last = None
        with result.collect() as rows:
            for r in rows:
                if r.get_row_kind() in (RowKind.INSERT, RowKind.UPDATE_AFTER):
                    last = r
    except Exception:  # noqa: BLE001
        if not timer.is_alive():
            raise TimeoutError(f"cancelled after {timeout} s") from None
        raise
    finally:
        timer.cancel()
    if last is None:
        raise RuntimeError("no summary row")
    return {n: (None if v is None else str(v)) for n, v in zip(names, tuple(last))}


def summaries(args, selected, timings):
    envs = {}
    out = {}
    for name, sql in selected:
        # BATCH where it ran the query; else (or where BATCH fails on the summary) STREAMING,
        # e.g. SESSION windows.
        modes = [m for m in ("batch", "streaming") if "seconds" in timings[m].get(name, {})]
        out[name] = {"error": "Flink ran the query in no mode"}
        for mode in modes:
            extra = [("table.exec.mini-batch.enabled", "true"),
                     ("table.exec.mini-batch.allow-latency", "1 s"),
                     ("table.exec.mini-batch.size", "100000")] if mode == "streaming" else []
            if mode not in envs:
                envs[mode] = make_env(mode, args.parallelism, args.path, extra)
            t_env = envs[mode]
            fsql = nq.flink_sql(sql)
            failed = out[name].get("error") if mode == "streaming" and "mode" in out[name] else None
            # Flink's planner sometimes fails a statement after many jobs in one
            # TableEnvironment (NullPointerException: metadataHandlerProvider); a fresh
            # environment plans it again.
            for attempt in range(2):
                try:
                    out[name] = {"mode": mode, "summary": collect_summary(
                        t_env, nq.summary_sql(name, fsql, columns(t_env, fsql), flink=True), args.timeout)}
                    if failed:
                        out[name]["batch_error"] = failed
                    break
                except TimeoutError as e:
                    out[name] = {"mode": mode, "error": f"timeout: {e}"}
                    break
                except Exception as e:  # noqa: BLE001 -- recorded; retried, then STREAMING may run it
                    out[name] = {"mode": mode, "error": first_lines(e)}
                    print(f"[flink summary] {name} {mode}: {out[name]['error']}", file=sys.stderr, flush=True)
                    if attempt == 0:
                        envs[mode] = t_env = make_env(mode, args.parallelism, args.path, extra)
            if "summary" in out[name] or "timeout" in out[name].get("error", ""):
                break
        print(f"[flink summary] {name}: {out[name]}", file=sys.stderr, flush=True)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--path", required=True, help="directory with person/, auction/, bid/ as CSV (no header)")
    p.add_argument("--events", type=int, required=True, help="events generated (for events/s)")
    p.add_argument("--parallelism", type=int, default=2)
    p.add_argument("--queries", default="")
    p.add_argument("--modes", default="streaming,batch")
    p.add_argument("--timeout", type=float, default=600, help="seconds per job")
    p.add_argument("--json", required=True, help="timings out")
    p.add_argument("--summaries", help="answer summaries out (BATCH; STREAMING where BATCH cannot)")
    args = p.parse_args()
    selected = nq.select(args.queries)
    modes = args.modes.split(",")
    res = {m: time_mode(m, args, selected) if m in modes else {} for m in ("streaming", "batch")}
    with open(args.json, "w") as f:
        json.dump({"events": args.events, "parallelism": args.parallelism, "modes": res}, f, indent=1)
        f.write("\n")

    cell = nq.time_cell
    print(f"Flink {os.environ.get('FLINK_VERSION', '')} ({args.events} events, parallelism {args.parallelism})")
    print()
    print("| query | Flink STREAMING s | Flink BATCH s | STREAMING events/s |")
    print("|---|---|---|---|")
    for name, _ in selected:
        s, b = res["streaming"].get(name), res["batch"].get(name)
        eps = f"{args.events / s['seconds']:.0f}" if s and "seconds" in s else "–"
        print(f"| {name} | {cell(s)} | {cell(b)} | {eps} |")
    sys.stdout.flush()
    if args.summaries:
        nq.write_summaries(args.summaries, summaries(args, selected, res))


if __name__ == "__main__":
    main()

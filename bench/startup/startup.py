#!/usr/bin/env python3
"""Start-up: wall time to answer `SELECT 1` from the shell, one fresh process
per run, in Tributary (`tributary -c 'SELECT 1'`, release binary), DuckDB's
CLI (PyPI `duckdb-cli`) and Apache Flink (PyPI `apache-flink`, PyFlink's
TableEnvironment on a local mini-cluster; see flink_select1.py for why not
Flink's SQL client).

    python3 bench/startup/startup.py --tributary PATH [--duckdb PATH] [--flink-python PATH]
        [--runs 20] [--flink-runs 3] [--json FILE]

Each command runs once untimed (page cache warm), then --runs times; the
time is from fork to exit (subprocess.run), output to a pipe. Every run's
output must contain the answer 1, or the run is an error.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def measure(cmd, runs, env=None):
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        elapsed = time.perf_counter() - start
        if p.returncode != 0 or "1" not in p.stdout:
            raise SystemExit(f"{cmd[0]} failed (exit {p.returncode}):\n{p.stdout}\n{p.stderr}")
        if i > 0:
            times.append(elapsed)
    times.sort()
    return {
        "command": " ".join(cmd),
        "runs": runs,
        "median_ms": statistics.median(times) * 1000,
        "min_ms": times[0] * 1000,
        "max_ms": times[-1] * 1000,
    }


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--tributary", required=True)
    a.add_argument("--duckdb")
    a.add_argument("--flink-python")
    a.add_argument("--runs", type=int, default=20)
    a.add_argument("--flink-runs", type=int, default=3)
    a.add_argument("--json")
    args = a.parse_args()
    results = {"tributary": measure([args.tributary, "-c", "SELECT 1"], args.runs)}
    if args.duckdb:
        results["duckdb"] = measure([args.duckdb, "-c", "SELECT 1"], args.runs)
        results["duckdb"]["version"] = subprocess.run(
            [args.duckdb, "--version"], capture_output=True, text=True).stdout.strip()
    if args.flink_python:
        env = dict(os.environ, _python_worker_execution_mode="process")
        results["flink"] = measure([args.flink_python, os.path.join(HERE, "flink_select1.py")],
                                   args.flink_runs, env)
    print("| engine | command | runs | median ms | min ms | max ms |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | `{r['command']}` | {r['runs']} | {r['median_ms']:.1f} | "
              f"{r['min_ms']:.1f} | {r['max_ms']:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()

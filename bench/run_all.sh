#!/usr/bin/env bash
# One command for the published figures (docs/benchmarks.md):
#
#   bench/run_all.sh            # TPC-H SF 1, Nexmark 10,000,000 events, latency, start-up
#   bench/run_all.sh quick      # TPC-H SF 0.1, Nexmark 100,000 events, short latency run
#
# Environment: SF, REPS (TPC-H repetitions, default 5), EVENTS (Nexmark),
# SKIP_NEXMARK=1 / SKIP_FLINK_STARTUP=1 to leave parts out, CARGO_TARGET_DIR
# (default /var/tmp/tributary-release), RESULTS (default docs/benchmarks).
#
# 1. builds the release binaries: tpch-bench, latency-bench, nexmark-bench, tributary;
# 2. installs DuckDB (PyPI `duckdb` for the TPC-H worker, `duckdb-cli` in a venv for start-up);
# 3. TPC-H: data from tpchgen (in-process) as Parquet under /var/tmp/tpch-parquet/sfSF, then
#    Tributary BATCH vs plain DataFusion vs DuckDB, interleaved, answers compared
#    -> $RESULTS/tpch-sfSF.json, .md, and the chart tpch-sfSF-ratios.svg;
# 4. window emit latency at half the maximum sustained rate -> $RESULTS/latency.json;
# 5. start-up, `SELECT 1` from the shell -> $RESULTS/startup.json;
# 6. Nexmark: bench/flink/run.sh EVENTS -- person, auction and bid written once as CSV
#    ('first-event.rate' = '10000000'), every query of nexmark-bench's list in Tributary
#    in memory (nexmark-bench), Tributary's CLI over the CSV (STREAMING, BATCH) and Flink
#    over the CSV (STREAMING, BATCH), each job bounded by TIMEOUT s (default 600), every
#    query's answer compared across the engines -> $RESULTS/nexmark-EVENTS/ (merged.md: the
#    table; answers.md: the checks; the raw timings, summaries and logs beside them).
# The exit status is 3 if an engine's answer differed (TPC-H or Nexmark), after every step ran.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MODE=${1:-full}
if [ "$MODE" = quick ]; then
  SF=${SF:-0.1}; EVENTS=${EVENTS:-100000}; LAT_SECONDS=${LAT_SECONDS:-10}; REPS=${REPS:-3}; FLINK_RUNS=1
else
  SF=${SF:-1}; EVENTS=${EVENTS:-10000000}; LAT_SECONDS=${LAT_SECONDS:-60}; REPS=${REPS:-5}; FLINK_RUNS=2
fi
STATUS=0
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/tributary-release}
RESULTS=${RESULTS:-$ROOT/docs/benchmarks}
mkdir -p "$RESULTS"
BIN=$CARGO_TARGET_DIR/release

echo "== building release binaries ($CARGO_TARGET_DIR)"
# Every binary by name: with --bin, cargo builds only the named binaries of the selected
# packages, so the shell needs its own --bin (without it, a stale `tributary` was measured).
cargo build --release -q -p tributary-bench --bin tpch-bench --bin latency-bench --bin nexmark-bench -p tributary-cli --bin tributary

echo "== DuckDB"
python3 -m pip install --quiet --disable-pip-version-check duckdb
DUCKDB_CLI_VENV=${DUCKDB_CLI_VENV:-/var/tmp/duckdb-cli-venv}
[ -x "$DUCKDB_CLI_VENV/bin/duckdb" ] || { python3 -m venv "$DUCKDB_CLI_VENV"; "$DUCKDB_CLI_VENV/bin/pip" install -q duckdb-cli; }

echo "== TPC-H SF $SF"
"$BIN/tpch-bench" run --sf "$SF" --repetitions "$REPS" --warmup 1 \
  --json "$RESULTS/tpch-sf$SF.json" --markdown "$RESULTS/tpch-sf$SF.md" || { echo "tpch-bench: answers differed or a query failed (see above)"; STATUS=3; }
python3 bench/chart.py "$RESULTS/tpch-sf$SF.json" "$RESULTS/tpch-sf$SF-ratios.svg"

echo "== window emit latency"
"$BIN/latency-bench" --seconds "$LAT_SECONDS" --json "$RESULTS/latency.json"

echo "== start-up: SELECT 1 from the shell"
FLINK_ARGS=()
# Flink's start-up is ~14 s a process: 1 untimed + FLINK_RUNS timed, not minutes of it.
[ "${SKIP_FLINK_STARTUP:-}" = 1 ] || FLINK_ARGS=(--flink-python "${FLINK_VENV:-/var/tmp/flink-venv}/bin/python" --flink-runs "$FLINK_RUNS")
python3 bench/startup/startup.py --tributary "$BIN/tributary" --duckdb "$DUCKDB_CLI_VENV/bin/duckdb" \
  "${FLINK_ARGS[@]}" --json "$RESULTS/startup.json"

if [ "${SKIP_NEXMARK:-}" != 1 ]; then
  echo "== Nexmark, $EVENTS events"
  OUT="$RESULTS/nexmark-$EVENTS" TRIBUTARY_CLI="$BIN/tributary" NEXMARK_BENCH="$BIN/nexmark-bench" \
    bench/flink/run.sh "$EVENTS" || { echo "Nexmark: answers differed or a step failed (see above)"; STATUS=3; }
fi
echo "== done: $RESULTS (exit status $STATUS)"
exit "$STATUS"

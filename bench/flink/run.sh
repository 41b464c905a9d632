#!/usr/bin/env bash
# Side-by-side Nexmark: Tributary vs Apache Flink on the same events.
#
#   bench/flink/run.sh [EVENTS]        # default 10000000; `quick` = 100000
#
# 1. installs PyFlink (pinned) into a venv ($FLINK_VENV, default /var/tmp/flink-venv);
# 2. builds Tributary's CLI and nexmark-bench in release (CARGO_TARGET_DIR, default
#    /var/tmp/tributary-release) unless TRIBUTARY_CLI / NEXMARK_BENCH point at binaries;
# 3. writes the person, auction and bid tables of EVENTS Nexmark events once
#    ('first-event.rate' = '10000000'), as CSV without header, with Tributary's `nexmark`
#    connector (to $DATA_DIR/EVENTS/{person,auction,bid}, default /var/tmp/nexmark-csv);
# 4. runs every query of nexmark-bench's list: nexmark-bench itself (in memory; it fails
#    if folded STREAMING, BATCH and DataFusion answers differ), Tributary's CLI over the
#    CSV files (STREAMING and BATCH) and Flink over them (STREAMING and BATCH), each
#    process / job bounded by $TIMEOUT seconds (default 600), plus each engine's answer
#    summary of each query;
# 5. merges the tables and compares the answer summaries (merged.md, answers.md in
#    $OUT, default bench/flink/results/EVENTS); exit status 3 if an answer differs.
set -euo pipefail
EVENTS=${1:-10000000}
[ "$EVENTS" = quick ] && EVENTS=100000
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
FLINK_VERSION=2.3.0
FLINK_VENV=${FLINK_VENV:-/var/tmp/flink-venv}
DATA_DIR=${DATA_DIR:-/var/tmp/nexmark-csv}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/tributary-release}
export _python_worker_execution_mode=process FLINK_VERSION
OUT=${OUT:-$ROOT/bench/flink/results/$EVENTS}
TIMEOUT=${TIMEOUT:-600}
mkdir -p "$OUT"

# 1. PyFlink
if ! "$FLINK_VENV/bin/python" -c "import pyflink, sys; sys.exit(0 if pyflink.version.__version__ == '$FLINK_VERSION' else 1)" 2>/dev/null; then
  python3 -m venv "$FLINK_VENV"
  "$FLINK_VENV/bin/pip" install -q "apache-flink==$FLINK_VERSION"
fi

# 2. Tributary binaries
if [ -z "${TRIBUTARY_CLI:-}" ] || [ -z "${NEXMARK_BENCH:-}" ]; then
  (cd "$ROOT" && cargo build --release -q -p tributary-cli -p tributary-bench)
fi
CLI=${TRIBUTARY_CLI:-$CARGO_TARGET_DIR/release/tributary}
BENCH=${NEXMARK_BENCH:-$CARGO_TARGET_DIR/release/nexmark-bench}

# 3. The events, once: person, auction and bid of the same EVENTS events, each table
#    in its own directory, CSV without header, times as 'yyyy-MM-dd HH:mm:ss.SSS' (which
#    both Flink's CSV format and Tributary read as TIMESTAMP(3)). `first-event.rate` is
#    Flink's Nexmark setup (10,000,000 events/s of event time), stated although it is
#    the connector's default.
DATA=$DATA_DIR/$EVENTS
if [ ! -f "$DATA/.complete" ]; then
  rm -rf "$DATA"
  "$CLI" --mode batch -c "$(python3 "$HERE/nexmark_queries.py" write-sql "$DATA" "$EVENTS")"
  touch "$DATA/.complete"
fi
for t in person auction bid; do
  echo "$t: $(cat "$DATA/$t"/*.csv | wc -l) rows in $(ls "$DATA/$t"/*.csv | wc -l) files, $(du -sh "$DATA/$t" | cut -f1)"
done

# 4. Timings and answer summaries, every query of nexmark-bench's list; each Tributary
#    process and each Flink job gets TIMEOUT seconds, then counts as "timeout".
echo; echo "== Tributary nexmark-bench (in-memory Arrow batches, parallelism 2; folded STREAMING == BATCH == DataFusion checked) =="
STATUS=0
"$BENCH" --events "$EVENTS" --parallelism 2 | tee "$OUT/tributary-bench.md" || STATUS=3
echo; echo "== Tributary CLI over the CSV files =="
python3 "$HERE/tributary_files.py" --cli "$CLI" --path "$DATA" --events "$EVENTS" --timeout "$TIMEOUT" \
  --json "$OUT/tributary-files.json" --summaries "$OUT/summary-tributary" 2>"$OUT/tributary-files.log" \
  | tee "$OUT/tributary-files.md"
echo; echo "== Apache Flink $FLINK_VERSION over the CSV files =="
"$FLINK_VENV/bin/python" "$HERE/nexmark_flink.py" --path "$DATA" --events "$EVENTS" --parallelism 2 \
  --timeout "$TIMEOUT" --json "$OUT/flink.json" --summaries "$OUT/summary-flink.json" 2>"$OUT/flink.log" \
  | tee "$OUT/flink.md"

# 5. One table, and the answer checks of every query (exit status 3 if an answer differs).
echo; echo "== Merged table and answer checks =="
python3 "$HERE/merge_tables.py" "$OUT" --parallelism 2 || STATUS=3
exit "$STATUS"

#!/usr/bin/env bash
# Side-by-side Nexmark: Tributary vs Apache Flink on the same bids.
#
#   bench/flink/run.sh [EVENTS]        # default 10000000; `quick` = 100000
#
# 1. installs PyFlink (pinned) into a venv ($FLINK_VENV, default /var/tmp/flink-venv);
# 2. builds Tributary's CLI and nexmark-bench in release (CARGO_TARGET_DIR, default
#    /var/tmp/tributary-release) unless TRIBUTARY_CLI / NEXMARK_BENCH point at binaries;
# 3. writes the bids of EVENTS Nexmark events once, as CSV without header, with
#    Tributary's `nexmark` connector (to $BIDS_DIR/EVENTS, default /var/tmp/nexmark-bids-csv);
# 4. runs Tributary's nexmark-bench (in-memory batches), Tributary's CLI over the CSV files
#    (STREAMING and BATCH), and Flink over the CSV files (STREAMING and BATCH);
# 5. checks small answers (q2, q14, q15, q17, tumble10s, q11) between Flink and Tributary.
set -euo pipefail
EVENTS=${1:-10000000}
[ "$EVENTS" = quick ] && EVENTS=100000
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
FLINK_VERSION=2.3.0
FLINK_VENV=${FLINK_VENV:-/var/tmp/flink-venv}
BIDS_DIR=${BIDS_DIR:-/var/tmp/nexmark-bids-csv}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/tributary-release}
export _python_worker_execution_mode=process FLINK_VERSION
OUT=${OUT:-$ROOT/bench/flink/results/$EVENTS}
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

# 3. The bids, once. `datetime` is written as 'yyyy-MM-dd HH:mm:ss.SSS', which both
#    Flink's CSV format and Tributary read as TIMESTAMP(3).
DATA=$BIDS_DIR/$EVENTS
if [ ! -f "$DATA/.complete" ]; then
  rm -rf "$DATA"
  "$CLI" --mode batch -c "CREATE TABLE bid_gen WITH ('connector' = 'nexmark', 'nexmark.table' = 'bid', 'events.num' = '$EVENTS');
    CREATE TABLE bids_out (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, datetime STRING, extra STRING)
      WITH ('connector' = 'filesystem', 'path' = '$DATA/', 'format' = 'csv', 'csv.header' = 'false');
    INSERT INTO bids_out SELECT auction, bidder, price, channel, url, to_char(datetime, '%Y-%m-%d %H:%M:%S%.3f'), extra FROM bid_gen"
  touch "$DATA/.complete"
fi
echo "bids: $(cat "$DATA"/*.csv | wc -l) rows in $(ls "$DATA"/*.csv | wc -l) files, $(du -sh "$DATA" | cut -f1)"

# 4. Timings
echo; echo "== Tributary nexmark-bench (in-memory Arrow batches, parallelism 2) =="
"$BENCH" --events "$EVENTS" --parallelism 2 | tee "$OUT/tributary-bench.md"
echo; echo "== Tributary CLI over the CSV files =="
python3 "$HERE/tributary_files.py" --cli "$CLI" --path "$DATA" --events "$EVENTS" | tee "$OUT/tributary-files.md"
echo; echo "== Apache Flink $FLINK_VERSION over the CSV files =="
"$FLINK_VENV/bin/python" "$HERE/nexmark_flink.py" --path "$DATA" --events "$EVENTS" --parallelism 2 \
  --check "$OUT/flink-check.tsv" 2>"$OUT/flink.log" | tee "$OUT/flink.md"

# 5. Answers
echo; echo "== Answer checks (Tributary BATCH over the same files) =="
python3 "$HERE/tributary_files.py" --cli "$CLI" --path "$DATA" --check "$OUT/tributary-check.tsv" > /dev/null
if diff "$OUT/flink-check.tsv" "$OUT/tributary-check.tsv"; then
  echo "all checks equal:"; cat "$OUT/tributary-check.tsv"
else
  echo "CHECKS DIFFER (< Flink, > Tributary)"
fi

echo; echo "== Tributary STREAMING / Flink STREAMING =="
python3 "$HERE/merge_tables.py" "$OUT"

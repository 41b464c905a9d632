#!/bin/bash
# The BATCH shuffle-mode benchmark: seven queries (aggregations, joins, a
# top-k, a window) over generated Parquet files, each run as one `tributary
# -c` invocation, interleaved: round by round, query by query, the variants
#   blocking   execution.batch-shuffle-mode = ALL_EXCHANGES_BLOCKING (default)
#   pipelined  execution.batch-shuffle-mode = ALL_EXCHANGES_PIPELINED
#   datafusion pipelined, taskmanager.memory.managed.size = 0 (DataFusion's
#              plan and unbounded memory pool, as DataFusion runs it)
# Prints "round query variant seconds answer-hash" lines; summarize.py turns
# them into medians, ratios to datafusion and geometric means.
#
# usage: bench/batch-shuffle/run.sh DIR [ROUNDS]   (DIR: where gen_data.py wrote)
# needs: a release build of the shell, e.g.
#   cargo build --release -p tributary-cli
#   TRIBUTARY=target/release/tributary bench/batch-shuffle/run.sh /tmp/shuffle 5
set -euo pipefail
DIR=$1
ROUNDS=${2:-5}
T=${TRIBUTARY:-target/release/tributary}
HERE=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$DIR/pq" ]; then
  mkdir -p "$DIR/pq" "$DIR/dimpq"
  $T -c "CREATE TABLE tcsv (k BIGINT, v BIGINT, price DOUBLE, flag STRING, s STRING) WITH ('connector' = 'filesystem', 'path' = '$DIR/csv', 'format' = 'csv');
CREATE TABLE t (k BIGINT, v BIGINT, price DOUBLE, flag STRING, s STRING) WITH ('connector' = 'filesystem', 'path' = '$DIR/pq', 'format' = 'parquet');
INSERT INTO t SELECT * FROM tcsv;
CREATE TABLE dcsv (id BIGINT, g BIGINT, name STRING) WITH ('connector' = 'filesystem', 'path' = '$DIR/dimcsv', 'format' = 'csv');
CREATE TABLE dim (id BIGINT, g BIGINT, name STRING) WITH ('connector' = 'filesystem', 'path' = '$DIR/dimpq', 'format' = 'parquet');
INSERT INTO dim SELECT * FROM dcsv;" >/dev/null
fi
declare -A SETS
SETS[blocking]="SET 'execution.batch-shuffle-mode' = 'ALL_EXCHANGES_BLOCKING';"
SETS[pipelined]="SET 'execution.batch-shuffle-mode' = 'ALL_EXCHANGES_PIPELINED';"
SETS[datafusion]="SET 'execution.batch-shuffle-mode' = 'ALL_EXCHANGES_PIPELINED'; SET 'taskmanager.memory.managed.size' = '0';"
DDL="SET 'execution.runtime-mode' = 'batch'; CREATE TABLE t (k BIGINT, v BIGINT, price DOUBLE, flag STRING, s STRING) WITH ('connector' = 'filesystem', 'path' = '$DIR/pq', 'format' = 'parquet'); CREATE TABLE dim (id BIGINT, g BIGINT, name STRING) WITH ('connector' = 'filesystem', 'path' = '$DIR/dimpq', 'format' = 'parquet');"
for r in $(seq 1 "$ROUNDS"); do
  q=0
  while IFS= read -r query; do
    q=$((q + 1))
    for v in blocking pipelined datafusion; do
      out=$($T -c "$DDL ${SETS[$v]} $query" 2>&1)
      secs=$(echo "$out" | grep -oE 'in set \([0-9.]+ sec\)' | grep -oE '[0-9.]+')
      # Answers compared with floats to 9 significant digits (sums differ
      # in the last bits with the order rows arrive in).
      hash=$(echo "$out" | grep "^|" | tr -s ' ' | python3 -c "
import sys, re
print(re.sub(r'-?[0-9]+\.[0-9]+(e[-+]?[0-9]+)?', lambda m: format(float(m.group(0)), '.9g'), sys.stdin.read()))" | md5sum | cut -c1-8)
      echo "$r q$q $v $secs $hash"
    done
  done < "$HERE/queries.txt"
done

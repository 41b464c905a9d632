"""Nexmark bid queries in Apache Flink (PyFlink Table API), STREAMING and BATCH.

Reads the bids that Tributary's `nexmark` connector generated and wrote once as
CSV (see run.sh), so both engines see the same events. Each query runs as
`INSERT INTO` a `blackhole` sink on a local mini-cluster (parallelism 2, all
servers on 127.0.0.1) and is timed from submission (`execute_sql`, which also
plans the job) to the job's end (`.wait()`), after one warm-up query.

    python nexmark_flink.py --path /var/tmp/nexmark-bids-csv/2000000 --events 2000000 \
        [--queries q0,q2] [--modes streaming,batch] [--check out.csv]

Queries are Flink's Nexmark SQL (https://github.com/nexmark/nexmark) with the
column names of our data (`datetime`, not `dateTime`); q14's `count_char` UDF
is written with built-ins, as in Tributary's bench:
CHAR_LENGTH(extra) - CHAR_LENGTH(REPLACE(extra, 'c', '')).
"""

import argparse
import re
import os
import sys
import time

os.environ.setdefault("_python_worker_execution_mode", "process")

from pyflink.common import RowKind  # noqa: E402
from pyflink.table import EnvironmentSettings, TableEnvironment  # noqa: E402

QUERIES = [
    ("q0", "SELECT auction, bidder, price, datetime, extra FROM bid"),
    ("q1", "SELECT auction, bidder, 0.908 * price AS price, datetime, extra FROM bid"),
    ("q2", "SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0"),
    (
        "q11",
        """SELECT bidder, COUNT(*) AS bid_count, window_start, window_end
           FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(datetime), INTERVAL '10' SECOND))
           GROUP BY bidder, window_start, window_end""",
    ),
    (
        "q14",
        """SELECT auction, bidder, 0.908 * price AS price,
             CASE WHEN HOUR(datetime) >= 8 AND HOUR(datetime) <= 18 THEN 'dayTime'
                  WHEN HOUR(datetime) <= 6 OR HOUR(datetime) >= 20 THEN 'nightTime'
                  ELSE 'otherTime' END AS bidTimeType,
             datetime, extra, CHAR_LENGTH(extra) - CHAR_LENGTH(REPLACE(extra, 'c', '')) AS c_counts
           FROM bid WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000""",
    ),
    (
        "q15",
        """SELECT DATE_FORMAT(datetime, 'yyyy-MM-dd') AS `day`,
             COUNT(*) AS total_bids,
             COUNT(*) FILTER (WHERE price < 10000) AS rank1_bids,
             COUNT(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
             COUNT(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
             COUNT(DISTINCT bidder) AS total_bidders,
             COUNT(DISTINCT bidder) FILTER (WHERE price < 10000) AS rank1_bidders,
             COUNT(DISTINCT bidder) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bidders,
             COUNT(DISTINCT bidder) FILTER (WHERE price >= 1000000) AS rank3_bidders,
             COUNT(DISTINCT auction) AS total_auctions,
             COUNT(DISTINCT auction) FILTER (WHERE price < 10000) AS rank1_auctions,
             COUNT(DISTINCT auction) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_auctions,
             COUNT(DISTINCT auction) FILTER (WHERE price >= 1000000) AS rank3_auctions
           FROM bid GROUP BY DATE_FORMAT(datetime, 'yyyy-MM-dd')""",
    ),
    (
        "q17",
        """SELECT auction, DATE_FORMAT(datetime, 'yyyy-MM-dd') AS `day`,
             COUNT(*) AS total_bids,
             COUNT(*) FILTER (WHERE price < 10000) AS rank1_bids,
             COUNT(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
             COUNT(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
             MIN(price) AS min_price, MAX(price) AS max_price, AVG(price) AS avg_price, SUM(price) AS sum_price
           FROM bid GROUP BY auction, DATE_FORMAT(datetime, 'yyyy-MM-dd')""",
    ),
    (
        "tumble10s",
        """SELECT auction, window_start, window_end, COUNT(*) AS bids
           FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(datetime), INTERVAL '10' SECOND))
           GROUP BY auction, window_start, window_end""",
    ),
]

# q11 with the legacy group window, used where the SESSION window TVF is refused.
Q11_GROUP_WINDOW = """SELECT bidder, COUNT(*) AS bid_count,
       SESSION_START(datetime, INTERVAL '10' SECOND) AS window_start,
       SESSION_END(datetime, INTERVAL '10' SECOND) AS window_end
     FROM bid GROUP BY bidder, SESSION(datetime, INTERVAL '10' SECOND)"""

# Small-output checks: (name, SQL over bid) -- the same text runs in Tributary BATCH.
CHECKS = [
    ("q2", "SELECT COUNT(*) AS n, SUM(price) AS s FROM bid WHERE MOD(auction, 123) = 0"),
    ("q14", "SELECT COUNT(*) AS n, SUM(CHAR_LENGTH(extra) - CHAR_LENGTH(REPLACE(extra, 'c', ''))) AS s "
            "FROM bid WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000"),
    ("q15", "SELECT COUNT(*) AS total_bids, COUNT(DISTINCT bidder) AS total_bidders, "
            "COUNT(DISTINCT auction) AS total_auctions, "
            "COUNT(DISTINCT bidder) FILTER (WHERE price >= 1000000) AS rank3_bidders FROM bid"),
    ("q17", "SELECT COUNT(*) AS n, SUM(total_bids) AS s, SUM(sum_price) AS p, MAX(max_price) AS m FROM "
            "(SELECT auction, CAST(datetime AS DATE) AS d, COUNT(*) AS total_bids, "
            "SUM(price) AS sum_price, MAX(price) AS max_price FROM bid GROUP BY auction, CAST(datetime AS DATE)) t"),
    ("tumble10s", "SELECT COUNT(*) AS n, SUM(bids) AS s FROM "
                  "(SELECT auction, window_start, COUNT(*) AS bids "
                  "FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(datetime), INTERVAL '10' SECOND)) "
                  "GROUP BY auction, window_start, window_end) t"),
    ("q11", "SELECT COUNT(*) AS n, SUM(bid_count) AS s FROM "
            "(SELECT bidder, COUNT(*) AS bid_count, window_start, window_end "
            "FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(datetime), INTERVAL '10' SECOND)) "
            "GROUP BY bidder, window_start, window_end) t"),
]

def q(sql):
    """`datetime` is a reserved word in Flink 2.x's parser: quote it."""
    return re.sub(r"(?<![`\w])datetime(?![`\w])", "`datetime`", sql)


BID_DDL = """CREATE TABLE bid (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  channel STRING,
  url STRING,
  datetime TIMESTAMP(3),
  extra STRING,
  WATERMARK FOR datetime AS datetime - INTERVAL '4' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = '{path}',
  'format' = 'csv'
)"""


def make_env(mode, parallelism):
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
    ]:
        conf.set(k, v)
    return t_env


def sink_ddl(t_env, name, sql):
    """A blackhole table with the columns of the query's result."""
    schema = t_env.sql_query(sql).get_schema()
    cols = []
    for n, ty in zip(schema.get_field_names(), schema.get_field_data_types()):
        ty = str(ty)
        # Rowtime attributes print as TIMESTAMP(3) *ROWTIME*; a sink column is a plain TIMESTAMP(3).
        ty = ty.replace(" *ROWTIME*", "").replace(" *PROCTIME*", "")
        cols.append(f"`{n}` {ty}")
    return f"CREATE TEMPORARY TABLE {name} ({', '.join(cols)}) WITH ('connector' = 'blackhole')"


def run_query(t_env, name, sql):
    sink = f"sink_{name}_{int(time.time() * 1000)}"
    t_env.execute_sql(sink_ddl(t_env, sink, sql))
    start = time.perf_counter()
    t_env.execute_sql(f"INSERT INTO {sink} {sql}").wait()
    return time.perf_counter() - start


def time_mode(mode, args, names):
    t_env = make_env(mode, args.parallelism)
    t_env.execute_sql(q(BID_DDL.format(path=args.path)))
    # Warm-up: one query, not timed (JIT, class loading, mini-cluster start).
    run_query(t_env, "warmup", "SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0")
    out = {}
    for name, sql in QUERIES:
        if name not in names:
            continue
        try:
            out[name] = run_query(t_env, name, q(sql))
        except Exception as e:  # noqa: BLE001 -- report and go on with the next query
            msg = str(e).strip().splitlines()
            if name == "q11":
                try:
                    out[name] = run_query(t_env, name, q(Q11_GROUP_WINDOW))
                    out[name + "_note"] = "group window"
                    print(f"[{mode}] q11: SESSION TVF refused, used SESSION group window", file=sys.stderr)
                    continue
                except Exception as e2:  # noqa: BLE001
                    e = e2
                    msg = str(e2).strip().splitlines()
            # None: failed; "unsupported": Flink refuses the query in this mode.
            out[name] = "unsupported" if "not supported" in str(e) + " ".join(msg) else None
            print(f"[{mode}] {name} failed: {' '.join(msg[:3])[:400]}", file=sys.stderr)
        print(f"[{mode}] {name}: {out[name]}", file=sys.stderr, flush=True)
    return out


def run_checks(args):
    envs = {}
    rows = []
    for name, sql in CHECKS:
        # Flink 2.3 runs no session window in BATCH ("Unaligned windows like session are not
        # supported in batch mode yet"); q11's check runs in STREAMING (its output is final rows).
        mode = "streaming" if name == "q11" else "batch"
        if mode not in envs:
            envs[mode] = make_env(mode, args.parallelism)
            envs[mode].execute_sql(q(BID_DDL.format(path=args.path)))
        t_env = envs[mode]
        try:
            with t_env.execute_sql(q(sql)).collect() as results:
                # Every check returns one row; in STREAMING the collected changelog's last
                # +I/+U row is the final one.
                vals = [tuple(r) for r in results
                        if r.get_row_kind() in (RowKind.INSERT, RowKind.UPDATE_AFTER)][-1:]
            rows.append((name, ";".join(",".join(str(v) for v in r) for r in vals)))
        except Exception as e:  # noqa: BLE001
            rows.append((name, "ERROR " + str(e).strip().splitlines()[0][:200]))
    with open(args.check, "w") as f:
        for name, v in rows:
            f.write(f"{name}\t{v}\n")
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--path", required=True, help="directory of the bids as CSV (no header)")
    p.add_argument("--events", type=int, required=True, help="events generated (for events/s)")
    p.add_argument("--parallelism", type=int, default=2)
    p.add_argument("--queries", default=",".join(n for n, _ in QUERIES))
    p.add_argument("--modes", default="streaming,batch")
    p.add_argument("--check", help="write small-output check results (Flink BATCH; q11 STREAMING) to this file")
    args = p.parse_args()
    names = args.queries.split(",")
    modes = args.modes.split(",")
    res = {m: time_mode(m, args, names) if m in modes else {} for m in ("streaming", "batch")}

    def fmt(v):
        if v is None:
            return "failed"
        if v == "unsupported":
            return "not supported by Flink"
        return "–" if v == "" else f"{v:.3f}"

    print()
    print(f"Flink {os.environ.get('FLINK_VERSION', '')} ({args.events} events, parallelism {args.parallelism})")
    print()
    print("| query | Flink STREAMING s | Flink BATCH s | STREAMING events/s |")
    print("|---|---|---|---|")
    for name, _ in QUERIES:
        if name not in names:
            continue
        s = res["streaming"].get(name, "")
        b = res["batch"].get(name, "")
        eps = f"{args.events / s:.0f}" if isinstance(s, float) else "–"
        note = res["streaming"].get(name + "_note") or res["batch"].get(name + "_note")
        label = f"{name} ({note})" if note else name
        print(f"| {label} | {fmt(s)} | {fmt(b)} | {eps} |")
    sys.stdout.flush()
    if args.check:
        print()
        print("Flink checks (BATCH; q11 STREAMING):")
        for name, v in run_checks(args):
            print(f"  {name}: {v}")


if __name__ == "__main__":
    main()

"""Tributary over the same CSV files as Flink, through the CLI (`tributary`).

For each query: a fresh `tributary --mode streaming|batch` process declares the
bids table over the files (same WATERMARK as Flink), a `blackhole` sink with
the query's columns, and runs `INSERT INTO sink <query>`. The time reported is
the CLI's own timing of the INSERT (planning + reading the files + running to
the end), which excludes process start; the process's wall time is printed
too. Query texts are those of bench/src/nexmark_bench.rs.

    python3 tributary_files.py --cli PATH --path DIR --events N [--modes streaming,batch]
    python3 tributary_files.py --cli PATH --path DIR --check OUT.tsv
"""

import argparse
import re
import subprocess
import sys
import time

BID = """CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  datetime TIMESTAMP(3), extra STRING, WATERMARK FOR datetime AS datetime - INTERVAL '4' SECOND)
  WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv', 'csv.header' = 'false');"""

COUNTS = ", ".join(f"{c} BIGINT" for c in [
    "total_bids", "rank1_bids", "rank2_bids", "rank3_bids", "total_bidders", "rank1_bidders",
    "rank2_bidders", "rank3_bidders", "total_auctions", "rank1_auctions", "rank2_auctions", "rank3_auctions"])

# (name, sink columns, query) -- queries as in bench/src/nexmark_bench.rs.
QUERIES = [
    ("q0", "auction BIGINT, bidder BIGINT, price BIGINT, datetime TIMESTAMP(3), extra STRING",
     "SELECT auction, bidder, price, datetime, extra FROM bid"),
    ("q1", "auction BIGINT, bidder BIGINT, price DOUBLE, datetime TIMESTAMP(3), extra STRING",
     "SELECT auction, bidder, 0.908 * price AS price, datetime, extra FROM bid"),
    ("q2", "auction BIGINT, price BIGINT", "SELECT auction, price FROM bid WHERE auction % 123 = 0"),
    ("q11", "bidder BIGINT, bid_count BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3)",
     """SELECT bidder, COUNT(*) AS bid_count, window_start, window_end
        FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(datetime), INTERVAL '10' SECOND))
        GROUP BY bidder, window_start, window_end"""),
    ("q14", "auction BIGINT, bidder BIGINT, price DOUBLE, bidTimeType STRING, datetime TIMESTAMP(3), "
            "extra STRING, c_counts BIGINT",
     """SELECT auction, bidder, 0.908 * price AS price,
          CASE WHEN EXTRACT(HOUR FROM datetime) >= 8 AND EXTRACT(HOUR FROM datetime) <= 18 THEN 'dayTime'
               WHEN EXTRACT(HOUR FROM datetime) <= 6 OR EXTRACT(HOUR FROM datetime) >= 20 THEN 'nightTime'
               ELSE 'otherTime' END AS bidTimeType,
          datetime, extra, LENGTH(extra) - LENGTH(REPLACE(extra, 'c', '')) AS c_counts
        FROM bid WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000"""),
    ("q15", f"day STRING, {COUNTS}",
     """SELECT to_char(datetime, '%Y-%m-%d') AS day,
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
        FROM bid GROUP BY to_char(datetime, '%Y-%m-%d')"""),
    ("q17", "auction BIGINT, day STRING, total_bids BIGINT, rank1_bids BIGINT, rank2_bids BIGINT, "
            "rank3_bids BIGINT, min_price BIGINT, max_price BIGINT, avg_price DOUBLE, sum_price BIGINT",
     """SELECT auction, to_char(datetime, '%Y-%m-%d') AS day,
          COUNT(*) AS total_bids,
          COUNT(*) FILTER (WHERE price < 10000) AS rank1_bids,
          COUNT(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
          COUNT(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
          MIN(price) AS min_price, MAX(price) AS max_price, AVG(price) AS avg_price, SUM(price) AS sum_price
        FROM bid GROUP BY auction, to_char(datetime, '%Y-%m-%d')"""),
    ("tumble10s", "auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), bids BIGINT",
     """SELECT auction, window_start, window_end, COUNT(*) AS bids
        FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(datetime), INTERVAL '10' SECOND))
        GROUP BY auction, window_start, window_end"""),
]


def run_cli(cli, mode, sql, fmt=None):
    cmd = [cli, "--mode", mode] + (["--format", fmt] if fmt else []) + ["-c", sql]
    start = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if p.returncode != 0:
        raise RuntimeError((p.stderr or p.stdout).strip()[:400])
    return p.stdout, wall


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--cli", required=True)
    a.add_argument("--path", required=True)
    a.add_argument("--events", type=int, default=0)
    a.add_argument("--modes", default="streaming,batch")
    a.add_argument("--queries", default=",".join(n for n, _, _ in QUERIES))
    a.add_argument("--check", help="run the small-output checks (BATCH, --format csv) into this file")
    args = a.parse_args()
    bid = BID.format(path=args.path)
    if args.check:
        # The checks: the same SQL text as Flink's (nexmark_flink.CHECKS), unquoted.
        src = open(__file__.rsplit("/", 1)[0] + "/nexmark_flink.py").read()
        ns = {}
        exec(src[src.index("CHECKS = ["):src.index("]\n\n", src.index("CHECKS = [")) + 1], ns)
        checks = ns["CHECKS"]
        with open(args.check, "w") as f:
            for name, sql in checks:
                try:
                    out, _ = run_cli(args.cli, "batch", bid + sql, "csv")
                    lines = [l for l in out.strip().splitlines() if l and not l.startswith("Table ")]
                    v = ";".join(lines[1:])
                except RuntimeError as e:
                    v = "ERROR " + str(e).splitlines()[0]
                f.write(f"{name}\t{v}\n")
                print(f"  {name}: {v}")
        return
    names = args.queries.split(",")
    modes = args.modes.split(",")
    res = {}
    for name, cols, sql in QUERIES:
        if name not in names:
            continue
        for mode in modes:
            try:
                out, wall = run_cli(args.cli, mode,
                                    f"{bid} CREATE TABLE sink ({cols}) WITH ('connector' = 'blackhole'); "
                                    f"INSERT INTO sink {sql}")
                m = re.search(r"\(([\d.]+) sec\)", out.strip().splitlines()[-1])
                res[(name, mode)] = (float(m.group(1)) if m else wall, wall)
            except RuntimeError as e:
                print(f"[{mode}] {name} failed: {e}", file=sys.stderr)
                res[(name, mode)] = None
            print(f"[{mode}] {name}: {res[(name, mode)]}", file=sys.stderr, flush=True)
    print()
    print(f"Tributary CLI over the same CSV files ({args.events} events)")
    print()
    print("| query | Tributary STREAMING s | Tributary BATCH s | STREAMING events/s | STREAMING wall s (process) |")
    print("|---|---|---|---|---|")
    f = lambda r: "failed" if r is None else f"{r[0]:.3f}"  # noqa: E731
    for name, _, _ in QUERIES:
        if name not in names:
            continue
        s, b = res.get((name, "streaming")), res.get((name, "batch"))
        eps = f"{args.events / s[0]:.0f}" if s and args.events else "–"
        print(f"| {name} | {f(s)} | {f(b) if (name, 'batch') in res else '–'} | {eps} | "
              f"{'–' if not s else f'{s[1]:.3f}'} |")


if __name__ == "__main__":
    main()

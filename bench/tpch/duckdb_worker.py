#!/usr/bin/env python3
"""DuckDB side of the TPC-H comparison (bench/src/tpch/engines.rs drives it).

Views over the same Parquet files as the other engines (read on every query,
as they do); one JSON request per stdin line, {"sql": "..."}; one JSON reply
per stdout line, {"seconds": s, "rows": [[...], ...]} or {"error": "..."}.
The time covers execute and fetchall (the whole result materialized).
Decimals are sent as floats and dates as ISO text, as the Rust side
normalizes its own answers.
"""
import argparse
import datetime
import decimal
import json
import sys
import time

import duckdb


def cell(v):
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    return v


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--threads", type=int, required=True)
    a = p.parse_args()
    con = duckdb.connect()
    con.execute(f"SET threads = {a.threads}")
    for t in ["nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem"]:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{a.data}/{t}/*.parquet')")
    print(json.dumps({"ready": duckdb.__version__}), flush=True)
    for line in sys.stdin:
        sql = json.loads(line)["sql"]
        try:
            start = time.perf_counter()
            rows = con.execute(sql).fetchall()
            seconds = time.perf_counter() - start
            reply = {"seconds": seconds, "rows": [[cell(v) for v in r] for r in rows]}
        except Exception as e:  # noqa: BLE001 - reported to the driver
            reply = {"error": str(e)}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()

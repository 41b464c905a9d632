#!/usr/bin/env python3
"""Compute, with DuckDB, the figures that tests/flights_duckdb.rs checks
Tributary against, from the same Parquet files (examples/data/*.parquet).

The figures are written to tests/expected/<name>.csv. They come from DuckDB
alone, never from Tributary's output; each query's SQL is written
beside its figures (tests/expected/<name>.sql), so both engines run the same text. `--check` recomputes them and fails if
the committed files differ (CI runs this, so the figures stay DuckDB's).

Usage: pip install duckdb && python3 tests/duckdb_expected.py [--check]
"""
import csv
import io
import os
import sys

import duckdb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "examples", "data")
OUT = os.path.join(ROOT, "tests", "expected")

# name -> SQL. The same SQL runs in Tributary (tests/flights_duckdb.rs), over
# tables declared by examples/flights_tables.sql.
QUERIES = {
    "row_counts": """
        SELECT 'airlines' AS t, COUNT(*) AS n FROM airlines UNION ALL
        SELECT 'airports', COUNT(*) FROM airports UNION ALL
        SELECT 'flights', COUNT(*) FROM flights UNION ALL
        SELECT 'planes', COUNT(*) FROM planes UNION ALL
        SELECT 'weather', COUNT(*) FROM weather
        ORDER BY t""",
    "carrier_counts": """
        SELECT carrier, COUNT(*) AS n FROM flights GROUP BY carrier ORDER BY n DESC""",
    "delay_per_carrier": """
        SELECT carrier, AVG(dep_delay) AS avg_dep_delay, AVG(arr_delay) AS avg_arr_delay,
               SUM(arr_delay) AS sum_arr_delay, MIN(arr_delay) AS min_arr_delay,
               MAX(arr_delay) AS max_arr_delay
        FROM flights GROUP BY carrier ORDER BY carrier""",
    "cancelled_per_carrier": """
        SELECT carrier, COUNT(*) AS flights,
               COUNT(*) FILTER (WHERE dep_time IS NULL) AS cancelled
        FROM flights GROUP BY carrier ORDER BY carrier""",
    "delay_by_origin_month": """
        SELECT origin, month, COUNT(*) AS flights, COUNT(dep_delay) AS departed,
               AVG(dep_delay) AS avg_dep_delay
        FROM flights GROUP BY origin, month ORDER BY origin, month""",
    "routes_with_names": """
        SELECT f.origin, f.dest, a.name AS airline, COUNT(*) AS flights
        FROM flights f JOIN airlines a ON f.carrier = a.carrier
        JOIN airports d ON f.dest = d.faa
        GROUP BY f.origin, f.dest, a.name
        ORDER BY flights DESC, f.origin, f.dest, airline LIMIT 20""",
}


def compute():
    con = duckdb.connect()
    for t in ["flights", "airlines", "airports", "planes", "weather"]:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM '{os.path.join(DATA, t + '.parquet')}'")
    out = {}
    for name, sql in QUERIES.items():
        cur = con.execute(sql)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([d[0] for d in cur.description])
        for row in cur.fetchall():
            w.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in row])
        out[name + ".csv"] = buf.getvalue()
        out[name + ".sql"] = " ".join(sql.split()) + "\n"
    return out


def main():
    check = "--check" in sys.argv
    os.makedirs(OUT, exist_ok=True)
    bad = []
    for name, text in compute().items():
        path = os.path.join(OUT, name)
        if check:
            with open(path) as f:
                if f.read() != text:
                    bad.append(path)
        else:
            with open(path, "w") as f:
                f.write(text)
            print(f"wrote {os.path.relpath(path, ROOT)}")
    if bad:
        print("DuckDB figures differ from the committed ones:", *bad, sep="\n  ")
        sys.exit(1)
    if check:
        print(f"DuckDB figures match tests/expected/ ({len(QUERIES)} files)")


if __name__ == "__main__":
    main()

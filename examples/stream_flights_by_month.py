#!/usr/bin/env python3
"""Feed a monitored directory with the flight data, one month at a time.

Splits examples/data/flights.parquet (every New York departure of 2013, in
order of actual departure) into one Parquet file per month (by the `month`
column; rows keep their order) and drops the files into a directory one by
one, with a pause between them. A Tributary query over a table that watches
that directory shows the results as each month arrives.

Each file is written under a hidden name (`.flights-2013-01.parquet.inprogress`)
and renamed when complete: a monitored table skips names starting with `.`
or `_`, so it never reads a half-written file. Any writer into a monitored
directory must do the same.

In one shell, start the feed:

    python3 examples/stream_flights_by_month.py            # 5 s between months
    python3 examples/stream_flights_by_month.py --pause 2 --dest /tmp/tributary-flights/

In another, watch it (`cargo run -p tributary-cli`), creating the table:

    CREATE TABLE flights_live (
      year INT, month INT, day INT,
      dep_time INT, sched_dep_time INT, dep_delay DOUBLE,
      arr_time INT, sched_arr_time INT, arr_delay DOUBLE,
      carrier STRING, flight INT, tailnum STRING,
      origin STRING, dest STRING, air_time DOUBLE, distance DOUBLE,
      hour INT, minute INT, time_hour TIMESTAMP(3),
      WATERMARK FOR time_hour AS time_hour - INTERVAL '3' HOUR
    ) WITH (
      'connector' = 'filesystem',
      'path' = '/tmp/tributary-flights/',
      'format' = 'parquet',
      'source.monitor-interval' = '1 s'
    );

    -- An updating aggregate: each carrier's row is revised as months arrive.
    SELECT carrier, COUNT(*) AS flights, ROUND(AVG(arr_delay), 1) AS avg_arr_delay_min
    FROM flights_live GROUP BY carrier;

    -- Event-time windows: a week's row comes out once, when the watermark
    -- (3 hours behind the latest time_hour read) passes its end: most weeks
    -- while their month's file is read, a month's last week when the next
    -- month arrives.
    SELECT window_start, window_end, COUNT(*) AS departures, ROUND(AVG(dep_delay), 1) AS avg_delay_min
    FROM TABLE(TUMBLE(TABLE flights_live, DESCRIPTOR(time_hour), INTERVAL '7' DAY))
    GROUP BY window_start, window_end;

The table is unbounded (`'source.monitor-interval'`), so the query runs in
STREAMING mode and never ends: press Ctrl-C to stop it. Start the query
before, during or after the feed: files already in the directory are read
first, in order of modification time.

Requires DuckDB (`pip install duckdb`), as examples/data/build_flights_data.py.
"""
import argparse
import os
import sys
import time

import duckdb

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SOURCE = os.path.join(HERE, "data", "flights.parquet")
DEFAULT_DEST = "/tmp/tributary-flights/"


def sql_string(s):
    """A SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


def main():
    parser = argparse.ArgumentParser(
        description="Drop the flight data into a directory one month at a time, for a monitored table.")
    parser.add_argument("--dest", default=DEFAULT_DEST,
                        help=f"the directory to write into, created if missing (default {DEFAULT_DEST})")
    parser.add_argument("--pause", type=float, default=5.0,
                        help="seconds to wait between months (default 5)")
    parser.add_argument("--source", default=DEFAULT_SOURCE,
                        help="the flights Parquet file (default examples/data/flights.parquet)")
    parser.add_argument("--clean", action="store_true",
                        help="first delete the month files a previous run left in --dest")
    args = parser.parse_args()
    if args.pause < 0:
        parser.error("--pause must not be negative")

    os.makedirs(args.dest, exist_ok=True)
    con = duckdb.connect()
    # file_row_number keeps each month's rows in the order of the source file
    # (order of actual departure).
    con.execute(f"CREATE VIEW flights AS SELECT * FROM read_parquet({sql_string(args.source)}, file_row_number = true)")
    columns = [r[0] for r in con.execute("DESCRIBE flights").fetchall() if r[0] != "file_row_number"]
    year_months = con.execute("SELECT DISTINCT year, month FROM flights ORDER BY year, month").fetchall()
    names = [f"flights-{y}-{m:02d}.parquet" for y, m in year_months]

    existing = [n for n in names if os.path.exists(os.path.join(args.dest, n))]
    if existing and not args.clean:
        sys.exit(f"{args.dest} already holds {', '.join(existing[:3])}{' ...' if len(existing) > 3 else ''} "
                 "from an earlier run: a monitored table reads each file once, so rerun with --clean "
                 "(and restart the query) or pick another --dest")
    for n in existing:
        os.remove(os.path.join(args.dest, n))

    select = ", ".join(f'"{c}"' for c in columns)
    for i, ((year, month), name) in enumerate(zip(year_months, names)):
        if i > 0 and args.pause > 0:
            time.sleep(args.pause)
        final = os.path.join(args.dest, name)
        hidden = os.path.join(args.dest, f".{name}.inprogress")
        con.execute(
            f"COPY (SELECT {select} FROM flights WHERE year = {year} AND month = {month} ORDER BY file_row_number) "
            f"TO {sql_string(hidden)} (FORMAT parquet, COMPRESSION zstd)")
        os.replace(hidden, final)  # atomic within one file system
        rows = con.execute(f"SELECT COUNT(*) FROM read_parquet({sql_string(final)})").fetchone()[0]
        print(f"{time.strftime('%H:%M:%S')}  {final}: {rows:,} flights", flush=True)
    print(f"done: {len(names)} files in {args.dest}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)

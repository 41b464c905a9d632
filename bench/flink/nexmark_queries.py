"""What the Flink and the Tributary-CLI sides of the Nexmark comparison share:
the three tables, the queries and the answer summaries.

- The queries are those of `bench/src/nexmark_bench.rs` (read from its
  `QUERIES`), so the CLI and Flink run exactly the in-memory bench's list;
  `flink_sql` turns Tributary's DataFusion spellings back into Flink's
  Nexmark ones (https://github.com/nexmark/nexmark).
- The tables are declared from one column list in both engines, over the
  CSV files run.sh writes, with `WATERMARK FOR datetime AS datetime -
  INTERVAL '4' SECOND`.
- A summary of an answer is the query wrapped in one aggregate: the row
  count and SUM, MIN and MAX of every numeric column. Each engine computes
  it over its own answer (in STREAMING over the changelog, so it is the
  summary of the folded table), and `compare` sets them side by side.
"""

import json
import math
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH_RS = os.path.join(HERE, "..", "src", "nexmark_bench.rs")

# The columns of the `nexmark` connector's tables, as written to CSV by run.sh.
TABLES = {
    "person": [
        ("id", "BIGINT"), ("name", "STRING"), ("emailaddress", "STRING"), ("creditcard", "STRING"),
        ("city", "STRING"), ("state", "STRING"), ("datetime", "TIMESTAMP(3)"), ("extra", "STRING"),
    ],
    "auction": [
        ("id", "BIGINT"), ("itemname", "STRING"), ("description", "STRING"), ("initialbid", "BIGINT"),
        ("reserve", "BIGINT"), ("datetime", "TIMESTAMP(3)"), ("expires", "TIMESTAMP(3)"),
        ("seller", "BIGINT"), ("category", "BIGINT"), ("extra", "STRING"),
    ],
    "bid": [
        ("auction", "BIGINT"), ("bidder", "BIGINT"), ("price", "BIGINT"), ("channel", "STRING"),
        ("url", "STRING"), ("datetime", "TIMESTAMP(3)"), ("extra", "STRING"),
    ],
}

# Time formats of the CSV files: Flink's CSV format and Tributary both read
# 'yyyy-MM-dd HH:mm:ss.SSS' as TIMESTAMP(3).
CSV_TIME = "%Y-%m-%d %H:%M:%S%.3f"


def queries():
    """[(name, Tributary SQL)] in nexmark-bench's order, from its source."""
    src = open(BENCH_RS).read()
    body = src[src.index("const QUERIES"):]
    body = body[:body.index("\n];")]
    found = re.findall(r'\(\s*"(\w+)",\s*"([^"]*)"', body)
    if not found:
        raise SystemExit(f"no queries found in {BENCH_RS}")
    return found


def tie_free_columns():
    """{query: [columns]}: nexmark-bench's TIE_FREE_COLUMNS, the columns an answer is
    checked on where its ROW_NUMBER ORDER BY can tie (the engines may keep different
    rows of a tie)."""
    src = open(BENCH_RS).read()
    body = src[src.index("const TIE_FREE_COLUMNS"):]
    body = body[:body.index("\n];")]
    return {q: re.findall(r'"(\w+)"', cols) for q, cols in re.findall(r'\(\s*"(\w+)",\s*&\[([^\]]*)\]', body)}


def select(names):
    """The queries named (comma-separated), or all; an unknown name is an error."""
    all_ = queries()
    if not names:
        return all_
    wanted = names.split(",")
    unknown = set(wanted) - {n for n, _ in all_}
    if unknown:
        raise SystemExit(f"unknown queries: {', '.join(sorted(unknown))}")
    return [(n, s) for n, s in all_ if n in wanted]


def table_ddl(name, path, flink):
    """CREATE TABLE over the CSV files of one table, in either engine."""
    quote = (lambda c: f"`{c}`") if flink else (lambda c: c)
    cols = ", ".join(f"{quote(c)} {t}" for c, t in TABLES[name])
    wm = f"WATERMARK FOR {quote('datetime')} AS {quote('datetime')} - INTERVAL '4' SECOND"
    header = "" if flink else ", 'csv.header' = 'false'"
    return (f"CREATE TABLE {name} ({cols}, {wm}) WITH ('connector' = 'filesystem', "
            f"'path' = '{path}/{name}', 'format' = 'csv'{header})")


# Tributary's spelling -> Flink's (Flink 2.x), each with why.
FLINK_SPELLINGS = [
    # DataFusion's chrono formats; Flink's Nexmark uses DATE_FORMAT with Java patterns.
    (r"to_char\(([\w.]+), '%Y-%m-%d'\)", r"DATE_FORMAT(\1, 'yyyy-MM-dd')"),
    (r"to_char\(([\w.]+), '%H:%M'\)", r"DATE_FORMAT(\1, 'HH:mm')"),
    # Flink has CHAR_LENGTH, not LENGTH (q14's count_char UDF written with built-ins).
    (r"\bLENGTH\(", "CHAR_LENGTH("),
    # Flink's q2 is MOD(auction, 123).
    (r"\b(\w+) % (\d+)", r"MOD(\1, \2)"),
    # Reserved words in Flink 2.x's parser: quote them as identifiers.
    (r"(?<![`\w'.])(datetime|day|minute)(?![`\w'(])", r"`\1`"),
    (r"\.(datetime)\b", r".`\1`"),
]


def flink_sql(sql):
    for pattern, repl in FLINK_SPELLINGS:
        sql = re.sub(pattern, repl, sql)
    return sql


NUMERIC = re.compile(r"^(BIGINT|INT|INTEGER|SMALLINT|TINYINT|DOUBLE|FLOAT|REAL|DECIMAL|NUMERIC"
                     r"|Int\d+|UInt\d+|Float\d+|Decimal\d*)", re.IGNORECASE)


def summary_sql(query, sql, columns, flink):
    """`SELECT COUNT(*), SUM/MIN/MAX(numeric column) ... FROM (<sql>)`.

    columns: [(name, type)] of the query's answer in the engine at hand; of a
    query in tie_free_columns(), only those."""
    quote = (lambda c: f"`{c}`") if flink else (lambda c: f'"{c}"')
    only = tie_free_columns().get(query)
    parts = ["COUNT(*) AS n"]
    for name, ty in columns:
        if NUMERIC.match(ty.strip()) and (only is None or name.lower() in only):
            c = quote(name)
            # Aliases are lower case, so both engines' summaries line up by name.
            low = name.lower()
            parts += [f"SUM({c}) AS {quote('sum_' + low)}", f"MIN({c}) AS {quote('min_' + low)}",
                      f"MAX({c}) AS {quote('max_' + low)}"]
    return f"SELECT {', '.join(parts)} FROM ({sql}) AS answer"


def time_cell(r):
    """A table cell for one timing record: seconds, or why there are none."""
    if r is None:
        return "–"
    if "seconds" in r:
        return f"{r['seconds']:.3f}"
    if "timeout" in r:
        return f"timeout ({r['timeout']:.0f} s)"
    return "not supported by Flink" if "unsupported" in r else "failed"


def write_summaries(path, rows):
    """rows: {query: {"mode": ..., "summary": {col: value} or None, "error": str?}}."""
    with open(path, "w") as f:
        json.dump(rows, f, indent=1, sort_keys=True, default=str)
        f.write("\n")


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def same_value(a, b):
    """Equal, or numbers within 1e-9 relative (decimal vs float sums)."""
    if a is None or b is None or a == "" or b == "":
        return (a in (None, "")) == (b in (None, ""))
    x, y = _num(a), _num(b)
    if x is None or y is None:
        return str(a) == str(b)
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)


def differences(a, b):
    """Summary columns whose values differ (or that only one side has)."""
    keys = sorted(set(a) | set(b))
    return [k for k in keys if k not in a or k not in b or not same_value(a[k], b[k])]


def write_sql(path, events):
    """The CLI script that writes the three tables of `events` events as CSV under path."""
    stmts = []
    for name, cols in TABLES.items():
        gen = f"gen_{name}"
        stmts.append(f"CREATE TABLE {gen} WITH ('connector' = 'nexmark', 'nexmark.table' = '{name}', "
                     f"'first-event.rate' = '10000000', 'events.num' = '{events}')")
        out_cols = ", ".join(f"{c} {'STRING' if t.startswith('TIMESTAMP') else t}" for c, t in cols)
        stmts.append(f"CREATE TABLE out_{name} ({out_cols}) WITH ('connector' = 'filesystem', "
                     f"'path' = '{path}/{name}/', 'format' = 'csv', 'csv.header' = 'false')")
        exprs = ", ".join(f"to_char({c}, '{CSV_TIME}')" if t.startswith("TIMESTAMP") else c
                          for c, t in cols)
        stmts.append(f"INSERT INTO out_{name} SELECT {exprs} FROM {gen}")
    return ";\n".join(stmts) + ";"


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["write-sql"]:
        print(write_sql(sys.argv[2], int(sys.argv[3])))
    else:
        raise SystemExit("usage: nexmark_queries.py write-sql PATH EVENTS")

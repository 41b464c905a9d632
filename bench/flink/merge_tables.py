"""Merges one run's results (bench/flink/results/EVENTS/) into the published tables.

    python3 merge_tables.py DIR [--parallelism 2]

Reads DIR/flink.json, DIR/tributary-files.json, DIR/tributary-bench.md (nexmark-bench,
in memory) and the answer summaries DIR/summary-{flink,tributary-batch,tributary-streaming}.json;
writes DIR/merged.md (timings) and DIR/answers.md (the answer checks), and prints both.
Exits 3 when an answer summary differs between engines (one missing is listed, not an error).
"""

import argparse
import json
import math
import os
import sys

import nexmark_queries as nq


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def md_table(path):
    """{query: {column header: cell}} of the markdown table in a file."""
    rows, header = {}, None
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        return rows
    for line in lines:
        if not line.startswith("| "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "query":
            header = cells
        elif header:
            rows[cells[0]] = dict(zip(header, cells))
    return rows


def seconds(r):
    return r["seconds"] if r and "seconds" in r else None


cell = nq.time_cell


def timings(d, parallelism):
    flink = load(f"{d}/flink.json", {"modes": {"streaming": {}, "batch": {}}})
    trib = load(f"{d}/tributary-files.json", {"queries": {}})
    events = trib.get("events") or flink.get("events")
    mem = md_table(f"{d}/tributary-bench.md")
    names = [n for n, _ in nq.queries()]
    out = [
        f"Nexmark, {events} events, parallelism {parallelism}. Flink and Tributary over the same CSV files; "
        "the last four columns are nexmark-bench in memory (no file reading).",
        "",
        "| query | Flink STREAMING s | Tributary STREAMING s | **Flink / Tributary** | Tributary BATCH s | "
        "Tributary STREAMING / BATCH | Flink BATCH s | Tributary STREAMING events/s | events/s per core | "
        "Tributary STREAMING peak RSS MiB | in memory: STREAMING s | in memory: BATCH s | "
        "in memory: STREAMING / BATCH | in memory: STREAMING peak RSS growth MiB |",
        "|" + "---|" * 14,
    ]
    ratios = []
    for n in names:
        fs = flink["modes"]["streaming"].get(n)
        fb = flink["modes"]["batch"].get(n)
        t = trib["queries"].get(n, {})
        ts, tb = t.get("streaming"), t.get("batch")
        if fs is None and ts is None and n not in mem:
            continue
        ratio = ""
        if seconds(fs) and seconds(ts):
            r = seconds(fs) / seconds(ts)
            ratios.append(r)
            ratio = f"**{r:.1f}×**"
        sb = f"{seconds(ts) / seconds(tb):.2f}" if seconds(ts) and seconds(tb) else ""
        eps = events / seconds(ts) if seconds(ts) else None
        m = mem.get(n, {})
        rss = f"{ts['rss_mib']:.0f}" if ts and "rss_mib" in ts else ""
        out.append(
            f"| {n} | {cell(fs)} | {cell(ts)} | {ratio} | {cell(tb)} | {sb} | {cell(fb)} | "
            f"{f'{eps:.0f}' if eps else ''} | {f'{eps / parallelism:.0f}' if eps else ''} | "
            f"{rss} | "
            f"{m.get('Tributary STREAMING s', '')} | {m.get('Tributary BATCH s', '')} | "
            f"{m.get('STREAMING / BATCH', '')} | {m.get('STREAMING peak RSS growth MiB', '')} |")
    if ratios:
        gm = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        out.append(f"| geometric mean ({len(ratios)} queries both ran) | | | **{gm:.1f}×** |" + " |" * 10)
    return out


# Summary columns left out of Flink-vs-Tributary comparisons, with why: a known
# difference of the engines' SQL, not a wrong answer (Tributary vs Tributary still
# compares them).
FLINK_SEMANTICS = {
    ("q4", "avg_final"): "Flink's AVG of a BIGINT is a BIGINT (truncated), Tributary's a DOUBLE",
    ("q17", "avg_price"): "Flink's AVG of a BIGINT is a BIGINT (truncated), Tributary's a DOUBLE",
}


def answers(d):
    """The answer-check table; returns (lines, queries that differ, queries with a summary missing)."""
    sides = [("Flink", load(f"{d}/summary-flink.json", {})),
             ("Tributary BATCH", load(f"{d}/summary-tributary-batch.json", {})),
             ("Tributary STREAMING (folded)", load(f"{d}/summary-tributary-streaming.json", {}))]
    out = [
        "Answer checks: each engine's summary of each query's answer (row count; SUM, MIN, MAX of "
        "every numeric column), in the same run. Flink: BATCH, or STREAMING where BATCH cannot run "
        "the query; Tributary STREAMING: the summary of the folded changelog.",
        "",
        "| query | rows: " + " | rows: ".join(s for s, _ in sides) + " | result |",
        "|" + "---|" * (len(sides) + 2),
    ]
    bad, unchecked = [], []
    for n, _ in nq.queries():
        got = [(side, s.get(n)) for side, s in sides]
        rows, notes = [], []
        for side, r in got:
            if r is None:
                rows.append("–")
                notes.append(f"{side}: no summary")
            elif "summary" in r:
                rows.append(r["summary"].get("n", "?") + (" (STREAMING)" if side == "Flink" and
                                                          r.get("mode") == "streaming" else ""))
            else:
                rows.append("error")
        have = [(side, r["summary"]) for side, r in got if r and "summary" in r]
        for side, r in got:
            if r and r.get("batch_error"):
                notes.append(f"{side} BATCH summary failed, STREAMING's used: {r['batch_error'][:120]}")
            if r is not None and "summary" not in r:
                notes.append(f"{side}: {r.get('error', '')[:160]}")
        diffs = []
        skipped = set()
        for side, s in have[1:]:
            cols = nq.differences(have[0][1], s)
            if have[0][0] == "Flink":
                skipped |= {c for c in cols if (n, c.split("_", 1)[-1]) in FLINK_SEMANTICS}
                cols = [c for c in cols if (n, c.split("_", 1)[-1]) not in FLINK_SEMANTICS]
            if cols:
                diffs.append(f"{have[0][0]} vs {side}: " + ", ".join(
                    f"{c} {have[0][1].get(c)} ≠ {s.get(c)}" for c in cols))
        if skipped:
            why = {FLINK_SEMANTICS[(n, c.split("_", 1)[-1])] for c in skipped}
            notes.append(f"Flink vs Tributary: {', '.join(sorted(skipped))} not compared ({'; '.join(why)})")
        if diffs:
            result = "**DIFFERENT** — " + "; ".join(diffs)
            bad.append(n)
        elif len(have) == len(sides):
            result = "equal" + (f" ({'; '.join(notes)})" if notes else "")
        elif len(have) >= 2:
            result = f"equal, {len(have)} of {len(sides)} ({'; '.join(notes)})"
            unchecked.append(n)
        else:
            result = "**NOT CHECKED** (" + "; ".join(notes) + ")"
            unchecked.append(n)
        out.append(f"| {n} | " + " | ".join(rows) + f" | {result.replace('|', '/')} |")
    return out, bad, unchecked


def main():
    a = argparse.ArgumentParser()
    a.add_argument("dir")
    a.add_argument("--parallelism", type=int, default=2)
    args = a.parse_args()
    merged = timings(args.dir, args.parallelism)
    checks, bad, unchecked = answers(args.dir)
    checks.append("")
    if bad:
        checks.append(f"ANSWERS DIFFER: {', '.join(bad)}")
    if unchecked:
        checks.append(f"not checked in every engine: {', '.join(unchecked)}")
    if not bad and not unchecked:
        checks.append("all answers equal in all engines")
    for name, lines in (("merged.md", merged), ("answers.md", checks)):
        with open(os.path.join(args.dir, name), "w") as f:
            f.write("\n".join(lines) + "\n")
        print("\n".join(lines))
        print()
    sys.exit(3 if bad else 0)


if __name__ == "__main__":
    main()

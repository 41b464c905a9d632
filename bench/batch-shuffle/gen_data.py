#!/usr/bin/env python3
"""Generates the CSV input of the BATCH shuffle-mode benchmark (run.sh):
a fact table t (6,000,000 rows by default: k, v, price, flag, s) and a
dimension table dim (100,000 rows: id, g, name). Deterministic.

usage: gen_data.py DIR [ROWS]"""
import os
import sys

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 6_000_000
parts = 4
os.makedirs(f"{out}/csv", exist_ok=True)
os.makedirs(f"{out}/dimcsv", exist_ok=True)
for p in range(parts):
    with open(f"{out}/csv/part-{p}.csv", "w") as f:
        f.write("k,v,price,flag,s\n")
        lines = []
        for i in range(p, n, parts):
            lines.append(f'{i * 7919 % n},{i % 1000},{(i * 13 % 100000) / 100.0},{"ARNO"[i % 4]},c{i * 31 % 200000:07d}\n')
            if len(lines) >= 100_000:
                f.write("".join(lines))
                lines = []
        f.write("".join(lines))
with open(f"{out}/dimcsv/dim.csv", "w") as f:
    f.write("id,g,name\n")
    for i in range(100_000):
        f.write(f"{i},{i % 25},name{i}\n")

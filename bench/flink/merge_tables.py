import sys
d = sys.argv[1]
def table(path):
    rows = {}
    for l in open(path):
        if l.startswith("| ") and not l.startswith("| query"):
            c = [x.strip() for x in l.strip().strip("|").split("|")]
            rows[c[0].split(" ")[0]] = c[1:]
    return rows
fl = table(f"{d}/flink.md")
bench = table(f"{d}/tributary-bench.md")
try:
    files = table(f"{d}/tributary-files.md")
except FileNotFoundError:
    files = {}
def num(x):
    try: return float(x)
    except: return None
print("| query | Flink STREAMING s | Tributary STREAMING s (same CSV files, CLI) | ratio Tributary / Flink | Tributary STREAMING s (in-memory bench) | ratio in-memory / Flink | Flink BATCH s | Tributary BATCH s (CSV, CLI) |")
print("|---|---|---|---|---|---|---|---|")
for q, f in fl.items():
    fs, fb = num(f[0]), f[1]
    ts = num(files[q][0]) if q in files else None
    tb = files[q][1] if q in files else "–"
    bs = num(bench[q][2]) if q in bench else None
    r = lambda a: f"{a / fs:.3f}" if a is not None and fs else "–"
    print(f"| {q} | {f[0]} | {ts if ts is not None else '–'} | {r(ts)} | {bs if bs is not None else '–'} | {r(bs)} | {fb} | {tb} |")

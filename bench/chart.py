#!/usr/bin/env python3
"""Draws the per-query ratios of a tpch-bench results file as an SVG bar
chart (no package needed): for every query, one bar per engine other than
the reference, the reference's median time divided by that engine's (above
1: the reference, Tributary, is slower), on a log scale, with the geometric
means as the last group.

    python3 bench/chart.py docs/benchmarks/tpch-sf1.json docs/benchmarks/tpch-sf1-ratios.svg
"""
import json
import math
import sys

COLORS = ["#4C78A8", "#F58518", "#54A24B", "#B279A2", "#E45756", "#72B7B2"]


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    results = json.load(open(sys.argv[1]))
    ref = results["reference"]
    engines = [e for e in results["engines"] if e != ref]
    groups = [(q["query"], [q["reference_over_engine"].get(e) for e in engines])
              for q in results["queries"]]
    groups.append(("geomean", [results["geomean_reference_over_engine"].get(e) for e in engines]))
    values = [v for _, vs in groups for v in vs if v]
    lo = min(0.25, min(values) / 1.2)
    hi = max(4.0, max(values) * 1.2)
    width, height = 1100, 460
    left, right, top, bottom = 70, 20, 60, 60
    plot_w, plot_h = width - left - right, height - top - bottom

    def y(v):
        return top + plot_h * (1 - (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo)))

    group_w = plot_w / len(groups)
    bar_w = group_w * 0.8 / max(1, len(engines))
    ctx = results.get("context", {})
    title = (f"TPC-H SF {ctx.get('scale_factor', '?')}: {ref} median time / engine median time "
             f"(below 1: {ref} faster), parallelism {ctx.get('parallelism', '?')}, "
             f"{ctx.get('repetitions', '?')} repetitions")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="24" font-size="14">{title}</text>']
    for tick in [0.125, 0.25, 0.5, 1, 2, 4, 8, 16]:
        if lo <= tick <= hi:
            ty = y(tick)
            dash = "" if tick == 1 else ' stroke-dasharray="3,3"'
            color = "#333" if tick == 1 else "#ccc"
            out.append(f'<line x1="{left}" x2="{width - right}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="{color}"{dash}/>')
            out.append(f'<text x="{left - 8}" y="{ty + 4:.1f}" text-anchor="end">{tick:g}×</text>')
    base = y(1)
    for gi, (name, vs) in enumerate(groups):
        gx = left + gi * group_w + group_w * 0.1
        for ei, v in enumerate(vs):
            if not v:
                continue
            x = gx + ei * bar_w
            top_y, bot_y = min(y(v), base), max(y(v), base)
            out.append(f'<rect x="{x:.1f}" y="{top_y:.1f}" width="{bar_w - 1:.1f}" '
                       f'height="{max(bot_y - top_y, 0.5):.1f}" fill="{COLORS[ei % len(COLORS)]}">'
                       f'<title>{name} {engines[ei]}: {v:.2f}</title></rect>')
        weight = ' font-weight="bold"' if name == "geomean" else ""
        out.append(f'<text x="{left + gi * group_w + group_w / 2:.1f}" y="{height - bottom + 16}" '
                   f'text-anchor="middle"{weight}>{name}</text>')
    for ei, e in enumerate(engines):
        lx = left + ei * 230
        out.append(f'<rect x="{lx}" y="{height - 24}" width="12" height="12" fill="{COLORS[ei % len(COLORS)]}"/>')
        out.append(f'<text x="{lx + 18}" y="{height - 14}">{ref} / {e}</text>')
    out.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()

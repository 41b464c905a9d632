#!/usr/bin/env python3
"""Medians per query and variant, ratios to the datafusion variant, geometric
means, and whether every run of a query gave the same answer.

usage: summarize.py RESULTS (the output of run.sh)"""
import sys, statistics, math, collections
rows=[l.split() for l in open(sys.argv[1]) if l.strip()]
t=collections.defaultdict(list); h=collections.defaultdict(set)
for r,q,v,s,hs in rows:
    t[(q,v)].append(float(s)); h[q].add(hs)
qs=sorted({q for _,q,_,_,_ in rows}, key=lambda x:int(x[1:]))
print("query | blocking s | pipelined s | datafusion s | blocking/df | pipelined/df | answers equal")
gb=[];gp=[]
for q in qs:
    b=statistics.median(t[(q,'blocking')]); p=statistics.median(t[(q,'pipelined')]); d=statistics.median(t[(q,'datafusion')])
    gb.append(b/d); gp.append(p/d)
    print(f"{q} | {b:.3f} | {p:.3f} | {d:.3f} | {b/d:.2f} | {p/d:.2f} | {len(h[q])==1}")
g=lambda xs: math.exp(sum(map(math.log,xs))/len(xs))
print(f"geomean ratio | | | | {g(gb):.2f} | {g(gp):.2f} |")
print("runs per cell:", len(t[(qs[0],'blocking')]))

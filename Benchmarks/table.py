#!/usr/bin/env python3
"""Turns the JSON lines of EngineBenchmark and the Python peers into one table: a column per engine label, then a
ratio column (ours / peer) for each of our labels ("adapterd-*") against each peer label present."""
import json
import sys

PEERS = ["pytorch+peft", "ort-fp32", "ort-int8"]

rows = {}
engines = []
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    record = json.loads(line)
    if record["engine"] not in engines:
        engines.append(record["engine"])
    rows.setdefault(record["metric"], {})[record["engine"]] = (record["value"], record["unit"])

peers = [engine for engine in PEERS if engine in engines]
ours = [engine for engine in engines if engine.startswith("adapterd")] or \
       [engine for engine in engines if engine not in peers]
pairs = [(engine, peer) for engine in ours for peer in peers]
header = ["metric", "unit"] + engines + [f"{engine} / {peer}" for engine, peer in pairs]
table = [header]
for metric, values in rows.items():
    unit = next(iter(values.values()))[1]
    line = [metric, unit] + [f"{values[e][0]:.3f}" if e in values else "-" for e in engines]
    for engine, peer in pairs:
        if engine in values and peer in values and values[peer][0]:
            line.append(f"{values[engine][0] / values[peer][0]:.2f}x")
        else:
            line.append("-")
    table.append(line)


def derived(engine):
    v = {m: rows[m][engine][0] for m in rows if engine in rows[m]}
    out = []
    if "batch32_mixed_throughput" in v and "batch32_uniform_throughput" in v:
        out.append(f"mixed/uniform throughput {v['batch32_mixed_throughput'] / v['batch32_uniform_throughput']:.3f}")
    if "switch_alternating_64" in v and "switch_single_64" in v:
        out.append(f"switch overhead {100 * (v['switch_alternating_64'] / v['switch_single_64'] - 1):+.1f}%")
    return out


widths = [max(len(row[i]) for row in table) for i in range(len(header))]
for index, row in enumerate(table):
    print("| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |")
    if index == 0:
        print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
if pairs:
    print("\nRatios are ours / peer: below 1x is better for ms and MiB, above 1x for seq/s.")
summaries = [(engine, derived(engine)) for engine in engines]
if any(lines for _, lines in summaries):
    print()
for engine, lines in summaries:
    if lines:
        print(f"{engine}: " + "; ".join(lines))

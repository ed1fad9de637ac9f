#!/usr/bin/env python3
"""Turns the JSON lines of EngineBenchmark and peft_peer.py into one table with ratios."""
import json
import sys

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

peer = "pytorch+peft" if "pytorch+peft" in engines else None
ours = [engine for engine in engines if engine != peer]
header = ["metric", "unit"] + engines + ([f"{engine} vs peer" for engine in ours] if peer else [])
table = [header]
for metric, values in rows.items():
    unit = next(iter(values.values()))[1]
    line = [metric, unit] + [f"{values[e][0]:.3f}" if e in values else "-" for e in engines]
    if peer:
        for engine in ours:
            if engine in values and peer in values:
                ratio = values[engine][0] / values[peer][0]
                line.append(f"{ratio:.2f}x")
            else:
                line.append("-")
    table.append(line)


def derived(engine):
    v = {m: rows[m][engine][0] for m in rows if engine in rows[m]}
    out = []
    if "batch32_mixed_throughput" in v:
        out.append(f"mixed/uniform throughput {v['batch32_mixed_throughput'] / v['batch32_uniform_throughput']:.3f}")
    if "switch_alternating_64" in v:
        out.append(f"switch overhead {100 * (v['switch_alternating_64'] / v['switch_single_64'] - 1):+.1f}%")
    return out


widths = [max(len(row[i]) for row in table) for i in range(len(header))]
for index, row in enumerate(table):
    print("| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |")
    if index == 0:
        print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
print()
for engine in engines:
    print(f"{engine}: " + "; ".join(derived(engine)))

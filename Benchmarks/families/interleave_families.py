#!/usr/bin/env python3
"""adapterd beside ONNX Runtime on a base-size model of each encoder family, interleaved as Benchmarks/interleave.py
does (its Engine class, shapes and iteration counts): per family, adapterd FP32 and INT8 (EngineBenchmark --serve) and
family_ort_peer.py run as waiting processes, and each round measures every shape on each pair (adapterd-fp32 /
ort-fp32, adapterd-int8 / ort-int8), the order alternating by round. Prints each family's table when it is done, then
a summary of the median per-round ratios adapterd / ONNX Runtime.

Usage: interleave_families.py ENGINE_BENCHMARK MODELS_DIR PYTHON [ROUNDS [FAMILIES]]
(MODELS_DIR as make_family_models.py writes it: <family>/model and <family>/adapters/intent; FAMILIES comma-separated)
"""
import os
import statistics
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(here))
from interleave import SHAPES, Engine  # noqa: E402

FAMILIES = "bert,roberta,xlm-roberta,distilbert,modernbert"
PAIRS = [("adapterd-fp32", "ort-fp32"), ("adapterd-int8", "ort-int8")]


def compare(benchmark, model, adapters, python, rounds):
    """{(ours, peer, shape): [(ours ms, peer ms) per round]} for one family."""
    engines = {ours: Engine(ours, [benchmark, model, adapters, "--precision", ours.split("-")[1], "--serve"])
               for ours, _ in PAIRS}
    engines["ort"] = Engine("ort", [python, os.path.join(here, "family_ort_peer.py"), "--serve", model, adapters])
    samples = {(ours, peer, shape): [] for ours, peer in PAIRS for shape in SHAPES}
    for round_index in range(rounds):
        print(f"  round {round_index + 1} of {rounds}", file=sys.stderr, flush=True)
        for shape in SHAPES:
            for ours, peer in PAIRS:
                def run_peer():
                    engines["ort"].prefix = f"{peer} "
                    return engines["ort"].measure(*shape)

                if round_index % 2 == 0:
                    a, b = engines[ours].measure(*shape), run_peer()
                else:
                    b, a = run_peer(), engines[ours].measure(*shape)
                samples[(ours, peer, shape)].append((a, b))
    for engine in engines.values():
        engine.close()
    return samples


def main(benchmark, models, python, rounds=9, families=FAMILIES):
    ratios = {}
    for family in families.split(","):
        print(f"{family}: starting adapterd (fp32, int8) and ONNX Runtime", file=sys.stderr, flush=True)
        samples = compare(benchmark, f"{models}/{family}/model", f"{models}/{family}/adapters", python, rounds)
        print(f"\n### {family}\n")
        print(f"| shape | engine | median ms | peer | median ms | median of {rounds} round ratios | range |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for (ours, peer, shape), values in samples.items():
            per_round = [a / b for a, b in values]
            ratios[(family, ours, shape)] = statistics.median(per_round)
            print(f"| batch {shape[0]}, {shape[1]} tokens | {ours} | {statistics.median(a for a, _ in values):.2f} | "
                  f"{peer} | {statistics.median(b for _, b in values):.2f} | {ratios[(family, ours, shape)]:.2f}x | "
                  f"{min(per_round):.2f}-{max(per_round):.2f}x |", flush=True)
    columns = [(ours, shape) for ours, _ in PAIRS for shape in SHAPES]
    print(f"\n### adapterd / ONNX Runtime, median of {rounds} interleaved rounds (batch x tokens)\n")
    print("| family | " + " | ".join(f"{ours[9:].upper()} {b}x{t}" for ours, (b, t) in columns) + " |")
    print("| --- |" + " --- |" * len(columns))
    for family in families.split(","):
        print(f"| {family} | " + " | ".join(f"{ratios[(family, ours, shape)]:.2f}x" for ours, shape in columns) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(*sys.argv[1:4], *(int(value) for value in sys.argv[4:5]), *sys.argv[5:6])

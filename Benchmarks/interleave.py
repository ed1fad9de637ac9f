#!/usr/bin/env python3
"""adapterd beside ONNX Runtime, interleaved: each engine runs in a process of its own that waits on stdin, and the
driver asks them in turn for the median of a few runs of one shape, alternating the order by round. Each round's
ratio compares measurements seconds apart, so that this VM's drift (its speed moved by up to 40% between the
sequential runs of Benchmarks/run) hits both sides alike; the median ratio over the rounds is reported.

Usage: interleave.py ENGINE_BENCHMARK MODEL_DIR ADAPTERS_DIR PYTHON [ROUNDS]
"""
import os
import statistics
import subprocess
import sys
import time

SHAPES = [(1, 16), (1, 52), (32, 16), (32, 52)]
# Runs per measurement: enough for a stable median at batch 1, few at batch 32.
ITERATIONS = {1: 32, 32: 8}
# After each measurement: libgomp's and ONNX Runtime's threads spin for a while after their last parallel region,
# which would take the cores from whichever process runs next.
SETTLE_SECONDS = 0.3


class Engine:
    def __init__(self, label, command, prefix=""):
        self.label, self.prefix, self.command = label, prefix, command
        environment = dict(os.environ, OMP_NUM_THREADS="2", HF_HUB_OFFLINE="1")
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env=environment)
        while (line := self.process.stdout.readline()) and line.strip() != "ready":
            pass
        if not line:
            sys.exit(f"{label} stopped before it was ready")

    def measure(self, batch, length):
        self.process.stdin.write(f"{self.prefix}{batch} {length} {ITERATIONS[batch]}\n")
        self.process.stdin.flush()
        value = float(self.process.stdout.readline())
        time.sleep(SETTLE_SECONDS)
        return value

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def main(benchmark, model, adapters, python, rounds=9):
    here = os.path.dirname(os.path.abspath(__file__))
    print("starting adapterd (fp32, int8) and ONNX Runtime (building the merged models)", file=sys.stderr)
    engines = {
        "adapterd-fp32": Engine("adapterd-fp32", [benchmark, model, adapters, "--precision", "fp32", "--serve"]),
        "adapterd-int8": Engine("adapterd-int8", [benchmark, model, adapters, "--precision", "int8", "--serve"]),
        # INT8 with the label check on (the worker's default), on the intent adapter and on one whose logits all lie
        # near each other, so that nearly every row needs FP32's answer.
        "adapterd-int8-checked": Engine("adapterd-int8-checked", [
            benchmark, model, adapters, "--precision", "int8", "--label-check-factor", "4", "--serve"]),
        "adapterd-int8-checked-low-margin": Engine("adapterd-int8-checked-low-margin", [
            benchmark, model, adapters, "--precision", "int8", "--label-check-factor", "4", "--serve",
            "--serve-adapter", "rand-r4-rslora-dense"]),
    }
    # The same with the adapter merged into its layers (the worker's default for an adapter's uniform batches,
    # `--merge-max-bytes`): the engines above run its terms unmerged, as in a batch mixed with other adapters.
    for name in list(engines):
        engines[name + "-merged"] = Engine(name + "-merged", engines[name].command + ["--merge-mib", "64"])
    ort = [python, os.path.join(here, "ort_peer.py"), "--serve", model, adapters]
    engines["ort"] = Engine("ort", ort)
    pairs = [("adapterd-fp32", "ort-fp32"), ("adapterd-int8", "ort-int8"), ("adapterd-int8-checked", "ort-int8"),
             ("adapterd-int8-checked-low-margin", "ort-int8")]
    pairs += [(ours + "-merged", peer) for ours, peer in pairs]
    samples = {(ours, peer, shape): [] for ours, peer in pairs for shape in SHAPES}
    for round_index in range(rounds):
        print(f"round {round_index + 1} of {rounds}", file=sys.stderr)
        for shape in SHAPES:
            for ours, peer in pairs:
                def run_ours():
                    return engines[ours].measure(*shape)

                def run_peer():
                    engines["ort"].prefix = f"{peer} "
                    return engines["ort"].measure(*shape)

                if round_index % 2 == 0:
                    a, b = run_ours(), run_peer()
                else:
                    b, a = run_peer(), run_ours()
                samples[(ours, peer, shape)].append((a, b))
    for engine in engines.values():
        engine.close()
    print(f"| shape | engine | median ms | peer | median ms | median of {rounds} round ratios | range |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for ours, peer in pairs:
        for shape in SHAPES:
            values = samples[(ours, peer, shape)]
            ratios = [a / b for a, b in values]
            print(f"| batch {shape[0]}, {shape[1]} tokens | {ours} | {statistics.median(a for a, _ in values):.2f} | "
                  f"{peer} | {statistics.median(b for _, b in values):.2f} | {statistics.median(ratios):.2f}x | "
                  f"{min(ratios):.2f}-{max(ratios):.2f}x |")


if __name__ == "__main__":
    main(*sys.argv[1:5], *(int(value) for value in sys.argv[5:6]))

"""Shared by the Python peers of Benchmarks/EngineBenchmark: token ids, timing, JSON lines and the common metrics."""
import json
import resource
import statistics
import time

THREADS = 2
LENGTHS = (16, 52, 128)


def tokens(length, seed=0):
    """The synthetic token ids EngineBenchmark uses: [CLS], words, [SEP]."""
    return [101] + [1000 + ((i + seed) * 7919) % 20000 for i in range(length - 2)] + [102]


def median(body, iterations, warmup=3):
    """Median wall time in milliseconds of `body` over `iterations` runs after `warmup` runs."""
    for _ in range(warmup):
        body()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        body()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def reporter(engine):
    """A function that prints one JSON line {"engine", "metric", "value", "unit"} for `engine`."""
    def report(metric, value, unit):
        print(json.dumps({"engine": engine, "metric": metric, "value": value, "unit": unit}), flush=True)
    return report


def peak_rss_mib():
    """This process's peak resident set size in MiB.

    On Linux this is VmHWM, the high-water mark of the process's own address space. ru_maxrss is not used there:
    execve carries the peak of the address space it replaces into ru_maxrss, so a child that a large process
    spawns (subprocess uses vfork) would report its parent's peak.
    """
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux; other systems differ


def benchmark_inputs():
    """(batch, length, rows) of every latency metric: one sequence, and 32 equal-length sequences (no padding)."""
    return [(1, length, [tokens(length)]) for length in LENGTHS] + \
           [(32, length, [tokens(length, seed) for seed in range(32)]) for length in LENGTHS]


def report_latencies(report, prepare):
    """Reports latency_b{1,32}_t{16,52,128}; `prepare(rows)` builds the inputs and returns a call that runs them."""
    for batch, length, rows in benchmark_inputs():
        iterations = 60 if batch == 1 else 15 if length < 128 else 8
        report(f"latency_b{batch}_t{length}", median(prepare(rows), iterations), "ms")


def answer_requests(runners, make_inputs):
    """The peers' serve loop for Benchmarks/interleave.py: prints "ready", then answers each stdin line "LABEL BATCH
    LENGTH ITERATIONS" with the median milliseconds of that many runs of runners[LABEL] (an ONNX Runtime session) on
    make_inputs(rows of synthetic ids); stops at a line of another shape or the end of input."""
    import sys
    print("ready", flush=True)
    for line in sys.stdin:
        fields = line.split()
        if len(fields) != 4:
            break
        label, batch, length, iterations = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
        inputs = make_inputs([tokens(length, seed) for seed in range(batch)])
        runner = runners[label]
        print(median(lambda: runner.run(["logits"], inputs), iterations, warmup=2), flush=True)

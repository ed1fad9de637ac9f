#!/usr/bin/env python3
"""PyTorch+PEFT peer of Benchmarks/EngineBenchmark: the same model, adapters and token ids, same JSON lines."""
import json
import statistics
import sys
import time

import torch
from peft import PeftModel
from transformers import BertForSequenceClassification

model_dir, adapters_dir = sys.argv[1], sys.argv[2]
names = sys.argv[3:] or ["intent", "severity", "rand-r4-rslora-dense", "rand-r16-fp16"]
torch.set_grad_enabled(False)


def tokens(length, seed=0):
    return [101] + [1000 + ((i + seed) * 7919) % 20000 for i in range(length - 2)] + [102]


def median(body, iterations, warmup=3):
    for _ in range(warmup):
        body()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        body()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def report(metric, value, unit):
    print(json.dumps({"engine": "pytorch+peft", "metric": metric, "value": value, "unit": unit}), flush=True)


def labels_of(name):
    with open(f"{adapters_dir}/{name}/labels.json") as handle:
        return len(json.load(handle)["labels"])


base = BertForSequenceClassification.from_pretrained(model_dir, num_labels=labels_of("intent"))
model = PeftModel.from_pretrained(base, f"{adapters_dir}/intent", adapter_name="intent").eval()

for length in (16, 64, 128):
    ids = torch.tensor([tokens(length)])
    mask = torch.ones_like(ids)
    report(f"batch1_latency_{length}", median(lambda: model(input_ids=ids, attention_mask=mask), 60), "ms")

for index in range(32):
    model.load_adapter(f"{adapters_dir}/intent", adapter_name=f"copy{index}")
batch = torch.tensor([tokens(32, seed) for seed in range(32)])
mask = torch.ones_like(batch)
model.set_adapter("intent")
uniform = median(lambda: model(input_ids=batch, attention_mask=mask), 20)
mixed_names = [f"copy{index}" for index in range(32)]
mixed = median(lambda: model(input_ids=batch, attention_mask=mask, adapter_names=mixed_names), 20)
report("batch32_uniform_throughput", 32_000 / uniform, "seq/s")
report("batch32_mixed_throughput", 32_000 / mixed, "seq/s")

counter = [0]
for name in names:
    def load():
        counter[0] += 1
        model.load_adapter(f"{adapters_dir}/{name}", adapter_name=f"cold{counter[0]}")
    if labels_of(name) == labels_of("intent"):
        report(f"cold_load_{name}", median(load, 10, warmup=1), "ms")
    else:
        # A classifier head of another size needs a base model built for it.
        other = PeftModel.from_pretrained(
            BertForSequenceClassification.from_pretrained(model_dir, num_labels=labels_of(name)),
            f"{adapters_dir}/{name}", adapter_name="first").eval()
        def load_other():
            counter[0] += 1
            other.load_adapter(f"{adapters_dir}/{name}", adapter_name=f"cold{counter[0]}")
        report(f"cold_load_{name}", median(load_other, 10, warmup=1), "ms")

model.load_adapter(f"{adapters_dir}/intent", adapter_name="other")
request = torch.tensor([tokens(16)])
request_mask = torch.ones_like(request)


def single():
    model.set_adapter("intent")
    for _ in range(64):
        model(input_ids=request, attention_mask=request_mask)


def alternating():
    for index in range(64):
        model.set_adapter("intent" if index % 2 == 0 else "other")
        model(input_ids=request, attention_mask=request_mask)


report("switch_single_64", median(single, 15), "ms")
report("switch_alternating_64", median(alternating, 15), "ms")

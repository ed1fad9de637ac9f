#!/usr/bin/env python3
"""PyTorch+PEFT peer of Benchmarks/EngineBenchmark: the same model, adapters and token ids, same JSON lines.

Usage: peft_peer.py MODEL_DIR ADAPTERS_DIR [ADAPTER...]. `peak_rss_100_adapters` is measured in a fresh process
(this script with --rss) that loads the base model and 100 adapters and runs one batch-1 request.
"""
import json
import subprocess
import sys

import safetensors.torch
import torch
from peft import PeftModel
from transformers import BertForSequenceClassification

from peer_common import THREADS, median, peak_rss_mib, report_latencies, reporter, tokens

ADAPTERS = ["intent", "severity", "rand-r4-rslora-dense", "rand-r16-fp16"]
report = reporter("pytorch+peft")
torch.set_num_threads(THREADS)
torch.set_grad_enabled(False)


def labels_of(adapters_dir, name):
    with open(f"{adapters_dir}/{name}/labels.json") as handle:
        return len(json.load(handle)["labels"])


def intent_model(model_dir, adapters_dir):
    base = BertForSequenceClassification.from_pretrained(model_dir, num_labels=labels_of(adapters_dir, "intent"))
    return PeftModel.from_pretrained(base, f"{adapters_dir}/intent", adapter_name="intent").eval()


def load_with_own_head(model, directory, name):
    """load_adapter for an adapter whose classifier may have another label count than the base model's head
    (PEFT copies the base head for modules_to_save, so such a head is replaced by one of the saved size)."""
    model.load_adapter(directory, adapter_name=name, ignore_mismatched_sizes=True)
    saved = safetensors.torch.load_file(f"{directory}/adapter_model.safetensors")
    weight, bias = saved["base_model.model.classifier.weight"], saved["base_model.model.classifier.bias"]
    heads = model.base_model.model.classifier.modules_to_save
    if heads[name].weight.shape != weight.shape:
        head = torch.nn.Linear(weight.shape[1], weight.shape[0])
        head.load_state_dict({"weight": weight.float(), "bias": bias.float()})
        heads[name] = head.eval()


def peak_rss_100_adapters(model_dir, adapters_dir):
    """Base model and 100 adapters (the fixtures in turn, distinct names), one batch-1 request, peak RSS."""
    model = intent_model(model_dir, adapters_dir)
    for index in range(1, 100):
        name = ADAPTERS[index % len(ADAPTERS)]
        load_with_own_head(model, f"{adapters_dir}/{name}", f"{name}-{index}")
    model.set_adapter("intent")
    ids = torch.tensor([tokens(16)])
    model(input_ids=ids, attention_mask=torch.ones_like(ids))
    report("peak_rss_100_adapters", peak_rss_mib(), "MiB")


def prepare(model):
    def build(rows):
        ids = torch.tensor(rows)
        mask = torch.ones_like(ids)
        return lambda: model(input_ids=ids, attention_mask=mask)
    return build


def main(model_dir, adapters_dir, names):
    model = intent_model(model_dir, adapters_dir)

    for length in (16, 64, 128):
        ids = torch.tensor([tokens(length)])
        mask = torch.ones_like(ids)
        report(f"batch1_latency_{length}", median(lambda: model(input_ids=ids, attention_mask=mask), 60), "ms")

    report_latencies(report, prepare(model))

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
        if labels_of(adapters_dir, name) == labels_of(adapters_dir, "intent"):
            target = model
        else:
            # A classifier head of another size needs a base model built for it.
            target = PeftModel.from_pretrained(
                BertForSequenceClassification.from_pretrained(model_dir, num_labels=labels_of(adapters_dir, name)),
                f"{adapters_dir}/{name}", adapter_name="first").eval()

        def load():
            counter[0] += 1
            target.load_adapter(f"{adapters_dir}/{name}", adapter_name=f"cold{counter[0]}")
        report(f"cold_load_{name}", median(load, 10, warmup=1), "ms")

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

    subprocess.run([sys.executable, __file__, "--rss", model_dir, adapters_dir], check=True)


if __name__ == "__main__":
    if sys.argv[1] == "--rss":
        peak_rss_100_adapters(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1], sys.argv[2], sys.argv[3:] or ADAPTERS)

#!/usr/bin/env python3
"""ONNX Runtime peer of EngineBenchmark for any encoder family (bert, roberta, xlm-roberta, distilbert, modernbert):
Benchmarks/ort_peer.py's serve mode made generic. The `intent` adapter is merged into the family's
AutoModelForSequenceClassification (PEFT merge_and_unload), the logits exported with torch.onnx.export (dynamic batch
and sequence axes; token_type_ids only for bert), fused by onnxruntime's transformer optimizer (model_type "bert", the
one it has for BERT, RoBERTa, XLM-R and DistilBERT; ModernBERT has none and is exported plain) and dynamically
quantized to INT8 (per-channel QInt8), both run with peer_common.THREADS intra-op threads. The .onnx files are cached in
MODEL_DIR/ort-intent/ and rebuilt when the model or the adapter is newer; a build checks FP32 against PyTorch+PEFT.

Usage: family_ort_peer.py --serve MODEL_DIR ADAPTERS_DIR, then lines "ort-fp32 B T N" or "ort-int8 B T N" on stdin,
each answered with the median ms of N runs of B sequences of T synthetic tokens (after "ready", as ort_peer.py).
"""
import json
import logging
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ort_peer import session  # noqa: E402
from peer_common import THREADS, answer_requests, tokens  # noqa: E402

# The optimizer's model_type per family (onnxruntime.transformers.optimizer.MODEL_TYPES has no roberta, distilbert
# or modernbert entry: "bert" covers the first ones; ModernBERT's rotary, pre-norm, GeGLU layers match no fusion).
OPTIMIZER_TYPES = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "distilbert": "bert"}


def log(message):
    print(f"family_ort_peer: {message}", file=sys.stderr, flush=True)


def input_names(model_type):
    return ["input_ids", "attention_mask"] + (["token_type_ids"] if model_type == "bert" else [])


def feeds(rows, names):
    ids = np.array(rows, dtype=np.int64)
    values = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return {name: values[name] for name in names}


def build(model_dir, adapters_dir, directory, model_type, names):
    """Writes fp32.onnx and int8.onnx into `directory`; checks the FP32 export against PyTorch+PEFT."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(THREADS)
    torch.set_grad_enabled(False)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic's advice to pre-process, on the root logger

    # Eager attention traces to the MatMul/Softmax pattern the optimizer fuses (and exports on every family).
    base = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=4, attn_implementation="eager")
    peft_model = PeftModel.from_pretrained(base, f"{adapters_dir}/intent").eval()
    checks = [[tokens(16)], [tokens(52, seed) for seed in range(4)]]
    references = [peft_model(**{k: torch.from_numpy(v) for k, v in feeds(rows, names).items()}).logits.numpy()
                  for rows in checks]
    merged = peft_model.merge_and_unload().eval()

    class Logits(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs))).logits

    exported = f"{directory}/exported.onnx"
    sample = tuple(torch.from_numpy(v) for v in feeds([tokens(16)] * 2, names).values())
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"}}
    torch.onnx.export(Logits(merged), sample, exported, input_names=names, output_names=["logits"],
                      dynamic_axes=dynamic_axes, opset_version=17, dynamo=False)
    del peft_model, merged, base

    fp32 = f"{directory}/fp32.onnx"
    config = json.load(open(f"{model_dir}/config.json"))
    if model_type in OPTIMIZER_TYPES:
        from onnxruntime.transformers import optimizer
        optimized = optimizer.optimize_model(exported, model_type=OPTIMIZER_TYPES[model_type],
                                             num_heads=config.get("num_attention_heads", config.get("n_heads")),
                                             hidden_size=config.get("hidden_size", config.get("dim")))
        fused = {op: count for op, count in optimized.get_fused_operator_statistics().items() if count}
        optimized.save_model_to_file(fp32)
        log(f"transformers optimizer (model_type {OPTIMIZER_TYPES[model_type]}) fused {fused}")
    else:
        os.replace(exported, fp32)
        log(f"no transformers optimizer for model_type {model_type}: the plain export (with ORT's own session-level "
            "graph optimizations) is benchmarked")
    if os.path.exists(exported):
        os.remove(exported)

    # ONNX shape inference cannot type the outputs of the fused (com.microsoft) operators; they are all float.
    quantize_dynamic(fp32, f"{directory}/int8.onnx.tmp", per_channel=True, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    os.replace(f"{directory}/int8.onnx.tmp", f"{directory}/int8.onnx")  # the cache is complete once int8.onnx is
    runner = session(fp32)
    for rows, reference in zip(checks, references):
        error = float(np.abs(runner.run(["logits"], feeds(rows, names))[0] - reference).max())
        log(f"ort-fp32 vs PyTorch+PEFT, batch {len(rows)} x {len(rows[0])}: max |logit error| {error:.2e} "
            f"({'OK' if error <= 1e-3 else 'MISMATCH (> 1e-3)'})")


def serve(model_dir, adapters_dir):
    model_type = json.load(open(f"{model_dir}/config.json"))["model_type"]
    names = input_names(model_type)
    directory = f"{model_dir}/ort-intent"
    paths = {"ort-fp32": f"{directory}/fp32.onnx", "ort-int8": f"{directory}/int8.onnx"}
    sources = [f"{model_dir}/model.safetensors", f"{model_dir}/config.json",
               f"{adapters_dir}/intent/adapter_model.safetensors"]
    newest = max(os.path.getmtime(path) for path in sources)
    if all(os.path.exists(path) and os.path.getmtime(path) >= newest for path in paths.values()):
        log(f"using the cached {directory}")
    else:
        os.makedirs(directory, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build(model_dir, adapters_dir, directory, model_type, names)
    runners = {label: session(path) for label, path in paths.items()}
    answer_requests(runners, lambda rows: feeds(rows, names))


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "--serve":
        sys.exit(__doc__)
    serve(sys.argv[2], sys.argv[3])

#!/usr/bin/env python3
"""ONNX Runtime peer of Benchmarks/EngineBenchmark: the `intent` adapter merged into the base model (PEFT
merge_and_unload), exported to ONNX, fused by onnxruntime's BERT optimizer and dynamically quantized to INT8.
Prints the common JSON lines for "ort-fp32" and "ort-int8"; parity with PyTorch+PEFT goes to stderr.

Usage: ort_peer.py MODEL_DIR ADAPTERS_DIR, or ort_peer.py --serve MODEL_DIR ADAPTERS_DIR for Benchmarks/interleave.py. `peak_rss_merged_session` is measured in a fresh process (this script
with --rss, importing onnxruntime and numpy only) that opens one session and runs one batch-1 request.
"""
import logging
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import onnxruntime as ort

from peer_common import THREADS, answer_requests, benchmark_inputs, peak_rss_mib, report_latencies, reporter, tokens

INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


def log(message):
    print(f"ort_peer: {message}", file=sys.stderr, flush=True)


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def feeds(rows):
    ids = np.array(rows, dtype=np.int64)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def peak_rss_merged_session(label, path):
    """One session, one batch-1 request, peak RSS of this (fresh) process."""
    runner = session(path)
    runner.run(["logits"], feeds([tokens(16)]))
    reporter(label)("peak_rss_merged_session", peak_rss_mib(), "MiB")


def build(model_dir, adapters_dir, directory):
    """Writes fp32.onnx (optimized when the optimizer works) and int8.onnx into `directory`; returns their paths
    and the PyTorch+PEFT logits of every benchmark input, computed before merging."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from peft import PeftModel
    from transformers import BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(THREADS)
    torch.set_grad_enabled(False)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic's advice to pre-process, on the root logger

    # Eager attention traces to the MatMul/Softmax pattern that the optimizer fuses into its Attention operator.
    base = BertForSequenceClassification.from_pretrained(model_dir, num_labels=4, attn_implementation="eager")
    peft_model = PeftModel.from_pretrained(base, f"{adapters_dir}/intent").eval()
    references = [peft_model(**{k: torch.from_numpy(v) for k, v in feeds(rows).items()}).logits.numpy()
                  for _, _, rows in benchmark_inputs()]
    merged = peft_model.merge_and_unload().eval()

    class Logits(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    exported = f"{directory}/exported.onnx"
    sample = tuple(torch.from_numpy(v) for v in feeds([tokens(16)] * 2).values())
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in INPUTS} | {"logits": {0: "batch"}}
    torch.onnx.export(Logits(merged), sample, exported, input_names=INPUTS, output_names=["logits"],
                      dynamic_axes=dynamic_axes, opset_version=17, dynamo=False)

    fp32 = f"{directory}/fp32.onnx"
    try:
        from onnxruntime.transformers import optimizer
        optimized = optimizer.optimize_model(exported, model_type="bert", num_heads=12, hidden_size=384)
        fused = {op: count for op, count in optimized.get_fused_operator_statistics().items() if count}
        optimized.save_model_to_file(fp32)
        log(f"transformers optimizer fused {fused}")
    except Exception as error:  # noqa: BLE001 - any failure means: benchmark the plain export
        log(f"transformers optimizer failed ({type(error).__name__}: {error}); using the plain export")
        fp32 = exported

    # ONNX shape inference cannot type the outputs of the fused (com.microsoft) operators; they are all float.
    int8 = f"{directory}/int8.onnx"
    quantize_dynamic(fp32, int8, per_channel=True, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return fp32, int8, references


def check_parity(runners, references):
    """FP32 must match PyTorch+PEFT within 1e-3; INT8's error and label agreement are reported."""
    for label, runner in runners.items():
        errors, agree, total = [], 0, 0
        for (_, _, rows), reference in zip(benchmark_inputs(), references):
            logits = runner.run(["logits"], feeds(rows))[0]
            errors.append(float(np.abs(logits - reference).max()))
            agree += int((logits.argmax(-1) == reference.argmax(-1)).sum())
            total += len(rows)
        error = max(errors)
        verdict = ("OK" if error <= 1e-3 else "MISMATCH (> 1e-3)") if label == "ort-fp32" else "informational"
        log(f"{label} vs PyTorch+PEFT: max |logit error| {error:.2e} ({verdict}); "
            f"argmax labels agree on {agree}/{total} sequences")


def serve(model_dir, adapters_dir):
    """For Benchmarks/interleave.py: builds both sessions, prints "ready", then answers each line "LABEL BATCH LENGTH
    ITERATIONS" on stdin (LABEL ort-fp32 or ort-int8) with the median milliseconds of that many runs."""
    with tempfile.TemporaryDirectory(prefix="ort-peer-") as directory:
        fp32, int8, references = build(model_dir, adapters_dir, directory)
        runners = {"ort-fp32": session(fp32), "ort-int8": session(int8)}
        check_parity(runners, references)
        answer_requests(runners, feeds)


def main(model_dir, adapters_dir):
    with tempfile.TemporaryDirectory(prefix="ort-peer-") as directory:
        fp32, int8, references = build(model_dir, adapters_dir, directory)
        paths = {"ort-fp32": fp32, "ort-int8": int8}
        runners = {label: session(path) for label, path in paths.items()}
        check_parity(runners, references)
        for label, runner in runners.items():
            def prepare(rows, runner=runner):
                inputs = feeds(rows)
                return lambda: runner.run(["logits"], inputs)
            report_latencies(reporter(label), prepare)
        for label, path in paths.items():
            subprocess.run([sys.executable, __file__, "--rss", label, path], check=True)


if __name__ == "__main__":
    if sys.argv[1] == "--rss":
        peak_rss_merged_session(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1], sys.argv[2])

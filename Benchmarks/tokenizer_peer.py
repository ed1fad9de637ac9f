"""Hugging Face `tokenizers` (the Rust library through its Python binding) on the texts EngineBenchmark's --tokenize
times, single-threaded: the same JSON lines, metrics and truncation (Benchmarks/run-tokenizers runs both).

usage: tokenizer_peer.py MODEL_DIR TEXTS_FILE [--dump-ids] [--rounds N] [--seconds S] [--max-length L]

MODEL_DIR/tokenizer.json is loaded with Tokenizer.from_file; padding is switched off (all-MiniLM-L6-v2's file pads
to 128) and truncation set to L (default 128, the engine's), special tokens included, as the engine's tokenizer
cuts. --dump-ids prints one JSON array of ids per text (add_special_tokens=True: [CLS] ... [SEP], <s> ... </s>).
Otherwise three figures, each the median of N rounds (default 5) over all texts repeated so a round takes about
S seconds (default 0.7), after a warm-up:
  tokenize_*            Tokenizer.encode(text) in a Python loop, one text per call (as the engine tokenises)
  tokenize_batch_*      Tokenizer.encode_batch(texts) on one thread (RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false)
  tokenize_batch_fast_* Tokenizer.encode_batch_fast(texts) (no character offsets), one thread
  tokenize_nocache_*    the encode loop again with the model's word cache off (BPE and Unigram keep one, of 10,000
                        words by default; the texts repeat, so above every word after the first pass is a hit; the
                        engine keeps none); not reported for WordPiece, which has no cache
"""
import os

# Before tokenizers (and its rayon pool) loads: one thread, whatever the caller's environment says.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import tokenizers  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("texts")
    parser.add_argument("--dump-ids", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.7)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()

    tokenizer = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=args.max_length)
    with open(args.texts, encoding="utf-8") as file:
        texts = [json.loads(line)["text"] for line in file if line.strip()]

    if args.dump_ids:
        sys.stdout.write("".join(json.dumps(tokenizer.encode(text).ids, separators=(",", ":")) + "\n" for text in texts))
        return

    def loop(repeats):
        ids = 0
        encode = tokenizer.encode
        for _ in range(repeats):
            for text in texts:
                ids += len(encode(text).ids)
        return ids

    def batch(repeats):
        ids = 0
        for _ in range(repeats):
            ids += sum(len(encoding.ids) for encoding in tokenizer.encode_batch(texts))
        return ids

    def batch_fast(repeats):
        ids = 0
        for _ in range(repeats):
            ids += sum(len(encoding.ids) for encoding in tokenizer.encode_batch_fast(texts))
        return ids

    def report(metric, value, unit):
        print(json.dumps({"engine": "tokenizers", "metric": metric, "value": value, "unit": unit}), flush=True)

    def measure(name, body):
        # Warm-up (about 0.2 s), which also sets the repeats for a round of about `seconds`.
        warm, passes = 0.0, 0
        while warm < 0.2 or passes < 2:
            start = time.perf_counter()
            body(1)
            warm += time.perf_counter() - start
            passes += 1
        repeats = max(1, round(args.seconds / (warm / passes)))
        text_rates, token_rates = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            ids = body(repeats)
            elapsed = time.perf_counter() - start
            text_rates.append(repeats * len(texts) / elapsed)
            token_rates.append(ids / elapsed)
        report(f"{name}_texts_per_s", statistics.median(text_rates), "texts/s")
        report(f"{name}_tokens_per_s", statistics.median(token_rates), "tokens/s")
        print(f"tokenizers {tokenizers.__version__} {name}: {len(texts)} texts × {repeats} per round, {args.rounds} rounds",
              file=sys.stderr)

    measure("tokenize", loop)
    measure("tokenize_batch", batch)
    measure("tokenize_batch_fast", batch_fast)
    if hasattr(tokenizer.model, "_resize_cache"):
        tokenizer.model._resize_cache(0)
        tokenizer.model._clear_cache()
        measure("tokenize_nocache", loop)


if __name__ == "__main__":
    main()

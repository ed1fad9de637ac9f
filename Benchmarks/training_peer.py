#!/usr/bin/env python3
"""PyTorch+PEFT peer of `adapterctl train`: the same LoRA training on the same examples, as a PEFT user writes it.

Usage:
  training_peer.py MODEL_DIR FIT.jsonl EVAL.jsonl [--rank 8] [--alpha 16] [--epochs 10] [--lr 1e-3] [--batch 16]
                   [--weight-decay 0.01] [--warmup 0.1] [--seed 0] [--threads 2]
      trains and prints one JSON line {"engine","evalAccuracy","secondsPerEpoch","finalLoss","seed"}.
  training_peer.py MODEL_DIR --check-peft ADAPTER_DIR --texts-json TEXTS.json [--threads 2]
      loads a PEFT directory (as adapterctl train writes it) with PeftModel.from_pretrained, runs the texts (a JSON
      list of strings) one at a time in eval mode and prints one JSON line {"engine","logits","warnings"}.

Training: labels in order of first appearance in FIT then EVAL; torch.manual_seed(seed) before the classifier head
and the LoRA matrices are initialised; LoRA r/alpha on query and value, lora_dropout 0, BERT's own dropouts on
(model.train()); each epoch's order from a torch.Generator seeded with seed; each batch tokenized in the loop
(padding to the batch's longest, truncation to 128); AdamW with weight decay on every trainable tensor except
biases; transformers' linear schedule with ceil(warmup * steps) warm-up steps; mean cross-entropy. Seconds per
epoch is the mean wall time of the epochs' loops (tokenization of each batch included); finalLoss is the mean
training loss of the last epoch over its examples, as adapterctl reports it. Eval accuracy in model.eval() under
torch.no_grad(), in batches of --batch.
"""
import argparse
import json
import math
import os
import time
import warnings

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoTokenizer, BertForSequenceClassification, get_linear_schedule_with_warmup

MAX_LENGTH = 128
ENGINE = "pytorch+peft"


def read_examples(path):
    """(text, label) of each JSON line {"text", "label"}."""
    examples = []
    with open(path) as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                examples.append((record["text"], record["label"]))
    return examples


def labels_in_order(*example_lists):
    labels = []
    for examples in example_lists:
        for _, label in examples:
            if label not in labels:
                labels.append(label)
    return labels


def encode(tokenizer, texts):
    return tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")


def train(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    fit, held = read_examples(args.fit), read_examples(args.eval)
    labels = labels_in_order(fit, held)
    index = {label: position for position, label in enumerate(labels)}

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    base = BertForSequenceClassification.from_pretrained(args.model, num_labels=len(labels))
    alpha = int(args.alpha) if float(args.alpha).is_integer() else args.alpha
    config = LoraConfig(task_type="SEQ_CLS", r=args.rank, lora_alpha=alpha, target_modules=["query", "value"],
                        lora_dropout=0.0)
    model = get_peft_model(base, config)

    parameters = [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW([
        {"params": [p for name, p in parameters if not name.endswith("bias")], "weight_decay": args.weight_decay},
        {"params": [p for name, p in parameters if name.endswith("bias")], "weight_decay": 0.0},
    ], lr=args.lr)
    batches_per_epoch = math.ceil(len(fit) / args.batch)
    total_steps = batches_per_epoch * args.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=math.ceil(args.warmup * total_steps),
                                                num_training_steps=total_steps)
    generator = torch.Generator().manual_seed(args.seed)

    model.train()
    seconds, final_loss = [], 0.0
    for _ in range(args.epochs):
        order = torch.randperm(len(fit), generator=generator).tolist()
        epoch_loss = 0.0
        started = time.perf_counter()
        for start in range(0, len(order), args.batch):
            batch = [fit[i] for i in order[start:start + args.batch]]
            inputs = encode(tokenizer, [text for text, _ in batch])
            targets = torch.tensor([index[label] for _, label in batch], dtype=torch.long)
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(**inputs).logits, targets)
            loss.backward()
            optimizer.step()
            scheduler.step()
            epoch_loss += loss.item() * len(batch)
        seconds.append(time.perf_counter() - started)
        final_loss = epoch_loss / len(fit)

    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(held), args.batch):
            batch = held[start:start + args.batch]
            predicted = model(**encode(tokenizer, [text for text, _ in batch])).logits.argmax(dim=-1).tolist()
            correct += sum(int(p == index[label]) for p, (_, label) in zip(predicted, batch))
    accuracy = correct / len(held) if held else None

    print(json.dumps({"engine": ENGINE, "evalAccuracy": accuracy, "secondsPerEpoch": sum(seconds) / len(seconds),
                      "finalLoss": final_loss, "seed": args.seed}), flush=True)


def check_peft(args):
    """Loads ADAPTER_DIR with PeftModel.from_pretrained and prints the logits of each text (run alone, no padding).
    Python warnings raised while loading (PEFT's missing or unexpected keys, config complaints) go into "warnings"."""
    torch.set_num_threads(args.threads)
    with open(os.path.join(args.check_peft, "labels.json")) as handle:
        labels = json.load(handle)["labels"]
    with open(args.texts_json) as handle:
        texts = json.load(handle)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    base = BertForSequenceClassification.from_pretrained(args.model, num_labels=len(labels))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = PeftModel.from_pretrained(base, args.check_peft)
    model.eval()
    logits = []
    with torch.no_grad():
        for text in texts:
            logits.append(model(**encode(tokenizer, [text])).logits[0].tolist())
    print(json.dumps({"engine": ENGINE, "logits": logits,
                      "warnings": [f"{w.category.__name__}: {w.message}" for w in caught]}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("fit", nargs="?")
    parser.add_argument("eval", nargs="?")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--warmup", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--check-peft", metavar="ADAPTER_DIR")
    parser.add_argument("--texts-json", metavar="FILE")
    args = parser.parse_args()
    if args.check_peft:
        if not args.texts_json:
            parser.error("--check-peft needs --texts-json")
        check_peft(args)
    else:
        if not (args.fit and args.eval):
            parser.error("training needs FIT.jsonl and EVAL.jsonl")
        train(args)


if __name__ == "__main__":
    main()

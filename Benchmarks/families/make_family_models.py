#!/usr/bin/env python3
"""Base-size encoders of every family adapterd runs, with seeded random weights, and a LoRA `intent` adapter on each,
for Benchmarks/run-families (speed does not depend on the weights' values).

For each family writes OUT_DIR/<family>/model/ (config.json: the published configuration of bert-base-uncased,
roberta-base, xlm-roberta-base, distilbert-base-uncased or answerdotai/ModernBERT-base, written out here since there is
no network; model.safetensors from AutoModel.from_config; the tokenizer files of the family's small model in the shared
encoder zoo, whose ids do not matter for EngineBenchmark's synthetic ids) and OUT_DIR/<family>/adapters/intent/ (PEFT
LoRA r 8, alpha 16 on the attention query and value projections, SEQ_CLS with 4 labels, lora_B re-drawn as seeded noise,
the classifier head saved through modules_to_save; labels.json). A family whose model directory exists is skipped.

Usage: make_family_models.py OUT_DIR [--families bert,roberta,xlm-roberta,distilbert,modernbert]
"""
import argparse
import json
import os
import shutil
import warnings

ZOO = "/work/shared/reference/encoder-zoo/models"
BERT_LIKE = {"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768,
             "initializer_range": 0.02, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12,
             "position_embedding_type": "absolute", "use_cache": True}
ROBERTA_LIKE = BERT_LIKE | {"bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1, "layer_norm_eps": 1e-5,
                            "max_position_embeddings": 514, "type_vocab_size": 1}
# The published config.json of each base model (transformers_version and similar bookkeeping left out).
CONFIGS = {
    "bert": BERT_LIKE | {"architectures": ["BertForMaskedLM"], "model_type": "bert", "layer_norm_eps": 1e-12,
                         "max_position_embeddings": 512, "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": 30522},
    "roberta": ROBERTA_LIKE | {"architectures": ["RobertaForMaskedLM"], "model_type": "roberta", "vocab_size": 50265},
    "xlm-roberta": ROBERTA_LIKE | {"architectures": ["XLMRobertaForMaskedLM"], "model_type": "xlm-roberta",
                                   "output_past": True, "vocab_size": 250002},
    "distilbert": {"activation": "gelu", "architectures": ["DistilBertForMaskedLM"], "attention_dropout": 0.1,
                   "dim": 768, "dropout": 0.1, "hidden_dim": 3072, "initializer_range": 0.02,
                   "max_position_embeddings": 512, "model_type": "distilbert", "n_heads": 12, "n_layers": 6,
                   "pad_token_id": 0, "qa_dropout": 0.1, "seq_classif_dropout": 0.2, "sinusoidal_pos_embds": False,
                   "tie_weights_": True, "vocab_size": 30522},
    "modernbert": {"architectures": ["ModernBertForMaskedLM"], "attention_bias": False, "attention_dropout": 0.0,
                   "bos_token_id": 50281, "classifier_activation": "gelu", "classifier_bias": False,
                   "classifier_dropout": 0.0, "classifier_pooling": "mean", "cls_token_id": 50281,
                   "decoder_bias": True, "deterministic_flash_attn": False, "embedding_dropout": 0.0,
                   "eos_token_id": 50282, "global_attn_every_n_layers": 3, "global_rope_theta": 160000.0,
                   "gradient_checkpointing": False, "hidden_activation": "gelu", "hidden_size": 768,
                   "initializer_cutoff_factor": 2.0, "initializer_range": 0.02, "intermediate_size": 1152,
                   "layer_norm_eps": 1e-5, "local_attention": 128, "local_rope_theta": 10000.0,
                   "max_position_embeddings": 8192, "mlp_bias": False, "mlp_dropout": 0.0, "model_type": "modernbert",
                   "norm_bias": False, "norm_eps": 1e-5, "num_attention_heads": 12, "num_hidden_layers": 22,
                   "pad_token_id": 50283, "position_embedding_type": "absolute", "sep_token_id": 50282,
                   "tie_word_embeddings": True, "torch_dtype": "float32", "vocab_size": 50368},
}
ZOO_NAMES = {"bert": "bert-cls"}
TARGETS = {"distilbert": ["q_lin", "v_lin"], "modernbert": ["Wqkv"]}  # others: query, value
# Head modules a base checkpoint lacks, beyond the `classifier` (and `score`) PEFT saves for SEQ_CLS anyway.
HEADS = {"distilbert": ["pre_classifier"], "modernbert": ["head"]}
LABELS = ["a", "b", "c", "d"]


def make(family, out):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the load reports of the classifier head, new by design
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore")

    model_dir, adapter_dir = f"{out}/{family}/model", f"{out}/{family}/adapters/intent"
    if os.path.exists(f"{model_dir}/model.safetensors") and os.path.exists(f"{adapter_dir}/adapter_model.safetensors"):
        print(f"{family}: exists, skipped", flush=True)
        return
    os.makedirs(model_dir, exist_ok=True)
    with open(f"{model_dir}/config.json", "w") as file:
        json.dump(CONFIGS[family], file, indent=2)
    torch.manual_seed(0)
    base = AutoModel.from_config(AutoConfig.from_pretrained(model_dir))
    base.save_pretrained(model_dir)
    with open(f"{model_dir}/config.json", "w") as file:  # the published form, not transformers' rewrite of it
        json.dump(CONFIGS[family], file, indent=2)
    del base
    zoo = f"{ZOO}/{ZOO_NAMES.get(family, family)}"
    for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "modules.json",
                 "sentence_bert_config.json"]:
        if os.path.exists(f"{zoo}/{name}"):
            shutil.copyfile(f"{zoo}/{name}", f"{model_dir}/{name}")
    if os.path.exists(f"{zoo}/1_Pooling/config.json"):
        os.makedirs(f"{model_dir}/1_Pooling", exist_ok=True)
        with open(f"{zoo}/1_Pooling/config.json") as file:
            pooling = json.load(file)
        pooling["word_embedding_dimension"] = 768
        with open(f"{model_dir}/1_Pooling/config.json", "w") as file:
            json.dump(pooling, file, indent=2)

    torch.manual_seed(1)
    classifier = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)})
    lora = LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, lora_dropout=0.0,
                      target_modules=TARGETS.get(family, ["query", "value"]),
                      modules_to_save=HEADS.get(family))
    peft_model = get_peft_model(classifier, lora)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    peft_model.save_pretrained(adapter_dir)
    with open(f"{adapter_dir}/labels.json", "w") as file:
        json.dump({"labels": LABELS}, file)

    # The adapter loads back onto a fresh base, tensors and head included.
    fresh = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(LABELS))
    loaded = PeftModel.from_pretrained(fresh, adapter_dir).eval()
    peft_model.eval()
    ids = torch.tensor([[101] + [1000 + i * 7919 % 20000 for i in range(14)] + [102]])
    with torch.no_grad():
        difference = (loaded(input_ids=ids).logits - peft_model(input_ids=ids).logits).abs().max().item()
    assert difference < 1e-4, f"{family}: the reloaded adapter's logits differ by {difference}"
    size = sum(p.numel() for p in fresh.base_model.parameters()) / 1e6
    print(f"{family}: wrote {model_dir} ({size:.1f}M parameters with the head) and {adapter_dir}; reloaded with "
          f"PeftModel.from_pretrained (logits within {difference:.1e})", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--families", default=",".join(CONFIGS))
    arguments = parser.parse_args()
    for family in arguments.families.split(","):
        make(family, arguments.out)

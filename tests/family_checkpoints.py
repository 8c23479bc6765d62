"""Tiny random Llama, Qwen2 and Mistral checkpoints, and their greedy reference, on plain PyTorch.

Run as a subprocess (mindnlp replaces `torch` inside the test process):
  python family_checkpoints.py write OUT_DIR            -> OUT_DIR/{llama,qwen2,mistral}/ + params.json
  python family_checkpoints.py greedy FOLDER IDS_JSON N OUT_JSON   -> N greedy tokens per prompt
    (argmax of full forward passes, no KV cache, EOS not special)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Each with fewer key/value heads than query heads; tied and untied output layers; Qwen2's q/k/v
# biases; llama3 rope scaling; a head_dim other than hidden/heads; Mistral's sliding window.
CONFIGS = {
    "llama": dict(model_type="llama", hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=96, num_hidden_layers=2, tie_word_embeddings=False, rope_theta=10000.0,
                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
    "qwen2": dict(model_type="qwen2", hidden_size=64, num_attention_heads=4, num_key_value_heads=1,
                  intermediate_size=128, num_hidden_layers=2, tie_word_embeddings=True, rope_theta=1e6),
    "mistral": dict(model_type="mistral", hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                    head_dim=24, intermediate_size=96, num_hidden_layers=3, tie_word_embeddings=False,
                    sliding_window=48),
}
VOCAB = 320
SPECIALS = ["<unk>", "<s>", "</s>"]


def tokenizer(add_bos: bool):
    """A byte-level tokenizer (256 bytes, 3 specials, a few merges); Llama's adds BOS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaTokenizerFast, PreTrainedTokenizerFast

    from harness.models.tiny import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(SPECIALS)}
    vocab.update({c: i + len(SPECIALS) for i, c in enumerate(chars)})
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("a", "n"), ("e", "r")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    core = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    if add_bos:
        return LlamaTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                  add_bos_token=True, add_eos_token=False)
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")


def write(out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    params = {}
    for name, settings in CONFIGS.items():
        torch.manual_seed(0)
        settings = dict(settings)
        config = AutoConfig.for_model(settings.pop("model_type"), vocab_size=VOCAB,
                                      max_position_embeddings=128, bos_token_id=1, eos_token_id=2,
                                      pad_token_id=2, **settings)
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
        with torch.no_grad():  # weights large enough for confident, varied predictions
            for key, p in model.named_parameters():
                p.copy_(1.0 + 0.1 * torch.randn_like(p) if "norm" in key else 0.15 * torch.randn_like(p))
        model.save_pretrained(out / name)
        tokenizer(add_bos=name == "llama").save_pretrained(out / name)
        params[name] = model.num_parameters()
    (out / "params.json").write_text(json.dumps(params), encoding="utf-8")


def greedy(folder: str, ids_json: str, n: int, out: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokens = []
    for ids in json.loads(ids_json):  # argmax of full forward passes: no KV cache, no stop token
        seq = list(ids)
        with torch.no_grad():
            for _ in range(n):
                seq.append(int(model(input_ids=torch.tensor([seq])).logits[0, -1].argmax()))
        tokens.append(seq[len(ids):])
    Path(out).write_text(json.dumps(tokens), encoding="utf-8")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if sys.argv[1] == "write":
        write(Path(sys.argv[2]))
    else:
        greedy(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])

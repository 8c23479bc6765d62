"""A tiny random Llama-architecture checkpoint whose tokenizer adds BOS, written locally.

For tests of what Llama-family checkpoints need and GPT-2's do not (BOS before every context,
grouped-query attention): 2 layers, 64 wide, 4 query heads sharing 2 key/value heads, rotary
positions, a byte-level BPE tokenizer (256 bytes + `<s>` + `</s>`) saved as a
`LlamaTokenizerFast` with `add_bos_token=True`, as SmolLM2's converted tokenizer is. Weights are
NumPy's seeded normal draws in Hugging Face's `LlamaForCausalLM` layout; no model class is
imported, so it can be written in a process where mindnlp has replaced torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.models.tiny import bytes_to_unicode

TINY_LLAMA_SHAPE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256}
BOS, EOS = "<s>", "</s>"


def write_bos_tokenizer(folder: Path, add_bos_token: bool = True) -> tuple[int, int]:
    """Save a byte-level BPE `LlamaTokenizerFast` (BOS `<s>`, EOS `</s>`); return their ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaTokenizerFast

    vocab = {ch: b for b, ch in bytes_to_unicode().items()}
    bos, eos = len(vocab), len(vocab) + 1
    vocab.update({BOS: bos, EOS: eos})
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he")]  # a few, so that BPE merges across the split
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    core = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = LlamaTokenizerFast(tokenizer_object=core, bos_token=BOS, eos_token=EOS, unk_token=None,
                                   add_bos_token=add_bos_token, legacy=True,
                                   model_max_length=TINY_LLAMA_SHAPE["max_position_embeddings"])
    tokenizer.save_pretrained(str(folder))
    return bos, eos


def tiny_llama_state_dict(config: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights in `LlamaForCausalLM`'s layout (untied output layer)."""
    rng = np.random.default_rng(seed)
    d, v, ff = config["hidden_size"], config["vocab_size"], config["intermediate_size"]
    head = d // config["num_attention_heads"]
    kv = head * config["num_key_value_heads"]

    def normal(*shape: int, std: float = 0.1) -> np.ndarray:
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    state = {"model.embed_tokens.weight": normal(v, d, std=0.5)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        state.update({
            p + "input_layernorm.weight": 1.0 + normal(d),
            p + "self_attn.q_proj.weight": normal(d, d), p + "self_attn.k_proj.weight": normal(kv, d),
            p + "self_attn.v_proj.weight": normal(kv, d), p + "self_attn.o_proj.weight": normal(d, d),
            p + "post_attention_layernorm.weight": 1.0 + normal(d),
            p + "mlp.gate_proj.weight": normal(ff, d), p + "mlp.up_proj.weight": normal(ff, d),
            p + "mlp.down_proj.weight": normal(d, ff),
        })
    state["model.norm.weight"] = 1.0 + normal(d)
    state["lm_head.weight"] = normal(v, d, std=0.5)
    return state


def write_tiny_llama(folder: Path, seed: int = 0, add_bos_token: bool = True) -> Path:
    """Write config.json, model.safetensors and the tokenizer into `folder`; return it."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bos, eos = write_bos_tokenizer(folder, add_bos_token)
    vocab_size = len(json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"])
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab_size,
        "bos_token_id": bos, "eos_token_id": eos, "hidden_act": "silu", "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "attention_bias": False, "mlp_bias": False,
        "tie_word_embeddings": False, "torch_dtype": "float32", **TINY_LLAMA_SHAPE,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    save_file(tiny_llama_state_dict(config, seed), str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    return folder

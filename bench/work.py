"""Distance to the limit: the matrix-product FLOPs a run had to do, the FLOPs it did, and its rate.

* **Needed**: 2 × body parameters × real tokens fed, plus the output layer 2 × d_model × vocab at
  the positions whose logits are used (the continuation tokens for log-likelihood, one per
  generated token). A context shared by several requests (multiple choice) counts once.
* **Done**: the same products at the shapes each engine really ran, read while it runs
  (`instrument_*`): every padded row × width through the body, every position through the output
  layer (lm-eval computes it at every input position; this harness at the scored ones).
* Attention's score and value products (≈ 2 × 2 × n_layer × d_model × context per token) are
  **excluded** from both: they grow with the context, not with the parameters, and are a few per
  cent of the work at LAMBADA's lengths. Embedding lookups do no FLOPs.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Tensors that are lookups or the output layer, not body products (GPT-2 and Llama names).
NOT_BODY = ("wte.weight", "wpe.weight", "embed_tokens.weight", "lm_head.weight")


@dataclass
class Work:
    """Tokens through the body and positions through the output layer, as really run."""

    body_tokens: int = 0
    head_positions: int = 0

    def flops(self, shape: ModelShape) -> float:
        return shape.flops(self.body_tokens, self.head_positions)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ModelShape:
    """What the FLOP count needs to know about a checkpoint."""

    body_parameters: int
    d_model: int
    vocab: int

    def flops(self, body_tokens: int, head_positions: int) -> float:
        return 2.0 * self.body_parameters * body_tokens + 2.0 * self.d_model * self.vocab * head_positions


def model_shape(folder: Path) -> ModelShape:
    """Body parameters from the safetensors headers (no weights read), widths from config.json."""
    config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    d_model = int(config.get("n_embd") or config["hidden_size"])
    body = 0
    for path in sorted(Path(folder).glob("*.safetensors")):
        with path.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        for name, info in header.items():
            if name != "__metadata__" and not name.endswith(NOT_BODY):
                n = 1
                for dim in info["shape"]:
                    n *= int(dim)
                body += n
    if not body:
        raise ValueError(f"no safetensors weights in '{folder}'")
    return ModelShape(body, d_model, int(config["vocab_size"]))


# ------------------------------------------------------------------ needed work
def needed_scoring(pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> Work:
    """(context ids, continuation ids) requests: each distinct context is fed once, then each
    distinct continuation but its last token; every continuation token is scored."""
    distinct = dict.fromkeys((tuple(c), tuple(t)) for c, t in pairs)
    contexts = {c for c, _ in distinct}
    body = sum(len(c) for c in contexts) + sum(len(t) - 1 for _, t in distinct)
    return Work(body, sum(len(t) for _, t in distinct))


def needed_generation(prompt_lengths: Sequence[int], generated: Sequence[int]) -> Work:
    """Each prompt once, then each generated token but the last; one output-layer position per
    generated token."""
    body = sum(p + max(0, g - 1) for p, g in zip(prompt_lengths, generated, strict=True))
    return Work(body, sum(generated))


# ------------------------------------------------------------------ done work (instruments)
def instrument_torch(model: Any, work: Work) -> None:
    """Count through forward hooks on a transformers model's body and output layer: whatever
    calls them (lm-eval's HFLM, `generate`, this harness's torch backend) is counted as run."""

    def body(_module: Any, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else (args[0] if args else None)
        if ids is None:
            ids = kwargs["inputs_embeds"][..., 0]
        work.body_tokens += int(ids.numel())

    def head(_module: Any, args: tuple) -> None:
        hidden = args[0]
        work.head_positions += int(hidden.numel() // hidden.shape[-1])

    model.base_model.register_forward_pre_hook(body, with_kwargs=True)
    model.get_output_embeddings().register_forward_pre_hook(head)


def instrument_native(backend: Any, work: Work) -> None:
    """Count the native engine's padded shapes at its model's entry points (instance wrappers)."""
    model = backend.model

    def wrap(name: str, count: Callable[..., None]) -> None:
        inner = getattr(model, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            count(*args, **kwargs)
            return inner(*args, **kwargs)

        setattr(model, name, counted)

    def forward(ids: Any, *_: Any, pack: Any = None, **__: Any) -> None:  # packed: its rows only
        work.body_tokens += int(ids.size) if pack is None else len(pack)

    def decode(ids: Any, *_: Any, **__: Any) -> None:  # one token per row, then the output layer for each row
        work.body_tokens += int(ids.size)
        work.head_positions += int(ids.shape[0])

    def head(_hidden: Any, rows: Any, *_: Any, **__: Any) -> None:
        work.head_positions += len(rows)

    wrap("forward", forward)
    wrap("decode", decode)
    wrap("logits", head)
    wrap("score", head)

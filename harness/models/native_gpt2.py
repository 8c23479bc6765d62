"""GPT-2 in MindSpore on one screen (nanoGPT style), run by the shared native engine.

The forward pass is the masked self-attention of the GPT-2 paper: layer norm, fused qkv
projection, split heads, causal attention, merge heads, output projection, residual; then layer
norm, MLP with gelu_new (tanh), residual; a final layer norm and an output layer tied to the
token embedding. Learned position embeddings are added to the token embeddings (in numpy).
KV caches, attention modes, compiled graphs and the output layer live in `native_engine`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from mindspore import Tensor, ops

from harness.models.native_engine import (  # noqa: F401 - FRESH/SHARED_CONTEXT/DECODE: the modes, re-exported
    DECODE,
    FRESH,
    SHARED_CONTEXT,
    Graphs,
    Network,
    as_tensor,
    attend,
    batch_shape,
    flat_rows,
    linear,
    merge_heads,
    read_config,
    read_weights,
    reshape,
    to_packed,
    to_padded,
    transpose,
)

# GPT-2 config options with the value every released GPT-2 checkpoint uses (others: mindnlp).
UNSUPPORTED = {"activation_function": "gelu_new", "scale_attn_weights": True,
               "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
               "tie_word_embeddings": True}


@dataclass(frozen=True)
class GPT2Config:
    n_layer: int
    n_head: int
    n_embd: int
    n_positions: int
    vocab_size: int
    layer_norm_epsilon: float = 1e-5

    @classmethod
    def from_folder(cls, folder: Path) -> GPT2Config:
        raw = read_config(folder)
        unusual = {key: raw[key] for key, usual in UNSUPPORTED.items() if raw.get(key, usual) != usual}
        if unusual:
            raise ValueError(f"config options this engine does not implement: {unusual}")
        return cls(int(raw["n_layer"]), int(raw["n_head"]), int(raw["n_embd"]),
                   int(raw.get("n_positions", raw.get("n_ctx", 1024))), int(raw["vocab_size"]),
                   float(raw.get("layer_norm_epsilon", 1e-5)))

    @property
    def max_length(self) -> int:
        return self.n_positions


_thirds, _sigmoid = ops.Split(axis=1, output_num=3), ops.Sigmoid()
_row_mean, _rsqrt, _square = ops.ReduceMean(keep_dims=True), ops.Rsqrt(), ops.Square()
# gelu_new(x) = 0.5 x (1 + tanh(z)) = x sigmoid(2z), z = sqrt(2/pi) (x + 0.044715 x^3): the same function.
# MindSpore's CPU Tanh is off by up to 1.0e-4 (at x = -5; Sigmoid by 8e-7, measured 2026-12-08), which
# left the random GPT-2-small's log-probabilities 7-9e-3 from a float64 reference instead of the
# 6-7e-4 of float32 PyTorch; the sigmoid form is as fast.
_GELU_LINEAR = 2.0 * math.sqrt(2.0 / math.pi)
_GELU_CUBIC = _GELU_LINEAR * 0.044715


class Block(NamedTuple):
    """One layer's weights (the graphs receive it as a plain tuple, in this order). The layer norms'
    weight and bias are folded into the product each norm feeds (see `fold_norm`)."""

    attn: tuple[Tensor, Tensor, Tensor, Tensor]  # c_attn weight [D,3D], bias; c_proj weight [D,D], bias
    mlp: tuple[Tensor, Tensor, Tensor, Tensor]  # c_fc weight [D,4D], bias; c_proj weight [4D,D], bias


def block(x, positions, ctx, kv, mode: int, arch, weights):
    """One transformer block; x [B,T,D] or packed rows [P,D]. GPT-2's positions are in x already
    (`positions` is None)."""
    attn, mlp = weights
    h = flat_rows(x)
    a, keys, values = attention(normalized(h, arch), ctx, kv, mode, arch, attn)
    h = h + a
    h = h + feed_forward(normalized(h, arch), mlp)
    return reshape(h, x.shape), keys, values


def attention(h, ctx, kv, mode: int, arch, weights):
    """Causal self-attention of rows h ([B*T, D] or packed): the output rows like h and the keys/values
    to cache."""
    n_head, _ = arch
    w_qkv, b_qkv, w_o, b_o = weights
    B, T = batch_shape(ctx)
    q, k, v = _thirds(to_padded(linear(h, w_qkv, b_qkv), ctx))
    hd = q.shape[1] // n_head
    q = transpose(reshape(q, (B, T, n_head, hd)), (0, 2, 1, 3))  # [B,H,T,hd], pre-scaled by 1/sqrt(hd)
    k = transpose(reshape(k, (B, T, n_head, hd)), (0, 2, 3, 1))  # [B,H,hd,T]
    v = transpose(reshape(v, (B, T, n_head, hd)), (0, 2, 1, 3))  # [B,H,T,hd]
    att, keys, values = attend(q, k, v, mode, ctx, kv)
    return linear(to_packed(merge_heads(att), ctx), w_o, b_o), keys, values


def feed_forward(h, weights):
    w_fc, b_fc, w_proj, b_proj = weights
    return linear(gelu_new(linear(h, w_fc, b_fc)), w_proj, b_proj)


def layer_norm(x, weights, arch):
    w, b = weights
    return ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=arch[1])(x, w, b)[0]


def normalized(x, arch):
    """Layer norm without its weight and bias, (x - mean) / sqrt(var + eps) per row: in five plain
    kernels it took half the time of MindSpore's LayerNorm kernel (1.7 against 3.2 ms at 600 x 768, 2
    cores, 2026-12-08), the weight and bias being folded into the next product (`fold_norm`)."""
    d = x - _row_mean(x, -1)
    return d * _rsqrt(_row_mean(_square(d), -1) + arch[1])


def fold_norm(weight: np.ndarray, bias: np.ndarray, w: np.ndarray,
              b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The product x @ w + b of a layer norm's output (norm(x) * weight + bias) as norm(x) @ w' + b'
    (exact in real arithmetic, computed in float64): w' = diag(weight) w, b' = bias @ w + b."""
    wide = w.astype(np.float64)
    return weight.astype(np.float64)[:, None] * wide, bias.astype(np.float64) @ wide + b


def gelu_new(x):
    """GPT-2's tanh approximation of GELU, written as x * sigmoid(2z) (see _GELU_LINEAR)."""
    return x * _sigmoid(x * (_GELU_LINEAR + _GELU_CUBIC * (x * x)))


def load_state(folder: Path) -> dict[str, np.ndarray]:
    """GPT-2 weights from a Hugging Face folder, named without the `transformer.` prefix.

    HF's Conv1D stores weights as [in, out], which is what `x @ W` wants; the tied lm_head is dropped.
    """
    state = {}
    for key, value in read_weights(folder).items():
        name = key.removeprefix("transformer.")
        if name == "lm_head.weight" or name.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # tied output layer; causal-mask buffers of old checkpoints
        state[name] = value
    return state


class GPT2(Network):
    """GPT-2's weights and embedding on the shared engine."""

    graphs = Graphs(block, layer_norm)

    def __init__(self, config: GPT2Config, state: dict[str, np.ndarray], dtype: str = "float32") -> None:
        self.config = config
        c = config
        n_parameters = sum(int(v.size) for v in state.values())  # tied output layer not in state
        # Fold attention's 1/sqrt(head_dim) into the query projection (exact for GPT-2's
        # head_dim 64: a power of two), saving a pass over the [T, S] scores of every head.
        scale = np.ones(3 * c.n_embd, dtype=np.float32)
        scale[: c.n_embd] = 1.0 / math.sqrt(c.n_embd // c.n_head)

        def t(name: str) -> Tensor:
            return as_tensor(state[name], dtype)

        def folded(i: int, norm: str, product: str,
                   factor: np.ndarray | float = 1.0) -> tuple[Tensor, Tensor]:
            w, b = fold_norm(state[f"h.{i}.{norm}.weight"], state[f"h.{i}.{norm}.bias"],
                             state[f"h.{i}.{product}.weight"], state[f"h.{i}.{product}.bias"])
            return as_tensor(w * factor, dtype), as_tensor(b * factor, dtype)

        blocks = [Block(attn=(*folded(i, "ln_1", "attn.c_attn", scale),
                              t(f"h.{i}.attn.c_proj.weight"), t(f"h.{i}.attn.c_proj.bias")),
                        mlp=(*folded(i, "ln_2", "mlp.c_fc"), t(f"h.{i}.mlp.c_proj.weight"),
                             t(f"h.{i}.mlp.c_proj.bias")))
                  for i in range(c.n_layer)]
        # Embedding lookups run in numpy (one graph fewer to compile per input shape).
        self.wte = np.ascontiguousarray(state["wte.weight"], dtype=np.float32)
        self.wpe = np.ascontiguousarray(state["wpe.weight"], dtype=np.float32)
        super().__init__(blocks, (t("ln_f.weight"), t("ln_f.bias")), state["wte.weight"].T,
                         (c.n_head, c.layer_norm_epsilon), n_head=c.n_head, n_kv_head=c.n_head,
                         head_dim=c.n_embd // c.n_head, d_model=c.n_embd, n_parameters=n_parameters,
                         dtype=dtype)

    def embed(self, ids: np.ndarray, pos: np.ndarray) -> tuple[Tensor, None]:
        return Tensor(self.wte[ids] + self.wpe[pos], self.dtype), None


def load(folder: Path, dtype: str = "float32") -> GPT2:
    return GPT2(GPT2Config.from_folder(folder), load_state(folder), dtype)

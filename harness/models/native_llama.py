"""Llama, Qwen2 and Mistral in MindSpore on one screen (nanoGPT style), run by the shared native engine.

The forward pass of transformers' `LlamaForCausalLM` (and its Qwen2/Mistral variants): RMSNorm,
fused q/k/v projection (biases where the checkpoint has them: Qwen2), rotary position embeddings
(rotate_half convention, `rope_theta`, `rope_scaling` none or llama3), grouped-query attention,
output projection, residual; RMSNorm, SwiGLU MLP, residual; a final RMSNorm and an output layer,
tied to the token embedding or not. KV caches, attention modes, compiled graphs and the output
layer live in `native_engine`. Sliding-window attention (Mistral, some Qwen2) is not implemented:
the backend refuses rows longer than the window, where every token attends to all before it anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import mindspore as ms
import numpy as np
from mindspore import Tensor, ops

from harness.models.native_engine import (
    Graphs,
    Network,
    as_tensor,
    attend,
    batch_shape,
    cast,
    concat3,
    flat_rows,
    linear,
    merge_heads,
    read_config,
    read_weights,
    reshape,
    take,
    to_packed,
    to_padded,
    transpose,
)

MODEL_TYPES = ("llama", "qwen2", "mistral")
ROPE_TYPES = ("default", "llama3")
_halves, _pair = ops.Split(axis=3, output_num=2), ops.Split(axis=1, output_num=2)
_rsqrt, _mean, _unstack = ops.Rsqrt(), ops.ReduceMean(keep_dims=True), ops.Unstack(0)
_silu = ops.auto_generate.SiLU()  # the primitive behind ops.silu
BIASED_PRODUCTS = (("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), ("self_attn.o_proj",),
                   ("mlp.gate_proj", "mlp.up_proj"), ("mlp.down_proj",))


@dataclass(frozen=True)
class LlamaConfig:
    n_layer: int
    n_head: int
    n_kv_head: int
    d_model: int
    head_dim: int
    intermediate: int
    vocab_size: int
    max_length: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: dict | None  # a llama3 rope_scaling dict, or None
    tied: bool
    sliding_window: int | None  # the longest row whose attention covers every earlier token

    @classmethod
    def from_folder(cls, folder: Path) -> LlamaConfig:
        raw = read_config(folder)
        if raw.get("model_type") not in MODEL_TYPES:
            raise ValueError(f"model_type '{raw.get('model_type')}' is not one of {', '.join(MODEL_TYPES)}")
        if raw.get("hidden_act", "silu") != "silu":
            raise ValueError(f"hidden_act '{raw['hidden_act']}' is not implemented (silu only)")
        if raw.get("partial_rotary_factor", 1.0) != 1.0:
            raise ValueError("partial_rotary_factor is not implemented (1.0 only)")
        scaling = raw.get("rope_scaling") or None
        kind = None if scaling is None else scaling.get("rope_type", scaling.get("type", "default"))
        if kind not in (None, *ROPE_TYPES):
            raise ValueError(f"rope_scaling type '{kind}' is not implemented (none, default or llama3)")
        n_head = int(raw["num_attention_heads"])
        return cls(
            n_layer=int(raw["num_hidden_layers"]), n_head=n_head,
            n_kv_head=int(raw.get("num_key_value_heads") or n_head), d_model=int(raw["hidden_size"]),
            head_dim=int(raw.get("head_dim") or raw["hidden_size"] // n_head),
            intermediate=int(raw["intermediate_size"]), vocab_size=int(raw["vocab_size"]),
            max_length=int(raw.get("max_position_embeddings", 2048)),
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
            rope_theta=float(raw.get("rope_theta", 10000.0)),
            rope_scaling=scaling if kind == "llama3" else None,
            tied=bool(raw.get("tie_word_embeddings", False)),  # the three config classes' default
            sliding_window=_sliding_window(raw))


def _sliding_window(raw: dict) -> int | None:
    """The window some layer attends within (transformers 4.57's semantics per model type), or None."""
    window = raw.get("sliding_window")
    if raw["model_type"] == "mistral":
        return int(window) if window else None
    if raw["model_type"] == "qwen2" and raw.get("use_sliding_window") and window:
        types = raw.get("layer_types") or ["sliding_attention" if i >= raw.get("max_window_layers", 28)
                                           else "full_attention" for i in range(raw["num_hidden_layers"])]
        return int(window) if "sliding_attention" in types else None
    return None


def inverse_frequencies(c: LlamaConfig) -> np.ndarray:
    """RoPE's inverse frequencies [head_dim/2] in float32, as transformers' rope init functions."""
    exponents = np.arange(0, c.head_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(c.head_dim)
    inv = (np.float32(1.0) / (np.float32(c.rope_theta) ** exponents)).astype(np.float32)
    if c.rope_scaling is None:
        return inv
    s = c.rope_scaling  # llama3: long wavelengths slowed down by `factor`, a smooth ramp between
    factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
    old = s["original_max_position_embeddings"]
    wavelen = np.float32(2 * math.pi) / inv
    scaled = np.where(wavelen > old / low, inv / np.float32(factor), inv).astype(np.float32)
    smooth = ((old / wavelen - low) / (high - low)).astype(np.float32)
    smoothed = ((1 - smooth) * scaled / np.float32(factor) + smooth * scaled).astype(np.float32)
    medium = ~(wavelen < old / high) & ~(wavelen > old / low)
    return np.where(medium, smoothed, scaled).astype(np.float32)


class Block(NamedTuple):
    """One layer's weights (the graphs receive it as a plain tuple, in this order)."""

    attn_norm: Tensor  # input_layernorm
    attn: tuple[Tensor, Tensor, Tensor, Tensor]  # q|k|v weight [D,(H+2K)hd], bias; o weight [H*hd,D], bias
    mlp_norm: Tensor  # post_attention_layernorm
    mlp: tuple[Tensor, Tensor, Tensor, Tensor]  # gate|up weight [D,2I], bias; down weight [I,D], bias


def block(x, rope, ctx, kv, mode: int, arch, weights):
    """One transformer block; x [B,T,D] or packed rows [P,D], rope [2,B,1,T,hd] (cos, signed sin at each
    token's position)."""
    attn_norm, attn, mlp_norm, mlp = weights
    h = flat_rows(x)
    a, keys, values = attention(rms_norm(h, attn_norm, arch), rope, ctx, kv, mode, arch, attn)
    h = h + a
    h = h + swiglu(rms_norm(h, mlp_norm, arch), mlp, arch[4][2:])
    return reshape(h, x.shape), keys, values


def attention(h, rope, ctx, kv, mode: int, arch, weights):
    """Grouped-query causal self-attention of rows h ([B*T, D] or packed): output rows like h,
    keys/values to cache."""
    n_head, n_kv, hd, _, biased = arch
    w_qkv, b_qkv, w_o, b_o = weights
    B, T = batch_shape(ctx)
    qkv = to_padded(linear(h, w_qkv, b_qkv, biased[0]), ctx)
    qk_width = (n_head + n_kv) * hd
    qk, v = take(qkv, 1, 0, qk_width), take(qkv, 1, qk_width, qk_width + n_kv * hd)
    # q and k heads rotated together: one rotation's kernels a layer instead of two (per element the same)
    qk = rotate(transpose(reshape(qk, (B, T, n_head + n_kv, hd)), (0, 2, 1, 3)), rope)
    q = take(qk, 1, 0, n_head)  # [B,H,T,hd], pre-scaled
    k = transpose(take(qk, 1, n_head, n_head + n_kv), (0, 1, 3, 2))  # [B,K,hd,T]
    v = transpose(reshape(v, (B, T, n_kv, hd)), (0, 2, 1, 3))  # [B,K,T,hd]
    att, keys, values = attend(q, k, v, mode, ctx, kv)
    return linear(to_packed(merge_heads(att), ctx), w_o, b_o, biased[1]), keys, values


def rotate(x, rope):
    """Rotary position embedding of x [B,H,T,hd]: x*cos + rotate_half(x)*sin, where rotate_half(x)*sin
    = [-second, first]*sin is computed as [second, first]*[-sin, sin] (`embed` negates the first half
    of sin; the same products exactly, one kernel fewer)."""
    cos, signed_sin = _unstack(rope)  # (indexing rope[0] would be slow to compile)
    first, second = _halves(x)
    return x * cos + concat3((second, first)) * signed_sin


def swiglu(h, weights, biased):
    w_gate_up, b_gate_up, w_down, b_down = weights
    gate, up = _pair(linear(h, w_gate_up, b_gate_up, biased[0]))
    return linear(_silu(gate) * up, w_down, b_down, biased[1])


def rms_norm(x, w, arch):
    h = cast(x, ms.float32)
    h = h * _rsqrt(_mean(h * h, -1) + arch[3])
    return w * cast(h, x.dtype)


def final_norm(rows, weights, arch):
    return rms_norm(rows, weights[0], arch)


def load_state(folder: Path) -> dict[str, np.ndarray]:
    """Weights from a Hugging Face folder, named without the `model.` prefix (torch layout [out, in])."""
    return {key.removeprefix("model."): value for key, value in read_weights(folder).items()}


class Llama(Network):
    """Llama-family weights and embedding on the shared engine."""

    graphs = Graphs(block, final_norm)

    def __init__(self, config: LlamaConfig, state: dict[str, np.ndarray], dtype: str = "float32") -> None:
        self.config = c = config
        n_parameters = sum(int(v.size) for k, v in state.items() if not (c.tied and k == "lm_head.weight"))
        scale = 1.0 / math.sqrt(c.head_dim)  # attention's 1/sqrt(hd), folded into q

        def t(array: np.ndarray) -> Tensor:
            return as_tensor(array, dtype)

        def weight(name: str, factor: float = 1.0) -> np.ndarray:  # [in, out] for x @ W
            return state[f"{name}.weight"].T * np.float32(factor)

        def bias(name: str, size: int, factor: float = 1.0) -> np.ndarray:  # zeros where there is none
            return state.get(f"{name}.bias", np.zeros(size, dtype=np.float32)) * np.float32(factor)

        blocks = []
        for i in range(c.n_layer):
            a, m = f"layers.{i}.self_attn", f"layers.{i}.mlp"
            qkv = np.concatenate([weight(f"{a}.q_proj", scale), weight(f"{a}.k_proj"), weight(f"{a}.v_proj")],
                                 1)
            qkv_bias = np.concatenate([bias(f"{a}.q_proj", c.n_head * c.head_dim, scale),
                                       bias(f"{a}.k_proj", c.n_kv_head * c.head_dim),
                                       bias(f"{a}.v_proj", c.n_kv_head * c.head_dim)])
            gate_up = np.concatenate([weight(f"{m}.gate_proj"), weight(f"{m}.up_proj")], 1)
            gate_up_bias = np.concatenate([bias(f"{m}.gate_proj", c.intermediate),
                                           bias(f"{m}.up_proj", c.intermediate)])
            blocks.append(Block(
                attn_norm=t(state[f"layers.{i}.input_layernorm.weight"]),
                attn=(t(qkv), t(qkv_bias), t(weight(f"{a}.o_proj")), t(bias(f"{a}.o_proj", c.d_model))),
                mlp_norm=t(state[f"layers.{i}.post_attention_layernorm.weight"]),
                mlp=(t(gate_up), t(gate_up_bias), t(weight(f"{m}.down_proj")),
                     t(bias(f"{m}.down_proj", c.d_model)))))
        # Embedding lookups and rotary tables run in numpy (one graph fewer to compile per input shape).
        self.embed_tokens = np.ascontiguousarray(state["embed_tokens.weight"], dtype=np.float32)
        self.inv_freq = inverse_frequencies(c)
        w_out = state["embed_tokens.weight"] if c.tied else state["lm_head.weight"]
        # Which of the q|k|v, o, gate|up and down products have a bias anywhere (graph constants: the
        # zero-bias adds of Llama and SmolLM2 are skipped; Qwen2 has q/k/v biases).
        biased = tuple(any(f"layers.{i}.{name}.bias" in state for i in range(c.n_layer)
                           for name in names) for names in BIASED_PRODUCTS)
        super().__init__(blocks, (t(state["norm.weight"]),), w_out.T, (c.n_head, c.n_kv_head, c.head_dim,
                         c.rms_norm_eps, biased), n_head=c.n_head, n_kv_head=c.n_kv_head, head_dim=c.head_dim,
                         d_model=c.d_model, n_parameters=n_parameters, dtype=dtype)

    def embed(self, ids: np.ndarray, pos: np.ndarray) -> tuple[Tensor, Tensor]:
        """Token embeddings [B,T,D] and rope [2,B,1,T,hd]: cos, and sin with its first half negated
        (see `rotate`), of position * frequency."""
        angles = np.asarray(pos, dtype=np.float32)[:, None, :, None] * self.inv_freq  # float32, as torch
        angles = np.concatenate([angles, angles], axis=-1).astype(np.float64)
        sin = np.sin(angles)
        sin[..., : self.config.head_dim // 2] *= -1.0
        rope = np.stack([np.cos(angles), sin]).astype(np.float32)
        return Tensor(self.embed_tokens[ids], self.dtype), Tensor(rope, self.dtype)


def load(folder: Path, dtype: str = "float32") -> Llama:
    return Llama(LlamaConfig.from_folder(folder), load_state(folder), dtype)

"""GPT-2 in MindSpore on one screen (nanoGPT style), compiled with `mindspore.jit`.

The forward pass is the masked self-attention of the GPT-2 paper: layer norm, fused qkv
projection, split heads, causal mask, softmax, merge heads, output projection, residual;
then layer norm, MLP with gelu_new (tanh), residual; a final layer norm and an output layer
tied to the token embedding. A new input shape first runs one small compiled graph per layer
(one block, called with each layer's weights); a shape that recurs gets the whole network as one
graph, which runs faster but takes longer to compile. Decoding steps always run as one graph.

Numerics are chosen so that a row's numbers never depend on its neighbours: only 2-D
`MatMul` with at least two rows and non-transposed `BatchMatMul` are used (on CPU both give
every output row bit-identical values whatever the other rows are), so padding the batch,
scoring from a shared KV cache or applying the output layer to fewer rows changes nothing.
Keys are kept transposed, [B, H, head_dim, S], for the same reason.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Tensor, mint, mutable, ops

BLOCK_KEYS = (
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
    "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
    "mlp.c_proj.weight", "mlp.c_proj.bias",
)
# How a block obtains the keys/values it attends to (a compile-time constant).
FRESH, DECODE, PLACE = 0, 1, 2
# GPT-2 config options with the value every released GPT-2 checkpoint uses (others: mindnlp).
UNSUPPORTED = {"activation_function": "gelu_new", "scale_attn_weights": True,
               "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
               "tie_word_embeddings": True}
# When an input shape gets a whole-network graph: once the time it would already have saved on the
# calls so far (per call ~30 ms of graph-call overhead plus ~0.3 ms per token row, measured on
# GPT-2-small, CPU; both and the compile time grow with the depth) exceeds what compiling it costs
# (~1.5 s). Rent-or-buy: never more than twice the better choice in hindsight.
WHOLE_GRAPH_COMPILE_S, SAVED_PER_CALL_S, SAVED_PER_TOKEN_S = 1.5, 0.03, 3e-4
MS_DTYPES = {"float32": ms.float32, "float16": ms.float16, "bfloat16": ms.bfloat16}
_matmul = ops.MatMul()
_bmm = ops.BatchMatMul()
_argmax = ops.Argmax(axis=-1, output_type=ms.int32)


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
        raw = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
        unusual = {key: raw[key] for key, usual in UNSUPPORTED.items() if raw.get(key, usual) != usual}
        if unusual:
            raise ValueError(f"config options this engine does not implement: {unusual}")
        return cls(int(raw["n_layer"]), int(raw["n_head"]), int(raw["n_embd"]),
                   int(raw.get("n_positions", raw.get("n_ctx", 1024))), int(raw["vocab_size"]),
                   float(raw.get("layer_norm_epsilon", 1e-5)))


def _layer_norm(x: Tensor, w: Tensor, b: Tensor, eps: float) -> Tensor:
    return ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=eps)(x, w, b)[0]


def _gelu_new(x: Tensor) -> Tensor:
    return 0.5 * x * (1.0 + mint.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def _linear(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    return ops.bias_add(_matmul(x, w), b)


def _block(x, cache_k, cache_v, allowed, place, who, new_k, new_v, mode: int, n_head: int, eps: float,
           weights):
    """One transformer block. x [B,T,D]; keys [B,H,hd,S] (transposed) and values [B,H,S,hd]."""
    w_ln1, b_ln1, w_qkv, b_qkv, w_o, b_o, w_ln2, b_ln2, w_fc, b_fc, w_pr, b_pr = weights
    B, T, D = x.shape
    hd = D // n_head
    h = x.reshape(B * T, D)
    q, k, v = ops.Split(axis=1, output_num=3)(_linear(_layer_norm(h, w_ln1, b_ln1, eps), w_qkv, b_qkv))
    q = q.reshape(B, T, n_head, hd).transpose(0, 2, 1, 3)  # [B,H,T,hd]
    k = k.reshape(B, T, n_head, hd).transpose(0, 2, 3, 1)  # [B,H,hd,T]
    v = v.reshape(B, T, n_head, hd).transpose(0, 2, 1, 3)  # [B,H,T,hd]
    low = float(np.finfo(np.float32).min)  # masked scores: finite, so no NaN rows
    if mode == DECODE:  # cache: the prompt's keys, never copied; new_k/new_v: the generated tokens,
        # one new token entering on the right and the oldest (empty) slot leaving at each step
        new_k = mint.cat((new_k[:, :, :, 1:], k), dim=3)
        new_v = mint.cat((new_v[:, :, 1:], v), dim=2)
        scores = mint.cat((_bmm(q, cache_k), _bmm(q, new_k)), dim=3).astype(ms.float32)
        probs = ops.softmax(mint.where(allowed, scores, low), -1).astype(x.dtype)
        width = cache_k.shape[3]
        att = _bmm(probs[:, :, :, :width], cache_v) + _bmm(probs[:, :, :, width:], new_v)
        return _mlp(h, att, eps, weights).reshape(B, T, D), new_k, new_v
    if mode == FRESH:  # keys are this call's own tokens
        keys, values = k, v
    else:  # PLACE: row b continues cache row who[b]; token t goes to slot s where place[b,0,t,s] == 1
        cache_k, cache_v = ops.gather(cache_k, who, 0), ops.gather(cache_v, who, 0)  # (exact: x*1 + 0s)
        written = place.sum(2) > 0.5  # [B,1,S]
        keys = mint.where(written[:, :, None, :], _bmm(k, place.broadcast_to((B, n_head, T, -1))), cache_k)
        values = mint.where(written[:, :, :, None],
                            _bmm(place.swapaxes(2, 3).broadcast_to((B, n_head, -1, T)), v), cache_v)
    scores = _bmm(q, keys).astype(ms.float32)  # [B,H,T,S]; q comes pre-scaled by 1/sqrt(hd)
    att = _bmm(ops.softmax(mint.where(allowed, scores, low), -1).astype(x.dtype), values)  # [B,H,T,hd]
    return _mlp(h, att, eps, weights).reshape(B, T, D), keys, values


def _mlp(h, att, eps: float, weights):
    """Attention output projection and residual, then the MLP and its residual; h [B*T, D]."""
    w_ln1, b_ln1, w_qkv, b_qkv, w_o, b_o, w_ln2, b_ln2, w_fc, b_fc, w_pr, b_pr = weights
    B, H, T, hd = att.shape
    h = h + _linear(att.transpose(0, 2, 1, 3).reshape(B * T, H * hd), w_o, b_o)
    return h + _linear(_gelu_new(_linear(_layer_norm(h, w_ln2, b_ln2, eps), w_fc, b_fc)), w_pr, b_pr)


def _layers(x, allowed, place, who, cache, new, weights, mode: int, n_head: int, eps: float):
    """Every block in turn. `weights` holds each layer's BLOCK_KEYS tensors, layer after layer;
    `cache`/`new` hold keys and values per layer ((k0, v0, k1, v1, ...)) or are None."""
    n = len(BLOCK_KEYS)
    out = ()
    for i in range(len(weights) // n):
        cache_k, cache_v, new_k, new_v = None, None, None, None
        if cache is not None:
            cache_k, cache_v = cache[2 * i], cache[2 * i + 1]
        if new is not None:
            new_k, new_v = new[2 * i], new[2 * i + 1]
        x, keys, values = _block(x, cache_k, cache_v, allowed, place, who, new_k, new_v, mode, n_head, eps,
                                 weights[n * i : n * i + n])
        out = out + (keys, values)
    return x, out


# Two ways to run the blocks, with bit-identical numbers: one compiled graph per layer call (a new
# input shape compiles one small graph, ~0.25 s here), or the whole network as one graph (one call
# per forward pass, ~30 % faster, as each graph call costs milliseconds, but ~1-2 s to compile).
@ms.jit
def _block_jit(x, cache_k, cache_v, allowed, place, who, mode, n_head, eps, *weights):
    return _block(x, cache_k, cache_v, allowed, place, who, None, None, mode, n_head, eps, weights)


@ms.jit
def _forward_jit(x, allowed, place, who, cache, weights, mode, n_head, eps):
    return _layers(x, allowed, place, who, cache, None, weights, mode, n_head, eps)


@ms.jit
def _decode_jit(x, allowed, cache, new, weights, w_ln, b_ln, w_out, n_head, eps):
    """One decoding step for one token per row: next-token logits [B, V] and the new keys/values."""
    x, out = _layers(x, allowed, None, None, cache, new, weights, DECODE, n_head, eps)
    return _head(x.reshape(-1, x.shape[-1]), w_ln, b_ln, eps, w_out), out


def _head(rows, w_ln, b_ln, eps, w_out):
    """Final layer norm and output layer for hidden rows [M, D]."""
    return _matmul(_layer_norm(rows, w_ln, b_ln, eps), w_out).astype(ms.float32)


@ms.jit
def _logits(rows, w_ln, b_ln, eps, w_out):
    return _head(rows, w_ln, b_ln, eps, w_out)


@ms.jit
def _score(rows, w_ln, b_ln, eps, w_out, targets):
    """log P(target) and whether target is the argmax, for hidden rows [M, D]."""
    logits = _head(rows, w_ln, b_ln, eps, w_out)
    logprobs = ops.log_softmax(logits, -1)
    picked = ops.gather_elements(logprobs, 1, targets[:, None])[:, 0]
    return picked, _argmax(logits) == targets


def load_state(folder: Path) -> dict[str, np.ndarray]:
    """GPT-2 weights from a Hugging Face folder, named without the `transformer.` prefix.

    Reads model.safetensors (or its sharded index) or pytorch_model.bin. HF's Conv1D stores
    weights as [in, out], which is what `x @ W` wants; the tied lm_head is dropped.
    """
    folder = Path(folder)
    raw: dict[str, np.ndarray] = {}
    if (folder / "model.safetensors").exists():
        from safetensors.numpy import load_file

        raw = load_file(str(folder / "model.safetensors"))
    elif (folder / "model.safetensors.index.json").exists():
        from safetensors.numpy import load_file

        index = json.loads((folder / "model.safetensors.index.json").read_text(encoding="utf-8"))
        for shard in sorted(set(index["weight_map"].values())):
            raw.update(load_file(str(folder / shard)))
    elif (folder / "pytorch_model.bin").exists():
        import torch  # whichever torch this process has (real, or mindnlp's) reads the pickle

        loaded = torch.load(str(folder / "pytorch_model.bin"), map_location="cpu", weights_only=True)
        raw = {k: v.float().numpy() for k, v in loaded.items()}
    else:
        raise FileNotFoundError(f"no model.safetensors or pytorch_model.bin in {folder}")
    state = {}
    for key, value in raw.items():
        name = key.removeprefix("transformer.")
        if name == "lm_head.weight" or name.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # tied output layer; causal-mask buffers of old checkpoints
        state[name] = np.asarray(value, dtype=np.float32)
    return state


class GPT2:
    """The network: weights as MindSpore tensors, forward passes as compiled graphs."""

    def __init__(self, config: GPT2Config, state: dict[str, np.ndarray], dtype: str = "float32") -> None:
        self.config = config
        self.dtype = MS_DTYPES[dtype]
        self.n_parameters = sum(int(v.size) for v in state.values())  # tied output layer not in state

        def t(name: str) -> Tensor:
            return Tensor(np.ascontiguousarray(state[name]), dtype=self.dtype)

        # Fold attention's 1/sqrt(head_dim) into the query projection (exact for GPT-2's
        # head_dim 64: a power of two), saving a pass over the [T, S] scores of every head.
        state = dict(state)
        scale = np.ones(3 * config.n_embd, dtype=np.float32)
        scale[: config.n_embd] = 1.0 / math.sqrt(config.n_embd // config.n_head)
        for i in range(config.n_layer):
            for key in ("attn.c_attn.weight", "attn.c_attn.bias"):
                state[f"h.{i}.{key}"] = state[f"h.{i}.{key}"] * scale

        # Embedding lookups run in numpy (one graph fewer to compile per input shape).
        self.wte = np.ascontiguousarray(state["wte.weight"], dtype=np.float32)
        self.wpe = np.ascontiguousarray(state["wpe.weight"], dtype=np.float32)
        # A ready-transposed output layer: matmul(x, W.T) would copy W on every call.
        self.w_out = Tensor(np.ascontiguousarray(state["wte.weight"].T), dtype=self.dtype)
        # every layer's weights in one flat tuple, `mutable` so that the graph takes them as inputs
        self.weights = mutable(tuple(t(f"h.{i}.{key}") for i in range(config.n_layer) for key in BLOCK_KEYS))
        self._saved: dict[tuple, float] = {}  # per input shape: time a whole-network graph would have saved
        self._scale = (config.n_embd / 768) ** 2  # work per token and layer relative to GPT-2-small
        self.ln_f = (t("ln_f.weight"), t("ln_f.bias"))

    def num_parameters(self) -> int:
        return self.n_parameters

    def forward(self, ids: np.ndarray, pos: np.ndarray, allowed: np.ndarray, mode: int = FRESH,
                cache: tuple | None = None, place: np.ndarray | None = None, who: np.ndarray | None = None,
                whole: bool | None = None):
        """Hidden states before the final layer norm [B,T,D] and the keys and values of every layer
        ((k0, v0, k1, v1, ...), an opaque cache for later calls).

        PLACE mode: row b continues row `who[b]` of `cache`, its tokens written where `place` says.
        An input shape runs on per-layer graphs until a whole-network graph has paid for itself
        (see WHOLE_GRAPH_COMPILE_S; `whole` forces either way); both give bit-identical numbers."""
        c = self.config
        x, mask = self._embed(ids, pos), self._mask(allowed)
        placement = Tensor(np.ascontiguousarray(place[:, None]), self.dtype) if place is not None else None
        rows = Tensor(np.asarray(who, dtype=np.int32)) if who is not None else None
        if whole is None:
            key = (tuple(ids.shape), mode, None if cache is None else cache[0].shape,
                   None if who is None else len(who))
            saved = self._saved.get(key, 0.0)
            whole = saved >= WHOLE_GRAPH_COMPILE_S
            self._saved[key] = saved + self._saving(ids.size)
        if whole:
            return _forward_jit(x, mask, placement, rows, None if cache is None else mutable(cache),
                                self.weights, mode, c.n_head, c.layer_norm_epsilon)
        out: tuple = ()
        n, eps = len(BLOCK_KEYS), c.layer_norm_epsilon
        for i in range(c.n_layer):
            ck, cv = (None, None) if cache is None else cache[2 * i : 2 * i + 2]
            x, keys, values = _block_jit(x, ck, cv, mask, placement, rows, mode, c.n_head, eps,
                                         *self.weights[n * i : n * i + n])
            out += (keys, values)
        return x, out

    def expect(self, shape: tuple[int, int], calls: int) -> None:
        """`calls` plain forward passes of ids of `shape` are coming: when a whole-network graph
        will pay for itself over them, use it from the first call."""
        key = (tuple(shape), FRESH, None, None)
        if calls * self._saving(shape[0] * shape[1]) >= WHOLE_GRAPH_COMPILE_S:
            self._saved[key] = max(self._saved.get(key, 0.0), WHOLE_GRAPH_COMPILE_S)

    def _saving(self, tokens: int) -> float:
        """Estimated seconds a whole-network graph saves on one call of `tokens` token rows."""
        return SAVED_PER_CALL_S + SAVED_PER_TOKEN_S * tokens * self._scale

    def decode(self, ids: np.ndarray, pos: np.ndarray, allowed: np.ndarray, cache: tuple,
               new: tuple) -> tuple[np.ndarray, tuple]:
        """One token per row after the prompt `cache` and the generated tokens `new`: float32
        next-token logits [B, V] and the generated tokens' keys and values, one token longer."""
        c = self.config
        logits, new = _decode_jit(self._embed(ids, pos), self._mask(allowed), mutable(cache), mutable(new),
                                  self.weights, *self.ln_f, self.w_out, c.n_head, c.layer_norm_epsilon)
        return logits.asnumpy(), new

    def _embed(self, ids: np.ndarray, pos: np.ndarray) -> Tensor:
        return Tensor(self.wte[ids] + self.wpe[pos], self.dtype)

    @staticmethod
    def _mask(allowed: np.ndarray) -> Tensor:
        return Tensor(np.ascontiguousarray(allowed[:, None]), ms.bool_)

    def empty_cache(self, batch: int, slots: int) -> tuple:
        c = self.config
        hd = c.n_embd // c.n_head
        k = Tensor(np.zeros((batch, c.n_head, hd, slots), dtype=np.float32), self.dtype)
        v = Tensor(np.zeros((batch, c.n_head, slots, hd), dtype=np.float32), self.dtype)
        return (k, v) * c.n_layer

    # Output layer, at the rows (flat indices into [B*T]) of hidden [B,T,D] that are needed only.
    # The rows are gathered outside the compiled graph, which then depends on their number only:
    # one graph per count, whatever the batch shape. Functional ops, not Tensor methods: mindnlp,
    # when loaded in the same process, replaces MindSpore's Tensor indexing with its own.
    def _rows(self, hidden: Tensor, rows: np.ndarray) -> Tensor:
        flat = ops.reshape(hidden, (-1, hidden.shape[-1]))
        return ops.gather(flat, Tensor(np.asarray(rows, dtype=np.int32)), 0)

    def logits(self, hidden: Tensor, rows: np.ndarray) -> np.ndarray:
        """float32 logits [M,V] at rows (flat indices into [B*T]) of hidden [B,T,D]; M >= 2."""
        eps = self.config.layer_norm_epsilon
        return _logits(self._rows(hidden, rows), *self.ln_f, eps, self.w_out).asnumpy()

    def score(self, hidden: Tensor, rows: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log P(target) and target == argmax at rows (flat indices) of hidden [B,T,D]; M >= 2."""
        picked, greedy = _score(self._rows(hidden, rows), *self.ln_f, self.config.layer_norm_epsilon,
                                self.w_out, Tensor(np.asarray(targets, dtype=np.int32)))
        return picked.asnumpy(), greedy.asnumpy()

"""What every native MindSpore network shares: attention modes, KV caches, graph policy, output layer.

A model file (`native_gpt2`, `native_llama`) writes one transformer block and the final norm as
plain functions of named per-block weight records; `Graphs` compiles them (`mindspore.jit`) into
the layer (one layer or a group of layers), decoding and output-layer graphs, and `Network` runs
those graphs.

Numerics are chosen so that a row's numbers never depend on its neighbours: weight products are
2-D `MatMul`s whose rows do not depend on the call's row count (`row_pieces`: one MatMul where the
CPU gives that already, fixed-size pieces where it does not) and attention uses non-transposed
`BatchMatMul` (in the same pieces where needed), so padding the batch, scoring from a shared KV
cache or applying the output layer to fewer rows changes nothing. Keys are kept transposed,
[B, kv_heads, head_dim, S], for the same reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Tensor, mutable, ops

from harness.models import row_pieces
from harness.models.row_pieces import batch_matmul as _bmm
from harness.models.row_pieces import batched, product, take

# How a block obtains the keys/values it attends to (a compile-time constant): FRESH, this call's own
# tokens; DECODE, one new token after a prompt cache and the generated tokens' window;
# SHARED_CONTEXT, continuation tokens written into a copy of a shared context's cache row.
FRESH, DECODE, SHARED_CONTEXT = 0, 1, 2
# The blocks run as compiled graphs of several consecutive layers ("layer groups", the weights graph
# inputs, so one compiled graph per input shape serves every group), or of one layer each. Measured
# on SmolLM2-135M (30 layers, 8 x 64 tokens, 2 CPU cores, 2026-12-04): one-layer graphs 797 ms per
# forward pass, three-layer groups 553 ms, the whole network as one graph 516 ms but ~9 s to compile
# and ~1.6 GB per shape; GPT-2-small: 536 / 413 / 392 ms. Groups of up to GROUP_LAYERS layers keep
# nearly all of the whole network's speed at a few layers' compile time and memory.
GROUP_LAYERS = 4
# When an input shape moves from one-layer graphs to layer groups: once the time groups would already
# have saved on the calls so far exceeds what compiling them (and their first call) costs. Rent-or-buy:
# never more than twice the better choice in hindsight. Per call and layer, a group saves ~2.5 ms
# plus ~25 us per token row (at GPT-2-small's width; scaled by (d_model/768)^2); ten shapes of 512
# tokens each run once cost 22.1 s in groups of 3 against 14.6 s in one-layer graphs (SmolLM2).
GROUP_COMPILE_S, SAVED_PER_LAYER_CALL_S, SAVED_PER_LAYER_TOKEN_S = 0.75, 2.5e-3, 2.5e-5
# Decoding runs on the whole-network graph (one call a step) where the steps a stream may take save
# more than that graph's extra compile time, else on layer-group graphs (one call per group): on
# SmolLM2 (30 layers, groups of 3, 8 rows, 2026-12-06) the whole graph took 3.9 s to compile against
# 0.7 s, and saved 17 ms a step (121 against 138 ms): short streams and small tail batches skip it.
WHOLE_COMPILE_S_PER_LAYER, SAVED_PER_GROUP_CALL_S = 0.11, 1.9e-3
MS_DTYPES = {"float32": ms.float32, "float16": ms.float16, "bfloat16": ms.bfloat16}
# Graph code calls MindSpore primitives, never the functional wrappers (`ops.softmax`, `mint.where`),
# Tensor methods (`.reshape`) or tensor indexing (`x[:, 1:]`): compiling a graph parses every Python
# function it reaches, and those layers made a SmolLM2 one-layer graph take 0.73 s to compile instead
# of 0.27 s (same kernels, bit-identical numbers; measured 2026-12-04). Model files use them too.
reshape, transpose, _cast = ops.Reshape(), ops.Transpose(), ops.Cast()
select, expand_dims = ops.Select(), ops.ExpandDims()
concat2, concat3 = ops.Concat(2), ops.Concat(3)
_argmax = ops.Argmax(axis=-1, output_type=ms.int32)
_gather, _gather_d = ops.Gather(), ops.GatherD()
_bias_add, _reduce_sum = ops.BiasAdd(), ops.ReduceSum()
_softmax, _log_softmax = ops.Softmax(-1), ops.LogSoftmax(-1)
# masked scores: the most negative float32 (finite, so no NaN rows, and exact zeros after softmax)
_LOW = Tensor(np.finfo(np.float32).min, ms.float32)


def cast(x: Tensor, dtype) -> Tensor:
    """x as `dtype`; x itself when it has that dtype already (a Cast kernel would copy it)."""
    return x if x.dtype == dtype else _cast(x, dtype)


def group_size(n_layer: int) -> int:
    """Layers per group: the largest divisor of n_layer up to GROUP_LAYERS (one graph per shape)."""
    return max(g for g in range(1, min(GROUP_LAYERS, n_layer) + 1) if n_layer % g == 0)


def as_tensor(array: np.ndarray, dtype: str) -> Tensor:
    """A contiguous MindSpore tensor of `dtype` ('float32', 'float16', 'bfloat16')."""
    return Tensor(np.ascontiguousarray(array, dtype=np.float32), dtype=MS_DTYPES[dtype])


def linear(x: Tensor, w: Tensor, b: Tensor, biased: bool = True) -> Tensor:
    """x [M, in] @ w [in, out] + b; `biased` False (a graph constant) skips an all-zero b."""
    return _bias_add(product(x, w), b) if biased else product(x, w)


def flat_rows(x: Tensor) -> Tensor:
    """x [B,T,D] -> [B*T, D]; packed rows [P, D] as they are."""
    return x if len(x.shape) == 2 else reshape(x, (x.shape[0] * x.shape[1], x.shape[2]))


def batch_shape(ctx) -> tuple[int, int]:
    """(B, T) of the padded batch a call attends in: `allowed` is [B,1,T,S]."""
    return ctx[0].shape[0], ctx[0].shape[2]


# Packed calls (`Network.forward(pack=...)`): the weight products run on the P real token rows only;
# attention runs on the padded [B, T] layout, reached by gathering rows (exact copies), so every
# number a real token gets is the same as unpacked (2-D MatMul rows do not depend on their neighbours).
def to_padded(rows: Tensor, ctx) -> Tensor:
    """Packed rows [P, n] -> [B*T, n] (padding positions get a copy of some real row); unpacked as is."""
    return rows if ctx[3] is None else _gather(rows, ctx[3], 0)


def to_packed(rows: Tensor, ctx) -> Tensor:
    """Rows [B*T, n] -> the packed rows [P, n]; unpacked as is."""
    return rows if ctx[4] is None else _gather(rows, ctx[4], 0)


def merge_heads(att: Tensor) -> Tensor:
    """[B, H, T, hd] -> [B*T, H*hd]."""
    B, H, T, hd = att.shape
    return reshape(transpose(att, (0, 2, 1, 3)), (B * T, H * hd))


# ------------------------------------------------------------------------------------ attention
# q [B,H,T,hd] (pre-scaled by 1/sqrt(hd)); k [B,K,hd,T] (transposed) and v [B,K,T,hd], K key/value
# heads (H a multiple of K: query head h reads key/value head h // (H/K), as transformers' repeat_kv).
# `ctx` = (allowed [B,1,T,S], slot_of_token [B,1,T,S] one-hot or None, context_row [B] or None,
#          unpack [B*T] and pack [P] int32 row indices, or None where the call is not packed);
# `kv` = one layer's (cache_k, cache_v, new_k, new_v), entries None where the mode has none.
def attend(q, k, v, mode: int, ctx, kv):
    """Attention output [B,H,T,hd] and the keys/values a later call may continue from."""
    allowed, slot_of_token, context_row = ctx[0], ctx[1], ctx[2]
    cache_k, cache_v, new_k, new_v = kv
    if mode == DECODE:
        return _attend_decode(q, k, v, allowed, cache_k, cache_v, new_k, new_v)
    if mode == SHARED_CONTEXT:
        keys, values = _with_shared_context(k, v, cache_k, cache_v, slot_of_token, context_row)
    else:  # FRESH: keys are this call's own tokens
        keys, values = k, v
    return _softmax_attention(q, keys, values, allowed), keys, values


def _softmax_attention(q, keys, values, allowed):
    B, H, T, hd = q.shape
    groups = H // keys.shape[1]
    probs = _probs(batched(_grouped(q, groups), keys), allowed, groups, q.dtype)
    return _ungrouped(batched(probs, values), groups, T)


def _with_shared_context(k, v, cache_k, cache_v, slot_of_token, context_row):
    """Row b continues cache row context_row[b]; token t goes to slot s where slot_of_token[b,0,t,s] == 1
    (exact: x*1 + 0s). Returns the full keys/values the row attends to."""
    B, K, _, T = k.shape
    S = slot_of_token.shape[3]
    cache_k, cache_v = _gather(cache_k, context_row, 0), _gather(cache_v, context_row, 0)
    written = _reduce_sum(slot_of_token, 2) > 0.5  # [B,1,S]
    keys = select(expand_dims(written, 2), _bmm(k, ops.BroadcastTo((B, K, T, S))(slot_of_token)), cache_k)
    placed = ops.BroadcastTo((B, K, S, T))(transpose(slot_of_token, (0, 1, 3, 2)))
    values = select(expand_dims(written, 3), _bmm(placed, v), cache_v)
    return keys, values


def _attend_decode(q, k, v, allowed, cache_k, cache_v, new_k, new_v):
    """cache: the prompt's keys, never copied; new_k/new_v: the generated tokens, one new token
    entering on the right and the oldest (empty) slot leaving at each step."""
    T = q.shape[2]
    groups = q.shape[1] // k.shape[1]
    slots = new_k.shape[3]
    new_k = concat3((take(new_k, 3, 1, slots), k))
    new_v = concat2((take(new_v, 2, 1, slots), v))
    q = _grouped(q, groups)
    probs = _probs(concat3((_bmm(q, cache_k), _bmm(q, new_k))), allowed, groups, q.dtype)
    width = cache_k.shape[3]
    att = _bmm(take(probs, 3, 0, width), cache_v) + _bmm(take(probs, 3, width, width + slots), new_v)
    return _ungrouped(att, groups, T), new_k, new_v


def _grouped(q, groups: int):
    """[B,H,T,hd] -> [B,K,G*T,hd]: the G query heads that share a key/value head, stacked."""
    if groups == 1:
        return q
    B, H, T, hd = q.shape
    return reshape(q, (B, H // groups, groups * T, hd))


def _ungrouped(att, groups: int, T: int):
    if groups == 1:
        return att
    B, K, _, hd = att.shape
    return reshape(att, (B, K * groups, T, hd))


def _probs(scores, allowed, groups: int, dtype):
    """Softmax (float32) of scores [B,K,G*T,S] where `allowed` [B,1,T,S]; masked terms exact zeros."""
    scores = cast(scores, ms.float32)
    if groups == 1:
        return cast(_softmax(select(allowed, scores, _LOW)), dtype)
    B, K, GT, S = scores.shape
    scores = reshape(scores, (B, K, groups, GT // groups, S))
    probs = cast(_softmax(select(expand_dims(allowed, 2), scores, _LOW)), dtype)
    return reshape(probs, (B, K, GT, S))


# ------------------------------------------------------------------------------------ graphs
class Graphs:
    """The compiled graphs of one model family, built from its block and final norm.

    `block(x, positions, ctx, kv, mode, arch, weights) -> (x, keys, values)` is one transformer
    block; `final_norm(rows, weights, arch)` the norm before the output layer. `arch` is a tuple of
    Python numbers (graph constants); `positions` whatever the family's embedding adds per token
    (None for learned position embeddings, cos/sin tables for rotary ones)."""

    def __init__(self, block: Callable, final_norm: Callable) -> None:
        def layers(x, positions, ctx, cache, new, blocks, mode, arch):
            out = ()
            for i in range(len(blocks)):
                kv = (None if cache is None else cache[2 * i], None if cache is None else cache[2 * i + 1],
                      None if new is None else new[2 * i], None if new is None else new[2 * i + 1])
                x, keys, values = block(x, positions, ctx, kv, mode, arch, blocks[i])
                out = out + (keys, values)
            return x, out

        def head(rows, norm, w_out, arch):
            return cast(product(final_norm(rows, norm, arch), w_out), ms.float32)

        # The blocks run as graphs of one layer or of a group of consecutive layers (bit-identical
        # numbers either way): `blocks` is a tuple of per-block records, its length a graph constant.
        # (Tensors inside a plain tuple argument would be graph constants: `ctx` is built inside.)
        @ms.jit
        def layers_graph(x, positions, allowed, slot_of_token, context_row, unpack, pack, cache, blocks, mode,
                         arch):
            ctx = (allowed, slot_of_token, context_row, unpack, pack)
            return layers(x, positions, ctx, cache, None, blocks, mode, arch)

        @ms.jit
        def decode_graph(x, positions, allowed, cache, new, blocks, norm, w_out, arch):
            """One decoding step for one token per row: next-token logits [B, V] and the new keys/values."""
            x, out = layers(x, positions, (allowed, None, None, None, None), cache, new, blocks, DECODE, arch)
            B, T, D = x.shape
            return head(reshape(x, (B * T, D)), norm, w_out, arch), out

        @ms.jit
        def decode_layers_graph(x, positions, allowed, cache, new, blocks, arch):
            """One decoding step through one layer group: hidden states and the group's new keys/values."""
            return layers(x, positions, (allowed, None, None, None, None), cache, new, blocks, DECODE, arch)

        @ms.jit
        def logits_graph(rows, norm, w_out, arch):
            return head(rows, norm, w_out, arch)

        @ms.jit
        def score_graph(rows, norm, w_out, targets, arch):
            """log P(target) and whether target is the argmax, for hidden rows [M, D]."""
            logits = head(rows, norm, w_out, arch)
            picked = reshape(_gather_d(_log_softmax(logits), 1, expand_dims(targets, 1)), (-1,))
            return picked, _argmax(logits) == targets

        self.layers, self.decode, self.decode_layers = layers_graph, decode_graph, decode_layers_graph
        self.logits, self.score = logits_graph, score_graph


class Network:
    """A decoder-only transformer: weights as MindSpore tensors, forward passes as compiled graphs.

    A model file subclasses it with its `graphs`, `arch` constants and `embed`; everything else (the
    KV cache, the layer-group graph policy, the output layer at chosen rows) lives here."""

    graphs: Graphs

    def __init__(self, blocks: list, final_norm: tuple, w_out: np.ndarray, arch: tuple, *, n_head: int,
                 n_kv_head: int, head_dim: int, d_model: int, n_parameters: int,
                 dtype: str = "float32") -> None:
        self.dtype, self.dtype_name = MS_DTYPES[dtype], dtype
        row_pieces.settle()  # before any graph compiles
        self.blocks = blocks  # one named record of tensors per layer
        self.n_layer, self.n_head, self.n_kv_head = len(blocks), n_head, n_kv_head
        self.head_dim, self.d_model = head_dim, d_model
        self.arch = arch
        self.n_parameters = n_parameters
        # `mutable`, so that the graphs take the weights as inputs (not constants)
        self._blocks = mutable(tuple(blocks))
        self.group = group_size(self.n_layer)
        size = self.group
        self._grouped = [mutable(tuple(blocks[i : i + size])) for i in range(0, self.n_layer, size)]
        self._single = [mutable((b,)) for b in blocks]
        self.final_norm = mutable(tuple(final_norm))
        # A ready-transposed output layer [D, V]: matmul(x, W.T) would copy W on every call.
        self.w_out = as_tensor(w_out, dtype)
        self._whole_decode: set[tuple] = set()  # decoding shapes run on the whole-network graph
        self._saved: dict[tuple, float] = {}  # per input shape: time layer groups would have saved
        self._scale = (d_model / 768) ** 2  # work per token and layer relative to GPT-2-small

    def embed(self, ids: np.ndarray, pos: np.ndarray) -> tuple[Tensor, object]:
        """Token embeddings [B,T,D] and the per-token position input of the blocks (one Tensor or None)."""
        raise NotImplementedError

    def num_parameters(self) -> int:
        return self.n_parameters

    def forward(self, ids: np.ndarray, pos: np.ndarray, allowed: np.ndarray, mode: int = FRESH,
                cache: tuple | None = None, slot_of_token: np.ndarray | None = None,
                context_row: np.ndarray | None = None, grouped: bool | None = None,
                pack: np.ndarray | None = None):
        """Hidden states before the final norm [B,T,D] and the keys and values of every layer
        ((k0, v0, k1, v1, ...), an opaque cache for later calls).

        `pack` (FRESH mode): flat indices into [B*T] of the P >= 2 token positions to run through the
        weight products (every real token; repeats may fill P up). The hidden states are then those
        rows only, [P, D], in `pack`'s order; keys and values keep the padded layout.

        SHARED_CONTEXT mode: row b continues row `context_row[b]` of `cache`, its token t written to the
        slot s where `slot_of_token[b, t, s]` is 1. An input shape runs on one-layer graphs until layer
        groups have paid for themselves (see GROUP_COMPILE_S; `grouped` forces either way); both give
        bit-identical numbers."""
        x, positions = self.embed(ids, pos)
        unpack = packed = None
        if pack is not None:
            inverse = np.zeros(ids.size, dtype=np.int32)
            inverse[pack] = np.arange(len(pack), dtype=np.int32)
            packed, unpack = Tensor(np.asarray(pack, dtype=np.int32)), Tensor(inverse)
            x = ops.gather(ops.reshape(x, (ids.size, x.shape[-1])), packed, 0)
        slots = None if slot_of_token is None else Tensor(np.ascontiguousarray(slot_of_token[:, None]),
                                                          self.dtype)
        rows = None if context_row is None else Tensor(np.asarray(context_row, dtype=np.int32))
        mask = self._mask(allowed)
        if grouped is None:
            key = (tuple(ids.shape), mode, None if cache is None else cache[0].shape,
                   None if context_row is None else len(context_row), None if pack is None else len(pack))
            saved = self._saved.get(key, 0.0)
            grouped = saved >= GROUP_COMPILE_S and self.group > 1
            self._saved[key] = saved + self._saving(ids.size if pack is None else len(pack))
        groups, size = (self._grouped, self.group) if grouped else (self._single, 1)
        out: tuple = ()
        for i, blocks in enumerate(groups):
            layer_cache = None if cache is None else mutable(cache[2 * i * size : 2 * (i + 1) * size])
            x, kv = self.graphs.layers(x, positions, mask, slots, rows, unpack, packed, layer_cache, blocks,
                                       mode, self.arch)
            out += tuple(kv)
        return x, out

    def expect(self, shape: tuple[int, int], calls: int, packed: int | None = None) -> None:
        """`calls` plain forward passes of ids of `shape` (`packed` to that many token rows, or not)
        are coming: when layer groups will pay for themselves over them, use them from the first call."""
        key = (tuple(shape), FRESH, None, None, packed)
        if calls * self._saving(packed or shape[0] * shape[1]) >= GROUP_COMPILE_S:
            self._saved[key] = max(self._saved.get(key, 0.0), GROUP_COMPILE_S)

    def _saving(self, tokens: int) -> float:
        """Estimated seconds layer groups save on one call of `tokens` token rows."""
        return self.n_layer * (SAVED_PER_LAYER_CALL_S + SAVED_PER_LAYER_TOKEN_S * tokens * self._scale)

    def decode(self, ids: np.ndarray, pos: np.ndarray, allowed: np.ndarray, cache: tuple,
               new: tuple, whole: bool = True) -> tuple[np.ndarray, tuple]:
        """One token per row after the prompt `cache` and the generated tokens `new`: float32
        next-token logits [B, V] and the generated tokens' keys and values, one token longer.

        `whole`: one whole-network graph a step, else one graph per layer group (bit-identical
        numbers; see `whole_decode_pays`)."""
        x, positions = self.embed(ids, pos)
        mask = self._mask(allowed)
        if whole or self.group == self.n_layer:
            self._whole_decode.add((tuple(ids.shape), cache[0].shape, new[0].shape))
            logits, new = self.graphs.decode(x, positions, mask, mutable(cache), mutable(new), self._blocks,
                                             self.final_norm, self.w_out, self.arch)
            return logits.asnumpy(), new
        out: tuple = ()
        size = self.group
        for i, blocks in enumerate(self._grouped):
            part = slice(2 * i * size, 2 * (i + 1) * size)
            x, kv = self.graphs.decode_layers(x, positions, mask, mutable(cache[part]), mutable(new[part]),
                                              blocks, self.arch)
            out += tuple(kv)
        B, T, D = x.shape
        rows = ops.reshape(x, (B * T, D))
        return self.graphs.logits(rows, self.final_norm, self.w_out, self.arch).asnumpy(), out

    def whole_decode_pays(self, batch: int, width: int, slots: int, steps: int | None) -> bool:
        """Whether up to `steps` decoding steps of `batch` rows (prompt cache `width`, `slots` generated
        tokens) should run on the whole-network graph: it is compiled already, or the steps would save
        more than it costs to compile (None: unknown, assume many)."""
        key = ((batch, 1), (batch, self.n_kv_head, self.head_dim, width), (batch, self.n_kv_head,
                                                                           self.head_dim, slots))
        if steps is None or key in self._whole_decode:
            return True
        saved = steps * SAVED_PER_GROUP_CALL_S * (self.n_layer // self.group - 1)
        return saved >= WHOLE_COMPILE_S_PER_LAYER * self.n_layer

    @staticmethod
    def _mask(allowed: np.ndarray) -> Tensor:
        return Tensor(np.ascontiguousarray(allowed[:, None]), ms.bool_)

    def empty_cache(self, batch: int, slots: int) -> tuple:
        """Keys [B,K,hd,slots] and values [B,K,slots,hd] of zeros, per layer."""
        k = as_tensor(np.zeros((batch, self.n_kv_head, self.head_dim, slots)), self.dtype_name)
        v = as_tensor(np.zeros((batch, self.n_kv_head, slots, self.head_dim)), self.dtype_name)
        return (k, v) * self.n_layer

    # Output layer, at the rows (flat indices into [B*T]) of hidden [B,T,D] that are needed only.
    # The rows are gathered outside the compiled graph, which then depends on their number only:
    # one graph per count, whatever the batch shape. Functional ops, not Tensor methods: mindnlp,
    # when loaded in the same process, replaces MindSpore's Tensor indexing with its own.
    def _rows(self, hidden: Tensor, rows: np.ndarray) -> Tensor:
        flat = ops.reshape(hidden, (-1, hidden.shape[-1]))
        return ops.gather(flat, Tensor(np.asarray(rows, dtype=np.int32)), 0)

    def logits(self, hidden: Tensor, rows: np.ndarray) -> np.ndarray:
        """float32 logits [M,V] at rows (flat indices into [B*T]) of hidden [B,T,D]; M >= 2."""
        return self.graphs.logits(self._rows(hidden, rows), self.final_norm, self.w_out, self.arch).asnumpy()

    def score(self, hidden: Tensor, rows: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log P(target) and target == argmax at rows (flat indices) of hidden [B,T,D]; M >= 2."""
        picked, greedy = self.graphs.score(self._rows(hidden, rows), self.final_norm, self.w_out,
                                           Tensor(np.asarray(targets, dtype=np.int32)), self.arch)
        return picked.asnumpy(), greedy.asnumpy()


# ------------------------------------------------------------------------------------ checkpoints
def read_config(folder: Path) -> dict:
    return json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))


def read_weights(folder: Path) -> dict[str, np.ndarray]:
    """Every tensor of a Hugging Face folder as float32 numpy arrays, under its checkpoint name.

    Reads model.safetensors (or its sharded index) or pytorch_model.bin."""
    folder = Path(folder)
    if (folder / "model.safetensors").exists():
        raw = read_safetensors(folder / "model.safetensors")
    elif (folder / "model.safetensors.index.json").exists():
        index = json.loads((folder / "model.safetensors.index.json").read_text(encoding="utf-8"))
        raw = {}
        for shard in sorted(set(index["weight_map"].values())):
            raw.update(read_safetensors(folder / shard))
    elif (folder / "pytorch_model.bin").exists():
        import torch  # whichever torch this process has (real, or mindnlp's) reads the pickle

        loaded = torch.load(str(folder / "pytorch_model.bin"), map_location="cpu", weights_only=True)
        raw = {k: v.float().numpy() for k, v in loaded.items()}
    else:
        raise FileNotFoundError(f"no model.safetensors or pytorch_model.bin in {folder}")
    return {key: np.asarray(value, dtype=np.float32) for key, value in raw.items()}


SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64,
                      "I32": np.int32, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """A .safetensors file as numpy arrays; bfloat16 (which numpy lacks) widened exactly to float32.

    The format: an 8-byte little-endian header size, a JSON header (name -> dtype, shape, offsets),
    then the raw little-endian data."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    size = int(np.frombuffer(data[:8].tobytes(), dtype="<u8")[0])
    header = json.loads(data[8 : 8 + size].tobytes())
    body = data[8 + size :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        chunk = body[start:end]
        if info["dtype"] == "BF16":  # the upper half of a float32
            array = (chunk.view("<u2").astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] in SAFETENSORS_DTYPES:
            array = chunk.view(np.dtype(SAFETENSORS_DTYPES[info["dtype"]]).newbyteorder("<"))
        else:
            raise ValueError(f"{path.name}: tensor dtype {info['dtype']} is not supported")
        out[name] = np.array(array.reshape(info["shape"]))
    return out

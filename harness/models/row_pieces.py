"""Weight products whose rows do not depend on how many rows their call has, on every CPU.

The native engine's bit-identity (docs/native-engine.md) needs each output row of a 2-D `MatMul` to
be the same whatever the row count M of its call. On an Intel AVX-512 CPU it is. On an AMD Zen 3
(AVX2, MindSpore 2.7.0, measured 2026-12-07 with `python -m bench.matmul_rows`) it is not: rows come
in 6-row tiles and a 1-3-row remainder uses another kernel, some counts (78, 90, ... at K=576,
N=1536) partition the rows otherwise, and from a few hundred rows on (about 270-490, by weight
shape) every row is blocked otherwise; `BatchMatMul` has the same 6-row tiles. There every product
(and attention's, whose query rows differ between a whole row and a continuation scored from a
shared context) runs as pieces of the sizes in PIECES, the last one padded with zero rows: rows of
12-, 24-, 48-, 96- and 192-row calls all gave the same numbers, on every weight shape of GPT-2,
SmolLM2 and the test models and on attention shapes. Where one call's rows do not depend on M
already (probed once per process), a product is one MatMul, as before.
"""

from __future__ import annotations

import functools
import os

import mindspore as ms
import numpy as np
from mindspore import Tensor, ops

from harness.errors import HarnessError

PIECES = (12, 24, 48, 96, 192)
# The row counts the probe calls, compared with the same rows of a REFERENCE_ROWS-row call.
PROBE_ROWS, REFERENCE_ROWS, PROBE_SHAPES = (2, 3, 8, 13, 40), 64, ((64, 64), (576, 1536))
ENV = "HARNESS_MATMUL_PIECES"  # "auto" (default): probe this CPU; "1": always pieces; "0": never

matmul, batch_matmul = ops.MatMul(), ops.BatchMatMul()
_slice, _reshape, _concat_rows = ops.StridedSlice(), ops.Reshape(), ops.Concat(-2)
# A piece's fixed cost in rows' worth of work, for `plan`: a 12-row call took about as long as an
# 8-row one and 96 rows about twice a 12-row call (K=576, N=1536, 2 cores; measured 2026-12-07).
CALL_ROWS = 12
# Below this many weight elements a product's pieces are one BatchMatMul against the weight
# broadcast to every piece (a copy, cheap at this size, and a graph of a few nodes: compiling a tiny
# model's graphs took 0.79 s this way against 1.33 s as one MatMul per piece, plain MatMul 0.49 s);
# above it one MatMul per piece, as copying large weights costs more than the nodes.
BROADCAST_MAX = 1 << 18
# Callers that choose their row counts (`aligned`) take multiples of this above the largest piece:
# each is an exact sum of pieces, so no piece is padded.
ALIGN_ABOVE = 48
MAX_EXACT_PIECES = 8

# Set by `settle()` before any graph is compiled; graphs read it as a constant.
IN_PIECES = False


@functools.cache
def even_plan(rows: int) -> tuple[int, int]:
    """(pieces, rows per piece): the fewest pieces of one size from PIECES that cover `rows`,
    each as small as that count allows."""
    count = -(-rows // PIECES[-1])
    return count, min(size for size in PIECES if size * count >= rows)


@functools.cache
def split(rows: int) -> tuple[int, int]:
    """(pieces, rows per piece) of equal pieces that cover `rows`: exactly where `rows` is a multiple
    of the smallest piece (the largest piece size that divides it, unless that takes more than
    MAX_EXACT_PIECES pieces, each a copy of the weight), else `even_plan`'s padded cover."""
    count, size = even_plan(rows)
    if count * size == rows or rows % PIECES[0]:
        return count, size
    exact = max(s for s in PIECES if rows % s == 0)
    return (rows // exact, exact) if rows // exact <= MAX_EXACT_PIECES else (count, size)


def aligned(rows: int) -> int:
    """The row count to give a product of `rows` rows so that its pieces need no padding (graphs with
    fewer nodes, which compile faster): `rows` itself where products are not in pieces, else the
    smallest piece size that holds it, or a multiple of ALIGN_ABOVE above the largest piece."""
    if not IN_PIECES:
        return rows
    if rows <= PIECES[-1]:
        return min(size for size in PIECES if size >= rows)
    return -(-rows // ALIGN_ABOVE) * ALIGN_ABOVE


@functools.cache
def plan(rows: int) -> tuple[int, ...]:
    """Piece sizes (from PIECES) that cover `rows` at the least cost: padded rows plus CALL_ROWS
    per piece; only the last piece is padded."""
    best: list[tuple[int, tuple[int, ...]]] = [(0, ())]
    for r in range(1, rows + 1):
        best.append(min((size + CALL_ROWS + best[max(r - size, 0)][0], (size, *best[max(r - size, 0)][1]))
                        for size in PIECES))
    return tuple(sorted(best[rows][1], reverse=True))


def take(x, axis: int, start: int, stop: int):
    """x[start:stop] along `axis` (a StridedSlice; graph code)."""
    shape = x.shape
    n = len(shape)
    begin = (0,) * axis + (start,) + (0,) * (n - axis - 1)
    return _slice(x, begin, shape[:axis] + (stop,) + shape[axis + 1 :], (1,) * n)


def _rows(x, start: int, stop: int):
    """x[..., start:stop, :]."""
    return take(x, len(x.shape) - 2, start, stop)


def _padded(x, rows: int):
    """x [..., M, K] with zero rows appended up to `rows`."""
    n, extra = len(x.shape), rows - x.shape[-2]
    return x if extra == 0 else ops.Pad(((0, 0),) * (n - 2) + ((0, extra), (0, 0)))(x)


def in_pieces(x, w):
    """x [..., M, K] @ w [..., K, N] in row pieces (graph code; M is static): attention's and small
    weights' as one BatchMatMul over `split(M)` pieces, large weights' as one MatMul per piece
    of `plan(M)` (little padding)."""
    rows, lead = x.shape[-2], x.shape[:-2]
    k, n = w.shape[-2], w.shape[-1]
    if lead or k * n <= BROADCAST_MAX:
        count, size = split(rows)
        xp = _padded(x, count * size)
        if count == 1:
            y = (batch_matmul if lead else matmul)(xp, w)
        else:  # the pieces as one more batch dimension, against the weight broadcast to each
            wide = ops.BroadcastTo(w.shape[:-2] + (count, k, n))(ops.ExpandDims()(w, len(lead)))
            y = _reshape(batch_matmul(_reshape(xp, lead + (count, size, k)), wide), lead + (count * size, n))
        return y if count * size == rows else _rows(y, 0, rows)
    sizes = plan(rows)
    if len(sizes) == 1:
        y = matmul(_padded(x, sizes[0]), w)
        return y if sizes[0] == rows else _rows(y, 0, rows)
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    full = tuple(matmul(_rows(x, starts[i], starts[i] + sizes[i]), w) for i in range(len(sizes) - 1))
    last = _rows(x, starts[-1], rows)  # only the last piece is padded: a copy of its rows alone
    tail, kept = matmul(_padded(last, sizes[-1]), w), rows - starts[-1]
    return _concat_rows(full + ((tail if kept == sizes[-1] else _rows(tail, 0, kept)),))


def product(x, w):
    """x [M, K] @ w [K, N], each row's numbers independent of M (graph code)."""
    return in_pieces(x, w) if IN_PIECES else matmul(x, w)


def batched(a, b):
    """BatchMatMul a [..., M, K] @ b [..., K, N], each row's numbers independent of M (graph code)."""
    return in_pieces(a, b) if IN_PIECES else batch_matmul(a, b)


def rows_depend_on_count(shapes=PROBE_SHAPES, counts=PROBE_ROWS) -> bool:
    """Whether a MatMul row on this CPU changes with its call's row count (a few counts and shapes)."""

    @ms.jit
    def one(x, w):
        return matmul(x, w)

    rng = np.random.default_rng(0)
    for k, n in shapes:
        x = rng.standard_normal((REFERENCE_ROWS, k)).astype(np.float32)
        w = Tensor(rng.standard_normal((k, n)).astype(np.float32))
        reference = one(Tensor(x), w).asnumpy()
        for m in counts:
            if not (one(Tensor(x[:m]), w).asnumpy() == reference[:m]).all():
                return True
    return False


@functools.cache
def settle() -> bool:
    """Decide, once per process and before the first graph compiles, whether products run in pieces."""
    global IN_PIECES
    choice = os.environ.get(ENV, "auto")
    if choice not in ("auto", "0", "1"):
        raise HarnessError(f"{ENV}={choice!r} is not one of auto, 0, 1; unset it or pick one of those")
    IN_PIECES = rows_depend_on_count() if choice == "auto" else choice == "1"
    return IN_PIECES

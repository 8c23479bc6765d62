"""Row pieces: weight and attention products whose rows do not depend on the call's row count."""

from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from harness.errors import HarnessError
from harness.models import row_pieces
from harness.models.row_pieces import (
    BROADCAST_MAX,
    MAX_EXACT_PIECES,
    PIECES,
    aligned,
    even_plan,
    in_pieces,
    plan,
    split,
)


@pytest.mark.parametrize("rows", [1, 2, 8, 11, 12, 13, 50, 100, 192, 200, 511, 768, 784])
def test_plan_covers_the_rows_with_pieces_padding_only_the_last(rows):
    sizes = plan(rows)
    assert all(size in PIECES for size in sizes)
    assert sum(sizes[:-1]) < rows <= sum(sizes)  # every piece but the last is full
    assert sum(sizes) - rows < PIECES[-1]


def test_plan_prefers_fewer_calls_when_padding_is_cheap():
    assert plan(192) == (192,) and plan(768) == (192,) * 4
    assert plan(8) == (12,) and plan(100) == (96, 12)


@pytest.mark.parametrize("rows", [1, 8, 13, 100, 192, 193, 400, 1000])
def test_even_plan_uses_the_fewest_pieces_each_as_small_as_that_allows(rows):
    count, size = even_plan(rows)
    assert count == -(-rows // PIECES[-1]) and size in PIECES and size * count >= rows
    assert all(smaller * count < rows for smaller in PIECES if smaller < size)


@pytest.mark.parametrize("rows", [1, 12, 13, 36, 72, 100, 144, 204, 240, 384, 400, 1200])
def test_split_gives_equal_pieces_exactly_where_the_rows_allow(rows):
    count, size = split(rows)
    assert size in PIECES and count * size >= rows
    exact = rows % PIECES[0] == 0 and rows // max(s for s in PIECES if rows % s == 0) <= MAX_EXACT_PIECES
    assert (count * size == rows) == (exact or even_plan(rows)[0] * even_plan(rows)[1] == rows)
    if count * size != rows:
        assert (count, size) == even_plan(rows)


@pytest.mark.parametrize("rows", [1, 8, 13, 100, 192, 193, 500, 1000])
def test_aligned_rows_need_no_padded_piece(rows, monkeypatch):
    monkeypatch.setattr(row_pieces, "IN_PIECES", True)
    got = aligned(rows)
    assert rows <= got < rows + max(PIECES[-1] // 2, row_pieces.ALIGN_ABOVE)
    assert sum(plan(got)) == got  # one MatMul a piece: never padded
    count, size = split(got)  # one BatchMatMul over equal pieces: not padded up to a few hundred rows
    assert count * size == got or got > PIECES[-1] * 2
    monkeypatch.setattr(row_pieces, "IN_PIECES", False)
    assert aligned(rows) == rows


@ms.jit
def _pieces_2d(x, w):
    return in_pieces(x, w)


@ms.jit
def _pieces_4d(a, b):
    return in_pieces(a, b)


@pytest.mark.parametrize("k, n", [(96, 160), (128, BROADCAST_MAX // 64)])  # broadcast; one MatMul a piece
def test_rows_in_pieces_do_not_depend_on_the_row_count_and_are_the_product(k, n):
    """On every CPU (on an AMD Zen 3 one plain MatMul fails this for M = 2, 3, 7, ...)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    reference = _pieces_2d(Tensor(x), Tensor(w)).asnumpy()
    np.testing.assert_allclose(reference, x.astype(np.float64) @ w, rtol=1e-4, atol=1e-4)
    for m in (2, 3, 7, 13, 36, 40, 72, 99, 144, 200, 240, 333, 384):  # 36...: exact pieces
        assert (_pieces_2d(Tensor(x[:m]), Tensor(w)).asnumpy() == reference[:m]).all(), m


def test_batched_rows_in_pieces_do_not_depend_on_the_row_count():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 3, 70, 16)).astype(np.float32)
    b = rng.standard_normal((2, 3, 16, 48)).astype(np.float32)
    reference = _pieces_4d(Tensor(a), Tensor(b)).asnumpy()
    np.testing.assert_allclose(reference, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    for t in (1, 2, 9, 25, 36, 48, 64):
        got = _pieces_4d(Tensor(np.ascontiguousarray(a[:, :, :t])), Tensor(b)).asnumpy()
        assert (got == reference[:, :, :t]).all(), t


def test_a_wrong_setting_names_the_variable_and_its_values(monkeypatch):
    monkeypatch.setenv(row_pieces.ENV, "sometimes")
    with pytest.raises(HarnessError, match="HARNESS_MATMUL_PIECES='sometimes' is not one of auto, 0, 1"):
        row_pieces.settle.__wrapped__()

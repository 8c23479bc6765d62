"""Row pieces: weight and attention products whose rows do not depend on the call's row count."""

from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from harness.errors import HarnessError
from harness.models import row_pieces
from harness.models.row_pieces import BROADCAST_MAX, PIECES, even_plan, in_pieces, plan


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
    for m in (2, 3, 7, 13, 40, 99, 200, 333):
        assert (_pieces_2d(Tensor(x[:m]), Tensor(w)).asnumpy() == reference[:m]).all(), m


def test_batched_rows_in_pieces_do_not_depend_on_the_row_count():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 3, 70, 16)).astype(np.float32)
    b = rng.standard_normal((2, 3, 16, 48)).astype(np.float32)
    reference = _pieces_4d(Tensor(a), Tensor(b)).asnumpy()
    np.testing.assert_allclose(reference, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    for t in (1, 2, 9, 25, 64):
        got = _pieces_4d(Tensor(np.ascontiguousarray(a[:, :, :t])), Tensor(b)).asnumpy()
        assert (got == reference[:, :, :t]).all(), t


def test_a_wrong_setting_names_the_variable_and_its_values(monkeypatch):
    monkeypatch.setenv(row_pieces.ENV, "sometimes")
    with pytest.raises(HarnessError, match="HARNESS_MATMUL_PIECES='sometimes' is not one of auto, 0, 1"):
        row_pieces.settle.__wrapped__()

"""Paired significance tests: is model B better than model A on the same examples?

Both tests are one-sided (H1: B is better), deterministic (seeded), and take the metric's
direction into account. `p` is the probability, under "B is no better", of a difference at
least as large as the one observed.

- `paired_permutation`: for per-example scores. When every difference is -1, 0 or 1 (accuracy)
  the test is exact: swapping the two models' answers on an example flips the sign of its
  difference, so the statistic follows a binomial over the examples where they differ
  (the exact sign test). Otherwise random sign flips are drawn.
- `paired_bootstrap`: resample examples with replacement, recompute both models' scores on the
  same resample (corpus metrics such as BLEU are recomputed from summed sufficient statistics),
  and count resamples whose difference, centred on the resampling mean, reaches the observed
  one (Koehn 2004; Berg-Kirkpatrick et al. 2012).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

SEED = 1234
BOOTSTRAP_RESAMPLES = 1000
PERMUTATION_RESAMPLES = 10_000
ALPHA = 0.05


@dataclass(frozen=True)
class TestResult:
    """The outcome of one paired test of B against A."""

    method: str
    n: int                      # paired examples
    score_a: float
    score_b: float
    p_value: float              # one-sided: B better than A
    higher_is_better: bool = True
    ci: tuple[float, float] | None = None  # 95% bootstrap interval of score_b - score_a

    @property
    def delta(self) -> float:
        return self.score_b - self.score_a

    @property
    def b_better(self) -> bool:
        return self.p_value < ALPHA


def _binomial_upper_tail(m: int, k: int) -> float:
    """P(X >= k) for X ~ Binomial(m, 1/2), exactly."""
    if k <= 0:
        return 1.0
    if k > m:
        return 0.0
    return float(Fraction(sum(math.comb(m, j) for j in range(k, m + 1)), 2**m))


def paired_permutation(a: np.ndarray, b: np.ndarray, higher_is_better: bool = True,
                       resamples: int = PERMUTATION_RESAMPLES, seed: int = SEED) -> TestResult:
    """Paired permutation test on per-example scores (mean metric)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("paired scores must be two equal-length non-empty vectors")
    sign = 1.0 if higher_is_better else -1.0
    d = sign * (b - a)
    observed = float(d.sum())
    nonzero = d[d != 0]
    if np.all(np.isin(nonzero, (-1.0, 1.0))):
        m = len(nonzero)
        # sum of m random signs = 2X - m with X ~ Bin(m, 1/2); p = P(2X - m >= observed)
        k = math.ceil((observed + m) / 2 - 1e-9)
        p = _binomial_upper_tail(m, k)
        method = "paired permutation (exact)"
    else:
        rng = np.random.default_rng(seed)
        hits = 0
        for start in range(0, resamples, 1000):
            count = min(1000, resamples - start)
            signs = rng.choice((-1.0, 1.0), size=(count, len(d)))
            hits += int(np.sum(signs @ d >= observed - 1e-12 * max(1.0, abs(observed))))
        p = (hits + 1) / (resamples + 1)
        method = f"paired permutation ({resamples} sign flips)"
    return TestResult(method, len(a), float(a.mean()), float(b.mean()), min(1.0, p), higher_is_better)


def _bootstrap(n: int, stat_a: Callable[[np.ndarray], float], stat_b: Callable[[np.ndarray], float],
               method: str, higher_is_better: bool, resamples: int, seed: int) -> TestResult:
    """Shared core: `stat_*(idx)` is a model's score on the examples `idx` (with repeats)."""
    if n == 0:
        raise ValueError("paired bootstrap needs at least one example")
    sign = 1.0 if higher_is_better else -1.0
    everything = np.arange(n)
    full_a, full_b = stat_a(everything), stat_b(everything)
    observed = sign * (full_b - full_a)
    rng = np.random.default_rng(seed)
    deltas = np.empty(resamples)
    for r in range(resamples):
        idx = rng.integers(0, n, size=n)
        deltas[r] = stat_b(idx) - stat_a(idx)
    centred = sign * deltas - np.mean(sign * deltas)
    hits = int(np.sum(centred >= observed - 1e-9 * max(1.0, abs(observed))))
    p = (hits + 1) / (resamples + 1)
    ci = (float(np.percentile(deltas, 2.5)), float(np.percentile(deltas, 97.5)))
    return TestResult(f"{method} ({resamples} resamples)", n, full_a, full_b, min(1.0, p),
                      higher_is_better, ci)


def paired_bootstrap(stats_a: np.ndarray, stats_b: np.ndarray, score: Callable[[np.ndarray], float],
                     higher_is_better: bool = True, resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = SEED) -> TestResult:
    """Paired bootstrap; `stats_*` are per-example rows whose column sums `score` turns into
    the metric (sufficient statistics for BLEU/chrF, or the single column of a mean / n)."""
    stats_a = np.asarray(stats_a, dtype=np.float64).reshape(len(stats_a), -1)
    stats_b = np.asarray(stats_b, dtype=np.float64).reshape(len(stats_b), -1)
    if len(stats_a) != len(stats_b):
        raise ValueError("paired statistics must have the same number of examples")
    n = len(stats_a)

    def summed(stats: np.ndarray) -> Callable[[np.ndarray], float]:
        return lambda idx: score(np.bincount(idx, minlength=n).astype(np.float64) @ stats)

    return _bootstrap(n, summed(stats_a), summed(stats_b), "paired bootstrap", higher_is_better,
                      resamples, seed)


def paired_bootstrap_items(items_a: Sequence[Any], items_b: Sequence[Any],
                           aggregate: Callable[[list], float], higher_is_better: bool = True,
                           resamples: int = BOOTSTRAP_RESAMPLES, seed: int = SEED) -> TestResult:
    """Paired bootstrap over a scorer's own per-example items and its `aggregate` (any metric,
    e.g. perplexities), for metrics that are neither sums of statistics nor means."""
    if len(items_a) != len(items_b):
        raise ValueError("paired items must have the same number of examples")

    def on(items: Sequence[Any]) -> Callable[[np.ndarray], float]:
        return lambda idx: aggregate([items[i] for i in idx])

    return _bootstrap(len(items_a), on(items_a), on(items_b), "paired bootstrap", higher_is_better,
                      resamples, seed)

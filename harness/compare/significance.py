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
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

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


def paired_bootstrap(stats_a: np.ndarray, stats_b: np.ndarray, score: Callable[[np.ndarray], float],
                     higher_is_better: bool = True, resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = SEED) -> TestResult:
    """Paired bootstrap; `stats_*` are per-example rows whose column sums `score` turns into
    the metric (sufficient statistics for BLEU/chrF, or the single column of a mean / n)."""
    stats_a = np.asarray(stats_a, dtype=np.float64).reshape(len(stats_a), -1)
    stats_b = np.asarray(stats_b, dtype=np.float64).reshape(len(stats_b), -1)
    if len(stats_a) != len(stats_b) or len(stats_a) == 0:
        raise ValueError("paired statistics must have the same, non-zero number of examples")
    n = len(stats_a)
    sign = 1.0 if higher_is_better else -1.0
    full_a, full_b = score(stats_a.sum(axis=0)), score(stats_b.sum(axis=0))
    observed = sign * (full_b - full_a)
    rng = np.random.default_rng(seed)
    deltas = np.empty(resamples)
    for r in range(resamples):
        weights = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.float64)
        deltas[r] = score(weights @ stats_b) - score(weights @ stats_a)
    centred = sign * deltas - np.mean(sign * deltas)
    hits = int(np.sum(centred >= observed - 1e-9 * max(1.0, abs(observed))))
    p = (hits + 1) / (resamples + 1)
    ci = (float(np.percentile(deltas, 2.5)), float(np.percentile(deltas, 97.5)))
    return TestResult(f"paired bootstrap ({resamples} resamples)", n, full_a, full_b, min(1.0, p),
                      higher_is_better, ci)

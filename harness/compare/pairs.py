"""Adjacent model sizes on the same examples: does the larger model do better?

Per-example values come from the samples logs (`--log-samples`). Corpus metrics (BLEU, chrF)
are recomputed from each example's prediction and references with the task's own scorer; mean
metrics use the logged per-example scores. Either way the numbers must reproduce the score in
the result file, or no test is reported for that metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from harness.compare.runs import RowKey, Runs
from harness.compare.significance import TestResult, paired_bootstrap, paired_permutation
from harness.scorers.base import Outcome, Scorer
from harness.scorers.corpus import BLEU, ChrF, SacrebleuScorer

CORPUS_FALLBACK = {"bleu": BLEU, "chrf": ChrF}


@dataclass(frozen=True)
class PairTest:
    """One adjacent pair (by parameter count) on one row; `test` is None when it cannot run."""

    key: RowKey
    metric: str
    smaller: str
    larger: str
    test: TestResult | None
    note: str = ""


@cache
def _task_scorers(task: str) -> tuple[Scorer, ...]:
    from harness.registry import discover

    found = discover().tasks.get(task)
    return tuple(make() for make in found.scorers) if found else ()


def corpus_scorer(task: str, metric: str, signature: str | None) -> SacrebleuScorer | None:
    """The task's own sacrebleu scorer for `metric` (sacrebleu defaults if the task is gone)."""
    for scorer in _task_scorers(task):
        if scorer.name == metric:
            return scorer if isinstance(scorer, SacrebleuScorer) else None
    if metric in CORPUS_FALLBACK and (signature or "").startswith("nrefs:"):
        return CORPUS_FALLBACK[metric]()
    return None


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def _aligned(a: list[dict], b: list[dict]) -> list[tuple[dict, dict]]:
    """Pairs of samples on the same example: same index, prompt and references."""
    by_index = {s["index"]: s for s in b}
    pairs = []
    for s in a:
        t = by_index.get(s["index"])
        if t is not None and (t.get("prompt"), t.get("references")) == (s.get("prompt"), s.get("references")):
            pairs.append((s, t))
    return pairs


class _Values:
    """Per-example statistics of one metric for one run, checked against the recorded score."""

    def __init__(self, runs: Runs, model: str, key: RowKey, metric: str) -> None:
        entry = runs.result(model, key)["metrics"][metric]
        self.recorded = entry.get("value")
        self.higher_is_better = bool(entry.get("higher_is_better", True))
        self.scorer = corpus_scorer(key.task, metric, entry.get("signature"))
        self.metric = metric

    def stats(self, samples: list[dict]) -> np.ndarray | None:
        if self.scorer is not None:
            items = [self.scorer.item(Outcome(prediction=s.get("prediction"),
                                              references=list(s.get("references") or [])))
                     for s in samples]
            return np.asarray(items, dtype=np.float64)
        values = [s.get("scores", {}).get(self.metric) for s in samples]
        if any(not isinstance(v, (int, float)) for v in values):
            return None
        arr = np.asarray(values, dtype=np.float64)
        return arr if np.all(np.isfinite(arr)) else None

    def aggregate(self, stats: np.ndarray) -> float:
        if self.scorer is not None:
            return self.scorer.aggregate(list(stats))
        return float(stats.mean())

    def reproduces(self, samples: list[dict]) -> bool:
        stats = self.stats(samples)
        return stats is not None and len(stats) > 0 and self.recorded is not None \
            and _close(self.aggregate(stats), float(self.recorded))


def test_pair(runs: Runs, key: RowKey, metric: str, smaller: str, larger: str) -> PairTest:
    """The paired test of `larger` against `smaller` on `key`'s shared examples."""
    def skip(why: str) -> PairTest:
        return PairTest(key, metric, smaller, larger, None, why)

    if any(metric not in runs.result(m, key)["metrics"] for m in (smaller, larger)):
        return skip("metric missing in one run")
    samples = {m: runs.samples(m, key) for m in (smaller, larger)}
    missing = [m for m, s in samples.items() if not s]
    if missing:
        return skip(f"no samples for {', '.join(missing)} (rerun with --log-samples)")
    values = {m: _Values(runs, m, key, metric) for m in (smaller, larger)}
    for m in (smaller, larger):
        if not values[m].reproduces(samples[m]):
            return skip(f"{metric} is not recomputable from {m}'s samples")
    pairs = _aligned(samples[smaller], samples[larger])
    if len(pairs) < 2:
        return skip("fewer than 2 shared examples")
    va, vb = values[smaller], values[larger]
    stats_a = va.stats([p[0] for p in pairs])
    stats_b = vb.stats([p[1] for p in pairs])
    if va.scorer is not None:
        test = paired_bootstrap(stats_a, stats_b, va.scorer._score, va.higher_is_better)
    elif np.all(np.isin(stats_a, (0.0, 1.0))) and np.all(np.isin(stats_b, (0.0, 1.0))):
        test = paired_permutation(stats_a, stats_b, va.higher_is_better)
    else:
        n = len(stats_a)
        test = paired_bootstrap(stats_a, stats_b, lambda s: float(s[0]) / n, va.higher_is_better)
    return PairTest(key, metric, smaller, larger, test)


def adjacent_tests(runs: Runs) -> list[PairTest]:
    """Every adjacent pair of models (by parameter count) on every row and metric."""
    tests = []
    for key in runs.keys():
        models = runs.models_for(key)
        for metric in runs.metrics(key):
            for smaller, larger in zip(models, models[1:], strict=False):
                tests.append(test_pair(runs, key, metric, smaller, larger))
    return tests

"""Adjacent model sizes on the same examples: does the larger model do better?

Per-example data comes from the samples logs (`--log-samples`), in one of three forms:

- corpus metrics (BLEU, chrF): recomputed from each example's prediction and references with the
  task's own sacrebleu scorer, as sufficient statistics;
- mean metrics (accuracy, exact match, F1, ROUGE): the logged per-example scores;
- any other metric (perplexities): the task's scorer applied to the logged outcome (log-likelihood
  and counts), aggregated by the scorer itself.

Whatever the form, it must reproduce the score in the result file, or no test is reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from harness.compare.runs import RowKey, Runs
from harness.compare.significance import (
    TestResult,
    paired_bootstrap,
    paired_bootstrap_items,
    paired_permutation,
)
from harness.scorers.base import Outcome, Scorer
from harness.scorers.corpus import BLEU, ChrF, SacrebleuScorer

CORPUS_FALLBACK = {"bleu": BLEU, "chrf": ChrF}
SAMPLE_KEYS = {"index", "prompt", "prediction", "references", "scores", "logprob", "choice_logprobs"}


@dataclass(frozen=True)
class PairTest:
    """One adjacent pair (by parameter count) on one row; `test` is None when it cannot run."""

    key: RowKey
    metric: str
    smaller: str
    larger: str
    test: TestResult | None
    note: str = ""


@dataclass
class MetricData:
    """One run's per-example data for one metric, and how it aggregates."""

    kind: str                      # "corpus", "mean" or "items"
    by_index: dict[int, Any]       # example index -> statistics row / score / scorer item
    aggregate: Callable[[list], float]
    scorer: Scorer | None = None


@cache
def _task_scorers(task: str) -> tuple[Scorer, ...]:
    from harness.registry import discover

    found = discover().tasks.get(task)
    return tuple(make() for make in found.scorers) if found else ()


def task_scorer(task: str, metric: str) -> Scorer | None:
    return next((s for s in _task_scorers(task) if s.name == metric), None)


def corpus_scorer(task: str, metric: str, signature: str | None) -> SacrebleuScorer | None:
    """The task's own sacrebleu scorer for `metric` (sacrebleu defaults if the task is gone)."""
    scorer = task_scorer(task, metric)
    if scorer is not None:
        return scorer if isinstance(scorer, SacrebleuScorer) else None
    if metric in CORPUS_FALLBACK and (signature or "").startswith("nrefs:"):
        return CORPUS_FALLBACK[metric]()
    return None


def outcome_of(sample: dict) -> Outcome:
    """The scorer's view of one logged example (what the samples log keeps of it)."""
    return Outcome(prediction=sample.get("prediction"), references=list(sample.get("references") or []),
                   logprob=sample.get("logprob"), choice_logprobs=list(sample.get("choice_logprobs") or []),
                   n_tokens=int(sample.get("n_tokens") or 0),
                   extra={k: v for k, v in sample.items() if k not in SAMPLE_KEYS})


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def _mean(values: list) -> float:
    return float(np.mean(values))


def metric_data(task: str, metric: str, entry: dict, samples: list[dict]) -> MetricData | None:
    """The first form of per-example data that reproduces the recorded score (None: none does)."""
    recorded = entry.get("value")
    if recorded is None or not samples:
        return None
    index = [s["index"] for s in samples]
    sacre = corpus_scorer(task, metric, entry.get("signature"))
    if sacre is not None:
        stats = [sacre.item(outcome_of(s)) for s in samples]
        if _close(sacre.aggregate(stats), recorded):
            return MetricData("corpus", dict(zip(index, stats, strict=True)), sacre.aggregate, sacre)
        return None
    scores = [s.get("scores", {}).get(metric) for s in samples]
    numeric = all(isinstance(v, (int, float)) and math.isfinite(v) for v in scores)
    if numeric and _close(_mean(scores), recorded):
        return MetricData("mean", dict(zip(index, map(float, scores), strict=True)), _mean)
    scorer = task_scorer(task, metric)
    if scorer is None:
        return None
    try:
        items = [scorer.item(outcome_of(s)) for s in samples]
        if _close(scorer.aggregate(items), recorded):
            return MetricData("items", dict(zip(index, items, strict=True)), scorer.aggregate, scorer)
    except (TypeError, ValueError, KeyError, ZeroDivisionError):
        return None
    return None


def _aligned(a: list[dict], b: list[dict]) -> list[int]:
    """Indices of the examples both runs saw: same index, prompt and references."""
    by_index = {s["index"]: s for s in b}
    shared = []
    for s in a:
        t = by_index.get(s["index"])
        if t is not None and (t.get("prompt"), t.get("references")) == (s.get("prompt"), s.get("references")):
            shared.append(s["index"])
    return shared


def _run_test(da: MetricData, db: MetricData, shared: list[int], higher_is_better: bool) -> TestResult:
    a = [da.by_index[i] for i in shared]
    b = [db.by_index[i] for i in shared]
    if da.kind == "corpus":
        return paired_bootstrap(np.asarray(a), np.asarray(b), da.scorer._score, higher_is_better)
    if da.kind == "items":
        return paired_bootstrap_items(a, b, da.aggregate, higher_is_better)
    va, vb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if np.all(np.isin(va, (0.0, 1.0))) and np.all(np.isin(vb, (0.0, 1.0))):
        return paired_permutation(va, vb, higher_is_better)
    n = len(va)
    return paired_bootstrap(va, vb, lambda s: float(s[0]) / n, higher_is_better)


def test_pair(runs: Runs, key: RowKey, metric: str, smaller: str, larger: str) -> PairTest:
    """The paired test of `larger` against `smaller` on `key`'s shared examples."""
    def skip(why: str) -> PairTest:
        return PairTest(key, metric, smaller, larger, None, why)

    entries = {m: runs.result(m, key)["metrics"].get(metric) for m in (smaller, larger)}
    if not all(entries.values()):
        return skip("metric missing in one run")
    samples = {m: runs.samples(m, key) for m in (smaller, larger)}
    missing = [m for m, s in samples.items() if not s]
    if missing:
        return skip(f"no samples for {', '.join(missing)} (rerun with --log-samples)")
    data = {m: metric_data(key.task, metric, entries[m], samples[m]) for m in (smaller, larger)}
    for m in (smaller, larger):
        if data[m] is None:
            return skip(f"{metric} is not recomputable from {m}'s samples")
    if data[smaller].kind != data[larger].kind:
        return skip(f"{metric} is recorded differently by the two runs")
    shared = _aligned(samples[smaller], samples[larger])
    if len(shared) < 2:
        return skip("fewer than 2 shared examples")
    higher = bool(entries[larger].get("higher_is_better", True))
    return PairTest(key, metric, smaller, larger, _run_test(data[smaller], data[larger], shared, higher))


def adjacent_tests(runs: Runs) -> list[PairTest]:
    """Every adjacent pair of models (by parameter count) on every row and metric."""
    tests = []
    for key in runs.keys():
        models = runs.models_for(key)
        for metric in runs.metrics(key):
            for smaller, larger in zip(models, models[1:], strict=False):
                tests.append(test_pair(runs, key, metric, smaller, larger))
    return tests

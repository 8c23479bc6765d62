"""Corpus-level translation metrics through sacrebleu, with bootstrap standard errors.

Each example keeps sacrebleu's sufficient statistics, so the corpus score is sacrebleu's own
(`corpus_score` sums the same statistics) and bootstrap resamples cost a sum, not a re-tokenization.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sacrebleu.metrics import BLEU as SacreBLEU
from sacrebleu.metrics import CHRF as SacreCHRF

from harness.scorers.base import BOOTSTRAP_ITERS, BOOTSTRAP_SEED, Outcome, Scorer


class SacrebleuScorer(Scorer):
    """A sacrebleu metric (default settings, as `sacrebleu.corpus_*` and lm-evaluation-harness)."""

    def __init__(self, metric, sentence_metric=None) -> None:
        self.metric = metric
        self.sentence_metric = sentence_metric or metric

    def item(self, outcome: Outcome) -> list[int]:
        refs = [[ref] for ref in outcome.references]
        stats = self.metric._extract_corpus_statistics([str(outcome.prediction)], refs)
        return [float(x) for x in stats[0]]

    def _score(self, summed: np.ndarray) -> float:
        return float(self.metric._compute_score_from_stats(list(summed)).score)

    def aggregate(self, items: Sequence[list[float]]) -> float:
        return self._score(np.asarray(items, dtype=np.float64).sum(axis=0))

    def stderr(self, items: Sequence[list[float]]) -> float | None:
        if len(items) < 2:
            return None
        stats = np.asarray(items, dtype=np.float64)
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        n = len(stats)
        scores = [self._score(stats[rng.integers(0, n, size=n)].sum(axis=0))
                  for _ in range(BOOTSTRAP_ITERS)]
        return float(np.std(scores, ddof=1))

    def example_score(self, item: list[float]) -> float:
        return float(self.sentence_metric._compute_score_from_stats(list(item)).score)

    def signature(self) -> str:
        return str(self.metric.get_signature())


class BLEU(SacrebleuScorer):
    """Corpus BLEU (sacrebleu defaults: 13a tokenization, exp smoothing, 4-grams)."""

    name = "bleu"

    def __init__(self) -> None:
        super().__init__(SacreBLEU(), SacreBLEU(effective_order=True))


class ChrF(SacrebleuScorer):
    """Corpus chrF (sacrebleu defaults: chrF2, character 6-grams, no word n-grams)."""

    name = "chrf"

    def __init__(self) -> None:
        super().__init__(SacreCHRF())

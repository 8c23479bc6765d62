"""ROUGE-1/2/L F-measures through Google's `rouge-score` package (0–100, mean over examples).

`rougeL` is the summary-level LCS (rouge-score's `rougeLsum`, one sentence per line), which is
what ROUGE-1.5.5 reports as R-L for CNN/Daily Mail; Porter stemming is on, as in the usual
CNN/Daily Mail set-up.
"""

from __future__ import annotations

from importlib.metadata import version

from harness.scorers.base import Outcome
from harness.scorers.mean import MeanScorer

_KEYS = {"rouge1": "rouge1", "rouge2": "rouge2", "rougeL": "rougeLsum"}


class Rouge(MeanScorer):
    """One ROUGE F-measure (`kind`: rouge1, rouge2 or rougeL), best over the references."""

    def __init__(self, kind: str) -> None:
        from rouge_score import rouge_scorer

        if kind not in _KEYS:
            raise ValueError(f"unknown ROUGE kind {kind!r}; choose one of {', '.join(_KEYS)}")
        self.name = kind
        self._key = _KEYS[kind]
        self._scorer = rouge_scorer.RougeScorer([self._key], use_stemmer=True)

    def item(self, outcome: Outcome) -> float:
        prediction = str(outcome.prediction)
        return max(100.0 * self._scorer.score(ref, prediction)[self._key].fmeasure
                   for ref in outcome.references)

    def signature(self) -> str:
        return f"rouge-score {version('rouge-score')}|{self._key}|fmeasure|stemmer:yes|x100"


def rouge1() -> Rouge:
    return Rouge("rouge1")


def rouge2() -> Rouge:
    return Rouge("rouge2")


def rougeL() -> Rouge:  # noqa: N802 - the metric's usual name
    return Rouge("rougeL")

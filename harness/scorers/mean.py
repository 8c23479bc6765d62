"""Metrics that are the mean of a per-example 0/1 value."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from harness.scorers.base import Outcome, Scorer, mean_stderr


class MeanScorer(Scorer):
    """Aggregate = mean of per-example values; stderr in closed form."""

    def aggregate(self, items: Sequence[float]) -> float:
        return float(sum(items) / len(items)) if items else float("nan")

    def stderr(self, items: Sequence[float]) -> float | None:
        return mean_stderr(items)


class Accuracy(MeanScorer):
    """1 when the chosen option is the gold one (multiple choice), or when the target is the
    greedy continuation (log-likelihood tasks such as LAMBADA)."""

    name = "acc"

    def item(self, outcome: Outcome) -> float:
        if outcome.gold is not None:
            return float(outcome.prediction == outcome.gold)
        return float(bool(outcome.is_greedy))


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


class ExactMatch(MeanScorer):
    """1 when the prediction equals any reference (after `normalize_answer` if `normalize`)."""

    def __init__(self, normalize: bool = False) -> None:
        self.normalize = normalize
        self.name = "exact_match"

    def item(self, outcome: Outcome) -> float:
        pred = str(outcome.prediction)
        if self.normalize:
            return float(any(normalize_answer(pred) == normalize_answer(r) for r in outcome.references))
        return float(any(pred.strip() == r.strip() for r in outcome.references))

"""Reading-comprehension metrics: SQuAD-normalised exact match and token F1 (CoQA).

Several references: CoQA's official script (and lm-evaluation-harness's `coqa`) average, over
each reference left out in turn, the best score against the others; one reference: the score
against it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from harness.scorers.base import Outcome
from harness.scorers.mean import MeanScorer, normalize_answer


def exact(reference: str, prediction: str) -> float:
    return float(normalize_answer(reference) == normalize_answer(prediction))


def token_f1(reference: str, prediction: str) -> float:
    """SQuAD's F1 over normalised tokens (both empty: 1; one empty: 0)."""
    ref, pred = normalize_answer(reference).split(), normalize_answer(prediction).split()
    if not ref or not pred:
        return float(ref == pred)
    same = sum((Counter(ref) & Counter(pred)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def leave_one_out(metric: Callable[[str, str], float], references: list[str], prediction: str) -> float:
    """CoQA's multi-reference rule (see the module docstring)."""
    if not references:
        raise ValueError("no reference answer")
    if len(references) == 1:
        return metric(references[0], prediction)
    scores = [max(metric(r, prediction) for r in references[:i] + references[i + 1 :])
              for i in range(len(references))]
    return sum(scores) / len(scores)


class CoQAExactMatch(MeanScorer):
    """Exact match after SQuAD normalisation, CoQA's multi-reference rule."""

    name = "exact_match"

    def item(self, outcome: Outcome) -> float:
        return leave_one_out(exact, list(outcome.references), str(outcome.prediction))


class F1(MeanScorer):
    """SQuAD token F1 (0–1), CoQA's multi-reference rule."""

    name = "f1"

    def item(self, outcome: Outcome) -> float:
        return leave_one_out(token_f1, list(outcome.references), str(outcome.prediction))

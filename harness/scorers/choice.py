"""Multiple-choice accuracy normalised by the length of each choice (lm-evaluation-harness's
`acc_norm`)."""

from __future__ import annotations

from harness.scorers.base import Outcome
from harness.scorers.mean import MeanScorer


def argmax_first(values: list[float]) -> int:
    """Index of the largest value; the first one on ties (as `numpy.argmax`)."""
    return max(range(len(values)), key=lambda i: (values[i], -i))


class AccuracyNorm(MeanScorer):
    """1 when the gold choice has the highest log-likelihood per character of the choice.

    lm-evaluation-harness: `pred_norm = argmax(lls / completion_len)` where `completion_len`
    is `len(choice)` in characters, without the space that joins it to the context.
    """

    name = "acc_norm"

    def item(self, outcome: Outcome) -> float:
        per_char = [lp / n for lp, n in zip(outcome.choice_logprobs, outcome.choice_lengths, strict=True)]
        return float(argmax_first(per_char) == outcome.gold)

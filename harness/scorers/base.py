"""The scorer interface and the statistics every scorer shares."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BOOTSTRAP_ITERS = 1000
BOOTSTRAP_SEED = 1234


@dataclass
class Outcome:
    """What the model did on one example, as scorers see it."""

    prediction: Any = None          # generated text, or index of the chosen option
    references: list[str] = field(default_factory=list)
    gold: Any = None                # index of the right option (multiple choice)
    logprob: float | None = None    # log P(target | prompt)
    is_greedy: bool | None = None
    n_tokens: int = 0               # tokens the log-probability covers
    choice_logprobs: list[float] = field(default_factory=list)
    choice_lengths: list[int] = field(default_factory=list)  # characters of each choice
    extra: dict[str, Any] = field(default_factory=dict)


class Scorer(ABC):
    """One metric: a per-example item, its aggregate, and the aggregate's standard error."""

    name: str
    higher_is_better: bool = True

    @abstractmethod
    def item(self, outcome: Outcome) -> Any:
        """What this metric keeps from one example."""

    @abstractmethod
    def aggregate(self, items: Sequence[Any]) -> float:
        """The metric over all examples."""

    def stderr(self, items: Sequence[Any]) -> float | None:
        """Standard error of `aggregate` (bootstrap unless a closed form is known)."""
        return bootstrap_stderr(self.aggregate, items)

    def example_score(self, item: Any) -> float | None:
        """A per-example number for the samples log (None where it means nothing)."""
        return float(item) if isinstance(item, (int, float, bool)) else None

    def signature(self) -> str | None:
        """A string that pins the metric's exact definition (e.g. sacrebleu's signature)."""
        return None


def mean_stderr(values: Sequence[float]) -> float | None:
    """Standard error of the mean with the sample standard deviation (n - 1)."""
    n = len(values)
    if n < 2:
        return None
    arr = np.asarray(values, dtype=np.float64)
    return float(math.sqrt(arr.var(ddof=1) / n))


def bootstrap_stderr(aggregate: Callable[[Sequence[Any]], float], items: Sequence[Any],
                     iters: int = BOOTSTRAP_ITERS, seed: int = BOOTSTRAP_SEED) -> float | None:
    """Standard deviation of `aggregate` over resamples (with replacement) of `items`."""
    if len(items) < 2:
        return None
    rng = np.random.default_rng(seed)
    n = len(items)
    values = [aggregate([items[i] for i in rng.integers(0, n, size=n)]) for _ in range(iters)]
    return float(np.std(values, ddof=1))

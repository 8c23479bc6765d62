"""Perplexities and bits per byte; each metric names its unit.

* `perplexity` (LAMBADA, as lm-evaluation-harness): exp(-mean over examples of the target's
  total log-likelihood), i.e. a per-*example* (per-word for LAMBADA) perplexity.
* `word_perplexity`, `token_perplexity`, `byte_perplexity`: exp(-Σ loglik / Σ units) over the
  corpus, where the units are words of the original (not de-tokenized) text, model tokens, or
  UTF-8 bytes of the original text (lm-evaluation-harness's `weighted_perplexity`).
* `bits_per_byte` / `bits_per_character`: -Σ loglik / Σ units / ln 2.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from harness.scorers.base import Outcome, Scorer

_WHITESPACE = re.compile(r"\s+")


def count_words(text: str) -> int:
    """Words as lm-evaluation-harness counts them: `len(re.split(r"\\s+", text))`."""
    return len(_WHITESPACE.split(text))


def count_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


class Perplexity(Scorer):
    """exp(-mean log-likelihood of each example's target) (lm-evaluation-harness `perplexity`)."""

    name = "perplexity"
    higher_is_better = False

    def item(self, outcome: Outcome) -> float:
        if outcome.logprob is None:
            raise ValueError("perplexity needs a log-likelihood per example")
        return float(outcome.logprob)

    def aggregate(self, items: Sequence[float]) -> float:
        return math.exp(-sum(items) / len(items)) if items else float("nan")

    def example_score(self, item: float) -> float:
        return math.exp(-item)


class _CorpusRate(Scorer):
    """A corpus rate Σ loglik / Σ units, from (loglik, units) pairs."""

    higher_is_better = False
    unit = ""

    def units(self, outcome: Outcome) -> int:
        if self.unit == "tokens":
            return int(outcome.n_tokens)
        if self.unit not in outcome.extra:
            raise ValueError(f"{self.name} needs the example's {self.unit} count")
        return int(outcome.extra[self.unit])

    def item(self, outcome: Outcome) -> tuple[float, int]:
        return float(outcome.logprob), self.units(outcome)

    def rate(self, items: Sequence[tuple[float, int]]) -> float:
        total = sum(n for _, n in items)
        return -sum(lp for lp, _ in items) / total if total else float("nan")

    def example_score(self, item: tuple[float, int]) -> float | None:
        return self.aggregate([item])


class WeightedPerplexity(_CorpusRate):
    """exp(-Σ loglik / Σ units): `unit` is "words", "tokens", "bytes" or "characters"."""

    NAMES = {"words": "word_perplexity", "tokens": "token_perplexity", "bytes": "byte_perplexity",
             "characters": "character_perplexity"}

    def __init__(self, unit: str) -> None:
        if unit not in self.NAMES:
            raise ValueError(f"unknown perplexity unit {unit!r}")
        self.unit = unit
        self.name = self.NAMES[unit]

    def aggregate(self, items: Sequence[tuple[float, int]]) -> float:
        return math.exp(self.rate(items))


class BitsPer(_CorpusRate):
    """-Σ loglik / Σ units / ln 2, per "bytes" (`bits_per_byte`) or "characters"."""

    NAMES = {"bytes": "bits_per_byte", "characters": "bits_per_character"}

    def __init__(self, unit: str = "bytes") -> None:
        if unit not in self.NAMES:
            raise ValueError(f"unknown unit {unit!r}")
        self.unit = unit
        self.name = self.NAMES[unit]

    def aggregate(self, items: Sequence[tuple[float, int]]) -> float:
        return self.rate(items) / math.log(2)


def word_perplexity() -> WeightedPerplexity:
    return WeightedPerplexity("words")


def token_perplexity() -> WeightedPerplexity:
    return WeightedPerplexity("tokens")


def byte_perplexity() -> WeightedPerplexity:
    return WeightedPerplexity("bytes")


def bits_per_byte() -> BitsPer:
    return BitsPer("bytes")


def bits_per_character() -> BitsPer:
    return BitsPer("characters")

"""What a compute backend must provide: token ids in, numbers out. No text, no batching policy."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class Backend(ABC):
    """Runs token ids through one causal language model.

    `score` and `prefill`/`decode` are the only primitives; batching, sorting, stop strings
    and sampling live in `harness.models.lm.LanguageModel`, shared by every backend.
    """

    name: str = "backend"
    max_length: int
    vocab_size: int
    dtype: str = "float32"
    shares_prefixes: bool = False  # True: batch a question's choices together for `score_shared`

    @abstractmethod
    def score(
        self, rows: Sequence[Sequence[int]], n_targets: Sequence[int], width: int
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Feed each `row[:-1]`, right-padded to `width`; return, per row, the log-probabilities
        of its last `n_targets` tokens (float64) and whether each one was the argmax (bool)."""

    def score_shared(
        self, rows: Sequence[Sequence[int]], n_targets: Sequence[int], width: int
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """`score`'s result for rows that share contexts `row[:len(row)-n]` (multiple choice: the
        question); a backend with `shares_prefixes` may run each distinct context once."""
        return self.score(rows, n_targets, width)

    def expect(self, plan: Mapping[tuple[int, int], int]) -> None:  # noqa: B027 - optional hook
        """What comes next: how many forward passes of (rows, width) the coming calls will make
        (multiple choice: rows = distinct contexts). Engines that compile per shape may use it."""

    @abstractmethod
    def prefill(self, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                width: int) -> tuple[Any, np.ndarray]:
        """Run the prompts, left-padded to `width`; return a decoding state and next-token
        logits [B, V]. At most `max_new_tokens` decode steps follow."""

    @abstractmethod
    def decode(self, state: Any, tokens: np.ndarray) -> np.ndarray:
        """Append one token per row to the state; return next-token logits [B, V]."""

    @abstractmethod
    def num_parameters(self) -> int:
        """Number of distinct parameters (tied weights counted once)."""

    def release(self) -> None:  # noqa: B027 - optional hook, nothing to free by default
        """Free the model's memory (called before the next model is loaded)."""

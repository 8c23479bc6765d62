"""What a compute backend must provide: token ids in, numbers out. No text, no batching policy."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class Backend(ABC):
    """Runs token ids through one causal language model.

    `score` and `prefill`/`decode` are the only primitives (`score_shared` and `refill` are
    optional faster ways); batching, sorting, stop strings and sampling live in
    `harness.models.lm.LanguageModel` and `harness.models.generation`, shared by every backend.
    """

    name: str = "backend"
    max_length: int
    vocab_size: int
    dtype: str = "float32"
    shares_prefixes: bool = False  # True: batch a question's choices together for `score_shared`
    refills: bool = False  # True: `refill` restarts finished rows (continuous batching)
    width_step: int = 16  # scoring rows are padded to a multiple of it (`lm.bucket_width`)

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

    def expect(self, plan: Mapping[tuple[int, int, int | None], int]) -> None:  # noqa: B027 - optional hook
        """What comes next: how many forward passes of (rows, width, real tokens or None where not
        known) the coming calls will make (multiple choice: rows = distinct contexts, tokens = theirs).
        Engines that compile per shape may use it."""

    def expect_decoding(self, steps: int) -> None:  # noqa: B027 - optional hook
        """About how many decoding steps (at most) follow the next `prefill`, its refills included.
        Engines that compile per shape may use it."""

    @abstractmethod
    def prefill(self, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                width: int) -> tuple[Any, np.ndarray]:
        """Run the prompts, left-padded to `width`; return a decoding state and next-token
        logits [B, V]. At most `max_new_tokens` decode steps follow."""

    @abstractmethod
    def decode(self, state: Any, tokens: np.ndarray) -> np.ndarray:
        """Append one token per row to the state; return next-token logits [B, V]."""

    def refill(self, state: Any, slots: Sequence[int], prompts: Sequence[Sequence[int]]) -> np.ndarray:
        """Only where `refills`: start new prompts (left-padded to the state's width) in rows
        `slots` of a decoding state, whose previous rows are finished; return their next-token
        logits [len(slots), V]. Each row may then take its own `max_new_tokens` decode steps."""
        raise NotImplementedError(f"backend {self.name} cannot refill decoding rows")

    @abstractmethod
    def num_parameters(self) -> int:
        """Number of distinct parameters (tied weights counted once)."""

    def release(self) -> None:  # noqa: B027 - optional hook, nothing to free by default
        """Free the model's memory (called before the next model is loaded)."""

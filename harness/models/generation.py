"""The decoding loop: a fixed number of slots, each carrying one prompt's generation.

With a backend that can restart a slot (`Backend.refills`: continuous batching), a row that
finishes (a stop string, EOS, its token limit) hands its slot to the next waiting prompt, whose
prompt pass is written into that slot, instead of the whole batch waiting for its longest row.
Otherwise every prompt waiting is started with the batch (static batching). A row's numbers never
depend on its slot, its neighbours or when it started, so both give the same text.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from harness.models.backend import Backend
from harness.requests import GenerationRequest

if TYPE_CHECKING:
    from harness.models.lm import Stats

# Start waiting prompts once this many slots are free (or the last ones, or when no row is left):
# a prompt pass of one row runs as two (the engine's least batch), so pairs waste nothing.
REFILL_AT = 2


@dataclass
class Row:
    """One request in progress in a slot."""

    index: int  # position of the request in the caller's list
    request: GenerationRequest
    rng: np.random.Generator | None
    tokens: list[int] = field(default_factory=list)


@dataclass
class Decoding:
    """What the loop needs from its language model: the backend, text, the end token, counters."""

    backend: Backend
    detokenize: Callable[[Sequence[int]], str]
    eos_token_id: int | None
    stats: Stats

    def run(self, requests: Sequence[GenerationRequest], prompts: Sequence[list[int]], width: int,
            slots: int, finished: Callable[[int, str], None]) -> None:
        """Generate every request (all of one prompt width and token limit) through at most
        `slots` rows; `finished(index, text)` is told each answer as soon as it is done."""
        queue = deque(range(len(requests)))
        limit = max(r.max_new_tokens for r in requests)
        refills = self.backend.refills
        first = [queue.popleft() for _ in range(min(len(queue), slots if refills else len(queue)))]
        self.backend.expect_decoding(-(-len(requests) // len(first)) * limit)
        state, logits = self.backend.prefill([prompts[i] for i in first], limit, width)
        self._count(sum(len(prompts[i]) for i in first))
        rows: list[Row | None] = [self._row(i, requests[i]) for i in first]
        fed = np.zeros(len(rows), dtype=np.int64)  # the token each slot feeds at the next step
        fresh = dict(enumerate(logits))  # slot -> next-token logits not yet picked from
        while True:
            while fresh:
                for slot, row_logits in fresh.items():
                    row = rows[slot]
                    assert row is not None
                    token, text = self._step(row, row_logits)
                    fed[slot] = token
                    if text is not None:
                        finished(row.index, text)
                        rows[slot] = None
                fresh = {}
                free = [s for s, r in enumerate(rows) if r is None]
                live = len(rows) - len(free)
                if queue and free and (len(free) >= min(REFILL_AT, len(queue)) or not live):
                    take = free[: len(queue)]
                    started = [queue.popleft() for _ in take]
                    new_logits = self.backend.refill(state, take, [prompts[i] for i in started])
                    self._count(sum(len(prompts[i]) for i in started))
                    for slot, i, row_logits in zip(take, started, new_logits, strict=True):
                        rows[slot] = self._row(i, requests[i])
                        fresh[slot] = row_logits
            if all(r is None for r in rows):
                return
            logits = self.backend.decode(state, fed)
            self._count(0)
            fresh = {s: logits[s] for s, r in enumerate(rows) if r is not None}

    def _count(self, prompt_tokens: int) -> None:
        self.stats.forward_calls += 1
        self.stats.tokens += prompt_tokens

    def _row(self, index: int, request: GenerationRequest) -> Row:
        return Row(index, request, np.random.default_rng(request.seed) if request.top_k else None)

    def _step(self, row: Row, logits: np.ndarray) -> tuple[int, str | None]:
        """Pick the row's next token; the finished text when this token ends it, else None."""
        request = row.request
        token = pick(logits, request, row.rng)
        if token == self.eos_token_id:
            return token, cut_at_stop(self.detokenize(row.tokens), request.until)
        row.tokens.append(token)
        self.stats.tokens += 1
        text = self.detokenize(row.tokens)
        if len(row.tokens) >= request.max_new_tokens or has_stop(text, request.until):
            return token, cut_at_stop(text, request.until)
        return token, None


def pick(logits: np.ndarray, request: GenerationRequest, rng: np.random.Generator | None) -> int:
    """Greedy argmax, or top-k sampling from the request's own seeded generator."""
    if not request.top_k or rng is None:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / max(request.temperature, 1e-6)
    top = np.argsort(-scaled, kind="stable")[: request.top_k]
    weights = np.exp(scaled[top] - scaled[top].max())
    return int(top[rng.choice(len(top), p=weights / weights.sum())])


def has_stop(text: str, until: Sequence[str]) -> bool:
    return any(stop and stop in text for stop in until)


def cut_at_stop(text: str, until: Sequence[str]) -> str:
    """Cut `text` at the earliest occurrence of any stop string."""
    cut = len(text)
    for stop in until:
        if stop:
            pos = text.find(stop)
            if pos != -1:
                cut = min(cut, pos)
    return text[:cut]

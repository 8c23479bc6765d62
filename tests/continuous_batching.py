"""A check shared by the native engine's tests: continuous batching (a finished row hands its slot
to the next prompt) gives the very texts of static batching and of each prompt alone."""

from __future__ import annotations

from harness.models.lm import LanguageModel
from harness.requests import GenerationRequest

PROMPTS = ["The cat sat on the", "Hello", "A much longer context, with punctuation; and more words",
           "Paris is the capital of", "x", "Il fait beau aujourd'hui.", "1 2 3 4 5 6 7 8 9", "Short",
           "one more prompt", "and the last of them", "Zebra"]
LIMIT = 12


class CountingBackend:
    """The real backend, counting its decoding steps and refills (nothing else changed)."""

    def __init__(self, inner, refills: bool) -> None:
        self.inner, self.refills = inner, refills
        self.decodes = self.refilled = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def decode(self, state, tokens):
        self.decodes += 1
        return self.inner.decode(state, tokens)

    def refill(self, state, slots, prompts):
        self.refilled += len(slots)
        return self.inner.refill(state, slots, prompts)


def varied_requests(lm: LanguageModel, prompts: list[str]) -> list[GenerationRequest]:
    """Seeded samples (random tiny models repeat one token when greedy) whose answers end after
    different numbers of tokens: each stops at a piece of its own unstopped text, found after a
    different token; plus greedy requests that run to the limit."""
    def sample(prompt: str, i: int, until: tuple[str, ...] = ()) -> GenerationRequest:
        return GenerationRequest(prompt, until, max_new_tokens=LIMIT, top_k=20, temperature=1.5, seed=i)

    plain = [sample(p, i) for i, p in enumerate(prompts)]
    free = LanguageModel(lm.name, lm.tokenizer, lm.backend, batch_size=len(plain)).generate(plain)
    requests = []
    for i, (prompt, text) in enumerate(zip(prompts, free, strict=True)):
        stop = first_new_piece(lm, lm.encode(text), (3 * i) % LIMIT)
        requests.append(sample(prompt, i, (stop,) if stop else ()))
    return requests + [GenerationRequest(p, (), max_new_tokens=LIMIT) for p in prompts[:3]]


def first_new_piece(lm: LanguageModel, ids: list[int], start: int) -> str | None:
    """The text of the first token at or after `start` that does not occur earlier in the text (a
    stop string that ends the answer right before that token), or None."""
    text = lm.decode(ids)
    for k in range(start, len(ids)):
        piece = lm.decode(ids[k : k + 1])
        if piece.strip() and "\ufffd" not in piece and text.find(piece) == len(lm.decode(ids[:k])):
            return piece
    return None


def generate(lm: LanguageModel, requests, batch_size: int,
             refills: bool) -> tuple[list[str], CountingBackend]:
    backend = CountingBackend(lm.backend, refills)
    out = LanguageModel(lm.name, lm.tokenizer, backend, batch_size=batch_size).generate(requests)
    return out, backend


def check_continuous_batching(lm: LanguageModel, prompts: list[str] = PROMPTS) -> None:
    """(`prompts`: at least 11, so that 4 slots are refilled several times.)"""
    requests = varied_requests(lm, prompts)
    continuous, fast = generate(lm, requests, 4, refills=True)
    static, slow = generate(lm, requests, 4, refills=False)
    alone = [generate(lm, [r], 1, refills=False)[0][0] for r in requests]
    assert continuous == static == alone
    lengths = [len(text) for text in continuous]
    assert len(set(lengths)) > 4  # the rows really end at different steps
    assert fast.refilled == len(requests) - 4  # every prompt after the first four took a freed slot
    assert fast.decodes < slow.decodes  # and no batch waited for its longest row

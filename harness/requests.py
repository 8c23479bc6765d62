"""The three request types a task can send to a language model."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """log P(continuation | context), and whether the continuation is the greedy one."""

    context: str
    continuation: str


@dataclass(frozen=True)
class RollingRequest:
    """Log-likelihood of a whole text, in windows of the model's context length."""

    text: str


@dataclass(frozen=True)
class GenerationRequest:
    """Generate from `context` until a stop string or `max_new_tokens` tokens.

    `top_k=None` means greedy decoding; otherwise top-k sampling seeded by `seed`.
    """

    context: str
    until: tuple[str, ...] = ()
    max_new_tokens: int = 128
    top_k: int | None = None
    seed: int = 0
    temperature: float = 1.0


@dataclass(frozen=True)
class LoglikelihoodResult:
    logprob: float
    is_greedy: bool
    n_tokens: int = field(default=0)

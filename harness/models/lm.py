"""Text-level requests on top of a token-level `Backend`: the batching policy lives here.

Every backend shares this code, so token boundaries, truncation, ordering, stop strings
and sampling are identical whichever engine computes the numbers.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from harness.errors import HarnessError
from harness.models.backend import Backend
from harness.models.generation import REFILL_AT, Decoding
from harness.requests import GenerationRequest, LoglikelihoodRequest, LoglikelihoodResult
from harness.tokenization import rolling_windows, split_context_continuation, tokenizer_adds_bos, with_bos

if TYPE_CHECKING:
    from harness.models import ModelSpec

T = TypeVar("T")
Progress = Callable[[int], None]
# Passed by the caller (harness.cache.CacheLayer) and called after every computed batch with the
# request kind ("loglikelihood": keys are (context ids, continuation ids) tuples; "generate": keys
# are `GenerationRequest`s) and the answers, so that they can be stored at once. Any new compute
# path must call it.
BatchHook = Callable[[str, list[Any], list[Any]], None]
AUTO_BATCH_START = 64  # --batch-size auto: the first size tried (then halved on out-of-memory)
# Allocation failures as MindSpore, PyTorch (CPU, CUDA) and the OS word them (as harness.cache does).
_OOM = re.compile(r"out of memory|\bOOM\b|memory not enough|not enough memory|failed to allocate|"
                  r"can(not|'t) allocate memory|alloc\w* (device )?memory failed|malloc.*fail", re.IGNORECASE)


@dataclass
class Stats:
    """Counters a run reports in its result file."""

    truncated: int = 0
    tokens: int = 0
    forward_calls: int = 0
    notes: list[str] = field(default_factory=list)


GENERATION_WIDTH_STEP = 64


def bucket_width(length: int, max_width: int, step: int = 16) -> int:
    """The padded width for a sequence of `length` tokens: it depends on nothing else.

    Every row is computed at the width of its own bucket, and a batch holds one bucket, so
    a row's numbers are the same whatever the batch size or its neighbours (float sums over
    a longer padded row differ in the last bits). The few widths also bound recompilation.
    Above 256 tokens the step is 4 times coarser.
    """
    step = step if length <= 256 else 4 * step
    return min(max(step, -(-length // step) * step), max(max_width, length))


def _batches(order: Sequence[int], widths: Sequence[Any],
             size: int | Callable[[], int]) -> Iterable[list[int]]:
    """Consecutive groups of at most `size` items of `order`, never mixing widths (or whatever
    `widths` holds per item).

    `size` may be a callable, read at each new batch (--batch-size auto lowers it on the way)."""
    batch: list[int] = []
    for i in order:
        limit = size() if callable(size) else size
        if batch and (len(batch) >= limit or widths[batch[0]] != widths[i]):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _pass_tokens(rows: Sequence[Sequence[int]], n_targets: Sequence[int], batch: Sequence[int],
                 shared: bool) -> int:
    """The real tokens a scoring pass feeds: each row but its last token, or (`shared`) each distinct
    context once."""
    if shared:
        return sum(len(c) for c in {tuple(rows[i][: len(rows[i]) - n_targets[i]]) for i in batch})
    return sum(len(rows[i]) - 1 for i in batch)


def pair_truncated(n_context: int, n_continuation: int, max_length: int) -> bool:
    """The truncation rule for scoring: a (context, continuation) pair loses the left end of its
    context when it needs more than `max_length` + 1 tokens (the last token predicts nothing)."""
    return n_context + n_continuation > max_length + 1


def prompt_truncated(n_prompt: int, max_new_tokens: int, max_length: int) -> bool:
    """The truncation rule for generation: the prompt loses its left end when it and the tokens to
    generate do not fit in `max_length`."""
    return n_prompt > max_length - max_new_tokens


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an engine's exception means that the batch did not fit in memory."""
    return isinstance(exc, MemoryError) or bool(_OOM.search(str(exc)))


def _available_memory() -> int | None:
    """Bytes of host memory available now (Linux), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _unique(items: Sequence[T]) -> tuple[list[T], list[int]]:
    """Distinct items (first-seen order) and, for each input, the index of its distinct item."""
    index: dict[T, int] = {}
    inverse = [index.setdefault(item, len(index)) for item in items]
    return list(index), inverse


class LanguageModel:
    """A tokenizer plus a backend, answering the three request types in batches."""

    def __init__(self, name: str, tokenizer: Any, backend: Backend, batch_size: int = 8,
                 rolling_context: int = 1, add_bos_token: bool | None = None,
                 spec: ModelSpec | None = None) -> None:
        self.name = name
        self.spec = spec  # where the model came from (None: built in memory)
        self.tokenizer = tokenizer
        self.backend = backend
        # --batch-size auto: start large (out-of-memory halving: harness.cache.CacheLayer).
        self.auto_batch = batch_size == "auto"
        self.batch_size = AUTO_BATCH_START if self.auto_batch else max(1, int(batch_size))
        self.rows_in_flight = 0  # rows of the batch being computed (for the out-of-memory policy)
        # Rows that share an unscored prefix (multiple choice) run it once, if the backend can.
        self.share_prefixes = True
        self.rolling_context = rolling_context
        self.stats = Stats()
        eos = tokenizer.eos_token_id
        bos = getattr(tokenizer, "bos_token_id", None)
        self.eos_token_id: int | None = eos
        self.prefix_token_id: int = bos if bos is not None else (eos if eos is not None else 0)
        # BOS before every context: the tokenizer's own choice unless --(no-)add-bos-token says
        if add_bos_token is None:
            add_bos_token = tokenizer_adds_bos(tokenizer)
        elif add_bos_token and bos is None:
            raise HarnessError(f"--add-bos-token: the tokenizer of '{name}' has no BOS token; "
                               "drop the option or use a tokenizer that defines bos_token")
        self.add_bos_token: bool = add_bos_token
        self.encode_context = (with_bos(self.encode, bos, getattr(tokenizer, "bos_token", None))
                               if add_bos_token else self.encode)

    @property
    def max_length(self) -> int:
        return self.backend.max_length

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, no special tokens added (`encode_context` adds BOS where wanted)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=False)

    # ---------------------------------------------------------------- log-likelihood
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      progress: Progress | None = None) -> list[LoglikelihoodResult]:
        """log P(continuation | context) and greedy-ness for each request."""
        return self.loglikelihood_tokens(self.loglikelihood_pairs(requests), progress)

    def loglikelihood_pairs(self, requests: Sequence[LoglikelihoodRequest]
                            ) -> list[tuple[list[int], list[int]]]:
        """(context ids, continuation ids) of each request, BOS first where `add_bos_token`."""
        return [split_context_continuation(self.encode, r.context, r.continuation, self.prefix_token_id,
                                           self.encode_context) for r in requests]

    def loglikelihood_tokens(self, pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
                             progress: Progress | None = None,
                             on_batch: BatchHook | None = None) -> list[LoglikelihoodResult]:
        """Score (context ids, continuation ids) pairs; identical pairs are computed once
        (`on_batch`: told every computed batch)."""
        keys = [(tuple(c), tuple(t)) for c, t in pairs]
        distinct, inverse = _unique(keys)
        multiplicity = Counter(inverse)
        rows, n_targets = [], []
        for context, continuation in distinct:
            whole = context + continuation
            if pair_truncated(len(context), len(continuation), self.max_length):
                self.stats.truncated += 1
                whole = whole[-(self.max_length + 1) :]
            rows.append(whole)
            n_targets.append(min(len(continuation), len(whole) - 1))
        widths = [bucket_width(len(r) - 1, self.max_length, self.backend.width_step) for r in rows]
        results: list[LoglikelihoodResult | None] = [None] * len(rows)
        self._fit_batch_size(max(widths, default=0))

        def run(batch: list[int], shared: bool) -> None:
            score = self.backend.score_shared if shared else self.backend.score
            scored = score([rows[i] for i in batch], [n_targets[i] for i in batch], widths[batch[0]])
            self.stats.forward_calls += 1
            for i, (logprobs, greedy) in zip(batch, scored, strict=True):
                self.stats.tokens += len(rows[i]) - 1
                results[i] = LoglikelihoodResult(float(logprobs.sum()), bool(greedy.all()),
                                                 int(n_targets[i]))
            if on_batch:
                on_batch("loglikelihood", [distinct[i] for i in batch], [results[i] for i in batch])
            if progress:
                progress(sum(multiplicity[i] for i in batch))

        plan = self._score_batches(rows, n_targets, widths)  # forward passes per (rows, width, tokens)
        self.backend.expect(Counter((n, widths[batch[0]], _pass_tokens(rows, n_targets, batch, shared))
                                    for batch, shared, n in plan))
        for batch, shared, n in self._score_batches(rows, n_targets, widths):
            self.rows_in_flight = n  # out-of-memory is handled by harness.cache.CacheLayer
            run(batch, shared)
        return [results[k] for k in inverse]  # type: ignore[misc]

    def _score_batches(self, rows: Sequence[Sequence[int]], n_targets: Sequence[int],
                       widths: Sequence[int]) -> Iterable[tuple[list[int], bool, int]]:
        """(batch, shared, rows run) triples, widest first: memory problems show at once, padding is
        minimal. A shared batch runs one row per context, a plain one one row per request.

        Rows with the same context `row[:len(row)-n]` and width (the choices of a multiple-choice
        question) go together as `shared` batches of up to `batch_size` contexts when the backend
        can run each context once and score every row from it (`score_shared`)."""
        groups: dict[tuple[int, tuple[int, ...]], list[int]] = {}
        if self.share_prefixes and self.backend.shares_prefixes:
            for i, (row, n) in enumerate(zip(rows, n_targets, strict=True)):
                if n >= 1 and len(row) - n >= 1:
                    groups.setdefault((widths[i], tuple(row[: len(row) - n])), []).append(i)
        shared = {key: g for key, g in groups.items() if len(g) > 1}
        in_shared = {i for g in shared.values() for i in g}
        order = sorted(range(len(rows)), key=lambda i: (-len(rows[i]), rows[i]))
        for width in sorted(set(widths), reverse=True):
            mine = sorted((key for key in shared if key[0] == width), key=lambda k: (-len(k[1]), k[1]))
            for k in range(0, len(mine), self.batch_size):
                keys = mine[k : k + self.batch_size]
                yield [i for key in keys for i in shared[key]], True, len(keys)
            plain = [i for i in order if widths[i] == width and i not in in_shared]
            yield from ((b, False, len(b)) for b in _batches(plain, widths, lambda: self.batch_size))

    def _fit_batch_size(self, width: int) -> None:
        """--batch-size auto: start no larger than half the free memory holds, where the
        backend can estimate its memory per row (`memory_per_row(width)`)."""
        estimate = getattr(self.backend, "memory_per_row", None)
        free = _available_memory()
        if not (self.auto_batch and estimate and free and width):
            return
        fits = max(1, int(free // 2 // max(1, estimate(width))))
        self.batch_size = min(self.batch_size, 1 << (fits.bit_length() - 1))

    def loglikelihood_rolling(self, texts: Sequence[str], progress: Progress | None = None, *,
                              context: int | None = None) -> list[LoglikelihoodResult]:
        """Whole-text log-likelihood over windows of the model's context length; every window
        after the first keeps `context` tokens of left context (None: `self.rolling_context`)."""
        windows, owner = self.rolling_pairs(texts, context)
        scored = self.loglikelihood_tokens(windows)
        if progress:
            progress(len(texts))
        return window_totals(len(texts), owner, scored)

    def rolling_pairs(self, texts: Sequence[str], context: int | None = None
                      ) -> tuple[list[tuple[list[int], list[int]]], list[int]]:
        """Every text's rolling windows as (context ids, continuation ids) pairs, and for each
        window the index of its text (`context`: as in `loglikelihood_rolling`)."""
        context = self.rolling_context if context is None else context
        windows: list[tuple[list[int], list[int]]] = []
        owner: list[int] = []
        for i, text in enumerate(texts):
            for pair in rolling_windows(self.encode_context(text), self.prefix_token_id, self.max_length,
                                        context):
                windows.append(pair)
                owner.append(i)
        return windows, owner

    # ---------------------------------------------------------------- generation
    def generate(self, requests: Sequence[GenerationRequest], progress: Progress | None = None,
                 on_batch: BatchHook | None = None) -> list[str]:
        """Greedy (or seeded top-k) continuations, each cut at its first stop string (`on_batch`:
        told the computed answers, a batch at a time)."""
        distinct, inverse = _unique(list(requests))
        multiplicity = Counter(inverse)
        prompts = [self._generation_prompt(r) for r in distinct]
        # coarse prompt widths: decoding, not the prompt, is most of the work, so fuller batches win;
        # a batch holds one width and one token limit, so a row's numbers depend on nothing else
        widths = [bucket_width(len(p), self.max_length - r.max_new_tokens, GENERATION_WIDTH_STEP)
                  for p, r in zip(prompts, distinct, strict=True)]
        groups = [(w, distinct[i].max_new_tokens) for i, w in enumerate(widths)]
        order = sorted(range(len(distinct)), key=lambda i: (-widths[i], groups[i][1], -len(prompts[i]),
                                                             prompts[i]))
        outputs: list[str] = [""] * len(distinct)
        self._fit_batch_size(max((w + r.max_new_tokens for w, r in zip(widths, distinct, strict=True)),
                                 default=0))
        done: list[int] = []

        def finished(i: int, text: str) -> None:
            outputs[i] = text
            done.append(i)
            if len(done) >= self.batch_size:
                flush()

        def flush() -> None:
            if done and on_batch:
                on_batch("generate", [distinct[i] for i in done], [outputs[i] for i in done])
            if done and progress:
                progress(sum(multiplicity[i] for i in done))
            done.clear()

        decoding = Decoding(self.backend, self.decode, self.eos_token_id, self.stats)
        # continuous batching: one stream per (width, limit) group, `batch_size` slots; else batches
        streams = (_batches(order, groups, lambda: 1 << 62) if self.backend.refills
                   else _batches(order, groups, lambda: self.batch_size))
        self.backend.expect(self._prompt_passes(order, groups, widths))
        for stream in streams:
            self.rows_in_flight = min(len(stream), self.batch_size)
            decoding.run([distinct[i] for i in stream], [prompts[i] for i in stream], widths[stream[0]],
                         self.batch_size, lambda k, text, stream=stream: finished(stream[k], text))
            flush()
        return [outputs[k] for k in inverse]

    def _prompt_passes(self, order: Sequence[int], groups: Sequence[tuple[int, int]],
                       widths: Sequence[int]) -> Counter:
        """The prompt passes generation will make, per (rows, width): with continuous batching one
        full batch per stream, then refills of about REFILL_AT rows as rows finish; else batches."""
        if not self.backend.refills:
            return Counter((len(b), widths[b[0]], None) for b in _batches(order, groups, self.batch_size))
        plan: Counter = Counter()
        for stream in _batches(order, groups, lambda: 1 << 62):
            first = min(len(stream), self.batch_size)
            plan[(first, widths[stream[0]], None)] += 1
            if len(stream) > first:
                plan[(REFILL_AT, widths[stream[0]], None)] += -(-(len(stream) - first) // REFILL_AT)
        return plan

    def _generation_prompt(self, request: GenerationRequest) -> list[int]:
        tokens = self.encode_context(request.context) or [self.prefix_token_id]
        room = self.max_length - request.max_new_tokens
        if room < 1:
            raise ValueError(f"max_new_tokens={request.max_new_tokens} leaves no room for a prompt")
        if prompt_truncated(len(tokens), request.max_new_tokens, self.max_length):  # keep the end
            self.stats.truncated += 1
            tokens = tokens[-room:]
        return tokens


def window_totals(n_texts: int, owner: Sequence[int],
                  scored: Sequence[LoglikelihoodResult]) -> list[LoglikelihoodResult]:
    """Each text's log-likelihood and scored tokens, summed over its windows (`owner`: each
    window's text, as `LanguageModel.rolling_pairs` gives it)."""
    totals = [0.0] * n_texts
    counts = [0] * n_texts
    for i, result in zip(owner, scored, strict=True):
        totals[i] += result.logprob
        counts[i] += result.n_tokens
    return [LoglikelihoodResult(t, False, n) for t, n in zip(totals, counts, strict=True)]

"""Token-boundary rules shared by every backend (they follow lm-evaluation-harness).

* Context and continuation are tokenized *together* and split at the context's token
  count, so a continuation that BPE-merges with the end of the context is scored with the
  tokens the model would really see.
* Trailing whitespace of the context moves to the continuation ("Paris is" + " France"
  rather than "Paris is " + "France"), since GPT-2's BPE attaches spaces to the next word.
* An empty context is replaced by the prefix token (BOS, else EOS).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

Encode = Callable[[str], list[int]]


def move_trailing_space(context: str, continuation: str) -> tuple[str, str]:
    """Move the context's trailing whitespace to the start of the continuation."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


def split_context_continuation(
    encode: Encode, context: str, continuation: str, prefix_token_id: int
) -> tuple[list[int], list[int]]:
    """Token ids of (context, continuation) following the rules in this module's docstring."""
    context, continuation = move_trailing_space(context, continuation)
    if not context:
        return [prefix_token_id], encode(continuation)
    whole = encode(context + continuation)
    n_context = len(encode(context))
    return whole[:n_context], whole[n_context:]


def rolling_windows(
    tokens: Sequence[int], prefix_token_id: int, max_length: int, context_len: int = 1
) -> Iterator[tuple[list[int], list[int]]]:
    """Disjoint (context, targets) windows that together predict every token exactly once.

    Each window is at most `max_length` tokens fed to the model; every window after the
    first keeps at least `context_len` tokens of left context (lm-evaluation-harness's
    `get_rolling_token_windows` + `make_disjoint_window`; context_len=1 gives disjoint
    windows, larger values a sliding window with stride `max_length - context_len + 1`).
    """
    if not 1 <= context_len <= max_length:
        raise ValueError(f"context_len must be in [1, {max_length}], got {context_len}")
    tokens = list(tokens)
    if not tokens:
        return
    pred_len = max_length - context_len + 1
    first = min(max_length, len(tokens))
    yield [prefix_token_id], tokens[:first]
    predicted = first
    while predicted < len(tokens):
        n_pred = min(len(tokens) - predicted, pred_len)
        end = predicted + n_pred
        window = tokens[max(end - max_length - 1, 0) : end - 1]
        targets = tokens[end - n_pred : end]
        yield window[: len(window) - (n_pred - 1)], targets
        predicted += n_pred

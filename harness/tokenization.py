"""Token-boundary rules shared by every backend (they follow lm-evaluation-harness).

* Context and continuation are tokenized *together* and split at the context's token
  count, so a continuation that BPE-merges with the end of the context is scored with the
  tokens the model would really see.
* Trailing whitespace of the context moves to the continuation ("Paris is" + " France"
  rather than "Paris is " + "France"), since GPT-2's BPE attaches spaces to the next word.
* An empty context is replaced by the prefix token (BOS, else EOS), unless the continuation
  already starts with it.
* Where the tokenizer adds BOS (its own `add_bos_token`, or `--add-bos-token`), every context is
  encoded with BOS in front: the context alone and context + continuation alike, so the split is
  unchanged; rolling windows get the BOS-prefixed text as their token list (lm-eval's `tok_encode`),
  so the first window predicts BOS from the prefix token, as lm-eval scores it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

Encode = Callable[[str], list[int]]


def move_trailing_space(context: str, continuation: str) -> tuple[str, str]:
    """Move the context's trailing whitespace to the start of the continuation."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


def tokenizer_adds_bos(tokenizer: Any) -> bool:
    """Whether `tokenizer.encode(text)` (special tokens on, its default) puts BOS in front.

    Measured rather than read from an attribute: `add_bos_token` lives in different places in
    different tokenizer classes (a post-processor template, a slow tokenizer's flag)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    sample = "a b"
    with_special = list(tokenizer.encode(sample, add_special_tokens=True))
    plain = list(tokenizer.encode(sample, add_special_tokens=False))
    return with_special[:1] == [bos] and plain[:1] != [bos]


def with_bos(encode: Encode, bos_token_id: int, bos_text: str | None) -> Encode:
    """`encode` with BOS in front, except for text that starts with BOS already (lm-eval's
    `has_bos_prefix`): the tokenizer then reads it as the special token itself."""

    def encode_with_bos(text: str) -> list[int]:
        if bos_text and text.startswith(bos_text):
            return encode(text)
        return [bos_token_id, *encode(text)]

    return encode_with_bos


def split_context_continuation(
    encode: Encode, context: str, continuation: str, prefix_token_id: int,
    encode_context: Encode | None = None,
) -> tuple[list[int], list[int]]:
    """Token ids of (context, continuation) following the rules in this module's docstring.

    `encode` never adds special tokens; `encode_context` (default: `encode`) is how a non-empty
    context is encoded, BOS included where the model wants one (lm-eval's `_encode_pair`)."""
    encode_context = encode_context or encode
    context, continuation = move_trailing_space(context, continuation)
    if not context:
        tokens = encode(continuation)
        if tokens and tokens[0] == prefix_token_id:  # lm-eval: no second prefix token
            return tokens[:1], tokens[1:]
        return [prefix_token_id], tokens
    whole = encode_context(context + continuation)
    n_context = len(encode_context(context))
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

"""Tokenization properties, for arbitrary text: the context/continuation split and the rolling
windows keep every byte of the text, and every token is predicted once within the context."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.models.tiny import bytes_to_unicode
from harness.tokenization import rolling_windows, split_context_continuation

_BYTE_OF = {ch: b for b, ch in bytes_to_unicode().items()}


def _token_bytes(tokenizer, ids: list[int]) -> bytes:
    """The exact bytes GPT-2's byte-level BPE tokens stand for (special tokens as their text)."""
    special = set(tokenizer.all_special_ids)
    pieces = []
    for token_id, token in zip(ids, tokenizer.convert_ids_to_tokens(ids), strict=True):
        pieces.append(token.encode() if token_id in special else bytes(_BYTE_OF[ch] for ch in token))
    return b"".join(pieces)


@settings(max_examples=300, deadline=None)
@given(context=st.text(max_size=40), continuation=st.text(max_size=20))
def test_context_continuation_split_reassembles_the_text(gpt2_tokenizer, context, continuation):
    def encode(text: str) -> list[int]:
        return gpt2_tokenizer.encode(text, add_special_tokens=False)

    prefix = gpt2_tokenizer.eos_token_id
    ctx, cont = split_context_continuation(encode, context, continuation, prefix)
    whole = (context + continuation).encode("utf-8")
    if context.strip():
        assert _token_bytes(gpt2_tokenizer, ctx + cont) == whole
        assert ctx + cont == encode(context + continuation)  # the tokens the model really sees
        assert len(ctx) == len(encode(context.rstrip()))
    else:  # nothing but (maybe) whitespace before: the prefix token, then the whole text
        assert ctx == [prefix] and _token_bytes(gpt2_tokenizer, cont) == whole


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 200), max_length=st.integers(1, 40), data=st.data())
def test_rolling_windows_predict_every_token_once_within_the_context(n, max_length, data):
    context_len = data.draw(st.integers(1, max_length))
    tokens = list(range(1000, 1000 + n))
    windows = list(rolling_windows(tokens, 7, max_length, context_len))
    assert [t for _, targets in windows for t in targets] == tokens
    for context, targets in windows:
        assert context and len(context) + len(targets) - 1 <= max_length

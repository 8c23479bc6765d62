"""Context/continuation boundaries on the real GPT-2 BPE (lm-evaluation-harness conventions)."""

from __future__ import annotations

import pytest

from harness.tokenization import move_trailing_space, rolling_windows, split_context_continuation

EOT = 50256


@pytest.fixture
def encode(gpt2_tokenizer):
    return lambda text: gpt2_tokenizer.encode(text, add_special_tokens=False)


def test_real_gpt2_vocabulary(encode):
    assert encode("Hello world") == [15496, 995]


def test_leading_space_belongs_to_the_continuation(encode):
    ctx, cont = split_context_continuation(encode, "The capital of France is", " Paris", EOT)
    assert ctx == encode("The capital of France is")
    assert cont == encode(" Paris") and len(cont) == 1


def test_trailing_space_of_context_moves_to_continuation(encode):
    with_space = split_context_continuation(encode, "The capital of France is ", "Paris", EOT)
    without = split_context_continuation(encode, "The capital of France is", " Paris", EOT)
    assert with_space == without
    assert move_trailing_space("a b  ", "c") == ("a b", "  c")


def test_punctuation_continuation(encode):
    ctx, cont = split_context_continuation(encode, "Hello", ", world.", EOT)
    assert ctx == [15496]
    assert cont == encode(", world.")
    assert encode(",")[0] == cont[0]


def test_continuation_that_merges_with_the_context_end(encode):
    # "fo" + "x" tokenizes as " fox" in the whole text; the split keeps the whole-text tokens
    # and gives the context its own token count, so the merged token goes to the context.
    ctx, cont = split_context_continuation(encode, "The quick brown fo", "x jumps", EOT)
    whole = encode("The quick brown fox jumps")
    assert ctx + cont == whole
    assert len(ctx) == len(encode("The quick brown fo"))
    assert encode(" fox")[0] in ctx and cont == encode(" jumps")


def test_empty_context_uses_the_prefix_token(encode):
    assert split_context_continuation(encode, "", "Hello world", EOT) == ([EOT], [15496, 995])


def test_rolling_windows_predict_every_token_once():
    tokens = list(range(100, 111))  # 11 tokens
    windows = list(rolling_windows(tokens, EOT, max_length=4))
    assert windows[0] == ([EOT], [100, 101, 102, 103])
    predicted = [t for _, targets in windows for t in targets]
    assert predicted == tokens
    for context, targets in windows:
        assert len(context) + len(targets) - 1 <= 4  # what the model is fed fits its context
        assert context  # there is always something to condition on


def test_rolling_windows_with_longer_context_overlap():
    tokens = list(range(20))
    windows = list(rolling_windows(tokens, EOT, max_length=8, context_len=4))
    assert [t for _, targets in windows for t in targets] == tokens
    for context, targets in windows[1:]:
        assert len(context) >= 4  # every later window keeps context_len tokens of context
        assert context[-1] == targets[0] - 1  # the context ends right before the targets

"""The tiny GPT-2 on MindSpore: batch-size independence, self-consistency, PyTorch parity."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from harness import models
from harness.requests import GenerationRequest, LoglikelihoodRequest

CONTEXTS = [
    "The cat sat on the", "Hello", "", "A much longer context, with punctuation; and more words here",
    "Paris is the capital of ", "x", "Il fait beau aujourd'hui.", "1 2 3 4 5 6 7 8 9",
    "Short", "Another medium sized context",
]
CONTINUATIONS = [" mat", " world", "Start", " end.", "France", "y", " Oui", " 10", "!", " here"]


def _ll_requests():
    return [LoglikelihoodRequest(c, t) for c, t in zip(CONTEXTS, CONTINUATIONS, strict=True)]


def test_loglikelihood_identical_for_batch_sizes_1_and_8(tiny_lm, monkeypatch):
    """mindnlp's path: bit-identical where this CPU's MatMul rows do not depend on the call's row
    count; where they do (AMD Zen 3, docs/native-engine.md) its products are mindnlp's, not split
    into row pieces as the native engine's are, so the numbers agree to float32 rounding only."""
    from harness.models.row_pieces import rows_depend_on_count

    monkeypatch.setattr(tiny_lm, "batch_size", 1)  # monkeypatch: the session's model is restored
    one = tiny_lm.loglikelihood(_ll_requests())
    monkeypatch.setattr(tiny_lm, "batch_size", 8)
    eight = tiny_lm.loglikelihood(_ll_requests())
    if rows_depend_on_count():
        np.testing.assert_allclose([r.logprob for r in one], [r.logprob for r in eight], rtol=1e-6, atol=1e-5)
    else:
        assert [r.logprob for r in one] == [r.logprob for r in eight]
    assert [r.is_greedy for r in one] == [r.is_greedy for r in eight]
    assert all(r.logprob < 0 for r in one)


def test_greedy_generation_identical_for_batch_sizes_1_and_8(tiny_lm, monkeypatch):
    reqs = [GenerationRequest(c or "Hi", ("\n",), max_new_tokens=6 + i % 3) for i, c in enumerate(CONTEXTS)]
    monkeypatch.setattr(tiny_lm, "batch_size", 1)
    one = tiny_lm.generate(reqs)
    monkeypatch.setattr(tiny_lm, "batch_size", 8)
    eight = tiny_lm.generate(reqs)
    assert one == eight
    assert len(set(one)) > 1 and all(one)  # real, prompt-dependent outputs


def test_greedy_continuation_is_scored_as_greedy(tiny_lm):
    """Generation and scoring agree: what greedy decoding produced has is_greedy=True."""
    context = "The cat sat on the"
    prompt = tiny_lm.encode(context)
    state, logits = tiny_lm.backend.prefill([prompt], 4, 32)
    generated = []
    for _ in range(4):
        token = int(np.argmax(logits[0]))
        generated.append(token)
        logits = tiny_lm.backend.decode(state, np.array([token]))
    result = tiny_lm.loglikelihood_tokens([(prompt, generated)])[0]
    assert result.is_greedy and result.n_tokens == 4
    other = [(generated[0] + 1) % tiny_lm.backend.vocab_size] + generated[1:]
    assert not tiny_lm.loglikelihood_tokens([(prompt, other)])[0].is_greedy


def test_stop_strings_cut_the_output(tiny_lm):
    free = tiny_lm.generate([GenerationRequest("Hello", (), max_new_tokens=8)])[0]
    assert len(free) >= 2
    stop = free[1]
    cut = tiny_lm.generate([GenerationRequest("Hello", (stop,), max_new_tokens=8)])[0]
    assert cut == free[: free.index(stop)]


def test_rolling_loglikelihood_equals_sum_of_token_logprobs(tiny_lm):
    text = "Some text that is long enough to need two windows. " * 12
    tokens = tiny_lm.encode(text)
    assert len(tokens) > tiny_lm.max_length  # forces several windows
    rolling = tiny_lm.loglikelihood_rolling([text])[0]
    assert rolling.n_tokens == len(tokens)
    first = tiny_lm.loglikelihood_tokens([([tiny_lm.prefix_token_id], tokens[:10])])[0]
    assert first.logprob < 0 and rolling.logprob < first.logprob


def test_logits_match_transformers_on_pytorch(tiny_lm, tmp_path):
    folder = tiny_lm.spec.source
    ids = tiny_lm.encode("Parity between MindSpore and PyTorch, checked on real numbers.")
    ours = tiny_lm.backend.logits(ids)
    out = tmp_path / "ref.npy"
    script = Path(__file__).with_name("torch_reference.py")
    subprocess.run([sys.executable, str(script), folder, json.dumps(ids), str(out)], check=True,
                   timeout=300)
    reference = np.load(out)
    assert reference.shape == ours.shape
    assert np.abs(reference - ours).max() < 1e-4
    assert np.abs(reference).max() > 1.0  # a real, non-degenerate comparison


def test_tiny_is_deterministic_and_counts_parameters(tiny_lm):
    again = models.resolve("tiny")
    assert again.source == tiny_lm.spec.source
    n_embd, n_layer, vocab, positions = 64, 2, 257, 512
    per_layer = 12 * n_embd * n_embd + 13 * n_embd
    expected = vocab * n_embd + positions * n_embd + n_layer * per_layer + 2 * n_embd
    assert tiny_lm.backend.num_parameters() == expected


def test_one_token_choices_of_a_question_run_its_context_once(tiny_lm, monkeypatch):
    """Multiple choice on the transformers backends: the same numbers, fewer rows through the model."""
    contexts = ["The cat sat on the", "Paris is the capital of", "1 2 3"]
    choices = ["!", "?", ".", " 10 11 12"]  # three one-token choices (tiny is byte-level), one longer
    requests = [LoglikelihoodRequest(c, t) for c in contexts for t in choices]
    backend = tiny_lm.backend
    real = backend._tensor
    fed_rows: list[int] = []

    def counting(array):
        if array.ndim == 2:  # input ids and attention mask: count the ids only
            fed_rows.append(array.shape[0])
        return real(array)

    monkeypatch.setattr(backend, "_tensor", counting)
    results = {}
    for share, size in ((False, 1), (True, 8)):  # one request per batch: nothing can be shared
        fed_rows.clear()
        monkeypatch.setattr(tiny_lm, "share_prefixes", share)
        monkeypatch.setattr(tiny_lm, "batch_size", size)
        answers = [(r.logprob, r.is_greedy) for r in tiny_lm.loglikelihood(requests)]
        results[share] = (answers, sum(fed_rows) // 2)
    (plain, plain_rows), (shared, shared_rows) = results[False], results[True]
    assert max(abs(a[0] - b[0]) for a, b in zip(plain, shared, strict=True)) < 1e-5
    assert [a[1] for a in plain] == [b[1] for b in shared]
    one_token = sum(len(tiny_lm.encode(t)) == 1 for t in choices)
    assert one_token == 3
    assert plain_rows == len(requests)
    assert shared_rows == len(contexts) * (1 + len(choices) - one_token)

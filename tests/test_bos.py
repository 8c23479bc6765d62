"""BOS before every context, as the tokenizer says (lm-evaluation-harness's HF backend), on a real
tiny Llama whose tokenizer adds BOS; `--no-add-bos-token` gives the numbers without it."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import models
from harness.cache import namespace_for
from harness.errors import HarnessError
from harness.models.lm import LanguageModel
from harness.models.tiny_llama import write_tiny_llama
from harness.requests import GenerationRequest, LoglikelihoodRequest
from harness.tokenization import tokenizer_adds_bos
from tests.conftest import harness_cli

REQUESTS = [LoglikelihoodRequest("The cat sat on the", " mat"),
            LoglikelihoodRequest("the theory of the", " thing"),
            LoglikelihoodRequest("", "the end")]
PASSAGES = ["the cat sat on the mat and then the dog sat on the cat",
            "she went to the shop to buy some bread and the bread was fresh",
            "he opened the door and saw the garden"]


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "tiny-llama")


@pytest.fixture(scope="module")
def llama_lm(llama_folder):
    """The tiny Llama on mindnlp, BOS as its tokenizer says (it adds one)."""
    return models.load(str(llama_folder), backend="mindnlp", batch_size=4)


def _torch_continuation_logprob(folder: Path, context: list[int], continuation: list[int],
                                tmp_path: Path) -> float:
    """Sum of log P(continuation | context) from transformers on real PyTorch (own process)."""
    out = tmp_path / "ref.npy"
    script = Path(__file__).with_name("torch_reference.py")
    ids = context + continuation
    subprocess.run([sys.executable, str(script), str(folder), json.dumps(ids), str(out)], check=True,
                   timeout=300)
    logits = np.load(out).astype(np.float64)
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    n = len(context)
    return float(sum(logp[n - 1 + k, t] for k, t in enumerate(continuation)))


def test_whether_the_tokenizer_adds_bos_is_measured(llama_folder, tiny_lm, tmp_path):
    from transformers import AutoTokenizer

    assert tokenizer_adds_bos(AutoTokenizer.from_pretrained(str(llama_folder))) is True
    assert tokenizer_adds_bos(tiny_lm.tokenizer) is False  # GPT-2's adds none: numbers unchanged
    assert tiny_lm.add_bos_token is False
    plain = write_tiny_llama(tmp_path / "no-bos", add_bos_token=False)
    assert tokenizer_adds_bos(AutoTokenizer.from_pretrained(str(plain))) is False


def test_every_context_starts_with_bos(llama_lm):
    bos = llama_lm.tokenizer.bos_token_id
    assert llama_lm.add_bos_token is True and bos == 256
    pairs = llama_lm.loglikelihood_pairs(REQUESTS)
    for (context, continuation), request in zip(pairs, REQUESTS[:2], strict=False):
        assert context[0] == bos and bos not in context[1:]
        assert context[1:] == llama_lm.encode(request.context)
        whole = llama_lm.encode(request.context + request.continuation)
        assert context[1:] + continuation == whole  # split where the BOS-less text splits
    assert pairs[2] == ([bos], llama_lm.encode("the end"))  # empty context: BOS once, not twice
    already = llama_lm.loglikelihood_pairs([LoglikelihoodRequest("<s>the cat", " sat")])[0][0]
    assert already.count(bos) == 1 and already[0] == bos  # text that starts with BOS keeps one
    prompt = llama_lm._generation_prompt(GenerationRequest("the cat", ("\n",), 4))
    assert prompt == [bos, *llama_lm.encode("the cat")]


def test_rolling_windows_predict_bos_first_as_lm_eval(llama_lm, monkeypatch):
    """lm-eval encodes the whole text with BOS and predicts every token of it from the prefix
    token (= BOS): the first window is ([BOS], [BOS, t1, ...])."""
    seen = []
    real = llama_lm.loglikelihood_tokens
    monkeypatch.setattr(llama_lm, "loglikelihood_tokens", lambda pairs: seen.extend(pairs) or real(pairs))
    text = "the cat sat on the mat. " * 20  # 480 bytes: more than the 256-token window
    [result] = llama_lm.loglikelihood_rolling([text])
    tokens = [256, *llama_lm.encode(text)]
    assert 256 < len(tokens) and seen[0] == ([256], tokens[:256]) and len(seen) == -(-len(tokens) // 256)
    assert [t for _, targets in seen for t in targets] == tokens
    assert result.n_tokens == len(tokens)


def test_loglikelihoods_equal_pytorch_with_and_without_bos(llama_lm, llama_folder, tmp_path):
    no_bos = LanguageModel(llama_lm.name, llama_lm.tokenizer, llama_lm.backend, 4, add_bos_token=False)
    request = REQUESTS[1]
    with_bos_result = llama_lm.loglikelihood([request])[0]
    without_result = no_bos.loglikelihood([request])[0]
    [(context, continuation)] = llama_lm.loglikelihood_pairs([request])
    assert context[0] == 256
    reference_bos = _torch_continuation_logprob(llama_folder, context, continuation, tmp_path)
    reference_plain = _torch_continuation_logprob(llama_folder, context[1:], continuation, tmp_path)
    assert abs(with_bos_result.logprob - reference_bos) < 1e-4
    assert abs(without_result.logprob - reference_plain) < 1e-4
    assert abs(reference_bos - reference_plain) > 1e-2  # BOS really changes the number here


def test_run_records_the_choice_and_torch_backend_agrees(llama_lm, llama_folder, tmp_path):
    """`harness run --backend torch`: BOS by default, `--no-add-bos-token` without; both recorded;
    per-passage log-likelihoods equal this process's mindnlp ones; one cache file serves both."""
    data = tmp_path / "lambada.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in PASSAGES), encoding="utf-8")
    cache = tmp_path / "cache.sqlite"
    no_bos = LanguageModel(llama_lm.name, llama_lm.tokenizer, llama_lm.backend, 4, add_bos_token=False)
    for flag, lm in (([], llama_lm), (["--no-add-bos-token"], no_bos)):
        out = tmp_path / f"out{len(flag)}"
        proc = harness_cli("run", "--task", "lambada", "--model", str(llama_folder), "--backend", "torch",
                           "--data-files", str(data), "--log-samples", "--no-progress",
                           "--cache-file", str(cache), "--output-dir", str(out), *flag)
        assert proc.returncode == 0, proc.stderr
        [result_file] = (out / "tiny-llama" / "lambada").glob("*.json")
        record = json.loads(result_file.read_text())
        assert record["model"]["add_bos_token"] is (not flag)
        samples_file = result_file.with_suffix(".samples.jsonl")
        samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
        last_words = [t.rpartition(" ") for t in PASSAGES]  # lambada: " " + last word after the rest
        expected = lm.loglikelihood([LoglikelihoodRequest(c, " " + w) for c, _, w in last_words])
        got = [s["logprob"] for s in samples]
        assert np.allclose(got, [r.logprob for r in expected], atol=1e-4), (got, expected)


def test_cache_namespace_holds_the_bos_choice(tiny_lm):
    with_bos = LanguageModel("tiny", tiny_lm.tokenizer, tiny_lm.backend, 8, add_bos_token=True,
                             spec=tiny_lm.spec)
    plain_ns, plain_description = namespace_for(tiny_lm, "cpu")
    bos_ns, bos_description = namespace_for(with_bos, "cpu")
    assert plain_ns != bos_ns and bos_description["add_bos_token"] is True
    assert "add_bos_token" not in plain_description  # caches written before this option stay valid
    assert with_bos.loglikelihood_pairs([LoglikelihoodRequest("Hi", " there")])[0][0][0] == 256


def test_add_bos_token_without_a_bos_token_is_one_clear_error(tiny_lm):
    tokenizer = copy.deepcopy(tiny_lm.tokenizer)
    tokenizer.bos_token = None
    with pytest.raises(HarnessError, match="no BOS token"):
        LanguageModel("tiny", tokenizer, tiny_lm.backend, 8, add_bos_token=True)


def test_native_engine_adds_bos_through_the_same_layer(tiny_lm):
    """The native engine (GPT-2 only) with --add-bos-token: BOS-prefixed contexts, numbers equal to
    mindnlp's on the same BOS-prefixed input, and different from the default (no BOS) ones."""
    native = models.load("tiny", backend="native", batch_size=4, add_bos_token=True)
    mindnlp_bos = LanguageModel("tiny", tiny_lm.tokenizer, tiny_lm.backend, 4, add_bos_token=True)
    requests = [LoglikelihoodRequest("The cat sat on the", " mat"), LoglikelihoodRequest("Paris is", " big")]
    assert all(c[0] == 256 for c, _ in native.loglikelihood_pairs(requests))
    ours = [r.logprob for r in native.loglikelihood(requests)]
    assert np.allclose(ours, [r.logprob for r in mindnlp_bos.loglikelihood(requests)], atol=1e-4)
    assert not np.allclose(ours, [r.logprob for r in tiny_lm.loglikelihood(requests)], atol=1e-3)

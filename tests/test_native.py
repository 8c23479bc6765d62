"""The native MindSpore GPT-2 engine: PyTorch parity, agreement with the mindnlp path, and
numbers that do not depend on batching, shared-prefix reuse or the reduced output layer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import models
from harness.cache import CacheLayer
from harness.errors import HarnessError
from harness.models.lm import LanguageModel
from harness.models.native_gpt2 import SHARED_CONTEXT
from harness.requests import GenerationRequest, LoglikelihoodRequest

PROMPTS = ["The cat sat on the", "Hello", "A much longer context, with punctuation; and more words here",
           "Paris is the capital of", "x", "Il fait beau aujourd'hui.", "1 2 3 4 5 6 7 8 9", "Short"]


@pytest.fixture(scope="module")
def native_lm(tiny_lm):
    """`tiny` on the native engine; mindnlp (tiny_lm) is loaded first, as one process needs."""
    return models.load("tiny", backend="native", batch_size=8)


def _questions() -> list[LoglikelihoodRequest]:
    """Multiple-choice-like requests: several continuations per context, plus loose ones."""
    choices = [" mat", " dog and a cat", "!", " 10 11"]
    contexts = ["The cat sat on the", "Hello", "x", "Short"]
    requests = [LoglikelihoodRequest(c, t) for c in contexts for t in choices]
    return requests + [LoglikelihoodRequest("", "Start"), LoglikelihoodRequest("Lonely context", " here")]


def test_logits_match_transformers_on_pytorch(native_lm, tmp_path):
    ids = native_lm.encode("Parity between MindSpore and PyTorch, checked on real numbers.")
    ours = native_lm.backend.logits(ids)
    out = tmp_path / "ref.npy"
    script = Path(__file__).with_name("torch_reference.py")
    subprocess.run([sys.executable, str(script), native_lm.spec.source, json.dumps(ids), str(out)],
                   check=True, timeout=300)
    reference = np.load(out)
    assert reference.shape == ours.shape == (len(ids), native_lm.backend.vocab_size)
    assert np.abs(reference - ours).max() < 1e-4
    assert np.abs(reference).max() > 1.0  # a real, non-degenerate comparison


def test_gelu_new_is_float32_accurate():
    """GPT-2's gelu_new within a few float32 ulps of float64 (MindSpore's CPU Tanh is off by 1e-4)."""
    import math

    import mindspore as ms

    from harness.models.native_gpt2 import as_tensor, gelu_new

    @ms.jit
    def graph(x):  # noqa: ANN001, ANN202 - as the engine runs it: inside a compiled graph
        return gelu_new(x)

    x = np.linspace(-10, 10, 20001, dtype=np.float32)
    wide = x.astype(np.float64)
    reference = 0.5 * wide * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (wide + 0.044715 * wide**3)))
    error = np.abs(graph(as_tensor(x, "float32")).asnumpy() - reference)
    assert error.max() < 2e-6 * np.maximum(np.abs(reference), 1.0).max()
    assert np.abs(reference).max() > 9.0


def test_greedy_generations_identical_to_mindnlp_and_across_batch_sizes(native_lm, tiny_lm, monkeypatch):
    reqs = [GenerationRequest(p, ("\n",), max_new_tokens=5 + i % 4) for i, p in enumerate(PROMPTS)]
    monkeypatch.setattr(tiny_lm, "batch_size", 8)  # monkeypatch: the session's models are restored
    reference = tiny_lm.generate(reqs)
    outputs = {}
    for size in (1, 8):
        monkeypatch.setattr(native_lm, "batch_size", size)
        outputs[size] = native_lm.generate(reqs)
    assert outputs[1] == outputs[8] == reference
    assert len(set(reference)) > 1 and all(reference)


def test_decode_steps_match_mindnlp(native_lm, tiny_lm):
    """Prefill + static-cache decode give the same next-token logits as the mindnlp path."""
    prompts = [native_lm.encode(p) for p in PROMPTS[:3]]
    forced = [[5, 70, 101], [33, 33, 9], [120, 4, 250]]  # the same tokens fed to both engines
    steps = []
    for backend in (native_lm.backend, tiny_lm.backend):
        state, logits = backend.prefill(prompts, 4, 64)
        seen = [logits]
        for t in range(3):
            seen.append(backend.decode(state, np.array([f[t] for f in forced])))
        steps.append(np.stack(seen))
    assert steps[0].shape == steps[1].shape == (4, 3, native_lm.backend.vocab_size)
    assert np.abs(steps[0] - steps[1]).max() < 1e-4


def _loglikelihoods(lm: LanguageModel, requests, batch_size: int, share: bool, reduced: bool):
    saved = lm.batch_size, lm.share_prefixes, lm.backend.reduced_head
    lm.batch_size, lm.share_prefixes, lm.backend.reduced_head = batch_size, share, reduced
    try:
        return [(r.logprob, r.is_greedy, r.n_tokens) for r in lm.loglikelihood(requests)]
    finally:  # the session's model leaves as it came (batch size included)
        lm.batch_size, lm.share_prefixes, lm.backend.reduced_head = saved


def test_loglikelihoods_bit_identical_with_and_without_shared_prefix_and_reduced_head(native_lm, monkeypatch):
    requests = _questions()
    shared_rows = []
    real = native_lm.backend.score_shared

    def counting(rows, n_targets, width):
        shared_rows.extend(rows)
        return real(rows, n_targets, width)

    monkeypatch.setattr(native_lm.backend, "score_shared", counting)
    results = {(b, s, r): _loglikelihoods(native_lm, requests, b, s, r)
               for b in (1, 8) for s in (True, False) for r in (True, False)}
    baseline = results[(8, False, False)]  # plain: every position through the output layer
    for key, got in results.items():
        assert got == baseline, key  # exact float equality, not a tolerance
    assert len(shared_rows) >= 4 * 10  # the shared-prefix path really ran (in all 4 settings)
    assert all(lp < 0 for lp, _, _ in baseline) and len({lp for lp, _, _ in baseline}) > 15


def test_loglikelihoods_agree_with_mindnlp(native_lm, tiny_lm, monkeypatch):
    requests = _questions()
    monkeypatch.setattr(tiny_lm, "batch_size", 8)
    monkeypatch.setattr(native_lm, "batch_size", 8)
    ours = native_lm.loglikelihood(requests)
    theirs = tiny_lm.loglikelihood(requests)
    assert max(abs(a.logprob - b.logprob) for a, b in zip(ours, theirs, strict=True)) < 1e-4
    assert [a.is_greedy for a in ours] == [b.is_greedy for b in theirs]


def test_layer_group_graphs_and_one_layer_graphs_give_identical_numbers(native_lm):
    """A shape moves to layer-group graphs once it has recurred enough; nothing may change."""
    model = native_lm.backend.model
    rng = np.random.default_rng(0)
    width = 32
    ids = rng.integers(0, native_lm.backend.vocab_size, (4, width))
    pos = np.broadcast_to(np.arange(width), (4, width))
    causal = np.broadcast_to(np.tril(np.ones((width, width), dtype=bool)), (4, width, width))
    hidden = {}
    assert model.group > 1  # else both ways run the same graphs
    for grouped in (False, True):
        h, cache = model.forward(ids, pos, causal, grouped=grouped)
        steps = 4  # then SHARED_CONTEXT: 2 rows continue rows 3 and 1 of that cache, at 10.. and 20..
        at = np.stack([10 + np.arange(steps), 20 + np.arange(steps)])  # [2, steps]
        place = np.zeros((2, steps, width), dtype=np.float32)
        for r in range(2):
            place[r, np.arange(steps), at[r]] = 1.0
        allowed = np.arange(width)[None, None, :] <= at[:, :, None]
        g, _ = model.forward(ids[:2, :steps], at, allowed, SHARED_CONTEXT, cache, place, np.array([3, 1]),
                             grouped=grouped)
        hidden[grouped] = (h.asnumpy(), g.asnumpy())
    assert np.array_equal(hidden[False][0], hidden[True][0])
    assert np.array_equal(hidden[False][1], hidden[True][1])
    assert np.abs(hidden[True][1]).max() > 0.1


def test_batch_padding_rows_do_not_change_a_row(native_lm):
    backend = native_lm.backend
    rows = [native_lm.encode(p + " and so on")[-30:] for p in PROMPTS[:5]]
    n = [3] * 5
    together = backend.score(rows, n, 32)  # 5 rows, padded to 8
    for i, row in enumerate(rows):  # 1 row, padded to 2
        alone = backend.score([row], [3], 32)[0]
        assert np.array_equal(alone[0], together[i][0]) and np.array_equal(alone[1], together[i][1])


def test_batch_size_auto_backs_off_on_out_of_memory(native_lm, monkeypatch):
    requests = _questions()
    expected = _loglikelihoods(native_lm, requests, 8, True, True)
    auto = LanguageModel("tiny", native_lm.tokenizer, native_lm.backend, batch_size="auto")
    assert auto.auto_batch and auto.batch_size > 8
    real_score, real_shared = native_lm.backend.score, native_lm.backend.score_shared

    def limited(real):
        def call(rows, n_targets, width):
            if len(rows) > 4:  # an engine that runs out of memory above 4 rows
                raise RuntimeError("Allocate memory failed: out of memory")
            return real(rows, n_targets, width)
        return call

    monkeypatch.setattr(native_lm.backend, "score", limited(real_score))
    monkeypatch.setattr(native_lm.backend, "score_shared", limited(real_shared))
    with pytest.raises(RuntimeError, match="out of memory"):  # the model itself never backs off
        auto.loglikelihood(requests)
    got = [(r.logprob, r.is_greedy, r.n_tokens) for r in CacheLayer(auto).loglikelihood(requests)]
    assert got == expected  # the one policy, in the call path: harness.cache.CacheLayer
    assert auto.batch_size <= 4 and auto.stats.notes  # (a shared batch of k questions is 4k rows)
    assert all("continued with batch size" in note for note in auto.stats.notes)
    assert len(auto.stats.notes) <= 3  # no halving through sizes above the rows that failed


def test_auto_backend_is_native_for_the_types_it_implements_only(native_lm, tiny_lm, tmp_path):
    assert models.backend_for("tiny") == "native"
    assert native_lm.backend.name == "native"
    assert native_lm.backend.num_parameters() == tiny_lm.backend.num_parameters() == 149312
    other = tmp_path / "neox"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "gpt_neox"}), encoding="utf-8")
    assert models.backend_for(str(other)) == "mindnlp"
    assert models.backend_for(str(other), "torch") == "torch"
    with pytest.raises(HarnessError, match="gpt2, llama, qwen2, mistral checkpoints only"):
        models.load(str(other), backend="native")


def test_hub_id_offline_is_one_clear_error(tiny_lm):
    with pytest.raises(HarnessError, match="offline"):
        models.load("no-such-user/no-such-gpt2", backend="native")


def test_pytorch_bin_checkpoint_without_prefix_loads_the_same(native_lm, tmp_path):
    """Original GPT-2 .bin checkpoints name weights without `transformer.` and carry mask buffers."""
    from harness.models.native_gpt2 import load_state

    folder = Path(native_lm.spec.source)
    out = tmp_path / "bin"
    out.mkdir()
    for name in ("config.json", "vocab.json", "merges.txt", "tokenizer_config.json"):
        (out / name).write_bytes((folder / name).read_bytes())
    script = ("import sys, torch; from safetensors.torch import load_file; "
              "s = {k.removeprefix('transformer.'): v for k, v in load_file(sys.argv[1]).items()}; "
              "s['h.0.attn.bias'] = torch.tril(torch.ones(1, 1, 8, 8)); torch.save(s, sys.argv[2])")
    subprocess.run([sys.executable, "-c", script, str(folder / "model.safetensors"),
                    str(out / "pytorch_model.bin")], check=True, timeout=300)
    a, b = load_state(folder), load_state(out)
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    lm = models.load(str(out), backend="native")
    ids = native_lm.encode("same numbers")
    assert np.array_equal(lm.backend.logits(ids), native_lm.backend.logits(ids))


def test_generation_tells_the_engine_its_prompt_passes_ahead(native_lm, monkeypatch):
    """With continuous batching a stream makes one full prompt pass, then refills of about
    REFILL_AT rows: that (not one full batch per batch_size requests) is the plan `expect` gets,
    and the refill passes really run at that size."""
    from harness.models.generation import REFILL_AT

    planned, passes = [], []
    backend = native_lm.backend
    real_prefill, real_refill = backend.prefill, backend.refill
    monkeypatch.setattr(backend, "expect", lambda plan: planned.append(dict(plan)))
    monkeypatch.setattr(backend, "prefill", lambda p, m, w: passes.append(len(p)) or real_prefill(p, m, w))
    monkeypatch.setattr(backend, "refill", lambda s, k, p: passes.append(len(p)) or real_refill(s, k, p))
    monkeypatch.setattr(native_lm, "batch_size", 4)
    requests = [GenerationRequest(p, ("\n",), max_new_tokens=5) for p in PROMPTS]  # one stream
    native_lm.generate(requests)
    width = 64  # every prompt here fits the first 64-token generation width
    assert planned == [{(4, width, None): 1, (REFILL_AT, width, None): -(-(len(PROMPTS) - 4) // REFILL_AT)}]
    assert passes[0] == 4 and sum(passes) == len(PROMPTS) and max(passes[1:]) <= 4


def test_packed_weight_products_give_the_padded_numbers(native_lm, monkeypatch):
    """Issue 15 part 2 on GPT-2: products on the real tokens only, attention padded: bit-identical."""
    from harness.models import native_backend
    from tests.packing import record_packs

    requests = _questions()
    seen = record_packs(native_lm.backend.model, monkeypatch, 4)
    packed = _loglikelihoods(native_lm, requests, 8, True, True)
    assert seen and all(n % 4 == 0 for n in seen)
    monkeypatch.setattr(native_backend, "PACK_STEP", 10**6)
    count = len(seen)
    padded = _loglikelihoods(native_lm, requests, 8, False, True)
    assert len(seen) == count and packed == padded  # nothing packed the second time; exact equality


def test_packed_prompt_passes_give_the_padded_numbers(native_lm, monkeypatch):
    """Generation's prompt passes run their products on the real tokens only: same logits, same texts."""
    from tests.packing import check_packed_prompt_passes

    check_packed_prompt_passes(native_lm, monkeypatch, PROMPTS)


def test_unplanned_passes_pack_once_the_rows_saved_would_have_paid_a_compile(native_lm, monkeypatch):
    """Rent-or-buy: a pass no plan announced runs on row counts compiled already until the rows a
    new count would have saved reach one compile's cost; then on the count that saved the most."""
    from harness.models import native_backend

    backend = native_lm.backend
    monkeypatch.setattr(backend, "_compiled_rows", set())
    monkeypatch.setattr(backend, "_regret", {})
    monkeypatch.setattr(native_backend, "PACK_STEP", 16)
    params = backend.model.num_parameters()
    monkeypatch.setattr(native_backend, "PACK_COMPILE_S", 150 * 2.0 * params / native_backend.ASSUMED_RATE)

    def rows(lengths: list[int]) -> int:  # 2 prompts left-padded to 80: 160 rows unpacked
        pack, _ = backend._packing(lengths, 2, 80, [80 - n for n in lengths], unplanned=True)
        return 160 if pack is None or len(pack) >= 160 else len(pack)  # (all 160, maybe rounded up)

    assert rows([20, 20]) == 160  # 48 rows would save 112 < 150: not yet
    assert rows([30, 30]) == 64  # 64 rows: 96 + 96 saved >= 150 (80 rows: 80 + 80, less)
    assert rows([20, 20]) == 64  # compiled now; 48 would save 16 a pass: not worth a compile
    assert rows([50, 50]) == 160  # 64 rows cannot hold it; 112 would save 48 < 150


def _plan_cost(rows: dict, passes: dict, compile_rows: float, compiled: set) -> float:
    return sum(rows[t] * n for t, n in passes.items()) + compile_rows * len(set(rows.values()) - compiled)


def test_packing_plan_is_the_cheapest_choice_of_row_counts():
    """`packing_plan` against brute force over every set of row counts (rows run + compile cost)."""
    import itertools
    import random

    from harness.models.native_backend import PACK_STEP, packing_plan

    rng = random.Random(0)
    for _ in range(200):
        whole = PACK_STEP * rng.randint(2, 9)
        passes = {rng.randint(1, whole): rng.randint(1, 4) for _ in range(rng.randint(1, 6))}
        compile_rows = rng.choice([0, 10, 100, 1000])
        compiled = {PACK_STEP * rng.randint(1, whole // PACK_STEP)}
        plan = packing_plan(passes, whole, compile_rows, compiled)
        assert all(t <= plan[t] <= whole and plan[t] % PACK_STEP == 0 for t in passes)
        levels = range(PACK_STEP, whole + 1, PACK_STEP)
        best = min(_plan_cost({t: min(c for c in chosen if c >= t) for t in passes}, passes, compile_rows,
                              compiled)
                   for k in range(1, len(levels) + 1) for chosen in itertools.combinations(levels, k)
                   if max(chosen) >= max(passes))
        assert _plan_cost(plan, passes, compile_rows, compiled) == best
    dear = packing_plan({10 * PACK_STEP: 5, 9 * PACK_STEP: 1}, 16 * PACK_STEP, 10**9)
    assert set(dear.values()) == {10 * PACK_STEP}  # one row count only when compiles are dear

"""The native engine on tiny random Llama, Qwen2 and Mistral checkpoints (tests/family_checkpoints.py):
parity with transformers on PyTorch, greedy generations, and numbers that do not depend on batching."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import models
from harness.errors import HarnessError
from harness.models.native_engine import SHARED_CONTEXT
from harness.requests import GenerationRequest, LoglikelihoodRequest
from tests.continuous_batching import PROMPTS as CONTINUOUS_PROMPTS
from tests.continuous_batching import check_continuous_batching

HERE = Path(__file__).resolve().parent
FAMILIES = ("llama", "qwen2", "mistral")
TEXTS = ["The theory of everything, checked in the end.", "Hello", "in the hand and in the heart",
         "Paris is the capital of", "x", "Il fait beau aujourd'hui.", "1 2 3 4 5 6 7 8 9", "Short"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny_lm) -> Path:
    """The three checkpoints, written once by transformers on real PyTorch (mindnlp is loaded first)."""
    out = tmp_path_factory.mktemp("families")
    subprocess.run([sys.executable, str(HERE / "family_checkpoints.py"), "write", str(out)], check=True,
                   timeout=600, capture_output=True)
    return out


@pytest.fixture(scope="module")
def family_lms(checkpoints):
    return {name: models.load(str(checkpoints / name), backend="native", batch_size=8) for name in FAMILIES}


def _ids(lm, text: str) -> list[int]:
    return lm.tokenizer(text).input_ids


@pytest.mark.parametrize("name", FAMILIES)
def test_logits_match_transformers_on_pytorch(family_lms, checkpoints, name, tmp_path):
    lm = family_lms[name]
    ids = _ids(lm, " ".join(TEXTS))  # 100+ tokens: several width buckets and rotary angles
    ids = ids[: lm.backend.window or len(ids)]  # Mistral: a row within its sliding window
    ours = lm.backend.logits(ids)
    out = tmp_path / "ref.npy"
    subprocess.run([sys.executable, str(HERE / "torch_reference.py"), str(checkpoints / name),
                    json.dumps(ids), str(out)], check=True, timeout=300)
    reference = np.load(out)
    assert reference.shape == ours.shape == (len(ids), lm.backend.vocab_size)
    assert np.abs(reference - ours).max() < 1e-4
    assert np.abs(reference).max() > 1.0  # a real, non-degenerate comparison


@pytest.mark.parametrize("name", FAMILIES)
def test_greedy_tokens_identical_to_transformers_and_across_batch_sizes(family_lms, checkpoints, name,
                                                                        tmp_path):
    lm, n = family_lms[name], 6
    prompts = [_ids(lm, t) for t in TEXTS]
    out = tmp_path / "greedy.json"
    subprocess.run([sys.executable, str(HERE / "family_checkpoints.py"), "greedy", str(checkpoints / name),
                    json.dumps(prompts), str(n), str(out)], check=True, timeout=300)
    reference = json.loads(out.read_text(encoding="utf-8"))

    def greedy(batch: list[list[int]]) -> list[list[int]]:
        state, logits = lm.backend.prefill(batch, n, 64)
        tokens = [logits.argmax(-1)]
        for _ in range(n - 1):
            tokens.append(lm.backend.decode(state, tokens[-1]).argmax(-1))
        return np.stack(tokens, 1).tolist()

    assert greedy(prompts) == reference
    assert [greedy([p])[0] for p in prompts] == reference
    assert len({tuple(r) for r in reference}) > 1


def _one_layer_groups(model, monkeypatch) -> None:
    """Run `model` (2-3 layers: one group) in one-layer groups, as a deep model runs in several."""
    monkeypatch.setattr(model, "group", 1)
    monkeypatch.setattr(model, "_grouped", model._single)


@pytest.mark.parametrize("name", FAMILIES)
def test_layer_group_decoding_bit_identical_to_whole_network(family_lms, name, monkeypatch):
    """Decoding on one graph per layer group gives the whole-network graph's logits, bit for bit."""
    lm = family_lms[name]
    _one_layer_groups(lm.backend.model, monkeypatch)
    prompts = [_ids(lm, t) for t in TEXTS]

    def steps(whole: bool) -> np.ndarray:
        state, logits = lm.backend.prefill(prompts, 5, 64)
        state["whole"] = whole
        out = [logits]
        for _ in range(4):
            out.append(lm.backend.decode(state, out[-1].argmax(-1)))
        return np.stack(out)

    whole, grouped = steps(True), steps(False)
    assert np.array_equal(whole, grouped) and np.abs(whole).max() > 1.0


def test_whole_network_decoding_only_where_it_pays(family_lms, monkeypatch):
    lm = family_lms["llama"]
    model = lm.backend.model
    _one_layer_groups(model, monkeypatch)
    monkeypatch.setattr(model, "_whole_decode", set())
    assert model.whole_decode_pays(8, 64, 8, None)  # no hint: as many steps as may come
    assert model.whole_decode_pays(8, 64, 8, 10**6)
    assert not model.whole_decode_pays(8, 64, 8, 4)
    lm.backend.expect_decoding(4)  # a short stream: layer groups, no whole-network compile
    state, logits = lm.backend.prefill([_ids(lm, TEXTS[0])], 4, 64)
    assert state["whole"] is False
    lm.backend.decode(state, logits.argmax(-1))
    assert not model.whole_decode_pays(2, 64, 4, 4)
    lm.backend.expect_decoding(10**6)
    state, logits = lm.backend.prefill([_ids(lm, TEXTS[0])], 4, 64)
    assert state["whole"] is True
    lm.backend.decode(state, logits.argmax(-1))  # compiled now: any stream of this shape uses it
    assert model.whole_decode_pays(2, 64, 4, 4)


@pytest.mark.parametrize("name", FAMILIES)
def test_generations_identical_across_batch_sizes(family_lms, name, monkeypatch):
    lm = family_lms[name]
    reqs = [GenerationRequest(t, ("\n",), max_new_tokens=4 + i % 3) for i, t in enumerate(TEXTS)]
    outputs = {}
    for size in (1, 8):
        monkeypatch.setattr(lm, "batch_size", size)  # the module's model is left as it was
        outputs[size] = lm.generate(reqs)
    assert outputs[1] == outputs[8] and len(set(outputs[8])) > 1


@pytest.mark.parametrize("name", FAMILIES)
def test_continuous_batching_gives_the_texts_of_static_batching_and_of_each_prompt_alone(family_lms, name):
    short = [text[:24] for text in CONTINUOUS_PROMPTS]  # within Mistral's 48-token sliding window
    check_continuous_batching(family_lms[name], short)


def _questions() -> list[LoglikelihoodRequest]:
    choices = [" mat", " the end of the hand", "!", " 10 11"]
    requests = [LoglikelihoodRequest(c, t) for c in TEXTS[:5] for t in choices]
    return requests + [LoglikelihoodRequest("Lonely context", " here")]


@pytest.mark.parametrize("name", FAMILIES)
def test_loglikelihoods_bit_identical_across_batch_sizes_shared_context_and_reduced_head(family_lms, name):
    lm = family_lms[name]
    results = {}
    try:
        for batch_size in (1, 8):
            for share in (True, False):
                for reduced in (True, False):
                    lm.batch_size, lm.share_prefixes, lm.backend.reduced_head = batch_size, share, reduced
                    results[(batch_size, share, reduced)] = [(r.logprob, r.is_greedy)
                                                             for r in lm.loglikelihood(_questions())]
    finally:
        lm.batch_size, lm.share_prefixes, lm.backend.reduced_head = 8, True, True
    baseline = results[(8, False, False)]
    for key, got in results.items():
        assert got == baseline, key  # exact float equality, not a tolerance
    assert all(lp < 0 for lp, _ in baseline) and len({lp for lp, _ in baseline}) > 15


def test_layer_group_graphs_and_one_layer_graphs_give_identical_numbers(family_lms):
    """Grouped-query attention in every mode, both graph policies: nothing may change."""
    model = family_lms["qwen2"].backend.model
    rng = np.random.default_rng(0)
    width, steps = 32, 4
    ids = rng.integers(0, family_lms["qwen2"].backend.vocab_size, (4, width))
    pos = np.broadcast_to(np.arange(width), (4, width))
    causal = np.broadcast_to(np.tril(np.ones((width, width), dtype=bool)), (4, width, width))
    at = np.stack([10 + np.arange(steps), 20 + np.arange(steps)])  # 2 rows continue rows 3 and 1
    slots = np.zeros((2, steps, width), dtype=np.float32)
    for r in range(2):
        slots[r, np.arange(steps), at[r]] = 1.0
    allowed = np.arange(width)[None, None, :] <= at[:, :, None]
    hidden = {}
    assert model.group > 1  # else both ways run the same graphs
    for grouped in (False, True):
        h, cache = model.forward(ids, pos, causal, grouped=grouped)
        g, _ = model.forward(ids[:2, :steps], at, allowed, SHARED_CONTEXT, cache, slots, np.array([3, 1]),
                             grouped=grouped)
        hidden[grouped] = (h.asnumpy(), g.asnumpy())
    assert np.array_equal(hidden[False][0], hidden[True][0])
    assert np.array_equal(hidden[False][1], hidden[True][1])
    assert np.abs(hidden[True][1]).max() > 0.1


def test_auto_backend_parameters_and_bos_tokenizer(family_lms, checkpoints):
    params = json.loads((checkpoints / "params.json").read_text(encoding="utf-8"))
    for name in FAMILIES:
        assert models.backend_for(str(checkpoints / name)) == "native"
        assert family_lms[name].backend.num_parameters() == params[name]
    assert params["qwen2"] < params["llama"]  # tied output layer counted once
    llama = family_lms["llama"].tokenizer
    assert llama("hi").input_ids[0] == llama.bos_token_id == 1
    assert family_lms["qwen2"].tokenizer("hi").input_ids[0] != 1


def test_rows_longer_than_the_sliding_window_are_refused(family_lms):
    lm = family_lms["mistral"]  # sliding_window 48
    short = lm.loglikelihood([LoglikelihoodRequest("a b c", " d")])
    assert short[0].logprob < 0
    with pytest.raises(HarnessError, match="sliding attention window"):
        lm.loglikelihood([LoglikelihoodRequest("word " * 40, " end")])


def test_unimplemented_rope_scaling_is_one_clear_error(checkpoints, tmp_path):
    folder = tmp_path / "yarn"
    folder.mkdir()
    for item in (checkpoints / "llama").iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(HarnessError, match="rope_scaling type 'yarn' is not implemented") as error:
        models.load(str(folder), backend="native")
    assert "\n" not in str(error.value)


def test_bfloat16_checkpoint_loads_exactly_widened(checkpoints, family_lms, tmp_path):
    """Real Llama-family checkpoints are mostly stored as bfloat16, which numpy lacks."""
    folder = tmp_path / "bf16"
    script = ("import sys, torch; from transformers import AutoModelForCausalLM, AutoTokenizer; "
              "m = AutoModelForCausalLM.from_pretrained(sys.argv[1]).to(torch.bfloat16); "
              "m.save_pretrained(sys.argv[2]); "
              "AutoTokenizer.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2])")
    subprocess.run([sys.executable, "-c", script, str(checkpoints / "llama"), str(folder)], check=True,
                   timeout=300)
    assert '"BF16"' in (folder / "model.safetensors").read_bytes()[:4096].decode("latin-1")
    lm = models.load(str(folder), backend="native")
    ids = _ids(lm, TEXTS[0])
    out = tmp_path / "ref.npy"
    subprocess.run([sys.executable, str(HERE / "torch_reference.py"), str(folder), json.dumps(ids), str(out)],
                   check=True, timeout=300)
    ours, reference = lm.backend.logits(ids), np.load(out)
    assert np.abs(reference - ours).max() < 1e-4
    assert not np.array_equal(ours, family_lms["llama"].backend.logits(ids))  # really other (rounded) weights


@pytest.mark.parametrize("name", ("llama", "qwen2"))
def test_packed_prompt_passes_give_the_padded_numbers(family_lms, name, monkeypatch):
    from tests.packing import check_packed_prompt_passes

    check_packed_prompt_passes(family_lms[name], monkeypatch, [text[:24] for text in CONTINUOUS_PROMPTS])


@pytest.mark.parametrize("name", ("llama", "qwen2"))
def test_packed_weight_products_give_the_padded_numbers(family_lms, name, monkeypatch):
    """Issue 15 part 2: products on the real tokens only (packed), attention padded: bit-identical."""
    from harness.models import native_backend
    from tests.packing import record_packs

    lm = family_lms[name]
    packed = record_packs(lm.backend.model, monkeypatch, 4)
    results = {}
    for step in (4, 10**6):  # rows rounded up to 4 (repeats fill them), or never packed
        monkeypatch.setattr(native_backend, "PACK_STEP", step)
        for share in (True, False):
            monkeypatch.setattr(lm, "share_prefixes", share)
            results[(step, share)] = [(r.logprob, r.is_greedy) for r in lm.loglikelihood(_questions())]
    assert packed and any(n % 4 == 0 and n > 4 for n in packed)
    assert results[(4, True)] == results[(4, False)] == results[(10**6, False)]  # exact equality

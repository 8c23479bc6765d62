"""The benchmark's workloads, scoring and driver (speed itself is measured by `python -m bench.run`)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench import run, work, workloads
from harness.errors import HarnessError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def lambada(tmp_path: Path) -> Path:
    texts = [f"passage {i} tells of the word{i % 7}" for i in range(12)]
    texts[3] = "a  double space before the end"  # lm-eval splits on ' ', not on runs of spaces
    path = tmp_path / "lambada.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def test_loglikelihood_requests_split_like_lm_eval(lambada: Path) -> None:
    work = workloads.loglikelihood(lambada, 5)
    assert work.n_examples == 5
    assert work.requests[0] == ["passage 0 tells of the", " word0"]
    assert work.requests[3] == ["a  double space before the", " end"]
    assert work.gold[3] == "end"


def test_multiple_choice_is_deterministic_with_gold_at_index_mod_4(lambada: Path) -> None:
    work = workloads.multiple_choice(lambada, 8)
    again = workloads.multiple_choice(lambada, 8)
    assert work.requests == again.requests and work.gold == again.gold
    assert work.gold == [i % 4 for i in range(8)]
    assert len(work.requests) == 32
    for i in range(8):
        rows = work.requests[4 * i: 4 * i + 4]
        context, last = workloads._read_lambada(lambada)[i]
        assert {c for c, _ in rows} == {context}  # one shared context per example
        words = [t[1:] for _, t in rows]
        assert all(t.startswith(" ") for _, t in rows)
        assert words[work.gold[i]] == last and words.count(last) == 1
        assert len(set(words)) == 4
        assert work.choice_lengths[i] == [len(w) for w in words]


def test_generation_uses_lm_eval_wmt14_prompt(tmp_path: Path) -> None:
    (tmp_path / "newstest2014.en-fr.en").write_text("Hello.\nGood night.\nThird.\n", encoding="utf-8")
    (tmp_path / "newstest2014.en-fr.fr").write_text("Bonjour.\nBonne nuit.\nTrois.\n", encoding="utf-8")
    work = workloads.generation(tmp_path, 2, 64)
    assert work.requests == [["English phrase: Hello.\nFrench phrase:", ["\n"], 64],
                             ["English phrase: Good night.\nFrench phrase:", ["\n"], 64]]
    assert work.gold == ["Bonjour.", "Bonne nuit."]


def test_missing_data_is_a_harness_error(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="--lambada"):
        workloads.loglikelihood(tmp_path / "nope.jsonl", 5)
    with pytest.raises(HarnessError, match="--wmt"):
        workloads.generation(tmp_path, 5, 64)


def test_scores_by_hand(lambada: Path) -> None:
    ll = workloads.loglikelihood(lambada, 2)
    scores = run.score(ll, [[-1.0, True], [-3.0, False]])
    assert scores["acc"] == 50.0
    assert scores["perplexity"] == pytest.approx(math.exp(2.0))

    mc = workloads.multiple_choice(lambada, 1)  # gold at index 0
    mc.choice_lengths[0] = [1000, 1, 1, 1]
    # raw log-likelihood prefers choice 1; per character, the long gold choice 0 wins
    scores = run.score(mc, [[lp, False] for lp in (-2.0, -1.5, -50.0, -60.0)])
    assert scores["acc"] == 0.0
    assert scores["acc_norm"] == 100.0


def test_agreement_reports_the_largest_difference(lambada: Path) -> None:
    ll = workloads.loglikelihood(lambada, 2)
    text = run.agreement(ll, [[-1.0, True], [-2.5, False]], [[-1.0, True], [-2.0, True]])
    assert "max|Δlogprob| 5.00e-01" in text and "is_greedy agrees 1/2" in text


def test_unknown_system_exits_2_with_one_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--systems", "torch,vllm"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: unknown system 'vllm'; choose from: lm-eval, native, mindnlp, torch, native-static"]


def test_driver_end_to_end_on_tiny(lambada: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--model", "tiny", "--systems", "torch",
         "--workloads", "loglikelihood,multiple_choice", "--lambada", str(lambada),
         "--n-loglikelihood", "3", "--n-multiple-choice", "2", "--json", str(report)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == "speedup_vs_lm_eval loglikelihood=nan multiple_choice=nan system=torch"
    data = json.loads(report.read_text(encoding="utf-8"))
    runs = data["workloads"]["multiple_choice"]["runs"]["torch"]
    assert len(runs["results"]) == 8 and runs["engine"].endswith("torch")
    assert data["workloads"]["loglikelihood"]["n_examples"] == 3
    # the FLOP accounting, from the shapes torch really ran: each distinct row at its width bucket
    from harness.models.checkpoint import load_tokenizer
    from harness.models.lm import bucket_width
    from harness.tokenization import split_context_continuation

    tok = load_tokenizer(Path(data["model"]))
    encode = lambda text: tok.encode(text, add_special_tokens=False)  # noqa: E731
    pairs = [split_context_continuation(encode, c, t, tok.eos_token_id)
             for c, t in workloads.loglikelihood(lambada, 3).requests]
    widths = [bucket_width(len(c) + len(t) - 1, 512) for c, t in pairs]
    assert len(set(widths)) == 1  # one batch: rows × width
    limit = data["workloads"]["loglikelihood"]["runs"]["torch"]["limit"]
    assert limit["done"]["body_tokens"] == 3 * widths[0]
    assert limit["needed"]["body_tokens"] == sum(len(c) + len(t) - 1 for c, t in pairs)
    assert limit["done"]["head_positions"] == limit["needed"]["head_positions"] >= 3  # scored ones only
    assert limit["work_ratio"] > 1 and limit["rate"] > 0 and limit["rate_fraction"] > 0
    assert data["matmul"]["torch"]["rate"] > 0
    assert any(line.startswith("limit torch (PyTorch): loglikelihood rate ") for line in lines)


def test_native_static_variant_measures_continuous_batching_in_the_same_run(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--model", "tiny", "--systems", "native,native-static",
         "--workloads", "generation", "--n-generation", "5", "--max-new-tokens", "6", "--batch-size", "2",
         "--json", str(report)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(report.read_text(encoding="utf-8"))["workloads"]["generation"]["runs"]
    assert runs["native"]["results"] == runs["native-static"]["results"]
    assert all(r["engine"].endswith(":native") for r in runs.values())
    line = next(ln for ln in proc.stdout.splitlines() if "native vs native-static:" in ln)
    assert "identical outputs 5/5" in line, line


# ------------------------------------------------------------------ distance to the limit
def test_needed_work_and_flops_on_a_known_case() -> None:
    # two requests share the context [1, 2, 3]; a repeated request counts once
    pairs = [([1, 2, 3], [4]), ([1, 2, 3], [5, 6]), ([7], [8]), ([7], [8])]
    needed = work.needed_scoring(pairs)
    assert (needed.body_tokens, needed.head_positions) == (3 + 1 + 1, 1 + 2 + 1)
    shape = work.ModelShape(body_parameters=10, d_model=2, vocab=5)
    assert needed.flops(shape) == 2 * 10 * 5 + 2 * 2 * 5 * 4
    gen = work.needed_generation([3, 5], [1, 4])  # the last generated token is never fed
    assert (gen.body_tokens, gen.head_positions) == (3 + 5 + 3, 5)


def test_model_shape_counts_body_parameters_from_the_checkpoint() -> None:
    from safetensors.numpy import load_file

    from harness.models.tiny import ensure_tiny_checkpoint

    folder = ensure_tiny_checkpoint()
    state = load_file(str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    shape = work.model_shape(folder)
    lookups = sum(v.size for k, v in state.items() if k.endswith(("wte.weight", "wpe.weight")))
    assert shape.body_parameters == sum(v.size for v in state.values()) - lookups > 0
    assert (shape.d_model, shape.vocab) == (config["n_embd"], config["vocab_size"])


def test_native_counters_equal_the_batches_it_ran() -> None:
    from harness.models import load
    from harness.models.native_backend import bucket

    lm = load("tiny", backend="native", batch_size=2)
    counted = work.Work()
    work.instrument_native(lm.backend, counted)
    calls: list[tuple[int, int, int, int]] = []
    inner = lm.backend.score

    def recording(rows, n_targets, width):  # noqa: ANN001, ANN202
        calls.append((len(rows), width, sum(n_targets), sum(len(r) - 1 for r in rows)))
        return inner(rows, n_targets, width)

    lm.backend.score = recording
    lm.share_prefixes = False
    words = "one two three four five six seven eight nine ten".split()
    pairs = [(list(range(1, 2 + 3 * i)), [20 + i, 30 + i][: 1 + i % 2]) for i in range(7)]
    pairs += [(list(range(1, 40)), [5]), ([9] * 3, [len(words)])]
    lm.loglikelihood_tokens(pairs)
    assert len(calls) >= 3  # several widths and batches
    ran = [lm.backend.packed_size(bucket(n), width, tokens) or bucket(n) * width
           for n, width, _, tokens in calls]
    assert any(r < bucket(n) * width for r, (n, width, *_) in zip(ran, calls, strict=True))  # some packed
    assert counted.body_tokens == sum(ran)
    needed = work.needed_scoring(pairs)
    assert counted.head_positions >= needed.head_positions == sum(t for _, _, t, _ in calls)
    assert counted.body_tokens > needed.body_tokens  # padding to widths and batch buckets


def test_matmul_probe_returns_a_positive_rate() -> None:
    for engine in ("mindspore", "torch"):
        proc = subprocess.run([sys.executable, "-m", "bench.matmul", "--engine", engine,
                               "--shapes", "16x32x8,8x8x8", "--repeats", "1"],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        probe = json.loads(proc.stdout.strip().splitlines()[-1])
        assert probe["engine"] == engine and probe["rate"] > 0
        assert set(probe["gflops"]) == {"16x32x8", "8x8x8"}

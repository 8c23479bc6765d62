"""The benchmark's workloads, scoring and driver (speed itself is measured by `python -m bench.run`)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench import run, workloads
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
        "error: unknown system 'vllm'; choose from: lm-eval, native, mindnlp, torch"]


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

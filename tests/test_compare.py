"""`harness compare` end to end: three tiny GPT-2 checkpoints of different sizes run through the
real pipeline on a few lines of WMT14, then tables, scaling plots, paired tests and the HTML report."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import tempfile
import weakref
from pathlib import Path

import numpy as np
import pytest

from harness import models
from harness.cli import main
from harness.models.tiny import TINY_SHAPE, write_byte_tokenizer, write_gpt2_checkpoint

SIZES = {"tiny-s": {"n_embd": 32, "n_layer": 1}, "tiny-m": {"n_embd": 64, "n_layer": 2},
         "tiny-l": {"n_embd": 96, "n_layer": 3}}
TASKS = ("translation-en-fr", "translation-fr-en")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def gpt2_parameters(shape: dict, vocab: int = 257) -> int:
    """Distinct parameters of a GPT-2 with tied embeddings, from its shape."""
    d, layers, positions = shape["n_embd"], shape["n_layer"], shape["n_positions"]
    return vocab * d + positions * d + layers * (12 * d * d + 13 * d) + 2 * d


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    folders = {}
    for name, shape in SIZES.items():
        folder = root / name
        folder.mkdir()
        eos = write_byte_tokenizer(folder)
        write_gpt2_checkpoint(folder, {**TINY_SHAPE, **shape}, eos + 1, eos, seed=1)
        folders[name] = folder
    return folders


@pytest.fixture(scope="module")
def sized_run(checkpoints, wmt14_dir, tmp_path_factory):
    """One `harness run --model s,m,l --task en-fr,fr-en --log-samples`, watching each load."""
    out = tmp_path_factory.mktemp("results")
    loads: list[dict] = []
    alive: list[weakref.ref] = []
    real_load = models.load

    def watching_load(*args, **kwargs):
        loads.append({"model": Path(args[0]).name, "previous_alive": [r() is not None for r in alive]})
        lm = real_load(*args, **kwargs)
        alive.append(weakref.ref(lm.backend.model))
        return lm

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(models, "load", watching_load)
        code = main(["run", "--model", ",".join(str(checkpoints[n]) for n in SIZES),
                     "--task", ",".join(TASKS),
                     "--data-files", str(wmt14_dir), "--limit", "4", "--max-new-tokens", "4",
                     "--log-samples", "--no-progress", "--batch-size", "4", "--output-dir", str(out)])
    assert code == 0
    return out, loads


@pytest.fixture(scope="module")
def compared(sized_run, tmp_path_factory):
    from harness.compare.command import compare

    out = tmp_path_factory.mktemp("compare")
    return compare(sized_run[0], out=out), out


def test_models_run_one_after_another_each_freed_before_the_next_with_its_size(sized_run):
    out, loads = sized_run
    assert [x["model"] for x in loads] == list(SIZES)
    assert [x["previous_alive"] for x in loads] == [[], [False], [False, False]]
    for name, shape in SIZES.items():
        for task in TASKS:
            (path,) = (out / name / task).glob("*.json")
            result = json.loads(path.read_text())
            assert result["model"]["num_parameters"] == gpt2_parameters({**TINY_SHAPE, **shape})


def test_table_has_task_metric_rows_and_models_by_size(compared, sized_run):
    report, out = compared
    md = (out / "table.md").read_text()
    assert "| tiny-s" in md and "± " in report.markdown
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines()
             if line.startswith("| ")]
    assert cells[0][4:] == ["tiny-s", "tiny-m", "tiny-l"]
    n_rows = [c for c in cells if c[3] == "n"]
    assert [(c[0], c[4:]) for c in n_rows] == [(t, ["4", "4", "4"]) for t in TASKS]  # n per model
    assert "n=4)" in md  # the paired test names the examples both models share
    # table.csv: one row per (setting, metric, model), numbers in their own columns
    rows = list(csv.DictReader(io.StringIO((out / "table.csv").read_text())))
    assert [(r["task"], r["metric"], r["model"]) for r in rows] == [
        (t, m, s) for t in TASKS for m in ("bleu", "chrf") for s in SIZES]
    (path,) = (sized_run[0] / "tiny-m" / "translation-fr-en").glob("*.json")
    chrf = json.loads(path.read_text())["metrics"]["chrf"]
    wanted = ("translation-fr-en", "chrf", "tiny-m")
    (row,) = [r for r in rows if (r["task"], r["metric"], r["model"]) == wanted]
    assert (float(row["value"]), float(row["stderr"]), int(row["n"])) == (chrf["value"], chrf["stderr"], 4)
    assert 0 < float(row["p"]) <= 1 and int(row["p_n"]) == 4 and row["p_vs"] == "tiny-s"
    assert row["backend"] and int(row["parameters"]) > 0
    smallest = [r for r in rows if r["model"] == "tiny-s"]
    assert all(r["p"] == r["p_n"] == r["p_vs"] == "" for r in smallest)  # nothing smaller to beat
    significance = list(csv.DictReader(io.StringIO((out / "significance.csv").read_text())))
    assert all(float(r["p"]) > 0 and float(r["delta"]) == float(r["larger score"]) - float(r["smaller score"])
               for r in significance)


def test_scaling_plot_has_one_point_per_model_and_the_paper_reference(compared, sized_run):
    report, out = compared
    expected = {n: gpt2_parameters({**TINY_SHAPE, **s}) for n, s in SIZES.items()}
    for task in TASKS:
        png = (out / "plots" / f"{task}.png").read_bytes()
        assert png.startswith(PNG_SIGNATURE)
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert width >= 600 and height >= 300
        for metric in ("bleu", "chrf"):
            ours = report.points[task][metric]["gpt2"]  # one family (model_type), one line
            assert [(p.model, p.parameters) for p in ours] == list(expected.items())
            (path,) = (sized_run[0] / "tiny-l" / task).glob("*.json")
            assert ours[-1].value == json.loads(path.read_text())["metrics"][metric]["value"]
    paper = "GPT-2 paper (Radford et al., 2019)"
    assert [(p.model, p.parameters, p.value) for p in report.points["translation-en-fr"]["bleu"][paper]] \
        == [("gpt2-xl", 1_557_611_200, 5.0)]
    assert [p.value for p in report.points["translation-fr-en"]["bleu"][paper]] == [11.5]
    assert paper not in report.points["translation-en-fr"]["chrf"]  # no number stated: no series


def test_adjacent_sizes_are_tested_on_the_same_examples(compared):
    _, out = compared
    rows = list(csv.DictReader(io.StringIO((out / "significance.csv").read_text())))
    pairs = [(r["task"], r["metric"], r["smaller"], r["larger"]) for r in rows]
    assert pairs == [(t, m, a, b) for t in TASKS for m in ("bleu", "chrf")
                     for a, b in (("tiny-s", "tiny-m"), ("tiny-m", "tiny-l"))]
    for r in rows:
        assert r["n"] == "4" and r["test"].startswith("paired bootstrap")
        p = float(r["p"])
        assert 0 < p <= 1 and r["larger better"] == ("yes" if p < 0.05 else "no")


def test_missing_samples_are_named_not_tested(sized_run, tmp_path):
    from harness.compare.command import compare

    folder = tmp_path / "results"
    shutil.copytree(sized_run[0], folder)
    for path in (folder / "tiny-m" / "translation-en-fr").glob("*.samples.jsonl"):
        path.unlink()
    compare(folder, metrics=["bleu"], out=tmp_path / "out")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "significance.csv").read_text())))
    en_fr = [r for r in rows if r["task"] == "translation-en-fr"]
    assert len(en_fr) == 2 and all("no samples for tiny-m" in r["test"] and not r["p"] for r in en_fr)
    assert {r["metric"] for r in rows} == {"bleu"}


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not found:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium; .ci/run installs it)")
    return found


def _chromium_run(exe: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120)


def test_html_report_is_self_contained_and_renders_in_headless_chromium(compared, tmp_path):
    from PIL import Image

    _, out = compared
    page = (out / "report.html").read_text()
    assert "<link" not in page and "src='http" not in page and 'src="http' not in page
    assert page.count("src='data:image/png;base64,") == len(TASKS)
    exe = _chromium()
    shot = tmp_path / "shot.png"
    page_uri = (out / "report.html").as_uri()
    done = _chromium_run(exe, f"--screenshot={shot}", "--window-size=1200,1600", page_uri)
    assert shot.exists(), done.stderr[-2000:]
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert image.shape == (1600, 1200, 3)
    assert (np.abs(image - image[0, 0]).sum(axis=2) > 60).mean() > 0.02  # not a blank page
    tab_blue = np.abs(image - np.array([31, 119, 180])).sum(axis=2) < 40  # matplotlib's first colour
    assert tab_blue.sum() > 200  # the embedded plots are drawn
    dom = _chromium_run(exe, "--dump-dom", page_uri).stdout
    assert "showing 4 of 4 matching" in dom  # the example browser's script ran
    assert "tiny-l" in dom and "translation-en-fr · gpt2-paper · 0-shot" in dom


def test_paired_tests_on_constructed_runs(tmp_path):
    """A clear difference is significant and identical predictions are not, through the full path:
    result files + samples -> recomputed corpus BLEU / per-example accuracy -> paired tests."""
    from harness.compare.pairs import adjacent_tests
    from harness.compare.runs import load_runs
    from harness.registry import discover
    from harness.runner import score
    from harness.scorers.base import Outcome
    from harness.task import Task

    registry_task = discover().get("translation-en-fr")
    refs = [f"le chat numero {i} est assis sur le tapis rouge" for i in range(40)]
    predictions = {"small": ["xx yy"] * 40, "twin": ["xx yy"] * 40, "large": list(refs)}
    sizes = {"small": 1000, "twin": 2000, "large": 3000}
    for name, preds in predictions.items():
        outcomes = [Outcome(prediction=p, references=[r]) for p, r in zip(preds, refs, strict=True)]
        metrics, samples = score(registry_task, outcomes, [f"prompt {i} =" for i in range(40)])
        _write_result(tmp_path, name, "translation-en-fr", sizes[name], metrics, samples)
    acc = {"small": [0.0] * 40, "twin": [0.0] * 40, "large": [1.0] * 30 + [0.0] * 10}
    for name, values in acc.items():
        samples = [{"index": i, "prompt": f"q{i}", "prediction": v == 1.0, "references": ["w"],
                    "scores": {"acc": v}} for i, v in enumerate(values)]
        metrics = {"acc": {"value": float(np.mean(values)), "stderr": 0.0, "higher_is_better": True}}
        _write_result(tmp_path, name, "lambada-like", sizes[name], metrics, samples)
    lambada = discover().get("lambada")
    logprobs = {"small": -6.0, "twin": -6.0, "large": -1.5}
    for name, base in logprobs.items():
        outcomes = [Outcome(prediction=True, references=["word"], logprob=base - (i % 7) / 10,
                            is_greedy=name == "large" and i % 4 != 0, n_tokens=2) for i in range(40)]
        metrics, samples = score(lambada, outcomes, [f"passage {i}" for i in range(40)])
        _write_result(tmp_path, name, "lambada", sizes[name], metrics, samples)
    assert isinstance(registry_task, Task)
    tests = {(t.key.task, t.metric, t.larger): t for t in adjacent_tests(load_runs(tmp_path))}
    checks = (("translation-en-fr", "bleu"), ("translation-en-fr", "chrf"), ("lambada-like", "acc"),
              ("lambada", "acc"), ("lambada", "perplexity"))
    for task, metric in checks:
        same, better = tests[(task, metric, "twin")].test, tests[(task, metric, "large")].test
        assert same.p_value > 0.5 and not same.b_better and same.delta == 0
        assert better.p_value < 0.05 and better.b_better and (better.delta > 0) == better.higher_is_better
    perplexity = tests[("lambada", "perplexity", "large")].test
    assert perplexity.delta < 0 and perplexity.method.startswith("paired bootstrap")  # lower is better
    exact = tests[("lambada-like", "acc", "large")].test
    assert exact.method == "paired permutation (exact)" and exact.p_value == pytest.approx(0.5 ** 30)
    assert tests[("translation-en-fr", "bleu", "large")].test.score_b == pytest.approx(100.0)


def _write_result(folder: Path, model: str, task: str, params: int, metrics: dict, samples: list) -> None:
    from harness.results import write_result

    write_result(folder, model, task, {
        "schema": "harness.result", "created": f"2026-01-01T00:00:0{params // 1000}",
        "task": {"name": task, "template": {"name": "t", "sha256": "0"}, "num_fewshot": 0},
        "model": {"name": model, "num_parameters": params}, "metrics": metrics,
        "n_examples": len(samples)}, samples)


def test_lower_is_better_metric_counts_a_drop_as_better():
    from harness.compare.significance import paired_bootstrap, paired_permutation

    a, b = np.full(50, 3.0) + np.linspace(0, 1, 50), np.full(50, 1.0) + np.linspace(0, 1, 50)
    n = 50
    lower = paired_bootstrap(a, b, lambda s: float(s[0]) / n, higher_is_better=False)
    assert lower.p_value < 0.05 and lower.delta == pytest.approx(-2.0)
    assert paired_bootstrap(a, b, lambda s: float(s[0]) / n, higher_is_better=True).p_value > 0.5
    assert paired_permutation(a, b, higher_is_better=False).p_value < 0.05
    assert paired_permutation(a, a).p_value == 1.0


def test_template_all_keeps_each_template_and_summarises_the_spread(checkpoints, wmt14_dir, tmp_path,
                                                                     capsys):
    from harness.compare.command import compare

    out = tmp_path / "results"
    code = main(["run", "--model", str(checkpoints["tiny-s"]), "--task", "translation-en-fr", "--template",
                 "all", "--data-files", str(wmt14_dir), "--limit", "3", "--max-new-tokens", "3",
                 "--no-progress", "--output-dir", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    results = [json.loads(p.read_text()) for p in (out / "tiny-s" / "translation-en-fr").glob("*.json")]
    assert sorted(r["task"]["template"]["name"] for r in results) == ["gpt2-paper", "instruction", "lm-eval"]
    assert "Prompt sensitivity" in captured.out
    compare(out, out=tmp_path / "cmp")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "cmp" / "sensitivity.csv").read_text())))
    assert [(r["metric"], r["templates"]) for r in rows] == [("bleu", "3"), ("chrf", "3")]
    chrf = [r["metrics"]["chrf"]["value"] for r in results]
    expected = (f"{np.mean(chrf):.4f} ± {np.std(chrf, ddof=1):.4f} [{min(chrf):.4f}, {max(chrf):.4f}]")
    assert rows[1]["tiny-s"] == expected


def test_spread_statistics_across_templates():
    from harness.sensitivity import sensitivity_table

    def result(template: str, value: float) -> dict:
        return {"created": template, "task": {"name": "t", "template": {"name": template}, "num_fewshot": 0},
                "model": {"name": "m", "num_parameters": 5}, "metrics": {"acc": {"value": value}}}

    header, rows = sensitivity_table([result("a", 0.2), result("b", 0.4), result("c", 0.9)])
    assert header == ["task", "shots", "metric", "templates", "m"]
    assert rows == [["t", "0", "acc", "3", "0.5000 ± 0.3606 [0.2000, 0.9000]"]]
    assert sensitivity_table([result("a", 0.2)])[1] == []  # one template: nothing to summarise


def test_bad_input_is_one_line_and_exit_code_2(sized_run, tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: results folder not found") and "\n" not in err
    assert main(["compare", str(sized_run[0]), "--metric", "rouge", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "rouge" in err and "bleu, chrf" in err and "\n" not in err
    assert main(["run", "--model", "tiny", "--template", "nope"]) == 2
    assert "no template 'nope'" in capsys.readouterr().err


def _mc_result(folder: Path, model: str, params: int, correct: dict[int, bool], *, backend: str = "native",
               model_type: str = "gpt2", created: str = "2026-01-01T00:00:00") -> None:
    """A multiple-choice result (two choices per question) with its samples log: `correct`
    maps example index -> whether the model chose the gold choice (index 1)."""
    from harness.results import write_result

    samples = [{"index": i, "prompt": f"question {i}", "prediction": 1 if ok else 0, "references": ["right"],
                "scores": {"acc": float(ok)}, "choices": ["wrong", "right"], "gold": 1,
                "choice_logprobs": [-2.0, -1.0] if ok else [-1.0, -2.0]} for i, ok in correct.items()]
    acc = float(np.mean([float(ok) for ok in correct.values()]))
    write_result(folder, model, "quiz", {
        "schema": "harness.result", "created": created,
        "task": {"name": "quiz", "kind": "multiple_choice", "template": {"name": "t", "sha256": "0"},
                 "num_fewshot": 0},
        "model": {"name": model, "num_parameters": params, "backend": backend, "model_type": model_type},
        "metrics": {"acc": {"value": acc, "stderr": 0.01, "higher_is_better": True}},
        "n_examples": len(samples)}, samples)


def test_compare_keeps_every_backend_of_a_model_in_its_own_column(tmp_path):
    from harness.compare.command import compare

    every = dict.fromkeys(range(6), True)
    _mc_result(tmp_path, "m", 1000, every, backend="torch", created="2026-01-01T00:00:01")
    _mc_result(tmp_path, "m", 1000, {i: i % 2 == 0 for i in range(6)}, backend="mindnlp",
               created="2026-01-01T00:00:02")
    _mc_result(tmp_path, "small", 10, {i: False for i in range(6)}, created="2026-01-01T00:00:03")
    report = compare(tmp_path, out=tmp_path / "cmp")
    header = next(line for line in report.markdown.splitlines() if line.startswith("| task"))
    assert [c.strip() for c in header.strip("|").split("|")][4:] == ["small", "m [mindnlp]", "m [torch]"]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "cmp" / "table.csv").read_text())))
    assert [(r["model"], r["backend"], float(r["value"])) for r in rows] == [
        ("small", "native", 0.0), ("m [mindnlp]", "mindnlp", 0.5), ("m [torch]", "torch", 1.0)]
    # one line per backend of the family in the plot, at the same parameter count
    series = report.points["quiz"]["acc"]
    assert sorted(series) == ["gpt2", "gpt2 [mindnlp]", "gpt2 [torch]"]


def test_scaling_plot_draws_one_line_per_family_and_the_chance_level(tmp_path):
    from harness.compare.command import compare
    from harness.compare.plot import chance_level
    from harness.compare.runs import load_runs

    half = {i: i < 3 for i in range(6)}
    _mc_result(tmp_path, "gpt-a", 100, half)
    _mc_result(tmp_path, "gpt-b", 400, dict.fromkeys(range(6), True))
    _mc_result(tmp_path, "llama-a", 200, half, model_type="llama")
    report = compare(tmp_path, out=tmp_path / "cmp")
    series = report.points["quiz"]["acc"]
    assert {label: [p.model for p in pts] for label, pts in series.items()} == {
        "gpt2": ["gpt-a", "gpt-b"], "llama": ["llama-a"]}
    assert chance_level(load_runs(tmp_path), "quiz") == 0.5  # two choices per question
    assert report.chance == {"quiz": 0.5}
    assert not [label for label in series if "GPT-2 paper" in label]  # no published number for quiz


def test_example_browser_shows_every_model_s_examples_and_choices_as_text(tmp_path):
    from harness.compare.report_html import example_groups
    from harness.compare.runs import load_runs

    _mc_result(tmp_path, "small", 10, {0: True, 1: False, 2: True})
    _mc_result(tmp_path, "large", 20, {2: True, 3: False, 4: True})  # other examples than small's
    (group,) = example_groups(load_runs(tmp_path), 100)
    assert group["models"] == ["small", "large"] and group["total"] == 5
    by_index = {ex["i"]: ex for ex in group["examples"]}
    assert sorted(by_index) == [0, 1, 2, 3, 4]
    assert by_index[1]["pred"] == ["[0] wrong", None] and by_index[1]["refs"] == ["[1] right"]
    assert by_index[3]["pred"] == [None, "[0] wrong"] and by_index[3]["ok"] == [None, False]
    assert by_index[2]["pred"] == ["[1] right", "[1] right"] and by_index[2]["ok"] == [True, True]


@pytest.fixture
def mixed_results(tmp_path) -> Path:
    """One good result (with samples), one corrupt JSON file and one result missing its model."""
    folder = tmp_path / "mixed"
    samples = [{"index": i, "prompt": "p", "prediction": "x", "references": ["x"], "scores": {"acc": 1.0}}
               for i in range(4)]
    _write_result(folder, "good-model", "kit-ll", 1000, {"acc": {"value": 1.0, "stderr": 0.0}}, samples)
    (folder / "corrupt.json").write_text('{"schema": "harness.result", "task": {', encoding="utf-8")
    incomplete = {"schema": "harness.result", "task": {"name": "kit-ll"},
                  "metrics": {"acc": {"value": "high"}}}
    (folder / "incomplete.json").write_text(json.dumps(incomplete), encoding="utf-8")
    return folder


@pytest.mark.parametrize("command", ["table", "compare"])
def test_bad_result_files_are_each_named_and_the_good_ones_tabulated(mixed_results, command, capsys):
    code = main([command, str(mixed_results)])
    out = capsys.readouterr()
    assert code == 0, out.err
    warnings = [line for line in out.err.splitlines() if line.startswith("warning: skipped")]
    assert len(warnings) == 2
    assert any(str(mixed_results / "corrupt.json") in w and "not readable JSON" in w for w in warnings)
    assert any(str(mixed_results / "incomplete.json") in w and "model.name" in w for w in warnings)
    assert "good-model" in out.out and "1.0000" in out.out


@pytest.mark.parametrize("command", ["table", "compare"])
def test_only_bad_result_files_exit_2_after_naming_them(mixed_results, command, capsys):
    shutil.rmtree(mixed_results / "good-model")
    code = main([command, str(mixed_results)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("warning: skipped") == 2 and "error: no readable result files" in err

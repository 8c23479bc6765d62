"""The command line end to end on the tiny model and a few lines of the real WMT14 data."""

from __future__ import annotations

import json

import pytest

from harness.cli import main


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory, wmt14_dir):
    """One real run, shared by the checks below (generation is the slow part)."""
    out = tmp_path_factory.mktemp("results")
    code = main(["run", "--task", "translation-en-fr", "--model", "tiny", "--data-files", str(wmt14_dir),
                 "--limit", "6", "--max-new-tokens", "12", "--output-dir", str(out), "--log-samples",
                 "--no-progress", "--batch-size", "4"])
    assert code == 0
    return out


def test_run_writes_result_json_with_bleu_chrf_stderr_and_signature(translation_run):
    files = list(translation_run.glob("tiny/translation-en-fr/*.json"))
    assert len(files) == 1
    result = json.loads(files[0].read_text())
    for name in ("bleu", "chrf"):
        metric = result["metrics"][name]
        assert isinstance(metric["value"], float) and 0 <= metric["value"] <= 100
        assert "stderr" in metric
        assert "version:2.6.0" in metric["signature"]
    assert result["n_examples"] == 6
    assert result["task"]["template"]["name"] == "gpt2-paper"
    assert len(result["task"]["template"]["sha256"]) == 64
    assert result["task"]["version"] == "1"
    assert result["model"]["num_parameters"] > 100_000
    assert result["config"]["limit"] == 6 and result["config"]["max_new_tokens"] == 12
    assert result["packages"]["mindspore"] and result["packages"]["sacrebleu"] == "2.6.0"
    assert result["timing"]["wall_seconds"] > 0 and result["timing"]["tokens_per_second"] > 0


def test_samples_log_has_prompt_prediction_reference_and_scores(translation_run, wmt14_dir):
    samples_files = list(translation_run.glob("tiny/translation-en-fr/*.samples.jsonl"))
    assert len(samples_files) == 1
    lines = [json.loads(x) for x in samples_files[0].read_text().splitlines()]
    assert len(lines) == 6
    english = (wmt14_dir / "newstest2014.en-fr.en").read_text().splitlines()
    french = (wmt14_dir / "newstest2014.en-fr.fr").read_text().splitlines()
    assert lines[0]["prompt"] == f"{english[0]} ="  # the GPT-2 paper's format
    assert lines[0]["references"] == [french[0]]
    assert "\n" not in lines[0]["prediction"]  # the prediction is the first generated line
    assert set(lines[0]["scores"]) == {"bleu", "chrf"}


def test_table_shows_the_run(translation_run, capsys):
    code, out, _ = _run(capsys, "table", str(translation_run))
    assert code == 0
    assert "translation-en-fr" in out and "bleu" in out and "chrf" in out and "tiny" in out
    assert "±" in out
    code, out, _ = _run(capsys, "table", str(translation_run), "--format", "csv")
    assert out.splitlines()[0] == "task,template,shots,metric,tiny"


def test_tasks_lists_translation_with_templates_and_metrics(capsys):
    code, out, _ = _run(capsys, "tasks")
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("translation-en-fr:"))
    assert "English to French" in line
    details = out.splitlines()[out.splitlines().index(line) + 1]
    assert "generate_until" in details and "gpt2-paper" in details and "instruction" in details
    assert "bleu" in details and "chrf" in details


def test_fewshot_prompt_uses_english_equals_french_pairs(tmp_path, wmt14_dir):
    out = tmp_path / "r"
    assert main(["run", "--task", "translation-en-fr", "--model", "tiny", "--data-files", str(wmt14_dir),
                 "--limit", "2", "--max-new-tokens", "2", "--num-fewshot", "2", "--output-dir", str(out),
                 "--log-samples", "--no-progress"]) == 0
    sample = json.loads(next(out.rglob("*.samples.jsonl")).read_text().splitlines()[0])
    lines = sample["prompt"].split("\n")
    assert len(lines) == 3
    assert all(" = " in line for line in lines[:2]) and lines[2].endswith(" =")
    english0 = (wmt14_dir / "newstest2014.en-fr.en").read_text().splitlines()[0]
    assert english0 not in lines[0] and english0 not in lines[1]  # never its own example


def test_instruction_template_and_reverse_direction(tmp_path, wmt14_dir):
    out = tmp_path / "r"
    assert main(["run", "--task", "translation-fr-en", "--model", "tiny", "--data-files", str(wmt14_dir),
                 "--limit", "1", "--max-new-tokens", "2", "--template", "instruction",
                 "--output-dir", str(out), "--log-samples", "--no-progress"]) == 0
    sample = json.loads(next(out.rglob("*.samples.jsonl")).read_text().splitlines()[0])
    assert sample["prompt"].startswith("French: ") and sample["prompt"].endswith("\nEnglish:")


# Unknown task, unknown template, missing model folder: tests/test_bad_input.py (one place).

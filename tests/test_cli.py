"""The command line end to end on the tiny model and a few lines of the real WMT14 data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import harness_cli


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


def test_folder_without_config_is_not_a_checkpoint(capsys, tmp_path):
    code, _, err = _run(capsys, "run", "--model", str(tmp_path), "--limit", "1")
    assert code == 2 and "no config.json" in err


def test_unreadable_data_files_name_file_and_line(capsys, tmp_path):
    (tmp_path / "x.en").write_text("one\ntwo\n")
    (tmp_path / "x.fr").write_bytes(b"un\n\xff\xfe deux\n")
    code, _, err = _run(capsys, "run", "--model", "tiny", "--data-files", str(tmp_path), "--limit", "1")
    assert code == 2 and "x.fr line 2" in err and "UTF-8" in err
    (tmp_path / "x.fr").write_text("un\n")
    code, _, err = _run(capsys, "run", "--model", "tiny", "--data-files", str(tmp_path), "--limit", "1")
    assert code == 2 and "different line counts" in err
    code, _, err = _run(capsys, "run", "--model", "tiny", "--data-files", str(tmp_path / "nope"))
    assert code == 2 and "not found" in err and "nope" in err


def test_template_error_names_template_and_line(capsys, tmp_path, monkeypatch):
    from harness.registry import discover

    bad = tmp_path / "bad.jinja"
    bad.write_text("{{ source }}\n{{ no_such_field }} =\n")
    task = discover().get("translation-en-fr")
    monkeypatch.setitem(task.templates, "bad", str(bad))
    code, _, err = _run(capsys, "run", "--model", "tiny", "--template", "bad", "--limit", "1",
                        "--no-progress", "--data-files",
                        str(Path(__file__).resolve().parents[2] / "shared/data/wmt14-en-fr"))
    assert code == 2 and err.count("\n") == 1
    assert "template 'bad'" in err and "line 2" in err and "no_such_field" in err


def test_hub_model_offline_says_how_to_use_a_local_folder():
    result = harness_cli("run", "--model", "gpt2", "--limit", "1", env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in result.stderr
    assert "cannot load model 'gpt2'" in err[0] and "local checkpoint folder" in err[0]


def test_unreachable_hub_fails_at_once_without_retries():
    """No HF_HUB_OFFLINE, an endpoint that refuses connections: one line, no retry chatter."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # the discard port: nothing listens there
    harness = str(Path(sys.executable).with_name("harness"))
    cases = [(("--model", "gpt2"), "--model tiny"),
             (("--model", "tiny", "--task", "lambada"), "--data-files")]
    for args, advice in cases:
        result = subprocess.run([harness, "run", *args, "--limit", "1"], capture_output=True, text=True,
                                env=env, timeout=600)
        assert result.returncode == 2
        err = result.stderr.strip().splitlines()
        assert len(err) == 1 and "Retrying" not in result.stderr, result.stderr
        assert "(http://127.0.0.1:9) is not reachable" in err[0] and advice in err[0]

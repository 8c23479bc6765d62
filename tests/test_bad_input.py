"""Every kind of bad input gets one line on stderr naming the problem, and exit code 2.

Most checks call the CLI in-process (fast); the last ones run the installed `harness` command
to check the real exit code and that no traceback reaches the user.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import harness_cli
from tests.plugin_kit import kit_env, kit_rows, write_jsonl


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_error_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err


def _kit_run(capsys, data: Path | str, *extra: str) -> tuple[int, str, str]:
    return _run(capsys, "run", "--model", "tiny", "--task", "kit-ll", "--data-files", str(data),
                "--no-progress", "--no-cache", *extra)


@pytest.fixture
def data(tmp_path) -> Path:
    return write_jsonl(tmp_path / "rows.jsonl", kit_rows(3))


def test_unknown_task_names_the_closest(capsys, kit):
    code, _, err = _run(capsys, "run", "--task", "kit-lll", "--model", "tiny")
    assert code == 2
    assert "unknown task 'kit-lll'" in _one_error_line(err) and "kit-ll" in err and "harness tasks" in err


def test_unknown_template_lists_the_tasks_templates(capsys, kit, data):
    code, _, err = _kit_run(capsys, data, "--template", "nope")
    assert code == 2
    assert "no template 'nope'" in _one_error_line(err) and "plain" in err and "missing-field" in err


def test_unknown_model_folder(capsys, kit, data, tmp_path):
    code, _, err = _kit_run(capsys, data, "--model", str(tmp_path / "no-such-model"))
    assert code == 2
    assert "does not exist" in _one_error_line(err) and "no-such-model" in err


def test_unknown_hub_model_offline(capsys, kit, data):
    code, _, err = _kit_run(capsys, data, "--model", "no-such-user/no-such-model")
    assert code == 2
    assert "cannot load model 'no-such-user/no-such-model'" in _one_error_line(err)
    assert "--model tiny" in err  # says what to do instead


def test_data_file_missing(capsys, kit, tmp_path):
    code, _, err = _kit_run(capsys, tmp_path / "absent.jsonl")
    assert code == 2
    assert "data file not found" in _one_error_line(err) and "absent.jsonl" in err


def test_data_file_empty(capsys, kit, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n")
    code, _, err = _kit_run(capsys, empty)
    assert code == 2
    assert "empty" in _one_error_line(err) and "empty.jsonl" in err


def test_data_file_not_utf8_names_the_line(capsys, kit, tmp_path):
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"context": "a", "target": "b"}\n{"context": "caf\xe9", "target": "b"}\n')
    code, _, err = _kit_run(capsys, bad)
    assert code == 2
    assert "latin1.jsonl line 2" in _one_error_line(err) and "UTF-8" in err


def test_malformed_jsonl_line_names_file_and_line(capsys, kit, tmp_path):
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"context": "a", "target": "b"}\n\n{"context": "c", "target": \n')
    code, _, err = _kit_run(capsys, bad)
    assert code == 2
    assert "broken.jsonl line 3" in _one_error_line(err) and "malformed JSON" in err


def test_malformed_csv_line_names_file_and_line(capsys, kit, tmp_path):
    bad = tmp_path / "rows.csv"
    bad.write_text("context,target\nhello,world\none,two,three\n")
    code, _, err = _kit_run(capsys, bad)
    assert code == 2
    assert "rows.csv line 3" in _one_error_line(err) and "3 fields" in err


def test_row_without_a_needed_field_names_the_row(capsys, kit, tmp_path):
    rows = write_jsonl(tmp_path / "rows.jsonl", [{"context": "a", "target": "b"}, {"context": "c"}])
    code, _, err = _kit_run(capsys, rows)
    assert code == 2
    assert "rows.jsonl example 2: no field 'target'" in _one_error_line(err) and "has: context" in err


def test_template_field_missing_from_the_data(capsys, kit, data):
    code, _, err = _kit_run(capsys, data, "--template", "missing-field")
    assert code == 2
    line = _one_error_line(err)
    assert "template 'missing-field'" in line and "line 1" in line and "no_such_field" in line
    assert "the data has fields: choices, context, gold, target, text" in line


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_limit_must_be_positive(capsys, kit, data, limit, tmp_path):
    code, _, err = _kit_run(capsys, data, "--limit", limit, "--output-dir", str(tmp_path / "out"))
    assert code == 2
    assert f"--limit must be a positive number of examples, got {limit}" in _one_error_line(err)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_inputs_longer_than_the_context_are_truncated_counted_and_warned_once(capsys, kit, tmp_path):
    rows = write_jsonl(tmp_path / "rows.jsonl", kit_rows(4, long_rows=(0, 2)))
    out = tmp_path / "out"
    code, _, err = _run(capsys, "run", "--model", "tiny", "--task", "kit-ll,kit-greedy", "--data-files",
                        str(rows), "--max-new-tokens", "2", "--no-progress", "--output-dir", str(out))
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1  # once per run, though both tasks truncate
    assert "2 input(s) of kit-ll" in warnings[0] and "512 tokens" in warnings[0]
    assert "truncated from the left" in warnings[0]
    for task in ("kit-ll", "kit-greedy"):
        result = json.loads(next((out / "tiny" / task).glob("*.json")).read_text())
        assert result["truncated_inputs"] == 2


def test_unusable_cache_file(capsys, kit, data, tmp_path):
    (tmp_path / "a-file").write_text("")
    unusable = tmp_path / "a-file" / "cache.sqlite"  # its folder cannot be created
    code, _, err = _run(capsys, "run", "--model", "tiny", "--task", "kit-ll", "--data-files", str(data),
                        "--cache-file", str(unusable), "--output-dir", str(tmp_path / "out"))
    assert code == 2
    assert "cannot open the response cache" in _one_error_line(err) and "--no-cache" in err


def test_corrupt_cache_file_is_moved_aside_and_the_run_goes_on(capsys, kit, data, tmp_path):
    not_a_db = tmp_path / "cache.sqlite"
    not_a_db.write_bytes(b"this is not a database" * 100)
    code, _, err = _run(capsys, "run", "--model", "tiny", "--task", "kit-ll", "--data-files", str(data),
                        "--cache-file", str(not_a_db), "--output-dir", str(tmp_path / "out"), "--no-progress")
    assert code == 0, err
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("cache.sqlite.corrupt-")]
    assert aside.read_bytes().startswith(b"this is not a database")
    warning = [line for line in err.splitlines() if line.startswith("warning: the response cache")]
    assert len(warning) == 1 and "is corrupt" in warning[0] and str(aside) in warning[0]


@pytest.mark.parametrize("args, expected", [
    (["--task", "kit-lll"], "unknown task 'kit-lll'"),
    (["--task", "kit-ll", "--data-files", "/nonexistent/rows.jsonl"], "data file not found"),
    (["--task", "kit-ll", "--limit", "0"], "--limit must be a positive number"),
    (["--task", "kit-ll", "--template", "nope"], "no template 'nope'"),
    (["--task", "kit-ll", "--data-files", "{data}.csv"], "data file not found"),
])
def test_installed_command_exits_2_with_one_line_and_no_traceback(kit_root, data, args, expected):
    args = [a.replace("{data}", str(data)) for a in args]
    result = harness_cli("run", "--model", "tiny", "--no-progress", *args, env=kit_env(kit_root))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr


@pytest.fixture
def tiny_copy(tmp_path) -> Path:
    import shutil

    from harness.models.tiny import ensure_tiny_checkpoint

    return Path(shutil.copytree(ensure_tiny_checkpoint(), tmp_path / "tiny-copy"))


@pytest.mark.parametrize("backend", ["native", "mindnlp", "torch"])
def test_truncated_safetensors_is_one_line_naming_the_file(capsys, kit, data, tiny_copy, backend):
    weights = tiny_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    code, _, err = _run(capsys, "run", "--model", str(tiny_copy), "--backend", backend, "--task", "kit-ll",
                        "--data-files", str(data), "--no-progress", "--no-cache")
    assert code == 2
    assert str(weights) in _one_error_line(err) and "truncated" in err


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_config_that_is_not_a_json_object_is_one_line_naming_it(capsys, kit, data, tiny_copy, backend):
    (tiny_copy / "config.json").write_text("[1, 2, 3]\n")
    code, _, err = _run(capsys, "run", "--model", str(tiny_copy), "--backend", backend, "--task", "kit-ll",
                        "--data-files", str(data), "--no-progress", "--no-cache")
    assert code == 2
    assert str(tiny_copy / "config.json") in _one_error_line(err) and "not a JSON object" in err


def test_a_template_syntax_error_stops_only_its_task(capsys, kit, data, tmp_path):
    out = tmp_path / "out"
    code, _, err = _run(capsys, "run", "--model", "tiny", "--task", "kit-bad-syntax,kit-ll", "--data-files",
                        str(data), "--no-progress", "--no-cache", "--output-dir", str(out))
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "kit-bad-syntax" in errors[0] and "syntax.jinja" in errors[0] and "line 1" in errors[0]
    assert "1 task run(s) failed: kit-bad-syntax" in errors[-1]
    assert len(list((out / "tiny" / "kit-ll").glob("*.json"))) == 1


# moved from test_cli.py: bad input is tested here only
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

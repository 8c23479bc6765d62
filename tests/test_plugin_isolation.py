"""A task plugin that fails to import, or raises while preparing rows, building requests or
scoring, is reported for that task; the other tasks of the run still finish and are written."""

from __future__ import annotations

import json

from harness.cli import main
from tests.plugin_kit import kit_rows, write_jsonl


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_failing_plugins_are_reported_and_the_other_tasks_written(capsys, kit, tmp_path):
    data = write_jsonl(tmp_path / "rows.jsonl", kit_rows(3))
    out = tmp_path / "out"
    tasks = "kit-bad-prepare,kit-bad-requests,kit-ll,kit-bad-scoring,kitbroken-task,kit-greedy"
    code, stdout, err = _run(capsys, "run", "--model", "tiny", "--task", tasks, "--data-files", str(data),
                             "--max-new-tokens", "2", "--no-progress", "--output-dir", str(out))
    assert code == 1  # a plugin crashed (2 would mean only bad input)
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 5  # one line per failed task, and the summary
    assert "kitbroken-task" in errors[0] and "plugin 'kitbroken' failed to load" in errors[0]
    assert "ModuleNotFoundError" in errors[0]
    assert "kit-bad-prepare" in errors[1] and "kit: cannot prepare a row" in errors[1]
    assert "task kit-bad-requests on tiny failed: RuntimeError: kit: cannot build requests" in errors[2]
    assert "task kit-bad-scoring on tiny failed: ZeroDivisionError: kit: scorer bug" in errors[3]
    assert errors[4] == ("error: 4 task run(s) failed: kitbroken-task, kit-bad-prepare, "
                         "kit-bad-requests on tiny, kit-bad-scoring on tiny (reasons above); "
                         "every other result was written")
    for task in ("kit-ll", "kit-greedy"):
        result = json.loads(next((out / "tiny" / task).glob("*.json")).read_text())
        assert result["n_examples"] == 3 and result["metrics"]
        assert f"wrote {out / 'tiny' / task}" in err
    assert sorted(p.name for p in (out / "tiny").iterdir()) == ["kit-greedy", "kit-ll"]
    assert "kit-ll" in stdout and "kit-greedy" in stdout  # the table of what did finish


def test_a_single_crashing_task_is_one_line_exit_1(capsys, kit, tmp_path):
    data = write_jsonl(tmp_path / "rows.jsonl", kit_rows(2))
    code, _, err = _run(capsys, "run", "--model", "tiny", "--task", "kit-bad-scoring", "--data-files",
                        str(data), "--no-progress", "--output-dir", str(tmp_path / "out"))
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: task kit-bad-scoring on tiny failed: ZeroDivisionError: kit: scorer bug")
    assert "--debug" in err
    # the model's answers were cached before scoring failed: fixing the plugin costs no recompute
    assert (tmp_path / "out" / ".cache" / "responses.sqlite").is_file()


def test_debug_shows_the_plugins_traceback(capsys, kit, tmp_path):
    data = write_jsonl(tmp_path / "rows.jsonl", kit_rows(2))
    code, _, err = _run(capsys, "--debug", "run", "--model", "tiny", "--task", "kit-bad-requests,kit-ll",
                        "--data-files", str(data), "--no-progress", "--output-dir", str(tmp_path / "out"))
    assert code == 1
    assert "Traceback" in err and 'raise RuntimeError("kit: cannot build requests")' in err


def test_tasks_command_lists_working_plugins_and_warns_about_the_broken_one(capsys, kit):
    code, out, err = _run(capsys, "tasks")
    assert code == 0
    assert "kit-ll: test kit: kit-ll" in out and "kit-bad-scoring" in out
    assert "warning: plugin 'kitbroken' failed to load: ModuleNotFoundError" in err


def test_unknown_task_without_a_broken_plugin_stops_before_loading_anything(capsys, tmp_path):
    out = tmp_path / "out"
    code, _, err = _run(capsys, "run", "--model", "tiny", "--task", "translation-en-fr,no-such-task",
                        "--output-dir", str(out))
    assert code == 2 and err.count("\n") == 1 and "unknown task 'no-such-task'" in err
    assert not out.exists()

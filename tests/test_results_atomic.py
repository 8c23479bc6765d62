"""Result files and sample logs: written through a temporary file, linked into place, and never
overwritten, even by writers racing for the same name."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from harness import results
from harness.results import find_results, write_new, write_result


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_second_write_never_replaces_the_first(tmp_path):
    first = write_new(tmp_path, "run", ".json", "first\n")
    second = write_new(tmp_path, "run", ".json", "second\n")
    assert (first.name, second.name) == ("run.json", "run-1.json")
    assert first.read_text() == "first\n" and second.read_text() == "second\n"
    assert _visible(tmp_path) == ["run-1.json", "run.json"]  # no temporary file left behind


def test_racing_writers_each_get_their_own_complete_file(tmp_path):
    texts = [json.dumps({"writer": i, "payload": "x" * 50_000}) for i in range(16)]
    paths: list[Path] = []
    barrier = threading.Barrier(len(texts))

    def write(text: str) -> None:
        barrier.wait()
        paths.append(write_new(tmp_path, "same-stem", ".json", text))

    threads = [threading.Thread(target=write, args=(t,)) for t in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(paths)) == len(texts)
    assert sorted(json.loads(p.read_text())["writer"] for p in paths) == list(range(len(texts)))
    assert not [n for n in _visible(tmp_path) if n.startswith(".tmp-")]


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results.os, "fsync", disk_full)
    with pytest.raises(results.DiskFull) as caught:
        write_new(tmp_path, "run", ".json", "text")
    assert str(tmp_path / "run.json") in str(caught.value) and "4 bytes" in str(caught.value)
    assert _visible(tmp_path) == []  # neither a half-written result nor its temporary file


def test_result_names_its_samples_log_and_both_are_complete(tmp_path):
    record = {"schema": "harness.result", "created": "2026-01-01T00:00:00+00:00", "metrics": {}}
    samples = [{"index": i, "prediction": f"p{i}"} for i in range(3)]
    path = write_result(tmp_path, "tiny", "kit-ll", dict(record), samples)
    again = write_result(tmp_path, "tiny", "kit-ll", dict(record), samples)
    assert path != again
    for result_path in (path, again):
        result = json.loads(result_path.read_text())
        log = result_path.parent / result["samples_file"]
        assert log.name.endswith(".samples.jsonl") and log.stem.startswith(result_path.stem)
        assert [json.loads(line) for line in log.read_text().splitlines()] == samples
    assert len(list((tmp_path / "tiny" / "kit-ll").iterdir())) == 4


COMPLETE = {"schema": "harness.result", "created": "x", "model": {"name": "tiny"}, "metrics": {},
            "task": {"name": "kit-ll", "template": {"name": "plain"}, "num_fewshot": 0}}


def test_find_results_skips_temporary_and_foreign_files(tmp_path):
    write_result(tmp_path, "tiny", "kit-ll", dict(COMPLETE))
    folder = tmp_path / "tiny" / "kit-ll"
    (folder / ".tmp-abc.json").write_text(json.dumps({"schema": "harness.result"}))
    (folder / "notes.json").write_text("[1, 2]")
    (folder / "broken.json").write_text("{not json")
    assert [Path(r["_path"]).parent for r in find_results(tmp_path)] == [folder]
    assert os.listdir(folder)  # nothing was removed


def test_result_files_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        path = write_result(tmp_path, "tiny", "kit-ll", dict(COMPLETE), [{"index": 0}])
    finally:
        os.umask(previous)
    log = path.parent / json.loads(path.read_text())["samples_file"]
    assert oct(path.stat().st_mode & 0o777) == oct(log.stat().st_mode & 0o777) == oct(0o644)


KILLER = """
import os, signal, sys
from harness import results
real_link, point = os.link, sys.argv[2]
def link(src, dst):
    if point == "before-samples-link" or (point == "after-samples-link" and str(dst).endswith(".json")):
        os.kill(os.getpid(), signal.SIGKILL)
    real_link(src, dst)
    if point == "after-result-link" and str(dst).endswith(".json"):
        os.kill(os.getpid(), signal.SIGKILL)
os.link = link
task = sys.argv[3] if len(sys.argv) > 3 else "kit-ll"
results.write_result(sys.argv[1], "tiny", task, {"metrics": {}}, [{"index": 0}])
"""


@pytest.mark.parametrize("point", ["before-samples-link", "after-samples-link", "after-result-link"])
def test_kill_9_during_the_write_leaves_nothing_once_the_folder_is_written_again(tmp_path, point):
    """The writer is SIGKILLed at each step of writing a result and its samples log; the next
    write in that folder removes the dead writer's litter, and every result has its log."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path), point], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    folder = tmp_path / "tiny" / "kit-ll"
    assert [n for n in _visible(folder) if n.startswith(".tmp-")]  # the kill left litter
    write_result(tmp_path, "tiny", "kit-ll", dict(COMPLETE), [{"index": 1}])
    names = _visible(folder)
    assert not [n for n in names if n.startswith(".tmp-")], names
    logs = {n for n in names if n.endswith(results.SAMPLES_SUFFIX)}
    named = {json.loads((folder / n).read_text())["samples_file"] for n in names if n.endswith(".json")}
    assert logs == named  # no orphan log, no result without its log
    assert len(named) == (2 if point == "after-result-link" else 1)


def test_the_next_run_in_that_folder_removes_a_killed_writers_orphan_log_before_computing(tmp_path):
    """Killed between linking the samples log and the result, a writer leaves a log without its
    result; the next `harness run` for that model and task removes it at its start, even when
    that run writes nothing there itself (here: lm-eval output format only)."""
    import subprocess
    import sys

    from tests.conftest import LAMBADA, harness_cli, require

    proc = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path), "after-samples-link", "lambada"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    folder = tmp_path / "tiny" / "lambada"
    shown = [n for n in _visible(folder) if not n.startswith(".tmp-")]
    assert [n for n in shown if n.endswith(results.SAMPLES_SUFFIX)]  # the orphan log
    assert not [n for n in shown if n.endswith(".json")]  # and no result
    run = harness_cli("run", "--model", "tiny", "--task", "lambada", "--limit", "2", "--no-progress",
                      "--data-files", str(require(LAMBADA)), "--output-dir", str(tmp_path),
                      "--output-format", "lm-eval", "--no-cache")
    assert run.returncode == 0, run.stderr
    assert _visible(folder) == [], _visible(folder)


def test_a_live_writers_temporary_files_are_left_alone(tmp_path):
    folder = tmp_path / "tiny" / "kit-ll"
    folder.mkdir(parents=True)
    mine = folder / f"{results._temp_prefix()}abc123.json"  # this process: alive
    mine.write_text("{}")
    assert results.clean_stale(folder) == [] and mine.exists()


def test_package_versions_are_the_installed_ones_even_with_mindnlp_loaded():
    """mindnlp (loaded first in this session) patches importlib.metadata.version to answer
    2.7.1+dev for torch; a result file must record the torch really installed (pinned 2.13.0)."""
    import mindnlp  # noqa: F401 - what `harness run` has loaded when it writes results
    from packaging.version import Version

    from harness.engines import pinned_versions

    recorded = results.package_versions()
    pins = pinned_versions()
    for name in ("torch", "mindspore", "transformers", "numpy"):
        assert Version(recorded[name]).base_version == pins[name], name

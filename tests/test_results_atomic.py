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
    with pytest.raises(OSError):
        write_new(tmp_path, "run", ".json", "text")
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


def test_find_results_skips_temporary_and_foreign_files(tmp_path):
    write_result(tmp_path, "tiny", "kit-ll", {"schema": "harness.result", "created": "x"})
    folder = tmp_path / "tiny" / "kit-ll"
    (folder / ".tmp-abc.json").write_text(json.dumps({"schema": "harness.result"}))
    (folder / "notes.json").write_text("[1, 2]")
    (folder / "broken.json").write_text("{not json")
    assert [Path(r["_path"]).parent for r in find_results(tmp_path)] == [folder]
    assert os.listdir(folder)  # nothing was removed

"""Result files: one JSON per (model, task) run, written atomically and never overwritten."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from harness import __version__

PACKAGES = ("mindspore", "mindnlp", "transformers", "torch", "tokenizers", "datasets",
            "sacrebleu", "numpy", "jinja2")
SCHEMA_VERSION = 1
SAMPLES_SUFFIX = ".samples.jsonl"


def package_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"harness": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_new(folder: Path, stem: str, suffix: str, text: str) -> Path:
    """Write `text` to a new file `folder/stem[-N]suffix`, atomically, never replacing one."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        for n in range(10_000):
            target = folder / (f"{stem}{suffix}" if n == 0 else f"{stem}-{n}{suffix}")
            try:
                os.link(tmp, target)  # fails if the target exists: no overwrite, no race
            except FileExistsError:
                continue
            _fsync_folder(folder)
            return target
        raise RuntimeError(f"no free file name for {stem} in {folder}")
    finally:
        os.unlink(tmp)


def _fsync_folder(folder: Path) -> None:
    """Make the new directory entry durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def timestamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H-%M-%S-%fZ")


def write_result(output_dir: Path, model: str, task: str, result: dict,
                 samples: list[dict] | None = None) -> Path:
    """Write `results/<model>/<task>/<timestamp>.json` (+ `.samples.jsonl` beside it, written
    first so that the result names it in `samples_file`)."""
    folder = Path(output_dir) / model / task
    stem = timestamp()
    if samples is not None:
        lines = "".join(json.dumps(s, default=_json_default, ensure_ascii=False) + "\n" for s in samples)
        sample_path = write_new(folder, stem, SAMPLES_SUFFIX, lines)
        stem = sample_path.name[: -len(SAMPLES_SUFFIX)]
        result["samples_file"] = sample_path.name
    return write_new(folder, stem, ".json", json.dumps(result, indent=2, default=_json_default,
                                                       ensure_ascii=False) + "\n")


def find_results(folder: Path) -> list[dict]:
    """Every result JSON under `folder` (samples logs, temporary files and the partial results of
    `--shard` runs skipped: only their merge is a result)."""
    results = []
    for path in sorted(Path(folder).rglob("*.json")):
        if path.name.startswith(".tmp-"):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("schema") == "harness.result" and "shard" not in data:
            data["_path"] = str(path)
            results.append(data)
    return results

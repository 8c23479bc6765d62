"""Result files: one JSON per (model, task) run, written atomically and never overwritten.

`ResultRecord` is the schema of that JSON (run, partial `--shard` result and merge alike);
`dumps` is the one way a result becomes text."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import platform
import re
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import HarnessError

PACKAGES = ("mindspore", "mindnlp", "transformers", "torch", "tokenizers", "datasets",
            "sacrebleu", "numpy", "jinja2")
SCHEMA_VERSION = 1
SAMPLES_SUFFIX = ".samples.jsonl"
TMP_PREFIX = ".tmp-"


def package_versions() -> dict[str, str | None]:
    """The versions on disk of the packages a result depends on (None: not installed)."""
    from harness.engines import installed_version  # not metadata.version: mindnlp patches it

    found: dict[str, str | None] = {"harness": __version__, "python": platform.python_version()}
    found.update((name, installed_version(name)) for name in PACKAGES)
    return found


RESULT_SCHEMA = "harness.result"


def now_iso() -> str:
    """The `created` time of a result: UTC, ISO 8601."""
    return dt.datetime.now(dt.timezone.utc).isoformat()


@dataclass
class ResultRecord:
    """One result file's content: what ran (`task`, `model`, `config`, `packages`), what it
    scored (`metrics` over `n_examples`), and how (`timing`, `cache`, `notes`). A partial result
    of a `--shard` run adds `shard` (what `harness merge` needs); a merged result adds
    `merged_from`. Fields left None are not written. The JSON keys follow `RECORD_KEYS`."""

    task: dict[str, Any]
    model: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    n_examples: int
    truncated_inputs: int
    timing: dict[str, Any]
    config: dict[str, Any]
    packages: dict[str, str | None]
    cache: dict[str, Any] | None = None
    notes: list[str] | None = None
    shard: dict[str, Any] | None = None
    merged_from: dict[str, Any] | None = None
    samples_file: str | None = None
    created: str = field(default_factory=now_iso)
    schema: str = RESULT_SCHEMA
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The record as its JSON file holds it (key order as `RECORD_KEYS`)."""
        return {key: getattr(self, key) for key in RECORD_KEYS if getattr(self, key) is not None}

    def to_json(self) -> str:
        return dumps(self.to_dict())


RECORD_KEYS = ("schema", "schema_version", "created", "task", "model", "metrics", "n_examples",
               "truncated_inputs", "timing", "config", "packages", "cache", "notes", "shard",
               "merged_from", "samples_file")


def json_default(obj: Any) -> Any:
    """`json.dumps`'s fallback for what results hold beside plain JSON: numpy scalars, paths."""
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any) -> str:
    """A result file's text: indented JSON, non-ASCII kept, a final newline."""
    return json.dumps(obj, indent=2, default=json_default, ensure_ascii=False) + "\n"


def dumps_lines(rows: list[dict]) -> str:
    """A samples log's text: one JSON object per line."""
    return "".join(json.dumps(row, default=json_default, ensure_ascii=False) + "\n" for row in rows)


class DiskFull(HarnessError):
    """No space left where a result file goes; the message names the file and the size."""

    def __init__(self, path: Path, needed: int) -> None:
        super().__init__(f"no space left on the device to write {path} (it needs {_size(needed)} more)")
        self.path = path
        self.needed = needed


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


def _file_mode() -> int:
    """What `open` would create under this process's umask (mkstemp's files are 0600)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no way to read it without setting it
    os.umask(mask)
    return 0o666 & ~mask


def _temp_prefix() -> str:
    """Temporary files name their writer, so that a later run can tell a dead writer's litter."""
    return f"{TMP_PREFIX}{socket.gethostname()}-{os.getpid()}-"


def _write_temp(folder: Path, suffix: str, text: str, target: Path) -> Path:
    """`text` in a new temporary file in `folder`, flushed to disk, with the umask's mode."""
    data = text.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=_temp_prefix(), suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), _file_mode())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as exc:
        os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(target, len(data)) from None
        raise
    return Path(tmp)


def _name(folder: Path, stem: str, n: int, suffix: str) -> Path:
    return folder / (f"{stem}{suffix}" if n == 0 else f"{stem}-{n}{suffix}")


def write_new(folder: Path, stem: str, suffix: str, text: str) -> Path:
    """Write `text` to a new file `folder/stem[-N]suffix`, atomically, never replacing one."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = _write_temp(folder, suffix, text, _name(folder, stem, 0, suffix))
    try:
        for n in range(10_000):
            target = _name(folder, stem, n, suffix)
            try:
                os.link(tmp, target)  # fails if the target exists: no overwrite, no race
            except FileExistsError:
                continue
            _fsync_folder(folder)
            return target
        raise RuntimeError(f"no free file name for {stem} in {folder}")
    finally:
        os.unlink(tmp)


def _write_pair(folder: Path, stem: str, result: dict, lines: str) -> Path:
    """A result and its samples log under one free stem. The samples log is linked first and
    removed again if the result cannot follow; killed in between, it is still hard-linked to its
    writer's temporary file, by which the next write in this folder finds and removes it."""
    samples_tmp = _write_temp(folder, SAMPLES_SUFFIX, lines, _name(folder, stem, 0, SAMPLES_SUFFIX))
    try:
        for n in range(10_000):
            result_path = _name(folder, stem, n, ".json")
            samples_path = _name(folder, stem, n, SAMPLES_SUFFIX)
            if result_path.exists():
                continue
            try:
                os.link(samples_tmp, samples_path)
            except FileExistsError:
                continue
            try:
                result["samples_file"] = samples_path.name
                text = dumps(result)
                result_tmp = _write_temp(folder, ".json", text, result_path)
                try:
                    os.link(result_tmp, result_path)
                finally:
                    os.unlink(result_tmp)
            except FileExistsError:
                os.unlink(samples_path)
                continue
            except BaseException:
                os.unlink(samples_path)  # neither file appears
                raise
            _fsync_folder(folder)
            return result_path
        raise RuntimeError(f"no free file name for {stem} in {folder}")
    finally:
        os.unlink(samples_tmp)


_TEMP_NAME = re.compile(r"^\.tmp-(?P<host>.+)-(?P<pid>\d+)-[a-z0-9_]+(?P<suffix>\..+)?$")
STALE_SECONDS = 3600  # a temporary file without its writer's name is litter after this long


def clean_stale(folder: Path) -> list[Path]:
    """Remove what writers killed mid-write left in `folder`: their temporary files, and a
    samples log whose result never followed. Returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    host = socket.gethostname()
    for tmp in (p for p in entries if p.name.startswith(TMP_PREFIX)):
        match = _TEMP_NAME.match(tmp.name)
        try:
            if match is None or match["host"] != host:  # an older harness's, or another machine's
                if match is None and time.time() - tmp.stat().st_mtime > STALE_SECONDS:
                    tmp.unlink()
                    removed.append(tmp)
                continue
            if _alive(int(match["pid"])):
                continue
            if tmp.name.endswith(SAMPLES_SUFFIX):
                removed += _orphans_of(tmp, entries)
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            continue
    return removed


def clean_task_folder(output_dir: Path, model: str, task: str) -> list[Path]:
    """`clean_stale` on `output_dir/model/task` if it exists: a run does it before computing, so a
    writer killed mid-write leaves nothing behind once the next run in that folder starts."""
    folder = Path(output_dir) / model / task
    return clean_stale(folder) if folder.is_dir() else []


def _orphans_of(tmp: Path, entries: list[Path]) -> list[Path]:
    """Visible samples logs that are hard links of the dead writer's `tmp` and have no result."""
    found = []
    inode = tmp.stat()
    for path in entries:
        if path.name.startswith(TMP_PREFIX) or not path.name.endswith(SAMPLES_SUFFIX):
            continue
        if not path.with_name(path.name[: -len(SAMPLES_SUFFIX)] + ".json").exists():
            try:
                if os.path.samestat(inode, path.stat()):
                    path.unlink()
                    found.append(path)
            except OSError:
                continue
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


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


def write_result(output_dir: Path, model: str, task: str, result: ResultRecord | dict[str, Any],
                 samples: list[dict] | None = None) -> Path:
    """Write `results/<model>/<task>/<timestamp>.json` (+ `.samples.jsonl` beside it, named in
    the result's `samples_file`): both appear, or neither. What writers killed mid-write left in
    that folder is removed first."""
    if isinstance(result, ResultRecord):
        result = result.to_dict()
    folder = Path(output_dir) / model / task
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(folder, 4096) from None
        raise
    clean_stale(folder)
    if samples is None:
        return write_new(folder, timestamp(), ".json", dumps(result))
    return _write_pair(folder, timestamp(), result, dumps_lines(samples))


def _warn_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def result_problem(data: Any) -> str | None:
    """Why `data` (a parsed result file) cannot be tabulated, or None when it can."""
    if not isinstance(data, dict):
        return "not a JSON object"
    task = data.get("task") if isinstance(data.get("task"), dict) else {}
    checks = [
        (isinstance(data.get("model"), dict) and isinstance(data["model"].get("name"), str), "model.name"),
        (isinstance(task.get("name"), str), "task.name"),
        (isinstance(task.get("template"), dict) and isinstance(task["template"].get("name"), str),
         "task.template.name"),
        (isinstance(task.get("num_fewshot"), int), "task.num_fewshot"),
        (isinstance(data.get("metrics"), dict), "metrics"),
        (isinstance(data.get("created", ""), str), "created"),
    ]
    lacking = [name for ok, name in checks if not ok]
    if lacking:
        return f"no valid {', '.join(lacking)}"
    params = data["model"].get("num_parameters")
    if params is not None and not isinstance(params, int):
        return "model.num_parameters is not a whole number"
    for name, metric in data["metrics"].items():
        if not isinstance(metric, dict):
            return f"metric {name} is not an object"
        for key in ("value", "stderr"):
            if metric.get(key) is not None and not isinstance(metric[key], (int, float)):
                return f"metric {name} has a {key} that is not a number"
    return None


def find_results(folder: Path, warn: Callable[[str], None] | None = _warn_stderr) -> list[dict]:
    """Every result JSON under `folder` (samples logs, temporary files, other JSON and the
    partial results of `--shard` runs skipped: only their merge is a result). Each file that
    cannot be read, or looks like a result but lacks what a table needs, is named to `warn`."""
    results = []
    for path in sorted(Path(folder).rglob("*.json")):
        if path.name.startswith(".tmp-"):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            if warn:
                warn(f"warning: skipped {path}: not readable JSON ({_first_line(exc)})")
            continue
        looks_like_result = isinstance(data, dict) and (
            data.get("schema") == RESULT_SCHEMA or ("schema" not in data and "metrics" in data))
        if not looks_like_result or "shard" in data:
            continue
        problem = result_problem(data)
        if problem:
            if warn:
                warn(f"warning: skipped {path}: incomplete result ({problem})")
            continue
        data["_path"] = str(path)
        results.append(data)
    return results


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__

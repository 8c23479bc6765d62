"""Where a task's rows come from: the Hugging Face hub, or local files (`--data-files`).

Local files: JSON Lines (.jsonl/.json), CSV (.csv), TSV (.tsv), plain text (.txt, one row a
line, for tasks that declare `text_field`), aligned plain-text files for tasks that declare
`parallel` languages (a folder holding `*.en`/`*.fr`, a common prefix, or one of the files), or
for tasks that declare `whole_file` (e.g. enwik8), any file but JSON Lines as one row of text.
Every problem names the file and, where it applies, the line.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.task import HubSource, LocalFormat

Row = dict[str, Any]
TABLE_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv", ".txt": "txt"}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; a missing or unreadable file becomes one line naming it."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise HarnessError(f"data file not found: {path}") from None
    except OSError as exc:
        raise HarnessError(f"cannot read data file {path}: {exc.strerror}") from None


def read_lines(path: Path) -> list[str]:
    """The file's lines (without newlines); errors name the file and the bad line."""
    lines = _read_bytes(path).split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for number, line in enumerate(lines, start=1):
        try:
            out.append(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as exc:
            raise HarnessError(
                f"{path} line {number}: not UTF-8 text (byte {exc.start + 1}); "
                "re-encode the file as UTF-8"
            ) from None
    if not any(line.strip() for line in out):
        raise HarnessError(f"data file is empty: {path}")
    return out


def read_whole(path: Path) -> str:
    """All of a text file, exactly (line ends included)."""
    raw = _read_bytes(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HarnessError(
            f"{path}: not UTF-8 text (byte {exc.start + 1}); re-encode the file as UTF-8"
        ) from None


def load_local(spec: str, local: LocalFormat) -> list[Row]:
    """Rows from `--data-files` (see the module docstring for the formats)."""
    path = Path(spec).expanduser()
    if local.parallel and not (path.is_file() and path.suffix in TABLE_SUFFIXES):
        return _load_parallel(path, local.parallel)
    if path.is_dir():
        raise HarnessError(
            f"--data-files {spec} is a folder; this task reads one .jsonl, .csv or .tsv file"
        )
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if local.whole_file and kind != "jsonl":
        return [{local.text_field or "text": read_whole(path)}]
    if kind is None:
        raise HarnessError(
            f"cannot tell the format of {path}: use a .jsonl, .json, .csv, .tsv or .txt file"
        )
    lines = read_lines(path)
    if kind == "jsonl":
        return _parse_jsonl(path, lines)
    if kind == "txt":
        field = local.text_field or "text"
        return [{field: line} for line in lines if line.strip()]
    return _parse_delimited(path, lines, "," if kind == "csv" else "\t")


def _parse_jsonl(path: Path, lines: list[str]) -> list[Row]:
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HarnessError(f"{path} line {number}: malformed JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise HarnessError(f"{path} line {number}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def _parse_delimited(path: Path, lines: list[str], delimiter: str) -> list[Row]:
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(reader)
        rows = []
        for record in reader:
            if not record:
                continue
            if len(record) != len(header):
                raise HarnessError(
                    f"{path} line {reader.line_num}: {len(record)} fields, the header has {len(header)}"
                )
            rows.append(dict(zip(header, record, strict=True)))
    except csv.Error as exc:
        raise HarnessError(f"{path} line {reader.line_num}: {exc}") from None
    if not rows:
        raise HarnessError(f"data file has a header but no rows: {path}")
    return rows


def _parallel_files(path: Path, langs: tuple[str, ...]) -> list[Path]:
    if path.is_dir():
        found = []
        for lang in langs:
            matches = sorted(p for p in path.iterdir() if p.suffix == f".{lang}" and p.is_file())
            if len(matches) != 1:
                what = "no" if not matches else f"{len(matches)}"
                raise HarnessError(
                    f"{path} holds {what} '*.{lang}' files; it needs exactly one file per language "
                    f"({', '.join('*.' + lg for lg in langs)})"
                )
            found.append(matches[0])
        return found
    prefix = path.with_suffix("") if path.suffix.lstrip(".") in langs else path
    files = [prefix.with_name(f"{prefix.name}.{lang}") for lang in langs]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise HarnessError(
            f"data file not found: {missing[0]} (this task reads aligned files "
            f"{', '.join('*.' + lg for lg in langs)}, or a folder holding them)"
        )
    return files


def _load_parallel(path: Path, langs: tuple[str, ...]) -> list[Row]:
    files = _parallel_files(path, langs)
    columns = [read_lines(f) for f in files]
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        sizes = ", ".join(f"{f.name}: {len(c)}" for f, c in zip(files, columns, strict=True))
        raise HarnessError(f"aligned files have different line counts ({sizes})")
    return [dict(zip(langs, values, strict=True)) for values in zip(*columns, strict=True)]


def load_hub(source: HubSource, split: str | None = None) -> list[Row]:
    """Rows of one split of a hub dataset (only that split's files are fetched; see
    harness/hub_data.py); any failure becomes one actionable line."""
    from harness import hub, hub_data

    split = split or source.split
    label = source.path + (f"/{source.name}" if source.name else "")
    mirrored = hub_data.mirror_root() is not None
    try:
        return hub_data.load_rows(source, split)
    except HarnessError as exc:
        reason = str(exc)
    except Exception as exc:  # noqa: BLE001 - datasets and the hub client raise many types
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    hint = "" if mirrored or hub.is_offline() else "offline? "
    raise HarnessError(
        f"cannot load dataset {label} (split {split}) from the "
        f"{'mirror' if mirrored else 'hub'}: {reason} -- {hint}pass a local copy with --data-files PATH"
    ) from None

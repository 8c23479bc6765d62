"""Published numbers stored as data (`harness/references/<name>.json`, one file per source): printed
beside ours by `harness table --reference NAME`, drawn as reference series by `harness compare`.

A file has a `name`, a `label` (the series' name in plots), `models` (the source's model name ->
`checkpoint`, the released checkpoint's name, and its `parameters`, where points are drawn) and
`entries` (`task`, `metric`, `values`: model -> number, `where`: the table or sentence of the
source that states it). Only numbers a source states are stored; nothing is read off a figure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from harness.errors import HarnessError, did_you_mean
from harness.results import find_results
from harness.table import build_table, render

REFERENCES_DIR = Path(__file__).resolve().parent / "references"


def reference_names() -> list[str]:
    return sorted(p.stem for p in REFERENCES_DIR.glob("*.json"))


def load_reference(name: str) -> dict:
    path = REFERENCES_DIR / f"{name}.json"
    if not path.is_file():
        hint = did_you_mean(name, reference_names())
        raise HarnessError(f"unknown reference '{name}'.{hint} References: {', '.join(reference_names())}")
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class RefPoint:
    """One published number, placed at its model's parameter count."""

    source: str  # the series label, e.g. "GPT-2 paper (Radford et al., 2019)"
    task: str
    metric: str
    model: str  # the released checkpoint's name, e.g. "gpt2-xl"
    parameters: int
    value: float
    where: str


@cache
def all_reference_points() -> tuple[RefPoint, ...]:
    """Every published number of every reference file."""
    points: list[RefPoint] = []
    for name in reference_names():
        data = load_reference(name)
        label = data.get("label", name)
        for entry in data["entries"]:
            for model, value in entry["values"].items():
                size = data["models"][model]
                points.append(RefPoint(label, entry["task"], entry["metric"], size["checkpoint"],
                                       int(size["parameters"]), float(value), entry.get("where", "")))
    return tuple(points)


def reference_points(task: str, metric: str) -> list[RefPoint]:
    """The published numbers for `task` / `metric`, smallest model first."""
    points = [p for p in all_reference_points() if p.task == task and p.metric == metric]
    return sorted(points, key=lambda p: p.parameters)


def with_reference(header: list[str], rows: list[list[str]],
                   reference: dict) -> tuple[list[str], list[list[str]]]:
    """One column per model of the reference, filled where (task, metric) has a published value;
    the reference's rows that no result has are added below, so every published number shows."""
    models = list(reference["models"])
    values = {(e["task"], e["metric"]): e["values"] for e in reference["entries"]}
    seen = set()
    out = []
    for row in rows:
        key = (row[0], row[3])
        seen.add(key)
        published = values.get(key, {})
        out.append([*row, *(_number(published.get(m)) for m in models)])
    blanks = [""] * (len(header) - 4)
    for entry in reference["entries"]:
        key = (entry["task"], entry["metric"])
        if key not in seen:
            seen.add(key)
            out.append([entry["task"], "", "", entry["metric"], *blanks,
                        *(_number(entry["values"].get(m)) for m in models)])
    return [*header, *(f"{reference['name']} {m}" for m in models)], out


def _number(value) -> str:
    return "" if value is None else f"{value:g}"


def table_with_reference(folder: Path, name: str, fmt: str = "markdown") -> str:
    reference = load_reference(name)
    results = find_results(Path(folder)) if Path(folder).is_dir() else []
    header, rows = build_table(results) if results else (["task", "template", "shots", "metric"], [])
    header, rows = with_reference(header, rows, reference)
    return render(header, rows, fmt)

"""Published numbers to draw beside ours (e.g. the GPT-2 paper), stored as JSON data files.

A reference file lists `models` (name -> parameter count of the released checkpoint) and
`results` (task, metric, model, value, where in the source it is stated). Only numbers a source
states are stored; a task without one simply gets no reference series.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REFERENCE_DIR = Path(__file__).with_name("reference")


@dataclass(frozen=True)
class RefPoint:
    """One published number, placed at its model's parameter count."""

    source: str  # the series label, e.g. "GPT-2 paper (Radford et al., 2019)"
    task: str
    metric: str
    model: str
    parameters: int
    value: float
    where: str


@cache
def load_reference(folder: str = str(REFERENCE_DIR)) -> tuple[RefPoint, ...]:
    """Every published number in the folder's JSON files."""
    points: list[RefPoint] = []
    for path in sorted(Path(folder).glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        label = data.get("label", path.stem)
        sizes = {name: int(m["parameters"]) for name, m in data.get("models", {}).items()}
        for r in data.get("results", []):
            if r["model"] in sizes:
                points.append(RefPoint(label, r["task"], r["metric"], r["model"], sizes[r["model"]],
                                       float(r["value"]), r.get("where", "")))
    return tuple(points)


def reference_points(task: str, metric: str, folder: Path = REFERENCE_DIR) -> list[RefPoint]:
    """The stored published numbers for `task` / `metric`, smallest model first."""
    points = [p for p in load_reference(str(folder)) if p.task == task and p.metric == metric]
    return sorted(points, key=lambda p: p.parameters)

"""Write every comparison output for a results folder."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness.compare.pairs import adjacent_tests
from harness.compare.plot import Series, chance_level, scaling_plot
from harness.compare.report_html import render_report
from harness.compare.runs import load_runs
from harness.compare.tables import (
    LEGEND,
    score_records,
    score_table,
    sensitivity_rows,
    significance_rows,
)
from harness.table import render

SCORES = "Scores (value ± stderr; models by parameter count)"
SIGNIFICANCE = "Adjacent sizes: is the larger model better?"
SENSITIVITY = "Prompt sensitivity (mean ± std [min, max] across templates)"


@dataclass
class CompareOutput:
    """What `compare` wrote, and the plotted points (task -> metric -> series -> points)."""

    markdown: str
    files: list[Path] = field(default_factory=list)
    points: dict[str, dict[str, Series]] = field(default_factory=dict)
    chance: dict[str, float] = field(default_factory=dict)  # task -> chance accuracy (multiple choice)


def _write(path: Path, data: str | bytes) -> Path:
    """Replace `path` atomically (reports are derived files, rewritten on each compare)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def compare(folder: Path, metrics: list[str] | None = None, out: Path | None = None,
            max_examples: int = 1000) -> CompareOutput:
    """Tables (Markdown + CSV), one scaling plot per task, and `report.html` under `out`."""
    runs = load_runs(Path(folder), metrics)
    out = Path(out) if out is not None else Path(folder) / "compare"
    tests = adjacent_tests(runs)
    tables = {SCORES: score_table(runs, tests), SIGNIFICANCE: significance_rows(tests),
              SENSITIVITY: sensitivity_rows(runs)}
    notes = {SCORES: LEGEND}
    # the CSV files hold numbers in their own columns (the Markdown's cells are for reading)
    csvs = {SCORES: score_records(runs, tests), SIGNIFICANCE: significance_rows(tests, numeric=True),
            SENSITIVITY: tables[SENSITIVITY]}
    result = CompareOutput("")
    md = []
    for (title, (header, rows)), stem in zip(tables.items(), ("table", "significance", "sensitivity"),
                                              strict=True):
        if not rows:
            continue
        md.append(f"## {title}\n\n{render(header, rows)}" + (f"\n{notes[title]}\n" if title in notes else ""))
        result.files.append(_write(out / f"{stem}.csv", render(*csvs[title], "csv")))
    result.markdown = "\n".join(md)
    result.files.append(_write(out / "table.md", result.markdown))
    plots: dict[str, Path] = {}
    for task in runs.tasks():
        path = out / "plots" / f"{_slug(task)}.png"
        tmp = path.with_name(f".tmp-{path.name}")
        points = scaling_plot(runs, task, tmp)
        if points:
            os.replace(tmp, path)
            plots[task] = path
            result.points[task] = points
            chance = chance_level(runs, task)
            if chance is not None:
                result.chance[task] = chance
            result.files.append(path)
    result.files.append(_write(out / "report.html", render_report(runs, tables, plots, notes, max_examples)))
    return result

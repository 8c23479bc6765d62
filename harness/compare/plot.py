"""Scaling plots: each metric of a task against parameter count (log axis), one line per model
family (`model_type`, e.g. gpt2 or llama: a line through different families would suggest a trend
that is not there) and template / shots setting, error bars from the standard error, a chance
line for multiple-choice accuracy, and published numbers for the same task beside ours."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from harness.compare.runs import Runs  # noqa: E402
from harness.references import reference_points  # noqa: E402


@dataclass(frozen=True)
class Point:
    model: str
    parameters: int
    value: float
    stderr: float | None


Series = dict[str, list[Point]]  # label -> points, smallest model first


CHANCE_METRICS = ("acc", "acc_norm")
MULTIPLE_CHOICE_KINDS = ("multiple_choice", "multiple_choice_partial")
_SIZE_SUFFIX = re.compile(r"[-_](small|medium|large|xl|\d+(\.\d+)?[kmb])$", re.IGNORECASE)


def family(result: dict) -> str:
    """A model's family: its recorded `model_type` (gpt2, llama, ...); `tiny` (random weights)
    is its own; older results without one: the name less a size suffix (gpt2-medium -> gpt2)."""
    model = result["model"]
    if model.get("name") == "tiny":
        return "tiny (random GPT-2)"
    return model.get("model_type") or _SIZE_SUFFIX.sub("", str(model.get("name", "")))


def chance_level(runs: Runs, task: str) -> float | None:
    """Expected accuracy of a uniform guess (mean of 1 / number of choices over the logged
    examples) for a multiple-choice task; None for other tasks or without samples."""
    for key in (k for k in runs.keys() if k.task == task):
        for model in runs.models_for(key):
            if runs.result(model, key)["task"].get("kind") not in MULTIPLE_CHOICE_KINDS:
                return None
            counts = [len(s.get("choice_logprobs") or []) for s in runs.samples(model, key) or []]
            if counts and all(counts):
                return sum(1 / c for c in counts) / len(counts)
    return None


def task_points(runs: Runs, task: str) -> dict[str, Series]:
    """metric -> series label -> points, for every result of `task` with a parameter count."""
    keys = [k for k in runs.keys() if k.task == task]
    several = len({(k.template, k.shots) for k in keys}) > 1
    panels: dict[str, Series] = {}
    for key in keys:
        setting = f", {key.template}, {key.shots}-shot" if several else ""
        for metric in runs.metrics(key):
            for model in runs.models_for(key):
                result = runs.result(model, key)
                entry = result["metrics"].get(metric)
                params = result["model"].get("num_parameters")
                if not entry or entry.get("value") is None or not params:
                    continue
                stderr = entry.get("stderr")
                point = Point(model, int(params), float(entry["value"]),
                              float(stderr) if stderr is not None and math.isfinite(stderr) else None)
                backend = f" [{result['model'].get('backend')}]" if model.endswith("]") else ""
                label = f"{family(result)}{backend}{setting}"
                panels.setdefault(metric, {}).setdefault(label, []).append(point)
    for metric, series in panels.items():
        for label in series:
            series[label].sort(key=lambda p: p.parameters)
        for ref in reference_points(task, metric):
            series.setdefault(ref.source, []).append(Point(ref.model, ref.parameters, ref.value, None))
    return panels


def _human(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def _minor_label(v: float) -> str:
    """Label only the 2x, 3x and 5x minor ticks (every one crowds the axis)."""
    if v <= 0:
        return ""
    mantissa = round(v / 10 ** math.floor(math.log10(v) + 1e-9))
    return _human(v) if mantissa in (2, 3, 5) else ""


def _format_axis(ax, xs: list[int]) -> None:
    """Parameter counts as 124M / 1.56B; minor labels only when the range is narrow."""
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _human(v)))
    wide = bool(xs) and max(xs) / max(1, min(xs)) > 30
    ax.xaxis.set_minor_formatter(NullFormatter() if wide else FuncFormatter(lambda v, _: _minor_label(v)))


def scaling_plot(runs: Runs, task: str, path: Path) -> dict[str, Series]:
    """Write `path` (PNG) for `task`; return the plotted points (metric -> series -> points)."""
    panels = task_points(runs, task)
    if not panels:
        return panels
    n = len(panels)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), squeeze=False)
    chance = chance_level(runs, task)
    try:
        for ax, (metric, series) in zip(axes.flat, panels.items(), strict=False):
            refs = {r.source for r in reference_points(task, metric)}
            if chance is not None and metric in CHANCE_METRICS:
                ax.axhline(chance, color="grey", linestyle=":", linewidth=1.5, label=f"chance ({chance:.3g})")
            for label, points in series.items():
                xs = [p.parameters for p in points]
                ys = [p.value for p in points]
                if label in refs:
                    ax.plot(xs, ys, linestyle="--", marker="*", markersize=13, color="black", label=label)
                    for p in points:
                        ax.annotate(p.model, (p.parameters, p.value), textcoords="offset points",
                                    xytext=(-10, -14), fontsize=7, ha="right")
                    continue
                errs = [p.stderr or 0.0 for p in points]
                ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=4, linewidth=1.8, label=label)
                for p in points:
                    ax.annotate(p.model, (p.parameters, p.value), textcoords="offset points",
                                xytext=(4, 6), fontsize=7, alpha=0.8)
            ax.set_xscale("log")
            ax.set_xlabel("parameters (log scale)")
            ax.set_ylabel(metric)
            ax.set_title(f"{task}: {metric}")
            ax.grid(True, which="major", alpha=0.35)
            ax.grid(True, which="minor", alpha=0.12)
            _format_axis(ax, [p.parameters for pts in series.values() for p in pts])
            ax.legend(fontsize=8)
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, format="png")
    finally:
        plt.close(fig)
    return panels

"""One table of results: rows are task × metric, columns are models ordered by size."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from harness.errors import HarnessError
from harness.results import find_results


def _cell(metric: dict) -> str:
    value, stderr = metric.get("value"), metric.get("stderr")
    if value is None:
        return ""
    return f"{_number(value)} ± {_number(stderr)}" if stderr is not None else _number(value)


def _number(value: float) -> str:
    """Four decimals for ordinary scores; significant digits for huge values (perplexities)."""
    if value != value or abs(value) < 1e4:  # NaN, or an ordinary score
        return f"{value:.4f}"
    return f"{value:.1f}" if abs(value) < 1e6 else f"{value:.4g}"


def model_labels(results: list[dict]) -> dict[int, str]:
    """Each result's model column: the model's name, with `[backend]` added where the same model
    was run on several backends (so that no backend's result hides another's)."""
    backends: dict[str, set] = {}
    for r in results:
        backends.setdefault(r["model"]["name"], set()).add(r["model"].get("backend"))
    return {id(r): (f"{r['model']['name']} [{r['model'].get('backend')}]"
                    if len(backends[r["model"]["name"]]) > 1 else r["model"]["name"]) for r in results}


def latest_by_key(results: list[dict]) -> dict[tuple, dict]:
    """The newest result for each (model, task, template, num_fewshot); the model is its column
    label (`model_labels`: the backend is part of it when a model ran on several)."""
    labels = model_labels(results)
    latest: dict[tuple, dict] = {}
    for r in sorted(results, key=lambda r: r.get("created", "")):
        key = (labels[id(r)], r["task"]["name"], r["task"]["template"]["name"],
               r["task"]["num_fewshot"])
        latest[key] = r
    return latest


N_ROW = "n"  # the metric column of each setting's row of example counts


def build_table(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    latest = latest_by_key(results)
    sizes: dict[str, int] = {}
    for (model, *_), r in latest.items():
        sizes[model] = r["model"].get("num_parameters") or 0
    models = sorted(sizes, key=lambda m: (sizes[m], m))
    row_keys = sorted({(task, tpl, k) for (_, task, tpl, k) in latest})
    header = ["task", "template", "shots", "metric", *models]
    rows = []
    for task, tpl, k in row_keys:
        metric_names: list[str] = []
        for model in models:
            r = latest.get((model, task, tpl, k))
            for name in (r or {}).get("metrics", {}):
                if name not in metric_names:
                    metric_names.append(name)
        for name in metric_names:
            cells = []
            for model in models:
                r = latest.get((model, task, tpl, k))
                cells.append(_cell(r["metrics"][name]) if r and name in r["metrics"] else "")
            rows.append([task, tpl, str(k), name, *cells])
        counts = [latest.get((model, task, tpl, k), {}).get("n_examples") for model in models]
        rows.append([task, tpl, str(k), N_ROW, *("" if c is None else str(c) for c in counts)])
    return header, rows


def render(header: list[str], rows: list[list[str]], fmt: str = "markdown") -> str:
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return out.getvalue()
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)]) + "\n"


def table_for(folder: Path, fmt: str = "markdown") -> str:
    if not Path(folder).is_dir():
        raise HarnessError(f"results folder not found: {folder}")
    results = find_results(Path(folder))
    if not results:
        raise HarnessError(f"no readable result files under {folder} (any skipped are named above); "
                           f"run: harness run --output-dir {folder}")
    header, rows = build_table(results)
    return render(header, rows, fmt)

"""Prompt sensitivity: how much a score moves when only the template's wording changes."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from harness.table import build_table, latest_by_key


@dataclass(frozen=True)
class Spread:
    """One model's metric across the templates of one task (same shots)."""

    values: dict[str, float]  # template -> value

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values.values())

    @property
    def std(self) -> float:
        """Sample standard deviation (n - 1) across templates."""
        return statistics.stdev(self.values.values()) if len(self.values) > 1 else 0.0

    @property
    def min(self) -> float:
        return min(self.values.values())

    @property
    def max(self) -> float:
        return max(self.values.values())

    def cell(self) -> str:
        return f"{self.mean:.4f} ± {self.std:.4f} [{self.min:.4f}, {self.max:.4f}]"


def spreads(results: list[dict], metrics: list[str] | None = None) -> dict[tuple, dict[str, Spread]]:
    """(task, shots, metric) -> model -> Spread, for tasks run with two or more templates."""
    grouped: dict[tuple, dict[str, dict[str, float]]] = {}
    for (model, task, template, shots), r in latest_by_key(results).items():
        for name, entry in r["metrics"].items():
            if entry.get("value") is None or (metrics and name not in metrics):
                continue
            grouped.setdefault((task, shots, name), {}).setdefault(model, {})[template] = entry["value"]
    out: dict[tuple, dict[str, Spread]] = {}
    for key, per_model in sorted(grouped.items()):
        if any(len(values) > 1 for values in per_model.values()):
            out[key] = {m: Spread(v) for m, v in per_model.items()}
    return out


def sensitivity_table(results: list[dict], metrics: list[str] | None = None
                      ) -> tuple[list[str], list[list[str]]]:
    """Rows task × shots × metric; each model's cell is `mean ± std [min, max]` over templates."""
    models = build_table(results)[0][4:]
    header = ["task", "shots", "metric", "templates", *models]
    rows = []
    for (task, shots, metric), per_model in spreads(results, metrics).items():
        templates = sorted({t for s in per_model.values() for t in s.values})
        cells = [per_model[m].cell() if m in per_model else "" for m in models]
        rows.append([task, str(shots), metric, str(len(templates)), *cells])
    return header, rows

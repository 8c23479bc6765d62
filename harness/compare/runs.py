"""The results a comparison is made of: newest result per (model, task, template, shots),
models ordered by parameter count, and each run's per-example samples when it logged them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.results import find_results
from harness.table import build_table, latest_by_key


@dataclass(frozen=True)
class RowKey:
    """One evaluated setting: a task under one template and number of shots."""

    task: str
    template: str
    shots: int

    @property
    def label(self) -> str:
        return f"{self.task} · {self.template} · {self.shots}-shot"


@dataclass
class Runs:
    """Every newest result under a folder, indexed for comparison."""

    folder: Path
    results: list[dict]
    latest: dict[tuple, dict]      # (model, task, template, shots) -> result
    models: list[str]              # ordered by parameter count (as `harness table`)
    metric_filter: list[str] | None = None
    _samples: dict[tuple, list[dict] | None] = field(default_factory=dict)

    def parameters(self, model: str) -> int | None:
        for (name, *_), r in self.latest.items():
            if name == model:
                return r["model"].get("num_parameters")
        return None

    def keys(self) -> list[RowKey]:
        return sorted({RowKey(t, tpl, k) for (_, t, tpl, k) in self.latest},
                      key=lambda r: (r.task, r.template, r.shots))

    def tasks(self) -> list[str]:
        return sorted({k.task for k in self.keys()})

    def result(self, model: str, key: RowKey) -> dict | None:
        return self.latest.get((model, key.task, key.template, key.shots))

    def models_for(self, key: RowKey) -> list[str]:
        return [m for m in self.models if self.result(m, key) is not None]

    def metrics(self, key: RowKey) -> list[str]:
        names: list[str] = []
        for model in self.models_for(key):
            for name in self.result(model, key)["metrics"]:
                if name not in names and (self.metric_filter is None or name in self.metric_filter):
                    names.append(name)
        return names

    def samples(self, model: str, key: RowKey) -> list[dict] | None:
        """The run's samples log (None when it was not run with --log-samples)."""
        cache_key = (model, key)
        if cache_key not in self._samples:
            self._samples[cache_key] = _read_samples(self.result(model, key))
        return self._samples[cache_key]


def samples_path(result: dict) -> Path | None:
    path = Path(result.get("_path", ""))
    if not result.get("_path"):
        return None
    name = result.get("samples_file") or f"{path.stem}.samples.jsonl"
    candidate = path.with_name(name)
    return candidate if candidate.is_file() else None


def _read_samples(result: dict | None) -> list[dict] | None:
    path = samples_path(result) if result else None
    if path is None:
        return None
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise HarnessError(f"{path} line {number} is not JSON ({exc.msg}); "
                                       "rerun with --log-samples to rewrite it") from None
    return rows


def load_runs(folder: Path, metrics: list[str] | None = None) -> Runs:
    """Read every result under `folder`; fail with a clear message when there is nothing to compare."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HarnessError(f"results folder not found: {folder}; pass the --output-dir of harness run")
    results = find_results(folder)
    if not results:
        raise HarnessError(f"no readable result files under {folder} (any skipped are named above); "
                           f"run: harness run --output-dir {folder}")
    header, _ = build_table(results)
    runs = Runs(folder, results, latest_by_key(results), header[4:])
    if metrics:
        known = sorted({name for r in runs.latest.values() for name in r["metrics"]})
        unknown = [m for m in metrics if m not in known]
        if unknown:
            raise HarnessError(f"no results have metric(s) {', '.join(unknown)}; "
                               f"metrics found: {', '.join(known)}")
        runs.metric_filter = list(metrics)
    return runs

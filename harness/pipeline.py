"""`harness run`: every requested model × task, one after another, each result written at once."""

from __future__ import annotations

import datetime as dt
import gc
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from harness import models
from harness.errors import HarnessError
from harness.registry import discover
from harness.results import SCHEMA_VERSION, package_versions, write_result
from harness.runner import RunSettings, TaskRun, evaluate, template_for
from harness.table import build_table, render


@dataclass
class RunRequest:
    """All options of one `harness run` invocation."""

    tasks: list[str]
    models: list[str]
    settings: RunSettings = field(default_factory=RunSettings)
    backend: str = "mindnlp"
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int = 8
    output_dir: Path = Path("results")
    log_samples: bool = False
    progress: bool = True


def _progress_factory(enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    def make(total: int, desc: str):
        return tqdm(total=total, desc=desc, unit="req", file=sys.stderr, dynamic_ncols=True,
                    mininterval=1.0)

    return make


def result_record(run: TaskRun, lm: models.LanguageModel, request: RunRequest) -> dict[str, Any]:
    spec = getattr(lm, "spec", None)
    return {
        "schema": "harness.result", "schema_version": SCHEMA_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(),
        "task": {
            "name": run.task.name, "version": run.task.version, "kind": run.task.adapter.kind,
            "template": {"name": run.template.name, "sha256": run.template.sha256},
            "num_fewshot": request.settings.num_fewshot,
        },
        "model": {
            "name": lm.name, "source": spec.source if spec else lm.name,
            "backend": lm.backend.name, "device": request.device, "dtype": request.dtype,
            "num_parameters": lm.backend.num_parameters(), "max_length": lm.max_length,
        },
        "metrics": run.metrics,
        "n_examples": run.n_examples,
        "truncated_inputs": run.truncated,
        "timing": {
            "wall_seconds": round(run.wall_seconds, 3), "tokens": run.tokens,
            "tokens_per_second": round(run.tokens / run.wall_seconds, 2) if run.wall_seconds else None,
            "examples_per_second": round(run.n_examples / run.wall_seconds, 3) if run.wall_seconds else None,
        },
        "config": {
            **asdict(request.settings), "tasks": request.tasks, "models": request.models,
            "backend": request.backend, "device": request.device, "dtype": request.dtype,
            "batch_size": request.batch_size, "log_samples": request.log_samples,
        },
        "packages": package_versions(),
    }


def run(request: RunRequest, echo=click.echo) -> list[Path]:
    """Evaluate every model on every task; return the result files written."""
    if request.settings.limit is not None and request.settings.limit < 1:
        raise HarnessError(f"--limit must be a positive number of examples, got {request.settings.limit}")
    if request.batch_size < 1:
        raise HarnessError(f"--batch-size must be at least 1, got {request.batch_size}")
    if request.settings.max_new_tokens is not None and request.settings.max_new_tokens < 1:
        raise HarnessError(f"--max-new-tokens must be at least 1, got {request.settings.max_new_tokens}")
    if request.settings.num_fewshot < 0:
        raise HarnessError(f"--num-fewshot must be 0 or more, got {request.settings.num_fewshot}")
    registry = discover()
    tasks = [registry.get(name) for name in request.tasks]
    for task in tasks:  # fail on a bad template before any model is loaded
        template_for(task, request.settings.template)
    written: list[Path] = []
    records: list[dict] = []
    failures: list[str] = []
    for model_name in request.models:
        lm = models.load(model_name, request.backend, request.device, request.dtype,
                         request.batch_size)
        for task in tasks:
            try:
                task_run = evaluate(lm, task, request.settings, _progress_factory(request.progress))
            except HarnessError as exc:
                if len(tasks) == 1:
                    raise
                failures.append(f"{task.name}: {exc}")
                echo(f"error: {task.name} on {lm.name}: {exc}", err=True)
                continue
            record = result_record(task_run, lm, request)
            path = write_result(request.output_dir, lm.name, task.name, record,
                                task_run.samples if request.log_samples else None)
            records.append(record)
            written.append(path)
            echo(f"wrote {path}", err=True)
        lm.backend.release()
        del lm
        gc.collect()
    if records:
        header, rows = build_table(records)
        echo(render(header, rows))
    if failures:
        raise HarnessError(f"{len(failures)} task run(s) failed: " + "; ".join(failures))
    return written

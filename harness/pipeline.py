"""`harness run`: every requested model × task, one after another, each result written at once."""

from __future__ import annotations

import dataclasses
import gc
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from harness import distributed, engines, models
from harness import workers as worker_pool
from harness.cache import default_cache_file
from harness.errors import HarnessError
from harness.merge import gather, partial_label
from harness.progress import duration
from harness.registry import discover
from harness.results import DiskFull, ResultRecord, clean_task_folder, package_versions, write_result
from harness.run_state import RunState
from harness.runner import RunSettings, TaskRun, evaluate, load_documents, template_names
from harness.sensitivity import sensitivity_table
from harness.shard import Shard, write_partial
from harness.suites import check_data_files, data_files_for
from harness.table import build_table, render


@dataclass
class RunRequest:
    """All options of one `harness run` invocation."""

    tasks: list[str]
    models: list[str]
    settings: RunSettings = field(default_factory=RunSettings)
    backend: str = "auto"  # auto: native for GPT-2 checkpoints, mindnlp otherwise
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int | str = 8  # or "auto"
    output_dir: Path = Path("results")
    log_samples: bool = False
    progress: bool = True
    cache: bool = True  # the response cache (harness.cache); False: --no-cache
    cache_file: Path | None = None  # default: harness.cache.default_cache_file(output_dir)
    debug: bool = False
    shard: Shard | None = None  # --shard I/N: evaluate only that share and write a partial result
    extra_tasks: list = field(default_factory=list)  # tasks not from plugins (--task-file, --include-path)
    output_format: str = "harness"  # "harness", "lm-eval" (lm-eval's result files) or "both"
    add_bos_token: bool | None = None  # None: as the tokenizer does (--add-bos-token/--no-add-bos-token)
    workers: int | str = 1  # --workers N|auto: N child processes, one shard each (harness.workers)
    child_args: list[str] | None = None  # the `harness run` options a worker is started with
    root_args: list[str] = field(default_factory=list)  # options before `run` (--debug)


def _progress_factory(enabled: bool):
    if not enabled:
        return None
    from harness.progress import ExampleProgress

    def make(requests: int, desc: str, examples: int | None = None):
        return ExampleProgress(requests, requests if examples is None else examples, desc, sys.stderr)

    return make


def _model_type(spec: Any) -> str | None:
    """The checkpoint's `model_type` (gpt2, llama, ...): compare draws one line per family."""
    if spec is None:
        return None
    from harness.models.checkpoint import read_config

    try:
        return read_config(spec).get("model_type")
    except HarnessError:
        return None


def _rate(run: TaskRun) -> str:
    return f"{run.n_examples / run.wall_seconds:.2f}" if run.wall_seconds else "?"


def result_record(run: TaskRun, lm: models.LanguageModel, request: RunRequest,
                  cache: dict[str, Any] | None = None, notes: list[str] | None = None) -> ResultRecord:
    """The result of one task run (`cache`, `notes`: the run state's account of it)."""
    spec = lm.spec
    return ResultRecord(
        task={
            "name": run.task.name, "version": run.task.version, "kind": run.task.adapter.kind,
            "template": {"name": run.template.name, "sha256": run.template.sha256},
            "num_fewshot": request.settings.num_fewshot,
        },
        model={
            "name": lm.name, "source": spec.source if spec else lm.name,
            "backend": lm.backend.name, "model_type": _model_type(spec),
            "device": request.device, "dtype": request.dtype,
            "num_parameters": lm.backend.num_parameters(), "max_length": lm.max_length,
            "add_bos_token": lm.add_bos_token,
        },
        metrics=run.metrics,
        n_examples=run.n_examples,
        truncated_inputs=run.truncated,
        timing={
            "wall_seconds": round(run.wall_seconds, 3), "tokens": run.tokens,
            "tokens_per_second": round(run.tokens / run.wall_seconds, 2) if run.wall_seconds else None,
            "examples_per_second": round(run.n_examples / run.wall_seconds, 3) if run.wall_seconds else None,
        },
        config={
            **asdict(request.settings), "tasks": request.tasks, "models": request.models,
            "backend": request.backend, "device": request.device, "dtype": request.dtype,
            "batch_size": request.batch_size, "log_samples": request.log_samples,
            "add_bos_token": request.add_bos_token,
        },
        packages=package_versions(),
        cache=cache,
        notes=notes,
    )


def run(request: RunRequest, echo=click.echo) -> list[Path]:
    """Evaluate every model on every task; return the result files written."""
    if distributed.role() == "MS_SCHED":  # msrun runs the command once more as its scheduler
        distributed.serve_scheduler()
        return []
    cache_file = (request.cache_file or default_cache_file(request.output_dir)) if request.cache else None
    run_state = RunState(cache_file, echo, request.debug)
    try:
        with run_state.stop.installed():
            return _run(request, echo, run_state)
    except KeyboardInterrupt:
        raise run_state.interrupted() from None
    finally:
        run_state.close()


def _run(request: RunRequest, echo, run_state: RunState) -> list[Path]:
    if request.settings.limit is not None and request.settings.limit < 1:
        raise HarnessError(f"--limit must be a positive number of examples, got {request.settings.limit}")
    if request.batch_size != "auto" and int(request.batch_size) < 1:
        raise HarnessError(f"--batch-size must be at least 1, got {request.batch_size}")
    if request.settings.max_new_tokens is not None and request.settings.max_new_tokens < 1:
        raise HarnessError(f"--max-new-tokens must be at least 1, got {request.settings.max_new_tokens}")
    if request.settings.num_fewshot < 0:
        raise HarnessError(f"--num-fewshot must be 0 or more, got {request.settings.num_fewshot}")
    registry = discover()
    registry.tasks.update({task.name: task for task in request.extra_tasks})
    if request.output_format != "harness" and request.shard is not None:
        raise HarnessError("--output-format lm-eval does not apply to --shard runs; write the merged result "
                           "with harness merge")
    tasks = run_state.resolve_tasks(registry, request.tasks)
    # every (task, template) to run; a bad template fails before any model is loaded (in a
    # multi-task run, only its task: the others still run, as with bad data)
    plan, failed = [], 0
    for task in tasks:
        try:
            plan += [(task, name) for name in template_names(task, request.settings.template)]
        except HarnessError as exc:
            run_state.fail(task.name, None, exc, single=len(tasks) == 1)
            failed += 1
    if not plan:
        run_state.finish()
    tasks = [task for task in tasks if any(planned is task for planned, _ in plan)]
    single = len(plan) * len(request.models) == 1 and not failed
    check_data_files(request.settings.data_files, [t.name for t in tasks])
    # models, then data, are checked before any model is loaded (a missing folder, bad data: seconds)
    backends = [models.backend_for(name, request.backend) for name in request.models]
    documents = run_state.preflight(tasks, lambda task: load_documents(task, dataclasses.replace(
        request.settings, data_files=data_files_for(request.settings.data_files, task.name))), single)
    workers = worker_pool.count_for(request, documents)
    if workers > 1:  # the children load the models; this process merges what they write
        cache_file = run_state.cache_file
        written, records = worker_pool.run_parallel(
            workers, worker_pool.threads_per_worker(worker_pool.usable_cores(), workers),
            request.child_args or [], request.root_args, request.output_dir, cache_file,
            request.log_samples, {t.name: t for t in tasks}, run_state.stop, echo,
            lambda line: echo(line, err=True) if request.progress else None)
        _closing_tables(records, echo)
        run_state.finish()
        return written
    written: list[Path] = []
    records: list[dict] = []  # every result of this run, as written (for the closing tables)
    engines.activate_all(backends, request.device)  # mindnlp first, whatever the order of the models
    cluster = distributed.join(backends, request.device, request.shard) if distributed.role() else None
    shard = cluster.shard if cluster else request.shard

    def note(line: str) -> None:  # progress lines on stderr; --no-progress hides them with the bars
        if request.progress:
            echo(line, err=True)

    for model_name, model_backend in zip(request.models, backends, strict=True):
        note(f"loading {model_name} ({model_backend} on {request.device}) ...")
        started = time.perf_counter()
        with distributed.replica_load(cluster):  # each msrun rank loads its own whole copy
            lm = models.load(model_name, model_backend, request.device, request.dtype,
                             request.batch_size, add_bos_token=request.add_bos_token)
        note(f"loaded {lm.name} in {duration(time.perf_counter() - started)}")
        finished: list[tuple[TaskRun, dict]] = []  # for --output-format lm-eval
        try:
            cache_layer = run_state.add_cache_layer(lm, request.device)
            for task, template in plan:
                if task.name not in documents:  # its data failed to load (reported already)
                    continue
                clean_task_folder(request.output_dir, lm.name, task.name)  # litter of killed writers
                settings = dataclasses.replace(request.settings, template=template)
                label = task.name if len(plan) == len(tasks) else f"{task.name} ({template})"
                before = run_state.counters(cache_layer)
                try:
                    task_run = evaluate(lm, task, settings, _progress_factory(request.progress),
                                        documents=documents[task.name], shard=shard, cache=cache_layer)
                except Exception as exc:  # noqa: BLE001 - a plugin may raise anything; others go on
                    if cluster:  # rank 0 must not wait for this rank's share
                        cluster.send_error(partial_label(lm.name, task.name, template), exc)
                    run_state.fail(label, lm.name, exc, single)
                    continue
                note(f"{lm.name} {label}: {task_run.n_examples} examples in "
                     f"{duration(task_run.wall_seconds)} ({_rate(task_run)} examples/s)")
                cache, notes = run_state.cache_and_notes(cache_layer, before, label, task_run.truncated)
                record = result_record(task_run, lm, request, cache, notes)
                if shard is not None:  # a partial result; under msrun rank 0 also merges them all
                    launch = {"launch": cluster.launch, "device": cluster.device} if cluster else None
                    try:
                        path, record = write_partial(record, task_run, lm, request.output_dir,
                                                     request.log_samples, launch, echo)
                        gathered = cluster and gather(cluster, record, task, request.output_dir, echo)
                    except HarnessError as exc:
                        run_state.fail(label, lm.name, exc, single)
                        continue
                    written.append(path)
                    if gathered:
                        written.append(gathered[0])
                        records.append(gathered[1].to_dict())
                    continue
                records.append(record.to_dict())
                finished.append((task_run, record.to_dict()))
                if request.output_format == "lm-eval":
                    continue
                try:
                    path = write_result(request.output_dir, lm.name, task.name, record,
                                        task_run.samples if request.log_samples else None)
                except DiskFull as exc:
                    raise HarnessError(f"{exc}; {run_state.kept_answers()}") from None
                written.append(path)
                echo(f"wrote {path}", err=True)
            if finished and request.output_format != "harness":
                from harness.lm_eval_results import write_lm_eval

                for path in write_lm_eval(request.output_dir, lm, finished, request.log_samples):
                    written.append(path)
                    echo(f"wrote {path}", err=True)
        finally:  # free this model before the next one is loaded, even after an error
            lm.backend.release()
            del lm
            gc.collect()
    _closing_tables(records, echo)
    run_state.finish()
    return written


def _closing_tables(records: list[dict], echo) -> None:
    if records:
        header, rows = build_table(records)
        echo(render(header, rows))
        header, rows = sensitivity_table(records)
        if rows:
            echo("Prompt sensitivity (mean ± std [min, max] across templates):")
            echo(render(header, rows))

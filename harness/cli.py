"""Command line: `harness run`, `harness tasks`, `harness table`."""

from __future__ import annotations

import signal
import sys
import traceback
from pathlib import Path

import click

from harness.errors import HarnessError


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _batch_size(value: str) -> int | str:
    if str(value).strip().lower() == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is neither a whole number nor 'auto'",
                                 param_hint="'--batch-size'") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Zero-shot evaluation of GPT-2-family language models on MindSpore."""
    ctx.obj = {"debug": debug}


@cli.command("run")
@click.option("--task", "task", default="translation-en-fr", show_default=True,
              help="Task name(s), comma-separated.")
@click.option("--suite", default=None,
              help="Run a suite's tasks (e.g. gpt2-paper, standard-mc; see: harness tasks), plus any "
              "--task given.")
@click.option("--model", "model", default="gpt2", show_default=True,
              help="Hub id, local checkpoint folder, or 'tiny'; comma-separated for several.")
@click.option("--backend", type=click.Choice(["auto", "native", "mindnlp", "torch"]), default="auto",
              show_default=True, help="Backend that runs the model: auto is native (hand-written "
              "MindSpore) for GPT-2, Llama, Qwen2 and Mistral checkpoints, mindnlp for other architectures.")
@click.option("--device", type=click.Choice(["cpu", "gpu", "ascend"]), default="cpu",
              show_default=True)
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]),
              default="float32", show_default=True)
@click.option("--batch-size", default="8", show_default=True, callback=lambda _c, _p, v: _batch_size(v),
              help="Rows per forward pass, or 'auto': the largest that fits, halved on out-of-memory.")
@click.option("--limit", type=int, default=None, help="Evaluate only the first N examples.")
@click.option("--num-fewshot", type=int, default=0, show_default=True,
              help="Context examples before each prompt.")
@click.option("--template", default=None,
              help="Prompt template name (default: the task's first); 'all' runs every template.")
@click.option("--data-files", default=None,
              help="Local data instead of the hub dataset: PATH, or TASK=PATH pairs (comma-separated) "
              "for several tasks.")
@click.option("--rolling-stride", type=int, default=None,
              help="Perplexity tasks: new tokens scored per window after the first (default: the "
              "model's context, i.e. disjoint windows).")
@click.option("--output-dir", type=click.Path(path_type=Path), default=Path("results"),
              show_default=True)
@click.option("--log-samples", is_flag=True, help="Also write every prompt and prediction (JSONL).")
@click.option("--max-new-tokens", type=int, default=None,
              help="Cap on generated tokens (default: the task's own).")
@click.option("--seed", type=int, default=1234, show_default=True)
@click.option("--no-progress", is_flag=True,
              help="Hide progress: the loading line, the bars and the per-task closing lines.")
@click.option("--no-cache", is_flag=True,
              help="Do not read or store model responses (default: cached, so a rerun resumes).")
@click.option("--cache-file", type=click.Path(path_type=Path), default=None,
              help="Response cache file (default: $HARNESS_RESPONSE_CACHE, else "
              "OUTPUT_DIR/.cache/responses.sqlite).")
@click.option("--add-bos-token/--no-add-bos-token", "add_bos_token", default=None,
              help="Put BOS before every context (default: as the model's tokenizer does, like "
              "lm-evaluation-harness; GPT-2's adds none).")
@click.option("--shard", default=None, metavar="I/N",
              help="Evaluate only shard I of N (0-based) and write a partial result; combine the N "
              "partials with harness merge.")
@click.option("--workers", default="1", show_default=True, metavar="N|auto",
              help="Worker processes, each evaluating 1/N of the examples with cores/N engine threads, "
              "merged into one result; auto: as many as pay on this CPU (see docs/bench.md).")
@click.option("--task-file", "task_files", default=None,
              help="lm-eval task YAML file(s), comma-separated: run their tasks (with --task, as well).")
@click.option("--include-path", default=None, type=click.Path(path_type=Path),
              help="A folder of lm-eval task YAMLs whose tasks --task can name.")
@click.option("--output-format", type=click.Choice(["harness", "lm-eval", "both"]), default="harness",
              show_default=True, help="lm-eval: lm-evaluation-harness's results_<time>.json (and "
              "samples_<task>_<time>.jsonl with --log-samples) in OUTPUT_DIR/<model>/; both: ours too.")
def run_command(task, suite, model, backend, device, dtype, batch_size, limit, num_fewshot, template,
                data_files, rolling_stride, output_dir, log_samples, max_new_tokens, seed, no_progress,
                no_cache, cache_file, add_bos_token, shard, workers, task_files, include_path,
                output_format) -> None:
    """Evaluate model(s) on task(s) and write results/<model>/<task>/<time>.json."""
    # SIGINT/SIGTERM blocked before any import starts a thread (numpy's BLAS, MindSpore): every
    # thread inherits the mask, and the run's watcher thread takes them (harness.run_state.StopRequest)
    deferred = hasattr(signal, "pthread_sigmask")
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGINT, signal.SIGTERM)) if deferred else None
    try:
        _run_command(task, suite, model, backend, device, dtype, batch_size, limit, num_fewshot, template,
                     data_files, rolling_stride, output_dir, log_samples, max_new_tokens, seed, no_progress,
                     no_cache, cache_file, add_bos_token, shard, task_files, include_path, output_format,
                     workers)
    finally:
        if deferred:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _run_command(task, suite, model, backend, device, dtype, batch_size, limit, num_fewshot, template,
                 data_files, rolling_stride, output_dir, log_samples, max_new_tokens, seed, no_progress,
                 no_cache, cache_file, add_bos_token, shard, task_files, include_path,
                 output_format, workers="1") -> None:
    from harness.pipeline import RunRequest, run
    from harness.runner import RunSettings

    settings = RunSettings(template=template, limit=limit, num_fewshot=num_fewshot, seed=seed,
                           data_files=data_files, max_new_tokens=max_new_tokens,
                           rolling_stride=rolling_stride)
    tasks = _split(task)
    from click.core import ParameterSource

    explicit_task = click.get_current_context().get_parameter_source("task") != ParameterSource.DEFAULT
    extra_tasks = []
    if task_files or include_path:
        from harness.lm_eval_tasks import yaml_tasks_for

        extra_tasks, tasks = yaml_tasks_for(_split(task_files or ""), include_path, tasks, explicit_task)
    if suite:
        from harness.suites import suite_tasks

        in_suite = suite_tasks(_split(suite))
        tasks = in_suite + [t for t in tasks if (explicit_task or task_files) and t not in in_suite]
    request = RunRequest(tasks=tasks, models=_split(model), settings=settings,
                         backend=backend, device=device, dtype=dtype, batch_size=batch_size,
                         output_dir=output_dir, log_samples=log_samples, progress=not no_progress,
                         cache=not no_cache, cache_file=cache_file, add_bos_token=add_bos_token,
                         debug=click.get_current_context().find_root().obj["debug"],
                         extra_tasks=extra_tasks, output_format=output_format)
    if shard is not None:
        from harness.shard import parse_shard

        request.shard = parse_shard(shard)
    from harness.workers import child_arguments, parse_workers

    request.workers = parse_workers(workers)
    if request.workers != 1:  # what each worker is started with
        request.child_args = child_arguments(click.get_current_context())
        request.root_args = ["--debug"] if request.debug else []
    run(request, echo=click.echo)


@cli.command("tasks")
@click.option("--check-hub", is_flag=True,
              help="Check each task's hub data instead (repository, revision, the files of its "
                   "splits), by listing them, without downloading: one line per task. "
                   "With HARNESS_HUB_MIRROR=DIR, checks that mirror.")
def tasks_command(check_hub: bool) -> None:
    """List every registered task."""
    from harness.registry import discover

    registry = discover()
    if check_hub:
        from harness.hub_data import check_tasks

        problems = check_tasks({name: task.hub for name, task in registry.tasks.items()}, click.echo)
        if problems:
            raise HarnessError(f"{problems} task(s) cannot find their hub data (see the MISSING lines)")
        return
    for name in sorted(registry.tasks):
        task = registry.tasks[name]
        click.echo(f"{name}: {task.description}")
        click.echo(f"    request: {task.adapter.kind}  templates: {', '.join(task.templates)}  "
                   f"metrics: {', '.join(task.metric_names())}")
    from harness.suites import load_suite, suite_names

    for name in suite_names():  # harness run --suite NAME
        suite = load_suite(name)
        click.echo(f"suite {name}: {', '.join(suite['tasks'])}")
    for plugin, why in registry.broken.items():
        click.echo(f"warning: plugin '{plugin}' failed to load: {why}", err=True)


@cli.command("lm-eval", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--model-args", default="pretrained=tiny", show_default=True,
              help="lm-eval model_args for --model harness: pretrained=DIR|HUB_ID|tiny,backend=auto|native|"
              "mindnlp|torch,dtype=...,cache=true|false,cache_file=PATH,add_bos_token=true|false.")
@click.argument("lm_eval_args", nargs=-1, type=click.UNPROCESSED)
def lm_eval_command(model_args: str, lm_eval_args: tuple[str, ...]) -> None:
    """Run lm-evaluation-harness's own CLI with this harness's backends as `--model harness`
    (arguments after `--` go to lm-eval, e.g. `-- --tasks arc_easy --limit 10`)."""
    from harness.lm_eval_entry import run_lm_eval

    code = run_lm_eval(model_args, list(lm_eval_args))
    if code:
        error = HarnessError(f"lm-eval exited with status {code} (its messages are above)")
        error.exit_code = code
        raise error


@cli.command("merge")
@click.argument("folders", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--output-dir", type=click.Path(path_type=Path), default=None,
              help="Write OUTPUT_DIR/<model>/<task>/<time>.json (default: into FOLDER, beside the shards).")
def merge_command(folders: tuple[Path, ...], output_dir: Path | None) -> None:
    """Combine the partial results of `harness run --shard I/N` into the result one process would
    have written. FOLDER is one run's shard folder, or any folder above (e.g. the run's
    --output-dir): every shard set found under it is merged, except those merged already; an
    incomplete set found that way is named and skipped. Given shard folders must all merge."""
    from harness.merge import find_shard_sets, merged_result, write_merged
    from harness.table import build_table, render

    merged = []
    for folder in folders:
        pending, done = find_shard_sets(folder) if Path(folder).is_dir() else ([], [])
        if Path(folder) in pending or Path(folder) in done:  # a shard folder itself: strict
            merged.append((folder, *merged_result(folder)))
            continue
        for skipped in done:
            click.echo(f"skipped {skipped}: merged already (a merged result lies beside the shards)",
                       err=True)
        for found in pending:
            try:
                merged.append((found, *merged_result(found)))
            except HarnessError as exc:
                click.echo(f"skipped {found}: {exc}", err=True)
        if not pending and not done:
            merged_result(folder)  # raises: no such folder, or no shard results in it (with the hint)
    if not merged:
        raise HarnessError(f"no complete shard set to merge under {', '.join(map(str, folders))}")
    for folder, record, samples in merged:
        path = write_merged(folder, record, samples, output_dir)
        click.echo(f"wrote {path} (merged from {record.merged_from['count']} shards)", err=True)
    header, rows = build_table([record.to_dict() for _, record, _ in merged])
    click.echo(render(header, rows))


@cli.command("new-task")
@click.argument("name")
@click.option("--kind", type=click.Choice(["multiple-choice", "generate", "loglikelihood", "rolling"]),
              required=True, help="How the model is asked (the task's adapter).")
@click.option("--package", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Write a separate plugin package in DIR (default: this source tree's tasks/).")
def new_task_command(name: str, kind: str, package: Path | None) -> None:
    """Write a working task plugin NAME: module, prompt template, entry point and a test that
    runs it on --model tiny."""
    from harness.scaffold import new_task

    repo = Path(__file__).resolve().parents[1]
    written = new_task(name, kind, package, repo)
    for path in written:
        click.echo(f"wrote {path}")
    root = package if package is not None else repo
    click.echo(f"next: pip install --no-deps -e {root}  (registers the entry point), then "
               f"pytest {written[2]} and harness run --task {name} --model tiny --data-files ROWS.jsonl")


@cli.command("table")
@click.argument("folder", type=click.Path(path_type=Path), default=Path("results"))
@click.option("--format", "fmt", type=click.Choice(["markdown", "csv"]), default="markdown",
              show_default=True)
@click.option("--reference", default=None,
              help="Also print published numbers beside ours (e.g. gpt2-paper: the GPT-2 paper's).")
def table_command(folder: Path, fmt: str, reference: str | None) -> None:
    """One table of every result under FOLDER (task × metric rows, model columns)."""
    if reference:
        from harness.references import table_with_reference

        click.echo(table_with_reference(folder, reference, fmt), nl=False)
        return
    from harness.table import table_for

    click.echo(table_for(folder, fmt), nl=False)


@cli.command("compare")
@click.argument("folder", type=click.Path(path_type=Path), default=Path("results"))
@click.option("--metric", default=None, help="Only these metric(s), comma-separated (default: all).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output folder (default: FOLDER/compare).")
@click.option("--examples", type=int, default=1000, show_default=True,
              help="Examples per task setting in the HTML browser.")
def compare_command(folder: Path, metric: str | None, out: Path | None, examples: int) -> None:
    """Tables, scaling plots, adjacent-size significance and an HTML report for FOLDER."""
    from harness.compare.command import compare

    if examples < 0:
        raise HarnessError(f"--examples must be 0 or more, got {examples}")
    report = compare(folder, _split(metric) if metric else None, out, examples)
    click.echo(report.markdown, nl=False)
    for path in report.files:
        click.echo(f"wrote {path}", err=True)


def main(argv: list[str] | None = None) -> int:  # noqa: C901
    """Entry point: user errors become one line on stderr and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="harness", standalone_mode=False)
    except HarnessError as exc:
        if debug:
            traceback.print_exc()
        message = " ".join(str(exc).split("\n"))  # one line, whatever the message holds
        click.echo(message if exc.exit_code >= 128 else f"error: {message}", err=True)  # 130/143: stopped
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()} (see: harness --help)", err=True)
        return 2
    except KeyboardInterrupt:
        click.echo("interrupted; finished results are saved", err=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: one line unless --debug
        if debug:
            traceback.print_exc()
        click.echo(f"error: unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                   " (rerun with --debug for the traceback)", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

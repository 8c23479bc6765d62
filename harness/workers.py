"""`harness run --workers N`: data parallel inside one machine.

The parent checks the run (tasks, data, models) as any run does, then starts N child processes,
each `harness run ... --shard I/N` with cores/N engine threads, writing its partial results into
a private scratch folder and sharing the run's response cache. When they are done it merges each
task's partials (`harness.merge`) and writes the result one process would have written: the same
metrics and samples; only `created`, `timing` (which gains `workers`) and the cache counts'
split between hits and computed can differ.

Why: on CPU two one-thread processes do more matrix products per second than one two-thread
process (issue 15: 134 + 134 GFLOP/s against about 230), because a MindSpore CPU kernel on two
threads pays a fork/join per operation and the engine's Python between kernels runs on one core.

`--workers auto` picks `auto_workers(...)`: 1 unless the device is the CPU, the process may use
at least 2 cores, and every worker gets at least `MIN_BATCHES_PER_WORKER` batches of the run's
largest task; then the largest divisor of the cores, at most `MAX_AUTO_WORKERS`, that still
leaves each worker that much work.

Signals: children run in their own session, so a Ctrl-C reaches only the parent, which hands it
on once (they store their batch in flight and stop) and exits 130 (SIGTERM: 143); a second signal
is handed on too (they stop at once). A child whose parent dies (stdin closes) stops itself.
A failing child leaves the others running (as a failing task leaves the run's other tasks); the
parent writes every task run all workers finished, then names the failure on one line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

MAX_AUTO_WORKERS = 4   # each worker holds a whole model: memory grows with N
MIN_BATCHES_PER_WORKER = 12  # below this, loading, compiling and thinner batches eat the gain
STOP_GRACE_SECONDS = 600  # a stopped worker finishes its batch in flight; then it is killed
LOG_NAME = "worker-{index}.log"
# options the parent decides for its children (never passed on as given)
PARENT_ONLY = ("workers", "shard", "output_dir", "cache_file", "no_cache", "no_progress", "output_format")


def parse_workers(text: str) -> int | str:
    """'auto' or a whole number of at least 1."""
    value = str(text).strip().lower()
    if value == "auto":
        return "auto"
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise HarnessError(f"--workers must be a whole number of at least 1, or 'auto', got '{text}'")
    return count


def _affinity() -> list[int] | None:
    """The CPU cores this process may run on, in order, or None where the OS does not say (not Linux)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def usable_cores() -> int:
    """CPU cores this process may run on."""
    cores = _affinity()
    return len(cores) if cores is not None else os.cpu_count() or 1


def auto_workers(device: str, cores: int, largest_task: int, batch_size: int | str) -> int:
    """How many workers `--workers auto` starts (see the module's docstring)."""
    if device != "cpu" or cores < 2:
        return 1
    per_worker = MIN_BATCHES_PER_WORKER * (batch_size if isinstance(batch_size, int) else 8)
    for count in range(min(cores, MAX_AUTO_WORKERS), 1, -1):
        if cores % count == 0 and largest_task >= count * per_worker:
            return count
    return 1


def threads_per_worker(cores: int, workers: int) -> int:
    return max(1, cores // workers)


CORES_ENV = "HARNESS_WORKER_CORES"  # the CPU cores a worker pins itself to, e.g. "0" or "2,3"


def worker_cores(index: int, threads: int) -> str | None:
    """Worker `index`'s own `threads` cores of this process's cores ("0,1"), or None when there
    are too few to give every worker its own. Pinning is what makes a one-thread worker use one
    core: MindSpore's CPU MatMul ignores `threads_num` and spreads over every core it may use."""
    cores = _affinity()
    if cores is None:
        return None
    mine = cores[index * threads : (index + 1) * threads]
    return ",".join(map(str, mine)) if len(mine) == threads else None


def pin_to_cores() -> None:
    """Pin this process to the cores its parent chose (CORES_ENV), if any."""
    chosen = os.environ.get(CORES_ENV)
    if chosen and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in chosen.split(",")})


def child_arguments(ctx: Any) -> list[str]:
    """The `harness run` options the user set (click context), as a command line for a child."""
    import click
    from click.core import ParameterSource

    args: list[str] = []
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name in PARENT_ONLY:
            continue
        if ctx.get_parameter_source(param.name) in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
            continue
        value = ctx.params[param.name]
        if param.is_flag:
            if param.secondary_opts:
                args.append(param.opts[0] if value else param.secondary_opts[0])
            elif value:
                args.append(param.opts[0])
        elif value is not None:
            args += [param.opts[0], str(value)]
    return args


def count_for(request: Any, documents: dict[str, Any]) -> int:
    """The number of workers `request` runs with (checked: `--workers` combines with neither
    `--shard`, msrun, nor lm-eval's output format)."""
    from harness import distributed

    workers = request.workers
    if workers == 1:
        return 1
    if request.shard is not None or distributed.role():
        raise HarnessError("--workers starts its own shards: drop --shard (or --workers) and do not "
                           "launch under msrun")
    if request.output_format != "harness":
        raise HarnessError("--workers writes this harness's result files only: drop --output-format "
                           f"{request.output_format} (or --workers)")
    if workers == "auto":
        largest = max(len(docs) for docs, _, _ in documents.values())
        workers = auto_workers(request.device, usable_cores(), largest, request.batch_size)
    if workers > 1 and request.child_args is None:
        raise HarnessError("--workers needs the harness run command line (run it from the harness command)")
    return workers


# ------------------------------------------------------------------ parent
@dataclasses.dataclass
class Worker:
    index: int
    process: subprocess.Popen
    log: Path

    def error_lines(self) -> list[str]:
        """The child's own account of its failure: its `error:` lines, else its last line."""
        try:
            lines = [ln.strip() for ln in self.log.read_text(encoding="utf-8", errors="replace").splitlines()]
        except OSError:
            lines = []
        lines = [ln for ln in lines if ln and not ln.startswith("[WARNING]")]
        errors = [ln for ln in lines if ln.startswith("error:")]
        return errors or lines[-1:] or [""]


@dataclasses.dataclass
class Outcome:
    """How the workers ended: every one succeeded, one failed, or a signal stopped them."""

    failed: Worker | None = None
    signum: int | None = None


def start(count: int, threads: int, run_args: Sequence[str], root_args: Sequence[str], scratch: Path,
          cache_file: Path | None) -> list[Worker]:
    """Start `count` children: shard I of `count` each, `threads` engine threads each."""
    workers = []
    cache = ["--cache-file", str(cache_file)] if cache_file is not None else ["--no-cache"]
    for index in range(count):
        cmd = [sys.executable, "-m", "harness.workers", str(threads), *root_args, "run", *run_args,
               "--shard", f"{index}/{count}", "--output-dir", str(scratch), *cache, "--no-progress"]
        log = scratch / LOG_NAME.format(index=index)
        cores = worker_cores(index, threads)
        env = {**os.environ, CORES_ENV: cores} if cores else None
        with log.open("wb") as sink:
            process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=sink, stderr=subprocess.STDOUT,
                                       start_new_session=True, env=env)
        workers.append(Worker(index, process, log))
    return workers


def wait(workers: list[Worker], stop: Any, poll: float = 0.1) -> Outcome:
    """Wait for every worker (one that fails leaves the others running, as a failing task leaves
    the other tasks of a run: what they compute is written or cached). A signal
    (KeyboardInterrupt from `stop`, the run's StopRequest (harness.run_state)) is handed on to the workers."""
    outcome = Outcome()
    while True:
        try:
            while any(w.process.poll() is None for w in workers):
                time.sleep(poll)
            break
        except KeyboardInterrupt:
            outcome.signum = outcome.signum or getattr(stop, "signum", None) or signal.SIGINT
            _signal(workers, outcome.signum)  # a second signal reaches them as their second: at once
    if outcome.signum is None:
        outcome.failed = next((w for w in workers if w.process.returncode != 0), None)
    return outcome


def _signal(workers: list[Worker], signum: int) -> None:
    for worker in workers:
        if worker.process.poll() is None:
            with contextlib.suppress(OSError):
                worker.process.send_signal(signum)


def stop_all(workers: list[Worker]) -> None:
    """No child outlives the parent: ask, wait for the batch in flight, then kill."""
    _signal(workers, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for worker in workers:
        try:
            worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
        except KeyboardInterrupt:  # impatient: a further signal kills them now
            for other in workers:
                if other.process.poll() is None:
                    other.process.kill()
                    other.process.wait()
            raise


def merge_finished(scratch: Path, tasks: dict[str, Any], workers: int) -> list[tuple[Any, list[dict] | None]]:
    """Each task run every worker finished, merged, in the order worker 0 finished them."""
    from harness.merge import check, find_shard_sets, load_partials, merge_records

    pending, _ = find_shard_sets(scratch)
    sets = []
    for folder in pending:
        partials = load_partials(folder)
        if len(partials) < workers:
            continue  # a worker stopped before this task: nothing to write for it
        records = check([(p.name, r) for p, r in partials], str(folder))
        first = min(p.stat().st_mtime_ns for p, _ in partials if p.name.startswith("shard-0-"))
        sets.append((first, records))
    merged = []
    for _, records in sorted(sets, key=lambda s: s[0]):
        record, samples = merge_records(records, tasks.get(records[0]["task"]["name"]))
        timing = {**record.timing, "workers": workers}
        merged.append((dataclasses.replace(record, merged_from=None, timing=timing), samples))
    return merged


def run_parallel(count: int, threads: int, run_args: Sequence[str], root_args: Sequence[str],
                 output_dir: Path, cache_file: Path | None, log_samples: bool, tasks: dict[str, Any],
                 stop: Any, echo: Callable[..., Any],
                 note: Callable[[str], None]) -> tuple[list[Path], list[dict]]:
    """Run the workers, write the merged results; (paths written, their records)."""
    from harness.results import write_result

    scratch = Path(tempfile.mkdtemp(prefix="harness-workers-"))
    note(f"running {count} workers x {threads} thread(s) (their logs: {scratch})")
    workers: list[Worker] = []
    try:
        workers = start(count, threads, run_args, root_args, scratch, cache_file)
        outcome = wait(workers, stop)
    finally:
        stop_all(workers)
    written, records = [], []
    for record, samples in merge_finished(scratch, tasks, count):
        path = write_result(output_dir, record.model["name"], record.task["name"], record,
                            samples if log_samples else None)
        written.append(path)
        records.append(record.to_dict())
        echo(f"wrote {path}", err=True)
    kept = (f"the model's answers are kept in {cache_file}; rerun the same command to resume"
            if cache_file is not None else "the response cache is off, so a rerun starts over")
    if outcome.signum is not None:
        from harness.run_state import Interrupted

        shutil.rmtree(scratch, ignore_errors=True)
        stop = Interrupted(f"interrupted: {len(written)} result file(s) written; {kept}")
        stop.exit_code = 128 + outcome.signum
        raise stop
    if outcome.failed is not None:
        worker = outcome.failed
        code = worker.process.returncode
        *before, last = worker.error_lines()
        for line in dict.fromkeys(before):  # e.g. the task runs a summary line refers to
            echo(line, err=True)
        how = (f"was killed by {signal.Signals(-code).name}" if code < 0
               else f"failed (exit code {code}): {last.removeprefix('error: ')}")
        error = HarnessError(f"worker {worker.index}/{count} {how} (its log: {worker.log}); "
                             f"{len(written)} result file(s) written; {kept}")
        error.exit_code = code if code > 0 else 1
        raise error
    shutil.rmtree(scratch, ignore_errors=True)
    return written, records


# ------------------------------------------------------------------ child
def set_engine_threads(threads: int, run_args: Sequence[str]) -> None:
    """Limit every engine of this process to `threads` CPU threads, before any engine starts:
    OpenMP/BLAS pools (numpy, PyTorch: `torch.get_num_threads` follows OMP_NUM_THREADS) by
    environment, MindSpore's CPU kernels by `device_context.cpu.op_tuning.threads_num`."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    if "torch" in _option_values(run_args, "--backend"):
        return
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import mindspore
    mindspore.device_context.cpu.op_tuning.threads_num(threads)


def _option_values(args: Sequence[str], name: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == name]


def _stop_when_parent_dies() -> None:
    """The parent holds our stdin open; end of file means it is gone: stop as on SIGTERM."""
    def watch() -> None:
        # os.read: no buffered reader's lock, which would block interpreter exit
        with contextlib.suppress(OSError):
            while os.read(0, 4096):
                pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="harness-parent-watch", daemon=True).start()


def child_main(argv: Sequence[str]) -> int:
    """`python -m harness.workers THREADS [harness options] run ...`: one worker."""
    threads, args = int(argv[0]), list(argv[1:])
    _stop_when_parent_dies()
    pin_to_cores()
    set_engine_threads(threads, args)
    from harness.cli import main

    return main(args)


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))

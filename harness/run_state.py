"""What one `harness run` keeps across its task runs: the response cache, failures and warnings.

* The response cache (`harness.cache`) opens before any model loads; each model gets its own
  `CacheLayer`, which the runner asks instead of the model.
* A task whose plugin failed to load, or whose code raises while its requests are built or
  scored, is reported on one line; the other tasks still run and are written, and the run
  exits non-zero at the end (2 when every failure was bad input, 1 when a plugin crashed).
* Inputs longer than the model's context are counted in each result and warned about once.
* Ctrl-C (or SIGTERM) lets the batch in flight finish and be stored, then ends the run with one
  line saying what was kept and how to resume (`StopRequest`); a second Ctrl-C stops at once.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cache import CacheLayer, ResponseStore, namespace_for
from harness.errors import HarnessError
from harness.models.lm import LanguageModel
from harness.registry import Registry
from harness.task import Task


class Interrupted(HarnessError):
    """Ctrl-C: the message says what was saved and how to resume."""

    exit_code = 130


class TaskFailed(HarnessError):
    """A task's plugin code raised something other than a `HarnessError`."""

    exit_code = 1


SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Ctrl-C (SIGINT) and SIGTERM: stop after the batch in flight, once it is stored.

    Interrupting MindSpore mid-computation is unsafe: its runtime catches SIGINT itself and
    answers by sending the process SIGTERM, and an exception raised inside one of its callbacks
    is logged at length. So while a batch computes, the first signal only asks to stop; the
    batch's answers are stored, then `KeyboardInterrupt` is raised from plain Python. A second
    signal, or one outside a computation, stops at once.

    The signals never reach a handler asynchronously: while installed they are blocked in every
    thread and a watcher thread takes them with `sigtimedwait`, then hands them to the main
    thread (`_thread.interrupt_main`). MindSpore's graph compiler installs a C++ SIGINT handler
    of its own that allocates memory; a signal landing while the main thread was inside `malloc`
    deadlocked the process in that handler forever (seen once in ~25 interrupted test runs).
    """

    def __init__(self) -> None:
        self.requested = False
        self.depth = 0
        self.signum: int | None = None  # the signal that stopped the run

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as shells and schedulers expect (130 Ctrl-C, 143 SIGTERM)."""
        return 128 + (self.signum or signal.SIGINT)

    def handle(self, signum, frame) -> None:
        self.signum = self.signum or signum
        if self.requested or self.depth == 0:
            raise KeyboardInterrupt
        self.requested = True

    @contextlib.contextmanager
    def computing(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Route SIGINT and SIGTERM here for the duration (main thread only)."""
        try:
            previous = {sig: signal.signal(sig, self.handle) for sig in SIGNALS}
        except ValueError:  # not the main thread: leave signals alone
            yield
            return
        done = threading.Event()
        watcher = None
        if hasattr(signal, "sigtimedwait"):
            # threads started from now on (MindSpore's among them) inherit the blocked mask
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
            watcher = threading.Thread(target=self._watch, args=(done,), name="harness-signals", daemon=True)
            watcher.start()
        try:
            yield
        finally:
            done.set()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if watcher is not None:
                watcher.join()
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _watch(self, done: threading.Event) -> None:
        """Take each blocked SIGINT/SIGTERM and raise it in the main thread, in plain Python."""
        while not done.is_set():
            info = signal.sigtimedwait(SIGNALS, 0.1)
            if info is not None:
                _thread.interrupt_main(info.si_signo)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


@dataclass
class RunState:
    """What one `harness run` keeps across its task runs (see the module docstring): the
    response store and each model's `CacheLayer`, failed task runs, the truncation warning, Ctrl-C."""

    cache_file: Path | None  # None: --no-cache
    echo: Callable[..., Any]
    debug: bool = False
    store: ResponseStore | None = None
    failures: list[tuple[str, bool]] = field(default_factory=list)  # (label, unexpected)
    written: int = 0
    layers: list[CacheLayer] = field(default_factory=list)
    warned_truncation: bool = False
    stop: StopRequest = field(default_factory=StopRequest)

    # ------------------------------------------------------------------ tasks
    def resolve_tasks(self, registry: Registry, names: Sequence[str]) -> list[Task]:
        """The requested tasks. In a multi-task run, a name that may belong to a plugin that
        failed to load is reported and skipped; otherwise an unknown name stops the run."""
        tasks = []
        for name in names:
            if name in registry.tasks or not registry.broken or len(names) == 1:
                tasks.append(registry.get(name))
                continue
            try:
                registry.get(name)
            except HarnessError as exc:
                self.fail(name, None, exc, single=False)
        if not tasks:
            self.finish()
        return tasks

    def preflight(self, tasks: Sequence[Task], load: Callable[[Task], Any], single: bool) -> dict[str, Any]:
        """Each task's documents, and the cache file, opened before any model is loaded so that
        bad data or an unwritable cache fail fast."""
        documents = {}
        for task in tasks:
            try:
                documents[task.name] = load(task)
            except Exception as exc:  # noqa: BLE001 - plugin code (prepare) may raise anything
                self.fail(task.name, None, exc, single)
        if not documents:
            self.finish()
        if self.cache_file is not None:
            self.store = ResponseStore(self.cache_file, self._warn)
        return documents

    def fail(self, label: str, model: str | None, exc: Exception, single: bool) -> None:
        """Report one failed task run; in a single-task run, stop the run with it."""
        unexpected = not isinstance(exc, HarnessError)
        where = f"{label} on {model}" if model else label
        if unexpected:
            message = (f"task {where} failed: {type(exc).__name__}: {_first_line(exc)} "
                       "(a bug in the task's plugin? rerun with --debug for the traceback)")
        else:
            message = f"{where}: {exc}"
        if single:
            if unexpected:
                raise TaskFailed(message) from exc
            raise exc
        if self.debug:
            traceback.print_exception(exc, file=sys.stderr)
        self.failures.append((where, unexpected))
        self.echo(f"error: {message}", err=True)

    def finish(self) -> None:
        """Exit non-zero when any task run failed (after the others were written)."""
        if not self.failures:
            return
        kind = TaskFailed if any(unexpected for _, unexpected in self.failures) else HarnessError
        raise kind(f"{len(self.failures)} task run(s) failed: "
                   f"{', '.join(label for label, _ in self.failures)} (reasons above); "
                   "every other result was written")

    # ------------------------------------------------------------------ models
    def add_cache_layer(self, lm: LanguageModel, device: str) -> CacheLayer:
        """Serve `lm`'s requests from the cache (if enabled) and store what it computes."""
        found = namespace_for(lm, device) if self.cache_file is not None else None
        if self.cache_file is not None and found is None:
            self.echo(f"warning: cannot find the files of model '{lm.name}' to fingerprint them; "
                      "its responses are not cached", err=True)
        if found is not None and self.store is None:
            self.store = ResponseStore(self.cache_file, self._warn)  # type: ignore[arg-type]
        if found is not None and self.store is not None:
            self.store.register(*found)  # type: ignore[union-attr]
        layer = CacheLayer(lm, self.store if found else None, found[0] if found else None,
                           echo=lambda line: self.echo(line, err=True), guard=self.stop)
        self.layers.append(layer)
        return layer

    def counters(self, layer: CacheLayer) -> tuple[int, int, int]:
        return layer.hits, layer.computed, len(layer.lm.stats.notes)

    def cache_and_notes(self, layer: CacheLayer, before: tuple[int, int, int], task: str,
                        truncated: int) -> tuple[dict[str, Any], list[str]]:
        """The `cache` and `notes` fields of one task run's result (and the truncation warning,
        once per run)."""
        lm = layer.lm
        hits, computed, notes = self.counters(layer)
        self.written += 1
        if truncated and not self.warned_truncation:
            self.warned_truncation = True
            self.echo(f"warning: {truncated} input(s) of {task} are longer than the context of "
                      f"{lm.name} ({lm.max_length} tokens) and were truncated from the left; each "
                      "result counts them in truncated_inputs (this warning is shown once)", err=True)
        cache = {"enabled": layer.enabled, "file": str(self.cache_file) if layer.enabled else None,
                 "hits": hits - before[0], "computed": computed - before[1]}
        return cache, lm.stats.notes[before[2]:]

    # ------------------------------------------------------------------ end
    def _warn(self, line: str) -> None:
        self.echo(line, err=True)

    def kept_answers(self) -> str:
        """What a rerun will cost, for a run that stopped before writing its result."""
        if self.store is not None:
            return (f"the model's answers are kept in {self.cache_file}: free space and rerun the same "
                    "command (nothing is recomputed)")
        return "the answers were not kept (--no-cache): free space and rerun to compute them again"

    def interrupted(self) -> Interrupted:
        computed = sum(layer.computed for layer in self.layers)
        if self.store is not None:
            stop = Interrupted(f"interrupted: {self.written} result file(s) written and {computed} model "
                               f"response(s) of this run saved in {self.cache_file}; rerun the same "
                               "command to resume")
        else:
            stop = Interrupted(f"interrupted: {self.written} result file(s) written; rerun the same command "
                               "to resume (the response cache is off, so unfinished tasks start over)")
        stop.exit_code = self.stop.exit_code
        return stop

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

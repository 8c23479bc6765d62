"""Response cache: every model answer is stored on disk as soon as its batch is computed.

A `CacheLayer` is one layer in the call path: the runner asks it (`loglikelihood`,
`loglikelihood_rolling`, `generate`, as it would ask the `LanguageModel`), and it asks the model.
Every log-likelihood, multiple-choice and rolling request reaches it as (context ids,
continuation ids) pairs, every generation as its `GenerationRequest`. Before computing, it serves
the requests whose answers are stored; the rest go to the model, which hands every finished batch
back (the `on_batch` argument of its compute calls) to be stored in one SQLite transaction.
A run killed at any point therefore loses at most the batch in flight, and rerunning the same
command recomputes nothing that was finished.

Serving some requests from the cache never changes the others' numbers: every row is computed
at the width of its own length bucket, whatever the batch holds (`harness.models.lm.bucket_width`).

Keys. The namespace is a digest of the model's weights (`harness.fingerprint`), the backend,
dtype and device, the model's context length, whether BOS is added (`--add-bos-token`) and
`CACHE_VERSION`; within it, a request's key is a digest of its kind and exact content: the
(context, continuation) token ids of a log-likelihood pair or rolling window, or the prompt text
and generation settings (stop strings, token limit, and for sampling top-k, temperature and
seed; greedy requests ignore the seed).

The same layer halves the batch size and carries on when the device runs out of memory; the
batches finished before the failure are kept.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import HarnessError
from harness.fingerprint import checkpoint_folder, folder_digest
from harness.models.lm import (
    LanguageModel,
    Progress,
    is_out_of_memory,
    pair_truncated,
    prompt_truncated,
    window_totals,
)
from harness.requests import GenerationRequest, LoglikelihoodRequest, LoglikelihoodResult

CACHE_VERSION = 1  # bump when a change to the compute path changes any number
ENV_FILE = "HARNESS_RESPONSE_CACHE"
SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    ns TEXT NOT NULL, key BLOB NOT NULL, value TEXT NOT NULL, PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS namespaces (ns TEXT PRIMARY KEY, description TEXT NOT NULL);
"""


def default_cache_file(output_dir: Path) -> Path:
    """`$HARNESS_RESPONSE_CACHE` if set, else `<output_dir>/.cache/responses.sqlite`."""
    env = os.environ.get(ENV_FILE)
    return Path(env).expanduser() if env else Path(output_dir) / ".cache" / "responses.sqlite"


class ResponseStore:
    """SQLite file (WAL mode) of `(namespace, request key) -> JSON answer`."""

    def __init__(self, path: Path, echo: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
        self.namespaces: dict[str, dict] = {}
        try:
            self._open()
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc):
                raise self._unusable(exc) from None
            self._start_afresh(exc)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.path), timeout=60)
            self.conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit survives the process being killed (not a power cut).
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(SCHEMA)
        except sqlite3.DatabaseError:
            raise
        except (OSError, sqlite3.Error) as exc:
            raise self._unusable(exc) from None

    def _unusable(self, exc: BaseException) -> HarnessError:
        return HarnessError(f"cannot open the response cache {self.path}: {exc}; delete the file, "
                            "choose another with --cache-file, or pass --no-cache")

    def _start_afresh(self, exc: BaseException) -> None:
        """Move a corrupt cache file aside (kept, for inspection) and start an empty one."""
        with contextlib.suppress(Exception):
            self.conn.close()
        stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            for suffix in ("", "-wal", "-shm"):
                part = Path(f"{self.path}{suffix}")
                if part.exists():
                    part.rename(Path(f"{aside}{suffix}"))
            self._open()
        except (OSError, sqlite3.Error) as again:
            raise HarnessError(f"the response cache {self.path} is corrupt ({exc}) and cannot be replaced "
                               f"({again}); delete it, or pass --cache-file or --no-cache") from None
        self.echo(f"warning: the response cache {self.path} is corrupt ({exc}); moved it aside to {aside} "
                  "and started an empty one (answers stored there are computed again)")
        for ns, description in self.namespaces.items():
            self.register(ns, description)

    def _recovering(self, action: Callable[[], Any]) -> Any:
        """Run `action`; if it finds the file corrupt, move the file aside and run it once more."""
        try:
            return action()
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc):
                raise
            self._start_afresh(exc)
            return action()

    def register(self, ns: str, description: dict) -> None:
        self.namespaces[ns] = description

        def insert() -> None:
            with self._writing():
                self.conn.execute("INSERT OR IGNORE INTO namespaces VALUES (?, ?)",
                                  (ns, json.dumps(description, sort_keys=True)))

        self._recovering(insert)

    def get_many(self, ns: str, keys: Sequence[bytes]) -> dict[bytes, str]:
        return self._recovering(lambda: self._get_many(ns, keys))

    def _get_many(self, ns: str, keys: Sequence[bytes]) -> dict[bytes, str]:
        found: dict[bytes, str] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT key, value FROM responses WHERE ns = ? AND key IN ({marks})", (ns, *chunk)
            )
            found.update(rows)
        return found

    def put_many(self, ns: str, items: Sequence[tuple[bytes, str]]) -> None:
        """Store one batch of answers in one transaction."""
        def insert() -> None:
            with self._writing():
                self.conn.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)",
                                      [(ns, key, value) for key, value in items])

        self._recovering(insert)

    def count(self, ns: str | None = None) -> int:
        if ns is None:
            return self.conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        return self.conn.execute("SELECT COUNT(*) FROM responses WHERE ns = ?", (ns,)).fetchone()[0]

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One transaction; a failing write (disk full, read-only file) becomes one line."""
        try:
            with self.conn:
                yield
        except sqlite3.Error as exc:
            if isinstance(exc, sqlite3.DatabaseError) and _is_corrupt(exc):
                raise  # moved aside by `_recovering`
            raise HarnessError(f"cannot write the response cache {self.path}: {exc}; free space, "
                               "choose another --cache-file, or pass --no-cache") from None


def _is_corrupt(exc: BaseException) -> bool:
    """SQLite's own words for a damaged file (not a locked, full or read-only one)."""
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


def namespace_for(lm: LanguageModel, device: str) -> tuple[str, dict] | None:
    """The cache namespace of `lm` on `device` and its description, or None when the model's
    files cannot be found (then nothing is cached)."""
    spec = lm.spec
    folder = checkpoint_folder(spec.source, spec.is_local) if spec is not None else None
    if folder is None or not folder.is_dir():
        return None
    description = {
        "weights": folder_digest(folder), "backend": lm.backend.name,
        "engine": type(lm.backend).__name__, "dtype": getattr(lm.backend, "dtype", None),
        "device": device, "max_length": lm.max_length, "cache_version": CACHE_VERSION,
        "harness": __version__,
    }
    if lm.add_bos_token:  # generation keys are prompt text; absent = no BOS, as caches written before
        description["add_bos_token"] = True
    ns = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()
    return ns, {**description, "source": spec.source}  # the folder's path is not part of the key


def request_key(kind: str, item: Any) -> bytes:
    """Digest of one request's exact content (see the module docstring)."""
    if kind == "loglikelihood":
        context, continuation = item
        payload: Any = [list(context), list(continuation)]
    else:
        r: GenerationRequest = item
        sampling = None if not r.top_k else [r.top_k, r.temperature, r.seed]
        payload = [r.context, list(r.until), r.max_new_tokens, sampling]
    text = json.dumps([kind, payload], separators=(",", ":"))  # ASCII: any str is encodable
    return hashlib.sha256(text.encode("ascii")).digest()


def encode_answer(kind: str, answer: Any) -> str:
    if kind == "loglikelihood":
        return json.dumps([answer.logprob, answer.is_greedy, answer.n_tokens])
    return json.dumps(answer)


def decode_answer(kind: str, value: str) -> Any:
    data = json.loads(value)
    if kind == "loglikelihood":
        return LoglikelihoodResult(float(data[0]), bool(data[1]), int(data[2]))
    return str(data)


class _NoGuard:
    computing = staticmethod(contextlib.nullcontext)

    def check(self) -> None:
        pass


class CacheLayer:
    """Answers requests for `lm` from `store` where it can, asks `lm` for the rest, stores every
    computed batch, and halves the batch size on out-of-memory. With `store=None` only the
    halving is active. `lm` itself is left as it is."""

    def __init__(self, lm: LanguageModel, store: ResponseStore | None = None, ns: str | None = None,
                 echo: Callable[[str], None] | None = None, guard: Any = None) -> None:
        self.lm = lm
        self.guard = guard or _NoGuard()  # harness.run_state.StopRequest: stop between batches
        self.store = store if ns is not None else None
        self.ns = ns
        self.echo = echo
        self.hits = 0      # distinct requests answered from the cache
        self.computed = 0  # distinct requests computed by the model (and stored)
        self._recent: dict[bytes, str] = {}  # this call's computed answers, for OOM recovery
        self._compute = {"loglikelihood": "loglikelihood_tokens", "generate": "generate"}  # lm's methods

    @property
    def enabled(self) -> bool:
        return self.store is not None

    # ------------------------------------------------------------------ the model's requests
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      progress: Progress | None = None) -> list[LoglikelihoodResult]:
        """`LanguageModel.loglikelihood`, through the cache."""
        return self.loglikelihood_tokens(self.lm.loglikelihood_pairs(requests), progress)

    def loglikelihood_rolling(self, texts: Sequence[str], progress: Progress | None = None, *,
                              context: int | None = None) -> list[LoglikelihoodResult]:
        """`LanguageModel.loglikelihood_rolling`, through the cache (window by window)."""
        windows, owner = self.lm.rolling_pairs(texts, context)
        scored = self.loglikelihood_tokens(windows)
        if progress:
            progress(len(texts))
        return window_totals(len(texts), owner, scored)

    def loglikelihood_tokens(self, pairs, progress: Progress | None = None) -> list[LoglikelihoodResult]:
        """`LanguageModel.loglikelihood_tokens`, through the cache."""
        keyed = [(tuple(c), tuple(t)) for c, t in pairs]
        return self._serve("loglikelihood", keyed, progress)

    def generate(self, requests: Sequence[GenerationRequest], progress: Progress | None = None) -> list[str]:
        """`LanguageModel.generate`, through the cache."""
        return self._serve("generate", list(requests), progress)

    # ------------------------------------------------------------------ internals
    def _store_batch(self, kind: str, items: list[Any], answers: list[Any]) -> None:
        rows = [(request_key(kind, item), encode_answer(kind, a))
                for item, a in zip(items, answers, strict=True)]
        self._recent.update(rows)
        self.computed += len(rows)
        if self.store is not None and self.ns is not None:
            self.store.put_many(self.ns, rows)
        self.guard.check()  # a Ctrl-C during this batch stops here, after it was stored

    def _serve(self, kind: str, items: list[Any], progress) -> list[Any]:
        self.guard.check()  # a stop asked for after the last batch of the previous call
        keys = [request_key(kind, item) for item in items]
        found = self.store.get_many(self.ns, keys) if self.store is not None and self.ns else {}
        answers: list[Any] = [None] * len(items)
        todo = []
        hit_items: dict[bytes, Any] = {}
        for j, key in enumerate(keys):
            if key in found:
                answers[j] = decode_answer(kind, found[key])
                hit_items.setdefault(key, items[j])
            else:
                todo.append(j)
        self.hits += len(hit_items)
        self.lm.stats.truncated += sum(self._truncated(kind, item) for item in hit_items.values())
        if progress and len(items) > len(todo):
            progress(len(items) - len(todo))
        self._recent = {}
        while todo:
            try:
                with self.guard.computing():
                    compute = getattr(self.lm, self._compute[kind])
                    computed = compute([items[j] for j in todo], progress=progress,
                                       on_batch=self._store_batch)
            except Exception as exc:  # noqa: BLE001 - engines report OOM with several types
                if not is_out_of_memory(exc):
                    raise
                self._halve_batch(exc)
                done = [j for j in todo if keys[j] in self._recent]
                for j in done:
                    answers[j] = decode_answer(kind, self._recent[keys[j]])
                todo = [j for j in todo if keys[j] not in self._recent]
                continue
            for j, answer in zip(todo, computed, strict=True):
                answers[j] = answer
            todo = []
        self._recent = {}
        return answers

    def _truncated(self, kind: str, item: Any) -> bool:
        """Whether the model truncates this request (as `LanguageModel` counts it)."""
        lm = self.lm
        if kind == "loglikelihood":
            return pair_truncated(len(item[0]), len(item[1]), lm.max_length)
        prompt = lm.encode_context(item.context) or [0]
        return prompt_truncated(len(prompt), item.max_new_tokens, lm.max_length)

    def _halve_batch(self, exc: BaseException) -> None:
        """The one out-of-memory policy (fixed and `--batch-size auto` alike): halve the batch size
        until it is below the rows of the batch that failed, say so, and carry on."""
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        old = self.lm.batch_size
        failed = self.lm.rows_in_flight or old
        if old <= 1 or failed <= 1:
            raise HarnessError(f"out of memory even at batch size 1 ({reason}); use a smaller model, "
                               "--dtype float16, or a lower --max-new-tokens") from exc
        new = old // 2
        while new > 1 and new >= failed:  # --batch-size auto starts above the rows it has
            new //= 2
        self.lm.batch_size = new
        gc.collect()
        note = f"out of memory at batch size {old} ({reason}); continued with batch size {new}"
        self.lm.stats.notes.append(note)
        if self.echo:
            self.echo(f"warning: {note}")

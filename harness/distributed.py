"""Data-parallel evaluation under MindSpore's launcher (`msrun ... harness run ...`).

msrun starts the command once per worker (MS_ROLE=MS_WORKER) and once more as the cluster's
scheduler (MS_ROLE=MS_SCHED). The scheduler process only serves the cluster: it calls
`mindspore.communication.init()`, which returns when the workers are done. Each worker selects
its device, joins the cluster with `init()` (MindSpore then binds the worker's device: device id
= local rank), reads its rank and the world size (`get_rank`, `get_group_size`), evaluates shard
rank/size, writes its partial result, and sends it to rank 0 through the cluster's key-value
store (`mindspore.mint.distributed.TCPStore`, served by the scheduler: no shared filesystem
needed). Rank 0 merges the partials exactly as `harness merge` does and writes the final result.

The store, not a collective, carries the partials: MindSpore's CPU build (`mccl`) has no
Barrier or AllGather kernel in PyNative mode, and results are JSON, not tensors.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError
from harness.shard import Shard

PREFIX = "harness/"
TIMEOUT_ENV = "HARNESS_GATHER_TIMEOUT"
DEFAULT_TIMEOUT = 7200.0  # seconds rank 0 waits for the other ranks (shards are balanced)


def role() -> str | None:
    """'MS_WORKER' or 'MS_SCHED' when msrun started this process, else None."""
    value = os.environ.get("MS_ROLE")
    if value in ("MS_WORKER", "MS_SCHED") and os.environ.get("MS_SCHED_HOST"):
        return value
    return None


def _quiet_import_mindspore():
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import mindspore
    return mindspore


def serve_scheduler() -> None:
    """The scheduler process msrun starts: serve the cluster until the workers are done."""
    _quiet_import_mindspore()
    from mindspore.communication import init

    init()  # MindSpore ends the scheduler process itself once every worker has left


def gather_timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT
    try:
        return float(raw)
    except ValueError:
        raise HarnessError(f"{TIMEOUT_ENV} must be a number of seconds, got '{raw}'") from None


@dataclass
class Cluster:
    """This worker's place in an msrun launch."""

    rank: int
    size: int
    launch: str       # chosen by rank 0, shared by every rank of this launch
    device: str       # what MindSpore bound, e.g. "CPU:1" or "Ascend:3"
    store: Any        # mindspore.mint.distributed.TCPStore
    sleep: Callable[[float], None] = time.sleep

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.size)

    def _key(self, label: str, rank: int) -> str:
        return f"{PREFIX}{self.launch}/{label}/{rank}"

    def send(self, label: str, payload: dict[str, Any]) -> None:
        from harness.results import json_default

        self.store.set(self._key(label, self.rank),
                       json.dumps(payload, default=json_default, ensure_ascii=False))

    def send_error(self, label: str, exc: BaseException) -> None:
        """Tell rank 0 that this rank has no result for `label` (so it does not wait)."""
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        self.send(label, {"error": text})

    def collect(self, label: str, timeout: float | None = None) -> list[dict[str, Any]]:
        """Rank 0: the payloads of ranks 1..size-1 for `label`, waiting up to `timeout` seconds."""
        timeout = gather_timeout() if timeout is None else timeout
        deadline = time.monotonic() + timeout
        got: dict[int, dict] = {}
        pending = list(range(1, self.size))
        delay = 0.1
        while pending:
            for r in list(pending):
                raw = self.store.get(self._key(label, r))
                if raw:
                    got[r] = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
                    pending.remove(r)
            if pending:
                if time.monotonic() > deadline:
                    raise HarnessError(
                        f"rank(s) {', '.join(map(str, pending))} sent no result for {label} within "
                        f"{timeout:.0f} s (set {TIMEOUT_ENV} to wait longer); the shard files they wrote "
                        "can be combined later with: harness merge DIR")
                self.sleep(delay)
                delay = min(delay * 2, 2.0)
        failed = [f"rank {r}: {p['error']}" for r, p in sorted(got.items()) if "error" in p]
        if failed:
            raise HarnessError(f"{len(failed)} rank(s) failed on {label}: " + "; ".join(failed))
        return [got[r] for r in sorted(got)]


def join(backends: list[str], device: str, shard: Shard | None) -> Cluster:
    """Join the msrun cluster as a worker: device, rank, world size, launch id."""
    if shard is not None:
        raise HarnessError("under msrun each worker evaluates shard rank/world-size: drop --shard "
                           "(or run without msrun)")
    if "torch" in backends:
        raise HarnessError("msrun starts MindSpore workers: use --backend native or mindnlp (for the torch "
                           "backend, run --shard I/N processes and combine them with harness merge)")
    from harness import engines

    engines.activate_all(backends, device)  # mindspore.set_device before init(), as MindSpore requires
    import mindspore
    from mindspore.communication import get_group_size, get_rank, init

    try:
        init()
        rank, size = get_rank(), get_group_size()
    except Exception as exc:  # noqa: BLE001 - MindSpore raises several types here
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HarnessError(f"cannot join the msrun cluster: {reason}") from None
    from mindspore.mint.distributed import TCPStore

    store = TCPStore()
    target, device_id = mindspore.get_current_device()
    launch = _launch_id(store, rank)
    return Cluster(rank, size, launch, f"{target}:{device_id}", store)


@contextlib.contextmanager
def replica_load(cluster: Cluster | None) -> Iterator[None]:
    """Load a whole model replica on this rank, as if MindSpore's communication were not up.

    Once `init()` has run, mindnlp makes `from_pretrained` resolve checkpoint files rank by rank
    between `torch.distributed.barrier()` calls (meant for its model-parallel loading). Each rank
    here holds its own full copy, the Hugging Face cache already locks concurrent downloads, and
    MindSpore's CPU build has no Barrier kernel; so the load runs with `GlobalComm.INITED` unset.
    """
    if cluster is None:
        yield
        return
    from mindspore.communication import GlobalComm

    saved = GlobalComm.INITED
    GlobalComm.INITED = False
    try:
        yield
    finally:
        GlobalComm.INITED = saved


def _launch_id(store: Any, rank: int, timeout: float = 600.0) -> str:
    """Rank 0 names the launch (its start time); the others read the name from the store."""
    from harness.results import timestamp

    key = PREFIX + "launch"
    if rank == 0:
        launch = "msrun-" + timestamp()
        store.set(key, launch)
        return launch
    deadline = time.monotonic() + timeout
    while not (raw := store.get(key)):
        if time.monotonic() > deadline:
            raise HarnessError(f"rank 0 did not start within {timeout:.0f} s; see its msrun log")
        time.sleep(0.2)
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)

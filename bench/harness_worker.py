"""One workload on this harness, in a process of its own (backends are chosen per process).

    python -m bench.harness_worker --backend native --model DIR --requests REQ.json --out OUT.json

Requests come from `bench.workloads` (written by `bench.run`); they go through the same
`LanguageModel.loglikelihood` / `LanguageModel.generate` calls that `harness run` uses.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--requests", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: the engine's default)")
    parser.add_argument("--warmup", type=int, default=0, help="untimed call on the first N requests")
    parser.add_argument("--barrier", default=None,
                        help="a folder: after loading (and warmup), wait until --parties workers are ready")
    parser.add_argument("--parties", type=int, default=1)
    args = parser.parse_args(argv)
    if args.threads:
        from harness.workers import pin_to_cores

        pin_to_cores()
        set_threads(args.backend, args.threads)

    from harness.errors import HarnessError
    from harness.models import load
    from harness.requests import GenerationRequest, LoglikelihoodRequest

    with open(args.requests, encoding="utf-8") as f:
        data = json.load(f)
    start = time.perf_counter()
    try:
        lm = load(args.model, backend=args.backend.removesuffix("-static"), batch_size=args.batch_size)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    load_s = time.perf_counter() - start
    if args.backend.endswith("-static"):  # continuous batching off: every batch waits for its longest row
        lm.backend.refills = False
    work = instrument(lm.backend)
    if data["kind"] == "generation":
        requests: list = [GenerationRequest(c, tuple(u), int(m)) for c, u, m in data["requests"]]
        call = lm.generate
    else:
        requests = [LoglikelihoodRequest(c, t) for c, t in data["requests"]]
        call = lm.loglikelihood
    start = time.perf_counter()
    if args.warmup:
        call(requests[: args.warmup])
    warmup_s = time.perf_counter() - start
    if work is not None:  # count the timed call only
        work.body_tokens = work.head_positions = 0
    if args.barrier:
        wait_for_parties(args.barrier, args.parties)
    start = time.perf_counter()
    answers = call(requests)
    run_s = time.perf_counter() - start
    results = answers if data["kind"] == "generation" else [[r.logprob, r.is_greedy] for r in answers]
    engine = f"{type(lm.backend).__name__}:{getattr(lm.backend, 'name', '?')}"
    report = {"load_s": load_s, "warmup_s": warmup_s, "run_s": run_s, "results": results, "engine": engine,
              "forward_calls": lm.stats.forward_calls, "tokens": lm.stats.tokens,
              "work": work.to_json() if work is not None else None}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(report, f)
    return 0


def instrument(backend: object):  # noqa: ANN201 - bench.work.Work | None
    """Count the shapes the engine really runs (None where it cannot be counted)."""
    from bench.work import Work, instrument_native, instrument_torch
    from harness.models.transformers_backend import TransformersBackend

    work = Work()
    try:
        if isinstance(backend, TransformersBackend):
            instrument_torch(backend.model, work)
        else:  # the native engine
            instrument_native(backend, work)
    except (AttributeError, TypeError, RuntimeError):
        return None
    return work


def wait_for_parties(folder: str, parties: int) -> None:
    """Side-by-side workers start their timed calls together: each says it is ready, then waits
    for the others (a file each in `folder`)."""
    import os
    from pathlib import Path

    Path(folder, f"ready-{os.getpid()}").touch()
    while len(list(Path(folder).glob("ready-*"))) < parties:
        time.sleep(0.01)


def set_threads(backend: str, n: int) -> None:
    """Limit the engine's CPU thread pool (torch reads OMP_NUM_THREADS, set by the driver)."""
    if backend in ("native", "native-static", "mindnlp"):
        import mindspore

        mindspore.device_context.cpu.op_tuning.threads_num(n)


if __name__ == "__main__":
    sys.exit(main())

"""One workload on lm-evaluation-harness's HF backend (`HFLM`), in a process of its own.

    python bench/lm_eval_worker.py --model DIR --requests REQ.json --out OUT.json

Standalone on purpose (standard library + lm_eval only): it runs under whichever Python has
lm-eval installed (`--lm-eval-python`), which need not have this harness. The requests are
`Instance`s exactly as lm-eval's evaluator makes them for loglikelihood / multiple-choice
(`request_type="loglikelihood"`, one per choice) and generate_until tasks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--requests", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--warmup", type=int, default=0, help="untimed call on the first N requests")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    import lm_eval
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    with open(args.requests, encoding="utf-8") as f:
        data = json.load(f)
    start = time.perf_counter()
    lm = HFLM(pretrained=args.model, device="cpu", dtype="float32", batch_size=args.batch_size)
    load_s = time.perf_counter() - start
    try:
        from bench.work import Work, instrument_torch
    except ImportError:  # run as a script from bench/
        from work import Work, instrument_torch  # type: ignore[no-redef]
    work = Work()
    instrument_torch(lm.model, work)  # every forward of HFLM's model, generate's steps included
    if data["kind"] == "generation":
        instances = [
            Instance("generate_until", {},
                     (c, {"until": list(u), "do_sample": False, "max_gen_toks": int(m)}),
                     i, metadata=("bench", i, 1))
            for i, (c, u, m) in enumerate(data["requests"])
        ]
        call = lm.generate_until
    else:
        instances = [Instance("loglikelihood", {}, (c, t), i, metadata=("bench", i, 1))
                     for i, (c, t) in enumerate(data["requests"])]
        call = lm.loglikelihood
    start = time.perf_counter()
    if args.warmup:
        call(instances[: args.warmup], disable_tqdm=True)
    warmup_s = time.perf_counter() - start
    work.body_tokens = work.head_positions = 0  # count the timed call only
    start = time.perf_counter()
    answers = call(instances, disable_tqdm=True)
    run_s = time.perf_counter() - start
    if data["kind"] == "generation":
        results: list = list(answers)
    else:
        results = [[float(lp), bool(g)] for lp, g in answers]
    version = getattr(lm_eval, "__version__", "?")
    report = {"load_s": load_s, "warmup_s": warmup_s, "run_s": run_s, "results": results,
              "engine": f"lm-eval {version} HFLM",
              "work": work.to_json()}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(report, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())

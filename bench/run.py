"""Speed and score agreement of this harness against lm-evaluation-harness, same model, same requests.

    python -m bench.run [--systems native,mindnlp,torch,lm-eval] [--model gpt2-small-random|DIR]

For each workload (see `bench.workloads`) every system runs in a fresh process, one after the
other, on identical request strings; the timed part is the request call itself (loading is shown
apart). Scores are computed here, from each system's raw answers, by the same code. The last line
is machine-readable: ``speedup_vs_lm_eval loglikelihood=… multiple_choice=… generation=… system=…``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench import work as flops
from bench import workloads
from bench.checkpoints import DEFAULT_TOKENIZER, gpt2_small_random
from bench.matmul import ISSUE_SHAPE, block_shapes, combined_rate
from harness.errors import HarnessError

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
HARNESS_SYSTEMS = ("native", "mindnlp", "torch")
ALL_SYSTEMS = ("lm-eval", *HARNESS_SYSTEMS)
# opt-in variants (not in the default --systems): `native-static` is the native engine with
# continuous batching switched off, to measure what it gains on generation in the same run
VARIANTS = ("native-static",)
KNOWN_SYSTEMS = (*ALL_SYSTEMS, *VARIANTS)
HEADLINE_ORDER = ("native", "mindnlp", "torch")  # the harness's own default engine first
ENGINE_OF = {"lm-eval": "torch", "torch": "torch", "native": "mindspore", "mindnlp": "mindspore",
             "native-static": "mindspore"}
ENGINE_NAMES = {"torch": "PyTorch", "mindspore": "MindSpore"}
TARGET_RATE, TARGET_WORK = 0.85, 1.05  # issue 15: achieved ≥ 85 % of the MatMul rate, work ≤ 1.05×


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--systems", default=",".join(ALL_SYSTEMS),
                   help="comma list of lm-eval, native, mindnlp, torch (default: all), or the opt-in "
                        "native-static (continuous batching off)")
    p.add_argument("--workloads", default=",".join(workloads.KINDS),
                   help="comma list of loglikelihood, multiple_choice, generation (default: all)")
    p.add_argument("--model", default="gpt2-small-random",
                   help="'gpt2-small-random' (made on first use), 'tiny', or a checkpoint folder")
    p.add_argument("--n-loglikelihood", type=int, default=500, help="LAMBADA examples (default 500)")
    p.add_argument("--n-multiple-choice", type=int, default=500, help="4-choice examples (default 500)")
    p.add_argument("--n-generation", type=int, default=100, help="WMT14 sentences (default 100)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8, help="the same for every system (default 8)")
    p.add_argument("--lambada", type=Path, default=SHARED / "lambada" / "lambada_test.jsonl")
    p.add_argument("--wmt", type=Path, default=SHARED / "wmt14-en-fr")
    p.add_argument("--tokenizer", type=Path, default=DEFAULT_TOKENIZER,
                   help="GPT-2 tokenizer folder for gpt2-small-random")
    p.add_argument("--lm-eval-python", default=sys.executable,
                   help="Python that has lm-eval installed (default: this one; pip install -e .[bench])")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for every system (default 0: each engine's own default)")
    p.add_argument("--workers", type=int, default=1,
                   help="also run each harness system as N worker processes side by side (system "
                   "'<system>-xN', as harness run --workers N), each with (--threads or all cores)/N threads")
    p.add_argument("--warmup", type=int, default=0,
                   help="first run the first N requests untimed (compilation, caches); default 0: cold")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per system and workload")
    p.add_argument("--json", type=Path, help="also write the full report (all raw answers) to this file")
    return p.parse_args(argv)


def _split(value: str, allowed: Sequence[str], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise HarnessError(f"unknown {what} '{','.join(bad) or value}'; choose from: {', '.join(allowed)}")
    return items


def resolve_model(name: str, tokenizer: Path) -> str:
    """'gpt2-small-random' and 'tiny' are made on first use; anything else is a checkpoint folder."""
    if name == "gpt2-small-random":
        return str(gpt2_small_random(tokenizer))
    if name == "tiny":
        from harness.models.tiny import ensure_tiny_checkpoint

        return str(ensure_tiny_checkpoint())
    return name


def build(kind: str, args: argparse.Namespace) -> workloads.Workload:
    if kind == "loglikelihood":
        return workloads.loglikelihood(args.lambada, args.n_loglikelihood)
    if kind == "multiple_choice":
        return workloads.multiple_choice(args.lambada, args.n_multiple_choice)
    return workloads.generation(args.wmt, args.n_generation, args.max_new_tokens)


def run_system(system: str, model: str, requests: Path, args: argparse.Namespace,
               tmp: Path) -> dict:
    """Run one system on one workload in a fresh process; its report, or {'error': …}."""
    out = tmp / f"{system}-{requests.stem}.json"
    common = ["--model", model, "--requests", str(requests), "--out", str(out),
              "--batch-size", str(args.batch_size), "--threads", str(args.threads),
              "--warmup", str(args.warmup)]
    if system == "lm-eval":
        cmd = [args.lm_eval_python, str(REPO / "bench" / "lm_eval_worker.py"), *common]
    else:
        cmd = [sys.executable, "-m", "bench.harness_worker", "--backend", system, *common]
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
           "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)}
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout:.0f} s"}
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not out.exists():
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
        return {"error": (lines[-1] if lines else f"exit code {proc.returncode}")[:200]}
    report = json.loads(out.read_text(encoding="utf-8"))
    report["process_s"] = wall
    return report


def engine_of(system: str) -> str:
    return ENGINE_OF[system.split("-x")[0]]


def run_workers(system: str, model: str, work: workloads.Workload, args: argparse.Namespace,
                tmp: Path) -> dict:
    """`system`-xN: N harness workers side by side, each on a share of the examples (balanced by
    characters, examples whole, as `harness.shard.split` deals them) with (threads or cores)/N
    threads; they load, wait for each other, then start their timed calls at once. Its run time is
    the slowest worker's; answers are put back in request order."""
    from harness.shard import split
    from harness.workers import CORES_ENV, threads_per_worker, usable_cores, worker_cores

    base, count = system.split("-x")[0], args.workers
    per = len(work.requests) // work.n_examples  # requests per example (choices)
    groups = [work.requests[i * per:(i + 1) * per] for i in range(work.n_examples)]
    parts = split([sum(len(str(x)) for r in g for x in r[:2]) for g in groups], count)
    threads = threads_per_worker(args.threads or usable_cores(), count)
    barrier = tmp / f"barrier-{system}-{work.kind}"
    barrier.mkdir()
    procs, outs = [], []
    for index, part in enumerate(parts):
        requests = tmp / f"{system}-{work.kind}-{index}.json"
        requests.write_text(json.dumps({"kind": work.kind, "requests": [r for i in part for r in groups[i]]}),
                            encoding="utf-8")
        out = tmp / f"{system}-{work.kind}-{index}.out.json"
        cmd = [sys.executable, "-m", "bench.harness_worker", "--backend", base, "--model", model,
               "--requests", str(requests), "--out", str(out), "--batch-size", str(args.batch_size),
               "--threads", str(threads), "--warmup", str(args.warmup),
               "--barrier", str(barrier), "--parties", str(count)]
        env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
               "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO),
               "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        cores = worker_cores(index, threads)  # its own cores, as harness run --workers
        if cores:
            env[CORES_ENV] = cores
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
        outs.append(out)
    errors = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            errors.append(f"timed out after {args.timeout:.0f} s")
            continue
        if proc.returncode != 0:
            lines = [ln for ln in (err or "").strip().splitlines() if ln.strip()]
            errors.append((lines[-1] if lines else f"exit code {proc.returncode}")[:200])
    if errors or not all(o.exists() for o in outs):
        return {"error": errors[0] if errors else "a worker wrote no report"}
    reports = [json.loads(o.read_text(encoding="utf-8")) for o in outs]
    results: list = [None] * len(work.requests)
    for part, report in zip(parts, reports, strict=True):
        slots = [i * per + k for i in part for k in range(per)]
        for slot, answer in zip(slots, report["results"], strict=True):
            results[slot] = answer
    works = [r["work"] for r in reports]
    total = ({k: sum(w[k] for w in works) for k in works[0]} if all(works) else None)
    return {"load_s": max(r["load_s"] for r in reports), "warmup_s": max(r["warmup_s"] for r in reports),
            "run_s": max(r["run_s"] for r in reports), "results": results,
            "engine": f"{reports[0]['engine']} x{count} ({threads} thread(s) each)",
            "tokens": sum(r["tokens"] for r in reports), "work": total,
            "workers": [{"run_s": r["run_s"], "n": len(p)} for r, p in zip(reports, parts, strict=True)]}


def _compare_workers(work: workloads.Workload, runs: dict) -> None:
    """Each `<system>-xN` against its one-process run: speed ratio and answer agreement."""
    for system, run in runs.items():
        base = system.split("-x")[0]
        one = runs.get(base, {})
        if "-x" not in system or "results" not in run or "results" not in one:
            continue
        times = ", ".join(f"{w['run_s']:.1f} s" for w in run["workers"])
        print(f"  {system} vs {base}: {run['examples_per_s'] / one['examples_per_s']:.2f}x  "
              f"({agreement(work, run['results'], one['results'])}; workers' run times {times})", flush=True)


def _compare_variants(work: workloads.Workload, runs: dict) -> None:
    """`native` against `native-static` (continuous batching off): speed ratio and agreement."""
    static, native = runs.get("native-static", {}), runs.get("native", {})
    if "results" in static and "results" in native:
        print(f"  native vs native-static: {native['examples_per_s'] / static['examples_per_s']:.2f}x  "
              f"({agreement(work, native['results'], static['results'])}; forward calls "
              f"{native.get('forward_calls')} vs {static.get('forward_calls')})", flush=True)


# ------------------------------------------------------------------ scoring (same code for all)
def score(work: workloads.Workload, results: list) -> dict[str, float]:
    if work.kind == "loglikelihood":
        logprobs = [r[0] for r in results]
        return {"acc": 100 * sum(bool(r[1]) for r in results) / len(results),
                "perplexity": math.exp(-sum(logprobs) / len(logprobs))}
    if work.kind == "multiple_choice":
        k, acc, acc_norm = work.n_choices, 0, 0
        for i, gold in enumerate(work.gold):
            lps = [r[0] for r in results[i * k:(i + 1) * k]]
            normed = [lp / n for lp, n in zip(lps, work.choice_lengths[i], strict=True)]
            acc += max(range(k), key=lps.__getitem__) == gold
            acc_norm += max(range(k), key=normed.__getitem__) == gold
        return {"acc": 100 * acc / len(work.gold), "acc_norm": 100 * acc_norm / len(work.gold)}
    import sacrebleu

    predictions = [r.strip() for r in results]
    return {"bleu": sacrebleu.corpus_bleu(predictions, [work.gold]).score,
            "chrf": sacrebleu.corpus_chrf(predictions, [work.gold]).score}


def agreement(work: workloads.Workload, results: list, reference: list) -> str:
    """How close one system's raw answers are to the reference's."""
    if work.kind == "generation":
        same = sum(a == b for a, b in zip(results, reference, strict=True))
        return f"identical outputs {same}/{len(results)}"
    diff = max(abs(a[0] - b[0]) for a, b in zip(results, reference, strict=True))
    greedy = sum(bool(a[1]) == bool(b[1]) for a, b in zip(results, reference, strict=True))
    return f"max|Δlogprob| {diff:.2e}, is_greedy agrees {greedy}/{len(results)}"


# ------------------------------------------------------------------ report
def _fmt(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" if k == "perplexity" else f"{k}={v:.2f}" for k, v in metrics.items())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        systems = _split(args.systems, KNOWN_SYSTEMS, "system")
        if args.workers < 1:
            raise HarnessError(f"--workers must be at least 1, got {args.workers}")
        kinds = _split(args.workloads, workloads.KINDS, "workload")
        model = resolve_model(args.model, args.tokenizer)
        if args.json and args.json.exists():
            raise HarnessError(f"'{args.json}' exists; reports are never overwritten: choose a new --json")
        if not (Path(model) / "config.json").is_file():
            raise HarnessError(f"'{model}' is not a checkpoint folder (no config.json)")
        works = {k: build(k, args) for k in kinds}
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    order = [s for s in KNOWN_SYSTEMS if s in systems]
    if args.workers > 1:  # each harness system again, as N workers, right after its one-process run
        order = [x for s in order for x in ([s, f"{s}-x{args.workers}"] if s in HARNESS_SYSTEMS else [s])]
    threads = args.threads or "engine default"
    print(f"model {model}; batch size {args.batch_size}; threads {threads}; systems {', '.join(order)}",
          flush=True)
    report: dict = {"model": model, "batch_size": args.batch_size, "threads": args.threads,
                    "warmup": args.warmup, "workloads": {}}
    shape = flops.model_shape(Path(model))
    rates = matmul_rates({engine_of(s) for s in order}, Path(model), args)
    report["matmul"], report["model_shape"] = rates, shape.__dict__
    for engine, probe in sorted(rates.items()):
        shapes = ", ".join(f"{k} {v:.0f}" for k, v in probe.get("gflops", {}).items())
        print(f"{ENGINE_NAMES[engine]} fp32 MatMul: {probe.get('rate', float('nan')):.0f} GFLOP/s over the "
              f"model's block products (GFLOP/s per MxKxN, the issue's 1024x768x3072 first: "
              f"{shapes or probe.get('error')})", flush=True)
    counter = NeededWork(Path(model))
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for kind, work in works.items():
            requests = tmp / f"{kind}.json"
            requests.write_text(json.dumps(work.to_json()), encoding="utf-8")
            print(f"\n== {kind}: {work.n_examples} examples, {len(work.requests)} requests", flush=True)
            runs = {}
            for system in order:
                run = (run_workers(system, model, work, args, tmp) if "-x" in system
                       else run_system(system, model, requests, args, tmp))
                runs[system] = run
                if "error" in run:
                    print(f"  {system:8s} unavailable: {run['error']}", flush=True)
                    continue
                run["examples_per_s"] = work.n_examples / run["run_s"]
                run["scores"] = score(work, run["results"])
                warm = f"warmup {run['warmup_s']:5.1f} s  " if args.warmup else ""
                print(f"  {system:8s} {run['examples_per_s']:8.2f} ex/s  run {run['run_s']:7.1f} s  "
                      f"load {run['load_s']:5.1f} s  {warm}{_fmt(run['scores'])}  [{run['engine']}]",
                      flush=True)
                run["limit"] = distance(counter.needed(work, run["results"]), run, shape,
                                        rates.get(engine_of(system), {}))
                print(f"  {system:8s} {_fmt_limit(run['limit'], engine_of(system))}", flush=True)
            report["workloads"][kind] = {"n_examples": work.n_examples, "runs": runs}
            _compare(work, runs)
            _compare_workers(work, runs)
            _compare_variants(work, runs)
    headline = next((s for s in HEADLINE_ORDER if s in order and all(
        "error" not in report["workloads"][k]["runs"].get(s, {"error": 1}) for k in kinds)), None)
    if args.json:
        _write_json(args.json, report)
    _summary(report, order)
    ratios = {k: _ratio(report["workloads"][k]["runs"], headline) for k in kinds}
    print("\nspeedup_vs_lm_eval " + " ".join(f"{k}={ratios[k]}" for k in kinds) + f" system={headline}")
    return 0


# ------------------------------------------------------------------ distance to the limit
def matmul_rates(engines: set[str], model: Path, args: argparse.Namespace) -> dict[str, dict]:
    """Each engine's own fp32 MatMul rate on the model's block products, each in a fresh process."""
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    d = int(config.get("n_embd") or config["hidden_size"])
    d_ff = int(config.get("n_inner") or config.get("intermediate_size") or 4 * d)
    heads = int(config.get("n_head") or config["num_attention_heads"])
    kv = d * int(config.get("num_key_value_heads") or heads) // heads
    # a Llama MLP has three d × d_ff products: gate and up as one [d × 2·d_ff] product
    gated = "intermediate_size" in config and "n_inner" not in config
    block = block_shapes(d, 2 * d_ff if gated else d_ff, kv)
    if gated:
        block[3] = (block[3][0], d_ff, d)
    shapes = ",".join("x".join(map(str, s)) for s in dict.fromkeys([ISSUE_SHAPE, *block]))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rates = {}
    for engine in sorted(engines):
        cmd = [sys.executable, "-m", "bench.matmul", "--engine", engine, "--threads", str(args.threads),
               "--shapes", shapes]
        try:
            proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
            probe = json.loads(proc.stdout.strip().splitlines()[-1])
            probe["rate"] = combined_rate(probe["gflops"], block)  # the model's own block only
            rates[engine] = probe
        except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError):
            rates[engine] = {"error": "MatMul probe failed"}
    return rates


class NeededWork:
    """The work a workload needs, by this harness's token boundaries (`bench.work`)."""

    def __init__(self, model: Path) -> None:
        from harness.models.checkpoint import load_tokenizer

        self.tokenizer = load_tokenizer(model)
        bos, eos = getattr(self.tokenizer, "bos_token_id", None), self.tokenizer.eos_token_id
        self.prefix = bos if bos is not None else (eos if eos is not None else 0)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def needed(self, work: workloads.Workload, results: list) -> flops.Work:
        from harness.tokenization import split_context_continuation

        if work.kind != "generation":
            return flops.needed_scoring([split_context_continuation(self.encode, c, t, self.prefix)
                                         for c, t in work.requests])
        # generated tokens: the answer's own, plus the stop token unless it ran to the limit
        generated = [min(int(m), len(self.encode(text)) + 1) for (_, _, m), text in zip(
            work.requests, results, strict=True)]
        return flops.needed_generation([len(self.encode(c)) for c, _, _ in work.requests], generated)


def distance(needed: flops.Work, run: dict, shape: flops.ModelShape, probe: dict) -> dict:
    """FLOPs needed and done, work done / needed, achieved rate and its fraction of the engine's."""
    out = {"needed": needed.to_json(), "needed_flops": needed.flops(shape)}
    if not run.get("work") or not run["work"]["body_tokens"]:  # an engine whose hooks never ran
        return out
    done = flops.Work(**run["work"])
    out.update(done=done.to_json(), done_flops=done.flops(shape))
    out["work_ratio"] = out["done_flops"] / out["needed_flops"]
    out["rate"] = out["done_flops"] / run["run_s"] / 1e9
    if "rate" in probe:
        out["rate_fraction"] = out["rate"] / probe["rate"]
    return out


def _fmt_limit(limit: dict, engine: str) -> str:
    text = f"work needed {limit['needed_flops'] / 1e9:.4g} GFLOP"
    if "done_flops" not in limit:
        return text + ", done: not counted for this engine"
    text += (f", done {limit['done_flops'] / 1e9:.4g} ({limit['work_ratio']:.2f}× needed; "
             f"body tokens {limit['done']['body_tokens']} vs {limit['needed']['body_tokens']}, "
             f"output-layer positions {limit['done']['head_positions']} vs "
             f"{limit['needed']['head_positions']})"
             f"; achieved {limit['rate']:.3g} GFLOP/s")
    if "rate_fraction" in limit:
        text += f" = {limit['rate_fraction']:.2f}× {ENGINE_NAMES[engine]}'s MatMul rate"
    return text


def _summary(report: dict, order: Sequence[str]) -> None:
    """One line per system: the issue's targets read off for every workload that ran."""
    print(f"\ndistance to the limit (targets: rate ≥ {TARGET_RATE:.2f}× the engine's MatMul rate over a "
          f"cold LAMBADA run, work done ≤ {TARGET_WORK:.2f}× needed; attention products excluded)")
    for system in order:
        parts = []
        for kind, entry in report["workloads"].items():
            limit = entry["runs"].get(system, {}).get("limit", {})
            if "work_ratio" in limit:
                rate = f"{limit['rate_fraction']:.2f}×" if "rate_fraction" in limit else "?"
                parts.append(f"{kind} rate {rate} work {limit['work_ratio']:.2f}×")
        print(f"limit {system} ({ENGINE_NAMES[engine_of(system)]}): " + ("; ".join(parts) or "not measured"))


def _ratio(runs: dict, system: str | None) -> str:
    ref, mine = runs.get("lm-eval", {}), runs.get(system or "", {})
    if "examples_per_s" not in ref or "examples_per_s" not in mine:
        return "nan"
    return f"{mine['examples_per_s'] / ref['examples_per_s']:.2f}"


def _compare(work: workloads.Workload, runs: dict) -> None:
    """Print ratios and score differences against lm-eval for this workload."""
    ref = runs.get("lm-eval", {})
    if "results" not in ref:
        return
    for system, run in runs.items():
        if system == "lm-eval" or "results" not in run:
            continue
        deltas = " ".join(_delta(k, run["scores"][k], ref["scores"][k]) for k in run["scores"])
        print(f"  {system:8s} vs lm-eval: {run['examples_per_s'] / ref['examples_per_s']:.2f}x  {deltas}  "
              f"({agreement(work, run['results'], ref['results'])})", flush=True)


def _delta(metric: str, value: float, reference: float) -> str:
    """Points for percentages and BLEU/chrF; relative for perplexity (random weights make it huge)."""
    if metric == "perplexity":
        return f"Δ{metric}={100 * (value - reference) / reference:+.4f}%"
    return f"Δ{metric}={value - reference:+.2f}"


def _write_json(path: Path, report: dict) -> None:
    """Write atomically; never replace an existing report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(report, indent=1), encoding="utf-8")
    os.link(tmp, path)  # fails if `path` appeared meanwhile
    tmp.unlink()


if __name__ == "__main__":
    sys.exit(main())

"""`harness run --output-format lm-eval`: result files in lm-evaluation-harness's format.

Per model, as lm-eval's `EvaluationTracker` writes them (0.4.13):
`OUTPUT_DIR/<model>/results_<time>.json` (every task of the run: `results[task]["acc,none"]`,
`"acc_stderr,none"`, `n-shot`, `n-samples`, `versions`, `configs`, `higher_is_better`,
`config.model_args`, `total_evaluation_time_seconds`, ...) and, with `--log-samples`,
`samples_<task>_<time>.jsonl` (`doc_id`, `doc`, `target`, `arguments`, `resps`, `filtered_resps`,
per-sample metrics). Each file is written atomically and never replaces another
(`harness.results.write_new`). Numbers are ours (standard errors included: closed form for
means, our bootstrap for corpus metrics; lm-eval bootstraps perplexity's with 100,000 resamples).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from harness import __version__
from harness.models.lm import LanguageModel
from harness.requests import GenerationRequest, LoglikelihoodRequest, LoglikelihoodResult, RollingRequest
from harness.results import json_default, package_versions, write_new
from harness.runner import TaskRun

FILTER = "none"  # lm-eval's filter name when a task defines no filter_list


def lm_eval_timestamp() -> str:
    """lm-eval's file-name time stamp: ISO time with ':' replaced (UTC here)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat().replace(":", "-")


def task_results(run: TaskRun) -> dict[str, Any]:
    """`results[task]`: `metric,filter` and `metric_stderr,filter` keys."""
    entry: dict[str, Any] = {"name": run.task.name, "alias": run.task.name, "sample_len": run.n_examples}
    for metric, value in run.metrics.items():
        entry[f"{metric},{FILTER}"] = value["value"]
        stderr = value.get("stderr")
        entry[f"{metric}_stderr,{FILTER}"] = "N/A" if stderr is None else stderr
    return entry


def task_config(run: TaskRun, num_fewshot: int) -> dict[str, Any]:
    """`configs[task]`: the lm-eval YAML it came from, else the same keys for a built-in task."""
    task = run.task
    base = dict(task.lm_eval_config) if task.lm_eval_config else {
        "task": task.name, "output_type": _output_type(run), "description": "",
        "metric_list": [{"metric": name, "higher_is_better": m["higher_is_better"]}
                        for name, m in run.metrics.items()],
        "metadata": {"version": task.version, "harness_template": run.template.name},
    }
    base.update(target_delimiter=run.template.settings.get("target_delimiter", task.target_delimiter),
                fewshot_delimiter=run.template.settings.get("fewshot_delimiter", task.fewshot_delimiter),
                num_fewshot=num_fewshot)
    base.setdefault("task", task.name)
    return base


def _output_type(run: TaskRun) -> str:
    kind = run.task.adapter.kind
    return "multiple_choice" if kind.startswith("multiple_choice") else kind


def _version(run: TaskRun) -> Any:
    meta = (run.task.lm_eval_config or {}).get("metadata") or {}
    return meta.get("version", run.task.version) if run.task.lm_eval_config else run.task.version


def build_results(lm: LanguageModel, finished: list[tuple[TaskRun, dict]]) -> dict[str, Any]:
    """The `results_<time>.json` object for one model's task runs."""
    record = finished[0][1]
    names = [run.task.name for run, _ in finished]
    config = record["config"]
    model = record["model"]
    return {
        "results": {run.task.name: task_results(run) for run, _ in finished},
        "group_subtasks": {name: [] for name in names},
        "configs": {run.task.name: task_config(run, rec["task"]["num_fewshot"]) for run, rec in finished},
        "versions": {run.task.name: _version(run) for run, _ in finished},
        "n-shot": {run.task.name: rec["task"]["num_fewshot"] for run, rec in finished},
        "higher_is_better": {run.task.name: {m: v["higher_is_better"] for m, v in run.metrics.items()}
                             for run, _ in finished},
        "n-samples": {run.task.name: {"original": run.n_examples, "effective": run.n_examples}
                      for run, _ in finished},
        "config": {
            "model": "harness",
            "model_args": {"pretrained": model["source"], "backend": model["backend"],
                           "dtype": model["dtype"]},
            "model_name": model["name"], "model_backend": model["backend"],
            "model_num_parameters": model["num_parameters"], "batch_size": config["batch_size"],
            "batch_sizes": [], "device": config["device"],
            "use_cache": (record.get("cache") or {}).get("file"),
            "limit": config.get("limit"), "gen_kwargs": {}, "random_seed": config.get("seed"),
            "fewshot_seed": config.get("seed"),
        },
        "date": time.time(),
        "model_source": "harness", "model_name": model["name"], "model_name_sanitized": lm.name,
        "harness_version": __version__, "packages": package_versions(),
        "total_evaluation_time_seconds": str(sum(run.wall_seconds for run, _ in finished)),
    }


def _arguments(request: Any) -> dict[str, Any]:
    if isinstance(request, LoglikelihoodRequest):
        return {"arg_0": request.context, "arg_1": request.continuation}
    if isinstance(request, GenerationRequest):
        kwargs = {"until": list(request.until), "do_sample": bool(request.top_k),
                  "max_gen_toks": request.max_new_tokens}
        return {"arg_0": request.context, "arg_1": kwargs}
    assert isinstance(request, RollingRequest)
    return {"arg_0": request.text}


def _response(request: Any, answer: Any) -> Any:
    """One answer as lm-eval's samples files hold it (numbers written as strings)."""
    if isinstance(answer, LoglikelihoodResult):
        if isinstance(request, RollingRequest):
            return str(answer.logprob)
        return [str(answer.logprob), str(answer.is_greedy)]
    return answer


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _target(run: TaskRun, doc: dict, sample: dict) -> str:
    """lm-eval's `doc_to_target` as its samples files write it (a choice's index as text)."""
    if _output_type(run) == "multiple_choice" and "gold" in doc:
        return str(doc["gold"])
    refs = sample.get("references") or []
    return str(refs[0]) if refs else ""


def build_samples(run: TaskRun) -> list[dict[str, Any]]:
    """One lm-eval sample record per evaluated example."""
    out = []
    metric_names = list(run.metrics)
    for k, (doc, requests, answers, sample) in enumerate(zip(run.docs, run.requests, run.answers,
                                                             run.samples, strict=True)):
        responses = [_response(r, a) for r, a in zip(requests, answers, strict=True)]
        shown = doc.get("lm_eval_doc", {key: v for key, v in doc.items() if not key.startswith("_")})
        target = _target(run, doc, sample)
        first = _arguments(requests[0])["arg_0"] if requests else ""
        record = {
            "doc_id": sample["index"],
            "doc": shown,
            "target": target,
            "arguments": {f"gen_args_{i}": _arguments(r) for i, r in enumerate(requests)},
            "resps": [[r] for r in responses],
            "filtered_resps": responses,
            "filter": FILTER,
            "metrics": metric_names,
            "doc_hash": _hash(json.dumps(shown, indent=2, default=json_default, ensure_ascii=False)),
            "prompt_hash": _hash(first), "target_hash": _hash(target),
        }
        for name in metric_names:
            item = run.items.get(name, [None] * len(run.docs))[k]
            record[name] = list(item) if isinstance(item, tuple) else item
        out.append(record)
    return out


def write_lm_eval(output_dir: Path, lm: LanguageModel, finished: list[tuple[TaskRun, dict]],
                  log_samples: bool) -> list[Path]:
    """Write one model's lm-eval result file (and samples files); return their paths."""
    folder = Path(output_dir) / lm.name
    stamp = lm_eval_timestamp()
    written = []
    if log_samples:
        for run, _ in finished:
            lines = "".join(json.dumps(s, default=json_default, ensure_ascii=False) + "\n"
                            for s in build_samples(run))
            written.append(write_new(folder, f"samples_{run.task.name}_{stamp}", ".jsonl", lines))
    text = json.dumps(build_results(lm, finished), indent=2, default=json_default, ensure_ascii=False)
    written.append(write_new(folder, f"results_{stamp}", ".json", text + "\n"))
    return written

"""Evaluate one task on one loaded model: documents → prompts → requests → outcomes → metrics."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.data import load_hub, load_local
from harness.errors import HarnessError
from harness.fewshot import sample_shots
from harness.models.lm import LanguageModel
from harness.prompts import PromptTemplate, load_template
from harness.requests import GenerationRequest, LoglikelihoodRequest, RollingRequest
from harness.scorers.base import Outcome
from harness.task import Doc, Generate, Rolling, Task


@dataclass(frozen=True)
class RunSettings:
    """Per-task settings of one run (model-independent)."""

    template: str | None = None
    limit: int | None = None
    num_fewshot: int = 0
    seed: int = 1234
    data_files: str | None = None
    max_new_tokens: int | None = None  # overrides the task's generation limit


@dataclass
class TaskRun:
    """Everything a run produced, before it is written."""

    task: Task
    template: PromptTemplate
    metrics: dict[str, dict[str, Any]]
    samples: list[dict[str, Any]]
    n_examples: int
    wall_seconds: float
    tokens: int
    truncated: int


def template_for(task: Task, name: str | None) -> PromptTemplate:
    name = name or task.default_template
    if name not in task.templates:
        raise HarnessError(
            f"task '{task.name}' has no template '{name}'; its templates: {', '.join(task.templates)}"
        )
    return load_template(name, task.prompt_dir / task.templates[name])


def _prepare(task: Task, rows: Sequence[dict], origin: str) -> list[Doc]:
    docs = []
    for number, row in enumerate(rows, start=1):
        try:
            docs.append(task.prepare(row))
        except KeyError as exc:
            fields = ", ".join(sorted(row))
            raise HarnessError(
                f"{origin} row {number}: missing field {exc} needed by task '{task.name}' "
                f"(the row has: {fields})"
            ) from None
    return docs


def load_documents(task: Task, settings: RunSettings) -> tuple[list[Doc], list[Doc], bool]:
    """(evaluation docs, few-shot pool, whether the pool is the evaluation data itself)."""
    if settings.data_files:
        rows = load_local(settings.data_files, task.local)
        docs = _prepare(task, rows, settings.data_files)
        pool, same = docs, True
    elif task.hub is not None:
        docs = _prepare(task, load_hub(task.hub), f"{task.hub.path}:{task.hub.split}")
        pool, same = docs, True
        if settings.num_fewshot > 0 and task.hub.fewshot_split:
            pool = _prepare(task, load_hub(task.hub, task.hub.fewshot_split), task.hub.fewshot_split)
            same = False
    else:
        raise HarnessError(f"task '{task.name}' has no hub dataset; pass --data-files PATH")
    if settings.limit is not None:
        docs = docs[: settings.limit]
    if not docs:
        raise HarnessError(f"task '{task.name}': the data has no rows")
    return docs, pool, same


def render_context(task: Task, template: PromptTemplate, doc: Doc, shots: Sequence[Doc]) -> str:
    """Description, then K solved examples, then the document's own prompt."""
    target_delim = template.settings.get("target_delimiter", task.target_delimiter)
    shot_delim = template.settings.get("fewshot_delimiter", task.fewshot_delimiter)
    parts = [template.render(s) + target_delim + _fewshot_target(task, s) for s in shots]
    parts.append(template.render(doc))
    return template.settings.get("description", "") + shot_delim.join(parts)


def _fewshot_target(task: Task, doc: Doc) -> str:
    if task.adapter.kind == "multiple_choice":
        return task.choices(doc)[task.gold(doc)]
    return task.references(doc)[0]


def _answer(lm: LanguageModel, requests: list[Any], progress) -> list[Any]:
    """Send each request type to the model in one batch call; answers in request order."""
    answers: list[Any] = [None] * len(requests)
    kinds = {
        LoglikelihoodRequest: lm.loglikelihood,
        GenerationRequest: lm.generate,
        RollingRequest: lambda reqs, progress: lm.loglikelihood_rolling([r.text for r in reqs], progress),
    }
    for kind, method in kinds.items():
        idx = [i for i, r in enumerate(requests) if isinstance(r, kind)]
        if idx:
            for i, answer in zip(idx, method([requests[i] for i in idx], progress=progress), strict=True):
                answers[i] = answer
    return answers


def evaluate(lm: LanguageModel, task: Task, settings: RunSettings, progress_factory=None) -> TaskRun:
    """Run `task` on `lm` and score it."""
    template = template_for(task, settings.template)
    if settings.num_fewshot and isinstance(task.adapter, Rolling):
        raise HarnessError(f"task '{task.name}' scores whole texts; --num-fewshot does not apply")
    docs, pool, same = load_documents(task, settings)
    adapter = task.adapter
    if settings.max_new_tokens is not None and isinstance(adapter, Generate):
        adapter = dataclasses.replace(adapter, max_new_tokens=settings.max_new_tokens)
    target_delim = template.settings.get("target_delimiter", task.target_delimiter)
    requests: list[Any] = []
    owners: list[int] = []
    contexts: list[str] = []
    for i, doc in enumerate(docs):
        doc = {**doc, "_seed": settings.seed + i}
        shots = sample_shots(pool, settings.num_fewshot, settings.seed, i, same)
        context = render_context(task, template, doc, shots)
        contexts.append(context)
        for request in adapter.requests(task, doc, context, target_delim):
            requests.append(request)
            owners.append(i)
    stats_before = (lm.stats.tokens, lm.stats.truncated)
    start = time.perf_counter()
    progress = progress_factory(len(requests), f"{lm.name} {task.name}") if progress_factory else None
    answers = _answer(lm, requests, progress.update if progress else None)
    if progress:
        progress.close()
    wall = time.perf_counter() - start
    grouped: list[list[Any]] = [[] for _ in docs]
    for owner, answer in zip(owners, answers, strict=True):
        grouped[owner].append(answer)
    outcomes = [adapter.outcome(task, doc, res) for doc, res in zip(docs, grouped, strict=True)]
    metrics, samples = score(task, outcomes, contexts)
    return TaskRun(task, template, metrics, samples, len(docs), wall,
                   lm.stats.tokens - stats_before[0], lm.stats.truncated - stats_before[1])


def score(task: Task, outcomes: list[Outcome], contexts: list[str]):
    """Metrics with standard errors, and one sample record per example."""
    metrics: dict[str, dict[str, Any]] = {}
    per_example: dict[str, list[Any]] = {}
    for make in task.scorers:
        scorer = make()
        items = [scorer.item(o) for o in outcomes]
        per_example[scorer.name] = [scorer.example_score(item) for item in items]
        entry: dict[str, Any] = {
            "value": scorer.aggregate(items), "stderr": scorer.stderr(items),
            "higher_is_better": scorer.higher_is_better,
        }
        if scorer.signature():
            entry["signature"] = scorer.signature()
        metrics[scorer.name] = entry
    samples = []
    for i, (outcome, context) in enumerate(zip(outcomes, contexts, strict=True)):
        samples.append({
            "index": i, "prompt": context, "prediction": outcome.prediction,
            "references": outcome.references,
            "scores": {name: values[i] for name, values in per_example.items()},
            **({"logprob": outcome.logprob} if outcome.logprob is not None else {}),
            **({"choice_logprobs": outcome.choice_logprobs} if outcome.choice_logprobs else {}),
            **outcome.extra,
        })
    return metrics, samples

"""Evaluate one task on one loaded model: documents → prompts → requests → outcomes → metrics."""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.data import load_hub, load_local
from harness.errors import HarnessError
from harness.fewshot import sample_shots
from harness.models.lm import LanguageModel
from harness.prompts import PromptTemplate, load_template
from harness.requests import GenerationRequest, LoglikelihoodRequest, RollingRequest
from harness.scorers.base import Outcome, Scorer
from harness.shard import Shard, ShardPlan, select
from harness.task import Doc, Generate, Request, Task

if TYPE_CHECKING:
    from harness.cache import CacheLayer


@dataclass(frozen=True)
class RunSettings:
    """Per-task settings of one run (model-independent)."""

    template: str | None = None
    limit: int | None = None
    num_fewshot: int = 0
    seed: int = 1234
    data_files: str | None = None
    max_new_tokens: int | None = None  # overrides the task's generation limit
    rolling_stride: int | None = None  # tokens predicted per window after the first (None: max_length)


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
    items: dict[str, list[Any]] = dataclasses.field(default_factory=dict)  # per-example metric items
    shard: ShardPlan | None = None  # set when only one shard of the examples was evaluated
    # per evaluated example: its document, requests and the model's answers (lm-eval's samples)
    docs: list[Doc] = dataclasses.field(default_factory=list)
    requests: list[list[Any]] = dataclasses.field(default_factory=list)
    answers: list[list[Any]] = dataclasses.field(default_factory=list)


def template_for(task: Task, name: str | None) -> PromptTemplate:
    name = name or task.default_template
    if name not in task.templates:
        raise HarnessError(
            f"task '{task.name}' has no template '{name}'; its templates: {', '.join(task.templates)}"
        )
    return load_template(name, task.prompt_dir / task.templates[name])


ALL_TEMPLATES = "all"


def template_names(task: Task, name: str | None) -> list[str]:
    """`--template all`: every template of the task; otherwise the one named (checked)."""
    if name == ALL_TEMPLATES:
        return [template_for(task, t).name for t in task.templates]
    return [template_for(task, name).name]


def _prepared_docs(task: Task, rows: Sequence[dict], origin: str) -> list[Doc]:
    docs = []
    for number, row in enumerate(rows, start=1):
        try:
            prepared = task.prepare(row)
            docs.extend(prepared if isinstance(prepared, list) else [prepared])
        except KeyError as exc:
            fields = ", ".join(sorted(row))
            raise HarnessError(
                f"{origin} row {number}: missing field {exc} needed by task '{task.name}' "
                f"(the row has: {fields})"
            ) from None
        except (ValueError, TypeError, IndexError) as exc:
            raise HarnessError(f"{origin} row {number}: not a valid '{task.name}' example ({exc})") from None
    return docs


def load_documents(task: Task, settings: RunSettings) -> tuple[list[Doc], list[Doc], bool]:
    """(evaluation docs, few-shot pool, whether the pool is the evaluation data itself)."""
    if settings.data_files:
        rows = load_local(settings.data_files, task.local)
        docs = _prepared_docs(task, rows, settings.data_files)
        pool, same = docs, True
    elif task.loader is not None:
        docs = _prepared_docs(task, task.loader("eval") or [], task.name)
        pool, same = docs, True
        shots = task.loader("fewshot") if settings.num_fewshot > 0 else None
        if shots is not None:
            pool, same = _prepared_docs(task, shots, f"{task.name} few-shot split"), False
    elif task.hub is not None:
        docs = _prepared_docs(task, load_hub(task.hub), f"{task.hub.path}:{task.hub.split}")
        pool, same = docs, True
        if settings.num_fewshot > 0 and task.hub.fewshot_split:
            pool = _prepared_docs(task, load_hub(task.hub, task.hub.fewshot_split), task.hub.fewshot_split)
            same = False
    else:
        raise HarnessError(f"task '{task.name}' has no hub dataset; pass --data-files PATH")
    if settings.limit is not None:
        docs = docs[: settings.limit]
    if task.group is not None:
        docs = task.group(docs)
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


def rolling_context_for(max_length: int, stride: int) -> int:
    """The left context every rolling window keeps when each window predicts `stride` new tokens."""
    if not 1 <= stride <= max_length:
        raise HarnessError(f"--rolling-stride must be between 1 and the model's context ({max_length}), "
                           f"got {stride}")
    return max_length - stride + 1


@dataclass(frozen=True)
class Example:
    """One example as built: its number in the whole run (its seed and few-shot draw follow
    it, whichever shard evaluates it), its document, and the prompt rendered for it."""

    index: int
    doc: Doc
    prompt: str


@dataclass
class RequestState:
    """One request on its way through a run, as HELM's `RequestState`: the example it asks
    about (`Example.index`), the request, and the model's answer once executed."""

    example: int
    request: Request
    answer: Any = None


def takes(method: Callable[..., Any], name: str) -> bool:
    """Whether `method` has a parameter `name` (a plugin's adapter may predate it)."""
    try:
        return name in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def _requests_of(adapter, task: Task, example: Example, delimiter: str,
                 settings: RunSettings) -> list[Request]:
    """The adapter's requests for one example; a field the example lacks is bad data."""
    seed = {"seed": settings.seed + example.index} if takes(adapter.requests, "seed") else {}
    try:
        return adapter.requests(task, example.doc, example.prompt, delimiter, **seed)
    except KeyError as exc:
        origin = settings.data_files or (task.hub.path if task.hub else "the data")
        fields = ", ".join(sorted(k for k in example.doc if not k.startswith("_")))
        raise HarnessError(f"{origin} example {example.index + 1}: no field {exc}, which task '{task.name}' "
                           f"needs (the example has: {fields})") from None


def build(task: Task, adapter, template: PromptTemplate, documents: tuple[list[Doc], list[Doc], bool],
          settings: RunSettings) -> tuple[list[Example], list[RequestState]]:
    """Stage 1: every example's prompt (few-shot context included) and requests, in order."""
    docs, pool, same = documents
    target_delim = template.settings.get("target_delimiter", task.target_delimiter)
    examples: list[Example] = []
    states: list[RequestState] = []
    for i, doc in enumerate(docs):
        shots = sample_shots(pool, settings.num_fewshot, settings.seed, i, same)
        example = Example(i, doc, render_context(task, template, doc, shots))
        examples.append(example)
        states += [RequestState(i, r) for r in _requests_of(adapter, task, example, target_delim, settings)]
    return examples, states


def keep_shard(lm: LanguageModel, examples: list[Example], states: list[RequestState],
               shard: Shard) -> tuple[ShardPlan, list[Example], list[RequestState]]:
    """This shard's plan, examples and requests (examples keep their index in the whole run)."""
    plan, _, _ = select(lm.encode, [e.doc for e in examples], [s.request for s in states],
                        [s.example for s in states], shard)
    kept = set(plan.examples)
    return plan, [e for e in examples if e.index in kept], [s for s in states if s.example in kept]


def execute(lm: LanguageModel | CacheLayer, states: list[RequestState], progress=None,
            rolling_context: int | None = None) -> None:
    """Stage 2: fill in every answer, sending each request type to the model (or the response
    cache in front of it) in one batch call (`rolling_context`: the left context of rolling
    windows; None: the model's own)."""
    kinds = {
        LoglikelihoodRequest: lm.loglikelihood,
        GenerationRequest: lm.generate,
        RollingRequest: lambda reqs, progress: lm.loglikelihood_rolling([r.text for r in reqs], progress,
                                                                        context=rolling_context),
    }
    for kind, method in kinds.items():
        batch = [s for s in states if isinstance(s.request, kind)]
        if batch:
            answers = method([s.request for s in batch], progress=progress)
            for state, answer in zip(batch, answers, strict=True):
                state.answer = answer


def by_example(examples: list[Example], states: list[RequestState]) -> list[list[RequestState]]:
    """Each example's requests, in the order its adapter made them."""
    position = {e.index: k for k, e in enumerate(examples)}
    grouped: list[list[RequestState]] = [[] for _ in examples]
    for state in states:
        grouped[position[state.example]].append(state)
    return grouped


def evaluate(lm: LanguageModel, task: Task, settings: RunSettings, progress_factory=None,
             shard: Shard | None = None,
             documents: tuple[list[Doc], list[Doc], bool] | None = None,
             cache: CacheLayer | None = None) -> TaskRun:
    """Run `task` on `lm` and score it: build → execute → score (only `shard`'s examples when
    given; `documents`: what `load_documents` returned, when the caller read them already;
    `cache`: the response cache layer of `lm` that requests go through, None: straight to `lm`)."""
    template = template_for(task, settings.template)
    if settings.num_fewshot and task.adapter.no_fewshot:
        raise HarnessError(f"task '{task.name}' {task.adapter.no_fewshot}; --num-fewshot does not apply")
    documents = documents if documents is not None else load_documents(task, settings)
    adapter = task.adapter
    if settings.max_new_tokens is not None and isinstance(adapter, Generate):
        adapter = dataclasses.replace(adapter, max_new_tokens=settings.max_new_tokens)
    examples, states = build(task, adapter, template, documents, settings)
    plan = None
    if shard is not None:  # examples keep their global index, so seeds and shots do not move
        plan, examples, states = keep_shard(lm, examples, states, shard)
    stats_before = (lm.stats.tokens, lm.stats.truncated)
    start = time.perf_counter()
    progress = (progress_factory(len(states), f"{lm.name} {task.name}", examples=len(examples))
                if progress_factory else None)  # counts examples; the model reports requests
    rolling_context = (rolling_context_for(lm.max_length, settings.rolling_stride)
                       if settings.rolling_stride is not None else None)
    try:
        execute(cache or lm, states, progress.update if progress else None, rolling_context)
    finally:
        if progress:  # closed even on Ctrl-C, so that the next line starts on a fresh line
            progress.close()
    wall = time.perf_counter() - start
    grouped = by_example(examples, states)
    asked = [[s.request for s in group] for group in grouped]
    answers = [[s.answer for s in group] for group in grouped]
    # stage 3: score
    with_requests = takes(adapter.outcome, "requests")
    outcomes = [adapter.outcome(task, e.doc, a, *([r] if with_requests else []))
                for e, a, r in zip(examples, answers, asked, strict=True)]
    scorers = make_scorers(task)
    items = score_items(scorers, outcomes)
    metrics, samples = score(task, outcomes, [e.prompt for e in examples], [e.index for e in examples],
                             (scorers, items))
    return TaskRun(task, template, metrics, samples, len(examples), wall,
                   lm.stats.tokens - stats_before[0], lm.stats.truncated - stats_before[1], items, plan,
                   [e.doc for e in examples], asked, answers)


def make_scorers(task: Task) -> list[Scorer]:
    return [make() for make in task.scorers]


def score_items(scorers: Sequence[Scorer], outcomes: list[Outcome]) -> dict[str, list[Any]]:
    """Each metric's per-example items (what `harness merge` combines across shards)."""
    return {scorer.name: [scorer.item(o) for o in outcomes] for scorer in scorers}


def metrics_from_items(scorers: Sequence[Scorer], items: dict[str, list[Any]],
                       signatures: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Every metric with its standard error, from the items of all examples in index order.
    `signatures`: recorded ones, for scorers that have not seen the outcomes (`harness merge`)."""
    metrics: dict[str, dict[str, Any]] = {}
    for scorer in scorers:
        values = items[scorer.name]
        entry: dict[str, Any] = {
            "value": scorer.aggregate(values), "stderr": scorer.stderr(values),
            "higher_is_better": scorer.higher_is_better,
        }
        signature = signatures.get(scorer.name) if signatures is not None else scorer.signature()
        if signature:
            entry["signature"] = signature
        metrics[scorer.name] = entry
    return metrics


def score(task: Task, outcomes: list[Outcome], contexts: list[str], indices: Sequence[int] | None = None,
          scored: tuple[Sequence[Scorer], dict[str, list[Any]]] | None = None):
    """Metrics with standard errors, and one sample record per example (`indices`: the examples'
    numbers in the whole run; `scored`: scorers and items already computed; an empty shard
    has no metrics)."""
    if scored is None:
        scorers = make_scorers(task)
        scored = scorers, score_items(scorers, outcomes)
    scorers, items = scored
    metrics = metrics_from_items(scorers, items) if outcomes else {}
    per_example = {s.name: [s.example_score(item) for item in items[s.name]] for s in scorers}
    samples = []
    for i, (outcome, context) in enumerate(zip(outcomes, contexts, strict=True)):
        samples.append({
            "index": indices[i] if indices is not None else i, "prompt": context,
            "prediction": outcome.prediction,
            "references": outcome.references,
            "scores": {name: values[i] for name, values in per_example.items()},
            **({"logprob": outcome.logprob} if outcome.logprob is not None else {}),
            **({"choice_logprobs": outcome.choice_logprobs} if outcome.choice_logprobs else {}),
            **outcome.extra,
        })
    return metrics, samples

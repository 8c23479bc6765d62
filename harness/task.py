"""What a task plugin declares: data source, templates, how the model is asked, scorers.

A task is data, not a class hierarchy: build a `Task` in a module under `tasks/` and list it
in that module's `TASKS`. How the model is asked is one of the `Adapter`s below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.requests import GenerationRequest, LoglikelihoodRequest, RollingRequest
from harness.scorers.base import Outcome, Scorer

Doc = dict[str, Any]
Request = GenerationRequest | LoglikelihoodRequest | RollingRequest


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face hub dataset, read as `load_dataset(path, name, revision=revision,
    data_dir=data_dir, data_files=data_files)` reads it, but only the split(s) a task uses
    (harness/hub_data.py).

    `path`: the repository id, "owner/name". `name`: a config of the dataset card (None: its
    default). `revision`: branch, tag or commit (None: main), e.g. "refs/convert/parquet", the
    hub's parquet conversion. `data_dir`: the folder the patterns are relative to. `data_files`:
    split -> file pattern(s) (`*` within a folder, `**` across); given, they replace the card's.
    """

    path: str
    name: str | None = None
    split: str = "test"
    fewshot_split: str | None = None  # where context examples come from (None: same data)
    revision: str | None = None
    data_dir: str | None = None
    data_files: Mapping[str, str | tuple[str, ...]] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class LocalFormat:
    """How to read `--data-files` beyond jsonl/csv/tsv.

    `parallel`: language suffixes of aligned plain-text files (e.g. ("en", "fr") reads
    `X.en` and `X.fr` line by line into rows {"en": ..., "fr": ...}).
    `text_field`: for a plain .txt file, one row per line with this field.
    `whole_file`: a file of any other name (e.g. enwik8) is one row holding all its text
    under `text_field` (default "text").
    """

    parallel: tuple[str, ...] = ()
    text_field: str | None = None
    whole_file: bool = False


class Adapter:
    """Turns one prompted document into requests, and the model's answers into an `Outcome`."""

    kind: str = ""
    no_fewshot: str = ""  # why --num-fewshot does not apply to this adapter ("" where it does)

    def requests(self, task: Task, doc: Doc, prompt: str, delimiter: str, seed: int = 0) -> list[Request]:
        """The requests that ask the model about `doc` (`seed`: the example's sampling seed)."""
        raise NotImplementedError

    def outcome(self, task: Task, doc: Doc, results: list[Any], requests: Sequence[Request] = ()) -> Outcome:
        """`results`: the model's answers to `requests` (what `requests` returned), in order."""
        raise NotImplementedError


@dataclass(frozen=True)
class Generate(Adapter):
    """Generate until a stop string; the prediction is `postprocess(output)`."""

    until: tuple[str, ...] = ("\n",)
    max_new_tokens: int = 128
    top_k: int | None = None
    postprocess: Callable[[str], str] = str.strip
    kind: str = "generate_until"

    def requests(self, task, doc, prompt, delimiter, seed=0):
        return [GenerationRequest(prompt, self.until, self.max_new_tokens, self.top_k, seed=seed)]

    def outcome(self, task, doc, results, requests=()):
        return Outcome(prediction=self.postprocess(results[0]), references=task.references(doc),
                       extra={"raw_output": results[0]})


@dataclass(frozen=True)
class Loglikelihood(Adapter):
    """Score the target as a continuation of the prompt (e.g. LAMBADA's last word)."""

    kind: str = "loglikelihood"

    def requests(self, task, doc, prompt, delimiter, seed=0):
        return [LoglikelihoodRequest(prompt, delimiter + task.references(doc)[0])]

    def outcome(self, task, doc, results, requests=()):
        r = results[0]
        return Outcome(prediction=r.is_greedy, references=task.references(doc), logprob=r.logprob,
                       is_greedy=r.is_greedy, n_tokens=r.n_tokens)


def choice_record(choices: list[str], gold: int, results: list[Any]) -> dict[str, Any]:
    """What a multiple-choice sample logs beside `prediction` (the chosen index) and
    `choice_logprobs`: the choices' text, the gold index, and whether each choice is the greedy
    continuation (lm-eval's `arguments`, `target` and `resps`)."""
    return {"choices": list(choices), "gold": int(gold),
            "choice_is_greedy": [bool(getattr(r, "is_greedy", False)) for r in results]}


@dataclass(frozen=True)
class MultipleChoice(Adapter):
    """Score every choice as a continuation of the same prompt; predict the most likely."""

    kind: str = "multiple_choice"

    def requests(self, task, doc, prompt, delimiter, seed=0):
        return [LoglikelihoodRequest(prompt, delimiter + c) for c in task.choices(doc)]

    def outcome(self, task, doc, results, requests=()):
        logprobs = [r.logprob for r in results]
        choices = task.choices(doc)
        best = max(range(len(logprobs)), key=lambda i: logprobs[i])
        gold = task.gold(doc)
        return Outcome(prediction=best, gold=gold, choice_logprobs=logprobs,
                       choice_lengths=[len(c) for c in choices], references=[choices[gold]],
                       extra=choice_record(choices, gold, results))


@dataclass(frozen=True)
class Rolling(Adapter):
    """Log-likelihood of the whole rendered text (perplexity tasks)."""

    kind: str = "loglikelihood_rolling"
    no_fewshot: str = "scores whole texts"

    def requests(self, task, doc, prompt, delimiter, seed=0):
        return [RollingRequest(prompt)]

    def outcome(self, task, doc, results, requests=()):
        r = results[0]
        # `text`: what was scored (the rendered document); the task's `unit_counts` (e.g. words and
        # bytes of the original text) are the perplexity denominators.
        text = requests[0].text if requests else ""
        return Outcome(logprob=r.logprob, n_tokens=r.n_tokens, references=[],
                       extra={"text": text, **task.unit_counts(doc)})


@dataclass(frozen=True)
class PartialChoice(Adapter):
    """Partial scoring (Trinh & Le 2018; GPT-2's Winograd, lm-evaluation-harness's Winogrande):
    each choice completes the *context* (`prompt + choice`) and the shared remainder
    `delimiter + references(doc)[0]` is scored; predict the choice under which it is most likely.
    """

    kind: str = "multiple_choice_partial"
    no_fewshot: str = "uses partial scoring (the context differs per choice)"

    def requests(self, task, doc, prompt, delimiter, seed=0):
        remainder = delimiter + task.references(doc)[0]
        return [LoglikelihoodRequest(prompt + c, remainder) for c in task.choices(doc)]

    def outcome(self, task, doc, results, requests=()):
        logprobs = [r.logprob for r in results]
        best = max(range(len(logprobs)), key=lambda i: logprobs[i])
        remainder = task.references(doc)[0]
        choices, gold = task.choices(doc), task.gold(doc)
        return Outcome(prediction=best, gold=gold, choice_logprobs=logprobs,
                       choice_lengths=[len(remainder)] * len(logprobs), references=[choices[gold]],
                       extra=choice_record(choices, gold, results))


@dataclass(frozen=True)
class Task:
    """One evaluation task."""

    name: str
    description: str
    adapter: Adapter
    scorers: Sequence[Callable[[], Scorer]]
    templates: dict[str, str]  # template name -> file name under `prompt_dir`
    prompt_dir: Path
    # Raw data row -> the fields templates and scorers use (a list of docs where one row
    # holds several examples, e.g. CoQA's turns).
    prepare: Callable[[Doc], Doc | list[Doc]] = dict
    references: Callable[[Doc], list[str]] = lambda doc: [doc["target"]]
    choices: Callable[[Doc], list[str]] = lambda doc: list(doc["choices"])
    gold: Callable[[Doc], int] = lambda doc: int(doc["gold"])
    # Perplexity tasks: a document's units (e.g. {"words": ..., "bytes": ...} of its original
    # text), the denominators of word/byte perplexities and bits per byte.
    unit_counts: Callable[[Doc], dict[str, int]] = lambda doc: {}
    hub: HubSource | None = None
    local: LocalFormat = field(default_factory=LocalFormat)
    version: str = "1"
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    # Joins the prepared rows (after --limit) into the texts that are scored, e.g. the lines of
    # PTB into one stream; None: every row is one example.
    group: Callable[[list[Doc]], list[Doc]] | None = None
    # Rows from a source of the task's own instead of `hub` ("eval": the evaluation rows,
    # "fewshot": the few-shot pool, or None for the evaluation rows), e.g. an lm-eval YAML's dataset.
    loader: Callable[[str], list[Doc] | None] | None = None
    lm_eval_config: dict[str, Any] | None = None  # the lm-eval YAML config it was built from

    @property
    def default_template(self) -> str:
        return next(iter(self.templates))

    def metric_names(self) -> list[str]:
        return [make().name for make in self.scorers]

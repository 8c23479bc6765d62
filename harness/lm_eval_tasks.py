"""lm-evaluation-harness's plain YAML task configs as ordinary harness tasks (no lm-eval needed).

    harness run --task-file arc_easy.yaml --model tiny
    harness run --include-path my_tasks/ --task my_task --model tiny

Read as lm-eval 0.4.13's `ConfigurableTask` reads them: `dataset_path`/`dataset_name`/
`dataset_kwargs` (`data_files`, resolved beside the YAML first), `test_split`/`validation_split`/
`training_split`/`fewshot_split`, `output_type`, `doc_to_text`/`doc_to_target`/`doc_to_choice` (a
field name, a Jinja template, a list, or `!function module.name` from a module beside the YAML),
`target_delimiter`, `fewshot_delimiter`, `generation_kwargs` (`until`, `max_gen_toks`, greedy),
`metric_list` (the metrics below), `process_docs`, `include`. Every other key that would change
the numbers is refused in one line that names it.

Requests are lm-eval's: `loglikelihood` scores `doc_to_target` right after the prompt (the
target delimiter only joins few-shot examples), `multiple_choice` scores `target_delimiter +
choice`, `loglikelihood_rolling` scores the whole `doc_to_target`, `generate_until` compares the
raw generation with the target (lm-eval's `exact_match`, no stripping).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from harness_prompts import PROMPTS_DIR
from jinja2 import StrictUndefined, TemplateError

from harness.errors import HarnessError
from harness.prompts import Sandbox
from harness.scorers import (
    Accuracy,
    AccuracyNorm,
    Perplexity,
    bits_per_byte,
    byte_perplexity,
    word_perplexity,
)
from harness.scorers.base import Outcome
from harness.scorers.mean import MeanScorer
from harness.scorers.perplexity import count_bytes, count_words
from harness.task import Generate, Loglikelihood, MultipleChoice, Rolling, Task

TEXT_FIELD = "lm_eval_text"  # the rendered doc_to_text (or, for rolling tasks, doc_to_target)
TEMPLATE = {"lm-eval-yaml": "lm-eval-yaml/text.jinja"}  # renders TEXT_FIELD as the prompt
OUTPUT_TYPES = ("loglikelihood", "multiple_choice", "loglikelihood_rolling", "generate_until")
DEFAULT_METRICS = {  # lm-eval's DEFAULT_METRIC_REGISTRY
    "loglikelihood": ["perplexity", "acc"], "multiple_choice": ["acc", "acc_norm"],
    "loglikelihood_rolling": ["word_perplexity", "byte_perplexity", "bits_per_byte"],
    "generate_until": ["exact_match"],
}
AGGREGATIONS = {"acc": "mean", "acc_norm": "mean", "exact_match": "mean", "perplexity": "perplexity",
                "word_perplexity": "weighted_perplexity", "byte_perplexity": "weighted_perplexity",
                "bits_per_byte": "bits_per_byte"}
EXACT_MATCH_OPTIONS = ("ignore_case", "ignore_punctuation", "ignore_numbers", "regexes_to_ignore")
# Keys that do not change the numbers (descriptive, or lm-eval bookkeeping).
IGNORED = {"task", "tag", "metadata", "should_decontaminate", "doc_to_decontamination_query",
           "task_alias", "dataset_kwargs", "include", "unsafe_code"}
SUPPORTED = IGNORED | {
    "dataset_path", "dataset_name", "test_split", "validation_split", "training_split", "fewshot_split",
    "output_type", "doc_to_text", "doc_to_target", "doc_to_choice", "target_delimiter",
    "fewshot_delimiter", "generation_kwargs", "metric_list", "process_docs",
}
# Keys accepted only with a value that changes nothing (what harness run does anyway).
NEUTRAL = {"num_fewshot": (0, None), "repeats": (1, None), "description": ("", None), "filter_list": (None,)}


# ------------------------------------------------------------------ reading YAML
class _Function:
    """`!function module.name`: `name` from `module.py` beside the YAML that names it."""

    def __init__(self, folder: Path, spec: str) -> None:
        self.folder, self.spec = folder, spec

    def load(self) -> Callable:
        module_name, _, attr = self.spec.rpartition(".")
        path = self.folder / f"{module_name.replace('.', '/')}.py"
        if not module_name or not path.is_file():
            raise HarnessError(f"!function {self.spec}: no module {path}")
        spec = importlib.util.spec_from_file_location(f"lm_eval_yaml_{path.stem}_{abs(hash(path))}", path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        try:
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - user code
            raise HarnessError(f"!function {self.spec}: importing {path} failed: {type(exc).__name__}: "
                               f"{exc}") from None
        if not callable(getattr(module, attr, None)):
            raise HarnessError(f"!function {self.spec}: {path} has no function '{attr}'")
        return getattr(module, attr)


def read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """One lm-eval task YAML, its `include` merged under it, `!function` tags resolved."""
    path = Path(path).expanduser().resolve()
    if path in seen:
        raise HarnessError(f"{path}: include loop ({' -> '.join(p.name for p in (*seen, path))})")

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: _Function(path.parent,
                                                                        loader.construct_scalar(node)))
    try:
        config = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)  # noqa: S506 - SafeLoader
    except FileNotFoundError:
        raise HarnessError(f"task file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"cannot read task file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise HarnessError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(config, dict):
        raise HarnessError(f"{path}: an lm-eval task file is a mapping of keys, got {type(config).__name__}")
    if "include" in config:
        base_path = path.parent / str(config["include"])
        config = {**read_yaml(base_path, (*seen, path)), **config}
        del config["include"]
    return config


# ------------------------------------------------------------------ the task's pieces
@dataclass(frozen=True)
class YamlSpec:
    """The parts of one lm-eval config that decide the numbers."""

    name: str
    path: Path
    config: dict[str, Any]

    @property
    def output_type(self) -> str:
        return self.config.get("output_type", "generate_until")

    def field(self, key: str) -> Any:
        value = self.config.get(key)
        return value.load() if isinstance(value, _Function) else value


class Renderer:
    """lm-eval's `doc_to_text`/`doc_to_target`/`doc_to_choice` semantics, in our Jinja sandbox."""

    def __init__(self, spec: YamlSpec) -> None:
        self.spec = spec
        self.env = Sandbox(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
        self.env.filters["regex_replace"] = lambda s, pattern, repl, count=0: re.sub(pattern, repl, s,
                                                                                    count=count)
        self._compiled: dict[str, Any] = {}
        self.has_choices = spec.config.get("doc_to_choice") is not None

    def render(self, key: str, doc: dict) -> str:
        source = self.spec.config[key]
        try:
            template = self._compiled.get(source) or self._compiled.setdefault(source,
                                                                                self.env.from_string(source))
            return template.render(doc)
        except TemplateError as exc:
            fields = ", ".join(sorted(doc))
            raise HarnessError(f"{self.spec.path}: {key} failed: {exc.message}; the row has: {fields}") \
                from None

    def value(self, key: str, doc: dict) -> Any:
        spec = self.spec.config.get(key)
        if isinstance(spec, _Function):
            return self.spec.field(key)(doc)
        if isinstance(spec, (int, list)) and not isinstance(spec, bool):
            return spec
        if isinstance(spec, dict) and key == "doc_to_choice":
            return list(spec.values())
        if not isinstance(spec, str):
            raise HarnessError(f"{self.spec.path}: {key} must be a field name, a Jinja template, a list "
                               f"or !function, got {type(spec).__name__}")
        if spec in doc:
            return doc[spec]
        text = self.render(key, doc)
        if key == "doc_to_choice":
            try:
                return list(ast.literal_eval(text))
            except (ValueError, SyntaxError):
                raise HarnessError(f"{self.spec.path}: doc_to_choice must render a Python list, got "
                                   f"{text[:60]!r}") from None
        if text.isdigit() and self.has_choices:
            return int(text)
        if key == "doc_to_target" and len(text) >= 2 and text[0] == "[" and text[-1] == "]":
            try:
                return ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return text
        return text


@dataclass(frozen=True)
class TargetLoglikelihood(Loglikelihood):
    """lm-eval's `loglikelihood`: the target is scored right after the prompt, as written."""

    def requests(self, task, doc, prompt, delimiter, seed=0):
        return Loglikelihood.requests(self, task, doc, prompt, "", seed)


class LmEvalExactMatch(MeanScorer):
    """lm-eval's `exact_match` (`exact_match_hf_evaluate`): the raw generation equals the target,
    after the optional regexes / case / punctuation / digit removals."""

    name = "exact_match"

    def __init__(self, ignore_case: bool = False, ignore_punctuation: bool = False,
                 ignore_numbers: bool = False, regexes_to_ignore: Sequence[str] | None = None) -> None:
        self.ignore_case, self.ignore_punctuation = ignore_case, ignore_punctuation
        self.ignore_numbers, self.regexes = ignore_numbers, list(regexes_to_ignore or [])

    def _clean(self, text: str) -> str:
        for pattern in self.regexes:
            text = re.sub(pattern, "", text)
        if self.ignore_case:
            text = text.lower()
        if self.ignore_punctuation:
            text = text.translate(str.maketrans("", "", string.punctuation))
        if self.ignore_numbers:
            text = text.translate(str.maketrans("", "", string.digits))
        return text

    def item(self, outcome: Outcome) -> float:
        pred = self._clean(str(outcome.prediction))
        return float(any(pred == self._clean(r) for r in outcome.references))


def _scorers(spec: YamlSpec) -> tuple[Callable, ...]:
    kind = spec.output_type
    entries = spec.config.get("metric_list") or [{"metric": m} for m in DEFAULT_METRICS[kind]]
    makers: list[Callable] = []
    simple = {"acc": Accuracy, "acc_norm": AccuracyNorm, "perplexity": Perplexity,
              "word_perplexity": word_perplexity, "byte_perplexity": byte_perplexity,
              "bits_per_byte": bits_per_byte}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("metric"), str):
            raise HarnessError(f"{spec.path}: metric_list entries need a 'metric' name")
        metric = entry["metric"]
        if metric not in DEFAULT_METRICS[kind] and not (kind == "multiple_choice" and metric == "acc_norm"):
            raise HarnessError(f"{spec.path}: metric_list: metric '{metric}' is not supported for "
                               f"output_type {kind} (supported: {', '.join(DEFAULT_METRICS[kind])})")
        aggregation = entry.get("aggregation", AGGREGATIONS[metric])
        if aggregation != AGGREGATIONS[metric]:
            raise HarnessError(f"{spec.path}: metric_list: aggregation '{aggregation}' of '{metric}' is not "
                               f"supported (only {AGGREGATIONS[metric]})")
        options = {k: v for k, v in entry.items() if k not in ("metric", "aggregation", "higher_is_better")}
        if metric == "exact_match":
            bad = [k for k in options if k not in EXACT_MATCH_OPTIONS]
            if bad:
                raise HarnessError(f"{spec.path}: metric_list: exact_match option '{bad[0]}' is not "
                                   "supported")
            makers.append(lambda options=options: LmEvalExactMatch(**options))
        elif options:
            raise HarnessError(f"{spec.path}: metric_list: option '{next(iter(options))}' of '{metric}' is "
                               "not supported")
        else:
            makers.append(simple[metric])
    return tuple(makers)


def _adapter(spec: YamlSpec):
    kind = spec.output_type
    if kind == "multiple_choice":
        return MultipleChoice()
    if kind == "loglikelihood":
        return TargetLoglikelihood()
    if kind == "loglikelihood_rolling":
        return Rolling()
    kwargs = dict(spec.config.get("generation_kwargs") or {})
    until = kwargs.pop("until", [spec.config.get("fewshot_delimiter", "\n\n")])
    until = [until] if isinstance(until, str) else list(until)
    max_new = int(kwargs.pop("max_gen_toks", kwargs.pop("max_new_tokens", 256)))
    do_sample = kwargs.pop("do_sample", False)
    temperature = kwargs.pop("temperature", 0.0)
    if do_sample or (temperature or 0) > 0:
        raise HarnessError(f"{spec.path}: generation_kwargs: do_sample/temperature (sampling) is not "
                           "supported; harness runs these tasks greedily")
    if kwargs:
        raise HarnessError(f"{spec.path}: generation_kwargs: '{next(iter(kwargs))}' is not supported "
                           "(supported: until, max_gen_toks, do_sample: false, temperature: 0)")
    return Generate(until=tuple(until), max_new_tokens=max_new, postprocess=lambda text: text)


def _check_keys(spec: YamlSpec) -> None:
    for key, value in spec.config.items():
        if key in NEUTRAL:
            if value not in NEUTRAL[key]:
                hint = "; pass --num-fewshot instead" if key == "num_fewshot" else ""
                raise HarnessError(f"{spec.path}: key '{key}' is not supported by harness run (only "
                                   f"{NEUTRAL[key][0]!r}{hint})")
        elif key not in SUPPORTED:
            raise HarnessError(f"{spec.path}: key '{key}' is not supported by harness run")
    if spec.output_type not in OUTPUT_TYPES:
        raise HarnessError(f"{spec.path}: output_type '{spec.output_type}' is not supported "
                           f"(one of: {', '.join(OUTPUT_TYPES)})")
    extra = set(spec.config.get("dataset_kwargs") or {}) - {"data_files", "trust_remote_code"}
    if extra:
        raise HarnessError(f"{spec.path}: dataset_kwargs key '{sorted(extra)[0]}' is not supported "
                           "(only data_files)")
    for key in ("doc_to_text", "doc_to_target"):
        if key not in spec.config:
            raise HarnessError(f"{spec.path}: key '{key}' is missing")
    if spec.output_type == "multiple_choice" and "doc_to_choice" not in spec.config:
        raise HarnessError(f"{spec.path}: output_type multiple_choice needs doc_to_choice")
    if "dataset_path" not in spec.config:
        raise HarnessError(f"{spec.path}: key 'dataset_path' is missing")


# ------------------------------------------------------------------ data
def _data_files(spec: YamlSpec) -> Any:
    """`dataset_kwargs.data_files` with relative paths found beside the YAML (else as given)."""
    files = (spec.config.get("dataset_kwargs") or {}).get("data_files")

    def resolve(item: Any) -> Any:
        if isinstance(item, list):
            return [resolve(i) for i in item]
        local = spec.path.parent / str(item)
        return str(local) if not Path(str(item)).is_absolute() and local.exists() else str(item)

    if isinstance(files, dict):
        return {split: resolve(v) for split, v in files.items()}
    return resolve(files) if files is not None else None


def _load_split(spec: YamlSpec, split: str) -> list[dict]:
    """Rows of one split as lm-eval loads them (`datasets.load_dataset`), then `process_docs`."""
    import datasets

    from harness.data import load_hub
    from harness.task import HubSource

    path, name = spec.config["dataset_path"], spec.config.get("dataset_name")
    files = _data_files(spec)
    if files is None:
        dataset: Any = load_hub(HubSource(path, name, split=split))
    else:
        try:
            dataset = datasets.load_dataset(path, name, data_files=files, split=split)
        except Exception as exc:  # noqa: BLE001 - datasets raises many types
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise HarnessError(f"{spec.path}: cannot load {path} data_files {files} (split {split}): "
                               f"{reason}") from None
    process = spec.field("process_docs")
    if process is not None:
        if not isinstance(dataset, datasets.Dataset):
            dataset = datasets.Dataset.from_list(dataset)
        try:
            dataset = process(dataset)
        except Exception as exc:  # noqa: BLE001 - user code
            raise HarnessError(f"{spec.path}: process_docs failed: {type(exc).__name__}: {exc}") from None
    return [dict(row) for row in dataset]


def _splits(spec: YamlSpec) -> tuple[str, str | None]:
    """(evaluation split, few-shot split or None) as lm-eval picks them."""
    cfg = spec.config
    evaluation = cfg.get("test_split") or cfg.get("validation_split")
    if not evaluation:
        raise HarnessError(f"{spec.path}: needs test_split or validation_split")
    fewshot = cfg.get("fewshot_split") or cfg.get("training_split") or (
        cfg.get("validation_split") if cfg.get("validation_split") != evaluation else None)
    return evaluation, fewshot


# ------------------------------------------------------------------ building the task
def _prepare(spec: YamlSpec, renderer: Renderer) -> Callable[[dict], dict]:
    kind = spec.output_type

    def prepare(row: dict) -> dict:
        target = renderer.value("doc_to_target", row)
        doc: dict[str, Any] = {"lm_eval_doc": row}
        if kind == "multiple_choice" or (kind == "generate_until" and renderer.has_choices):
            choices = [str(c) for c in renderer.value("doc_to_choice", row)]
            if isinstance(target, list):
                raise HarnessError(f"{spec.path}: doc_to_target gives several targets; not supported")
            gold = choices.index(target) if isinstance(target, str) and target in choices else target
            if not isinstance(gold, int):
                raise HarnessError(f"{spec.path}: doc_to_target {target!r} is neither an index nor one "
                                   "of the choices")
            doc.update(choices=choices, gold=gold, target=choices[gold] if 0 <= gold < len(choices) else "")
        else:
            doc["target"] = target[0] if isinstance(target, list) and target else str(target)
        text = doc["target"] if kind == "loglikelihood_rolling" else renderer.value("doc_to_text", row)
        if not isinstance(text, str):
            raise HarnessError(f"{spec.path}: doc_to_text must give text (multiple-input tasks such as "
                               "winogrande are not supported)")
        doc[TEXT_FIELD] = text
        return doc

    return prepare


def _words_and_bytes(doc: dict) -> dict[str, int]:
    """A rolling task's perplexity denominators: words and UTF-8 bytes of the scored target."""
    return {"words": count_words(doc[TEXT_FIELD]), "bytes": count_bytes(doc[TEXT_FIELD])}


def yaml_task(spec: YamlSpec) -> Task:
    """The harness `Task` for one lm-eval config."""
    _check_keys(spec)
    renderer = Renderer(spec)
    evaluation, fewshot = _splits(spec)
    version = (spec.config.get("metadata") or {}).get("version", "Yaml")

    def loader(which: str) -> list[dict] | None:
        if which == "fewshot":
            return _load_split(spec, fewshot) if fewshot else None
        return _load_split(spec, evaluation)

    return Task(
        name=spec.name,
        description=f"lm-eval YAML task {spec.path.name} ({spec.output_type})",
        adapter=_adapter(spec),
        scorers=_scorers(spec),
        templates=TEMPLATE,
        prompt_dir=PROMPTS_DIR,
        prepare=_prepare(spec, renderer),
        unit_counts=_words_and_bytes if spec.output_type == "loglikelihood_rolling" else lambda doc: {},
        version=str(version),
        target_delimiter=str(spec.config.get("target_delimiter", " ")),
        fewshot_delimiter=str(spec.config.get("fewshot_delimiter", "\n\n")),
        loader=loader,
        lm_eval_config=_plain(spec.config),
    )


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    """The config as JSON can hold it (`!function` as its text, as lm-eval dumps it)."""
    def plain(value: Any) -> Any:
        if isinstance(value, _Function):
            return f"!function {value.spec}"
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return plain(config)


def load_task_file(path: Path) -> Task:
    """The task of one lm-eval YAML file."""
    path = Path(path).expanduser()
    config = read_yaml(path)
    name = config.get("task")
    if not isinstance(name, str):
        raise HarnessError(f"{path}: key 'task' must be one task name (group configs are not supported)")
    return yaml_task(YamlSpec(name, path.resolve(), config))


def load_include_path(folder: Path) -> tuple[list[Task], dict[str, str]]:
    """Every task YAML under `folder` (recursively): the tasks, and for tasks that cannot be
    built, why (reported only if such a task is asked for)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise HarnessError(f"--include-path {folder} is not a folder")
    tasks, broken = [], {}
    for path in sorted(folder.rglob("*.yaml")) + sorted(folder.rglob("*.yml")):
        try:
            config = read_yaml(path)
        except HarnessError:
            continue  # not a task file we can read (e.g. a fragment for `include`)
        name = config.get("task")
        if not isinstance(name, str):
            continue  # a group config, or an `include` fragment
        try:
            tasks.append(yaml_task(YamlSpec(name, path.resolve(), config)))
        except HarnessError as exc:
            broken[name] = str(exc)
    return tasks, broken


def yaml_tasks_for(task_files: Sequence[str], include_path: Path | None, names: list[str],
                   explicit: bool) -> tuple[list[Task], list[str]]:
    """`--task-file` / `--include-path`: the YAML tasks to register, and the task names to run
    (the files' tasks, plus `--task` where given explicitly)."""
    tasks = [load_task_file(Path(f)) for f in task_files]
    broken: dict[str, str] = {}
    if include_path is not None:
        found, broken = load_include_path(include_path)
        tasks += [t for t in found if t.name not in {k.name for k in tasks}]
    selected = [t.name for t in tasks[: len(task_files)]]
    if explicit or not task_files:
        selected += [n for n in names if n not in selected]
    for name in selected:
        if name in broken:
            raise HarnessError(broken[name])
    return tasks, selected

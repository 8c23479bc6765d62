"""`harness new-task NAME --kind KIND [--package DIR]`: a working task plugin to start from.

It writes the task module, its prompt template, the entry-point stanza that registers it and a
test that runs the task on the built-in `tiny` model (no download) over a few example rows.
Without `--package` the files go into this source tree (tasks/, prompts/, tests/, pyproject.toml);
with it, DIR becomes (or gains a task in) a separately installable plugin distribution that
points at its own prompts folder.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

ENTRY_GROUP = '[project.entry-points."harness.tasks"]'
NAME = re.compile(r"^[a-z][a-z0-9-]*$")


@dataclass(frozen=True)
class Kind:
    """What one request type needs: adapter, scorers, the row -> fields function, a template
    and example rows (the test's data, also a sample of the data format)."""

    adapter: str
    scorers: str
    imports: str
    prepare: str
    template: str
    rows: tuple[dict, ...]
    task_fields: str = ""  # more `Task(...)` arguments, each on a new line (e.g. unit_counts=...)


KINDS = {
    "multiple-choice": Kind(
        adapter="MultipleChoice()", scorers="(Accuracy, AccuracyNorm)",
        imports="from harness.scorers import Accuracy, AccuracyNorm\n"
                "from harness.task import MultipleChoice, Task",
        prepare='''def prepare(row: dict) -> dict:
    """A raw row -> template fields: `choices` (list of texts) and `gold` (index of the right one)
    are what MultipleChoice scores; each choice is scored as target_delimiter + choice after the
    rendered prompt, so the template must not end with a space."""
    return {"question": row["question"], "choices": list(row["choices"]), "gold": int(row["gold"])}''',
        template="Question: {{ question }}\nAnswer:\n",
        rows=({"question": "What colour is the sky on a clear day?", "choices": ["blue", "green"], "gold": 0},
              {"question": "How many legs has a cat?", "choices": ["two", "four", "six"], "gold": 1},
              {"question": "Which is a fruit?", "choices": ["carrot", "apple"], "gold": 1})),
    "generate": Kind(
        adapter='Generate(until=("\\n",), max_new_tokens=16)', scorers="(ExactMatch,)",
        imports="from harness.scorers import ExactMatch\nfrom harness.task import Generate, Task",
        prepare='''def prepare(row: dict) -> dict:
    """A raw row -> template fields; `target` is the reference the output is compared with."""
    return {"question": row["question"], "target": row["answer"]}''',
        template="Question: {{ question }}\nAnswer:\n",
        rows=({"question": "What is the capital of France?", "answer": "Paris"},
              {"question": "What is two plus two?", "answer": "four"})),
    "loglikelihood": Kind(
        adapter="Loglikelihood()", scorers="(Accuracy, Perplexity)",
        imports="from harness.scorers import Accuracy, Perplexity\n"
                "from harness.task import Loglikelihood, Task",
        prepare='''def prepare(row: dict) -> dict:
    """A raw row -> template fields; `target` is scored as target_delimiter + target after the
    rendered prompt (acc: it is the greedy continuation; perplexity: of the target)."""
    return {"context": row["context"], "target": row["target"]}''',
        template="{{ context }}\n",
        rows=({"context": "The cat sat on the", "target": "mat"},
              {"context": "Once upon a", "target": "time"})),
    "rolling": Kind(
        adapter="Rolling()", scorers="(token_perplexity, byte_perplexity)",
        imports="from harness.scorers import byte_perplexity, token_perplexity\n"
                "from harness.task import Rolling, Task",
        prepare='''def prepare(row: dict) -> dict:
    """A raw row -> template fields."""
    return {"text": row["text"]}


def unit_counts(doc: dict) -> dict:
    """The denominators of per-unit perplexities (here the UTF-8 bytes of the text, for
    byte_perplexity)."""
    return {"bytes": len(doc["text"].encode("utf-8"))}''',
        task_fields="\n        unit_counts=unit_counts,",
        template="{{ text }}\n",
        rows=({"text": "A short paragraph of text whose log-likelihood is scored as a whole."},
              {"text": "Another one, so that the perplexity averages two texts."})),
}


@dataclass(frozen=True)
class Layout:
    """Where the files of one task go, and how the module and its test import things."""

    module: Path
    template: Path
    test: Path
    pyproject: Path
    import_path: str        # e.g. harness_tasks.my_task
    prompt_dir: str         # the module's expression for its prompts folder
    prompt_import: str      # the import line that expression needs
    template_name: str      # relative to the prompts folder


def _identifier(name: str) -> str:
    return name.replace("-", "_")


def layout(name: str, package: Path | None, repo: Path) -> Layout:
    module = _identifier(name)
    if package is None:
        return Layout(repo / "tasks" / f"{module}.py", repo / "prompts" / name / "plain.jinja",
                      repo / "tests" / f"test_task_{module}.py", repo / "pyproject.toml",
                      f"harness_tasks.{module}", "PROMPTS_DIR", "from harness_prompts import PROMPTS_DIR",
                      f"{name}/plain.jinja")
    pkg = _identifier(package.resolve().name.lower())
    if not pkg.isidentifier():
        raise HarnessError(f"--package folder name '{package.name}' is not a Python package name; "
                           "use letters, digits, '-' or '_'")
    return Layout(package / pkg / f"{module}.py", package / pkg / "prompts" / name / "plain.jinja",
                  package / "tests" / f"test_{module}.py", package / "pyproject.toml",
                  f"{pkg}.{module}", 'Path(__file__).parent / "prompts"', "from pathlib import Path",
                  f"{name}/plain.jinja")


def module_text(name: str, kind: Kind, where: Layout) -> str:
    return f'''"""Task `{name}`, written by harness new-task: edit its description, data and scorers."""

from __future__ import annotations

{where.prompt_import}

{kind.imports}

# template name -> file under prompt_dir; the first is the default, --template all runs each
TEMPLATES = {{"plain": "{where.template_name}"}}


{kind.prepare}


TASKS = [
    Task(
        name="{name}",
        description="{name}: describe the task here",
        adapter={kind.adapter},
        scorers={kind.scorers},
        templates=TEMPLATES,
        prompt_dir={where.prompt_dir},
        prepare=prepare,{kind.task_fields}
        # joins the rendered prompt and each continuation (the template itself ends without one)
        target_delimiter=" ",
        # hub=HubSource("user/dataset", split="test"),  # optional: without it, pass --data-files
    )
]
'''


def test_text(name: str, kind: Kind, where: Layout) -> str:
    function = _identifier(name)
    rows = json.dumps(list(kind.rows), indent=4, ensure_ascii=False)
    harness = "from harness import models\nfrom harness.runner import RunSettings, evaluate"
    plugin = f"from {where.import_path} import TASKS"
    # isort's order: in this tree harness_tasks is third-party, in a plugin package its own first-party
    imports = f"{plugin}\n\n{harness}" if where.import_path.startswith("harness_tasks.") \
        else f"{harness}\n\n{plugin}"
    return f'''"""Task `{name}` runs end to end on the built-in tiny model (random weights, no download)."""

import json
import math

{imports}

ROWS = {rows}


def test_{function}_runs_on_tiny(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(row) + "\\n" for row in ROWS), encoding="utf-8")
    (task,) = TASKS
    lm = models.load("tiny")
    run = evaluate(lm, task, RunSettings(data_files=str(data)))
    assert run.n_examples == len(ROWS) and len(run.samples) == len(ROWS)
    for metric in task.metric_names():
        assert math.isfinite(run.metrics[metric]["value"]), metric
'''


def package_pyproject(package: Path, pkg: str) -> str:
    return f'''[build-system]
requires = ["setuptools>=68", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "{package.resolve().name}"
version = "0.1.0"
description = "harness task plugins"
requires-python = ">=3.10"
dependencies = ["harness"]

[tool.setuptools]
packages = ["{pkg}"]

[tool.setuptools.package-data]
{pkg} = ["prompts/**/*.jinja"]

[tool.pytest.ini_options]
pythonpath = ["."]

# harness finds tasks through this entry-point group (`harness tasks` lists them once installed)
{ENTRY_GROUP}
'''


def add_entry_point(pyproject: Path, entry: str) -> None:
    """Append `entry` to the harness.tasks entry-point table (created at the end if absent)."""
    text = pyproject.read_text(encoding="utf-8") if pyproject.exists() else ""
    key = entry.split("=")[0].strip()
    if re.search(rf"^{re.escape(key)}\s*=", text, re.MULTILINE):
        raise HarnessError(f"{pyproject} already registers an entry point '{key}'; choose another name")
    lines = text.splitlines()
    if ENTRY_GROUP not in lines:
        lines += ["", ENTRY_GROUP] if lines else [ENTRY_GROUP]
    at = lines.index(ENTRY_GROUP) + 1
    while at < len(lines) and lines[at].strip() and not lines[at].lstrip().startswith("["):
        at += 1
    lines.insert(at, entry)
    pyproject.write_text("\n".join(lines) + "\n", encoding="utf-8")


def new_task(name: str, kind_name: str, package: Path | None, repo: Path) -> list[Path]:
    """Write the task's files; return them (the pyproject last). Nothing is overwritten."""
    if not NAME.match(name):
        raise HarnessError(f"task name '{name}' must be lower-case letters, digits and '-', "
                           "starting with a letter (e.g. my-task)")
    kind = KINDS[kind_name]
    where = layout(name, package, repo)
    existing = [p for p in (where.module, where.template, where.test) if p.exists()]
    if existing:
        raise HarnessError(f"{existing[0]} exists already; choose another task name")
    if package is None and not (repo / "tasks").is_dir():
        raise HarnessError(f"no tasks/ folder in {repo}; pass --package DIR to write a plugin package")
    where.module.parent.mkdir(parents=True, exist_ok=True)
    where.template.parent.mkdir(parents=True, exist_ok=True)
    where.test.parent.mkdir(parents=True, exist_ok=True)
    if package is not None:
        init = where.module.parent / "__init__.py"
        if not init.exists():
            init.write_text('"""harness task plugins."""\n', encoding="utf-8")
        if not where.pyproject.exists():
            where.pyproject.write_text(package_pyproject(package, where.module.parent.name), encoding="utf-8")
    where.template.write_text(kind.template, encoding="utf-8")
    where.module.write_text(module_text(name, kind, where), encoding="utf-8")
    where.test.write_text(test_text(name, kind, where), encoding="utf-8")
    add_entry_point(where.pyproject, f'{_identifier(name)} = "{where.import_path}:TASKS"')
    return [where.module, where.template, where.test, where.pyproject]

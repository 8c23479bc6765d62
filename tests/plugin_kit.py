"""A real, separately "installed" task-plugin distribution for the robustness tests.

`install_kit(folder)` writes a package and a `*.dist-info` folder declaring entry points in the
`harness.tasks` group; putting `folder` on `sys.path` (or `PYTHONPATH` for a subprocess) makes
`importlib.metadata` find it exactly as it finds a pip-installed plugin. It declares:

* `kit`: working tasks on cheap requests: `kit-ll` (log-likelihood, acc), `kit-mc` (multiple
  choice: the choices share their context, which the native engine computes once), `kit-greedy` and
  `kit-sample` (generation, greedy and top-k sampling), `kit-rolling` (whole-text log-likelihood);
* `kitbad`: `kit-bad-requests` (raises while building requests), `kit-bad-scoring` (its scorer
  raises), `kit-bad-prepare` (raises while preparing rows), `kit-bomb` (a template that renders
  gigabytes), `kit-endless` (one that loops for ever), `kit-bad-syntax` (one that does not parse);
* `kitbroken`: a module that fails to import.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

PACKAGE = "harness_testkit"

GOOD = '''
from pathlib import Path

from harness.scorers import Accuracy, ExactMatch
from harness.scorers.mean import MeanScorer
from harness.task import Generate, Loglikelihood, MultipleChoice, Rolling, Task

HERE = Path(__file__).parent
TEMPLATES = {"plain": "plain.jinja", "missing-field": "missing.jinja"}


class MeanLogprob(MeanScorer):
    name = "mean_logprob"

    def item(self, outcome):
        return outcome.logprob


def _task(name, adapter, scorers, templates=TEMPLATES):
    return Task(name=name, description=f"test kit: {name}", adapter=adapter, scorers=scorers,
                templates=templates, prompt_dir=HERE)


TASKS = [
    _task("kit-ll", Loglikelihood(), (Accuracy, MeanLogprob)),
    _task("kit-mc", MultipleChoice(), (Accuracy,)),
    _task("kit-greedy", Generate(until=("\\n",), max_new_tokens=6), (ExactMatch,)),
    _task("kit-sample", Generate(until=(), max_new_tokens=6, top_k=50), (ExactMatch,)),
    _task("kit-rolling", Rolling(), (MeanLogprob,), {"text": "text.jinja"}),
]
'''

BAD = '''
from harness.scorers import Accuracy
from harness.task import Loglikelihood, Task
from harness_testkit.good import HERE, TEMPLATES


class RaisingAdapter(Loglikelihood):
    def requests(self, task, doc, prompt, delimiter):
        raise RuntimeError("kit: cannot build requests")


class BrokenScorer(Accuracy):
    def aggregate(self, items):
        raise ZeroDivisionError("kit: scorer bug")


def bad_prepare(row):
    raise ValueError("kit: cannot prepare a row")


TASKS = [
    Task("kit-bad-requests", "raises in requests", RaisingAdapter(), (Accuracy,), TEMPLATES, HERE),
    Task("kit-bomb", "renders gigabytes", Loglikelihood(), (Accuracy,), {"bomb": "bomb.jinja"}, HERE),
    Task("kit-endless", "renders forever", Loglikelihood(), (Accuracy,), {"endless": "endless.jinja"}, HERE),
    Task("kit-bad-syntax", "template syntax error", Loglikelihood(), (Accuracy,), {"syntax": "syntax.jinja"},
         HERE),
    Task("kit-bad-scoring", "raises in scoring", Loglikelihood(), (BrokenScorer,), TEMPLATES, HERE),
    Task("kit-bad-prepare", "raises in prepare", Loglikelihood(), (Accuracy,), TEMPLATES, HERE,
         prepare=bad_prepare),
]
'''

BROKEN = '''
import harness_testkit_missing_dependency  # noqa: F401 - fails on purpose

TASKS = []
'''

ENTRY_POINTS = f"""[harness.tasks]
kit = {PACKAGE}.good:TASKS
kitbad = {PACKAGE}.bad:TASKS
kitbroken = {PACKAGE}.broken_import:TASKS
"""


def install_kit(root: Path) -> Path:
    """Write the kit under `root` and return `root` (the folder to put on the path)."""
    package = root / PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    files = {
        "__init__.py": "", "good.py": GOOD, "bad.py": BAD, "broken_import.py": BROKEN,
        "plain.jinja": "{{ context }}", "missing.jinja": "{{ context }} {{ no_such_field }}",
        "text.jinja": "{{ text }}",
        # 5,000 copies of a 1 MB string: 5 GB if rendered whole
        "bomb.jinja": '{% set s = "a" * 1000000 %}{% for i in range(5000) %}{{ s }}{% endfor %}{{ context }}',
        "endless.jinja": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
                         "{{ context }}",
        "syntax.jinja": "{{ context }} {% for x in %}",
    }
    for name, text in files.items():
        (package / name).write_text(text, encoding="utf-8")
    info = root / f"{PACKAGE}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def kit_rows(n: int, long_rows: tuple[int, ...] = ()) -> list[dict]:
    """`n` distinct rows {context, target, text, choices, gold} of varied lengths (several widths).

    Rows listed in `long_rows` have a context longer than the tiny model's 512-token context;
    every `text` (for kit-rolling) spans two windows of the tiny model.
    """
    words = "the cat sat on a warm mat while rain fell softly over quiet hills and old roofs".split()
    rows = []
    for i in range(n):
        size = 300 if i in long_rows else 3 + (i * 7) % 40
        context = " ".join(words[(i + k) % len(words)] for k in range(size))
        text = " ".join(words[(i * 3 + k) % len(words)] for k in range(120 + 10 * i))
        choices = [words[(i * 5 + k + 1) % len(words)] + "!" * k for k in range(3)]  # never the target
        rows.append({"context": f"{i}: {context}", "target": words[(i * 5) % len(words)],
                     "text": text, "choices": choices, "gold": i % 3})
    return rows


def kit_env(root: Path) -> dict[str, str]:
    """Environment for a subprocess that sees the kit."""
    paths = [str(root), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}

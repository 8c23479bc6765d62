"""Suites: named lists of tasks, stored as data (`tasks/suites/<name>.json`, installed with
`harness_tasks`), and the per-task `--data-files TASK=PATH` mapping a suite run needs."""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness.errors import HarnessError, did_you_mean

_TASK_NAME = re.compile(r"[A-Za-z0-9_-]+")


def suites_dir() -> Path:
    from harness_tasks import __file__ as tasks_init

    return Path(tasks_init).resolve().parent / "suites"


def suite_names() -> list[str]:
    return sorted(p.stem for p in suites_dir().glob("*.json"))


def load_suite(name: str) -> dict:
    """The suite's record: {"name", "description", "tasks": [...]}."""
    path = suites_dir() / f"{name}.json"
    if not path.is_file():
        hint = did_you_mean(name, suite_names())
        raise HarnessError(f"unknown suite '{name}'.{hint} Suites: {', '.join(suite_names())}")
    try:
        suite = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise HarnessError(f"suite file {path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    tasks = suite.get("tasks") if isinstance(suite, dict) else None
    if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks) or not tasks:
        raise HarnessError(f"suite file {path} needs a non-empty list of task names under \"tasks\"")
    return suite


def suite_tasks(names: list[str]) -> list[str]:
    """The tasks of the suites `names`, in order, each once."""
    tasks: list[str] = []
    for name in names:
        tasks += [t for t in load_suite(name)["tasks"] if t not in tasks]
    return tasks


def data_files_mapping(spec: str | None) -> dict[str, str] | None:
    """`--data-files TASK=PATH[,TASK=PATH...]` as a mapping; None when `spec` is one PATH."""
    if not spec:
        return None
    items = [item.strip() for item in spec.split(",")]
    if not all(_TASK_NAME.fullmatch(item.partition("=")[0].strip()) and "=" in item for item in items):
        if "=" in spec and _TASK_NAME.fullmatch(spec.partition("=")[0].strip()):
            raise HarnessError(
                f"--data-files '{spec}' mixes TASK=PATH pairs with other items; use one PATH, or "
                "TASK=PATH pairs separated by commas"
            )
        return None
    mapping = {}
    for item in items:
        name, _, path = item.partition("=")
        if not path.strip():
            raise HarnessError(f"--data-files item '{item}' has no path after '='")
        mapping[name.strip()] = path.strip()
    return mapping


def data_files_for(spec: str | None, task: str) -> str | None:
    """`--data-files` for one task: one `PATH` applies to every task; with `TASK=PATH` pairs each
    named task reads its own file and the others their hub dataset."""
    mapping = data_files_mapping(spec)
    return spec if mapping is None else mapping.get(task)


def check_data_files(spec: str | None, tasks: list[str]) -> None:
    """A `TASK=PATH` pair must name a task of the run (catches typos before anything runs)."""
    mapping = data_files_mapping(spec) or {}
    for name in mapping:
        if name not in tasks:
            hint = did_you_mean(name, tasks)
            raise HarnessError(f"--data-files names task '{name}', which this run does not have.{hint}")

"""Find task plugins through the `harness.tasks` entry-point group."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points

from harness.errors import HarnessError, did_you_mean
from harness.task import Task

GROUP = "harness.tasks"


@dataclass
class Registry:
    tasks: dict[str, Task] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)  # plugin name -> why it failed

    def get(self, name: str) -> Task:
        if name in self.tasks:
            return self.tasks[name]
        hint = did_you_mean(name, sorted(self.tasks))
        broken = "".join(f" (plugin '{p}' failed to load: {why})" for p, why in self.broken.items())
        raise HarnessError(f"unknown task '{name}'.{hint}{broken} See: harness tasks")


def _as_tasks(obj: object) -> list[Task]:
    if callable(obj) and not isinstance(obj, Task):
        obj = obj()
    items = [obj] if isinstance(obj, Task) else list(obj)  # type: ignore[arg-type]
    bad = [type(t).__name__ for t in items if not isinstance(t, Task)]
    if bad:
        raise TypeError(f"expected Task objects, got {', '.join(bad)}")
    return items


def discover() -> Registry:
    """Load every plugin; one that fails is recorded and the others still load."""
    registry = Registry()
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            tasks = _as_tasks(ep.load())
        except Exception as exc:  # noqa: BLE001 - a plugin may fail in any way
            registry.broken[ep.name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            continue
        for task in tasks:
            if task.name in registry.tasks:
                registry.broken[ep.name] = f"task '{task.name}' is already defined"
                continue
            registry.tasks[task.name] = task
    return registry

"""Prompt templates: Jinja2 files rendered in a sandbox, with strict undefined fields.

A template renders the prompt for one document. Top-level `{% set %}` of a literal may
override the task's `target_delimiter` / `fewshot_delimiter` or add a `description`
(text put once before the context examples).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import DictLoader, StrictUndefined, TemplateError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from harness.errors import HarnessError

SETTINGS = ("target_delimiter", "fewshot_delimiter", "description")


LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")  # what str.splitlines splits at
MAX_REPEAT = 1_000_000  # largest string or list a template's `*` may build
MAX_EXPONENT = 1_000
MAX_PROMPT_CHARS = 300_000  # default cap on one rendered prompt (HARNESS_MAX_PROMPT_CHARS)
RENDER_SECONDS = 10.0  # default time limit for rendering one prompt (HARNESS_TEMPLATE_SECONDS)
RENDER_MEMORY = 256 << 20  # address space one rendering may add (bytes), where the OS enforces it


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        number = float(value)
    except ValueError:
        raise HarnessError(f"{name} must be a number, got '{value}'") from None
    if number <= 0:
        raise HarnessError(f"{name} must be positive, got '{value}'")
    return number


def render_limits() -> tuple[int, float]:
    """(characters, seconds) one prompt may take to render; overridden by the environment."""
    return (int(_env_number("HARNESS_MAX_PROMPT_CHARS", MAX_PROMPT_CHARS)),
            _env_number("HARNESS_TEMPLATE_SECONDS", RENDER_SECONDS))


class _RenderTimeout(Exception):
    """Raised into a rendering that ran past its time limit."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the Python code of a rendering (e.g. nested loops) after `seconds`; only the
    main thread can take the alarm, elsewhere the output loop checks the clock."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise _RenderTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _memory_limit(extra: int) -> Iterator[None]:
    """Cap the process's address space at its current size plus `extra` while a template renders,
    so that one huge string operation (a `replace`, a `center`) fails with MemoryError instead
    of filling the machine. Linux only; a no-op where the limit cannot be read or set."""
    try:
        import resource

        with open("/proc/self/statm", encoding="ascii") as handle:
            current = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = current + extra
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        if soft != resource.RLIM_INFINITY and soft <= cap:
            raise OSError("already limited")
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ImportError, OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox (no attributes starting with `_`, no unsafe callables, no
    mutation of data, `range` capped), and `*`/`**` capped so a template cannot exhaust memory."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is larger than {MAX_EXPONENT}")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_REPEAT:
                    raise SecurityError(f"repetition would build {len(seq) * n} items (limit {MAX_REPEAT})")
        return super().call_binop(context, operator, left, right)


def _environment() -> ImmutableSandboxedEnvironment:
    return Sandbox(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)


@dataclass
class PromptTemplate:
    """One compiled template and the settings it declares."""

    name: str
    path: Path
    source: str
    settings: dict[str, str]

    def __post_init__(self) -> None:
        env = _environment()
        env.loader = DictLoader({str(self.path): self.source})
        # compiling folds constant expressions (`"a"|center(N)` runs here): bounded as rendering is
        with self._limits("compile"):
            self._template = env.get_template(str(self.path))

    @contextlib.contextmanager
    def _limits(self, what: str) -> Iterator[None]:
        """Memory and time limits around compiling or rendering; past them, one line."""
        seconds = render_limits()[1]
        try:
            with _memory_limit(RENDER_MEMORY), _time_limit(seconds):
                yield
        except _RenderTimeout:
            raise HarnessError(
                f"template '{self.name}' ({self.path}) took more than {seconds:g} s to {what} one "
                "prompt (HARNESS_TEMPLATE_SECONDS sets the limit); look for nested loops") from None
        except MemoryError:
            raise HarnessError(
                f"template '{self.name}' ({self.path}) needs more than {RENDER_MEMORY >> 20} MiB of "
                f"memory to {what} one prompt; look for a huge replace, join, center or format") from None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()

    def _bounded(self, doc: dict[str, Any], max_chars: int, seconds: float) -> str:
        """Render piece by piece, stopping as soon as the prompt passes `max_chars`."""
        deadline = time.monotonic() + seconds
        parts: list[str] = []
        size = 0
        for part in self._template.generate(doc):  # a dict: a field may be called "self"
            size += len(part)
            if size > max_chars:
                raise HarnessError(
                    f"template '{self.name}' ({self.path}) renders a prompt of more than {max_chars} "
                    "characters (HARNESS_MAX_PROMPT_CHARS sets the limit)")
            if time.monotonic() > deadline:
                raise _RenderTimeout
            parts.append(part)
        return "".join(parts)

    def render(self, doc: dict[str, Any]) -> str:
        """The prompt for `doc`; any failure, or a prompt past the size or time limit
        (`render_limits`), becomes a one-line `HarnessError`."""
        max_chars, seconds = render_limits()
        try:
            with self._limits("render"):
                return self._bounded(doc, max_chars, seconds)
        except HarnessError:
            raise
        except SecurityError as exc:
            raise HarnessError(one_line(
                f"template '{self.name}' ({self.path}) tried something unsafe: {exc}"
            )) from None
        except TemplateError as exc:
            line = _template_line(exc, str(self.path))
            fields = ", ".join(sorted(k for k in doc if not k.startswith("_")))
            raise HarnessError(one_line(
                f"template '{self.name}' ({self.path}) line {line}: {exc.message}; "
                f"the data has fields: {fields}"
            )) from exc
        except Exception as exc:  # noqa: BLE001 - a template may call filters that raise anything
            raise HarnessError(one_line(f"template '{self.name}' ({self.path}) failed: {exc}")) from exc


def one_line(text: str) -> str:
    """`text` with its line breaks escaped (data values and field names may hold any character)."""
    return "".join(repr(ch)[1:-1] if ch in LINE_BREAKS else ch for ch in text)


def _template_line(exc: BaseException, filename: str) -> int | str:
    """The template line a rendering error comes from (Jinja rewrites the traceback so that
    frames of the template carry its file name and line numbers)."""
    tb = exc.__traceback__
    line: int | str = "?"
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in (filename, "<template>"):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def load_template(name: str, path: Path) -> PromptTemplate:
    """Read and compile `path`; syntax errors name the template and line."""
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise HarnessError(f"cannot read template '{name}' at {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise HarnessError(f"template '{name}' at {path} is not UTF-8 text") from exc
    env = _environment()
    try:
        tree = env.parse(source)
    except TemplateError as exc:
        line = getattr(exc, "lineno", "?")
        raise HarnessError(f"template '{name}' ({path}) line {line}: {exc.message}") from exc
    return PromptTemplate(name, path, source, _literal_settings(tree))


def _literal_settings(tree: nodes.Template) -> dict[str, str]:
    settings: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, nodes.Assign) and isinstance(node.target, nodes.Name):
            if node.target.name in SETTINGS and isinstance(node.node, nodes.Const):
                settings[node.target.name] = str(node.node.value)
    return settings

"""Prompt templates: Jinja2 files rendered in a sandbox, with strict undefined fields.

A template renders the prompt for one document. Top-level `{% set %}` of a literal may
override the task's `target_delimiter` / `fewshot_delimiter` or add a `description`
(text put once before the context examples).
"""

from __future__ import annotations

import hashlib
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


class _Sandbox(ImmutableSandboxedEnvironment):
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
    return _Sandbox(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)


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
        self._template = env.get_template(str(self.path))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()

    def render(self, doc: dict[str, Any]) -> str:
        """The prompt for `doc`; any failure becomes a one-line `HarnessError`."""
        try:
            return self._template.render(doc)  # a dict: a field may be called "self"
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

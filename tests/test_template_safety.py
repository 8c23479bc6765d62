"""Templates render in a sandbox, and never fail with anything but a one-line HarnessError
(the tokenization properties: tests/test_tokenization_properties.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import HarnessError
from harness.prompts import PromptTemplate, load_template
from tests.conftest import REPO

SECRET = "harness-secret-file-content"


def _template(tmp_path: Path, source: str, name: str = "t") -> PromptTemplate:
    path = tmp_path / f"{name}.jinja"
    path.write_text(source, encoding="utf-8")
    return load_template(name, path)


ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].listdir('/') }}",
    "{{ joiner.__init__.__globals__.__builtins__.open(path).read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ open(path).read() }}",
    "{{ __import__('os').system('true') }}",
    "{% include path %}",
    "{% import 'os' as os %}{{ os.getcwd() }}",
    "{% from path import x %}{{ x }}",
    "{{ '{0.__class__.__base__.__subclasses__}'.format(path) }}",
    "{{ source.__class__ }}",
    "{{ shots.append(1) }}{{ shots }}",
    "{{ meta.update(x=1) }}",
    "{{ (range(10**9) | list) | length }}",
    "{{ 'x' * 10**8 }}",
    "{{ 2 ** 1000000000 }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_templates_cannot_read_files_import_modules_or_reach_internals(tmp_path, source):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    template = _template(tmp_path, source)
    with pytest.raises(HarnessError) as caught:
        template.render({"path": str(secret), "source": "text", "shots": [], "meta": {}})
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and SECRET not in message


def test_ordinary_templates_still_work(tmp_path):
    template = _template(tmp_path, "{{ source | upper }} = {{ shots | join(', ') }}{{ ' !' * 2 }}")
    assert template.render({"source": "abc", "shots": ["x", "y"]}) == "ABC = x, y ! !"
    assert _template(tmp_path, "{{ self }}", "s").render({"self": "a field named self"})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FIELDS = ["source", "target", "source_language", "target_language", "context", "choices", "self"]
TEMPLATE_SOURCES = [
    *(p.read_text(encoding="utf-8") for p in sorted((REPO / "prompts").rglob("*.jinja"))),
    "{{ context[0] }} {{ choices | join(' ') }} {{ choices[1:] }}",
    "{{ source | int + 1 }} {{ target | float / 3 }} {{ (context | length) // (source | length) }}",
    "{% for c in choices %}{{ loop.index }}. {{ c.strip() }}\n{% endfor %}{{ target.split()[0] }}",
    "{{ source ~ target }}{{ context | upper }}{{ choices | sort | first }}{{ '%s-%d' % (source, target) }}",
]


TEMPLATES = [PromptTemplate(f"t{i}", Path(f"t{i}.jinja"), source, {})
             for i, source in enumerate(TEMPLATE_SOURCES)]


@settings(max_examples=300, deadline=None)
@given(template=st.sampled_from(TEMPLATES),
       doc=st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), json_values, max_size=7))
def test_rendering_arbitrary_field_values_raises_only_one_line_harness_errors(template, doc):
    try:
        rendered = template.render(doc)
    except HarnessError as exc:  # anything else propagates and fails the test
        assert len(str(exc).splitlines()) == 1, str(exc)
    else:
        assert isinstance(rendered, str)


# Runs the command and writes its peak resident set (KiB) to a file. A small launcher, because
# Linux counts the forking parent's resident set into a child's ru_maxrss (the high-water mark of
# the address space it was forked from survives exec): forked straight from this pytest process,
# which holds models, the child would "peak" at pytest's own size.
_PEAK_LAUNCHER = (
    "import os, subprocess, sys\n"
    "proc = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(proc.pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def _run_child(args: list[str], env: dict, peak_file: Path) -> tuple[int, str, float, int]:
    """Run the installed `harness`; (exit code, stderr, seconds, peak resident bytes of the child)."""
    import os
    import subprocess
    import sys
    import time

    exe = Path(sys.executable).with_name("harness")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _PEAK_LAUNCHER, str(peak_file), str(exe), *args],
                          cwd=REPO, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    return proc.returncode, proc.stderr, time.monotonic() - start, int(peak_file.read_text()) * 1024


def test_a_template_rendering_gigabytes_stops_in_seconds_with_bounded_memory(kit_root, tmp_path):
    from tests.plugin_kit import kit_env, kit_rows, write_jsonl

    data = write_jsonl(tmp_path / "rows.jsonl", kit_rows(2))
    args = ["run", "--model", "tiny", "--task", "kit-bomb", "--data-files", str(data), "--no-progress",
            "--no-cache", "--output-dir", str(tmp_path / "out")]
    code, err, seconds, peak = _run_child(args, kit_env(kit_root), tmp_path / "peak")
    assert code == 2, err
    line = err.strip().splitlines()[-1]
    assert "Traceback" not in err and line.startswith("error: ")
    assert "template 'bomb'" in line and "300000 characters" in line and "HARNESS_MAX_PROMPT_CHARS" in line
    assert seconds < 120  # loading the tiny model on a loaded machine; rendering whole takes minutes
    assert peak < 2 << 30, f"peak memory {peak >> 20} MiB"  # rendered whole: more than 5 GiB


def test_an_endless_template_stops_at_the_time_limit(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("HARNESS_TEMPLATE_SECONDS", "1.5")
    template = _template(tmp_path, "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                                   "{% endfor %}{{ x }}", name="endless")
    start = time.monotonic()
    with pytest.raises(HarnessError) as caught:
        template.render({"x": "y"})
    assert time.monotonic() - start < 10
    assert "template 'endless'" in str(caught.value) and "1.5 s" in str(caught.value)


_RENDER_ONE = (
    "import sys\n"
    "from pathlib import Path\n"
    "from harness.errors import HarnessError\n"
    "from harness.prompts import load_template\n"
    "try:\n"
    "    load_template('huge', Path(sys.argv[1])).render({})\n"
    "except HarnessError as exc:\n"
    "    print(exc, file=sys.stderr)\n"
    "    sys.exit(2)\n"
)


@pytest.mark.parametrize("source", [
    '{% set s = "a" * 1000000 %}{{ s | replace("a", "b" * 100000) }}',   # 100 GB in one call
    '{{ "a" | center(3000000000) }}',                                    # folded when compiled
    '{% set s = "a" * 1000000 %}{{ (range(1000) | list) | join(s) }}',  # 1 GB in one call
])
def test_one_huge_string_operation_fails_with_memory_to_spare(tmp_path, source):
    """Rendered in a fresh process whose peak resident set is measured (through the launcher)."""
    import subprocess
    import sys

    path = tmp_path / "huge.jinja"
    path.write_text(source, encoding="utf-8")
    peak_file = tmp_path / "peak"
    proc = subprocess.run([sys.executable, "-c", _PEAK_LAUNCHER, str(peak_file), sys.executable, "-c",
                           _RENDER_ONE, str(path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "template 'huge'" in proc.stderr and "MiB of memory" in proc.stderr
    peak = int(peak_file.read_text()) * 1024
    assert peak < 512 << 20, f"peak memory {peak >> 20} MiB"  # the operations ask for 1 to 100 GB


def test_the_prompt_size_limit_can_be_raised(tmp_path, monkeypatch):
    template = _template(tmp_path, '{{ "a" * 400000 }}')
    with pytest.raises(HarnessError, match="300000 characters"):
        template.render({})
    monkeypatch.setenv("HARNESS_MAX_PROMPT_CHARS", "500000")
    assert len(template.render({})) == 400000

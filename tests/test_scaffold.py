"""`harness new-task`: the files it writes make a working plugin, whose own test passes on tiny."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: pytest's own TOML parser
    import tomli as tomllib

from harness.cli import main
from harness.errors import HarnessError
from harness.scaffold import KINDS, new_task

REPO = Path(__file__).resolve().parents[1]


def test_new_task_package_of_every_kind_passes_its_own_tests(tmp_path, capsys):
    package = tmp_path / "my-plugins"
    for kind in KINDS:
        assert main(["new-task", f"demo-{kind}", "--kind", kind, "--package", str(package)]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "pip install --no-deps -e" in out
    config = tomllib.loads((package / "pyproject.toml").read_text())
    entries = config["project"]["entry-points"]["harness.tasks"]
    assert entries == {f"demo_{k.replace('-', '_')}": f"my_plugins.demo_{k.replace('-', '_')}:TASKS"
                       for k in KINDS}
    assert (package / "my_plugins" / "prompts" / "demo-generate" / "plain.jinja").is_file()
    # the generated tests, run as their author would: pytest inside the package folder
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=package,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert f"{len(KINDS)} passed" in done.stdout


def test_new_task_in_the_source_tree_registers_its_entry_point(tmp_path, capsys):
    tree = tmp_path / "tree"
    for folder in ("tasks", "prompts", "tests"):
        (tree / folder).mkdir(parents=True)
    shutil.copy(REPO / "pyproject.toml", tree / "pyproject.toml")
    written = new_task("my-qa", "generate", None, tree)
    assert written[:3] == [tree / "tasks" / "my_qa.py", tree / "prompts" / "my-qa" / "plain.jinja",
                           tree / "tests" / "test_task_my_qa.py"]
    config = tomllib.loads((tree / "pyproject.toml").read_text())
    assert config["project"]["entry-points"]["harness.tasks"]["my_qa"] == "harness_tasks.my_qa:TASKS"
    assert config["tool"] == tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]  # untouched
    assert "from harness_prompts import PROMPTS_DIR" in written[0].read_text()
    compile(written[0].read_text(), str(written[0]), "exec")
    compile(written[2].read_text(), str(written[2]), "exec")
    # the same name again is refused, nothing overwritten; a bad name is one line, exit 2
    before = written[0].read_text()
    try:
        new_task("my-qa", "loglikelihood", None, tree)
        raise AssertionError("a second my-qa was written")
    except HarnessError as exc:
        assert "exists already" in str(exc)
    assert written[0].read_text() == before
    code = main(["new-task", "my_qa", "--kind", "generate", "--package", str(tmp_path / "p")])
    assert code == 2 and "lower-case letters" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()

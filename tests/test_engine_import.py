"""An engine whose stack fails to import (a package outside the pins, a broken install) stops with
one line: the package, the version found, the fix; exit 2. The broken packages are real packages
shadowing the installed ones on PYTHONPATH, in a fresh `harness` process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.engines import import_failure, pinned_versions
from tests.conftest import harness_cli


def _shadow(root: Path, package: str, error: str, version: str | None = None) -> Path:
    """A package `package` whose import raises `error`; with `version`, its distribution metadata
    says that version (as a newer release installed over the pinned one would)."""
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text(f"raise ModuleNotFoundError({error!r})\n", encoding="utf-8")
    if version:
        info = root / f"{package}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n",
                                       encoding="utf-8")
    return root


def _run_with(shadow: Path, backend: str, tmp_path: Path):
    data = tmp_path / "lambada.jsonl"
    data.write_text(json.dumps({"text": "the cat sat on the mat"}) + "\n", encoding="utf-8")
    path = os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return harness_cli("run", "--task", "lambada", "--model", "tiny", "--backend", backend,
                       "--data-files", str(data), "--no-cache", "--no-progress",
                       "--output-dir", str(tmp_path / "out"), env={"PYTHONPATH": path}, timeout=300)


def test_pins_come_from_the_project_metadata():
    pins = pinned_versions()
    assert {"accelerate": "1.15.0", "peft": "0.19.1", "diffusers": "0.35.2"}.items() <= pins.items()
    assert pins["mindnlp"] == "0.5.1" and pins["torch"] == "2.13.0"


def test_a_package_off_its_pin_is_named_with_the_fix(tmp_path):
    """diffusers 0.36+ breaks `import mindnlp` (mindtorch lacks fsdp.CPUOffload)."""
    error = "No module named 'mindtorch.distributed.fsdp.CPUOffload'"
    shadow = _shadow(tmp_path / "site", "diffusers", error, version="0.39.0")
    proc = _run_with(shadow, "mindnlp", tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    line = lines[0]
    assert "mindnlp backend cannot start" in line and "CPUOffload" in line
    assert "diffusers 0.39.0 (harness pins 0.35.2)" in line and "pip install 'diffusers==0.35.2'" in line


@pytest.mark.parametrize(("package", "backend"), [("torch", "torch"), ("mindspore", "native")])
def test_a_broken_engine_install_is_one_line(package, backend, tmp_path):
    shadow = _shadow(tmp_path / "site", package, "libfoo.so: cannot open shared object file")
    proc = _run_with(shadow, backend, tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    pin = pinned_versions()[package]
    assert f"{package} {pin}" in lines[0] and "fails to import (libfoo.so" in lines[0]
    assert f"pip install --force-reinstall '{package}=={pin}'" in lines[0]


def test_a_missing_package_says_not_installed():
    line = import_failure("no-such-engine", "native", ModuleNotFoundError("No module named 'x'"))
    assert "no-such-engine (not installed) fails to import" in line

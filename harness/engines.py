"""Choose, once per process, which backend `import torch` reaches.

mindnlp replaces `torch` with a MindSpore-backed implementation for the whole process, so
the choice must be made before anything imports torch, and cannot change afterwards.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
from pathlib import Path
from types import ModuleType

from harness.errors import HarnessError

BACKENDS = ("mindnlp", "torch", "native")
DEVICES = ("cpu", "gpu", "ascend")
_active: str | None = None


def activate(backend: str, device: str = "cpu") -> None:
    """Make `backend` the process's backend and select `device` on it."""
    global _active
    if backend not in BACKENDS:
        raise HarnessError(f"unknown backend '{backend}'; choose one of: {', '.join(BACKENDS)}")
    if device not in DEVICES:
        raise HarnessError(f"unknown device '{device}'; choose one of: {', '.join(DEVICES)}")
    if backend == "native":  # plain MindSpore: lives beside either backend, claims none
        _set_mindspore_device(device)
        return
    if _active is not None:
        if _active != backend:
            raise HarnessError(
                f"backend '{backend}' requested after '{_active}' was loaded in this process; "
                "run one backend per process"
            )
        return
    # Keep the official hub unless the user chose a mirror (mindnlp would otherwise set one).
    os.environ.setdefault("HF_ENDPOINT", "https://huggingface.co")
    if backend == "mindnlp":
        if "torch" in sys.modules and not hasattr(sys.modules["torch"], "_mindspore_backed"):
            _check_torch_not_real()
        _activate_mindnlp(device)
    elif device == "ascend":
        raise HarnessError("--device ascend needs the MindSpore backend: use --backend mindnlp")
    else:
        import_backend_package("torch", backend)
    _active = backend


def active() -> str | None:
    return _active


def activate_all(backends: list[str], device: str = "cpu") -> None:
    """Activate what several models will need, in an order that works: mindnlp must replace
    `torch` before anything (the native backend's tokenizer included) imports the real one."""
    if "mindnlp" in backends and "torch" in backends:
        raise HarnessError("the mindnlp and torch backends cannot share a process; "
                           "run the models in separate commands")
    for backend in sorted(set(backends), key=("mindnlp", "torch", "native").index):
        activate(backend, device)


def _check_torch_not_real() -> None:
    import torch

    if "mindtorch" not in getattr(torch, "__file__", ""):
        raise HarnessError(
            "real PyTorch was imported before mindnlp in this process; "
            "run the mindnlp backend in a fresh process"
        )


def _activate_mindnlp(device: str) -> None:
    # mindnlp prints an unrelated diffusers notice on import; keep the user's terminal clean.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import_backend_package("mindnlp", "mindnlp")
    _set_mindspore_device(device)


def _set_mindspore_device(device: str) -> None:
    mindspore = import_backend_package("mindspore", _active or "native")

    target = {"cpu": "CPU", "gpu": "GPU", "ascend": "Ascend"}[device]
    try:
        mindspore.set_device(target)
    except Exception as exc:  # noqa: BLE001 - MindSpore raises several types here
        if _current_target(mindspore) == target:  # selected already (under msrun, with its device id)
            return
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HarnessError(f"MindSpore cannot use device '{device}': {reason}") from None


def _current_target(mindspore) -> str | None:
    try:
        return mindspore.get_current_device().device_target
    except Exception:  # noqa: BLE001 - no device selected yet
        return None


def torch_device(backend: str, device: str) -> str:
    """The device string `tensor.to(...)` expects for this backend."""
    if backend == "torch":
        return {"cpu": "cpu", "gpu": "cuda"}.get(device, "cpu")
    return "cpu" if device == "cpu" else {"gpu": "cuda", "ascend": "npu"}[device]


# ---------------------------------------------------------------- a stack that fails to import
def import_backend_package(package: str, backend: str) -> ModuleType:
    """Import an backend's package; any failure becomes one line (`import_failure`), exit 2."""
    try:
        return importlib.import_module(package)
    except Exception as exc:  # noqa: BLE001 - a broken install raises anything at import
        raise HarnessError(import_failure(package, backend, exc)) from None


def import_failure(package: str, backend: str, exc: BaseException) -> str:
    """What failed, the versions found where they differ from harness's pins, and the fix."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    pins = pinned_versions()
    off = [(name, installed_version(name), wanted) for name, wanted in pins.items()
           if not _matches(installed_version(name), wanted)]
    whole_stack = "pip install torch==2.13.0 && pip install . (or make install)"
    if off:
        found = ", ".join(f"{name} {have or 'not installed'} (harness pins {wanted})"
                          for name, have, wanted in off)
        fix = " ".join(f"'{name}=={wanted}'" for name, _, wanted in off)
        return (f"the {backend} backend cannot start: importing {package} failed ({reason}); found {found} "
                f"-- fix: pip install {fix}, or reinstall the pinned stack: {whole_stack}")
    have = installed_version(package)
    pin = f"=={pins[_normal(package)]}" if _normal(package) in pins else ""
    return (f"the {backend} backend cannot start: {package} {have or '(not installed)'} fails to import "
            f"({reason}) -- fix: pip install --force-reinstall '{package}{pin}', or reinstall the pinned "
            f"stack: {whole_stack}")


def installed_version(name: str) -> str | None:
    """The version on disk. `Distribution.discover` rather than `metadata.version`, which mindnlp
    patches to answer 2.7.1+dev for torch."""
    from importlib import metadata

    found = next(iter(metadata.Distribution.discover(name=name)), None)
    return found.version if found is not None else None


def pinned_versions() -> dict[str, str]:
    """Exact pins (`name==version`) of harness's own dependencies: pyproject.toml in a source
    checkout (the one source of truth), else the installed package's metadata."""
    from packaging.requirements import Requirement

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    lines: list[str] = []
    if pyproject.is_file() and sys.version_info >= (3, 11):
        import tomllib

        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        if project.get("name") == "harness":
            lines = project.get("dependencies", [])
    if not lines:
        from importlib import metadata

        try:
            lines = [r for r in metadata.requires("harness") or [] if "extra ==" not in r]
        except metadata.PackageNotFoundError:
            lines = []
    pins = {}
    for line in lines:
        req = Requirement(line)
        exact = [spec.version for spec in req.specifier if spec.operator == "=="]
        if exact and req.marker is None:
            pins[_normal(req.name)] = exact[0]
    return pins


def _matches(have: str | None, wanted: str) -> bool:
    """Whether installed version `have` satisfies `==wanted` (2.13.0+cpu does 2.13.0)."""
    from packaging.specifiers import SpecifierSet

    return have is not None and SpecifierSet(f"=={wanted}").contains(have, prereleases=True)


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")

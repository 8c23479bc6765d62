"""Choose, once per process, which engine `import torch` reaches.

mindnlp replaces `torch` with a MindSpore-backed implementation for the whole process, so
the choice must be made before anything imports torch, and cannot change afterwards.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys

from harness.errors import HarnessError

ENGINES = ("mindnlp", "torch", "native")
DEVICES = ("cpu", "gpu", "ascend")
_active: str | None = None


def activate(engine: str, device: str = "cpu") -> None:
    """Make `engine` the process's engine and select `device` on it."""
    global _active
    if engine not in ENGINES:
        raise HarnessError(f"unknown backend '{engine}'; choose one of: {', '.join(ENGINES)}")
    if device not in DEVICES:
        raise HarnessError(f"unknown device '{device}'; choose one of: {', '.join(DEVICES)}")
    if engine == "native":  # plain MindSpore: lives beside either engine, claims none
        _set_mindspore_device(device)
        return
    if _active is not None:
        if _active != engine:
            raise HarnessError(
                f"backend '{engine}' requested after '{_active}' was loaded in this process; "
                "run one backend per process"
            )
        return
    # Keep the official hub unless the user chose a mirror (mindnlp would otherwise set one).
    os.environ.setdefault("HF_ENDPOINT", "https://huggingface.co")
    if engine == "mindnlp":
        if "torch" in sys.modules and not hasattr(sys.modules["torch"], "_mindspore_backed"):
            _check_torch_not_real()
        _activate_mindnlp(device)
    elif device == "ascend":
        raise HarnessError("--device ascend needs the MindSpore backend: use --backend mindnlp")
    _active = engine


def active() -> str | None:
    return _active


def prepare(engines: list[str], device: str = "cpu") -> None:
    """Activate what several models will need, in an order that works: mindnlp must replace
    `torch` before anything (the native engine's tokenizer included) imports the real one."""
    if "mindnlp" in engines and "torch" in engines:
        raise HarnessError("the mindnlp and torch backends cannot share a process; "
                           "run the models in separate commands")
    for engine in sorted(set(engines), key=("mindnlp", "torch", "native").index):
        activate(engine, device)


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
        import mindnlp  # noqa: F401
    _set_mindspore_device(device)


def _set_mindspore_device(device: str) -> None:
    import mindspore

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


def torch_device(engine: str, device: str) -> str:
    """The device string `tensor.to(...)` expects for this engine."""
    if engine == "torch":
        return {"cpu": "cpu", "gpu": "cuda"}.get(device, "cpu")
    return "cpu" if device == "cpu" else {"gpu": "cuda", "ascend": "npu"}[device]

"""`harness lm-eval`: lm-evaluation-harness's own CLI with this harness's engines as `--model harness`.

    harness lm-eval --model-args pretrained=DIR,backend=native -- --tasks arc_easy --limit 10

The engine is activated first (mindnlp must replace `torch` before lm-eval imports it), the model
is registered (`harness.lm_eval_bridge`), then lm-eval's CLI runs with every argument after `--`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from harness import engines, models
from harness.errors import HarnessError

INSTALL_HINT = "install the optional extra: pip install -e '.[lm-eval]' (lm-eval==0.4.13)"
LM_EVAL_DEVICES = {"cpu": "cpu", "cuda": "gpu", "gpu": "gpu", "npu": "ascend", "ascend": "ascend"}


def harness_device(device: str | None) -> str:
    """lm-eval's device string (`cpu`, `cuda`, `cuda:0`, `npu:1`) as this harness's `--device`."""
    name = (device or "cpu").split(":")[0].lower()
    if name not in LM_EVAL_DEVICES:
        raise HarnessError(f"device '{device}' is not supported by --model harness; use cpu, cuda or npu")
    return LM_EVAL_DEVICES[name]


def parse_model_args(text: str) -> dict[str, str]:
    """`key=value,key=value` as lm-eval's `simple_parse_args_string` splits it (values kept as text)."""
    args: dict[str, str] = {}
    for item in (part for part in text.split(",") if part.strip()):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise HarnessError(f"--model-args item '{item}' is not key=value")
        args[key.strip()] = value
    return args


def require_lm_eval() -> None:
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise HarnessError(f"lm-evaluation-harness is not installed; {INSTALL_HINT}") from None


def activate_engine(model_args: dict[str, str]) -> str:
    """Activate the backend that `model_args` asks for (resolving `auto`) before lm-eval loads."""
    pretrained = model_args.get("pretrained", "tiny")
    backend = models.backend_for(pretrained, model_args.get("backend", "auto"))
    engines.activate(backend, harness_device(model_args.get("device")))
    return backend


def run_lm_eval(model_args: str, lm_eval_args: Sequence[str]) -> int:
    """Run lm-eval's CLI (`lm-eval run`) with `--model harness --model_args MODEL_ARGS`."""
    parsed = parse_model_args(model_args)
    require_lm_eval()
    if any(a in ("--model", "-M") or a.startswith("--model=") for a in lm_eval_args):
        raise HarnessError("harness lm-eval sets --model harness itself; leave --model out of the "
                           "arguments after --")
    device = _option(lm_eval_args, "--device")
    if device is None:  # lm-eval's default is cuda:0; ours, as `harness run`'s, is the CPU
        device = "cpu"
        lm_eval_args = [*lm_eval_args, "--device", device]
    activate_engine({**parsed, "device": device})
    from lm_eval.__main__ import cli_evaluate

    import harness.lm_eval_bridge  # noqa: F401 - registers `--model harness`

    saved = sys.argv
    sys.argv = ["lm-eval", "run", "--model", "harness", "--model_args", model_args, *lm_eval_args]
    try:
        cli_evaluate()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        sys.argv = saved
    return 0


def _option(args: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None

"""Resolve `--model` into a ready `LanguageModel` on the chosen backend and device."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.models.lm import LanguageModel

HUB_GPT2 = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "distilgpt2")
DTYPES = ("float32", "float16", "bfloat16")
# model_type -> the module that builds its network on the native engine (`load(folder, dtype)`)
NATIVE_FAMILIES = {"gpt2": "native_gpt2", "llama": "native_llama", "qwen2": "native_llama",
                   "mistral": "native_llama"}


@dataclass(frozen=True)
class ModelSpec:
    """What the user asked for, and where its files are."""

    requested: str
    source: str  # a local folder or a hub id
    is_local: bool

    @property
    def display_name(self) -> str:
        """A short, filesystem-safe name for result folders and table columns."""
        if self.requested == "tiny":
            return "tiny"
        if self.is_local:
            return Path(self.requested.rstrip("/")).name
        return self.requested.replace("/", "__")


def resolve(model: str) -> ModelSpec:
    """`tiny`, a local checkpoint folder, or a Hugging Face hub id."""
    if model == "tiny":
        from harness.models.tiny import ensure_tiny_checkpoint

        return ModelSpec(model, str(ensure_tiny_checkpoint()), True)
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").exists():
            raise HarnessError(
                f"'{model}' is not a checkpoint folder (no config.json); pass a folder written "
                "by save_pretrained, a hub id such as gpt2, or tiny"
            )
        return ModelSpec(model, str(path), True)
    if model.startswith((".", "/", "~")) or os.sep in model.strip("/").replace("/", "", 1):
        raise HarnessError(f"model folder '{model}' does not exist")
    return ModelSpec(model, model, False)


def backend_for(model: str, backend: str = "auto") -> str:
    """The backend that will run `model`: `auto` is native for the model types it implements
    (GPT-2, Llama, Qwen2, Mistral), else mindnlp."""
    from harness.models.checkpoint import check_checkpoint, read_config

    spec = resolve(model)
    if spec.is_local:  # every backend: a damaged checkpoint is one line naming the file
        check_checkpoint(Path(spec.source))
    if backend != "auto":
        return backend
    return "native" if read_config(spec).get("model_type") in NATIVE_FAMILIES else "mindnlp"


def load(model: str, backend: str = "auto", device: str = "cpu", dtype: str = "float32",
         batch_size: int | str = 8, rolling_context: int = 1,
         add_bos_token: bool | None = None) -> LanguageModel:
    """Load `model` (see `resolve`) on `backend` ('auto', 'native', 'mindnlp' or 'torch').

    `add_bos_token`: BOS before every context; None follows the tokenizer (as lm-eval does)."""
    from harness import engines

    if dtype not in DTYPES:
        raise HarnessError(f"unknown dtype '{dtype}'; choose one of: {', '.join(DTYPES)}")
    backend = backend_for(model, backend)  # checks the checkpoint's files first
    spec = resolve(model)
    engines.activate(backend, device)
    if backend == "native":
        from harness.models.native_backend import load_native

        tokenizer, native = load_native(spec, dtype)
        return LanguageModel(spec.display_name, tokenizer, native, batch_size, rolling_context,
                             add_bos_token, spec=spec)
    tokenizer, hf_model = _load_transformers(spec, dtype)
    from harness.models.transformers_backend import TransformersBackend

    hf_model = hf_model.to(engines.torch_device(backend, device))
    compute = TransformersBackend(hf_model, tokenizer, backend, engines.torch_device(backend, device),
                                  dtype)
    return LanguageModel(spec.display_name, tokenizer, compute, batch_size, rolling_context, add_bos_token,
                         spec=spec)


def _load_transformers(spec: ModelSpec, dtype: str):
    import torch
    import transformers
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.set_verbosity_error()

    from harness import hub

    kwargs = {"local_files_only": True} if spec.is_local or hub.is_offline() else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            spec.source, dtype=getattr(torch, dtype), **kwargs
        )
    except (OSError, ValueError, SafetensorError) as exc:
        raise HarnessError(load_error_message(spec, exc)) from exc
    except ImportError as exc:  # a package outside the pins (peft, diffusers under mindnlp): say which
        from harness import engines

        raise HarnessError(engines.import_failure("transformers", engines.active() or "transformers",
                                                  exc)) from None
    tokenizer.model_max_length = 10**9  # truncation is ours (and counted), not the tokenizer's
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model


def load_error_message(spec: ModelSpec, exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if spec.is_local:
        return f"cannot load the checkpoint folder '{spec.source}': {first}"
    from harness import hub

    how = ("pass a local checkpoint folder (--model /path/to/folder written by save_pretrained), "
           "set HF_ENDPOINT to a reachable mirror, or use --model tiny")
    if hub.is_offline():
        reason = f"{hub.unreachable_reason()} and it is not in the local cache"
    else:
        reason = f"from the Hugging Face hub ({hub.endpoint()}): {first[:160]}"
    return f"cannot load model '{spec.source}': {reason} -- {how}"

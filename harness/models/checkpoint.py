"""Checkpoint files for the native engine: config, local folder (hub ids downloaded), tokenizer.

Plain `huggingface_hub` and `transformers` tokenizers only: no model class is imported, so
the choice of engine (`--backend auto`) can be made before any engine is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

WEIGHT_PATTERNS = ["*.safetensors", "model.safetensors.index.json"]
OTHER_PATTERNS = ["config.json", "generation_config.json", "tokenizer*", "vocab.json", "merges.txt",
                  "special_tokens_map.json", "added_tokens.json"]


def read_config(spec: Any) -> dict:
    """The checkpoint's config.json (only that file is fetched for a hub id)."""
    if spec.is_local:
        path = Path(spec.source) / "config.json"
    else:
        from huggingface_hub import hf_hub_download

        path = Path(_hub(spec, lambda: hf_hub_download(spec.source, "config.json")))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"cannot read {path}: {exc}") from None


def local_folder(spec: Any) -> Path:
    """A folder holding config, tokenizer and weights (safetensors preferred to .bin)."""
    if spec.is_local:
        return Path(spec.source)
    from huggingface_hub import snapshot_download

    folder = Path(_hub(spec, lambda: snapshot_download(
        spec.source, allow_patterns=OTHER_PATTERNS + WEIGHT_PATTERNS)))
    if not any(folder.glob("*.safetensors")):
        folder = Path(_hub(spec, lambda: snapshot_download(
            spec.source, allow_patterns=OTHER_PATTERNS + ["pytorch_model.bin"])))
    return folder


def load_tokenizer(folder: Path) -> Any:
    """The checkpoint's tokenizer, with the same settings as the transformers backends."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise HarnessError(f"cannot load the tokenizer in '{folder}': {str(exc).splitlines()[0]}") from None
    tokenizer.model_max_length = 10**9  # truncation is ours (and counted), not the tokenizer's
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _hub(spec: Any, fetch) -> str:
    from harness import hub
    from harness.models import _load_error

    hub.is_offline()  # an unreachable hub switches to the local cache before any retries
    try:
        return fetch()
    except Exception as exc:  # noqa: BLE001 - hub errors come in many types (offline, 404, auth)
        raise HarnessError(_load_error(spec, exc)) from None

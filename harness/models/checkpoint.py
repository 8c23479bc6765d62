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
    return _json_object(path)


def _json_object(path: Path) -> dict:
    """A JSON file that must hold an object; anything else is one line naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise HarnessError(f"{path} is not a JSON object (it holds a {type(data).__name__}); "
                           "the checkpoint is damaged: copy or download it again")
    return data


def check_checkpoint(folder: Path) -> None:
    """Refuse a damaged checkpoint folder before any backend reads it: config.json (and a
    sharded index) must be JSON objects, and every safetensors file must hold a readable header
    and all the bytes it declares (a truncated copy fails here, naming the file)."""
    folder = Path(folder)
    _json_object(folder / "config.json")
    index = folder / "model.safetensors.index.json"
    if index.exists():
        weight_map = _json_object(index).get("weight_map")
        if not isinstance(weight_map, dict):
            raise HarnessError(f"{index} has no weight_map object; the checkpoint is damaged")
        for name in sorted(set(weight_map.values())):
            if not (folder / str(name)).is_file():
                raise HarnessError(f"{index} names {name}, which is missing from {folder}")
    for path in sorted(folder.glob("*.safetensors")):
        fault = safetensors_fault(path)
        if fault:
            raise HarnessError(f"damaged weights file {path}: {fault}; copy or download the "
                               "checkpoint again")


def safetensors_fault(path: Path) -> str | None:
    """What is wrong with a safetensors file's framing (header and sizes), or None."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                return f"{size} bytes, too short for a header"
            length = int.from_bytes(head, "little")
            if length > size - 8 or length > 100 << 20:
                return f"its header claims {length} bytes but the file has {size}: truncated"
            header = json.loads(handle.read(length).decode("utf-8"))
    except OSError as exc:
        return f"cannot read it ({exc.strerror})"
    except (UnicodeDecodeError, ValueError):
        return "its header is not valid JSON"
    if not isinstance(header, dict):
        return "its header is not a JSON object"
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            return f"tensor {name} has no valid data_offsets"
        end = max(end, offsets[1])
    if 8 + length + end > size:
        return f"{size} bytes, but its tensors need {8 + length + end}: truncated"
    return None


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
    from harness.models import load_error_message

    hub.is_offline()  # an unreachable hub switches to the local cache before any retries
    try:
        return fetch()
    except Exception as exc:  # noqa: BLE001 - hub errors come in many types (offline, 404, auth)
        raise HarnessError(load_error_message(spec, exc)) from None

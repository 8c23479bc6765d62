"""A cheap, stable fingerprint of a checkpoint's files: the model part of the response-cache key.

Hashing every byte of gpt2-xl (6 GB) would take longer than many evaluations, so each file
contributes its name and size, and then:

* files up to 8 MiB (configs, tokenizers, small checkpoints such as `tiny`): every byte;
* larger files: the whole safetensors header (tensor names, dtypes, shapes and offsets), the
  first and the last MiB, and 64 blocks of 64 KiB spread evenly over the file.

So about 6 MiB is read per weight file. A re-trained, fine-tuned or re-converted checkpoint changes
almost all of its bytes and therefore its fingerprint; an edit confined to a few bytes between
the sampled blocks would go unnoticed (use `--no-cache`, or delete the cache, after such surgery).
File modification times are deliberately left out: copying a checkpoint keeps its cached responses.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

WHOLE_FILE = 8 << 20
EDGE = 1 << 20
BLOCKS = 64
BLOCK = 64 << 10
MAX_HEADER = 256 << 20


def _update_whole(digest, handle: BinaryIO) -> None:
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        digest.update(chunk)


def _update_sampled(digest, handle: BinaryIO, size: int, safetensors: bool) -> None:
    if safetensors:
        head = handle.read(8)
        digest.update(head)
        n = int.from_bytes(head, "little") if len(head) == 8 else 0
        digest.update(handle.read(min(n, MAX_HEADER)))
    spots = [(0, EDGE), (size - EDGE, EDGE)]
    spots += [(i * (size - BLOCK) // (BLOCKS - 1), BLOCK) for i in range(BLOCKS)]
    for offset, length in spots:
        handle.seek(offset)
        digest.update(handle.read(length))


def file_digest(path: Path) -> str:
    """sha256 over the file's name, size and content (sampled above 8 MiB, see module doc)."""
    size = path.stat().st_size
    digest = hashlib.sha256(f"{path.name}\0{size}\0".encode())
    with path.open("rb") as handle:
        if size <= WHOLE_FILE:
            _update_whole(digest, handle)
        else:
            _update_sampled(digest, handle, size, path.suffix == ".safetensors")
    return digest.hexdigest()


def folder_digest(folder: Path) -> str:
    """Digest of every visible file directly in `folder` (symbolic links followed, as in the
    Hugging Face cache, whose snapshot folders link to blobs)."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        digest.update(f"{path.name}\0{file_digest(path)}\n".encode())
    return digest.hexdigest()


def checkpoint_folder(source: str, is_local: bool) -> Path | None:
    """The folder the model's files were loaded from: the local folder, or the snapshot of a
    hub id in the Hugging Face cache (None when it cannot be found)."""
    if is_local:
        return Path(source)
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(source, "config.json")
    return Path(found).parent if isinstance(found, str) else None

"""Which files of a hub dataset a task reads, where they come from, and only those are fetched.

A `HubSource` is resolved the way `datasets.load_dataset(path, name, revision=, data_dir=,
data_files=)` resolves it (datasets 5: parquet/JSON/CSV/text files, no loading scripts), but for
one split at a time: the split's file patterns come from the source's `data_files`, else from the
dataset card's `configs` entry for `name` (README.md YAML), else from `datasets`' default split
patterns; they are matched against the repository's file list, and only the matched files are
fetched and read. (`load_dataset(path, name, split=...)` would download every split.)

Where the repository is read from (`open_repo`):
* `HARNESS_HUB_MIRROR=DIR`: the folder `DIR/<owner>/<name>` is the repository, holding the files of
  the revision the task names (e.g. `huggingface-cli download --repo-type dataset --revision REV
  OWNER/NAME --local-dir DIR/OWNER/NAME`). Nothing touches the network; tests use this.
* the hub, when reachable: listed with `HfApi`, the split's files downloaded into the Hugging Face
  cache.
* offline: the revision's snapshot in the Hugging Face cache (what an earlier online run fetched).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.task import HubSource

MIRROR_ENV = "HARNESS_HUB_MIRROR"
CARD = "README.md"
CARD_ONLY = ("data_files", "data_dir", "features", "default", "version")  # not reader settings


# ------------------------------------------------------------------ repository views
@dataclass(frozen=True)
class Repo:
    """One revision of a dataset repository: its files, its card's YAML, and a way to fetch files."""

    label: str  # for messages: "wmt/wmt14", "wmt/wmt14@refs/convert/parquet", or a folder
    files: tuple[str, ...]  # every file, relative POSIX paths
    card: dict[str, Any]  # the README.md YAML header ({} without one)
    fetch: Callable[[list[str]], list[Path]]  # relative paths -> local files


def _folder_files(root: Path) -> tuple[str, ...]:
    return tuple(sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()))


def _read_card(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    from huggingface_hub import DatasetCard

    try:
        return DatasetCard.load(path).data.to_dict()
    except Exception as exc:  # noqa: BLE001 - malformed YAML raises several types
        raise HarnessError(f"{path}: cannot read the dataset card's YAML header ({exc})") from None


def folder_repo(root: Path, label: str) -> Repo:
    """A repository laid out in a local folder (a mirror, or a Hugging Face cache snapshot)."""
    root = root.resolve()
    return Repo(label=label, files=_folder_files(root), card=_read_card(root / CARD),
                fetch=lambda names: [root / n for n in names])


def _label(source: HubSource) -> str:
    return source.path + (f"@{source.revision}" if source.revision else "")


def hub_repo(source: HubSource) -> Repo:
    """The repository on the hub: listed (no download) at the revision's current commit."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.utils import HfHubHTTPError

    api = HfApi()
    try:
        info = api.dataset_info(source.path, revision=source.revision)
        files = tuple(sorted(api.list_repo_files(source.path, repo_type="dataset", revision=info.sha)))
    except HfHubHTTPError as exc:
        raise HarnessError(f"{_label(source)}: {_hub_error(exc)}") from None
    card = info.card_data.to_dict() if info.card_data else {}

    def fetch(names: list[str]) -> list[Path]:
        wanted = [*names, CARD] if CARD in files else list(names)  # the card: offline reruns
        folder = Path(snapshot_download(source.path, repo_type="dataset", revision=source.revision,
                                        allow_patterns=wanted))
        return [folder / n for n in names]

    return Repo(label=_label(source), files=files, card=card, fetch=fetch)


def _hub_error(exc: Exception) -> str:
    from huggingface_hub.utils import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(exc, RevisionNotFoundError):
        return "no such revision on the hub"
    if isinstance(exc, GatedRepoError):
        return "the dataset is gated: accept its terms on the hub and log in (huggingface-cli login)"
    if isinstance(exc, RepositoryNotFoundError):
        return "no such dataset repository on the hub (renamed or private?)"
    return str(exc).strip().splitlines()[0][:160]


def cached_repo(source: HubSource) -> Repo:
    """The revision's snapshot in the local Hugging Face cache (offline reruns)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(source.path, repo_type="dataset", revision=source.revision,
                                   local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        raise HarnessError(f"{_label(source)} is not in the local Hugging Face cache") from None
    return folder_repo(Path(folder), f"{_label(source)} (local cache)")


def mirror_root() -> Path | None:
    value = os.environ.get(MIRROR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def mirror_repo(root: Path, source: HubSource) -> Repo:
    folder = root / source.path
    if not folder.is_dir():
        raise HarnessError(
            f"{MIRROR_ENV}={root}: no folder {folder} for dataset {_label(source)} "
            f"(copy the repository's files there, or unset {MIRROR_ENV})"
        )
    return folder_repo(folder, f"{_label(source)} (mirror)")


# ------------------------------------------------------------------ split files
@dataclass(frozen=True)
class SplitFiles:
    """The files of one split, and how `datasets` reads them."""

    split: str
    patterns: tuple[str, ...]  # relative to the repository root
    files: tuple[str, ...]
    config: str | None  # the card config used (None: data_files without a card config)
    module: str  # the `datasets` reader: "parquet", "json", "csv", "text", ...
    builder_kwargs: dict[str, Any]  # reader settings (e.g. csv `sep`), the card config's included
    features: Any = None  # datasets.Features from the card, if it declares them


def _card_configs(card: dict[str, Any], label: str):
    from datasets.utils.metadata import MetadataConfigs

    try:
        return MetadataConfigs.from_dataset_card_data(card)
    except ValueError as exc:
        raise HarnessError(f"{label}: the dataset card's `configs` are not valid ({exc})") from None


def _pick_config(source: HubSource, repo: Repo) -> tuple[str | None, dict[str, Any]]:
    if source.data_files is not None and source.name is None:
        return None, {}  # explicit files (e.g. refs/convert/parquet, which has no card)
    configs = _card_configs(repo.card, repo.label)
    if not configs:
        if source.name not in (None, "default") and source.data_files is None:
            raise HarnessError(f"{repo.label}: the dataset card defines no configs, so there is no "
                               f"config '{source.name}'; drop the name or give data_files")
        return None, {}
    name = source.name
    if name is None:
        try:
            name = configs.get_default_config_name()
        except ValueError as exc:
            raise HarnessError(f"{repo.label}: {exc}") from None
        if name is None:
            raise HarnessError(f"{repo.label} has several configs ({', '.join(configs)}) and no "
                               "default; name one")
    if name not in configs:
        if source.data_files is not None:
            return None, {}
        raise HarnessError(f"{repo.label} has no config '{name}' (it has: {', '.join(configs)})")
    return name, dict(configs[name])


def _allowed(path: str) -> bool:
    from datasets.packaged_modules import _ALL_ALLOWED_EXTENSIONS

    return any("." + suffix in _ALL_ALLOWED_EXTENSIONS for suffix in posixpath.basename(path).split(".")[1:])


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    from fsspec.utils import glob_translate

    return re.compile(glob_translate(pattern))


def match(pattern: str, files: tuple[str, ...]) -> list[str]:
    """The files a `datasets` pattern selects (fsspec glob, as `datasets.data_files.resolve_pattern`:
    `*` stays inside a folder, `**` crosses folders; hidden files, `__special__` folders and the
    card are left out unless the pattern names them; only data-file extensions)."""
    from datasets.data_files import (
        FILES_TO_IGNORE,
        _is_inside_unrequested_special_dir,
        _is_unrequested_hidden_file_or_is_inside_unrequested_hidden_dir,
    )

    regex = _glob_regex(pattern)
    ignore = set(FILES_TO_IGNORE) - {posixpath.basename(pattern)}
    return [f for f in files if regex.match(f) and posixpath.basename(f) not in ignore
            and not _is_inside_unrequested_special_dir(f, pattern)
            and not _is_unrequested_hidden_file_or_is_inside_unrequested_hidden_dir(f, pattern)
            and _allowed(f)]


def _default_patterns(base: str, files: tuple[str, ...], label: str) -> dict[str, list[str]]:
    """`datasets`' split inference (data/{split}-00000-of-N, {split}/ folders, *{split}* names)."""
    from datasets.data_files import _get_data_files_patterns

    def resolver(pattern: str) -> list[str]:
        return match(posixpath.join(base, pattern) if base else pattern, files)

    try:
        found = _get_data_files_patterns(resolver)
    except FileNotFoundError:
        raise HarnessError(f"{label}: no data files{f' under {base}/' if base else ''}") from None
    return {split: [posixpath.join(base, p) if base else p for p in patterns]
            for split, patterns in found.items()}


def split_patterns(source: HubSource, repo: Repo) -> tuple[str | None, dict[str, Any], dict[str, list[str]]]:
    """(card config, its settings, split -> patterns relative to the repository root)."""
    from datasets.data_files import sanitize_patterns

    config, params = _pick_config(source, repo)
    base = posixpath.join(*[d.strip("/") for d in (source.data_dir, params.get("data_dir")) if d]) \
        if (source.data_dir or params.get("data_dir")) else ""
    given = source.data_files if source.data_files is not None else params.get("data_files")
    if given is None:
        return config, params, _default_patterns(base, repo.files, repo.label)
    if isinstance(given, dict):
        given = {split: list(p) if isinstance(p, tuple) else p for split, p in given.items()}
    patterns = sanitize_patterns(given)
    return config, params, {split: [posixpath.join(base, p) if base else p for p in ps]
                            for split, ps in patterns.items()}


def split_files(source: HubSource, repo: Repo, split: str) -> SplitFiles:
    """The split's files in `repo`; a missing split or file is one line naming what is missing."""
    config, params, patterns = split_patterns(source, repo)
    if split not in patterns:
        raise HarnessError(f"{repo.label}: no split '{split}' (it has: {', '.join(patterns)})")
    files: list[str] = []
    for pattern in patterns[split]:
        found = match(pattern, repo.files)
        if not found:
            raise HarnessError(f"{repo.label}: split '{split}': no file matches {pattern}")
        files.extend(f for f in found if f not in files)
    module, kwargs = _reader(files, f"{repo.label}: split '{split}'")
    files = [f for f in files if _has_extension(f, module)]  # as datasets: one reader per split
    features = params.get("features")
    if features is None and config is not None:
        from datasets.info import DatasetInfosDict

        info = DatasetInfosDict.from_dataset_card_data(repo.card).get(config)
        features = info.features if info is not None else None
    settings = {k: v for k, v in params.items() if k not in CARD_ONLY}
    kwargs.update(_accepted(module, settings))
    return SplitFiles(split, tuple(patterns[split]), tuple(files), config, module, kwargs, features)


# ------------------------------------------------------------------ loading
def open_repo(source: HubSource) -> Repo:
    """The mirror folder, else the hub when reachable, else the local Hugging Face cache."""
    from harness import hub

    root = mirror_root()
    if root is not None:
        return mirror_repo(root, source)
    if hub.is_offline():
        try:
            return cached_repo(source)
        except HarnessError as exc:
            raise HarnessError(f"{hub.unreachable_reason()} and {exc}") from None
    return hub_repo(source)


def _reader(files: list[str], label: str) -> tuple[str, dict[str, Any]]:
    """The `datasets` reader for these files (the most common extension, as `datasets` picks)."""
    from datasets.load import infer_module_for_data_files_list

    module, kwargs = infer_module_for_data_files_list(files)
    if module is None:
        raise HarnessError(f"{label}: no supported data files among {', '.join(files[:5])}")
    return module, dict(kwargs)


def _has_extension(path: str, module: str) -> bool:
    from datasets.packaged_modules import _MODULE_TO_EXTENSIONS

    suffixes = {"." + s.lower() for s in posixpath.basename(path).split(".")[1:]}
    return bool(suffixes & set(_MODULE_TO_EXTENSIONS[module]))


def _accepted(module: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    from datasets.load import import_main_class
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    config_cls = import_main_class(_PACKAGED_DATASETS_MODULES[module][0]).BUILDER_CONFIG_CLASS
    return {k: v for k, v in kwargs.items() if hasattr(config_cls, k) and k != "name"}


def load_rows(source: HubSource, split: str, repo: Repo | None = None) -> list[dict[str, Any]]:
    """The rows of one split, reading only that split's files."""
    import datasets

    repo = repo or open_repo(source)
    chosen = split_files(source, repo, split)
    paths = repo.fetch(list(chosen.files))
    dataset = datasets.load_dataset(chosen.module, data_files={split: [str(p) for p in paths]},
                                    split=split, features=chosen.features, **chosen.builder_kwargs)
    return [dict(row) for row in dataset]


# ------------------------------------------------------------------ harness tasks --check-hub
def needed_splits(source: HubSource) -> list[str]:
    return [source.split] + ([source.fewshot_split] if source.fewshot_split else [])


def check_source(source: HubSource, repo: Repo) -> str:
    """'ok ...' or what is missing, for one task's source in `repo` (listing only, no download)."""
    parts = []
    for split in needed_splits(source):
        try:
            chosen = split_files(source, repo, split)
        except HarnessError as exc:
            return f"MISSING {exc}"
        count = len(chosen.files)
        parts.append(f"{split}: {count} {chosen.module} file{'s' if count != 1 else ''}")
    config = f" config {source.name}" if source.name else ""
    return f"ok {repo.label}{config}: {', '.join(parts)}"


def check_tasks(sources: dict[str, HubSource | None], echo: Callable[[str], None]) -> int:
    """One line per task: its hub data is there (repository, revision, each needed split's files),
    or what is missing. Lists files only; downloads nothing. Returns the number of problems."""
    from harness import hub

    if mirror_root() is None and hub.is_offline():
        raise HarnessError(f"cannot check the hub: {hub.unreachable_reason()} -- rerun where the hub "
                           f"is reachable, or set {MIRROR_ENV}=DIR to check a local mirror")
    repos: dict[tuple[str, str | None], Repo | str] = {}
    problems = 0
    for name, source in sorted(sources.items()):
        if source is None:
            echo(f"{name}: no hub dataset (--data-files only)")
            continue
        key = (source.path, source.revision)
        if key not in repos:
            try:
                repos[key] = open_repo(source)
            except HarnessError as exc:
                repos[key] = f"MISSING {exc}"
            except Exception as exc:  # noqa: BLE001 - network failures mid-check
                repos[key] = f"MISSING {_label(source)}: {type(exc).__name__}: {str(exc)[:120]}"
        repo = repos[key]
        line = repo if isinstance(repo, str) else check_source(source, repo)
        problems += line.startswith("MISSING")
        echo(f"{name}: {line}")
    return problems

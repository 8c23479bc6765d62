"""`harness merge DIR`: the partial results of `--shard I/N` runs → the result one process writes.

Metrics are recomputed from every example's items (corpus BLEU/chrF and bootstrap standard
errors cannot be averaged), in global example order, with the very code a single run uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.results import (
    RESULT_SCHEMA,
    SAMPLES_SUFFIX,
    SCHEMA_VERSION,
    ResultRecord,
    dumps_lines,
    timestamp,
    write_new,
    write_result,
)
from harness.shard import identity

SHARD_KEYS = ("index", "count", "method", "n_total", "examples", "prompt_tokens", "items")


def load_partials(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every partial result (a result with a `shard` block) directly in `folder`."""
    if not Path(folder).is_dir():
        raise HarnessError(f"shard folder not found: {folder}")
    found = []
    for path in sorted(Path(folder).glob("*.json")):
        if path.name.startswith(".tmp-"):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise HarnessError(f"cannot read {path}: {exc}; delete or fix the file") from None
        if isinstance(data, dict) and data.get("schema") == RESULT_SCHEMA and "shard" in data:
            lacking = [k for k in SHARD_KEYS if k not in data["shard"]]
            if lacking:
                raise HarnessError(f"{path} is not a complete shard result (no {', '.join(lacking)}); "
                                   "rerun that shard")
            found.append((path, data))
    if not found:
        raise HarnessError(f"no shard results in {folder} (harness run --shard I/N writes them "
                           "under <output-dir>/<model>/<task>/shards/<run>/)")
    return found


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == RESULT_SCHEMA else None


def find_shard_sets(root: Path) -> tuple[list[Path], list[Path]]:
    """The folders under `root` (itself included) that hold shard results: (not yet merged,
    already merged: a merged result lies beside the shards)."""
    shards: set[Path] = set()
    merged: set[Path] = set()
    for path in sorted(Path(root).rglob("*.json")):
        data = None if path.name.startswith(".tmp-") else _read(path)
        if data is not None:
            (shards if "shard" in data else merged if "merged_from" in data else set()).add(path.parent)
    return sorted(shards - merged), sorted(shards & merged)


def check(partials: list[tuple[str, dict[str, Any]]], where: str) -> list[dict[str, Any]]:
    """The partials of one complete run, by shard index; HarnessError naming what is wrong."""
    ordered = sorted(partials, key=lambda p: (p[1]["shard"]["index"], p[0]))
    first_name, first = ordered[0]
    reference = identity(first)
    for name, record in ordered[1:]:
        view = identity(record)
        for key in sorted(set(reference) | set(view), key=_first_what_users_set):
            if reference.get(key) != view.get(key):
                raise HarnessError(
                    f"shards of different runs in {where}: {key} is {_show(reference.get(key))} in "
                    f"{first_name} but {_show(view.get(key))} in {name}; merge only the shards of one run")
    by_index: dict[int, tuple[str, dict]] = {}
    for name, record in ordered:
        index = record["shard"]["index"]
        if index in by_index:
            raise HarnessError(
                f"duplicate shard {index}/{record['shard']['count']} in {where}: {by_index[index][0]} and "
                f"{name} (a rerun? delete the stale file, or give each run its own --output-dir)")
        by_index[index] = (name, record)
    count = first["shard"]["count"]
    missing = [i for i in range(count) if i not in by_index]
    if missing:
        run = ", ".join(f"--shard {i}/{count}" for i in missing)
        raise HarnessError(
            f"missing shard(s) {', '.join(map(str, missing))} of {count} in {where} "
                           f"(found {', '.join(map(str, sorted(by_index)))}); run the same command with {run}"
        )
    records = [by_index[i][1] for i in range(count)]
    seen: list[int] = sorted(i for r in records for i in r["shard"]["examples"])
    if seen != list(range(first["shard"]["n_total"])):
        raise HarnessError(f"the shards in {where} do not cover examples 0..{first['shard']['n_total'] - 1} "
                           "exactly once; rerun the shards with one harness version")
    return records


# what a user chose differently is named before what follows from it (assignment digests)
DECISIVE = ("task.name", "model.name", "task.template", "config.limit", "task.num_fewshot", "config.template")


def _first_what_users_set(key: str) -> tuple[int, str]:
    return (DECISIVE.index(key) if key in DECISIVE else len(DECISIVE) + key.startswith("shard."), key)


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def merge_records(records: list[dict[str, Any]], task=None) -> tuple[ResultRecord, list[dict] | None]:
    """One result from the complete, checked partials (index order; as their JSON holds them),
    and the merged samples (None unless every shard logged them)."""
    from harness.runner import make_scorers, metrics_from_items

    first = records[0]
    task = task or _task(first)
    order = sorted(((i, r, k) for r in records for k, i in enumerate(r["shard"]["examples"])),
                   key=lambda t: t[0])
    items = {name: [r["shard"]["items"][name][k] for _, r, k in order] for name in first["shard"]["items"]}
    n_examples = first["shard"]["n_total"]
    wall = max(r["timing"]["wall_seconds"] for r in records)  # shards run side by side
    tokens = sum(r["timing"]["tokens"] for r in records)
    cache = first.get("cache")
    if isinstance(cache, dict):  # response-cache use adds up over the shards
        cache = {**cache, **{k: sum(r.get("cache", {}).get(k, 0) for r in records)
                             for k in ("hits", "computed") if k in cache}}
    notes = first.get("notes")
    if isinstance(notes, list):
        notes = list(dict.fromkeys(n for r in records for n in r.get("notes", [])))
    merged = ResultRecord(
        task=first["task"], model=first["model"],
        metrics=metrics_from_items(make_scorers(task), items, _signatures(records)),
        n_examples=n_examples,
        truncated_inputs=sum(r.get("truncated_inputs", 0) for r in records),
        timing={
            "wall_seconds": wall, "tokens": tokens,
            "tokens_per_second": round(tokens / wall, 2) if wall else None,
            "examples_per_second": round(n_examples / wall, 3) if wall else None,
        },
        config=first.get("config"), packages=first.get("packages"), cache=cache, notes=notes,
        merged_from={
            "count": len(records), "method": first["shard"]["method"],
            "shards": [{"index": r["shard"]["index"], "n_examples": len(r["shard"]["examples"]),
                        "prompt_tokens": r["shard"]["prompt_tokens"],
                        "wall_seconds": r["timing"]["wall_seconds"], "tokens": r["timing"]["tokens"]}
                       for r in records],
        },
        schema=first.get("schema", RESULT_SCHEMA), schema_version=first.get("schema_version", SCHEMA_VERSION),
    )
    samples = None
    if all("samples" in r["shard"] for r in records):
        samples = sorted((s for r in records for s in r["shard"]["samples"]), key=lambda s: s["index"])
    return merged, samples


def gather(cluster: Any, record: ResultRecord, task, output_dir: Path,
           echo) -> tuple[Path, ResultRecord] | None:
    """msrun: rank 0 collects the other ranks' partials of `record`'s run, merges and writes the
    result (returns its path and record); every other rank sends its partial (returns None)."""
    data = record.to_dict()
    key = partial_label_of(data)
    if cluster.rank != 0:
        cluster.send(key, data)
        return None
    others = cluster.collect(key)
    names = [f"rank {r}" for r in range(cluster.size)]
    records = check(list(zip(names, [data, *others], strict=True)), f"msrun launch {cluster.launch}")
    merged, samples = merge_records(records, task)
    final = write_result(output_dir, merged.model["name"], merged.task["name"], merged, samples)
    echo(f"wrote {final} (merged from {cluster.size} ranks)", err=True)
    return final, merged


def partial_label(model: str, task: str, template: str) -> str:
    """What one partial result is of (the same on every rank)."""
    return f"{model}/{task}/{template}"


def partial_label_of(record: dict[str, Any]) -> str:
    """`partial_label` of a result record."""
    return partial_label(record["model"]["name"], record["task"]["name"], record["task"]["template"]["name"])


def _signatures(records: list[dict[str, Any]]) -> dict[str, str]:
    """Each metric's signature as the shards recorded it (scorers here have seen no outcome)."""
    found: dict[str, str] = {}
    for r in records:
        for name, metric in r.get("metrics", {}).items():
            if "signature" not in metric:
                continue
            if found.setdefault(name, metric["signature"]) != metric["signature"]:
                raise HarnessError(f"the shards computed {name} with different settings "
                                   f"({found[name]} vs {metric['signature']}); rerun them with one setup")
    return found


def _task(record: dict[str, Any]):
    from harness.registry import discover

    task = discover().get(record["task"]["name"])
    if str(task.version) != str(record["task"]["version"]):
        raise HarnessError(f"the shards ran task '{task.name}' version {record['task']['version']}, "
                           f"but version {task.version} is installed; merge with the harness that ran them")
    return task


def merged_result(folder: Path) -> tuple[ResultRecord, list[dict] | None]:
    """The merged result of the shards in `folder` (and its samples), checked, not yet written."""
    records = check([(p.name, r) for p, r in load_partials(folder)], str(folder))
    return merge_records(records)


def write_merged(folder: Path, merged: ResultRecord, samples: list[dict] | None,
                 output_dir: Path | None = None) -> Path:
    """Write beside the shards in `folder`, or under `output_dir` as <model>/<task>/<time>.json
    (where `harness run` writes its results)."""
    if output_dir is not None:
        return write_result(output_dir, merged.model["name"], merged.task["name"], merged, samples)
    return write_beside(Path(folder), merged, samples)


def merge_folder(folder: Path, output_dir: Path | None = None) -> tuple[Path, ResultRecord]:
    """Merge the shards in `folder` and write the result. Returns (path, record)."""
    merged, samples = merged_result(folder)
    return write_merged(folder, merged, samples, output_dir), merged


def write_beside(folder: Path, record: ResultRecord, samples: list[dict] | None) -> Path:
    """Write `record` (and its samples) into `folder` atomically, never replacing a file."""
    path = write_new(folder, timestamp(), ".json", record.to_json())
    if samples is not None:
        write_new(folder, path.stem, SAMPLES_SUFFIX, dumps_lines(samples))
    return path

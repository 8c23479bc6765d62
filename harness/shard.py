"""`--shard I/N`: which examples one process evaluates, and what `harness merge` needs from it.

The split is a pure function of the examples' prompt sizes, so N processes that never talk to
each other agree on it. Examples stay whole (every request of an example goes to one shard)
and are dealt greedily, largest first, to the shard with the fewest prompt tokens so far
(longest-processing-time scheduling), so shards get about the same work rather than the
same count. Each example keeps its global index: the few-shot draw and the sampling seed of
example i do not depend on the shard it lands in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.results import ResultRecord

SPLIT_METHOD = "greedy-prompt-tokens/1"
LOCATIONS = ("source", "data_files")  # paths: they may differ between machines
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard `index` (0-based) of `count`."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """'I/N' with 0 <= I < N."""
    match = _SHARD.match(text or "")
    if not match or int(match.group(2)) < 1 or int(match.group(1)) >= int(match.group(2)):
        raise HarnessError(f"--shard must be I/N with 0 <= I < N (e.g. 0/4 ... 3/4), got '{text}'")
    return Shard(int(match.group(1)), int(match.group(2)))


def split(weights: Sequence[int], count: int) -> list[list[int]]:
    """Example indices of each of `count` shards: heaviest example first, to the lightest shard
    (ties: lower example index first, lower shard first). Each shard's indices are ascending."""
    parts: list[list[int]] = [[] for _ in range(count)]
    loads = [(0, s) for s in range(count)]  # (prompt tokens so far, shard), a min-heap
    for i in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        load, s = heapq.heappop(loads)
        parts[s].append(i)
        heapq.heappush(loads, (load + weights[i], s))
    return [sorted(p) for p in parts]


def example_weights(encode, requests: Sequence[Any], owners: Sequence[int], n_examples: int) -> list[int]:
    """Prompt tokens of each example: the tokens of every text its requests send (contexts,
    continuations, whole texts), plus one per request. Each distinct text is encoded once."""
    cache: dict[str, int] = {}
    weights = [0] * n_examples
    for request, owner in zip(requests, owners, strict=True):
        texts = [v for v in vars(request).values() if isinstance(v, str)]
        for text in texts:
            if text not in cache:
                cache[text] = len(encode(text))
        weights[owner] += 1 + sum(cache[t] for t in texts)
    return weights


def sha256_json(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class ShardPlan:
    """This process's share of one task's examples."""

    shard: Shard
    examples: list[int]           # global example indices, ascending
    n_total: int                  # examples in the whole run
    prompt_tokens: int            # the weight this shard holds
    total_prompt_tokens: int
    assignment_sha256: str        # digest of the whole split: all shards must agree on it
    data_sha256: str              # digest of the prepared examples

    def block(self, items: dict[str, list[Any]], samples: list[dict] | None = None) -> dict[str, Any]:
        """The `shard` block of a partial result: enough to recompute every metric."""
        block: dict[str, Any] = {
            "index": self.shard.index, "count": self.shard.count, "method": SPLIT_METHOD,
            "n_total": self.n_total, "examples": self.examples,
            "prompt_tokens": self.prompt_tokens, "total_prompt_tokens": self.total_prompt_tokens,
            "assignment_sha256": self.assignment_sha256, "data_sha256": self.data_sha256,
            "items": items,
        }
        if samples is not None:
            block["samples"] = samples
        return block


def select(encode, docs: Sequence[dict], requests: list[Any], owners: list[int],
           shard: Shard) -> tuple[ShardPlan, list[Any], list[int]]:
    """This shard's plan, its requests, and their owners as positions in `plan.examples`."""
    weights = example_weights(encode, requests, owners, len(docs))
    parts = split(weights, shard.count)
    examples = parts[shard.index]
    position = {doc: k for k, doc in enumerate(examples)}
    keep = [j for j, owner in enumerate(owners) if owner in position]
    plan = ShardPlan(shard, examples, len(docs), sum(weights[i] for i in examples), sum(weights),
                     sha256_json([SPLIT_METHOD, parts]), sha256_json(list(docs)))
    return plan, [requests[j] for j in keep], [position[owners[j]] for j in keep]


def model_fingerprint(lm: Any, model_block: dict[str, Any]) -> str:
    """What identifies the weights: the result's model block, the hub commit, and a digest of the
    checkpoint folder's files (`harness.fingerprint`, sampled for big files)."""
    from harness.fingerprint import checkpoint_folder, folder_digest

    parts: dict[str, Any] = {"model": {k: v for k, v in model_block.items() if k not in LOCATIONS}}
    model = getattr(getattr(lm, "backend", None), "model", None)
    parts["commit"] = getattr(getattr(model, "config", None), "_commit_hash", None)
    spec = lm.spec
    folder = checkpoint_folder(spec.source, spec.is_local) if spec is not None else None
    parts["files"] = folder_digest(folder) if folder is not None and folder.is_dir() else None
    return sha256_json(parts)


def partial(record: ResultRecord, run: Any, lm: Any, log_samples: bool) -> ResultRecord:
    """The partial result of a sharded `TaskRun`: its result record with the `shard` block."""
    block = run.shard.block(run.items, run.samples if log_samples else None)
    block["model_fingerprint"] = model_fingerprint(lm, record.model)
    return dataclasses.replace(record, shard=block)


def write_partial(record: ResultRecord, run: Any, lm: Any, output_dir: Path, log_samples: bool,
                  launch: dict[str, str] | None, echo) -> tuple[Path, ResultRecord]:
    """Write the partial result of a sharded `TaskRun` under
    `<output_dir>/<model>/<task>/shards/<run>/` (`<run>`: the msrun launch, or a digest of what
    every shard of this run shares). `launch`: the msrun launch and device, added to `shard`."""
    from harness.results import write_new

    plan = run.shard
    record = partial(record, run, lm, log_samples)
    record.shard.update(launch or {})
    folder = (Path(output_dir) / record.model["name"] / record.task["name"] / "shards"
              / (launch["launch"] if launch else run_key(record.to_dict())))
    path = write_new(folder, shard_file_stem(plan.shard), ".json", record.to_json())
    echo(f"wrote shard {plan.shard} ({len(plan.examples)} of {plan.n_total} examples, "
         f"{plan.prompt_tokens} of {plan.total_prompt_tokens} prompt tokens): {path}", err=True)
    if launch is None:
        echo(f"when all {plan.shard.count} shards are written: harness merge {folder}", err=True)
    return path, record


def identity(record: dict[str, Any]) -> dict[str, Any]:
    """The fields every shard of one run must share, by dotted name. Batch size and whether
    samples are logged may differ (they change no number), and so may where the model and the
    data were read from: the digests of the weights and of the examples must match instead."""
    view: dict[str, Any] = {}
    for key, value in record["task"].items():
        view[f"task.{key}"] = value
    for key, value in record["model"].items():
        if key not in LOCATIONS:
            view[f"model.{key}"] = value
    for key, value in record.get("config", {}).items():
        if key not in ("batch_size", "log_samples", "tasks", "models", *LOCATIONS):
            view[f"config.{key}"] = value
    shard = record.get("shard", {})
    for key in ("count", "method", "n_total", "assignment_sha256", "data_sha256", "model_fingerprint"):
        view[f"shard.{key}"] = shard.get(key)
    for key, value in record.get("packages", {}).items():
        view[f"packages.{key}"] = value
    return view


def run_key(record: dict[str, Any]) -> str:
    """A folder name shared by the shards of one configuration (and only by them)."""
    return sha256_json(identity(record))[:12]


def shard_file_stem(shard: Shard) -> str:
    return f"shard-{shard.index}-of-{shard.count}"

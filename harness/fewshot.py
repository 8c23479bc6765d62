"""Context examples for `--num-fewshot K`.

Examples come from the task's few-shot split on the hub (e.g. WMT14 validation). When the
data is a local file, they are drawn from the same rows, never the document itself. The
draw for document i depends only on (seed, i), so it does not change with --limit,
batch size or sharding.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from harness.task import Doc


def sample_shots(pool: Sequence[Doc], k: int, seed: int, doc_index: int,
                 same_data: bool) -> list[Doc]:
    """K examples for document `doc_index` (excluding it when the pool is the eval data)."""
    if k <= 0:
        return []
    rng = random.Random(f"{seed}:{doc_index}")
    candidates = [i for i in range(len(pool)) if not (same_data and i == doc_index)]
    picked = rng.sample(candidates, min(k, len(candidates)))
    return [pool[i] for i in picked]

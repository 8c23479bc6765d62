"""The three benchmark workloads, built deterministically from the shared local data.

Every system receives exactly the same request strings, built the way lm-evaluation-harness
builds them for `lambada_openai` and `wmt14-en-fr`:

* ``loglikelihood``: LAMBADA (OpenAI's test set), context = the text without its last word,
  continuation = ``" " + last word`` (lm-eval splits on ``' '``).
* ``multiple_choice``: no 4-choice data set ships offline, so one is built from LAMBADA: the gold
  choice is the passage's last word, the three distractors are other passages' last words drawn
  by a generator seeded with the example's index, and the gold position is ``index % 4``. Each
  choice is a continuation ``" " + word`` of the same context (lm-eval's multiple-choice
  convention), so the task exercises exactly what HellaSwag/ARC-style tasks exercise.
* ``generation``: WMT14 newstest2014 en→fr, lm-eval's prompt ``"English phrase: …\\nFrench phrase:"``,
  greedy, stop at ``"\\n"``, at most `max_new_tokens` new tokens.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError

KINDS = ("loglikelihood", "multiple_choice", "generation")


@dataclass
class Workload:
    """Requests for one kind, plus what the driver needs to score the answers."""

    kind: str
    n_examples: int
    requests: list[list]  # [context, continuation] or [context, until, max_new_tokens]
    gold: list = field(default_factory=list)  # MC: gold index per example; generation: references
    n_choices: int = 1
    choice_lengths: list[list[int]] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"kind": self.kind, "requests": self.requests}


def _read_lambada(path: Path) -> list[tuple[str, str]]:
    """(context, last word) per passage, split exactly as lm-eval's lambada_openai does."""
    if not path.is_file():
        raise HarnessError(f"LAMBADA file '{path}' not found; pass --lambada PATH to lambada_test.jsonl")
    pairs = []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                text = json.loads(line)["text"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise HarnessError(f"{path}:{line_no}: expected a JSON object with a 'text' field") from None
            words = text.split(" ")
            pairs.append((" ".join(words[:-1]), words[-1]))
    return pairs


def loglikelihood(lambada: Path, n: int) -> Workload:
    pairs = _read_lambada(lambada)[:n]
    return Workload("loglikelihood", len(pairs), [[c, " " + w] for c, w in pairs],
                    gold=[w for _, w in pairs])


def multiple_choice(lambada: Path, n: int, n_choices: int = 4, seed: int = 1234) -> Workload:
    all_pairs = _read_lambada(lambada)
    pool = list(dict.fromkeys(w for _, w in all_pairs))  # distinct last words, first-seen order
    requests, gold, lengths = [], [], []
    for i, (context, word) in enumerate(all_pairs[:n]):
        rng = random.Random(seed * 1_000_003 + i)
        distractors: list[str] = []
        while len(distractors) < n_choices - 1:
            candidate = pool[rng.randrange(len(pool))]
            if candidate != word and candidate not in distractors:
                distractors.append(candidate)
        position = i % n_choices
        choices = distractors[:position] + [word] + distractors[position:]
        requests.extend([context, " " + c] for c in choices)
        gold.append(position)
        lengths.append([len(c) for c in choices])
    return Workload("multiple_choice", len(gold), requests, gold=gold, n_choices=n_choices,
                    choice_lengths=lengths)


def generation(wmt_dir: Path, n: int, max_new_tokens: int) -> Workload:
    en_path, fr_path = wmt_dir / "newstest2014.en-fr.en", wmt_dir / "newstest2014.en-fr.fr"
    for p in (en_path, fr_path):
        if not p.is_file():
            raise HarnessError(f"WMT14 file '{p}' not found; pass --wmt DIR holding "
                               "newstest2014.en-fr.en and .fr (aligned, one sentence a line)")
    en = en_path.read_text(encoding="utf-8").split("\n")[:n]
    fr = fr_path.read_text(encoding="utf-8").split("\n")[:n]
    requests = [[f"English phrase: {s}\nFrench phrase:", ["\n"], max_new_tokens] for s in en]
    return Workload("generation", len(requests), requests, gold=fr)

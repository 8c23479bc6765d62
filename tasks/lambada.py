"""LAMBADA: predict the last word of a passage (Paperno et al. 2016; GPT-2 paper, section 3.2).

`lambada` is lm-evaluation-harness's `lambada_openai` to the letter: OpenAI's de-tokenized test
set (5,153 passages, the file GPT-2 was evaluated on), context = the text before its last space,
target = " " + the last space-separated word.

* `acc`: the greedy continuation of the context is exactly the target's tokens (all of them).
* `perplexity`: exp(-mean over passages of log P(target | context)), the target being the
  whole last word (all its tokens), as lm-evaluation-harness aggregates it.

`lambada-standard` is the original (tokenized) cloze test set scored the same way
(lm-evaluation-harness's `lambada_standard`). No stop-word filter (the paper's 63.24% for
GPT-2 1.5B used one; see docs/gpt2-paper.md).
"""

from __future__ import annotations

from harness_prompts import PROMPTS_DIR

from harness.scorers import Accuracy, Perplexity
from harness.task import HubSource, Loglikelihood, Task

# lm-eval's lambada_openai first (the default), then its lambada_openai_cloze wording and an
# instruction-style one (this harness's), for `--template all`.
TEMPLATES = {"lm-eval": "lambada/lm-eval.jinja", "cloze": "lambada/cloze.jinja",
             "instruction": "lambada/instruction.jinja"}


def prepare(row: dict) -> dict:
    """Split at the last space: text.split(' ')[:-1] joined by ' ', and the last piece."""
    context, _, word = row["text"].rpartition(" ")
    return {"text": row["text"], "context": context, "target": word}


def lambada_task(name: str, description: str, hub: HubSource) -> Task:
    return Task(
        name=name,
        description=description,
        adapter=Loglikelihood(),
        scorers=(Accuracy, Perplexity),
        templates=TEMPLATES,
        prompt_dir=PROMPTS_DIR,
        prepare=prepare,
        hub=hub,
        target_delimiter=" ",
    )


TASKS = [
    lambada_task("lambada", "LAMBADA (OpenAI test set, as lm-eval lambada_openai): last-word accuracy "
                 "and perplexity", HubSource("EleutherAI/lambada_openai", "default", split="test")),
    lambada_task("lambada-standard", "LAMBADA (original cloze test set, as lm-eval lambada_standard)",
                 HubSource("cimec/lambada", None, split="test")),
]

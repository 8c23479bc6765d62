"""Children's Book Test, common nouns (CN) and named entities (NE) (GPT-2 paper, section 3.2).

As the paper: the 20 context sentences, then the query sentence; for each of the 10 candidates
the log-likelihood of the candidate *and the rest of the query sentence* is computed, and the
most likely candidate is the prediction (`acc`). Validation split, as the paper reports. The text
is scored as distributed (tokenized, e.g. "`` Do n't ''"): the paper does not describe a
de-tokenizer for CBT.
"""

from __future__ import annotations

from harness_prompts import PROMPTS_DIR

from harness.scorers import Accuracy
from harness.task import HubSource, MultipleChoice, Task

BLANK = "XXXXX"


def prepare(row: dict) -> dict:
    question = row["question"]
    if BLANK not in question:
        raise ValueError(f"CBT question without the {BLANK} blank: {question!r}")
    before, after = question.split(BLANK, 1)
    options = list(row["options"])
    return {
        "story": " ".join(s.strip() for s in row["sentences"]),
        "before": before,
        "choices": [o + after for o in options],
        "options": options,
        "gold": options.index(row["answer"]),
    }


def cbt_task(kind: str, what: str) -> Task:
    return Task(
        name=f"cbt-{kind.lower()}",
        description=f"Children's Book Test, {what} (validation): candidate + rest of the sentence",
        adapter=MultipleChoice(), scorers=(Accuracy,),
        templates={"gpt2-paper": "cbt/gpt2-paper.jinja"}, prompt_dir=PROMPTS_DIR,
        prepare=prepare, hub=HubSource("cam-cst/cbt", kind, split="validation"),
        target_delimiter="",
    )


TASKS = [cbt_task("CN", "common nouns"), cbt_task("NE", "named entities")]

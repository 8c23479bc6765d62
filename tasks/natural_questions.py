"""Natural Questions, open-domain (GPT-2 paper, section 3.6; lm-evaluation-harness `nq_open`).

Greedy generation stopped at a newline, "." or ","; the prediction is the stripped output.
`exact_match`: the prediction equals any reference answer after SQuAD normalisation (lower
case, no punctuation, no articles, single spaces). lm-evaluation-harness instead lower-cases,
drops punctuation and applies the regex `\\ban|a|the\\b`, which also deletes every letter "a";
the two agree on most answers but not all. The paper seeds the context with example
question-answer pairs: use --num-fewshot (examples from the train split).
"""

from __future__ import annotations

from harness_prompts import PROMPTS_DIR

from harness.scorers import ExactMatch
from harness.task import Generate, HubSource, Task


def prepare(row: dict) -> dict:
    answers = row["answer"]
    return {"question": row["question"], "answers": [answers] if isinstance(answers, str) else list(answers)}


TASKS = [
    Task(
        name="natural-questions",
        description="Natural Questions (open) validation: short answers, exact match after normalisation",
        adapter=Generate(until=("\n", ".", ","), max_new_tokens=256),
        scorers=(lambda: ExactMatch(normalize=True),),
        templates={"lm-eval": "natural-questions/lm-eval.jinja",
                   "qa": "natural-questions/qa.jinja"},
        prompt_dir=PROMPTS_DIR, prepare=prepare, references=lambda doc: list(doc["answers"]),
        hub=HubSource("google-research-datasets/nq_open", "nq_open", split="validation",
                      fewshot_split="train"),
        fewshot_delimiter="\n",
    ),
]

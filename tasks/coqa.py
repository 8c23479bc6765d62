"""CoQA conversational question answering (GPT-2 paper, section 3.5), as lm-evaluation-harness.

Every turn of every story is one example: the story, the conversation so far ("Q: ...\\n\\nA:
...\\n\\n"), the question and a final "A:". Greedy generation until "\\nQ:"; the prediction is
the first line of the stripped output. `f1` (SQuAD token F1) and `exact_match` use CoQA's
multi-reference rule over the answer and its additional answers (see harness/scorers/qa.py).
"""

from __future__ import annotations

from harness_prompts import PROMPTS_DIR

from harness.scorers import F1, CoQAExactMatch
from harness.task import Generate, HubSource, Task


def _texts(value) -> list[str]:
    """Answer/question texts from any of the CoQA layouts (dict of lists, list of dicts, strings)."""
    if isinstance(value, dict):
        return list(value["input_text"])
    return [v["input_text"] if isinstance(v, dict) else v for v in value]


def _references(answer: str, additional: list[str]) -> list[str]:
    """The answer, then each additional answer not already there (case-insensitively)."""
    refs = [answer]
    for extra in additional:
        if extra.lower() not in map(str.lower, refs):
            refs.append(extra)
    return refs


def prepare(row: dict) -> list[dict]:
    questions, answers = _texts(row["questions"]), _texts(row["answers"])
    additional = [_texts(a) for a in (row.get("additional_answers") or {}).values()]
    docs = []
    for i, question in enumerate(questions):
        history = [{"question": q, "answer": a} for q, a in zip(questions[:i], answers[:i], strict=True)]
        docs.append({
            "story": row["story"], "history": history, "question": question,
            "references": _references(answers[i], [a[i] for a in additional if i < len(a)]),
        })
    return docs


def first_line(output: str) -> str:
    return output.strip().split("\n")[0]


TASKS = [
    Task(
        name="coqa",
        description="CoQA validation: answer each turn given the story and the conversation (F1, EM)",
        adapter=Generate(until=("\nQ:",), max_new_tokens=256, postprocess=first_line),
        scorers=(F1, CoQAExactMatch),
        templates={"gpt2-paper": "coqa/gpt2-paper.jinja"}, prompt_dir=PROMPTS_DIR,
        prepare=prepare, references=lambda doc: list(doc["references"]),
        hub=HubSource("EleutherAI/coqa", None, split="validation"),
    ),
]

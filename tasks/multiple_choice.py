"""The standard multiple-choice sets, as lm-evaluation-harness defines them.

Every choice is scored as a continuation (" " + choice) of the same context; `acc` picks the
highest log-likelihood, `acc_norm` the highest log-likelihood per character of the choice.
Winogrande uses partial scoring instead: the option fills the blank in the *context* and the
rest of the sentence is scored (lm-evaluation-harness reports `acc` only there; so do we).

HellaSwag's text is cleaned with lm-evaluation-harness's `preprocess` (WikiHow "[title]"
markers and other bracketed artefacts removed); its context is
`activity_label + ": " + ctx_a + " " + ctx_b.capitalize()`.
"""

from __future__ import annotations

import re

from harness_prompts import PROMPTS_DIR

from harness.scorers import Accuracy, AccuracyNorm
from harness.task import HubSource, MultipleChoice, PartialChoice, Task


def hellaswag_clean(text: str) -> str:
    """lm-evaluation-harness's HellaSwag `preprocess`."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def prepare_hellaswag(row: dict) -> dict:
    context = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    return {
        "query": hellaswag_clean(row["activity_label"] + ": " + context),
        "activity": hellaswag_clean(row["activity_label"]),  # for the plain / instruction templates
        "context": hellaswag_clean(context),
        "choices": [hellaswag_clean(e) for e in row["endings"]],
        "gold": int(row["label"]),
    }


def prepare_piqa(row: dict) -> dict:
    return {"goal": row["goal"], "choices": [row["sol1"], row["sol2"]], "gold": int(row["label"])}


def prepare_arc(row: dict) -> dict:
    choices = row["choices"]
    return {"question": row["question"], "choices": list(choices["text"]),
            "gold": list(choices["label"]).index(row["answerKey"])}


def prepare_boolq(row: dict) -> dict:
    # SuperGLUE rows carry `label` (0 = False, 1 = True); google/boolq rows a boolean `answer`.
    label = row["label"] if "label" in row else row["answer"]
    if isinstance(label, str):
        label = {"true": 1, "false": 0}.get(label.strip().lower(), label)
    return {"passage": row["passage"], "question": row["question"], "choices": ["no", "yes"],
            "gold": int(label)}


def prepare_winogrande(row: dict) -> dict:
    sentence = row["sentence"]
    blank = sentence.index("_")
    return {
        "sentence": sentence,
        "before": sentence[:blank],  # the option completes the context ...
        "choices": [row["option1"], row["option2"]],
        "target": sentence[blank + 1 :].strip(),  # ... and the rest of the sentence is scored
        "gold": {"1": 0, "2": 1}[str(row["answer"]).strip()],
    }


def templates_of(lm_eval_template: str) -> dict[str, str]:
    """lm-eval's template (e.g. `piqa/lm-eval.jinja`) first (the default, so published numbers do
    not move), then a plain and an instruction-style wording beside it, for `--template all`."""
    folder = lm_eval_template.rsplit("/", 1)[0]
    return {name: f"{folder}/{name}.jinja" for name in ("lm-eval", "plain", "instruction")}


def mc_task(name: str, description: str, prepare, template: str, hub: HubSource) -> Task:
    return Task(
        name=name, description=description, adapter=MultipleChoice(),
        scorers=(Accuracy, AccuracyNorm), templates=templates_of(template), prompt_dir=PROMPTS_DIR,
        prepare=prepare, hub=hub,
    )


TASKS = [
    mc_task("hellaswag", "HellaSwag validation: sentence completion (lm-eval preprocessing)",
            prepare_hellaswag, "hellaswag/lm-eval.jinja",
            HubSource("Rowan/hellaswag", None, split="validation", fewshot_split="train")),
    mc_task("piqa", "PIQA validation: physical commonsense, two solutions", prepare_piqa,
            "piqa/lm-eval.jinja", HubSource("baber/piqa", None, split="validation", fewshot_split="train")),
    mc_task("arc-easy", "ARC-Easy test: grade-school science questions", prepare_arc, "arc/lm-eval.jinja",
            HubSource("allenai/ai2_arc", "ARC-Easy", split="test", fewshot_split="train")),
    mc_task("arc-challenge", "ARC-Challenge test: grade-school science questions", prepare_arc,
            "arc/lm-eval.jinja",
            HubSource("allenai/ai2_arc", "ARC-Challenge", split="test", fewshot_split="train")),
    mc_task("boolq", "BoolQ validation: yes/no questions about a passage", prepare_boolq,
            "boolq/lm-eval.jinja",
            HubSource("aps/super_glue", "boolq", split="validation", fewshot_split="train")),
    Task(
        name="winogrande",
        description="Winogrande (XL) validation: fill the blank, partial scoring",
        adapter=PartialChoice(), scorers=(Accuracy,),
        templates={"lm-eval": "winogrande/lm-eval.jinja"}, prompt_dir=PROMPTS_DIR,
        prepare=prepare_winogrande,
        hub=HubSource("allenai/winogrande", "winogrande_xl", split="validation"),
    ),
]

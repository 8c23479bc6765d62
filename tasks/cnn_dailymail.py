"""CNN / Daily Mail summarization (GPT-2 paper, section 3.6).

As the paper: the article, then "\\nTL;DR:"; 100 tokens of top-k sampling with k = 2 (seeded
per example from --seed, so runs repeat); the first 3 generated sentences are the summary.
ROUGE-1/2/L F-measures through the `rouge-score` package (see harness/scorers/rouge.py). The
`no-hint` template drops "TL;DR:" (the paper's ablation). Articles longer than the model's
context keep their end (the generation prompt is truncated from the left and counted).
"""

from __future__ import annotations

import re

from harness_prompts import PROMPTS_DIR

from harness.scorers import rouge1, rouge2, rougeL
from harness.task import Generate, HubSource, Task

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


def first_sentences(text: str, n: int = 3) -> str:
    """The first `n` sentences of `text` (split after . ! ? and closing quotes), one per line."""
    text = " ".join(text.split())
    if not text:
        return ""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        sentences.append(text[start : match.end()].strip())
        start = match.end()
        if len(sentences) == n:
            return "\n".join(sentences)
    sentences.append(text[start:].strip())
    return "\n".join(s for s in sentences[:n] if s)


def prepare(row: dict) -> dict:
    return {"article": row["article"], "highlights": row["highlights"]}


TASKS = [
    Task(
        name="cnn-dailymail",
        description="CNN/Daily Mail test: TL;DR: summaries, top-k 2 sampling, first 3 sentences (ROUGE)",
        adapter=Generate(until=(), max_new_tokens=100, top_k=2, postprocess=first_sentences),
        scorers=(rouge1, rouge2, rougeL),
        templates={"gpt2-paper": "cnn-dailymail/gpt2-paper.jinja",
                   "no-hint": "cnn-dailymail/no-hint.jinja"},
        prompt_dir=PROMPTS_DIR, prepare=prepare, references=lambda doc: [doc["highlights"]],
        hub=HubSource("abisee/cnn_dailymail", "3.0.0", split="test"),
    ),
]

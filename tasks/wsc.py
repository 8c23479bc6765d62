"""Winograd Schema Challenge, WSC273 (GPT-2 paper, section 3.4), with partial scoring.

Each candidate replaces the pronoun: the text up to the pronoun plus the candidate is the
context, and the log-likelihood of the rest of the sentence after the pronoun is compared
(Trinh & Le 2018, as the paper does). Candidates are normalised as lm-evaluation-harness's
`wsc273` does (possessive pronouns get "'s"; a leading "The"/"He"/... is lower-cased unless it
starts a sentence).

Difference from lm-evaluation-harness: it scores " " + the remainder, and the remainder already
starts with a space, so it scores two spaces; we score the remainder exactly as it stands in the
sentence (target delimiter ""). Double spaces are collapsed in each part separately (the data's
`pronoun_loc` refers to the raw text).
"""

from __future__ import annotations

from harness_prompts import PROMPTS_DIR

from harness.scorers import Accuracy
from harness.task import HubSource, PartialChoice, Task

UPPER_PRONOUNS = ("A", "An", "The", "She", "He", "It", "They", "My", "His", "Her", "Their")
POSSESSIVES = ("my", "his", "her", "our", "their")


def normalize_option(text: str, pronoun: str, pronoun_loc: int, option: str) -> str:
    """lm-evaluation-harness's option normalisation for partial evaluation."""
    if pronoun.lower() in POSSESSIVES:
        option += "'s"
    first = option.split()[0]
    start_of_sentence = pronoun_loc >= 2 and text[pronoun_loc - 2] == "."
    if not start_of_sentence and first in UPPER_PRONOUNS:
        return option.replace(first, first.lower())
    return option


def prepare(row: dict) -> dict:
    text, pronoun, loc = row["text"], row["pronoun"], int(row["pronoun_loc"])
    if text[loc : loc + len(pronoun)] != pronoun:
        raise ValueError(f"pronoun {pronoun!r} is not at pronoun_loc {loc} of {text!r}")
    return {
        "text": text,
        "before": text[:loc].replace("  ", " "),
        "choices": [normalize_option(text, pronoun, loc, o) for o in row["options"]],
        "target": text[loc + len(pronoun) :].replace("  ", " "),
        "gold": int(row["label"]),
    }


TASKS = [
    Task(
        name="wsc273",
        description="Winograd Schema Challenge (273 schemas), partial scoring as the GPT-2 paper",
        adapter=PartialChoice(), scorers=(Accuracy,),
        templates={"gpt2-paper": "wsc273/gpt2-paper.jinja"}, prompt_dir=PROMPTS_DIR,
        prepare=prepare, hub=HubSource("lighteval/winograd_wsc", "wsc273", split="test"),
        target_delimiter="",
    ),
]

"""WMT14 newstest2014 English<->French, as in the GPT-2 paper (section 3.7).

The prediction is the first generated line (generation stops at a newline), scored with
corpus BLEU and chrF through sacrebleu. Local copy: `--data-files` pointing at the aligned
`newstest2014.en-fr.en` / `.fr` files (or the folder holding them).
"""

from __future__ import annotations

from harness_prompts import PROMPTS_DIR

from harness.scorers import BLEU, ChrF
from harness.task import Generate, HubSource, LocalFormat, Task

LANGUAGES = {"en": "English", "fr": "French"}
TEMPLATES = {
    "gpt2-paper": "translation/gpt2-paper.jinja",
    "instruction": "translation/instruction.jinja",
    "lm-eval": "translation/lm-eval.jinja",
}


def translation_task(source: str, target: str) -> Task:
    """The WMT14 task translating `source` into `target` (language codes)."""

    def prepare(row: dict) -> dict:
        pair = row.get("translation", row)  # hub rows nest the pair under "translation"
        return {
            "source": pair[source], "target": pair[target],
            "source_language": LANGUAGES[source], "target_language": LANGUAGES[target],
        }

    return Task(
        name=f"translation-{source}-{target}",
        description=f"WMT14 newstest2014 {LANGUAGES[source]} to {LANGUAGES[target]}, greedy, first line",
        adapter=Generate(until=("\n",), max_new_tokens=256),
        scorers=(BLEU, ChrF),
        templates=TEMPLATES,
        prompt_dir=PROMPTS_DIR,
        prepare=prepare,
        hub=HubSource("wmt/wmt14", "fr-en", split="test", fewshot_split="validation"),
        local=LocalFormat(parallel=("en", "fr")),
    )


TASKS = [translation_task("en", "fr"), translation_task("fr", "en")]

"""Language modelling (GPT-2 paper, section 3.1, Table 3): log-likelihood of whole texts.

Texts are scored with rolling windows over the model's context (`--rolling-stride N`: each
window after the first predicts N new tokens with max_length - N tokens of left context; the
default is disjoint windows, N = max_length, as lm-evaluation-harness). Perplexities state their
unit: `word_perplexity` counts the words of the *original* (tokenized) text, so de-tokenizing
does not change the denominator; `byte_perplexity` and `bits_per_byte` count its UTF-8 bytes.

* WikiText-2 / WikiText-103 (test): one example per article. Hub rows are the articles of
  EleutherAI/wikitext_document_level (lm-evaluation-harness's `wikitext`); a raw local file
  (wiki.test.tokens / wiki.test.raw) is cut into articles at its " = Title = " lines. Words as
  lm-evaluation-harness counts them: `len(re.split(r"\\s+", text))`.
* PTB and the One Billion Word benchmark (test): the sentences, one per line, are scored as one
  stream (each line ends with "\\n"); words = the sentence's tokens plus one end of sentence per
  line, the usual word-level convention. --limit N keeps the first N sentences.
* enwik8 (bits per byte) and text8 (bits per character): the last 5,000,000 bytes/characters of
  the 100M file (the standard test split), scored as one stream; a shorter file is scored whole.
  --limit N keeps the first N lines (enwik8) or 10,000-character pieces (text8).

Templates: `gpt2-paper` scores the invertible de-tokenization (harness/detokenize.py), `raw` the
text as distributed, `lm-eval` (WikiText only) lm-evaluation-harness's wikitext_detokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from harness_prompts import PROMPTS_DIR

from harness import detokenize as dt
from harness.scorers import (
    bits_per_byte,
    bits_per_character,
    byte_perplexity,
    token_perplexity,
    word_perplexity,
)
from harness.scorers.perplexity import count_bytes, count_words
from harness.task import HubSource, LocalFormat, Rolling, Task

PARQUET_BRANCH = "refs/convert/parquet"
WHOLE_FILE = LocalFormat(text_field="text", whole_file=True)
TEST_SIZE = 5_000_000  # enwik8 / text8: the last 5M bytes (characters) of 100M
FULL_SIZE = 100_000_000
TEXT8_PIECE = 10_000
_HEADING = re.compile(r"^ = [^=].* = $")  # WikiText level-1 heading: a new article


def _text(row: dict) -> str:
    for key in ("page", "text", "sentence"):
        if key in row and row[key] is not None:
            return str(row[key])
    raise KeyError("text")


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


# ------------------------------------------------------------------ WikiText
def wikitext_articles(text: str) -> list[str]:
    """A raw WikiText file cut before each level-1 heading line (joined back, the pieces are the
    file); a text with no heading after its first line stays whole."""
    lines = text.split("\n")
    cuts = [i for i, line in enumerate(lines) if i > 0 and _HEADING.match(line)]
    bounds = [0, *cuts, len(lines)]
    pieces = ["\n".join(lines[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    pieces = [p + "\n" for p in pieces[:-1]] + pieces[-1:]
    return [p for p in pieces if p.strip()]


def wikitext_doc(original: str) -> dict:
    return {
        "original": original,
        "detokenized": dt.DETOKENIZERS["wikitext"](original),
        "lm_eval": dt.lm_eval_wikitext(original),
    }


def words_and_bytes(doc: dict) -> dict[str, int]:
    """Words and UTF-8 bytes of the original text (WikiText)."""
    return {"words": count_words(doc["original"]), "bytes": count_bytes(doc["original"])}


def prepare_wikitext(row: dict) -> list[dict]:
    return [{"original": article} for article in wikitext_articles(_text(row))]


def group_wikitext(docs: list[dict]) -> list[dict]:
    return [wikitext_doc(d["original"]) for d in docs]


# ------------------------------------------------------------------ PTB, 1BW
def prepare_lines(row: dict) -> list[dict]:
    return [{"line": line} for line in _lines(_text(row))]


def stream_group(detokenizer: Callable[[str], str]) -> Callable[[list[dict]], list[dict]]:
    def group(docs: list[dict]) -> list[dict]:
        original = "".join(d["line"] + "\n" for d in docs)
        return [{"original": original, "detokenized": detokenizer(original)}]
    return group


def stream_words_and_bytes(doc: dict) -> dict[str, int]:
    """A stream's words (every sentence's tokens plus one end of sentence per line) and the
    UTF-8 bytes of its original text (PTB, 1BW)."""
    original = doc["original"]
    return {"words": len(original.split()) + original.count("\n"), "bytes": count_bytes(original)}


# ------------------------------------------------------------------ enwik8, text8
def test_portion_bytes(text: str) -> str:
    """The last 5M bytes of the full 100M-byte enwik8 (cut at a character boundary)."""
    raw = text.encode("utf-8")
    if len(raw) < FULL_SIZE:
        return text
    return raw[-TEST_SIZE:].decode("utf-8", errors="ignore")


def prepare_enwik8(row: dict) -> list[dict]:
    return [{"piece": line} for line in test_portion_bytes(_text(row)).splitlines(keepends=True)]


def prepare_text8(row: dict) -> list[dict]:
    text = _text(row)
    if len(text) >= FULL_SIZE:
        text = text[-TEST_SIZE:]
    pieces, start = [], 0
    while start < len(text):  # ~10,000-character pieces, cut after a space; joined back exactly
        end = text.find(" ", start + TEXT8_PIECE)
        end = len(text) if end == -1 else end + 1
        pieces.append({"piece": text[start:end]})
        start = end
    return pieces


def group_pieces(docs: list[dict]) -> list[dict]:
    original = "".join(d["piece"] for d in docs)
    return [{"original": original}]


def bytes_and_characters(doc: dict) -> dict[str, int]:
    """UTF-8 bytes and characters of the original text (enwik8, text8)."""
    return {"bytes": count_bytes(doc["original"]), "characters": len(doc["original"])}


# ------------------------------------------------------------------ tasks
WORD_METRICS = (word_perplexity, token_perplexity, byte_perplexity, bits_per_byte)
DETOK_TEMPLATES = {"gpt2-paper": "perplexity/detokenized.jinja", "raw": "perplexity/raw.jinja"}


def lm_task(name: str, description: str, hub: HubSource, prepare, group, unit_counts, templates,
            scorers, local: LocalFormat = WHOLE_FILE) -> Task:
    return Task(name=name, description=description, adapter=Rolling(), scorers=scorers,
                templates=templates, prompt_dir=PROMPTS_DIR, prepare=prepare, group=group,
                unit_counts=unit_counts, hub=hub, local=local)


def parquet_conversion(repo: str, config: str, split: str, splits: tuple[str, ...] = ()) -> HubSource:
    """A script-only repository (datasets 5 refuses scripts) read from the hub's automatic parquet
    conversion: branch refs/convert/parquet, files CONFIG/SPLIT/0000.parquet (more shards: 0001, ...).
    That branch has no dataset card, so the files are named and there is no config name."""
    return HubSource(repo, split=split, revision=PARQUET_BRANCH,
                     data_files={s: f"{config}/{s}/*.parquet" for s in splits or (split,)})


WIKITEXT_TEMPLATES = {**DETOK_TEMPLATES, "lm-eval": "perplexity/lm-eval-wikitext.jinja"}

TASKS = [
    lm_task("wikitext-2", "WikiText-2 test articles: word/token/byte perplexity, bits per byte",
            HubSource("EleutherAI/wikitext_document_level", "wikitext-2-raw-v1", split="test"),
            prepare_wikitext, group_wikitext, words_and_bytes, WIKITEXT_TEMPLATES, WORD_METRICS),
    lm_task("wikitext-103", "WikiText-103 test articles: word/token/byte perplexity, bits per byte",
            HubSource("EleutherAI/wikitext_document_level", "wikitext-103-raw-v1", split="test"),
            prepare_wikitext, group_wikitext, words_and_bytes, WIKITEXT_TEMPLATES, WORD_METRICS),
    lm_task("ptb", "Penn Treebank (Mikolov) test as one stream: word/token/byte perplexity",
            parquet_conversion("ptb-text-only/ptb_text_only", "penn_treebank", "test",
                               ("train", "validation", "test")),
            prepare_lines, stream_group(dt.DETOKENIZERS["ptb"]), stream_words_and_bytes,
            DETOK_TEMPLATES, WORD_METRICS),
    lm_task("1bw", "One Billion Word benchmark test as one stream: word/token/byte perplexity",
            parquet_conversion("billion-word-benchmark/lm1b", "plain_text", "test"),
            prepare_lines, stream_group(dt.DETOKENIZERS["1bw"]), stream_words_and_bytes,
            DETOK_TEMPLATES, WORD_METRICS),
    lm_task("enwik8", "enwik8 test (last 5M bytes): bits per byte",
            parquet_conversion("LTCB/enwik8", "enwik8-raw", "train"),
            prepare_enwik8, group_pieces, bytes_and_characters, {"raw": "perplexity/raw.jinja"},
            (bits_per_byte, byte_perplexity, token_perplexity)),
    lm_task("text8", "text8 test (last 5M characters): bits per character",
            HubSource("afmck/text8", None, split="test"),
            prepare_text8, group_pieces, bytes_and_characters, {"raw": "perplexity/raw.jinja"},
            (bits_per_character, token_perplexity)),
]

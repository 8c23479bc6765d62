"""Invertible de-tokenizers for the tokenized language-modelling sets (GPT-2 paper, section 3.1).

WikiText, PTB and the One Billion Word benchmark are distributed *tokenized*: tokens joined by
single spaces ("the game 's role @-@ playing system , which"). GPT-2 reads raw text, so the
paper scores a de-tokenized copy; because the de-tokenizer is invertible, the log-probability
of the original data is still well defined (the word count stays the original one).

`detokenize` only removes spaces between tokens where a rule applies, or rewrites WikiText's
"@-@" separators; `retokenize` puts them back. `retokenize(detokenize(x)) == x` holds for text in
the dataset's own tokenization (each line tokens joined by one space). The known exception is an
original token that itself ends with punctuation the rules split off (e.g. "St." kept whole
before a word): the inverse would split it. Whitespace at line ends and runs of spaces are kept.

`lm_eval_wikitext` reproduces lm-evaluation-harness's (non-invertible) `wikitext_detokenizer`
rules, for numbers comparable with its `wikitext` task.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

CONTRACTIONS = ("n't", "'s", "'re", "'ve", "'m", "'ll", "'d")
PUNCT_AFTER = (",", ".", ":", ";", "!", "?", ")", "]", "}", "%")  # no space before these
PUNCT_BEFORE = ("(", "[", "{", "$")  # no space after these
WIKI_JOINERS = {"@-@": "-", "@,@": ",", "@.@": "."}
# Tokens whose final "." is theirs ("U.S.", "e.g.", "Mr.", "St."): the inverse never splits it.
_ABBREVIATION = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]|[A-Z][a-z]{0,2}")


@dataclass(frozen=True)
class Rules:
    """Which tokens attach to their neighbours."""

    attach_left: tuple[str, ...]  # tokens glued to the token before them
    attach_right: tuple[str, ...]  # tokens glued to the token after them
    quotes: bool = True  # '"' tokens alternate: opening ones glue right, closing ones left
    joiners: dict[str, str] | None = None  # token -> character glued on both sides


WIKITEXT = Rules(PUNCT_AFTER + CONTRACTIONS, PUNCT_BEFORE, True, WIKI_JOINERS)
PTB = Rules(CONTRACTIONS, ("$",), False, None)
ONE_BILLION_WORD = Rules(PUNCT_AFTER + CONTRACTIONS, PUNCT_BEFORE, True, None)


def _detok_line(line: str, rules: Rules) -> str:
    """Glue tokens where a rule says so *and* `_split_chunk` recovers them from the result."""
    tokens = line.split(" ")
    joiners = rules.joiners or {}
    opening = [False] * len(tokens)  # standalone '"' tokens alternate: open, close, open, ...
    closing = [False] * len(tokens)
    if rules.quotes:
        k = 0
        for i, tok in enumerate(tokens):
            if tok == '"':
                (opening if k % 2 == 0 else closing)[i] = True
                k += 1
    chunks: list[str] = [tokens[0]]
    chunk_tokens = [tokens[0]]
    quotes_before = 0  # '"' characters before the current chunk
    i = 1
    while i < len(tokens):
        prev, tok = tokens[i - 1], tokens[i]
        # a joiner ("@-@") glues to both neighbours at once: "role @-@ playing" -> "role-playing"
        step = 2 if tok in joiners and i + 1 < len(tokens) and tokens[i + 1] else 1
        new_tokens = tokens[i : i + step]
        text = "".join(joiners.get(t, t) if step == 2 and j == 0 else t for j, t in enumerate(new_tokens))
        wanted = bool(prev and tok) and (
            step == 2 or tok in rules.attach_left or prev in rules.attach_right or closing[i]
            or opening[i - 1]
        )
        if wanted and _split_chunk(chunks[-1] + text, rules, quotes_before) == chunk_tokens + new_tokens:
            chunks[-1] += text
            chunk_tokens += new_tokens
            i += step
            continue
        quotes_before += chunks[-1].count('"')
        chunks.append(tok)
        chunk_tokens = [tok]
        i += 1
    return " ".join(chunks)


def detokenize(text: str, rules: Rules) -> str:
    """Undo the tokenization of `text`, line by line."""
    return "\n".join(_detok_line(line, rules) for line in text.split("\n"))


def _split_chunk(chunk: str, rules: Rules, quotes_before: int) -> list[str]:
    """The original tokens of one space-free chunk of de-tokenized text."""
    left: list[str] = []
    right: list[str] = []
    core = chunk
    n_quotes = quotes_before
    while True:  # tokens glued to the right of an opening bracket or quote
        if rules.quotes and core.startswith('"') and len(core) > 1 and n_quotes % 2 == 0:
            left.append('"')
            core = core[1:]
            n_quotes += 1
            continue
        head = next((t for t in rules.attach_right if core.startswith(t) and len(core) > len(t)), None)
        if head is None:
            break
        left.append(head)
        core = core[len(head):]
    quotes_in_core = core.count('"')
    while True:  # tokens glued to the left: punctuation, contractions, closing quotes
        if (rules.quotes and core.endswith('"') and len(core) > 1
                and (n_quotes + quotes_in_core) % 2 == 0):
            right.append('"')
            core = core[:-1]
            quotes_in_core -= 1
            continue
        tail = next((t for t in sorted(rules.attach_left, key=len, reverse=True)
                     if core.endswith(t) and len(core) > len(t) and not core[:-len(t)].endswith(t)
                     and not (t == "." and _ABBREVIATION.fullmatch(core[:-1]))), None)
        if tail is None:
            break
        right.append(tail)
        core = core[: -len(tail)]
    middle = _split_joiners(core, rules.joiners) if rules.joiners else [core]
    return left + middle + right[::-1]


def _split_joiners(core: str, joiners: dict[str, str]) -> list[str]:
    """'role-playing' -> ['role', '@-@', 'playing'] (only between two non-space characters)."""
    inverse = {char: token for token, char in joiners.items()}
    parts: list[str] = []
    start = 0
    for i, ch in enumerate(core):
        if ch in inverse and 0 < i < len(core) - 1 and i > start:
            if ch != "-" and not (core[i - 1].isdigit() and core[i + 1].isdigit()):
                continue  # "@,@" and "@.@" only ever join digits ("1,000", "3.5")
            parts += [core[start:i], inverse[ch]]
            start = i + 1
    parts.append(core[start:])
    return parts


def _retok_line(line: str, rules: Rules) -> str:
    out: list[str] = []
    quotes = 0
    for chunk in line.split(" "):
        if not chunk:
            out.append(chunk)
            continue
        tokens = _split_chunk(chunk, rules, quotes)
        quotes += chunk.count('"')
        out.append(" ".join(tokens))
    return " ".join(out)


def retokenize(text: str, rules: Rules) -> str:
    """The inverse of `detokenize` (see the module docstring for where it holds)."""
    return "\n".join(_retok_line(line, rules) for line in text.split("\n"))


# ------------------------------------------------------------------ lm-evaluation-harness
_LM_EVAL_WIKITEXT: list[tuple[str, str, bool]] = [  # (pattern, replacement, is_regex), in order
    ("s '", "s'", False),
    (r"/' [0-9]/", r"/'[0-9]/", True),
    (" @-@ ", "-", False), (" @,@ ", ",", False), (" @.@ ", ".", False),
    (" : ", ": ", False), (" ; ", "; ", False), (" . ", ". ", False), (" ! ", "! ", False),
    (" ? ", "? ", False), (" , ", ", ", False),
    (r"\(\s*([^\)]*?)\s*\)", r"(\1)", True), (r"\[\s*([^\]]*?)\s*\]", r"[\1]", True),
    (r"{\s*([^}]*?)\s*}", r"{\1}", True), (r"\"\s*([^\"]*?)\s*\"", r'"\1"', True),
    (r"'\s*([^']*?)\s*'", r"'\1'", True),
    ("= = = =", "====", False), ("= = =", "===", False), ("= =", "==", False),
    (" \u00b0 ", "\u00b0", False), (" \n", "\n", False), ("\n ", "\n", False),
    (" N ", " 1 ", False), (" 's", "'s", False),
]


def lm_eval_wikitext(text: str) -> str:
    """lm-evaluation-harness's `wikitext_detokenizer` rules, applied in its order."""
    for pattern, replacement, is_regex in _LM_EVAL_WIKITEXT:
        text = re.sub(pattern, replacement, text) if is_regex else text.replace(pattern, replacement)
    return text


DETOKENIZERS: dict[str, Callable[[str], str]] = {
    "wikitext": lambda t: detokenize(t, WIKITEXT),
    "ptb": lambda t: detokenize(t, PTB),
    "1bw": lambda t: detokenize(t, ONE_BILLION_WORD),
    "lm-eval-wikitext": lm_eval_wikitext,
}

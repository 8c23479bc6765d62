"""The de-tokenizers of the language-modelling tasks: readable output, and invertible."""

from __future__ import annotations

import pytest

from harness.detokenize import (
    ONE_BILLION_WORD,
    PTB,
    WIKITEXT,
    detokenize,
    lm_eval_wikitext,
    retokenize,
)

WIKITEXT_LINES = [
    " = Valkyria Chronicles III = ",
    " = = Gameplay = = ",
    "",
    " Senjō no Valkyria 3 : Unrecorded Chronicles ( Japanese : 戦場のヴァルキュリア3 , lit . Valkyria of"
    " the Battlefield 3 ) , commonly referred to as Valkyria Chronicles III outside Japan , is a tactical"
    " role @-@ playing video game developed by Sega and Media.Vision for the PlayStation Portable . ",
    ' It follows the " Nameless " , a penal military unit , against the unit " Calamaty Raven " . ',
    " The game 's opening theme was sung by May 'n . It sold 1 @,@ 000 copies at $ 3 @.@ 50 each"
    " ( about 40 % ) ; critics did n't like it ! ",
    " In 1998 – 99 , the U.S. Army 's 2nd Division ( the \" Indianhead \" ) moved to St. Louis . ",
]
PTB_LINES = [
    " no it was n't black monday ",
    " the company 's $ N million loss was <unk> by analysts who 've said they 're worried ",
    " mr. <unk> is N years old and chairman of <unk> n.v. the dutch publishing group ",
]
ONE_BILLION_WORD_LINES = [
    "The U.S. economy grew 3 % in the quarter , officials said .",
    'He said : " We do n\'t know ( yet ) . "',
    "Mr. Smith went to St. Louis , Mo . , on Monday .",
    "Shares rose $ 1.50 to $ 45 ; the Dow was up 0.4 % .",
]


@pytest.mark.parametrize(("rules", "lines"), [
    (WIKITEXT, WIKITEXT_LINES), (PTB, PTB_LINES), (ONE_BILLION_WORD, ONE_BILLION_WORD_LINES),
], ids=["wikitext", "ptb", "1bw"])
def test_detokenizers_are_invertible_on_sample_lines(rules, lines):
    for line in lines:
        assert retokenize(detokenize(line, rules), rules) == line
    text = "\n".join(lines) + "\n"  # whole texts too, line ends kept
    assert retokenize(detokenize(text, rules), rules) == text


def test_detokenizers_actually_detokenize():
    assert detokenize(WIKITEXT_LINES[3], WIKITEXT).startswith(
        " Senjō no Valkyria 3: Unrecorded Chronicles (Japanese: 戦場のヴァルキュリア3, lit. Valkyria")
    assert "role-playing video game developed by Sega and Media.Vision for the PlayStation Portable. " \
        in detokenize(WIKITEXT_LINES[3], WIKITEXT)
    assert detokenize(WIKITEXT_LINES[4], WIKITEXT) == \
        ' It follows the "Nameless", a penal military unit, against the unit "Calamaty Raven". '
    assert detokenize(WIKITEXT_LINES[5], WIKITEXT) == (
        " The game's opening theme was sung by May 'n. It sold 1,000 copies at $3.50 each"
        " (about 40%); critics didn't like it! ")
    assert detokenize(PTB_LINES[0], PTB) == " no it wasn't black monday "
    assert detokenize(ONE_BILLION_WORD_LINES[0], ONE_BILLION_WORD) == \
        "The U.S. economy grew 3% in the quarter, officials said."


def test_ambiguous_gluing_is_left_alone_so_inversion_stays_exact():
    # "St." is one token here; gluing "Mo ." would read back as a token "Mo." kept whole by the
    # abbreviation rule, so the detokenizer leaves that gap alone.
    out = detokenize("Mr. Smith went to St. Louis , Mo . , on Monday .", ONE_BILLION_WORD)
    assert out == "Mr. Smith went to St. Louis, Mo ., on Monday."


def test_lm_eval_wikitext_rules():
    text = ' The game \'s role @-@ playing ( RPG ) , " Nameless " 1 @,@ 000 . \n = = Plot = = \n'
    assert lm_eval_wikitext(text) == ' The game\'s role-playing (RPG), "Nameless" 1,000.\n== Plot ==\n'

"""The issue-3 scorers against hand-computed values."""

from __future__ import annotations

import math

import pytest
from harness_tasks.cnn_dailymail import first_sentences

from harness.scorers import (
    F1,
    Accuracy,
    AccuracyNorm,
    CoQAExactMatch,
    ExactMatch,
    Outcome,
    Perplexity,
    bits_per_byte,
    bits_per_character,
    byte_perplexity,
    rouge1,
    rouge2,
    rougeL,
    token_perplexity,
    word_perplexity,
)
from harness.scorers.perplexity import count_words
from harness.scorers.qa import token_f1


def _mc(logprobs, choices, gold):
    return Outcome(prediction=max(range(len(logprobs)), key=lambda i: logprobs[i]), gold=gold,
                   choice_logprobs=logprobs, choice_lengths=[len(c) for c in choices])


def test_acc_and_acc_norm_disagree_on_a_constructed_example():
    # " no" is likelier in total (-3.0 > -4.0) but "a long correct answer" (21 characters) has
    # -4.0 / 21 = -0.19 per character against -3.0 / 2 = -1.5: acc picks 0, acc_norm picks 1.
    outcome = _mc([-3.0, -4.0], ["no", "a long correct answer"], gold=1)
    assert Accuracy().item(outcome) == 0.0
    assert AccuracyNorm().item(outcome) == 1.0


def test_acc_norm_uses_characters_of_the_choice_and_first_index_on_ties():
    # equal per-character scores (-2/2 == -4/4): the first choice wins, as numpy.argmax
    outcome = _mc([-2.0, -4.0], ["ab", "abcd"], gold=1)
    assert AccuracyNorm().item(outcome) == 0.0
    items = [AccuracyNorm().item(_mc([-1.0, -9.0], ["x", "yy"], 0)), 0.0, 1.0]
    assert AccuracyNorm().aggregate(items) == pytest.approx(2 / 3)


def test_lambada_perplexity_is_exp_of_minus_mean_target_loglikelihood():
    outcomes = [Outcome(logprob=lp, is_greedy=g) for lp, g in [(-1.0, True), (-3.0, False), (-2.0, True)]]
    ppl, acc = Perplexity(), Accuracy()
    items = [ppl.item(o) for o in outcomes]
    assert ppl.aggregate(items) == pytest.approx(math.exp(2.0))
    assert ppl.higher_is_better is False
    assert ppl.example_score(items[1]) == pytest.approx(math.exp(3.0))
    assert acc.aggregate([acc.item(o) for o in outcomes]) == pytest.approx(2 / 3)


def test_word_and_token_perplexity_differ_on_a_known_text():
    text = "the cat sat on the mat ."  # 7 words (lm-eval's count), 24 bytes
    assert count_words(text) == 7
    # say the model spent 9 tokens and -18 nats on it
    outcome = Outcome(logprob=-18.0, n_tokens=9, extra={"words": count_words(text), "bytes": len(text)})
    values = {make().name: make().aggregate([make().item(outcome)])
              for make in (word_perplexity, token_perplexity, byte_perplexity, bits_per_byte)}
    assert values["word_perplexity"] == pytest.approx(math.exp(18 / 7))
    assert values["token_perplexity"] == pytest.approx(math.exp(18 / 9))
    assert values["byte_perplexity"] == pytest.approx(math.exp(18 / 24))
    assert values["bits_per_byte"] == pytest.approx(18 / 24 / math.log(2))


def test_corpus_perplexity_weights_documents_by_their_units():
    docs = [Outcome(logprob=-10.0, n_tokens=5, extra={"words": 2}),
            Outcome(logprob=-2.0, n_tokens=5, extra={"words": 8})]
    scorer = word_perplexity()
    value = scorer.aggregate([scorer.item(o) for o in docs])
    assert value == pytest.approx(math.exp(12 / 10))  # not the mean of exp(5) and exp(0.25)
    assert scorer.stderr([scorer.item(o) for o in docs]) > 0


def test_bits_per_character_counts_characters():
    outcome = Outcome(logprob=-math.log(2) * 30, extra={"characters": 10, "bytes": 20})
    assert bits_per_character().aggregate([bits_per_character().item(outcome)]) == pytest.approx(3.0)
    assert bits_per_byte().aggregate([bits_per_byte().item(outcome)]) == pytest.approx(1.5)


def test_token_f1_matches_squad_by_hand():
    # normalised: "cat sat on mat" vs "black cat sat": overlap {cat, sat} = 2
    # precision 2/3, recall 2/4 -> F1 = 2 * (2/3 * 1/2) / (2/3 + 1/2) = 4/7
    assert token_f1("The cat sat on the mat.", "a black cat sat") == pytest.approx(4 / 7)
    assert token_f1("", "") == 1.0
    assert token_f1("yes", "") == 0.0


def test_coqa_multi_reference_rule_leaves_each_reference_out_in_turn():
    outcome = Outcome(prediction="white", references=["white", "White.", "gray"])
    # leave out "white": best of ["White.", "gray"] = 1; leave out "White.": 1; leave out "gray": 1
    assert CoQAExactMatch().item(outcome) == 1.0
    outcome = Outcome(prediction="white", references=["white", "gray", "grey"])
    # leave out "white": best of [gray, grey] = 0; the others keep "white": 1 -> 2/3
    assert CoQAExactMatch().item(outcome) == pytest.approx(2 / 3)
    assert F1().item(Outcome(prediction="the big dog", references=["big dog"])) == 1.0


def test_exact_match_normalised_for_natural_questions():
    scorer = ExactMatch(normalize=True)
    assert scorer.item(Outcome(prediction=" The Beatles", references=["beatles", "the fab four"])) == 1.0
    assert scorer.item(Outcome(prediction="Beatle", references=["beatles"])) == 0.0


def test_rouge_against_hand_counts():
    outcome = Outcome(prediction="the cat sat", references=["the cat ran"])
    # unigrams: 2 of 3 match both ways -> F = 2/3; bigrams: "the cat" 1 of 2 -> 1/2
    assert rouge1().item(outcome) == pytest.approx(100 * 2 / 3)
    assert rouge2().item(outcome) == pytest.approx(50.0)
    assert rougeL().item(outcome) == pytest.approx(100 * 2 / 3)
    assert "rougeLsum" in rougeL().signature()


def test_first_three_sentences():
    text = ' First one. Second "quoted." Third!  Fourth? fifth'
    assert first_sentences(text) == 'First one.\nSecond "quoted."\nThird!'
    assert first_sentences("no end in sight") == "no end in sight"
    assert first_sentences("") == ""

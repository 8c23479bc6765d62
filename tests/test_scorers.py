"""Scorers against sacrebleu's own numbers and hand-computed values."""

from __future__ import annotations

import math

import sacrebleu

from harness.scorers import BLEU, Accuracy, ChrF, ExactMatch, Outcome

HYPS = ["The cat is on the mat.", "There is a dog here", "hello", "Le chat est sur le tapis."]
REFS = ["The cat sat on the mat.", "A dog is here.", "hello there", "Le chat est sur le tapis."]


def _items(scorer, hyps=HYPS, refs=REFS):
    return [scorer.item(Outcome(prediction=h, references=[r])) for h, r in zip(hyps, refs, strict=True)]


def test_bleu_equals_sacrebleu_corpus_bleu():
    scorer = BLEU()
    assert math.isclose(scorer.aggregate(_items(scorer)), sacrebleu.corpus_bleu(HYPS, [REFS]).score,
                        rel_tol=0, abs_tol=1e-9)
    assert scorer.signature().startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")


def test_chrf_equals_sacrebleu_corpus_chrf():
    scorer = ChrF()
    assert math.isclose(scorer.aggregate(_items(scorer)), sacrebleu.corpus_chrf(HYPS, [REFS]).score,
                        rel_tol=0, abs_tol=1e-9)
    assert "nc:6|nw:0" in scorer.signature()


def test_bleu_is_a_corpus_metric_not_a_mean_of_sentences():
    scorer = BLEU()
    items = _items(scorer)
    mean_sentence = sum(scorer.example_score(i) for i in items) / len(items)
    assert abs(scorer.aggregate(items) - mean_sentence) > 1.0


def test_bootstrap_stderr_is_positive_and_zero_for_identical_examples():
    scorer = ChrF()
    assert scorer.stderr(_items(scorer)) > 0
    same = _items(scorer, ["a b c"] * 5, ["a b c"] * 5)
    assert scorer.stderr(same) == 0.0


def test_perfect_translation_scores_100():
    scorer = BLEU()
    items = _items(scorer, REFS, REFS)
    assert math.isclose(scorer.aggregate(items), 100.0)


def test_accuracy_and_its_standard_error():
    scorer = Accuracy()
    outcomes = [Outcome(prediction=p, gold=g) for p, g in [(0, 0), (1, 0), (2, 2), (3, 3)]]
    items = [scorer.item(o) for o in outcomes]
    assert scorer.aggregate(items) == 0.75
    # sample std of [1,0,1,1] = 0.5 → stderr = 0.5 / sqrt(4)
    assert math.isclose(scorer.stderr(items), 0.25)
    assert scorer.item(Outcome(is_greedy=True)) == 1.0


def test_exact_match_with_and_without_normalisation():
    raw, norm = ExactMatch(), ExactMatch(normalize=True)
    outcome = Outcome(prediction="The Eiffel Tower!", references=["eiffel tower"])
    assert raw.item(outcome) == 0.0
    assert norm.item(outcome) == 1.0
    assert raw.item(Outcome(prediction=" Paris ", references=["Paris"])) == 1.0

"""Scorers turn per-example outcomes into a metric with a standard error."""

from harness.scorers.base import Outcome, Scorer
from harness.scorers.choice import AccuracyNorm
from harness.scorers.corpus import BLEU, ChrF
from harness.scorers.mean import Accuracy, ExactMatch
from harness.scorers.perplexity import (
    BitsPer,
    Perplexity,
    WeightedPerplexity,
    bits_per_byte,
    bits_per_character,
    byte_perplexity,
    token_perplexity,
    word_perplexity,
)
from harness.scorers.qa import F1, CoQAExactMatch
from harness.scorers.rouge import Rouge, rouge1, rouge2, rougeL

__all__ = [
    "BLEU", "F1", "Accuracy", "AccuracyNorm", "BitsPer", "ChrF", "CoQAExactMatch", "ExactMatch",
    "Outcome", "Perplexity", "Rouge", "Scorer", "WeightedPerplexity", "bits_per_byte",
    "bits_per_character", "byte_perplexity", "rouge1", "rouge2", "rougeL", "token_perplexity",
    "word_perplexity",
]

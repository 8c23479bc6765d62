"""Scorers turn per-example outcomes into a metric with a standard error."""

from harness.scorers.base import Outcome, Scorer
from harness.scorers.corpus import BLEU, ChrF
from harness.scorers.mean import Accuracy, ExactMatch

__all__ = ["BLEU", "Accuracy", "ChrF", "ExactMatch", "Outcome", "Scorer"]

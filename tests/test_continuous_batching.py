"""Continuous batching on the native engine (tiny GPT-2; the Llama family: test_native_llama)."""

from __future__ import annotations

import pytest

from harness import models
from tests.continuous_batching import check_continuous_batching


@pytest.fixture(scope="module")
def native_lm(tiny_lm):
    """`tiny` on the native engine; mindnlp (tiny_lm) is loaded first, as one process needs."""
    return models.load("tiny", backend="native", batch_size=8)


def test_continuous_batching_gives_the_texts_of_static_batching_and_of_each_prompt_alone(native_lm):
    check_continuous_batching(native_lm)

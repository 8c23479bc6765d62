"""harness: zero-shot evaluation of GPT-2-family language models on MindSpore."""

__version__ = "0.1.0"

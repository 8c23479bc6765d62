"""Benchmarks: this harness against lm-evaluation-harness on the same model and data."""

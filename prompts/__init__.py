"""Prompt templates (Jinja2 files), installed as the `harness_prompts` package."""

from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent

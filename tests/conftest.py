"""Shared fixtures: a real tiny GPT-2 on MindSpore (through mindnlp), real GPT-2 BPE files,
and the shared WMT14 data. Nothing is mocked."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GPT2_TOKENIZER = SHARED / "gpt2-tokenizer"
WMT14 = SHARED / "data" / "wmt14-en-fr"
LAMBADA = SHARED / "data" / "lambada" / "lambada_test.jsonl"

# Keep generated checkpoints out of the user's cache and never touch the network.
os.environ.setdefault("HARNESS_CACHE", str(REPO / ".pytest_cache" / "harness"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _activate_mindnlp_first() -> None:
    """Tests run every in-process engine in one pytest process. mindnlp must replace `torch`
    before anything (the native engine's tokenizer included) imports the real one, exactly as
    `harness run` orders engines (`harness.engines.activate_all`); the native engine lives beside it.
    Plain-PyTorch references run in subprocesses."""
    from harness import engines

    engines.activate("mindnlp")


_activate_mindnlp_first()


def require(path: Path) -> Path:
    """The shared data is part of the project's environment: fail (never skip) without it."""
    if not path.exists():
        pytest.fail(f"shared data missing: {path} (the repo expects ../shared beside it)")
    return path


@pytest.fixture(scope="session")
def gpt2_tokenizer():
    from transformers import GPT2TokenizerFast

    return GPT2TokenizerFast.from_pretrained(str(require(GPT2_TOKENIZER)))


@pytest.fixture(scope="session")
def tiny_lm():
    """The `tiny` model on the default MindSpore (mindnlp) backend, batch size 8."""
    from harness import models

    return models.load("tiny", backend="mindnlp", batch_size=8)


@pytest.fixture(scope="session")
def native_tiny_lm(tiny_lm):
    """`tiny` on the native engine (the default backend), batch size 8. Its numbers are bit-identical
    whatever the batching on every CPU (mindnlp's only where the CPU's MatMul rows do not depend on
    the row count: docs/native-engine.md); mindnlp loads first, as one process needs."""
    from harness import models

    return models.load("tiny", backend="native", batch_size=8)


@pytest.fixture(scope="session")
def wmt14_dir() -> Path:
    return require(WMT14)


def harness_cli(*args: str, env: dict | None = None, timeout: int = 600):
    """Run the installed `harness` command in a fresh process."""
    import subprocess

    full_env = {**os.environ, **(env or {})}
    exe = Path(sys.executable).with_name("harness")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout, cwd=REPO)


def stored_responses(db: Path) -> int:
    """Answers stored in a response-cache file so far (0 before its schema is written)."""
    import sqlite3

    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:  # created, schema not written yet
        return 0
    finally:
        conn.close()


@pytest.fixture(scope="session")
def kit_root(tmp_path_factory) -> Path:
    """A separately installed task-plugin distribution (tests/plugin_kit.py), written once."""
    from tests.plugin_kit import install_kit

    return install_kit(tmp_path_factory.mktemp("plugin-kit"))


@pytest.fixture
def kit(kit_root, monkeypatch) -> Path:
    """The plugin kit on sys.path for one test only (so other tests never see its plugins)."""
    monkeypatch.syspath_prepend(str(kit_root))
    return kit_root

"""Same numbers whatever happens: batch size, repetition, seeds, a partly filled response cache,
and a run stopped with Ctrl-C and then killed with SIGKILL before it is resumed.

All on the real tiny MindSpore model and the plugin kit (tests/plugin_kit.py): a log-likelihood,
a multiple-choice, a greedy generation, a top-k sampling and a rolling (two windows per text)
task, one of whose rows is longer than the model's context.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import REPO, stored_responses
from tests.plugin_kit import kit_env, kit_rows, write_jsonl

TASKS = ("kit-ll", "kit-mc", "kit-greedy", "kit-sample", "kit-rolling")
N_ROWS = 6


def _args(data: Path, out: Path, *extra: str, tasks=TASKS) -> list[str]:
    return ["run", "--model", "tiny", "--task", ",".join(tasks), "--data-files", str(data),
            "--max-new-tokens", "3", "--no-progress", "--log-samples", "--output-dir", str(out), *extra]


def _load(out: Path) -> dict[str, tuple[dict, list[dict]]]:
    """task -> (newest result, its samples)."""
    found = {}
    for folder in sorted((out / "tiny").iterdir()):
        results = [json.loads(p.read_text()) for p in folder.glob("*.json")]
        result = max(results, key=lambda r: r["created"])
        samples = [json.loads(line) for line in (folder / result["samples_file"]).read_text().splitlines()]
        found[folder.name] = (result, samples)
    return found


def _assert_same(a: dict[str, tuple[dict, list[dict]]], b: dict[str, tuple[dict, list[dict]]]) -> None:
    assert sorted(a) == sorted(b) == sorted(TASKS)
    for task in TASKS:
        (ra, sa), (rb, sb) = a[task], b[task]
        assert ra["metrics"] == rb["metrics"], task
        assert sa == sb, task  # every prompt, prediction, log-probability and per-example score
        assert ra["truncated_inputs"] == rb["truncated_inputs"], task
        assert ra["n_examples"] == rb["n_examples"] == N_ROWS


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "rows.jsonl", kit_rows(N_ROWS, long_rows=(1,)))


@pytest.fixture(scope="module")
def uncached(data, tmp_path_factory, kit_root):
    """The four tasks computed from scratch (--no-cache) at batch sizes 1, 4 and 16, and at 16 again."""
    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(kit_root))
        for label, size in (("1", 1), ("4", 4), ("16", 16), ("16-again", 16)):
            out = tmp_path_factory.mktemp(f"bs{label}")
            assert main(_args(data, out, "--batch-size", str(size), "--no-cache")) == 0
            runs[label] = _load(out)
    return runs


def test_results_do_not_depend_on_batch_size(uncached):
    _assert_same(uncached["1"], uncached["4"])
    _assert_same(uncached["1"], uncached["16"])
    # the comparison is about real numbers: distinct negative log-probabilities, generated text
    ll = [s["logprob"] for s in uncached["1"]["kit-ll"][1]]
    assert len(set(ll)) == N_ROWS and all(x < 0 for x in ll)
    assert any(s["raw_output"] for s in uncached["1"]["kit-greedy"][1])
    for task in ("kit-ll", "kit-greedy", "kit-sample"):  # the long row, truncated from the left
        assert uncached["1"][task][0]["truncated_inputs"] == 1
    assert uncached["1"]["kit-mc"][0]["truncated_inputs"] == 3  # its three choices
    assert uncached["1"]["kit-rolling"][0]["truncated_inputs"] == 0


def test_same_command_twice_gives_identical_results(uncached):
    _assert_same(uncached["16"], uncached["16-again"])


def test_sampling_uses_the_seed_recorded_in_the_result(uncached, data, tmp_path, kit):
    result, samples = uncached["4"]["kit-sample"]
    assert result["config"]["seed"] == 1234
    outputs = [s["raw_output"] for s in samples]
    greedy = [s["raw_output"] for s in uncached["4"]["kit-greedy"][1]]
    assert outputs != greedy  # top-k sampling really samples
    for seed, same in (("1234", True), ("99", False)):
        out = tmp_path / seed
        assert main(_args(data, out, "--seed", seed, "--no-cache", tasks=("kit-sample",))) == 0
        rerun = [s["raw_output"] for s in _load(out)["kit-sample"][1]]
        assert (rerun == outputs) is same


def test_partly_cached_run_equals_uncached_run(uncached, data, tmp_path, kit):
    out = tmp_path / "cached"
    assert main(_args(data, out, "--batch-size", "4", "--limit", "3")) == 0
    assert main(_args(data, out, "--batch-size", "4")) == 0
    resumed = _load(out)
    _assert_same(resumed, uncached["4"])
    for task in TASKS:
        cache = resumed[task][0]["cache"]
        fresh = uncached["4"][task][0]["cache"]
        assert cache["enabled"] and not fresh["enabled"]
        assert cache["hits"] > 0 and cache["computed"] > 0
        assert cache["hits"] + cache["computed"] == fresh["computed"]
    assert (resumed["kit-ll"][0]["cache"]["hits"], resumed["kit-ll"][0]["cache"]["computed"]) == (3, 3)
    # the long row was answered from the cache, and is still counted as truncated
    assert resumed["kit-ll"][0]["truncated_inputs"] == 1


def _start_and_signal(args: list[str], env: dict, db: Path, at_least: int, sig: int):
    """Start `harness args`, send `sig` once `db` holds `at_least` responses; (rc, stderr)."""
    exe = Path(sys.executable).with_name("harness")
    proc = subprocess.Popen([str(exe), *args], cwd=REPO, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if stored_responses(db) >= at_least:
            proc.send_signal(sig)
            break
        time.sleep(0.02)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def test_interrupted_then_killed_run_resumes_without_recomputing(uncached, data, tmp_path, kit_root,
                                                                   kit, capsys):
    out = tmp_path / "resumed"
    db = out / ".cache" / "responses.sqlite"
    args = _args(data, out, "--batch-size", "1")
    env = kit_env(kit_root)

    code, err = _start_and_signal(args, env, db, 2, signal.SIGINT)
    assert code == 130, err
    assert "Traceback" not in err
    # MindSpore logs one "[WARNING] ... receive KeyboardInterrupt signal" line of its own
    ours = [line for line in err.splitlines() if not line.startswith("[WARNING]")]
    assert len(ours) == 1 and ours[0].startswith("interrupted:"), err
    assert "rerun the same command to resume" in ours[0] and str(db) in ours[0]
    after_ctrl_c = stored_responses(db)
    assert after_ctrl_c >= 2

    code, err = _start_and_signal(args, env, db, after_ctrl_c + 2, signal.SIGKILL)
    assert code == -signal.SIGKILL, err
    after_kill = stored_responses(db)
    total = sum(uncached["1"][task][0]["cache"]["computed"] for task in TASKS)
    assert after_ctrl_c + 2 <= after_kill < total  # killed halfway

    assert main(args) == 0  # the same command again
    capsys.readouterr()
    resumed = _load(out)
    _assert_same(resumed, uncached["1"])
    hits = sum(resumed[task][0]["cache"]["hits"] for task in TASKS)
    computed = sum(resumed[task][0]["cache"]["computed"] for task in TASKS)
    assert hits == after_kill  # nothing finished before the kill was computed again
    assert hits + computed == total


def test_sigterm_stops_like_ctrl_c_with_exit_code_143(data, tmp_path, kit_root):
    out = tmp_path / "terminated"
    db = out / ".cache" / "responses.sqlite"
    code, err = _start_and_signal(_args(data, out, "--batch-size", "1"), kit_env(kit_root), db, 1,
                                  signal.SIGTERM)
    assert code == 143, err
    assert "Traceback" not in err
    ours = [line for line in err.splitlines() if not line.startswith("[WARNING]")]
    assert len(ours) == 1 and ours[0].startswith("interrupted:") and str(db) in ours[0], err

"""`harness run --workers N`: N shard processes merged into exactly the one-process result, on
the real tiny model (LAMBADA log-likelihoods and WMT14 generation), with the response cache,
bad options, a worker killed from outside, and a run stopped with SIGTERM then resumed."""

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
from harness.workers import auto_workers, parse_workers
from tests.conftest import LAMBADA, REPO, WMT14, harness_cli, require, stored_responses

TASKS = ("lambada", "translation-en-fr")
N_LAMBADA, N_WMT = 8, 5
# fields a worker run may differ in: when it ran, how long it took, and the samples file's name
TIMING_FIELDS = ("created", "timing", "samples_file", "cache")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("workers-data")
    lambada = root / "lambada.jsonl"
    rows = require(LAMBADA).read_text(encoding="utf-8").splitlines()[:N_LAMBADA]
    lambada.write_text("\n".join(rows) + "\n", encoding="utf-8")
    wmt = root / "wmt"
    wmt.mkdir()
    for lang in ("en", "fr"):
        lines = require(WMT14 / f"newstest2014.en-fr.{lang}").read_text(encoding="utf-8").splitlines()
        (wmt / f"news.{lang}").write_text("\n".join(lines[:N_WMT]) + "\n", encoding="utf-8")
    return f"lambada={lambada},translation-en-fr={wmt}"


def _args(data: str, out: Path, *extra: str) -> list[str]:
    return ["run", "--model", "tiny", "--task", ",".join(TASKS), "--data-files", data,
            "--max-new-tokens", "4", "--log-samples", "--no-progress", "--output-dir", str(out), *extra]


def _load(out: Path) -> dict[str, tuple[dict, list[dict]]]:
    """task -> (its only result, its samples)."""
    found = {}
    for task in TASKS:
        (path,) = (out / "tiny" / task).glob("*.json")
        result = json.loads(path.read_text(encoding="utf-8"))
        lines = (path.parent / result["samples_file"]).read_text(encoding="utf-8").splitlines()
        found[task] = (result, [json.loads(line) for line in lines])
    return found


def _assert_same_results(ours: dict, reference: dict, workers: int, batch_size: int | None = None) -> None:
    for task in TASKS:
        (result, samples), (ref, ref_samples) = ours[task], reference[task]
        if batch_size is not None:  # another batch size: the same numbers, another config field
            assert result["config"]["batch_size"] == batch_size
            ref = {**ref, "config": {**ref["config"], "batch_size": batch_size}}
        assert samples == ref_samples, task  # every prompt, prediction, log-probability, in order
        assert {k: v for k, v in result.items() if k not in TIMING_FIELDS} == \
               {k: v for k, v in ref.items() if k not in TIMING_FIELDS}, task
        assert result["timing"]["workers"] == workers and "workers" not in ref["timing"]


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> dict:
    """One process, --no-cache; a fresh one, as the workers are (in this pytest process mindnlp
    is active, and it makes `importlib.metadata` report its own torch version in `packages`)."""
    out = tmp_path_factory.mktemp("one-process")
    done = harness_cli(*_args(data, out, "--no-cache"))
    assert done.returncode == 0, done.stderr
    found = _load(out)
    assert len(found["lambada"][1]) == N_LAMBADA and len(found["translation-en-fr"][1]) == N_WMT
    assert len({s["logprob"] for s in found["lambada"][1]}) == N_LAMBADA  # real, distinct numbers
    return found


def test_two_workers_write_the_one_process_result_and_a_rerun_is_served_from_the_cache(
        data, reference, tmp_path, capsys):
    out = tmp_path / "two"
    assert main(_args(data, out, "--workers", "2")) == 0
    assert "| lambada" in capsys.readouterr().out  # the closing table, as a one-process run prints it
    first = _load(out)
    _assert_same_results(first, reference, 2)
    for task in TASKS:
        assert first[task][0]["cache"]["hits"] == 0 and first[task][0]["cache"]["computed"] > 0
        assert first[task][0]["timing"]["tokens"] == reference[task][0]["timing"]["tokens"]
        assert not (out / "tiny" / task / "shards").exists()  # partials stay in the workers' scratch
    for task in TASKS:  # the same command again: every answer from the workers' shared cache
        for path in (out / "tiny" / task).iterdir():
            path.unlink()
    assert main(_args(data, out, "--workers", "2")) == 0
    again = _load(out)
    _assert_same_results(again, reference, 2)
    for task in TASKS:
        cache, before = again[task][0]["cache"], first[task][0]["cache"]
        assert cache["computed"] == 0 and cache["hits"] == before["computed"]


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_a_bad_workers_option_is_one_line_and_exit_2(value, capsys):
    assert main(["run", "--model", "tiny", "--workers", value]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --workers must be a whole number of at least 1, or 'auto', got '{value}'"]


def test_workers_do_not_combine_with_shard(data, tmp_path, capsys):
    assert main(_args(data, tmp_path, "--workers", "2", "--shard", "0/2")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--workers starts its own shards: drop --shard" in err[0]


def test_auto_picks_workers_only_where_they_pay():
    assert parse_workers("auto") == "auto" and parse_workers(" 3 ") == 3
    assert auto_workers("cpu", 2, 1000, 8) == 2
    assert auto_workers("cpu", 2, 191, 8) == 1  # under 12 batches of 8 per worker
    assert auto_workers("cpu", 1, 1000, 8) == 1
    assert auto_workers("gpu", 16, 1000, 8) == 1
    assert auto_workers("cpu", 16, 1000, 8) == 4  # at most 4, and a divisor of the cores
    assert auto_workers("cpu", 16, 300, 8) == 2
    assert auto_workers("cpu", 6, 1000, "auto") == 3


# ---------------------------------------------------------------- from outside: kill, SIGTERM
def _workers_of(marker: str) -> dict[int, int]:
    """Live `harness.workers` processes whose command line holds `marker`: pid -> shard index."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode("utf-8", "replace").split("\0")
            state = next(ln for ln in (proc / "status").read_text().splitlines() if ln.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if "harness.workers" in argv and any(marker in a for a in argv) and "zombie" not in state:
            found[int(proc.name)] = int(argv[argv.index("--shard") + 1].split("/")[0])
    return found


def _start(args: list[str]) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("harness")
    return subprocess.Popen([str(exe), *args], cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(condition, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 300
    while not condition():
        assert proc.poll() is None, f"ended before {what}: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, f"no {what} within 300 s"
        time.sleep(0.02)


def test_a_killed_worker_is_named_on_one_line_and_leaves_no_process(data, tmp_path):
    db = tmp_path / "cache.sqlite"
    proc = _start(_args(data, tmp_path / "out", "--workers", "2", "--batch-size", "1",
                        "--cache-file", str(db)))
    _wait_for(lambda: 1 in _workers_of(str(db)).values(), proc, "worker 1")
    (victim,) = [pid for pid, index in _workers_of(str(db)).items() if index == 1]
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err
    ours = [line for line in err.splitlines() if not line.startswith("[WARNING]")]
    assert len(ours) == 1 and ours[0].startswith("error: worker 1/2 was killed by SIGKILL"), err
    assert "0 result file(s) written" in ours[0] and str(db) in ours[0]
    assert _workers_of(str(db)) == {}


def test_sigterm_stops_the_workers_with_143_and_the_same_command_resumes(data, reference, tmp_path):
    db = tmp_path / "cache.sqlite"
    args = _args(data, tmp_path / "out", "--workers", "2", "--batch-size", "1", "--cache-file", str(db))
    proc = _start(args)
    _wait_for(lambda: stored_responses(db) >= 2, proc, "two stored answers")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 143, err
    ours = [line for line in err.splitlines() if not line.startswith("[WARNING]")]
    assert len(ours) == 1 and ours[0].startswith("interrupted:") and str(db) in ours[0], err
    assert "rerun the same command to resume" in ours[0]
    assert _workers_of(str(db)) == {}
    stored = stored_responses(db)
    total = sum(reference[task][0]["cache"]["computed"] for task in TASKS)
    assert 2 <= stored < total  # stopped part way

    assert main(args) == 0
    resumed = _load(tmp_path / "out")
    _assert_same_results(resumed, reference, 2, batch_size=1)
    assert sum(resumed[task][0]["cache"]["hits"] for task in TASKS) == stored  # nothing recomputed


def test_each_one_thread_worker_is_pinned_to_a_core_of_its_own():
    """MindSpore's CPU MatMul ignores `threads_num`: a worker keeps to one core only when pinned."""
    from harness.workers import CORES_ENV, worker_cores

    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.fail("this test needs at least 2 usable CPU cores")
    assert [worker_cores(i, 1) for i in range(2)] == [str(cores[0]), str(cores[1])]
    assert worker_cores(len(cores), 1) is None  # too few cores: not pinned
    code = ("import os; from harness.workers import pin_to_cores; pin_to_cores(); "
            "print(sorted(os.sched_getaffinity(0)))")
    env = {**os.environ, CORES_ENV: worker_cores(1, 1), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str([cores[1]])

"""Scale-out: `--shard I/N` + `harness merge`, and msrun with two CPU workers, give exactly the
single-process result (corpus BLEU/chrF and bootstrap standard errors included)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.distributed import Cluster
from harness.errors import HarnessError
from harness.merge import check, merge_records
from harness.pipeline import RunRequest, result_record, run
from harness.registry import discover
from harness.requests import LoglikelihoodRequest
from harness.runner import RunSettings, evaluate
from harness.scorers import Accuracy, AccuracyNorm
from harness.shard import Shard, parse_shard, partial, select, split
from harness.task import LocalFormat, MultipleChoice, Task
from tests.conftest import LAMBADA, harness_cli, require

# Six short WMT14 sentences (prompts of 33-64 byte tokens: one padding bucket, so one batch).
LINES = (14, 16, 17, 19, 20, 26)
N_EXAMPLES = len(LINES)
MAX_NEW = 4
TASK = "translation-en-fr"


def quiet(*args, **kwargs) -> None:
    pass


def samples_of(result: Path) -> list[dict]:
    lines = result.with_name(result.stem + ".samples.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


# ---------------------------------------------------------------- the split
def test_parse_shard_accepts_i_of_n_and_refuses_the_rest():
    assert parse_shard("0/2") == Shard(0, 2)
    assert parse_shard(" 3 / 4 ") == Shard(3, 4)
    for bad in ("2/2", "-1/2", "1/0", "1", "a/b", "1/2/3", ""):
        with pytest.raises(HarnessError, match="--shard must be I/N"):
            parse_shard(bad)


def test_split_balances_tokens_not_counts_and_is_deterministic():
    weights = [90, 10, 10, 10, 10, 10, 10, 10, 10, 10]  # one long example, nine short ones
    parts = split(weights, 2)
    assert parts == split(list(weights), 2)
    assert parts == [[0], [1, 2, 3, 4, 5, 6, 7, 8, 9]]  # 90 tokens each side
    assert sorted(i for p in parts for i in p) == list(range(len(weights)))
    counts_only = [list(range(0, 5)), list(range(5, 10))]
    loads = lambda ps: [sum(weights[i] for i in p) for p in ps]  # noqa: E731
    assert max(loads(parts)) - min(loads(parts)) < max(loads(counts_only)) - min(loads(counts_only))
    assert split([5, 5], 3) == [[0], [1], []]  # more shards than examples: some are empty


def test_select_keeps_every_request_of_an_example_in_one_shard(tiny_lm):
    docs = [{"n": i} for i in range(7)]
    requests, owners = [], []
    for i in range(7):  # multiple-choice-like: several requests per example, varied lengths
        for c in range(1 + i % 3):
            requests.append(LoglikelihoodRequest("word " * (1 + 5 * i), f" choice {c}"))
            owners.append(i)
    encode = tiny_lm.encode
    seen: list[int] = []
    for index in range(3):
        plan, reqs, own = select(encode, docs, requests, owners, Shard(index, 3))
        again = select(encode, docs, requests, owners, Shard(index, 3))[0]
        assert again.examples == plan.examples and again.assignment_sha256 == plan.assignment_sha256
        expected = [r for r, o in zip(requests, owners, strict=True) if o in plan.examples]
        assert reqs == expected  # all of an example's requests, in their order, and nothing else
        assert [plan.examples[k] for k in own] == [o for o in owners if o in plan.examples]
        seen += plan.examples
    assert sorted(seen) == list(range(7))


# ---------------------------------------------------------------- translation: shards + merge
@pytest.fixture(scope="module")
def wmt_data(tmp_path_factory, wmt14_dir, tiny_lm) -> Path:
    """Six WMT14 sentences. Every other reference is the tiny model's own output, the others
    the start of the real French reference, so BLEU and chrF are far from 0 and vary between
    examples (the random model scores 0 against real references)."""
    root = tmp_path_factory.mktemp("wmt")
    en_all = (wmt14_dir / "newstest2014.en-fr.en").read_text(encoding="utf-8").splitlines()
    fr_all = (wmt14_dir / "newstest2014.en-fr.fr").read_text(encoding="utf-8").splitlines()
    en, fr = [en_all[n - 1] for n in LINES], [fr_all[n - 1] for n in LINES]
    first = root / "first"
    first.mkdir()
    (first / "news.en").write_text("\n".join(en) + "\n", encoding="utf-8")
    (first / "news.fr").write_text("\n".join(fr) + "\n", encoding="utf-8")
    task = discover().get(TASK)
    outputs = evaluate(tiny_lm, task, RunSettings(data_files=str(first), max_new_tokens=MAX_NEW)).samples
    refs = [s["prediction"] if i % 2 == 0 else " ".join(ref.split()[:3])
            for i, (s, ref) in enumerate(zip(outputs, fr, strict=True))]
    assert all(r.strip() for r in refs)
    data = root / "data"
    data.mkdir()
    (data / "news.en").write_text("\n".join(en) + "\n", encoding="utf-8")
    (data / "news.fr").write_text("\n".join(refs) + "\n", encoding="utf-8")
    return data


def _request(data: Path, out: Path, shard: Shard | None = None, **settings) -> RunRequest:
    return RunRequest(tasks=[TASK], models=["tiny"], backend="mindnlp", output_dir=out, log_samples=True,
                      progress=False, cache=False, shard=shard,
                      settings=RunSettings(data_files=str(data), max_new_tokens=MAX_NEW, **settings))


@pytest.fixture(scope="module")
def runs(wmt_data, tmp_path_factory, tiny_lm) -> dict:
    """The single-process result and the two partial results of the same run."""
    out = tmp_path_factory.mktemp("runs")
    (single,) = run(_request(wmt_data, out / "single"), echo=quiet)
    parts = [run(_request(wmt_data, out / "sharded", Shard(i, 2)), echo=quiet)[0] for i in range(2)]
    return {"single": single, "parts": parts, "out": out}


def test_single_run_has_nontrivial_corpus_metrics(runs):
    metrics = json.loads(runs["single"].read_text())["metrics"]
    for name in ("bleu", "chrf"):
        assert metrics[name]["value"] > 1.0 and metrics[name]["stderr"] > 0.0


def test_two_shards_merged_equal_the_single_process_run(runs):
    folder = runs["parts"][0].parent
    assert runs["parts"][1].parent == folder and folder.parent.name == "shards"
    assert sorted(p.name for p in runs["parts"]) == ["shard-0-of-2.json", "shard-1-of-2.json"]
    parts = [json.loads(p.read_text()) for p in runs["parts"]]
    assert sorted(parts[0]["shard"]["examples"] + parts[1]["shard"]["examples"]) == list(range(N_EXAMPLES))
    assert all(0 < len(p["shard"]["examples"]) < N_EXAMPLES for p in parts)

    done = harness_cli("merge", str(folder))  # the installed command, in a fresh process
    assert done.returncode == 0, done.stderr
    merged_path = Path(done.stderr.strip().splitlines()[-1].split()[1])
    assert merged_path.parent == folder
    merged, single = json.loads(merged_path.read_text()), json.loads(runs["single"].read_text())
    assert merged["metrics"] == single["metrics"]  # exact: BLEU, chrF, signatures, stderr
    assert merged["n_examples"] == single["n_examples"] == N_EXAMPLES
    assert merged["truncated_inputs"] == single["truncated_inputs"]
    assert (merged["task"], merged["model"]) == (single["task"], single["model"])
    assert "shard" not in merged and merged["merged_from"]["count"] == 2
    assert samples_of(merged_path) == samples_of(runs["single"])  # every prediction and score
    # `harness table` shows the merged result, never a partial one
    table = harness_cli("table", str(runs["out"] / "sharded"))
    assert table.returncode == 0 and len([ln for ln in table.stdout.splitlines() if "bleu" in ln]) == 1


def _merge_in_process_args(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err.strip()


def _merge_in_process(folder: Path, capsys) -> tuple[int, str]:
    return _merge_in_process_args(["merge", str(folder)], capsys)


def test_merge_refuses_a_missing_shard(runs, tmp_path, capsys):
    shutil.copy(runs["parts"][0], tmp_path)
    code, err = _merge_in_process(tmp_path, capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "missing shard(s) 1 of 2" in err and "--shard 1/2" in err


def test_merge_refuses_a_duplicate_shard(runs, tmp_path, capsys):
    for part in runs["parts"]:
        shutil.copy(part, tmp_path)
    shutil.copy(runs["parts"][0], tmp_path / "shard-0-of-2-1.json")  # e.g. a rerun of shard 0
    code, err = _merge_in_process(tmp_path, capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "duplicate shard 0/2" in err


def test_merge_refuses_shards_of_another_configuration(runs, wmt_data, tmp_path, capsys):
    (other,) = run(_request(wmt_data, tmp_path / "other", Shard(1, 2), seed=7), echo=quiet)
    assert other.parent != runs["parts"][1].parent  # another configuration: another folder
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(runs["parts"][0], mixed)
    shutil.copy(other, mixed)
    code, err = _merge_in_process(mixed, capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "shards of different runs" in err and "config.seed is 1234" in err and "but 7" in err


def test_merge_writes_under_output_dir_and_nothing_when_any_folder_fails(runs, tmp_path, capsys):
    folder = runs["parts"][0].parent
    before = sorted(folder.iterdir())
    code, err = _merge_in_process_args(["merge", str(folder), str(tmp_path / "none"), "--output-dir",
                                        str(tmp_path / "out")], capsys)
    assert code == 2 and "shard folder not found" in err
    assert sorted(folder.iterdir()) == before and not (tmp_path / "out").exists()
    code, _ = _merge_in_process_args(["merge", str(folder), "--output-dir", str(tmp_path / "out")], capsys)
    (result,) = (tmp_path / "out" / "tiny" / TASK).glob("*.json")
    assert code == 0 and sorted(folder.iterdir()) == before
    assert json.loads(result.read_text())["metrics"] == json.loads(runs["single"].read_text())["metrics"]


def test_merge_finds_every_complete_shard_set_under_an_output_dir(runs, tmp_path, capsys):
    root = tmp_path / "results"
    complete = root / "nested" / "tiny" / TASK / "shards" / "run"
    complete.mkdir(parents=True)
    for part in runs["parts"]:
        shutil.copy(part, complete)
    incomplete = root / "other" / "tiny" / TASK / "shards" / "run"
    incomplete.mkdir(parents=True)
    shutil.copy(runs["parts"][0], incomplete)  # shard 1 of 2 never ran
    code, err = _merge_in_process(root, capsys)
    assert code == 0, err
    (merged,) = [p for p in complete.glob("*.json") if not p.name.startswith("shard-")]
    assert json.loads(merged.read_text())["metrics"] == json.loads(runs["single"].read_text())["metrics"]
    assert f"skipped {incomplete}: missing shard(s) 1 of 2" in err
    assert not [p for p in incomplete.iterdir() if not p.name.startswith("shard-")]  # nothing written
    code, err = _merge_in_process(root, capsys)  # again: the merged set is not merged twice
    assert code == 2 and f"skipped {complete}: merged already" in err
    assert len(list(complete.glob("*.json"))) == 3


def test_merge_refuses_a_folder_without_shards(tmp_path, capsys):
    code, err = _merge_in_process(tmp_path, capsys)
    assert code == 2 and "no shard results" in err


def test_run_refuses_a_bad_shard_option():
    done = harness_cli("run", "--model", "tiny", "--shard", "2/2")
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: --shard must be I/N with 0 <= I < N (e.g. 0/4 ... 3/4), got '2/2'"]


# ---------------------------------------------------------------- log-likelihood tasks
def test_lambada_shards_merge_to_the_single_process_run(tmp_path, tiny_lm, capsys):
    """LAMBADA (accuracy, perplexity: float items) through the real task, run and merge."""
    lines = require(LAMBADA).read_text(encoding="utf-8").splitlines()[:5]
    data = tmp_path / "lambada.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def request(out: str, shard: Shard | None = None) -> RunRequest:
        return RunRequest(tasks=["lambada"], models=["tiny"], backend="mindnlp", output_dir=tmp_path / out,
                          log_samples=True, progress=False, cache=False, shard=shard,
                          settings=RunSettings(data_files=str(data)))

    (single,) = run(request("single"), echo=quiet)
    parts = [run(request("sharded", Shard(i, 2)), echo=quiet)[0] for i in range(2)]
    code, _ = _merge_in_process(parts[0].parent, capsys)
    assert code == 0
    (merged,) = [p for p in parts[0].parent.glob("*.json") if not p.name.startswith("shard-")]
    result, reference = json.loads(merged.read_text()), json.loads(single.read_text())
    assert result["metrics"] == reference["metrics"] and result["n_examples"] == 5
    assert reference["metrics"]["perplexity"]["value"] > 1.0  # a float corpus of log-likelihoods
    assert samples_of(merged) == samples_of(single)


def test_multiple_choice_shards_merge_exactly(native_tiny_lm, tmp_path):
    """Several log-likelihood requests per example; three shards, one merge (on the native engine,
    whose numbers do not depend on the batching on any CPU)."""
    lm = native_tiny_lm
    rows = [json.loads(line) for line in require(LAMBADA).read_text(encoding="utf-8").splitlines()[:5]]
    data = tmp_path / "choices.jsonl"
    with data.open("w", encoding="utf-8") as handle:
        for row in rows:
            words = row["text"].split()
            context, last = " ".join(words[-16:-1]), words[-1]
            choices = [last, words[-3], words[-6] + " " + words[-5]]
            handle.write(json.dumps({"context": context, "choices": choices, "gold": 0}) + "\n")
    (tmp_path / "plain.jinja").write_text("{{ context }}", encoding="utf-8")
    task = Task(name="test-choice", description="last word among three", adapter=MultipleChoice(),
                scorers=(Accuracy, AccuracyNorm), templates={"plain": "plain.jinja"},
                prompt_dir=tmp_path, local=LocalFormat())
    settings = RunSettings(data_files=str(data))
    request = RunRequest(tasks=[task.name], models=["tiny"], backend="native", settings=settings,
                         log_samples=True)
    single = evaluate(lm, task, settings)
    records = []
    for index in range(3):
        part = evaluate(lm, task, settings, shard=Shard(index, 3))
        records.append(partial(result_record(part, lm, request), part, lm, True).to_dict())
    checked = check([(f"shard {r['shard']['index']}", r) for r in reversed(records)], "test")
    merged, samples = merge_records(checked, task)
    assert merged.metrics == single.metrics and merged.n_examples == 5
    assert samples == single.samples  # the choices' log-likelihoods, exactly


# ---------------------------------------------------------------- msrun, two CPU workers
class DictStore:
    """What harness.distributed uses of MindSpore's TCPStore: set, and get (b"" when absent)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def set(self, key: str, value: str) -> None:
        self.data[key] = value.encode("utf-8")

    def get(self, key: str) -> bytes:
        return self.data.get(key, b"")


def test_rank_zero_reports_failed_and_missing_ranks_instead_of_waiting_forever():
    store = DictStore()
    ranks = [Cluster(r, 3, "msrun-x", f"CPU:{r}", store, sleep=lambda s: None) for r in range(3)]
    ranks[1].send("tiny/t/p", {"shard": {"index": 1}})
    with pytest.raises(HarnessError, match=r"rank\(s\) 2 sent no result for tiny/t/p within 0 s"):
        ranks[0].collect("tiny/t/p", timeout=0)
    ranks[2].send_error("tiny/t/p", HarnessError("data file missing\nsecond line"))
    with pytest.raises(HarnessError, match=r"^1 rank\(s\) failed on tiny/t/p: rank 2: data file missing$"):
        ranks[0].collect("tiny/t/p", timeout=0)
    ranks[2].send("tiny/t/p", {"shard": {"index": 2}})
    assert ranks[0].collect("tiny/t/p", timeout=0) == [{"shard": {"index": 1}}, {"shard": {"index": 2}}]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_msrun_two_cpu_workers_write_the_single_process_result(runs, wmt_data, tmp_path):
    """MindSpore's launcher: a scheduler and two workers (ranks 0 and 1 on CPU:0 and CPU:1);
    rank 0 gathers the other partial through MindSpore's store and writes the merged result."""
    out, logs = tmp_path / "out", tmp_path / "logs"
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": venv_bin + os.pathsep + os.environ.get("PATH", "")}
    command = [
        str(Path(venv_bin) / "msrun"), "--worker_num=2", "--local_worker_num=2",
        f"--master_port={_free_port()}", f"--log_dir={logs}", "--join=True", "--cluster_time_out=300",
        "python", "-m", "harness", "run", "--model", "tiny", "--backend", "mindnlp", "--task", TASK,
        "--data-files", str(wmt_data),
        "--max-new-tokens", str(MAX_NEW), "--output-dir", str(out), "--log-samples", "--no-progress",
        "--no-cache",
    ]
    # cwd: a scratch folder, since MindSpore may leave rank_N/ folders in the working directory
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=500)
    worker_logs = "".join(p.read_text(errors="replace")[-3000:] for p in sorted(logs.glob("*.log")))
    assert done.returncode == 0, worker_logs
    (final,) = (out / "tiny" / TASK).glob("*.json")
    merged, single = json.loads(final.read_text()), json.loads(runs["single"].read_text())
    assert merged["metrics"] == single["metrics"] and merged["n_examples"] == N_EXAMPLES
    assert samples_of(final) == samples_of(runs["single"])
    parts = sorted((out / "tiny" / TASK / "shards").glob("msrun-*/shard-*.json"))
    shards = [json.loads(p.read_text())["shard"] for p in parts]
    assert [(s["index"], s["count"], s["device"]) for s in shards] == [(0, 2, "CPU:0"), (1, 2, "CPU:1")]
    assert shards[0]["launch"] == shards[1]["launch"] == parts[0].parent.name


def test_merge_of_shards_of_different_tasks_names_the_task(runs, tmp_path, capsys):
    mixed = tmp_path / "tasks"
    mixed.mkdir()
    shutil.copy(runs["parts"][0], mixed)
    other = json.loads(runs["parts"][1].read_text())
    other["task"]["name"] = "translation-fr-en"
    other["shard"]["assignment_sha256"] = "0" * 64  # follows from the task: named after it
    (mixed / runs["parts"][1].name).write_text(json.dumps(other))
    code, err = _merge_in_process(mixed, capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "task.name is \"translation-en-fr\"" in err and "but \"translation-fr-en\"" in err, err

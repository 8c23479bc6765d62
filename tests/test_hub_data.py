"""Hub data: every task's `HubSource` resolved against local folders laid out like the hub
repositories (same subfolders, same parquet names, same dataset-card YAML), through the
`HARNESS_HUB_MIRROR` seam; only the needed split's files are read; `harness tasks --check-hub`."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.data import load_hub
from harness.errors import HarnessError
from harness.hub_data import MIRROR_ENV, check_tasks, folder_repo, load_rows, split_files
from harness.registry import discover
from harness.task import HubSource
from tests.conftest import harness_cli

NOT_PARQUET = b"not a parquet file: reading it fails"

WMT14_CARD = "---\nconfigs:\n" + "".join(
    f"- config_name: {pair}\n  data_files:\n" + "".join(
        f"  - split: {split}\n    path: {pair}/{split}-*\n" for split in ("train", "validation", "test"))
    for pair in ("de-en", "fr-en")
) + "---\n# WMT14\n"
# The winograd_wsc parquet card: two configs, one test split each.
WSC_CARD = """---
license: cc-by-4.0
configs:
- config_name: wsc273
  data_files:
  - split: test
    path: "wsc273/test-*.parquet"
- config_name: wsc285
  data_files:
  - split: test
    path: "wsc285/test-*.parquet"
---
# The original Winograd Schema Challenge (WSC)
"""
WSC_ROW = {"text": "The city councilmen refused the demonstrators a permit because they feared violence.",
           "pronoun": "they", "pronoun_loc": 63, "quote": "they feared violence", "quote_loc": 63,
           "options": ["The city councilmen", "The demonstrators"], "label": 0, "source": "(Winograd 1972)"}
PTB = {split: [f" {split} sentence {i} <unk> N" for i in range(3)]
       for split in ("train", "validation", "test")}
LM1B_TEST = ["The first held-out sentence .", "And a second one ."]
ENWIK8 = "<mediawiki>\n  <page>\n    <title>AccessibleComputing</title>\n</mediawiki>\n"


def write_parquet(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def pair(i: int, split: str) -> dict:
    return {"translation": {"fr": f"{split} phrase {i}", "en": f"{split} sentence {i}"}}


def build_mirror(root: Path) -> Path:
    """The five repositories issue 12 names, as their hub revisions hold them."""
    wmt = root / "wmt" / "wmt14"
    wmt.mkdir(parents=True)
    (wmt / "README.md").write_text(WMT14_CARD)
    for shard in ("00000", "00001"):  # train: gigabytes on the hub; here they must never be read
        (wmt / f"fr-en/train-{shard}-of-00002.parquet").parent.mkdir(parents=True, exist_ok=True)
        (wmt / f"fr-en/train-{shard}-of-00002.parquet").write_bytes(NOT_PARQUET)
    write_parquet(wmt / "fr-en/validation-00000-of-00001.parquet", [pair(i, "dev") for i in range(2)])
    write_parquet(wmt / "fr-en/test-00000-of-00001.parquet", [pair(i, "test") for i in range(3)])
    write_parquet(wmt / "de-en/test-00000-of-00001.parquet", [{"translation": {"de": "x", "en": "y"}}])

    wsc = root / "lighteval" / "winograd_wsc"
    wsc.mkdir(parents=True)
    (wsc / "README.md").write_text(WSC_CARD)
    write_parquet(wsc / "wsc273/test-00000-of-00001.parquet", [WSC_ROW])
    write_parquet(wsc / "wsc285/test-00000-of-00001.parquet", [WSC_ROW, WSC_ROW])

    ptb = root / "ptb-text-only" / "ptb_text_only"  # the refs/convert/parquet branch: no card
    for split, lines in PTB.items():
        write_parquet(ptb / f"penn_treebank/{split}/0000.parquet", [{"sentence": s} for s in lines])
    (ptb / ".gitattributes").write_text("*.parquet filter=lfs diff=lfs merge=lfs -text\n")

    lm1b = root / "billion-word-benchmark" / "lm1b"
    write_parquet(lm1b / "plain_text/test/0000.parquet", [{"text": s} for s in LM1B_TEST])
    (lm1b / "plain_text/partial-train/0000.parquet").parent.mkdir(parents=True)
    (lm1b / "plain_text/partial-train/0000.parquet").write_bytes(NOT_PARQUET)

    enwik8 = root / "LTCB" / "enwik8"
    write_parquet(enwik8 / "enwik8-raw/train/0000.parquet", [{"text": ENWIK8}])
    (enwik8 / "enwik8/train/0000.parquet").parent.mkdir(parents=True)
    (enwik8 / "enwik8/train/0000.parquet").write_bytes(NOT_PARQUET)
    return root


@pytest.fixture(scope="module")
def registry():
    return discover()


@pytest.fixture
def mirror(tmp_path, monkeypatch) -> Path:
    root = build_mirror(tmp_path / "mirror")
    monkeypatch.setenv(MIRROR_ENV, str(root))
    return root


def test_the_five_sources_are_as_issue_12_names_them(registry):
    wmt = registry.tasks["translation-en-fr"].hub
    assert (wmt.path, wmt.name, wmt.split, wmt.fewshot_split) == ("wmt/wmt14", "fr-en", "test", "validation")
    wsc = registry.tasks["wsc273"].hub
    assert (wsc.path, wsc.name, wsc.split) == ("lighteval/winograd_wsc", "wsc273", "test")
    for task, repo, files in [
        ("ptb", "ptb-text-only/ptb_text_only", {s: f"penn_treebank/{s}/*.parquet" for s in PTB}),
        ("1bw", "billion-word-benchmark/lm1b", {"test": "plain_text/test/*.parquet"}),
        ("enwik8", "LTCB/enwik8", {"train": "enwik8-raw/train/*.parquet"}),
    ]:
        source = registry.tasks[task].hub
        assert (source.path, source.name, source.revision) == (repo, None, "refs/convert/parquet")
        assert dict(source.data_files) == files


def test_every_task_names_a_namespaced_repo_and_its_splits(registry):
    for name, task in registry.tasks.items():
        source = task.hub
        if source is None:
            continue
        assert source.path.count("/") == 1, f"{name}: bare hub id {source.path}"
        if source.data_files is not None:
            needed = {source.split, source.fewshot_split} - {None}
            assert needed <= set(source.data_files), f"{name}: data_files lack {needed}"


def test_wmt14_test_and_validation_rows(registry, mirror):
    task = registry.tasks["translation-en-fr"]
    rows = load_hub(task.hub)
    assert rows == [pair(i, "test") for i in range(3)]
    assert load_hub(task.hub, task.hub.fewshot_split) == [pair(i, "dev") for i in range(2)]
    doc = task.prepare(rows[1])
    assert (doc["source"], doc["target"]) == ("test sentence 1", "test phrase 1")


def test_only_the_needed_splits_files_are_fetched(registry, mirror):
    source = registry.tasks["translation-fr-en"].hub
    repo = folder_repo(mirror / "wmt" / "wmt14", "wmt/wmt14")
    fetched: list[str] = []

    def fetch(names: list[str]) -> list[Path]:
        fetched.extend(names)
        return repo.fetch(names)

    rows = load_rows(source, "test", repo=dataclasses.replace(repo, fetch=fetch))
    assert len(rows) == 3
    assert fetched == ["fr-en/test-00000-of-00001.parquet"]  # not train's shards, not de-en
    assert split_files(source, repo, "train").files == (
        "fr-en/train-00000-of-00002.parquet", "fr-en/train-00001-of-00002.parquet")


def test_wsc273_rows_from_its_config_only(registry, mirror):
    task = registry.tasks["wsc273"]
    rows = load_hub(task.hub)
    assert rows == [WSC_ROW]  # wsc285's two rows are another config
    doc = task.prepare(rows[0])
    assert doc["target"] == " feared violence." and doc["gold"] == 0


def test_parquet_conversion_sources_ptb_lm1b_enwik8(registry, mirror):
    assert [r["sentence"] for r in load_hub(registry.tasks["ptb"].hub)] == PTB["test"]
    assert [r["text"] for r in load_hub(registry.tasks["1bw"].hub)] == LM1B_TEST
    enwik8 = registry.tasks["enwik8"]
    rows = load_hub(enwik8.hub)
    assert rows == [{"text": ENWIK8}]
    assert "".join(p["piece"] for p in enwik8.prepare(rows[0])) == ENWIK8


def test_default_split_patterns_without_a_card(tmp_path, monkeypatch):
    repo = tmp_path / "someone" / "plain"
    write_parquet(repo / "data/test-00000-of-00001.parquet", [{"q": "a"}])
    (repo / "data/train-00000-of-00001.parquet").write_bytes(NOT_PARQUET)
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path))
    assert load_hub(HubSource("someone/plain", split="test")) == [{"q": "a"}]


@pytest.mark.parametrize(("source", "message"), [
    (HubSource("wmt/wmt14", "fr-de"), "has no config 'fr-de' (it has: de-en, fr-en)"),
    (HubSource("lighteval/winograd_wsc", "wsc273", split="train"), "no split 'train' (it has: test)"),
    (HubSource("LTCB/enwik8", data_files={"test": "enwik8-raw/test/*.parquet"}),
     "split 'test': no file matches enwik8-raw/test/*.parquet"),
    (HubSource("nobody/nothing"), "no folder"),
])
def test_what_is_missing_is_one_line(mirror, source, message):
    with pytest.raises(HarnessError) as err:
        load_hub(source)
    assert message in str(err.value) and "--data-files" in str(err.value) and "\n" not in str(err.value)


def test_check_lists_each_task_against_the_mirror(registry, mirror):
    (mirror / "billion-word-benchmark/lm1b/plain_text/test/0000.parquet").unlink()  # drift
    lines: list[str] = []
    problems = check_tasks({name: task.hub for name, task in registry.tasks.items()}, lines.append)
    by_task = dict(line.split(": ", 1) for line in lines)
    assert by_task["translation-en-fr"] == ("ok wmt/wmt14 (mirror) config fr-en: "
                                            "test: 1 parquet file, validation: 1 parquet file")
    assert by_task["ptb"] == ("ok ptb-text-only/ptb_text_only@refs/convert/parquet (mirror): "
                              "test: 1 parquet file")
    assert by_task["wsc273"].startswith("ok ")
    assert by_task["enwik8"].startswith("ok ")
    assert by_task["1bw"].startswith("MISSING ")
    assert "no file matches plain_text/test/*.parquet" in by_task["1bw"]
    assert by_task["hellaswag"].startswith("MISSING ") and "no folder" in by_task["hellaswag"]
    assert len(lines) == len(registry.tasks)
    assert problems == sum(line.split(": ", 1)[1].startswith("MISSING") for line in lines)


def test_check_hub_command(tmp_path):
    root = build_mirror(tmp_path / "mirror")
    proc = harness_cli("tasks", "--check-hub", env={MIRROR_ENV: str(root)})
    assert proc.returncode == 2  # tasks outside the mirror are missing
    assert any(line.startswith("wsc273: ok ") for line in proc.stdout.splitlines())
    assert proc.stderr.strip().startswith("error: ") and "MISSING" in proc.stderr


def test_check_hub_offline_is_one_line(tmp_path):
    proc = harness_cli("tasks", "--check-hub", env={
        "HF_HUB_OFFLINE": "", "HF_ENDPOINT": "http://127.0.0.1:9", MIRROR_ENV: "",
        "HTTPS_PROXY": "", "https_proxy": "", "HTTP_PROXY": "", "http_proxy": "", "ALL_PROXY": "",
        "all_proxy": ""})
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "http://127.0.0.1:9) is not reachable" in lines[0], proc.stderr


def test_offline_reads_the_revision_snapshot_in_the_hugging_face_cache(tmp_path):
    """Offline, a split an earlier run fetched is read from the Hugging Face cache's snapshot."""
    repo = tmp_path / "hub" / "datasets--lighteval--winograd_wsc"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "README.md").write_text(WSC_CARD)
    write_parquet(snapshot / "wsc273/test-00000-of-00001.parquet", [WSC_ROW])
    code = ("import json; from harness.data import load_hub; from harness.task import HubSource; "
            "print(json.dumps(load_hub(HubSource('lighteval/winograd_wsc', 'wsc273'))))")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", MIRROR_ENV: "",
           "HF_DATASETS_CACHE": str(tmp_path / "datasets")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [WSC_ROW]
    code = code.replace("'wsc273'", "'wsc285'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1 and "split 'test': no file matches wsc285/test-*.parquet" in proc.stderr


def test_card_config_with_data_dir_and_json_lines(tmp_path, monkeypatch):
    repo = tmp_path / "someone" / "jsonset"
    (repo / "data" / "en").mkdir(parents=True)
    (repo / "README.md").write_text("---\nconfigs:\n- config_name: en\n  data_dir: data/en\n"
                                    "  data_files:\n  - split: test\n    path: test*.jsonl\n"
                                    "  - split: train\n    path: train*.jsonl\n---\n")
    (repo / "data/en/test.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n')
    (repo / "data/en/train.jsonl").write_text("{not json")
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path))
    source = HubSource("someone/jsonset", "en", split="test")
    assert load_hub(source) == [{"text": "one"}, {"text": "two"}]
    chosen = split_files(source, folder_repo(repo, "someone/jsonset"), "test")
    assert (chosen.module, chosen.files) == ("json", ("data/en/test.jsonl",))

"""The response cache: exact round trips, request keys, model fingerprints, out-of-memory recovery."""

from __future__ import annotations

import json
import math
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from harness import models
from harness.cache import CacheLayer, ResponseStore, decode_answer, encode_answer, namespace_for, request_key
from harness.cli import main
from harness.fingerprint import file_digest, folder_digest
from harness.requests import GenerationRequest, LoglikelihoodRequest, LoglikelihoodResult
from tests.plugin_kit import kit_rows, write_jsonl


def _run(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def _result(out: Path, task: str = "kit-ll") -> dict:
    files = sorted((out / "tiny" / task).glob("*.json"), key=lambda p: json.loads(p.read_text())["created"])
    return json.loads(files[-1].read_text())


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


@pytest.mark.parametrize("value", [-1e-320, -0.0, -123.45678901234567, float("-inf"), -7.0e300])
def test_loglikelihood_values_round_trip_bit_for_bit(value, tmp_path):
    store = ResponseStore(tmp_path / "c.sqlite")
    answer = LoglikelihoodResult(value, True, 3)
    store.put_many("ns", [(b"k", encode_answer("loglikelihood", answer))])
    back = decode_answer("loglikelihood", ResponseStore(tmp_path / "c.sqlite").get_many("ns", [b"k"])[b"k"])
    assert _bits(back.logprob) == _bits(value) and back.is_greedy is True and back.n_tokens == 3
    stored = encode_answer("loglikelihood", LoglikelihoodResult(math.nan, False, 1))
    nan = decode_answer("loglikelihood", stored)
    assert math.isnan(nan.logprob)


def test_request_keys_hold_exactly_what_changes_the_answer():
    def key(*args, **kwargs) -> bytes:
        return request_key("generate", GenerationRequest(*args, **kwargs))

    greedy = GenerationRequest("Hello", ("\n",), 8, None, seed=1)
    assert request_key("generate", greedy) == key("Hello", ("\n",), 8, None, seed=2)  # seed unused
    sampled = GenerationRequest("Hello", ("\n",), 8, 40, seed=1)
    assert request_key("generate", sampled) != key("Hello", ("\n",), 8, 40, seed=2)
    assert request_key("generate", sampled) != request_key("generate", greedy)
    for other in (GenerationRequest("Hello ", ("\n",), 8), GenerationRequest("Hello", (".",), 8),
                  GenerationRequest("Hello", ("\n",), 9)):
        assert request_key("generate", other) != request_key("generate", greedy)
    pair = ((1, 2, 3), (4,))
    assert request_key("loglikelihood", pair) == request_key("loglikelihood", ([1, 2, 3], [4]))
    assert request_key("loglikelihood", pair) != request_key("loglikelihood", ((1, 2), (3, 4)))
    assert request_key("generate", GenerationRequest("\ud800 lone surrogate"))  # any str has a key


def test_file_fingerprint_reads_samples_of_large_files(tmp_path):
    small = tmp_path / "config.json"
    small.write_text('{"n_layer": 2}')
    before = file_digest(small)
    small.write_text('{"n_layer": 3}')
    assert file_digest(small) != before

    big = tmp_path / "model.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [3 << 20], "data_offsets": [0, 12 << 20]}}).encode()
    weights = np.random.default_rng(0).standard_normal(3 << 20).astype(np.float32).tobytes()
    big.write_bytes(len(header).to_bytes(8, "little") + header + weights)
    digest = file_digest(big)
    copy = tmp_path / "copy" / "model.safetensors"
    copy.parent.mkdir()
    shutil.copy(big, copy)
    assert file_digest(copy) == digest  # where a checkpoint lives is not part of its identity
    with big.open("r+b") as handle:  # every weight changed, as by fine-tuning
        handle.seek(8 + len(header))
        handle.write((np.frombuffer(weights, np.float32) * 1.001).astype(np.float32).tobytes())
    assert file_digest(big) != digest
    (tmp_path / ".hidden").write_text("editor state")
    folder = folder_digest(tmp_path)
    (tmp_path / ".hidden").write_text("changed")
    assert folder_digest(tmp_path) == folder


def test_second_layer_on_the_same_file_serves_identical_answers(tmp_path):
    tiny_lm = models.load("tiny", batch_size=4)  # the default engine, as `harness run` uses it
    requests = [LoglikelihoodRequest(f"Context {i} with words", f" end{i}") for i in range(5)]
    generations = [GenerationRequest(f"Prompt {i}:", ("\n",), 4) for i in range(3)]
    ns, _ = namespace_for(tiny_lm, "cpu")
    store = ResponseStore(tmp_path / "c.sqlite")
    layer = CacheLayer(tiny_lm, store, ns)
    first = layer.loglikelihood(requests), layer.generate(generations)
    assert (layer.hits, layer.computed) == (0, 8)
    assert store.count(ns) == 8
    layer = CacheLayer(tiny_lm, ResponseStore(tmp_path / "c.sqlite"), ns)
    second = layer.loglikelihood(requests), layer.generate(generations)
    assert (layer.hits, layer.computed) == (8, 0)
    assert [_bits(r.logprob) for r in first[0]] == [_bits(r.logprob) for r in second[0]]
    assert first == second
    assert first == (tiny_lm.loglikelihood(requests), tiny_lm.generate(generations))  # asked directly
    assert not vars(tiny_lm).keys() & {"loglikelihood_tokens", "generate", "on_batch"}  # untouched


def test_rolling_requests_go_through_the_layer_window_by_window(tiny_lm, tmp_path):
    texts = [" ".join(f"w{i}" for i in range(300)), "a short text"]
    ns, _ = namespace_for(tiny_lm, "cpu")
    layer = CacheLayer(tiny_lm, ResponseStore(tmp_path / "c.sqlite"), ns)
    windows = len(tiny_lm.rolling_pairs(texts, 32)[0])
    assert windows > len(texts)
    first = layer.loglikelihood_rolling(texts, context=32)
    assert (layer.hits, layer.computed) == (0, windows)
    assert first == tiny_lm.loglikelihood_rolling(texts, context=32)
    again = CacheLayer(tiny_lm, ResponseStore(tmp_path / "c.sqlite"), ns)
    assert again.loglikelihood_rolling(texts, context=32) == first
    assert (again.hits, again.computed) == (windows, 0)


def test_copied_checkpoint_shares_the_cache_and_changed_weights_do_not(capsys, kit, tmp_path):
    from safetensors.numpy import load_file, save_file

    data = write_jsonl(tmp_path / "rows.jsonl", kit_rows(3))
    copy = tmp_path / "my-model"
    shutil.copytree(models.resolve("tiny").source, copy)
    args = ["run", "--task", "kit-ll", "--data-files", str(data), "--no-progress",
            "--output-dir", str(tmp_path / "out")]
    assert _run(capsys, *args, "--model", "tiny")[0] == 0
    assert _result(tmp_path / "out")["cache"] | {"file": None} == {
        "enabled": True, "file": None, "hits": 0, "computed": 3}
    assert _run(capsys, *args, "--model", str(copy))[0] == 0
    copied = json.loads(next((tmp_path / "out" / "my-model" / "kit-ll").glob("*.json")).read_text())
    assert (copied["cache"]["hits"], copied["cache"]["computed"]) == (3, 0)
    weights = load_file(str(copy / "model.safetensors"))
    weights["transformer.ln_f.bias"] = weights["transformer.ln_f.bias"] + 0.5
    save_file(weights, str(copy / "model.safetensors"), metadata={"format": "pt"})
    assert _run(capsys, *args, "--model", str(copy))[0] == 0
    results = [json.loads(p.read_text()) for p in (tmp_path / "out" / "my-model" / "kit-ll").glob("*.json")]
    changed = max(results, key=lambda r: r["created"])
    assert (changed["cache"]["hits"], changed["cache"]["computed"]) == (0, 3)
    assert changed["metrics"]["mean_logprob"] != copied["metrics"]["mean_logprob"]


def test_no_cache_and_cache_location(capsys, kit, tmp_path, monkeypatch):
    data = write_jsonl(tmp_path / "rows.jsonl", kit_rows(2))
    base = ["run", "--model", "tiny", "--task", "kit-ll", "--data-files", str(data), "--no-progress"]
    code, err = _run(capsys, *base, "--no-cache", "--output-dir", str(tmp_path / "a"))
    assert code == 0, err
    assert not (tmp_path / "a" / ".cache").exists()
    assert _result(tmp_path / "a")["cache"] == {"enabled": False, "file": None, "hits": 0, "computed": 2}
    assert _run(capsys, *base, "--output-dir", str(tmp_path / "b"))[0] == 0
    assert (tmp_path / "b" / ".cache" / "responses.sqlite").is_file()  # the default place
    monkeypatch.setenv("HARNESS_RESPONSE_CACHE", str(tmp_path / "shared.sqlite"))
    assert _run(capsys, *base, "--output-dir", str(tmp_path / "c"))[0] == 0
    assert _result(tmp_path / "c")["cache"]["file"] == str(tmp_path / "shared.sqlite")
    assert not (tmp_path / "c" / ".cache").exists()


class OutOfMemoryAbove:
    """The real backend, except that a batch of more than `rows` rows fails the way a device
    that is out of memory fails (the message is PyTorch's)."""

    def __init__(self, inner, rows: int) -> None:
        self.inner, self.rows = inner, rows

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _check(self, n: int) -> None:
        if n > self.rows:
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.11 GiB total)")

    def score(self, rows, n_targets, width):
        self._check(len(rows))
        return self.inner.score(rows, n_targets, width)

    def score_shared(self, rows, n_targets, width):
        self._check(len(rows))
        return self.inner.score_shared(rows, n_targets, width)

    def prefill(self, prompts, max_new_tokens, width):
        self._check(len(prompts))
        return self.inner.prefill(prompts, max_new_tokens, width)


def _with_small_memory(monkeypatch, rows: int) -> None:
    real_load = models.load

    def load(*args, **kwargs):
        lm = real_load(*args, **kwargs)
        lm.backend = OutOfMemoryAbove(lm.backend, rows)
        return lm

    monkeypatch.setattr(models, "load", load)


def test_out_of_memory_halves_the_batch_and_says_so(capsys, kit, tmp_path, monkeypatch):
    rows = [{"context": f"Short context {i}", "target": f"w{i}"} for i in range(6)]  # one width bucket
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    args = ["run", "--model", "tiny", "--task", "kit-ll,kit-greedy", "--data-files", str(data),
            "--max-new-tokens", "2", "--no-progress", "--log-samples"]
    code, err = _run(capsys, *args, "--batch-size", "2", "--no-cache", "--output-dir", str(tmp_path / "p"))
    assert code == 0, err
    _with_small_memory(monkeypatch, rows=2)
    code, err = _run(capsys, *args, "--batch-size", "8", "--output-dir", str(tmp_path / "small"))
    assert code == 0, err
    first = _result(tmp_path / "small", "kit-ll")
    assert len(first["notes"]) == 2
    assert first["notes"][0].startswith("out of memory at batch size 8 (CUDA out of memory.")
    assert first["notes"][0].endswith("continued with batch size 4")
    assert first["notes"][1].endswith("continued with batch size 2")
    assert _result(tmp_path / "small", "kit-greedy")["notes"] == []  # batch size 2 from then on
    assert err.count("warning: out of memory") == 2
    for task in ("kit-ll", "kit-greedy"):
        small, plain = _result(tmp_path / "small", task), _result(tmp_path / "p", task)
        assert small["metrics"] == plain["metrics"]
        read = [(out / "tiny" / task / r["samples_file"]).read_text()
                for out, r in ((tmp_path / "small", small), (tmp_path / "p", plain))]
        assert read[0] == read[1]


def test_out_of_memory_at_batch_size_one_is_one_line(capsys, kit, tmp_path, monkeypatch):
    rows = [{"context": f"Short context {i}", "target": f"w{i}"} for i in range(2)]  # one width bucket
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    _with_small_memory(monkeypatch, rows=0)
    code, err = _run(capsys, "run", "--model", "tiny", "--task", "kit-ll", "--data-files", str(data),
                     "--batch-size", "2", "--no-progress", "--output-dir", str(tmp_path / "out"))
    assert code == 2
    lines = err.splitlines()
    assert lines[0] == ("warning: out of memory at batch size 2 (CUDA out of memory. Tried to allocate "
                        "20.00 GiB (GPU 0; 79.11 GiB total)); continued with batch size 1")
    assert len(lines) == 2 and lines[1].startswith("error: out of memory even at batch size 1")


def test_a_one_row_batch_out_of_memory_stops_at_once(capsys, kit, tmp_path, monkeypatch):
    """Halving cannot help a batch that had one row (its width is alone): one line, no halvings."""
    data = write_jsonl(tmp_path / "rows.jsonl", kit_rows(2))  # two widths: batches of one row
    _with_small_memory(monkeypatch, rows=0)
    code, err = _run(capsys, "run", "--model", "tiny", "--task", "kit-ll", "--data-files", str(data),
                     "--batch-size", "2", "--no-progress", "--output-dir", str(tmp_path / "out"))
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: out of memory even at batch size 1 (CUDA out")


class FullDisk:
    """A folder whose device is full: a 256 KiB tmpfs filled up where this process may mount
    one (root), else the same folder with `OSError(ENOSPC)` injected at the result write."""

    def __init__(self, root: Path, monkeypatch) -> None:
        import subprocess

        self.root, self.filler = root, root / "filler"
        root.mkdir()
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(root)],
                                 capture_output=True).returncode == 0
        self.mounted = mounted
        if mounted:
            with open(self.filler, "wb", buffering=0) as handle:
                try:
                    while True:
                        handle.write(b"\0" * 4096)
                except OSError:
                    pass
        else:
            from harness import results

            real = results.os.fsync

            def fsync(fd: int) -> None:
                if self.filler.exists():
                    raise OSError(28, "No space left on device")
                real(fd)

            self.filler.write_text("")
            monkeypatch.setattr(results.os, "fsync", fsync)

    def free(self) -> None:
        self.filler.unlink()

    def close(self) -> None:
        if self.mounted:
            import subprocess

            subprocess.run(["umount", str(self.root)], check=True)


def test_disk_full_at_the_result_write_names_the_file_and_the_rerun_recomputes_nothing(
        capsys, kit, tmp_path, monkeypatch):
    data = write_jsonl(tmp_path / "rows.jsonl", kit_rows(4))
    disk = FullDisk(tmp_path / "disk", monkeypatch)
    try:
        out, cache = disk.root / "out", tmp_path / "cache.sqlite"
        args = ["run", "--model", "tiny", "--task", "kit-ll", "--data-files", str(data), "--no-progress",
                "--log-samples", "--output-dir", str(out)]
        code, err = _run(capsys, *args, "--no-cache")
        assert code == 2 and err.startswith("error: no space left") and err.count("\n") == 1, err
        assert "not kept (--no-cache)" in err

        code, err = _run(capsys, *args, "--cache-file", str(cache))
        assert code == 2 and err.count("\n") == 1, err
        assert str(out / "tiny" / "kit-ll") in err and "needs" in err
        assert f"kept in {cache}" in err and "nothing is recomputed" in err

        disk.free()
        assert main([*args, "--cache-file", str(cache)]) == 0
        result = _result(out)
        assert (result["cache"]["hits"], result["cache"]["computed"]) == (4, 0)
        assert not [p for p in (out / "tiny" / "kit-ll").iterdir() if p.name.startswith(".tmp-")]
    finally:
        disk.close()


def test_a_corrupt_cache_is_moved_aside_and_a_new_one_started(tmp_path):
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database " * 400)
    warned: list[str] = []
    store = ResponseStore(garbage, warned.append)
    store.put_many("ns", [(b"k", "1")])
    assert store.count() == 1
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("garbage.sqlite.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"not a database")
    assert len(warned) == 1 and "is corrupt" in warned[0] and str(aside[0]) in warned[0]


def test_a_cache_damaged_inside_is_moved_aside_when_first_read(tmp_path):
    import os
    import sqlite3

    path = tmp_path / "responses.sqlite"
    store = ResponseStore(path)
    store.register("ns", {"model": "m"})
    store.put_many("ns", [(os.urandom(32), "v" * 200) for _ in range(2000)])
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    raw = bytearray(path.read_bytes())
    for offset in range(3 * 4096, len(raw), 4096):  # scribble over every page but the first ones
        raw[offset : offset + 100] = b"\xff" * 100
    path.write_bytes(bytes(raw))
    warned: list[str] = []
    store = ResponseStore(path, warned.append)
    assert store.get_many("ns", [b"x" * 32]) == {}
    assert len(warned) == 1 and "malformed" in warned[0]
    store.put_many("ns", [(b"k", "1")])
    assert store.count() == 1
    assert [p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name]

"""lm-evaluation-harness interoperability (harness.lm_eval_bridge, lm_eval_tasks, lm_eval_results).

1. lm-eval with `--model harness` answers every request as lm-eval's own `--model hf` does, on a
   local YAML task of each output type (both in subprocesses: lm-eval's HF model needs real torch).
2. Copies of lm-eval's lambada_openai / arc_easy / piqa YAMLs pointed at local files give, under
   `harness run --task-file`, the numbers of the built-in tasks on the same rows.
3. lm-eval's own table printer reads our `--output-format lm-eval` result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import LAMBADA, REPO, require

LM_EVAL_TASKS = Path(__import__("lm_eval").__file__).parent / "tasks"
TOLERANCE = 1e-4
# lm-eval's HF model sums a text's token log-probabilities in float32 (ours in float64), so a
# rolling sum over thousands of tokens carries float32 rounding: ~1e-7 of the sum.
FLOAT32_SUM = 1e-7


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _lambada_rows(n: int) -> list[dict]:
    lines = require(LAMBADA).read_text(encoding="utf-8").splitlines()[:n]
    return [{"text": json.loads(line)["text"]} for line in lines]


@pytest.fixture(scope="module")
def tiny_dir() -> Path:
    from harness.models.tiny import ensure_tiny_checkpoint

    return ensure_tiny_checkpoint()


# ------------------------------------------------------------------ 1. --model harness vs --model hf
def _local_tasks(folder: Path) -> list[str]:
    """One small local YAML task per output type (data files beside them)."""
    _write_jsonl(folder / "ll.jsonl", _lambada_rows(4))
    _write_jsonl(folder / "mc.jsonl", [
        {"question": "What colour is the sky?", "choices": ["blue", "green", "a loud noise"], "label": 0},
        {"question": "Two plus two is", "choices": ["four", "five"], "label": 0},
        {"question": "Fish live in", "choices": ["trees", "water", "the sun", "paper"], "label": 1},
    ])
    long_text = " ".join(_lambada_rows(6)[5]["text"] for _ in range(3))  # several model windows
    _write_jsonl(folder / "roll.jsonl", [{"text": "A short text."}, {"text": long_text}])
    _write_jsonl(folder / "gen.jsonl", [{"q": "Say hello", "a": " hello"}, {"q": "Count: 1 2", "a": " 3"}])
    local = {"dataset_path": "json"}
    tasks = {
        "t_ll": {"output_type": "loglikelihood", "doc_to_text": "{{text.split(' ')[:-1]|join(' ')}}",
                 "doc_to_target": "{{' '+text.split(' ')[-1]}}", "file": "ll.jsonl",
                 "metric_list": [{"metric": "acc"}, {"metric": "perplexity"}]},
        "t_mc": {"output_type": "multiple_choice", "doc_to_text": "Question: {{question}}\nAnswer:",
                 "doc_to_choice": "{{choices}}", "doc_to_target": "label", "file": "mc.jsonl",
                 "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}]},
        "t_roll": {"output_type": "loglikelihood_rolling", "doc_to_text": "", "doc_to_target": "text",
                   "file": "roll.jsonl", "metric_list": [{"metric": "word_perplexity"},
                                                         {"metric": "bits_per_byte"}]},
        "t_gen": {"output_type": "generate_until", "doc_to_text": "Q: {{q}}\nA:", "doc_to_target": "{{a}}",
                  "file": "gen.jsonl", "generation_kwargs": {"until": ["\n"], "max_gen_toks": 12,
                                                             "do_sample": False},
                  "metric_list": [{"metric": "exact_match"}]},
    }
    for name, spec in tasks.items():
        data = spec.pop("file")
        config = {"task": name, **local, "dataset_kwargs": {"data_files": {"test": str(folder / data)}},
                  "test_split": "test", **spec}
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return list(tasks)


def _samples(out: Path, task: str) -> list[dict]:
    files = sorted(out.rglob(f"samples_{task}_*.jsonl"))
    assert len(files) == 1, f"expected one samples file for {task} under {out}, found {files}"
    rows = [json.loads(line) for line in files[0].read_text(encoding="utf-8").splitlines()]
    return sorted(rows, key=lambda r: r["doc_id"])


@pytest.fixture(scope="module")
def both_runs(tmp_path_factory, tiny_dir):
    """The same local tasks through lm-eval with `--model harness` and with `--model hf`."""
    folder = tmp_path_factory.mktemp("lm-eval-tasks")
    names = _local_tasks(folder)
    common = ["--tasks", ",".join(names), "--include_path", str(folder), "--log_samples",
              "--device", "cpu", "--batch_size", "4"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(folder / "hf-datasets")}
    harness = Path(sys.executable).with_name("harness")
    ours = subprocess.Popen(
        [str(harness), "lm-eval", "--model-args", f"pretrained={tiny_dir},backend=native,"
         f"cache_file={folder / 'cache.sqlite'}", "--", *common, "--output_path", str(folder / "ours")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    theirs = subprocess.Popen(
        [sys.executable, "-m", "lm_eval", "run", "--model", "hf", "--model_args",
         f"pretrained={tiny_dir},dtype=float32", *common, "--output_path", str(folder / "hf")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    logs = [p.communicate(timeout=900)[0] for p in (ours, theirs)]
    assert ours.returncode == 0, logs[0][-3000:]
    assert theirs.returncode == 0, logs[1][-3000:]
    return folder, names


def _numbers(resps: list) -> list[float]:
    return [float(r[0]) if isinstance(r, list) else float(r) for r in resps]


def test_harness_model_answers_like_hf_loglikelihood_and_choices(both_runs):
    folder, _ = both_runs
    for task in ("t_ll", "t_mc"):
        ours, hf = _samples(folder / "ours", task), _samples(folder / "hf", task)
        assert [s["doc_id"] for s in ours] == [s["doc_id"] for s in hf] and ours
        for a, b in zip(ours, hf, strict=True):
            assert a["arguments"] == b["arguments"]
            mine, theirs = _numbers(a["filtered_resps"]), _numbers(b["filtered_resps"])
            assert mine == pytest.approx(theirs, abs=TOLERANCE), (task, a["doc_id"])
            assert [r[1] for r in a["filtered_resps"]] == [r[1] for r in b["filtered_resps"]]  # is_greedy
            assert a["acc"] == b["acc"]
        if task == "t_mc":  # real scores, not ties: the choices differ
            assert len({round(x, 3) for x in _numbers(ours[0]["filtered_resps"])}) > 1


def test_harness_model_answers_like_hf_rolling_and_generation(both_runs):
    folder, _ = both_runs
    roll_ours, roll_hf = _samples(folder / "ours", "t_roll"), _samples(folder / "hf", "t_roll")
    for a, b in zip(roll_ours, roll_hf, strict=True):
        assert _numbers(a["filtered_resps"]) == pytest.approx(_numbers(b["filtered_resps"]), abs=TOLERANCE,
                                                               rel=FLOAT32_SUM)
    assert len(roll_ours) == 2
    gen_ours, gen_hf = _samples(folder / "ours", "t_gen"), _samples(folder / "hf", "t_gen")
    assert [s["filtered_resps"] for s in gen_ours] == [s["filtered_resps"] for s in gen_hf]
    assert [s["exact_match"] for s in gen_ours] == [s["exact_match"] for s in gen_hf]
    results = json.loads(next((folder / "ours").rglob("results_*.json")).read_text())
    assert results["config"]["model"] == "harness"
    assert results["config"]["model_args"]["backend"] == "native"


def test_harness_model_on_mindnlp_answers_like_hf(both_runs, tiny_dir):
    """backend=mindnlp: mindnlp's torch is activated before lm-eval imports torch, in one process."""
    folder, _ = both_runs
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(folder / "hf-datasets")}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("harness")), "lm-eval", "--model-args",
         f"pretrained={tiny_dir},backend=mindnlp,cache=false", "--", "--tasks", "t_mc",
         "--include_path", str(folder), "--log_samples", "--output_path", str(folder / "mindnlp")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    ours, hf = _samples(folder / "mindnlp", "t_mc"), _samples(folder / "hf", "t_mc")
    for a, b in zip(ours, hf, strict=True):
        assert _numbers(a["filtered_resps"]) == pytest.approx(_numbers(b["filtered_resps"]), abs=TOLERANCE)
        assert a["acc"] == b["acc"] and a["acc_norm"] == b["acc_norm"]
    results = json.loads(next((folder / "mindnlp").rglob("results_*.json")).read_text())
    assert results["config"]["model_backend"] == "mindnlp"


def test_harness_model_serves_a_rerun_from_the_response_cache(tmp_path):
    """Resume: a second HarnessLM on the same cache file computes nothing and answers the same."""
    from lm_eval.api.instance import Instance

    from harness.lm_eval_bridge import HarnessLM

    requests = [Instance("loglikelihood", {}, ("The cat sat on the", " mat"), 0),
                Instance("loglikelihood", {}, ("", " Hello"), 1)]
    first = HarnessLM(pretrained="tiny", backend="native", cache_file=str(tmp_path / "c.sqlite"))
    answers = first.loglikelihood(requests)
    first.close()
    assert first.cache_layer.computed == 2
    again = HarnessLM(pretrained="tiny", backend="native", cache_file=str(tmp_path / "c.sqlite"))
    assert again.loglikelihood(requests) == answers
    assert (again.cache_layer.hits, again.cache_layer.computed) == (2, 0)
    again.close()


# ------------------------------------------------------------------ 2. lm-eval's YAMLs in harness run
def _yaml_copy(folder: Path, source: Path, split: str, data: Path) -> Path:
    """lm-eval's own task YAML, pointed at a local JSON Lines file."""
    config = yaml.safe_load(source.read_text(encoding="utf-8"))
    config.update(dataset_path="json", dataset_name=None, dataset_kwargs={"data_files": {split: str(data)}})
    path = folder / source.name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _run(*args: str) -> None:
    from harness.cli import main

    assert main(["run", "--model", "tiny", "--backend", "native", "--no-progress", "--no-cache", *args]) == 0


def _result(folder: Path, task: str) -> dict:
    files = sorted((folder / "tiny" / task).glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def yaml_and_builtin(tmp_path_factory):
    folder = tmp_path_factory.mktemp("yaml-copies")
    lambada = _write_jsonl(folder / "lambada.jsonl", _lambada_rows(8))
    arc = _write_jsonl(folder / "arc.jsonl", [
        {"id": "1", "question": "Which is a planet?", "answerKey": "B",
         "choices": {"text": ["The Moon", "Mars", "The Sun"], "label": ["A", "B", "C"]}},
        {"id": "2", "question": "Water freezes at", "answerKey": "1",
         "choices": {"text": ["0 degrees Celsius", "100 degrees Celsius"], "label": ["1", "2"]}},
        {"id": "3", "question": "Plants need", "answerKey": "D",
         "choices": {"text": ["salt", "noise", "darkness", "sunlight"], "label": ["A", "B", "C", "D"]}},
    ])
    piqa = _write_jsonl(folder / "piqa.jsonl", [
        {"goal": "To open a jar", "sol1": "twist the lid", "sol2": "sing to it", "label": 0},
        {"goal": "To dry wet hair", "sol1": "pour water on it", "sol2": "use a towel", "label": 1},
    ])
    yamls = {
        "lambada_openai": _yaml_copy(folder, LM_EVAL_TASKS / "lambada" / "lambada_openai.yaml", "test",
                                     lambada),
        "arc_easy": _yaml_copy(folder, LM_EVAL_TASKS / "arc" / "arc_easy.yaml", "test", arc),
        "piqa": _yaml_copy(folder, LM_EVAL_TASKS / "piqa" / "piqa.yaml", "validation", piqa),
    }
    yaml_out, builtin_out = folder / "yaml-out", folder / "builtin-out"
    _run("--task-file", ",".join(str(p) for p in yamls.values()), "--output-dir", str(yaml_out),
         "--output-format", "both", "--log-samples")
    _run("--task", "lambada,arc-easy,piqa", "--data-files",
         f"lambada={lambada},arc-easy={arc},piqa={piqa}", "--output-dir", str(builtin_out))
    return yaml_out, builtin_out


@pytest.mark.parametrize(("yaml_name", "builtin"), [("lambada_openai", "lambada"), ("arc_easy", "arc-easy"),
                                                     ("piqa", "piqa")])
def test_lm_eval_yaml_copies_equal_builtin_tasks(yaml_and_builtin, yaml_name, builtin):
    yaml_out, builtin_out = yaml_and_builtin
    ours, reference = _result(yaml_out, yaml_name), _result(builtin_out, builtin)
    assert ours["n_examples"] == reference["n_examples"] > 1
    assert set(ours["metrics"]) == set(reference["metrics"])
    for metric, value in reference["metrics"].items():
        assert ours["metrics"][metric]["value"] == value["value"], metric
        assert ours["metrics"][metric]["stderr"] == value["stderr"], metric


def test_process_docs_function_beside_the_yaml(tmp_path):
    (tmp_path / "utils.py").write_text(
        "def process_docs(dataset):\n"
        "    return dataset.filter(lambda d: d['keep']).map(lambda d: {'q': d['q'].upper()})\n",
        encoding="utf-8")
    _write_jsonl(tmp_path / "rows.jsonl", [{"q": "a b", "a": " c", "keep": True},
                                           {"q": "d e", "a": " f", "keep": False},
                                           {"q": "g h", "a": " i", "keep": True}])
    (tmp_path / "task.yaml").write_text(
        "task: kept\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: rows.jsonl\n"
        "test_split: test\noutput_type: loglikelihood\nprocess_docs: !function utils.process_docs\n"
        "doc_to_text: '{{q}}'\ndoc_to_target: a\n", encoding="utf-8")
    _run("--include-path", str(tmp_path), "--task", "kept", "--output-dir", str(tmp_path / "out"),
         "--log-samples")
    result = _result(tmp_path / "out", "kept")
    assert result["n_examples"] == 2
    samples = (tmp_path / "out" / "tiny" / "kept").glob("*.samples.jsonl")
    prompts = [json.loads(line)["prompt"] for line in next(samples).read_text().splitlines()]
    assert prompts == ["A B", "G H"]


@pytest.mark.parametrize(("line", "key"), [("filter_list:\n  - name: x\n", "filter_list"),
                                           ("process_results: !function utils.f\n", "process_results"),
                                           ("num_fewshot: 5\n", "num_fewshot")])
def test_unsupported_yaml_key_is_one_line_naming_it(tmp_path, capsys, line, key):
    from harness.cli import main

    (tmp_path / "t.yaml").write_text("task: t\ndataset_path: json\ntest_split: test\noutput_type: "
                                     "loglikelihood\ndoc_to_text: x\ndoc_to_target: y\n" + line,
                                     encoding="utf-8")
    assert main(["run", "--task-file", str(tmp_path / "t.yaml"), "--model", "tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"'{key}'" in err and "Traceback" not in err


# ------------------------------------------------------------------ 3. lm-eval reads our result
def test_lm_eval_make_table_reads_our_lm_eval_result(yaml_and_builtin):
    from lm_eval.utils import make_table

    yaml_out, _ = yaml_and_builtin
    files = sorted((yaml_out / "tiny").glob("results_*.json"))
    assert len(files) == 1
    result = json.loads(files[0].read_text(encoding="utf-8"))
    table = make_table(result)
    ours = _result(yaml_out, "arc_easy")["metrics"]["acc"]
    row = next(line for line in table.splitlines() if line.startswith("|arc_easy"))
    assert "acc" in row and f"{ours['value']:.4f}" in row and f"{ours['stderr']:.4f}" in row
    for task in ("lambada_openai", "piqa"):
        assert any(line.startswith(f"|{task}") for line in table.splitlines())
    assert result["results"]["arc_easy"]["acc,none"] == ours["value"]
    assert result["n-samples"]["piqa"]["effective"] == 2
    assert float(result["total_evaluation_time_seconds"]) > 0
    samples = sorted((yaml_out / "tiny").glob("samples_arc_easy_*.jsonl"))
    first = json.loads(samples[0].read_text(encoding="utf-8").splitlines()[0])
    assert first["target"] == "1" and first["doc"]["answerKey"] == "B"
    assert first["arguments"]["gen_args_1"]["arg_1"] == " Mars"
    assert len(first["resps"]) == 3 and first["acc"] in (0.0, 1.0)


@pytest.mark.parametrize(("args", "needle"), [
    (["--model-args", "pretrained"], "is not key=value"),
    (["--model-args", "pretrained=tiny", "--", "--model", "hf"], "--model harness itself"),
])
def test_harness_lm_eval_bad_input_is_one_line(capsys, args, needle):
    from harness.cli import main

    assert main(["lm-eval", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err

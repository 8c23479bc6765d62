"""`harness run --suite`: local data where given, one actionable line for each unreachable task."""

from __future__ import annotations

import json

from tests.conftest import LAMBADA, harness_cli, require


def test_suite_run_with_per_task_local_data(tmp_path):
    piqa = tmp_path / "piqa.jsonl"
    piqa.write_text(json.dumps({"goal": "Open a jar", "sol1": "Twist the lid.", "sol2": "Eat it.",
                                "label": 0}) + "\n")
    out = tmp_path / "results"
    proc = harness_cli(
        "run", "--suite", "standard-mc", "--task", "lambada", "--model", "tiny", "--limit", "3",
        "--data-files", f"lambada={require(LAMBADA)},piqa={piqa}", "--output-dir", str(out),
        "--no-progress", "--no-cache",
    )  # conftest keeps the hub offline: the other five tasks cannot load their data
    assert proc.returncode == 2, proc.stderr
    lambada = json.loads(next((out / "tiny" / "lambada").glob("*.json")).read_text())
    assert set(lambada["metrics"]) == {"acc", "perplexity"} and lambada["n_examples"] == 3
    piqa_result = json.loads(next((out / "tiny" / "piqa").glob("*.json")).read_text())
    assert set(piqa_result["metrics"]) == {"acc", "acc_norm"}
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    failed = ["hellaswag", "arc-easy", "arc-challenge", "winogrande", "boolq"]
    for task in failed:
        line = next(e for e in errors if e.startswith(f"error: {task}: "))
        assert "--data-files" in line
    assert errors[-1].startswith("error: 5 task run(s) failed")

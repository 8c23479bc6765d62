"""What a user sees while `harness run` works: a line while the model loads, progress in examples
(not requests) with the ETA in one unit, a closing line per task, and `n` in the closing table."""

from __future__ import annotations

import io
import json

from harness.cli import main
from harness.progress import ExampleProgress, duration

PIQA = [{"goal": f"How to open jar {i}?", "sol1": "Twist the lid.", "sol2": "Eat the jar.", "label": i % 2}
        for i in range(3)]


def test_duration_is_in_one_unit():
    assert [duration(s) for s in (0.4, 42, 300, 7200, None)] == ["0 s", "42 s", "5.0 min", "2.0 h", "?"]


def test_progress_counts_examples_from_the_requests_answered():
    out = io.StringIO()
    bar = ExampleProgress(requests=8, examples=2, desc="m t", file=out)  # 4 choices per question
    bar.update(3)
    assert bar.shown == 0
    bar.update(1)
    assert bar.shown == 1
    bar.update(4)
    bar.close()
    assert bar.shown == 2 and "2/2 examples" in out.getvalue() and "8/8" not in out.getvalue()
    assert "ETA" in out.getvalue() and "examples/s" in out.getvalue()


def test_run_reports_loading_progress_in_examples_and_a_closing_line_per_task(tmp_path, capsys):
    from harness.compare.command import compare

    data = tmp_path / "piqa.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in PIQA), encoding="utf-8")
    out = tmp_path / "results"
    code = main(["run", "--task", "piqa", "--model", "tiny", "--data-files", str(data), "--template", "all",
                 "--log-samples", "--batch-size", "4", "--output-dir", str(out), "--no-cache"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    err = captured.err
    assert "loading tiny (native on cpu)" in err and "loaded tiny in " in err
    assert "3/3 examples" in err and "6/6" not in err  # 3 questions, 2 choices each
    for template in ("lm-eval", "plain", "instruction"):
        assert f"tiny piqa ({template}): 3 examples in " in err
    assert err.count("examples/s)") == 3
    table = [[c.strip() for c in line.strip("|").split("|")] for line in captured.out.splitlines()
             if line.startswith("| piqa")]
    assert [r[1] for r in table if r[3] == "n"] == ["instruction", "lm-eval", "plain"]
    assert all(r[4] == "3" for r in table if r[3] == "n")
    # compare: the spread over the three templates, and chance for two-choice questions
    report = compare(out, out=tmp_path / "cmp")
    assert report.chance == {"piqa": 0.5}
    assert "Prompt sensitivity" in report.markdown
    sensitivity = (tmp_path / "cmp" / "sensitivity.csv").read_text().splitlines()
    assert [line.split(",")[:4] for line in sensitivity[1:]] == [["piqa", "0", "acc", "3"],
                                                                 ["piqa", "0", "acc_norm", "3"]]
    assert "Prompt sensitivity" in (tmp_path / "cmp" / "report.html").read_text()
